"""Downloading objects whole into local files (``pull_files``, the CLI's ``--verify`` copies):
one HEAD each, then concurrent ranged reads through the engine into temporary files beside the
destinations, each object verified as it completes (RUNAI_STREAMER_VERIFY) and every file
renamed into place only once all are complete.

With a cache (:mod:`runai_model_streamer._cache`), an object that has an entry is copied from
it, checked whole against the checksum the entry keeps as it is copied (a damaged entry is
dropped, with one WARNING, and the object read from its store instead); an object read from its
store and verified is written to the cache as it lands, as a stream does.
"""

from __future__ import annotations

import contextlib
import functools
import logging
import os
from collections.abc import Callable, Sequence
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass
from typing import TYPE_CHECKING

from runai_model_streamer._backends import register_backends, resolve_uris
from runai_model_streamer._cache import Cache, CachedObject
from runai_model_streamer._cache_entry import CacheKey, CacheWriter, pwrite_all
from runai_model_streamer._native import Engine, checksum, checksum_combine
from runai_model_streamer._plan import FileRanges
from runai_model_streamer._safe_paths import open_temporary
from runai_model_streamer._stream import RangeStream
from runai_model_streamer._verify import (
    CHECKABLE,
    ObjectCheck,
    VerifyReport,
    check_for,
    verify_mode,
)

if TYPE_CHECKING:
    from runai_model_streamer._credentials import S3Credentials

logger = logging.getLogger("runai_model_streamer")

#: object downloads: bytes per engine range and bytes of destination memory in flight
DOWNLOAD_CHUNK = 64 << 20
DOWNLOAD_MEMORY = 512 << 20
#: bytes per read when a cache entry is copied
COPY_CHUNK = 16 << 20

Progress = Callable[[int, int], None]


@dataclass
class Download:
    """One object to download: its URI, size, check (None: not verified) and cache key (None:
    it cannot be cached)."""

    uri: str
    size: int
    check: ObjectCheck | None
    key: CacheKey | None


def engine_for(paths: Sequence[str], credentials: S3Credentials | None) -> Engine:
    engine = Engine()
    try:
        register_backends(engine, paths, credentials)
    except BaseException:
        engine.close()
        raise
    return engine


def download_objects(
    uris: Sequence[str], directory: str, credentials: S3Credentials | None = None
) -> list[str]:
    """Downloads each object whole (concurrent ranged reads) into ``directory`` under a name of
    its own (``<index>-<last segment of the key>``); the paths, in order. Never through the
    cache: these are the independent copies the CLI's ``--verify`` compares a stream with."""
    if not uris:
        return []
    engine = engine_for(uris, credentials)
    try:
        objects = checked(engine, uris)
        names = [f"{i:04d}-{uri.rsplit('/', 1)[-1] or 'object'}" for i, uri in enumerate(uris)]
        paths = [os.path.join(directory, name) for name in names]
        refresh = functools.partial(register_backends, engine, list(uris), credentials)
        download(engine, refresh, objects, paths, None, None)
        return paths
    finally:
        engine.close()


def checked(engine: Engine, uris: Sequence[str]) -> list[Download]:
    """Each object's URI (resolved: :func:`resolve_uris`), size, check and cache key (one HEAD
    each, concurrently); with RUNAI_STREAMER_VERIFY=require, an object that cannot be checked
    raises."""
    if not uris:
        return []
    uris = resolve_uris(engine, uris)  # hf://: one commit, or the local copy
    with ThreadPoolExecutor(max_workers=min(16, len(uris))) as pool:
        stored = list(pool.map(engine.object_info, uris))
    report = VerifyReport(verify_mode())
    found = []
    for uri, info in zip(uris, stored, strict=True):
        check, why = check_for(uri, info, report.mode)
        report.add(uri, check, why)
        found.append(Download(uri, info.size, check, CacheKey.of(uri, info.version, info.size)))
    report.enforce()
    if report.summary():
        logger.info("downloading %d objects: %s", len(found), report.summary())
    return found


def download(
    engine: Engine,
    refresh: Callable[[], None],
    objects: Sequence[Download],
    destinations: Sequence[str],
    progress: Progress | None,
    cache: Cache | None,
) -> None:
    """Writes every object into a temporary file beside its destination (from its cache entry,
    or streamed from its store and verified as it completes), then renames them all;
    ``refresh`` re-registers the backends (fresh credentials) during a long download."""
    handles: list[int] = []
    temporaries: list[str] = []
    hits: list[CachedObject | None] = [None] * len(objects)
    try:
        for destination in destinations:
            handle, temporary = open_temporary(destination)
            handles.append(handle)
            temporaries.append(temporary)
        total, done = sum(o.size for o in objects), 0
        # the keys of the objects the cache may hold: those verified when read
        keys = [o.key if cache is not None and o.check is not None else None for o in objects]
        fetch = []  # what is read from the stores
        for index, (obj, key) in enumerate(zip(objects, keys, strict=True)):
            hit = hits[index] = cache.lookup(key) if cache is not None and key else None
            if hit is not None and _copy_entry(hit, handles[index]):
                done += obj.size
                if progress is not None:
                    progress(done, total)
            else:
                fetch.append(index)
        writers = [
            cache.writer(key) if cache is not None and (key := keys[i]) else None for i in fetch
        ]
        _stream_into(
            engine,
            refresh,
            [(objects[i], handles[i], writer) for i, writer in zip(fetch, writers, strict=True)],
            (done, total, progress),
        )
        for handle in handles:
            os.close(handle)
        handles.clear()
        for temporary, destination in zip(temporaries, destinations, strict=True):
            os.replace(temporary, destination)
    finally:
        for hit in hits:
            if hit is not None:
                hit.release()
        for handle in handles:
            os.close(handle)
        for temporary in temporaries:
            with contextlib.suppress(FileNotFoundError):
                os.unlink(temporary)


def _stream_into(
    engine: Engine,
    refresh: Callable[[], None],
    objects: Sequence[tuple[Download, int, CacheWriter | None]],
    progress: tuple[int, int, Progress | None],
) -> None:
    """Streams each ``(object, file handle, cache writer)`` from its store into its file,
    verified, and written to its cache entry as it lands when it has a writer; ``progress``:
    bytes done so far, in all, and the callback."""
    done, total, report = progress
    files = []
    for obj, _, _ in objects:
        offsets = list(range(0, obj.size, DOWNLOAD_CHUNK))
        sizes = [min(DOWNLOAD_CHUNK, obj.size - o) for o in offsets]
        files.append(FileRanges(obj.uri, offsets, sizes, obj.size))
    stream = RangeStream(
        engine,
        files,
        DOWNLOAD_MEMORY,
        owned=False,
        refresh=refresh,
        checks=[obj.check for obj, _, _ in objects],
        writers=[writer for _, _, writer in objects],
    )
    for position, item, chunk in stream:
        os.pwrite(objects[position][1], chunk.numpy().data, files[position].offsets[item])
        done += files[position].sizes[item]
        if report is not None:
            report(done, total)


def _copy_entry(hit: CachedObject, handle: int) -> bool:
    """Copies a cache entry's data into ``handle``, computing its CRC as it goes: False (the
    entry dropped, one WARNING) unless it has the checksum the entry was verified with."""
    meta = hit.meta
    kind = CHECKABLE.get(meta.algorithm)
    crc, copied = 0, 0
    buffer = memoryview(bytearray(COPY_CHUNK))
    problem = ""
    try:
        source = open(hit.data, "rb", buffering=0)  # noqa: SIM115
    except OSError as error:
        problem = error.strerror or str(error)
    else:
        with source:
            while True:
                try:
                    count = source.readinto(buffer)
                except OSError as error:
                    problem = error.strerror or str(error)
                    break
                if not count:
                    break
                piece = buffer[:count]
                if kind is not None:
                    crc = checksum_combine(kind, crc, checksum(kind, piece), count)
                pwrite_all(handle, piece, copied)  # a full destination raises: not the entry's
                copied += count
    if not problem and copied != meta.size:
        problem = f"it has {copied} bytes, not {meta.size}"
    if not problem and (kind is None or crc != int(meta.checksum, 16)):
        problem = "its bytes changed since it was written"
    if not problem:
        return True
    os.ftruncate(handle, 0)
    logger.warning(
        "cache entry %s of %s is damaged (%s): dropped, the object is read from its store",
        hit.directory,
        meta.uri,
        problem,
    )
    hit.drop()
    return False
