"""Reading safetensors headers: local files with plain reads, URIs through the engine (a
:class:`~runai_model_streamer._stream.RangeStream`, so one completion loop serves headers and
tensors). The format rules are :mod:`runai_model_streamer._safetensors`'. For an object, the HEAD
that gives its size also says how it can be checked (:mod:`runai_model_streamer._verify`): its
check starts here, with the header's bytes."""

from __future__ import annotations

import logging
import os
import stat
from collections.abc import Callable, Iterator, Sequence
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass

from runai_model_streamer._backends import uri_scheme
from runai_model_streamer._cache import Cache, CachedObject
from runai_model_streamer._cache_entry import CacheKey
from runai_model_streamer._errors import (
    RunaiStreamerError,
    StreamerEOFError,
    StreamerFileNotFoundError,
    StreamerIOError,
    StreamerIsADirectoryError,
    StreamerPermissionError,
)
from runai_model_streamer._native import Engine, StoredObject, checksum
from runai_model_streamer._plan import FileRanges
from runai_model_streamer._safetensors import (
    SafetensorsHeader,
    check_header_length,
    format_error,
    parse_header,
)
from runai_model_streamer._settings import UNLIMITED
from runai_model_streamer._stream import RangeStream
from runai_model_streamer._verify import CHECKABLE, ObjectCheck, check_for

logger = logging.getLogger("runai_model_streamer")


@dataclass
class RemoteObject:
    """What a stream knows of one object before reading its tensors: how it is checked when
    read whole (``check``; None: not, and ``why``), its cache key (None: it cannot be cached),
    its first bytes (the length and the header), and its cache entry when it is cached.
    ``start``: the object's first bytes as read from its store with the header (up to
    REMOTE_PREFIX_READ_SIZE; empty for a hit): the tensors within them are not read again."""

    check: ObjectCheck | None
    why: str
    key: CacheKey | None
    head: bytes
    cached: CachedObject | None = None
    start: bytes = b""


#: bytes read at once from the start of a file, so most headers take a single read
PREFIX_READ_SIZE = 1024 * 1024
#: same for object storage (one ranged GET per file for common headers)
REMOTE_PREFIX_READ_SIZE = 256 * 1024
#: the objects' starts kept for their tensors, at most (beyond: read again with the rest)
KEPT_STARTS_BYTES = 64 << 20


def read_headers(
    paths: Sequence[str],
    engine: Callable[[], Engine],
    verify: str = "off",
    cache: Cache | None = None,
    offline: bool = False,
) -> tuple[list[SafetensorsHeader], list[RemoteObject | None]]:
    """Headers of local files (plain reads) and URIs (concurrent reads through ``engine()``,
    called only when there is a URI, or from their entries in ``cache``), in order; and what
    is known of each object (``verify``: RUNAI_STREAMER_VERIFY's mode; None for local files).
    ``offline``: a cached object is taken without asking its store."""
    headers: list[SafetensorsHeader | None] = [None] * len(paths)
    integrity: list[RemoteObject | None] = [None] * len(paths)
    remote = [i for i, p in enumerate(paths) if uri_scheme(p) is not None]
    for index, path in enumerate(paths):
        if uri_scheme(path) is None:
            headers[index] = read_local_header(path)
    if remote:
        found = read_engine_headers(engine, [paths[i] for i in remote], verify, cache, offline)
        for index, (header, checked) in zip(remote, found, strict=True):
            headers[index] = header
            integrity[index] = checked
    return [h for h in headers if h is not None], integrity


def _os_error(path: str, error: OSError) -> Exception:
    reason = error.strerror or str(error)
    if isinstance(error, FileNotFoundError):
        return StreamerFileNotFoundError(f"{path}: no such file ({reason})")
    if isinstance(error, PermissionError):
        return StreamerPermissionError(f"{path}: permission denied ({reason})")
    if isinstance(error, IsADirectoryError):
        return StreamerIsADirectoryError(f"{path}: is a directory, not a safetensors file")
    return StreamerIOError(f"{path}: {reason}")


def read_local_header(path: str) -> SafetensorsHeader:
    """Reads and validates the header of a local file with plain reads (no engine needed)."""
    file_size, header_size, raw = _local_header_bytes(path)
    return parse_header(path, file_size, header_size, raw)


def _local_header_bytes(path: str, name: str | None = None) -> tuple[int, int, bytes]:
    """The size of a local file, its header's length and the header's bytes (errors name
    ``name``, default the path)."""
    name = path if name is None else name
    try:
        # O_NONBLOCK: opening a FIFO must not wait for a writer (regular files ignore it)
        fd = os.open(path, os.O_RDONLY | os.O_NONBLOCK | getattr(os, "O_CLOEXEC", 0))
    except OSError as error:
        raise _os_error(name, error) from None
    try:
        info = os.fstat(fd)
        if stat.S_ISDIR(info.st_mode):
            raise StreamerIsADirectoryError(f"{name}: is a directory, not a safetensors file")
        if not stat.S_ISREG(info.st_mode):
            raise StreamerIOError(f"{name}: not a regular file")
        file_size = info.st_size
        if file_size < 8:
            check_header_length(name, file_size, 0)
        try:
            prefix = os.pread(fd, min(file_size, PREFIX_READ_SIZE), 0)
            if len(prefix) < 8:
                raise format_error(name, f"could read only {len(prefix)} bytes (file changed?)")
            header_size = int.from_bytes(prefix[:8], "little")
            check_header_length(name, file_size, header_size)
            raw = prefix[8 : 8 + header_size]
            if len(raw) < header_size:
                raw += os.pread(fd, header_size - len(raw), 8 + len(raw))
        except OSError as error:
            raise _os_error(name, error) from None
    finally:
        os.close(fd)
    return file_size, header_size, raw


def read_engine_headers(
    engine: Callable[[], Engine],
    paths: Sequence[str],
    verify: str = "off",
    cache: Cache | None = None,
    offline: bool = False,
) -> list[tuple[SafetensorsHeader, RemoteObject]]:
    """Reads the headers of several objects, concurrently: sizes (HEADs) in parallel, one
    read of each object's start, and one more for the rare large header; an object in
    ``cache`` (after its HEAD, or without one when ``offline``) has its header read from its
    entry. With each header: what is known of the object, its check seeded with the header's
    bytes."""
    if not paths:
        return []
    hits: list[CachedObject | None] = [None] * len(paths)
    if cache is not None and offline:
        hits = [cache.lookup_offline(path) for path in paths]
    asked = [i for i, hit in enumerate(hits) if hit is None]
    stored: list[StoredObject | None] = [None] * len(paths)
    starts: list[bytes | None] = [None] * len(paths)
    if asked:
        opened = engine()
        with ThreadPoolExecutor(max_workers=min(16, len(asked))) as pool:
            heads = pool.map(opened.object_info, [paths[i] for i in asked])
            # no cache, whose hits a HEAD decides: the starts are read as the objects are HEADed
            infos, early = _read_starts(opened, [paths[i] for i in asked], heads, cache is None)
        for position, (index, info) in enumerate(zip(asked, infos, strict=True)):
            stored[index] = info
            starts[index] = early[position] if early is not None else None
    keys: list[CacheKey | None] = [None] * len(paths)
    try:
        for index in asked:
            asked_info = stored[index]
            assert asked_info is not None
            if asked_info.size < 8:
                check_header_length(paths[index], asked_info.size, 0)
            key = keys[index] = CacheKey.of(paths[index], asked_info.version, asked_info.size)
            if cache is not None and key is not None:
                hits[index] = cache.lookup(key)
        return _remote_objects(engine, paths, verify, stored, keys, hits, starts)
    except BaseException:
        for hit in hits:
            if hit is not None:
                hit.release()
        raise


def _remote_objects(
    engine: Callable[[], Engine],
    paths: Sequence[str],
    verify: str,
    stored: Sequence[StoredObject | None],
    keys: Sequence[CacheKey | None],
    hits: Sequence[CachedObject | None],
    starts: Sequence[bytes | None],
) -> list[tuple[SafetensorsHeader, RemoteObject]]:
    """The headers (read from the store for a miss, from the entry for a hit) and what is
    known of each object. An entry whose header is damaged is dropped: its object is a miss.
    ``starts``: each object's first bytes where they were read before its HEAD answered."""
    hits, stored, keys = list(hits), list(stored), list(keys)
    heads: list[tuple[int, int, bytes, bytes]] = [(0, 0, b"", b"")] * len(paths)
    for index, hit in enumerate(hits):
        if hit is None:
            continue
        entry_head = _entry_head(paths[index], hit)
        if entry_head is not None:
            heads[index] = (*entry_head, b"")
            continue
        hits[index] = None
        hit.damaged = True
        hit.release()  # and dropped
        info = stored[index]
        if info is None:  # not asked yet (offline, or asked while the entry is read)
            info = stored[index] = engine().object_info(paths[index])
        keys[index] = CacheKey.of(paths[index], info.version, info.size)
    misses = [i for i, hit in enumerate(hits) if hit is None]
    if misses:
        sizes = [info.size for i in misses if (info := stored[i]) is not None]
        found = _read_remote_heads(
            engine(), [paths[i] for i in misses], sizes, [starts[i] for i in misses]
        )
        for index, found_head in zip(misses, found, strict=True):
            heads[index] = found_head
    results = []
    kept = 0
    for index, path in enumerate(paths):
        hit = hits[index]
        size, header_size, raw, start = heads[index]
        kept += len(start)
        start = start if kept <= KEPT_STARTS_BYTES else b""
        header = parse_header(path, size, header_size, raw)
        head = header_size.to_bytes(8, "little") + raw
        # a hit is checked against the checksum its entry keeps (the store's CRC, or the
        # CRC32C of the bytes that matched the store's MD5): the key holds the store's version
        info = _as_stored(hit) if hit is not None else stored[index]
        assert info is not None
        check, why = check_for(path, info, verify)
        if check is not None:
            check.add_bytes(0, head)
            if hit is not None:
                check.on_mismatch = _dropper(hit)
                check.known = hit.pieces()
                check.on_damage = _damage_marker(path, hit)
                check.on_verified = hit.learn
        results.append((header, RemoteObject(check, why, keys[index], head, hit, start)))
    return results


def read_from_store(path: str, obj: RemoteObject, engine: Engine, verify: str) -> RemoteObject:
    """A hit read as a miss, because other ranks of its shared stream have no entry of it (the
    ranks read pieces of the same bytes and check them alike): its entry is released, its
    check is the store's. The store's object must still be the entry's: it was so at the HEAD
    that found the entry, unless that was skipped (RUNAI_STREAMER_CACHE_OFFLINE)."""
    hit = obj.cached
    assert hit is not None
    hit.release()
    if obj.check is not None:
        obj.check.close()
    info = engine.object_info(path)
    key = CacheKey.of(path, info.version, info.size)
    if key != hit.meta.key:
        raise StreamerIOError(
            f"{path}: changed in its store since it was cached, and the other ranks of the "
            "distributed stream have no entry of it: load it again (each rank then reads the "
            "store's object)"
        )
    check, why = check_for(path, info, verify)
    if check is not None:
        check.add_bytes(0, obj.head)
    return RemoteObject(check, why, key, obj.head)


def _entry_head(path: str, hit: CachedObject) -> tuple[int, int, bytes] | None:
    """The size, header length and header of a cache entry; None when they are damaged (they
    cannot be read, or their CRC is not the one the entry was written with): one WARNING."""
    problem = ""
    try:
        size, header_size, raw = _local_header_bytes(str(hit.data), f"{path} (cached)")
    except (OSError, ValueError) as error:
        problem = str(error)
    else:
        head = header_size.to_bytes(8, "little") + raw
        expected = hit.pieces().get((0, len(head)))
        kind = CHECKABLE.get(hit.meta.algorithm)
        if expected is None or kind is None or checksum(kind, head) == expected:
            return size, header_size, raw
        problem = "its header's bytes changed since it was written"
    logger.warning(
        "cache entry %s of %s is damaged (%s): dropped, the object is read from its store",
        hit.directory,
        path,
        problem,
    )
    return None


def _damage_marker(path: str, hit: CachedObject) -> Callable[[int, int], None]:
    """What a stream calls on a damaged piece of ``hit``: one WARNING, and the entry is
    dropped once the stream is done with it (its other pieces are still read from it)."""

    def mark(offset: int, size: int) -> None:
        if not hit.damaged:
            logger.warning(
                "cache entry %s of %s is damaged (bytes %d..%d changed since it was written): "
                "its damaged pieces are read from the store, and it is dropped after this stream",
                hit.directory,
                path,
                offset,
                offset + size,
            )
        hit.damaged = True

    return mark


def _as_stored(hit: CachedObject) -> StoredObject:
    meta = hit.meta
    return StoredObject(meta.size, {}, {meta.algorithm: meta.checksum})


def _dropper(hit: CachedObject) -> Callable[[], str]:
    def drop() -> str:
        hit.drop()
        return (
            f"; the bytes came from the cache entry {hit.directory}, which was dropped: "
            "loading again reads the object from its store"
        )

    return drop


def _read_starts(
    engine: Engine, paths: Sequence[str], heads: Iterator[StoredObject], early: bool
) -> tuple[list[StoredObject], list[bytes] | None]:
    """What the HEADs of ``paths`` say, and with ``early`` the first REMOTE_PREFIX_READ_SIZE
    bytes of each object, read before its size is known (None where one is smaller: they are
    read again once the HEADs have said the sizes). The HEADs' errors come first: they name
    what is wrong."""
    size = REMOTE_PREFIX_READ_SIZE
    if not early:
        return list(heads), None
    try:
        starts: list[bytes] | None = _read_ranges(engine, [(p, 0, size, size) for p in paths])
    except RunaiStreamerError as error:
        stored = list(heads)
        if not isinstance(error, StreamerEOFError):
            raise
        logger.debug("the objects' starts are read again after their HEADs: %s", error)
        return stored, None
    return list(heads), starts


def _read_remote_heads(
    engine: Engine, paths: Sequence[str], sizes: Sequence[int], starts: Sequence[bytes | None]
) -> list[tuple[int, int, bytes, bytes]]:
    """Each object's size, header length, header bytes and first bytes: one read of its start
    (unless it was read already, ``starts``), and one more for the rare large header."""
    prefix_sizes = [min(size, REMOTE_PREFIX_READ_SIZE) for size in sizes]
    prefixes = [b"" if start is None else start for start in starts]
    unread = [i for i, n in enumerate(prefix_sizes) if len(prefixes[i]) != n]
    if unread:
        again = _read_ranges(engine, [(paths[i], 0, prefix_sizes[i], sizes[i]) for i in unread])
        for index, data in zip(unread, again, strict=True):
            prefixes[index] = data
    header_sizes = [int.from_bytes(prefix[:8], "little") for prefix in prefixes]
    rest: list[tuple[str, int, int, int]] = []
    rest_index: list[int] = []
    for index, (path, size, header_size, prefix) in enumerate(
        zip(paths, sizes, header_sizes, prefixes, strict=True)
    ):
        check_header_length(path, size, header_size)
        if 8 + header_size > len(prefix):
            rest.append((path, len(prefix), 8 + header_size - len(prefix), size))
            rest_index.append(index)
    extra = _read_ranges(engine, rest) if rest else []
    raws = [prefix[8 : 8 + n] for prefix, n in zip(prefixes, header_sizes, strict=True)]
    for index, data in zip(rest_index, extra, strict=True):
        raws[index] += data
    return list(zip(sizes, header_sizes, raws, prefixes, strict=True))


def _read_ranges(engine: Engine, reads: Sequence[tuple[str, int, int, int]]) -> list[bytes]:
    """The bytes of ``(path, offset, size, object size)`` ranges, read concurrently; raises
    the first error (naming the path and the header)."""
    files = [FileRanges(path, [offset], [size], whole) for path, offset, size, whole in reads]
    found: list[bytes] = [b""] * len(reads)
    stream = RangeStream(engine, files, UNLIMITED, describe=lambda _file, _item: "its header")
    for position, _item, u8 in stream:
        found[position] = u8.numpy().tobytes()
    return found
