"""The local cache of objects (``RUNAI_STREAMER_CACHE_DIR``): objects streamed whole and
verified, kept on local disk so that a later load reads them at local speed.

Layout under the cache directory::

    entries/<uri digest>/<version digest>/data        the object's bytes
    entries/<uri digest>/<version digest>/meta.json   URI, version, size, checksum; its mtime
                                                      is the entry's last use (LRU)
    staging/<entry name>.<pid>.<token>/               an entry being written
    locks/<entry name>.lock                           flock of the entry

An entry is keyed by the URI, the store's version of the object (S3 ETag and VersionId, GCS
generation, Azure ETag) and its size: a changed object is a miss, never stale bytes. An entry
is written in its own staging directory and enters ``entries/`` by one rename, after its data
was synced: a crash, a kill or a full disk leaves at most a staging directory, which no reader
looks at (and ``prune`` removes). The entry's lock is held exclusively by its writer (so one
process writes an object; the others read it from the store meanwhile) and by an evictor, and
shared by every stream reading the entry; flock locks go with their holder's process, so a
killed holder never leaves an entry locked. Two writers that still race (a lock file replaced
under them) cannot both commit: the second rename finds the entry there and its copy is dropped.
"""

from __future__ import annotations

import contextlib
import fcntl
import json
import logging
import os
import secrets
import shutil
import time
from collections.abc import Iterator, Sequence
from dataclasses import dataclass
from pathlib import Path

from runai_model_streamer._cache_entry import (
    DATA,
    META,
    CacheKey,
    CacheWriter,
    EntryMeta,
    digest,
    mark_used,
    read_pieces,
    save_pieces,
)
from runai_model_streamer._settings import CACHE_DIR, CACHE_MAX_BYTES

logger = logging.getLogger("runai_model_streamer")

ENTRIES = "entries"
STAGING = "staging"
LOCKS = "locks"


@dataclass(frozen=True)
class EntryInfo:
    """One committed entry, as ``cache ls`` shows it."""

    meta: EntryMeta
    path: Path  # the entry's directory
    last_used: float


class CachedObject:
    """A committed entry opened for reading: its lock is held shared until :meth:`release`, so
    it is not evicted while a stream reads it."""

    def __init__(self, cache: Cache, meta: EntryMeta, directory: Path, lock_fd: int) -> None:
        self.cache = cache
        self.meta = meta
        self.directory = directory
        self.data = directory / DATA
        self._lock_fd: int | None = lock_fd
        #: some of its bytes failed their check: dropped when released (a stream still
        #: reads its other pieces)
        self.damaged = False
        self._pieces: dict[tuple[int, int], int] | None = None

    def pieces(self) -> dict[tuple[int, int], int]:
        """The CRC of each piece (offset, size) the entry was written from (read once)."""
        if self._pieces is None:
            self._pieces = read_pieces(self.directory)
        return self._pieces

    def learn(self, pieces: Sequence[tuple[int, int, int]]) -> None:
        """Keeps the CRCs of the ``(offset, size, CRC)`` pieces a stream read the entry in and
        verified it with, that it did not keep yet: a later stream that reads it in the same
        pieces (a group of another size, or a stream of an entry a pull wrote) checks each as
        it lands. Best effort: a cache that cannot be written keeps what it had."""
        known = self.pieces()
        new = [(o, s, c) for o, s, c in pieces if s and (o, s) not in known]
        if not new or self.damaged or self._lock_fd is None:
            return
        merged = [(o, s, c) for (o, s), c in known.items()] + new
        try:
            save_pieces(self.directory, merged)
        except OSError as error:
            logger.debug("%s: the pieces read were not kept: %s", self.directory, error)
            return
        self._pieces = {(o, s): c for o, s, c in merged}

    def release(self) -> None:
        if self._lock_fd is not None:
            os.close(self._lock_fd)  # drops the flock
            self._lock_fd = None
            if self.damaged:
                self.cache.remove(self.directory)

    def drop(self) -> None:
        """Removes the entry (its bytes failed their check): the next load misses."""
        self.release()
        self.cache.remove(self.directory)


class Cache:
    """The cache in ``root`` (created on first write), holding at most ``max_bytes`` (None:
    no limit)."""

    def __init__(self, root: str | os.PathLike[str], max_bytes: int | None = None) -> None:
        self.root = Path(root)
        self.max_bytes = max_bytes
        self._warned = False

    # ---- reading --------------------------------------------------------------------------

    def lookup(self, key: CacheKey) -> CachedObject | None:
        """The committed entry of ``key``, opened (None: a miss)."""
        return self._open(self._entry_dir(key), key)

    def lookup_offline(self, uri: str) -> CachedObject | None:
        """The newest committed entry of ``uri``, whatever its version (no store to ask)."""
        for directory, meta in self._versions(uri):
            found = self._open(directory, meta.key)
            if found is not None:
                return found
        return None

    def has_entry(self, uri: str) -> bool:
        """Whether ``uri`` has a committed entry, whatever its version (nothing is opened)."""
        return bool(self._versions(uri))

    def _versions(self, uri: str) -> list[tuple[Path, EntryMeta]]:
        """The committed entries of ``uri``, newest first."""
        found = []
        for directory in _subdirs(self.root / ENTRIES / digest(uri)):
            meta = _read_meta(directory)
            if meta is not None and meta.uri == uri:
                found.append((directory, meta))
        return sorted(found, key=lambda entry: entry[1].committed, reverse=True)

    def _open(self, directory: Path, key: CacheKey) -> CachedObject | None:
        lock_fd = self._lock(key, fcntl.LOCK_SH)
        if lock_fd is None:  # being evicted (or no lock can be made: no entry either)
            return None
        meta = _read_meta(directory)
        problem = None
        if meta is None:
            problem = "" if not directory.exists() else "its meta.json is unreadable"
        elif meta.key != key:
            problem = f"its meta.json is of another object ({meta.uri}, {meta.version})"
        else:
            try:
                size = (directory / DATA).stat().st_size
            except OSError as error:
                problem = f"its data cannot be read ({error.strerror})"
            else:
                if size != meta.size:
                    problem = f"its data has {size} bytes, not {meta.size}"
        if problem is not None or meta is None:
            os.close(lock_fd)
            if problem:
                logger.warning(
                    "cache entry %s of %s is damaged (%s): dropped, the object is read from "
                    "its store",
                    directory,
                    key.uri,
                    problem,
                )
                self.remove(directory)
            return None
        with contextlib.suppress(OSError):
            mark_used(directory / META)
        return CachedObject(self, meta, directory, lock_fd)

    # ---- writing --------------------------------------------------------------------------

    def writer(self, key: CacheKey) -> CacheWriter | None:
        """A writer of the entry of ``key``, or None: another process writes it, it is there,
        it is larger than the cache may hold, or the cache cannot be written (one WARNING). The
        checksum the entry is checked against is given when it is committed."""

        if self.max_bytes is not None and key.size > self.max_bytes:
            logger.debug("%s: %d bytes, more than the cache holds", key.uri, key.size)
            return None
        try:
            for name in (ENTRIES, STAGING, LOCKS):
                (self.root / name).mkdir(parents=True, exist_ok=True)
        except OSError as error:
            self.warn(f"cannot create {error.filename}: {error.strerror}")
            return None
        try:
            lock_fd = self._lock(key, fcntl.LOCK_EX)
        except OSError as error:
            self.warn(f"cannot create {error.filename}: {error.strerror}")
            return None
        if lock_fd is None:  # another process writes it
            return None
        entry = self._entry_dir(key)
        if (entry / META).exists():
            os.close(lock_fd)
            return None
        staging = self.root / STAGING / f"{key.name}.{os.getpid()}.{secrets.token_hex(4)}"
        try:
            staging.mkdir()
            fd = os.open(staging / DATA, os.O_WRONLY | os.O_CREAT | os.O_EXCL | os.O_CLOEXEC, 0o644)
        except OSError as error:
            os.close(lock_fd)
            shutil.rmtree(staging, ignore_errors=True)
            self.warn(f"cannot write {staging}: {error.strerror}")
            return None
        meta = EntryMeta(key.uri, key.version, key.size, "", "", 0.0)
        return CacheWriter(meta, staging, entry, fd, lock_fd, self.warn, self.prune)

    def warn(self, why: str) -> None:
        """One WARNING per cache object: the loads go on from the store."""
        if not self._warned:
            self._warned = True
            logger.warning(
                "the cache in %s is not used for writing (%s); objects are read from their stores",
                self.root,
                why,
            )

    # ---- listing and cleaning -------------------------------------------------------------

    def entries(self) -> list[EntryInfo]:
        """Every committed entry, least recently used first."""
        found = []
        for uri_dir in _subdirs(self.root / ENTRIES):
            for directory in _subdirs(uri_dir):
                meta = _read_meta(directory)
                if meta is None:
                    continue
                try:
                    used = (directory / META).stat().st_mtime
                except OSError:
                    continue
                found.append(EntryInfo(meta, directory, used))
        return sorted(found, key=lambda e: e.last_used)

    def prune(self, max_bytes: int | None = None) -> list[EntryInfo]:
        """Evicts least recently used entries until at most ``max_bytes`` (default: the
        cache's limit; 0 empties it) are held, never an entry in use; removes what dead
        writers left. Returns what was evicted."""
        limit = self.max_bytes if max_bytes is None else max_bytes
        self._remove_dead_staging()
        if limit is None:
            return []
        entries = self.entries()
        held = sum(e.meta.size for e in entries)
        evicted = []
        for entry in entries:
            if held <= limit:
                break
            try:
                lock_fd = self._lock(entry.meta.key, fcntl.LOCK_EX)
            except OSError:  # a read-only cache
                continue
            if lock_fd is None:  # in use
                continue
            try:
                self.remove(entry.path)
            finally:
                os.close(lock_fd)
            held -= entry.meta.size
            evicted.append(entry)
        for entry in evicted:
            logger.info("cache: evicted %s (%d bytes)", entry.meta.uri, entry.meta.size)
        return evicted

    def remove(self, directory: Path) -> None:
        """Takes an entry out of ``entries/`` in one rename, then deletes it."""
        trash = self.root / STAGING / f"removed.{secrets.token_hex(8)}"
        try:
            (self.root / STAGING).mkdir(parents=True, exist_ok=True)
            os.rename(directory, trash)
        except OSError:
            trash = directory
        shutil.rmtree(trash, ignore_errors=True)
        with contextlib.suppress(OSError):
            directory.parent.rmdir()  # the URI's directory, when it was its last version

    def _remove_dead_staging(self) -> None:
        for directory in _subdirs(self.root / STAGING):
            name = directory.name
            if not name.startswith("removed."):
                entry_name = name.split(".")[0] + "." + name.split(".")[1]
                try:
                    lock_fd = self._lock_named(entry_name, fcntl.LOCK_EX)
                except OSError:  # a read-only cache
                    continue
                if lock_fd is None:  # its writer is alive
                    continue
                os.close(lock_fd)
            shutil.rmtree(directory, ignore_errors=True)

    # ---- locks ----------------------------------------------------------------------------

    def _entry_dir(self, key: CacheKey) -> Path:
        uri_part, version_part = key.parts
        return self.root / ENTRIES / uri_part / version_part

    def _lock(self, key: CacheKey, mode: int) -> int | None:
        return self._lock_named(key.name, mode)

    def _lock_named(self, name: str, mode: int) -> int | None:
        """An fd holding the flock of entry ``name`` (``mode``: LOCK_SH or LOCK_EX), or None
        when another process holds it incompatibly. A lock file that cannot be made raises
        OSError for LOCK_EX; for LOCK_SH (a read-only cache, which nothing can evict from)
        the reader goes without a lock."""
        path = self.root / LOCKS / f"{name}.lock"
        try:
            fd = os.open(path, os.O_RDWR | os.O_CREAT | os.O_CLOEXEC, 0o644)
        except OSError:
            if mode == fcntl.LOCK_SH:
                try:
                    return os.open(self.root, os.O_RDONLY | os.O_CLOEXEC)
                except OSError:
                    return None
            raise
        try:
            fcntl.flock(fd, mode | fcntl.LOCK_NB)
        except OSError:
            os.close(fd)
            return None
        return fd


def open_cache(directory: str | os.PathLike[str] | None = None) -> Cache | None:
    """The cache in ``directory``, else in RUNAI_STREAMER_CACHE_DIR (limited by
    RUNAI_STREAMER_CACHE_MAX_BYTES); None when neither names one."""
    root = os.fspath(directory) if directory is not None else CACHE_DIR.read()
    if not root:
        return None
    return Cache(root, CACHE_MAX_BYTES.read())


def cache_command(action: str, directory: str | None, max_bytes: int | None) -> list[str]:
    """What ``runai-model-streamer cache ls|du|prune`` prints (ValueError: nothing to do)."""
    from runai_model_streamer._common import format_bytes

    cache = open_cache(directory)
    if cache is None:
        raise ValueError("no cache: give --cache-dir or set RUNAI_STREAMER_CACHE_DIR")
    if action == "ls":
        lines = []
        for entry in cache.entries():
            used = time.strftime("%Y-%m-%d %H:%M:%S", time.localtime(entry.last_used))
            meta = entry.meta
            lines.append(f"{meta.size:>14} {used} {meta.algorithm}={meta.checksum} {meta.uri}")
        return lines
    if action == "du":
        entries = cache.entries()
        held = sum(e.meta.size for e in entries)
        cap = cache.max_bytes
        limit = "no limit" if cap is None else f"limit {format_bytes(cap)}"
        return [
            f"{held} bytes ({format_bytes(held)}) in {len(entries)} entries, {limit}: {cache.root}"
        ]
    down_to = max_bytes if max_bytes is not None else cache.max_bytes
    if down_to is None:
        raise ValueError("prune: give --max-bytes or set RUNAI_STREAMER_CACHE_MAX_BYTES")
    evicted = cache.prune(down_to)
    freed = sum(e.meta.size for e in evicted)
    return [f"evicted {len(evicted)} entries, {freed} bytes ({format_bytes(freed)})"]


def _subdirs(directory: Path) -> Iterator[Path]:
    try:
        with os.scandir(directory) as found:
            for entry in found:
                if entry.is_dir(follow_symlinks=False):
                    yield Path(entry.path)
    except OSError:
        return


def _read_meta(directory: Path) -> EntryMeta | None:
    try:
        fields = json.loads((directory / META).read_text())
        return EntryMeta(**fields)
    except (OSError, ValueError, TypeError):
        return None
