"""Listing and downloading model files: list_safetensors, pull_files, ObjectStorageModel."""

from __future__ import annotations

import contextlib
import fnmatch
import functools
import logging
import os
import shutil
from collections.abc import Callable, Sequence
from types import TracebackType
from typing import IO, TYPE_CHECKING

from runai_model_streamer._backends import (
    register_backends,
    to_engine_path,
    uri_scheme,
)
from runai_model_streamer._cache import Cache, open_cache
from runai_model_streamer._download import DOWNLOAD_CHUNK, checked, download, engine_for
from runai_model_streamer._errors import StreamerFileNotFoundError, UnsafeObjectKeyError
from runai_model_streamer._native import Engine
from runai_model_streamer._safe_paths import (
    check_relative,
    destinations_under,
    open_temporary,
    unsafe_key,
    walk_local,
)

if TYPE_CHECKING:
    from runai_model_streamer._credentials import S3Credentials

__all__ = [
    "ObjectStorageModel",
    "UnsafeObjectKeyError",
    "list_files",
    "list_safetensors",
    "pull_files",
]

logger = logging.getLogger("runai_model_streamer")

SAFETENSORS_SUFFIX = ".safetensors"


def _as_prefix(uri: str) -> str:
    return uri if uri.endswith("/") else uri + "/"


def list_files(
    path: str | os.PathLike[str], s3_credentials: S3Credentials | None = None
) -> list[tuple[str, int]]:
    """``(path_or_uri, size)`` of the regular files directly under a directory or URI prefix,
    sorted by name (non-recursive)."""
    text = to_engine_path(path)
    if uri_scheme(text) is None:
        if not os.path.exists(text):
            raise StreamerFileNotFoundError(f"{text}: no such directory")
        if not os.path.isdir(text):
            raise NotADirectoryError(f"{text}: not a directory")
        entries = []
        with os.scandir(text) as iterator:
            for entry in iterator:
                if entry.is_file():
                    entries.append((os.path.join(text, entry.name), entry.stat().st_size))
        return sorted(entries)
    engine = engine_for([text], s3_credentials)
    try:
        return sorted(e for e in engine.list(_as_prefix(text)) if not e[0].endswith("/"))
    finally:
        engine.close()


#: how deep pull_files descends into sub-prefixes (a guard against a listing that loops)
MAX_PULL_DEPTH = 64


def _list_recursive(engine: Engine, prefix: str) -> list[tuple[str, int]]:
    """Every object under ``prefix``, descending into the sub-prefixes the backend reports."""
    objects: list[tuple[str, int]] = []
    level = [prefix]
    for _ in range(MAX_PULL_DEPTH):
        below: list[str] = []
        for current in level:
            for uri, size in engine.list(current):
                if not uri.endswith("/"):
                    objects.append((uri, size))
                elif uri.startswith(current) and uri != current:
                    below.append(uri)
        if not below:
            return sorted(objects)
        level = below
    raise RuntimeError(f"{prefix}: sub-prefixes nest deeper than {MAX_PULL_DEPTH} levels")


def list_safetensors(
    path: str | os.PathLike[str], s3_credentials: S3Credentials | None = None
) -> list[str]:
    """The ``*.safetensors`` files directly under a directory or URI prefix, sorted."""
    return [p for p, _ in list_files(path, s3_credentials) if p.endswith(SAFETENSORS_SUFFIX)]


def _selected(relative: str, allow: Sequence[str] | None, ignore: Sequence[str] | None) -> bool:
    if allow is not None and not any(fnmatch.fnmatch(relative, p) for p in allow):
        return False
    return not (ignore is not None and any(fnmatch.fnmatch(relative, p) for p in ignore))


def _patterns(value: Sequence[str] | str | None, name: str) -> list[str] | None:
    if value is None:
        return None
    if isinstance(value, str):
        return [value]
    patterns = list(value)
    for pattern in patterns:
        if not isinstance(pattern, str):
            raise TypeError(f"{name} must hold glob patterns (str), got {pattern!r}")
    return patterns


def pull_files(
    model_path: str | os.PathLike[str],
    dst: str | os.PathLike[str],
    allow_pattern: Sequence[str] | None = None,
    ignore_pattern: Sequence[str] | None = None,
    s3_credentials: S3Credentials | None = None,
    progress: Callable[[int, int], None] | None = None,
    cache_dir: str | os.PathLike[str] | None = None,
) -> None:
    """Copies the files of a model into the directory ``dst``.

    ``model_path`` is a local directory, copied recursively, or an object-storage URI that
    stands for a prefix (``s3://bucket/model`` and ``s3://bucket/model/`` alike), every object
    under it downloaded with concurrent ranged reads. ``allow_pattern`` / ``ignore_pattern``
    are fnmatch globs (one string or a list) matched against the path relative to
    ``model_path``: only files matching an allow pattern (all when None) and no ignore
    pattern are copied. ``s3_credentials`` as for streaming. ``progress(done, total)`` is
    called with bytes written so far.

    Every key maps to a path under ``dst`` or nothing is written: a key that is absolute, has
    an empty, ``.`` or ``..`` segment, a NUL or a backslash, or whose path would resolve outside
    ``dst`` (through a symbolic link inside it, say) raises :class:`UnsafeObjectKeyError`
    before any file is created. A prefix with no objects under it is a ``FileNotFoundError``.
    Files are written to temporary names and renamed when complete, each object after its
    checksum was verified (RUNAI_STREAMER_VERIFY; a mismatch raises and leaves no file).

    ``cache_dir`` (default RUNAI_STREAMER_CACHE_DIR; see the README's "Cache"): an object that
    has an entry there is copied from it (after its HEAD: a changed object is a miss), checked
    whole as it is copied; an object read from its store and verified is cached as it lands.
    """
    source = to_engine_path(model_path)
    target = os.fspath(dst)
    allow = _patterns(allow_pattern, "allow_pattern")
    ignore = _patterns(ignore_pattern, "ignore_pattern")
    if uri_scheme(source) is None:
        _pull_local(source, target, allow, ignore, progress)
    else:
        cache = open_cache(cache_dir)
        _pull_remote(source, target, allow, ignore, s3_credentials, progress, cache)


def _pull_local(
    source: str,
    target: str,
    allow: list[str] | None,
    ignore: list[str] | None,
    progress: Callable[[int, int], None] | None,
) -> None:
    if not os.path.isdir(source):
        if not os.path.exists(source):
            raise StreamerFileNotFoundError(f"{source}: no such directory")
        raise NotADirectoryError(f"{source}: not a directory")
    selected = [(f, r) for f, r in walk_local(source) if _selected(r, allow, ignore)]
    destinations = destinations_under(source, target, selected)
    os.makedirs(target, exist_ok=True)
    sizes = [os.path.getsize(f) for f, _ in selected]
    total, done = sum(sizes), 0
    for (full, _), destination, size in zip(selected, destinations, sizes, strict=True):
        handle, temporary = open_temporary(destination)
        try:
            with open(full, "rb") as reader, os.fdopen(handle, "wb") as writer:
                shutil.copyfileobj(reader, writer, DOWNLOAD_CHUNK)
            os.replace(temporary, destination)
        except BaseException:
            with contextlib.suppress(FileNotFoundError):
                os.unlink(temporary)
            raise
        done += size
        if progress is not None:
            progress(done, total)


def _pull_remote(
    source: str,
    target: str,
    allow: list[str] | None,
    ignore: list[str] | None,
    credentials: S3Credentials | None,
    progress: Callable[[int, int], None] | None,
    cache: Cache | None,
) -> None:
    prefix = _as_prefix(source)
    engine = engine_for([source], credentials)
    try:
        listed = _list_recursive(engine, prefix)
        if not listed:
            raise StreamerFileNotFoundError(f"{source}: no objects under this prefix")
        objects = []
        for uri, size in listed:
            if not uri.startswith(prefix):
                raise unsafe_key(source, uri, f"the listing returned it for the prefix {prefix}")
            relative = uri[len(prefix) :]
            if relative == "":  # the prefix's own directory marker
                continue
            check_relative(source, uri, relative)
            if _selected(relative, allow, ignore):
                objects.append((uri, relative, size))
        destinations = destinations_under(source, target, [(u, r) for u, r, _ in objects])
        found = checked(engine, [u for u, _, _ in objects])
        os.makedirs(target, exist_ok=True)
        refresh = functools.partial(register_backends, engine, [source], credentials)
        download(engine, refresh, found, destinations, progress, cache)
    finally:
        engine.close()


class ObjectStorageModel:
    """Downloads a model once into ``dst``, even when several processes ask at the same time.

    The constructor takes a lock (``fcntl.flock`` on ``dst + ".lock"``): processes wait while
    one downloads. If ``dst`` holds the completion marker ``.runai_complete``, ``pull_files``
    does nothing. On a clean exit from the ``with`` block the marker is written and the lock
    released; after an exception only the lock is released, so the next process retries.
    Locks are reliable between processes of one machine (not across machines over NFS).

    Example::

        with ObjectStorageModel(model_path="s3://bucket/model/", dst=cache_dir) as model:
            model.pull_files(ignore_pattern=["*.safetensors"])
        # model.dir holds the files
    """

    SENTINEL_NAME = ".runai_complete"

    def __init__(
        self,
        model_path: str | os.PathLike[str],
        dst: str | os.PathLike[str],
        s3_credentials: S3Credentials | None = None,
    ) -> None:
        import fcntl

        self._model_path = to_engine_path(model_path)
        self.dir = os.fspath(dst).rstrip("/") or "/"
        self._credentials = s3_credentials
        self._lock_path = self.dir + ".lock"
        self._sentinel = os.path.join(self.dir, self.SENTINEL_NAME)
        self._pulled = False
        parent = os.path.dirname(os.path.abspath(self.dir))
        os.makedirs(parent, exist_ok=True)
        self._lock_file: IO[str] | None = open(self._lock_path, "a")  # noqa: SIM115
        try:
            # Shared first: the common case (already downloaded) lets every process through.
            fcntl.flock(self._lock_file, fcntl.LOCK_SH)
            if os.path.exists(self._sentinel):
                self.skip = True
                return
            # Re-take exclusively (never upgrade in place: two upgraders would deadlock), then
            # check again: another process may have finished in between.
            fcntl.flock(self._lock_file, fcntl.LOCK_UN)
            fcntl.flock(self._lock_file, fcntl.LOCK_EX)
            if os.path.exists(self._sentinel):
                self.skip = True
                fcntl.flock(self._lock_file, fcntl.LOCK_SH)
                return
            self.skip = False
            if os.path.isdir(self.dir):
                shutil.rmtree(self.dir)  # a partial download from a failed attempt
            os.makedirs(self.dir, exist_ok=True)
        except BaseException:
            self._unlock()
            raise

    def pull_files(
        self,
        allow_pattern: Sequence[str] | None = None,
        ignore_pattern: Sequence[str] | None = None,
    ) -> None:
        """Pulls matching files into ``dir`` unless a previous process completed the model."""
        if self.skip:
            return
        pull_files(self._model_path, self.dir, allow_pattern, ignore_pattern, self._credentials)
        self._pulled = True

    def _unlock(self) -> None:
        import fcntl

        lock_file, self._lock_file = self._lock_file, None
        if lock_file is not None:
            try:
                fcntl.flock(lock_file, fcntl.LOCK_UN)
            finally:
                lock_file.close()

    def __enter__(self) -> ObjectStorageModel:
        return self

    def __exit__(
        self,
        exc_type: type[BaseException] | None,
        exc_value: BaseException | None,
        traceback: TracebackType | None,
    ) -> None:
        try:
            if exc_type is None and not self.skip:
                downloaded = [n for n in os.listdir(self.dir) if n != self.SENTINEL_NAME]
                if not downloaded:
                    raise RuntimeError(
                        f"no files were pulled from {self._model_path} into {self.dir}; "
                        "check the model path and patterns"
                    )
                with open(self._sentinel, "w"):
                    pass
        finally:
            self._unlock()

    def __del__(self) -> None:
        with contextlib.suppress(Exception):  # interpreter shutdown
            self._unlock()
