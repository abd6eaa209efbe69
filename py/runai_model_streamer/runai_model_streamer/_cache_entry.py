"""One entry of the local cache (:mod:`runai_model_streamer._cache`): its key, what its
``meta.json`` holds, and its writing from the bytes of a stream as they land (in its staging
directory, synced, then made visible by one rename)."""

from __future__ import annotations

import errno
import hashlib
import json
import logging
import os
import shutil
import time
from collections.abc import Callable
from dataclasses import asdict, dataclass
from pathlib import Path

logger = logging.getLogger("runai_model_streamer")

DATA = "data"
META = "meta.json"


def digest(text: str) -> str:
    return hashlib.sha256(text.encode()).hexdigest()[:32]


@dataclass(frozen=True)
class CacheKey:
    """What makes two reads of an object the same bytes."""

    uri: str
    version: str
    size: int

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
    nothing. A write that fails (a full disk...) aborts the entry with one WARNING and the
    stream goes on."""

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

    @property
    def active(self) -> bool:
        return self._fd is not None

    def write(self, offset: int, data: memoryview | bytes) -> None:
        if self._fd is None:
            return
        view = memoryview(data).cast("B")
        try:
            while view:
                done = os.pwrite(self._fd, view, offset)
                view = view[done:]
                offset += done
                self._written += done
        except OSError as error:
            self._warn(f"writing {self._staging / DATA}: {error.strerror}")
            self.abort()

    def commit(self) -> bool:
        """Syncs the data and makes the entry visible (one rename); True if it is there."""
        if self._fd is None:
            return False
        if self._written != self.meta.size:
            logger.debug("%s: %d of %d bytes written", self.meta.uri, self._written, self.meta.size)
            self.abort()
            return False
        meta = EntryMeta(**{**asdict(self.meta), "committed": time.time()})
        try:
            os.fsync(self._fd)
            os.close(self._fd)
            self._fd = None
            (self._staging / META).write_text(json.dumps(asdict(meta)))
            _fsync_path(self._staging / META)
            _fsync_path(self._staging)
            self._entry.parent.mkdir(parents=True, exist_ok=True)
            try:
                os.rename(self._staging, self._entry)
            except OSError as error:
                if error.errno not in (errno.EEXIST, errno.ENOTEMPTY):
                    raise
                logger.debug("%s: committed by another writer first", self.meta.uri)
            _fsync_path(self._entry.parent)
        except OSError as error:
            self._warn(f"committing {self._staging}: {error.strerror}")
            self.abort()
            return False
        self._release()
        self._committed()
        return True

    def abort(self) -> None:
        if self._fd is not None:
            os.close(self._fd)
            self._fd = None
        shutil.rmtree(self._staging, ignore_errors=True)
        self._release()

    def _release(self) -> None:
        if self._lock_fd is not None:
            os.close(self._lock_fd)
            self._lock_fd = None


def _fsync_path(path: Path) -> None:
    fd = os.open(path, os.O_RDONLY | os.O_CLOEXEC)
    try:
        os.fsync(fd)
    finally:
        os.close(fd)
