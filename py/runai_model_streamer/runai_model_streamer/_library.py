"""Finding and loading the native library ``libstreamer`` (ctypes), and turning its status
codes into exceptions.

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

import ctypes
import importlib.resources
import os
import platform
import threading
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path

from runai_model_streamer._abi import SIGNATURES
from runai_model_streamer._errors import RunaiStreamerError, StreamerLibraryError
from runai_model_streamer._status import OK, error_class

LIBRARY_ENV_VAR = "STREAMER_LIBRARY"
API_VERSION = 4
_PACKAGE = "runai_model_streamer"


def status_name(status: int) -> str:
    """The library's name for a status code ("RUNAI_E_EOF"...): one table, in the C library."""
    raw = library().cdll.runai_streamer_status_name(status)
    return raw.decode("ascii", "replace") if raw else f"status {status}"


def error_for_status(status: int, message: str) -> Exception:
    """The exception matching a libstreamer status code, carrying the library's message."""
    text = message or status_name(status)
    kind = error_class(status)
    return RunaiStreamerError(f"{status_name(status)}: {text}") if kind is None else kind(text)


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
    for name, (restype, argtypes) in SIGNATURES.items():
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
    missing = [name for name in SIGNATURES if not hasattr(cdll, name)]
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
