"""Finding, loading and calling the native library ``libstreamer`` (ctypes).

Where the library is looked for, in order:

1. ``$STREAMER_LIBRARY`` when set: the path of the library file (or of a directory holding it).
   Nothing else is tried then.
2. The package directory of ``runai_model_streamer`` (found with :mod:`importlib.resources`, so
   editable installs work too) and its ``lib/`` subdirectory, with the platform's file name
   (``libstreamer.so`` on Linux and other POSIX systems, ``libstreamer.dylib`` on macOS).

The library is loaded lazily, on first use, so importing the package never fails when the library
is missing (``runai-model-streamer info`` reports the problem instead). A failure raises
:class:`StreamerLibraryError` listing every path tried and the reason each was rejected.
"""

from __future__ import annotations

import contextlib
import ctypes
import importlib.resources
import os
import platform
import threading
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np

from runai_model_streamer._errors import (
    BackendError,
    BackendNotInstalledError,
    RunaiStreamerError,
    StreamCancelledError,
    StreamerConfigError,
    StreamerFileNotFoundError,
    StreamerIOError,
    StreamerLibraryError,
    StreamerPermissionError,
)
from runai_model_streamer._variables import check_environment

LIBRARY_ENV_VAR = "STREAMER_LIBRARY"
API_VERSION = 1
_PACKAGE = "runai_model_streamer"

# ---- status codes (streamer.h) -------------------------------------------------------------

OK = 0
E_INVALID_ARGUMENT = 1
E_CONFIG = 2
E_NOT_FOUND = 3
E_PERMISSION = 4
E_NOT_A_FILE = 5
E_EOF = 6
E_IO = 7
E_BACKEND = 8
E_UNSUPPORTED_SCHEME = 9
E_PLUGIN = 10
E_CANCELLED = 11
E_TIMEOUT = 12
E_IDLE = 13
E_UNKNOWN_REQUEST = 14
E_NO_MEMORY = 15
E_INTERNAL = 16


def status_name(status: int) -> str:
    """The library's name for a status code ("RUNAI_E_EOF"...): one table, in the C library."""
    raw = library().cdll.runai_streamer_status_name(status)
    return raw.decode("ascii", "replace") if raw else f"status {status}"


def error_for_status(status: int, message: str) -> Exception:
    """The exception matching a libstreamer status code, carrying the library's message."""
    text = message or status_name(status)
    if status == E_NOT_FOUND:
        return StreamerFileNotFoundError(text)
    if status == E_PERMISSION:
        return StreamerPermissionError(text)
    if status in (E_CONFIG, E_INVALID_ARGUMENT):
        return StreamerConfigError(text)
    if status == E_UNSUPPORTED_SCHEME:
        return BackendNotInstalledError(text)
    if status == E_PLUGIN:
        return BackendError(text)
    if status == E_CANCELLED:
        return StreamCancelledError(text)
    if status == E_NO_MEMORY:
        return MemoryError(text)
    if status in (E_NOT_A_FILE, E_EOF, E_IO, E_BACKEND):
        return StreamerIOError(text)
    return RunaiStreamerError(f"{status_name(status)}: {text}")


# ---- finding the library (pure functions, unit-tested for every platform) -----------------


def library_filename(system: str | None = None) -> str:
    """File name of libstreamer on ``system`` (a ``platform.system()`` value)."""
    system = platform.system() if system is None else system
    if system == "Darwin":
        return "libstreamer.dylib"
    if system == "Windows":
        return "streamer.dll"
    return "libstreamer.so"


def package_directories() -> list[Path]:
    """Directories of the installed ``runai_model_streamer`` package (importlib.resources).

    A regular install has one. An editable install (scikit-build-core) has two: the one in
    site-packages holding the built library, and the source directory holding the modules.
    """
    try:
        root = importlib.resources.files(_PACKAGE)
    except (ModuleNotFoundError, TypeError):  # pragma: no cover - the package is importing us
        return []
    if isinstance(root, Path):
        return [root]
    paths = getattr(root, "_paths", None)  # MultiplexedPath (namespace or editable layouts)
    if paths:
        return [Path(str(p)) for p in paths]
    return [Path(str(root))]


def package_directory() -> Path | None:
    """The first of :func:`package_directories` (None when unknown)."""
    directories = package_directories()
    return directories[0] if directories else None


def candidate_paths(
    env: Mapping[str, str] | None = None,
    package_dir: Path | None = None,
    system: str | None = None,
) -> list[Path]:
    """Every path at which libstreamer is looked for, in order (see the module docstring)."""
    env = os.environ if env is None else env
    name = library_filename(system)
    override = env.get(LIBRARY_ENV_VAR, "")
    if override:
        path = Path(override).expanduser()
        if path.is_dir():
            path = path / name
        return [path]
    directories = package_directories() if package_dir is None else [package_dir]
    return [path for d in directories for path in (d / name, d / "lib" / name)]


# ---- ctypes declarations of streamer.h ------------------------------------------------------


class _Config(ctypes.Structure):
    _fields_ = [
        ("concurrency", ctypes.c_int32),
        ("chunk_bytesize", ctypes.c_int64),
        ("backend_timeout_ms", ctypes.c_int64),
    ]


class _Range(ctypes.Structure):
    _fields_ = [
        ("offset", ctypes.c_uint64),
        ("size", ctypes.c_uint64),
        ("dst", ctypes.c_void_p),
    ]


class _FileRequest(ctypes.Structure):
    _fields_ = [
        ("path", ctypes.c_char_p),
        ("ranges", ctypes.POINTER(_Range)),
        ("num_ranges", ctypes.c_size_t),
    ]


class _Completion(ctypes.Structure):
    _fields_ = [
        ("request_id", ctypes.c_uint64),
        ("file_index", ctypes.c_uint32),
        ("range_index", ctypes.c_uint32),
        ("status", ctypes.c_int32),
        ("message", ctypes.c_void_p),
    ]


_LIST_ENTRY_FN = ctypes.CFUNCTYPE(ctypes.c_int, ctypes.c_char_p, ctypes.c_uint64, ctypes.c_void_p)
_PTR_FORMAT = "=u8" if ctypes.sizeof(ctypes.c_void_p) == 8 else "=u4"

#: numpy view of ``runai_range_t`` so range arrays are filled without per-element ctypes calls.
RANGE_DTYPE = np.dtype(
    {
        "names": ["offset", "size", "dst"],
        "formats": ["=u8", "=u8", _PTR_FORMAT],
        "offsets": [_Range.offset.offset, _Range.size.offset, _Range.dst.offset],
        "itemsize": ctypes.sizeof(_Range),
    }
)
#: numpy view of ``runai_completion_t``.
COMPLETION_DTYPE = np.dtype(
    {
        "names": ["request_id", "file_index", "range_index", "status", "message"],
        "formats": ["=u8", "=u4", "=u4", "=i4", _PTR_FORMAT],
        "offsets": [
            _Completion.request_id.offset,
            _Completion.file_index.offset,
            _Completion.range_index.offset,
            _Completion.status.offset,
            _Completion.message.offset,
        ],
        "itemsize": ctypes.sizeof(_Completion),
    }
)

_c_int = ctypes.c_int
_SIGNATURES: dict[str, tuple[Any, list[Any]]] = {
    "runai_streamer_version": (ctypes.c_char_p, []),
    "runai_streamer_api_version": (_c_int, []),
    "runai_streamer_status_name": (ctypes.c_char_p, [_c_int]),
    "runai_streamer_last_error": (ctypes.c_char_p, []),
    "runai_streamer_config_default": (_c_int, [ctypes.POINTER(_Config)]),
    "runai_streamer_create": (_c_int, [ctypes.POINTER(_Config), ctypes.POINTER(ctypes.c_void_p)]),
    "runai_streamer_destroy": (None, [ctypes.c_void_p]),
    "runai_streamer_register_backend": (
        _c_int,
        [
            ctypes.c_void_p,
            ctypes.c_char_p,
            ctypes.c_char_p,
            ctypes.POINTER(ctypes.c_char_p),
            ctypes.POINTER(ctypes.c_char_p),
            ctypes.c_size_t,
        ],
    ),
    "runai_streamer_file_size": (
        _c_int,
        [ctypes.c_void_p, ctypes.c_char_p, ctypes.POINTER(ctypes.c_uint64)],
    ),
    "runai_streamer_list": (
        _c_int,
        [ctypes.c_void_p, ctypes.c_char_p, _LIST_ENTRY_FN, ctypes.c_void_p],
    ),
    "runai_streamer_submit": (
        _c_int,
        [
            ctypes.c_void_p,
            ctypes.POINTER(_FileRequest),
            ctypes.c_size_t,
            ctypes.POINTER(ctypes.c_uint64),
        ],
    ),
    "runai_streamer_wait": (
        _c_int,
        [
            ctypes.c_void_p,
            ctypes.c_uint64,
            ctypes.c_void_p,
            ctypes.c_size_t,
            ctypes.c_int64,
            ctypes.POINTER(ctypes.c_size_t),
        ],
    ),
    "runai_streamer_cancel": (_c_int, [ctypes.c_void_p, ctypes.c_uint64]),
    "runai_streamer_release": (_c_int, [ctypes.c_void_p, ctypes.c_uint64]),
    "runai_streamer_alloc": (ctypes.c_void_p, [ctypes.c_uint64, ctypes.c_int32]),
    "runai_streamer_free": (None, [ctypes.c_void_p, ctypes.c_uint64]),
}


@dataclass
class LoadAttempt:
    path: Path
    reason: str  # "" for the path that was loaded


@dataclass
class Library:
    """The loaded libstreamer with its functions declared."""

    path: Path
    cdll: ctypes.CDLL
    attempts: list[LoadAttempt] = field(default_factory=list)

    @property
    def version(self) -> str:
        raw = self.cdll.runai_streamer_version()
        return raw.decode("utf-8", "replace") if raw else "unknown"

    @property
    def api_version(self) -> int:
        return int(self.cdll.runai_streamer_api_version())

    def last_error(self) -> str:
        raw = self.cdll.runai_streamer_last_error()
        return raw.decode("utf-8", "replace") if raw else ""

    def check(self, status: int, what: str = "") -> None:
        """Raises the exception matching ``status`` (with the thread's last error) unless OK."""
        if status != OK:
            message = self.last_error() or status_name(status)
            if what and what not in message:
                message = f"{what}: {message}"
            raise error_for_status(status, message)


def _declare(cdll: ctypes.CDLL) -> None:
    for name, (restype, argtypes) in _SIGNATURES.items():
        function = getattr(cdll, name)
        function.restype = restype
        function.argtypes = argtypes


def _try_load(path: Path) -> tuple[ctypes.CDLL | None, str]:
    if not path.exists():
        return None, "no such file"
    if not path.is_file():
        return None, "not a regular file"
    try:
        cdll = ctypes.CDLL(str(path))
    except OSError as error:
        return None, f"the loader refused it: {error}"
    missing = [name for name in _SIGNATURES if not hasattr(cdll, name)]
    if missing:
        return None, f"not libstreamer: missing symbols {', '.join(missing)}"
    _declare(cdll)
    api = int(cdll.runai_streamer_api_version())
    if api != API_VERSION:
        return None, f"API version {api}, but this package needs API version {API_VERSION}"
    return cdll, ""


def load_library(
    env: Mapping[str, str] | None = None,
    package_dir: Path | None = None,
    system: str | None = None,
) -> Library:
    """Loads libstreamer from the first usable candidate path (no caching; see :func:`library`)."""
    env = os.environ if env is None else env
    candidates = candidate_paths(env, package_dir, system)
    attempts: list[LoadAttempt] = []
    for path in candidates:
        cdll, reason = _try_load(path)
        if cdll is not None:
            attempts.append(LoadAttempt(path, ""))
            return Library(path=path, cdll=cdll, attempts=attempts)
        attempts.append(LoadAttempt(path, reason))
    raise StreamerLibraryError(_load_failure_message(attempts, env))


def _load_failure_message(attempts: Sequence[LoadAttempt], env: Mapping[str, str]) -> str:
    lines = [f"could not load the native library {library_filename()} of runai_model_streamer."]
    if env.get(LIBRARY_ENV_VAR):
        lines.append(f"{LIBRARY_ENV_VAR} is set, so only that path was tried:")
    else:
        lines.append(f"Paths tried (set {LIBRARY_ENV_VAR} to the library's path to override):")
    if not attempts:
        lines.append("  (none: the package directory of runai_model_streamer is unknown)")
    for attempt in attempts:
        lines.append(f"  {attempt.path}: {attempt.reason}")
    return "\n".join(lines)


_lock = threading.Lock()
_library: Library | None = None


def library() -> Library:
    """The process-wide libstreamer, loaded on first call. Failures are not cached."""
    global _library
    loaded = _library
    if loaded is not None:
        return loaded
    with _lock:
        if _library is None:
            _library = load_library()
        return _library


# ---- destination memory ---------------------------------------------------------------------


class NativeBuffer:
    """Memory from ``runai_streamer_alloc``, freed by ``runai_streamer_free`` when unreferenced.

    It exposes ``__array_interface__`` so ``numpy.asarray(buffer)`` views it (the array keeps
    the buffer alive as its ``base``); torch tensors made with ``torch.from_numpy`` keep the
    array alive in turn, so the memory lives exactly as long as the last tensor viewing it.
    """

    __slots__ = ("__weakref__", "_cdll", "_ptr", "size")

    def __init__(self, size: int, prefault_threads: int = 0) -> None:
        lib = library()
        self._cdll: ctypes.CDLL | None = None
        self._ptr = 0
        self.size = max(int(size), 1)
        ptr = lib.cdll.runai_streamer_alloc(self.size, prefault_threads)
        if not ptr:
            raise MemoryError(
                f"runai_streamer_alloc could not allocate {self.size} bytes: {lib.last_error()}"
            )
        self._ptr = int(ptr)
        self._cdll = lib.cdll

    @property
    def address(self) -> int:
        return self._ptr

    @property
    def __array_interface__(self) -> dict[str, Any]:
        return {"data": (self._ptr, False), "shape": (self.size,), "typestr": "|u1", "version": 3}

    def __del__(self) -> None:
        cdll, ptr = self._cdll, self._ptr
        if cdll is not None and ptr:
            self._ptr = 0
            with contextlib.suppress(Exception):  # interpreter shutdown
                cdll.runai_streamer_free(ptr, self.size)


# ---- the engine -------------------------------------------------------------------------------


@dataclass(frozen=True)
class EngineConfig:
    concurrency: int
    chunk_bytesize: int
    backend_timeout_ms: int


def default_config() -> EngineConfig:
    """Defaults overridden by the RUNAI_STREAMER_* environment variables (validated natively)."""
    lib = library()
    config = _Config()
    lib.check(lib.cdll.runai_streamer_config_default(ctypes.byref(config)))
    return EngineConfig(config.concurrency, config.chunk_bytesize, config.backend_timeout_ms)


class Engine:
    """One ``runai_streamer_t`` handle. Thread-safe like the handle itself."""

    def __init__(self, config: EngineConfig | None = None) -> None:
        check_environment()  # warns once about variables that have no effect here
        self._lib = library()
        cdll = self._lib.cdll
        self._handle: int | None = None
        conf = _Config()
        if config is None:
            self._lib.check(cdll.runai_streamer_config_default(ctypes.byref(conf)))
        else:
            conf.concurrency = config.concurrency
            conf.chunk_bytesize = config.chunk_bytesize
            conf.backend_timeout_ms = config.backend_timeout_ms
        self.config = EngineConfig(conf.concurrency, conf.chunk_bytesize, conf.backend_timeout_ms)
        handle = ctypes.c_void_p()
        self._lib.check(cdll.runai_streamer_create(ctypes.byref(conf), ctypes.byref(handle)))
        self._handle = handle.value
        self.backends: dict[str, tuple[str, tuple[tuple[str, str], ...]]] = {}

    @property
    def handle(self) -> int:
        if self._handle is None:
            raise RunaiStreamerError("the streamer was closed")
        return self._handle

    def close(self) -> None:
        """Cancels everything in flight and frees the native streamer (idempotent)."""
        handle, self._handle = self._handle, None
        if handle is not None:
            self._lib.cdll.runai_streamer_destroy(handle)

    def __del__(self) -> None:
        with contextlib.suppress(Exception):  # interpreter shutdown
            self.close()

    def register_backend(self, scheme: str, library_path: str, options: Mapping[str, str]) -> None:
        items = tuple(sorted((str(k), str(v)) for k, v in options.items()))
        if self.backends.get(scheme) == (library_path, items):
            return
        keys = (ctypes.c_char_p * max(len(items), 1))(*[k.encode() for k, _ in items])
        values = (ctypes.c_char_p * max(len(items), 1))(*[v.encode() for _, v in items])
        status = self._lib.cdll.runai_streamer_register_backend(
            self.handle, scheme.encode(), os.fsencode(library_path), keys, values, len(items)
        )
        self._lib.check(status, f"registering backend {library_path} for {scheme}://")
        self.backends[scheme] = (library_path, items)

    def file_size(self, path: str) -> int:
        size = ctypes.c_uint64()
        status = self._lib.cdll.runai_streamer_file_size(
            self.handle, encode_path(path), ctypes.byref(size)
        )
        self._lib.check(status, path)
        return int(size.value)

    def list(self, path: str) -> list[tuple[str, int]]:
        entries: list[tuple[str, int]] = []
        errors: list[BaseException] = []

        def entry(raw: bytes, size: int, _context: object) -> int:
            try:
                entries.append((os.fsdecode(raw), int(size)))
            except BaseException as error:  # pragma: no cover - defensive
                errors.append(error)
                return 1
            return 0

        callback = _LIST_ENTRY_FN(entry)
        status = self._lib.cdll.runai_streamer_list(self.handle, encode_path(path), callback, None)
        if errors:
            raise errors[0]
        self._lib.check(status, path)
        return entries

    def submit(self, files: Sequence[tuple[str, np.ndarray]]) -> int:
        """Submits ranges (``RANGE_DTYPE`` arrays, kept alive by the caller until complete)."""
        requests = (_FileRequest * len(files))()
        encoded = []
        for index, (path, ranges) in enumerate(files):
            raw = encode_path(path)
            encoded.append(raw)
            requests[index].path = raw
            requests[index].ranges = ctypes.cast(ranges.ctypes.data, ctypes.POINTER(_Range))
            requests[index].num_ranges = len(ranges)
        request_id = ctypes.c_uint64()
        status = self._lib.cdll.runai_streamer_submit(
            self.handle, requests, len(files), ctypes.byref(request_id)
        )
        what = files[0][0] if len(files) == 1 else f"{len(files)} files"
        self._lib.check(status, what)
        return int(request_id.value)

    def wait(self, request_id: int, completions: np.ndarray, timeout_ms: int) -> int:
        """Fills ``completions`` (a COMPLETION_DTYPE array); returns how many (0 on timeout).

        Raises for any status other than OK and TIMEOUT (IDLE included: the caller tracks how
        many ranges it still expects, so nothing left to report is a bug).
        """
        if request_id <= 0:
            raise ValueError(f"invalid request id {request_id}")
        count = ctypes.c_size_t()
        status = self._lib.cdll.runai_streamer_wait(
            self.handle,
            request_id,
            completions.ctypes.data,
            len(completions),
            timeout_ms,
            ctypes.byref(count),
        )
        if status == E_TIMEOUT:
            return 0
        self._lib.check(status, f"waiting for request {request_id}")
        return int(count.value)

    def cancel(self, request_id: int) -> None:
        if self._handle is not None:  # destroy already cancelled everything
            self._lib.cdll.runai_streamer_cancel(self._handle, request_id)

    def release(self, request_id: int) -> None:
        if self._handle is not None:
            self._lib.cdll.runai_streamer_release(self._handle, request_id)


def completion_message(pointer: int) -> str:
    if not pointer:
        return ""
    return ctypes.string_at(pointer).decode("utf-8", "replace")


def encode_path(path: str) -> bytes:
    return os.fsencode(path)
