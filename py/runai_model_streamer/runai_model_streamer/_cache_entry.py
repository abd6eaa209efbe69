"""One entry of the local cache (:mod:`runai_model_streamer._cache`): its key, what its
``meta.json`` holds, the CRC of each piece it was written from (``pieces``: a hit checks each
piece as it lands, before it is handed out), and its writing from the bytes of a stream as they
land (in its staging directory, synced, then made visible by one rename)."""

from __future__ import annotations

import contextlib
import errno
import hashlib
import json
import logging
import mmap
import os
import secrets
import shutil
import time
import weakref
from collections.abc import Callable, Mapping, Sequence
from concurrent.futures import Future, ThreadPoolExecutor
from dataclasses import asdict, dataclass
from pathlib import Path

import numpy as np

from runai_model_streamer._native import checksum, checksum_combine

logger = logging.getLogger("runai_model_streamer")

DATA = "data"
META = "meta.json"
#: (offset, size, CRC) of every piece the entry was written from, little-endian uint64s
PIECES = "pieces"
#: O_DIRECT writes: block alignment, the least worth it, and the bounce buffer's size
DIRECT_BLOCK = 4096
DIRECT_MIN_BYTES = 64 << 10
BOUNCE_BYTES = 8 << 20


def digest(text: str) -> str:
    return hashlib.sha256(text.encode()).hexdigest()[:32]


@dataclass(frozen=True)
class CacheKey:
    """What makes two reads of an object the same bytes."""

    uri: str
    version: str
    size: int

    @classmethod
    def of(cls, uri: str, version: Mapping[str, str], size: int) -> CacheKey | None:
        """The key of an object whose store gives ``version`` of it; None when it gives none
        (a changed object could not be told from the cached one)."""
        if not version:
            return None
        return cls(uri, ",".join(f"{k}={v}" for k, v in sorted(version.items())), size)

    @property
    def parts(self) -> tuple[str, str]:
        return digest(self.uri), digest(f"{self.version}\0{self.size}")

    @property
    def name(self) -> str:
        return ".".join(self.parts)


@dataclass(frozen=True)
class EntryMeta:
    """What ``meta.json`` holds: the key and the checksum the object was verified against."""

    uri: str
    version: str
    size: int
    algorithm: str
    checksum: str  # hex, as the store gave it
    committed: float  # time.time() of the commit

    @property
    def key(self) -> CacheKey:
        return CacheKey(self.uri, self.version, self.size)


class CacheWriter:
    """Writes one entry from the bytes of a stream as they land (:meth:`write`, any order),
    and commits it once the object was verified (:meth:`commit`); :meth:`abort` leaves
    nothing. The work is done by a thread of its own, in order, so the stream waits neither
    for the disk nor for the sync; the interpreter lets it finish at exit. A write whose bytes
    are no longer those verified (a tensor changed in place meanwhile) or that fails (a full
    disk...) aborts the entry (the latter with one WARNING), and the stream goes on."""

    def __init__(
        self,
        meta: EntryMeta,
        staging: Path,
        entry: Path,
        fd: int,
        lock_fd: int,
        warn: Callable[[str], None],
        committed: Callable[[], object],
    ) -> None:
        """``warn``: says once why the cache is not written; ``committed``: called after a
        commit (the cache evicts what exceeds its limit)."""
        self._warn = warn
        self._committed = committed
        self.meta = meta
        self._staging = staging
        self._entry = entry
        self._fd: int | None = fd
        self._lock_fd: int | None = lock_fd
        self._written = 0
        self._direct = _open_direct(staging / DATA)  # None where O_DIRECT is not offered
        self._bounce: mmap.mmap | None = None  # for blocks not congruent to the file
        self._worker = ThreadPoolExecutor(1, thread_name_prefix="runai-cache-writer")
        self._closed = False  # commit or abort was asked (no more writes)
        self._pieces: list[tuple[int, int, int]] = []
        #: (offset, size, CRC) of what :meth:`write_pieces` wrote, and the CRC's kind
        self._recorded: list[tuple[int, int, int]] = []
        self._recorded_kind = 0
        #: called with the committed entry's data file (a plugin that shares it: hf://)
        self.after_commit: Callable[[Path], None] | None = None
        _WRITERS.add(self)

    def write(
        self, offset: int, data: memoryview | bytes, crc: int | None = None, kind: int = 0
    ) -> Future[None] | None:
        """Writes ``data`` at ``offset`` (in the background: the memory must stay valid until
        the returned future is done); ``crc`` (of checksum ``kind``): what the bytes were
        verified as, checked again after the write."""
        if self._closed:
            return None
        return self._worker.submit(self._write, offset, memoryview(data).cast("B"), crc, kind)

    def write_pieces(
        self, data: memoryview | bytes, pieces: Sequence[tuple[int, int, int]], kind: int
    ) -> Future[None] | None:
        """Writes pieces of ``data``, each ``(offset in the object, start in data, size)``, and
        records the CRC (of checksum ``kind``) of each as it was written. For a writer not
        given each piece's verified CRC (a shared stream, whose ranks checksummed other
        pieces): the entry keeps the recorded CRCs too, and is committed only if they combine
        into the checksum it is committed with, so bytes changed after they were verified (a
        tensor modified in place meanwhile) never enter the cache."""
        if self._closed:
            return None
        self._recorded_kind = kind
        view = memoryview(data).cast("B")
        return self._worker.submit(self._write_pieces, view, list(pieces), kind)

    def commit(
        self, checksum: tuple[str, str], pieces: Sequence[tuple[int, int, int]] = ()
    ) -> None:
        """Syncs the data and makes the entry visible (one rename), after the writes;
        ``checksum``: (algorithm, hex) the entry is checked against when read (the store's CRC,
        or the CRC32C of the bytes of an object verified by a digest); ``pieces``: (offset,
        size, CRC of that algorithm) of the pieces the object was read in, kept beside the
        data."""
        self._pieces = list(pieces)
        algorithm, value = checksum
        self.meta = EntryMeta(**{**asdict(self.meta), "algorithm": algorithm, "checksum": value})
        self._finish(self._commit)

    def abort(self) -> None:
        self._finish(self._abort)

    def wait(self) -> None:
        """Until the writes and the commit or abort are done."""
        self._worker.shutdown(wait=True)

    def _finish(self, last: Callable[[], None]) -> None:
        if not self._closed:
            self._closed = True
            self._worker.submit(last)
            self._worker.shutdown(wait=False)

    def _write(self, offset: int, view: memoryview, crc: int | None, kind: int) -> None:
        if self._fd is None:
            return
        start, size = offset, len(view)
        try:
            self._write_at(self._fd, offset, view)
        except OSError as error:
            self._warn(f"writing {self._staging / DATA}: {error.strerror}")
            self._abort()
            return
        self._written += size
        if crc is not None and checksum(kind, view) != crc:
            logger.info(
                "%s: not cached: bytes %d..%d changed after they were verified (a tensor "
                "modified in place?)",
                self.meta.uri,
                start,
                start + size,
            )
            self._abort()

    def _write_pieces(
        self, view: memoryview, pieces: list[tuple[int, int, int]], kind: int
    ) -> None:
        for offset, start, size in pieces:
            piece = view[start : start + size]
            self._write(offset, piece, None, kind)
            if self._fd is None:  # aborted
                return
            self._recorded.append((offset, size, checksum(kind, piece)))

    def _write_at(self, fd: int, offset: int, view: memoryview) -> None:
        """Writes the whole view at offset: its 4 KiB blocks with O_DIRECT (no copy into the
        page cache, no writeback to do later: on the development VM the page cache costs 2.5
        CPU s/GB, O_DIRECT 0.04), straight from the memory where it is congruent to the file,
        else copied through an aligned bounce buffer first; the partial blocks at its ends
        through the page cache."""
        head = -offset % DIRECT_BLOCK
        body = (len(view) - head) // DIRECT_BLOCK * DIRECT_BLOCK
        if self._direct is None or body < DIRECT_MIN_BYTES:
            pwrite_all(fd, view, offset)
            return
        pwrite_all(fd, view[:head], offset)
        blocks = view[head : head + body]
        try:
            if (np.frombuffer(view, dtype=np.uint8).ctypes.data + head) % DIRECT_BLOCK == 0:
                pwrite_all(self._direct, blocks, offset + head)
            else:
                self._write_bounced(blocks, offset + head)
        except OSError as error:
            if error.errno != errno.EINVAL:
                raise
            self._close_direct()  # the filesystem refuses it after all
            pwrite_all(fd, blocks, offset + head)
        pwrite_all(fd, view[head + body :], offset + head + body)

    def _write_bounced(self, blocks: memoryview, offset: int) -> None:
        assert self._direct is not None
        if self._bounce is None:
            self._bounce = mmap.mmap(-1, BOUNCE_BYTES)  # page-aligned
        with memoryview(self._bounce) as bounce:
            for start in range(0, len(blocks), BOUNCE_BYTES):
                piece = blocks[start : start + BOUNCE_BYTES]
                bounce[: len(piece)] = piece
                pwrite_all(self._direct, bounce[: len(piece)], offset + start)

    def _commit(self) -> None:
        if self._fd is None:
            return
        if self._written != self.meta.size:
            logger.debug("%s: %d of %d bytes written", self.meta.uri, self._written, self.meta.size)
            self._abort()
            return
        if self._recorded and _combined(self._recorded, self._recorded_kind) != int(
            self.meta.checksum, 16
        ):
            logger.info(
                "%s: not cached: the bytes written are not those verified (a tensor modified "
                "in place before it was written?)",
                self.meta.uri,
            )
            self._abort()
            return
        self._pieces = sorted(set(self._pieces) | set(self._recorded))
        meta = EntryMeta(**{**asdict(self.meta), "committed": time.time()})
        self._close_direct()
        try:
            os.fsync(self._fd)
            os.close(self._fd)
            self._fd = None
            if self._pieces:
                save_pieces(self._staging, self._pieces)
            (self._staging / META).write_text(json.dumps(asdict(meta)))
            mark_used(self._staging / META)
            _fsync_path(self._staging / META)
            _fsync_path(self._staging)
            self._entry.parent.mkdir(parents=True, exist_ok=True)
            try:
                os.rename(self._staging, self._entry)
            except OSError as error:
                if error.errno not in (errno.EEXIST, errno.ENOTEMPTY):
                    raise
                logger.debug("%s: committed by another writer first", self.meta.uri)
                shutil.rmtree(self._staging, ignore_errors=True)
            _fsync_path(self._entry.parent)
        except OSError as error:
            self._warn(f"committing {self._staging}: {error.strerror}")
            self._abort()
            return
        self._release()
        self._committed()
        if self.after_commit is not None:
            try:
                self.after_commit(self._entry / DATA)
            except Exception as error:  # the entry is committed; sharing it is a bonus
                logger.warning("%s: sharing its cache entry failed: %s", self.meta.uri, error)

    def _abort(self) -> None:
        self._close_direct()
        if self._fd is not None:
            os.close(self._fd)
            self._fd = None
        shutil.rmtree(self._staging, ignore_errors=True)
        self._release()

    def _close_direct(self) -> None:
        if self._direct is not None:
            os.close(self._direct)
            self._direct = None
        if self._bounce is not None:
            self._bounce.close()
            self._bounce = None

    def _release(self) -> None:
        if self._lock_fd is not None:
            os.close(self._lock_fd)
            self._lock_fd = None


def _open_direct(path: Path) -> int | None:
    flag = getattr(os, "O_DIRECT", 0)
    if not flag:
        return None
    try:
        return os.open(path, os.O_WRONLY | flag | os.O_CLOEXEC)
    except OSError:  # tmpfs and others: through the page cache
        return None


def pwrite_all(fd: int, view: memoryview, offset: int) -> None:
    """Writes all of ``view`` at ``offset`` (pwrite may write less than asked)."""
    while view:
        done = os.pwrite(fd, view, offset)
        view = view[done:]
        offset += done


def _combined(pieces: Sequence[tuple[int, int, int]], kind: int) -> int | None:
    """The CRC of the bytes that ``(offset, size, CRC)`` pieces tile from offset 0 (None:
    they leave a gap or overlap)."""
    crc, cursor = 0, 0
    for offset, size, piece in sorted(set(pieces)):
        if offset != cursor:
            return None
        crc = checksum_combine(kind, crc, piece, size)
        cursor += size
    return crc


def save_pieces(directory: Path, pieces: Sequence[tuple[int, int, int]]) -> None:
    """Writes an entry's ``pieces`` (synced, then renamed over the old list: a reader sees one
    list or the other, each of CRCs of the verified bytes)."""
    temporary = directory / f"{PIECES}.{os.getpid()}.{secrets.token_hex(4)}"
    try:
        np.asarray(pieces, dtype="<u8").tofile(temporary)
        _fsync_path(temporary)
        os.replace(temporary, directory / PIECES)
    except BaseException:
        with contextlib.suppress(OSError):
            os.unlink(temporary)
        raise


def read_pieces(directory: Path) -> dict[tuple[int, int], int]:
    """The CRC of each piece (offset, size) an entry was written from; {} for an entry that
    keeps none (or whose list cannot be read: its pieces are then checked with the whole)."""
    try:
        raw = np.fromfile(directory / PIECES, dtype="<u8")
    except (OSError, ValueError):
        return {}
    if raw.size % 3:
        return {}
    triples = raw.reshape(-1, 3).tolist()
    return {(offset, size): crc for offset, size, crc in triples}


#: the writers not yet collected (wait_for_writers)
_WRITERS: weakref.WeakSet[CacheWriter] = weakref.WeakSet()


def mark_used(meta_path: Path) -> None:
    """Stamps an entry's last use (the mtime of its meta.json) with the clock's full
    resolution: the file system's own stamp is only as fine as a kernel tick, so two uses a
    few milliseconds apart could tie and evict the wrong entry."""
    now = time.time_ns()
    os.utime(meta_path, ns=(now, now))


def wait_for_writers() -> None:
    """Until every cache writer of this process has committed or aborted its entry."""
    for writer in list(_WRITERS):
        writer.wait()


def _fsync_path(path: Path) -> None:
    fd = os.open(path, os.O_RDONLY | os.O_CLOEXEC)
    try:
        os.fsync(fd)
    finally:
        os.close(fd)
