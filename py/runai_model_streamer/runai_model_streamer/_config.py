"""Settings read from the environment (validated, with errors naming the variable and value).

``RUNAI_STREAMER_CONCURRENCY``, ``RUNAI_STREAMER_CHUNK_BYTESIZE``, ``RUNAI_STREAMER_TIMEOUT_MS``,
``RUNAI_STREAMER_FS_STRATEGY`` (``auto``, ``buffered`` or ``direct``: how local files are read)
and ``RUNAI_STREAMER_IO_URING`` (``1``, the default, or ``0``: direct reads through io_uring
where the kernel offers it) are read and validated by the native library when a streamer is
created. The Python side reads:

``RUNAI_STREAMER_MEMORY_LIMIT``
    Bytes of destination memory in flight: ``-1`` (default) unlimited, ``0`` the largest tensor,
    ``N`` at most N bytes (plus one tensor when a single tensor is larger than N).
``RUNAI_STREAMER_OBJ_CONCURRENCY``
    Worker threads (requests in flight) of a streamer whose files are all object-storage URIs,
    instead of ``RUNAI_STREAMER_CONCURRENCY`` (upstream 0.17's variable and meaning).
``RUNAI_STREAMER_LOG_LEVEL``
    Level of the ``runai_model_streamer`` logger (``DEBUG``, ``INFO``, ``WARNING``... or a number).
``RUNAI_STREAMER_LOG_TO_STDERR``, ``RUNAI_STREAMER_LOG_FILE``
    Upstream's: ``1`` writes the log to stderr where nothing else would (level INFO unless the
    level is given); a path appends the log to that file.
``RUNAI_STREAMER_HUGE_PAGES``
    ``0`` (default): destination buffers use plain pages; ``1``: huge pages advised
    (``MADV_HUGEPAGE``; see ``_stream`` for the measurements behind the default).
``RUNAI_STREAMER_PREFAULT``
    ``0`` (default): buffers are faulted in by the reader threads while they read; ``1``:
    allocated with ``runai_streamer_alloc`` and faulted in before reading starts.
"""

from __future__ import annotations

import logging
import os
import re
import sys
import warnings
from collections.abc import Mapping, Sequence

from runai_model_streamer._backends import all_object_storage
from runai_model_streamer._errors import StreamerConfigError

MEMORY_LIMIT_ENV_VAR = "RUNAI_STREAMER_MEMORY_LIMIT"
LOG_LEVEL_ENV_VAR = "RUNAI_STREAMER_LOG_LEVEL"
#: upstream's variables: also write the log to stderr / append it to this file
LOG_TO_STDERR_ENV_VAR = "RUNAI_STREAMER_LOG_TO_STDERR"
LOG_FILE_ENV_VAR = "RUNAI_STREAMER_LOG_FILE"
LOG_FORMAT = "%(asctime)s %(levelname)s %(name)s: %(message)s"
UNLIMITED = -1
LARGEST_TENSOR = 0

_SIZE_RE = re.compile(r"^\s*(\d+(?:\.\d+)?)\s*([kmgt]i?b?|b)?\s*$", re.IGNORECASE)
_UNITS = {
    "": 1,
    "b": 1,
    "k": 1000,
    "kb": 1000,
    "m": 1000**2,
    "mb": 1000**2,
    "g": 1000**3,
    "gb": 1000**3,
    "t": 1000**4,
    "tb": 1000**4,
    "ki": 1024,
    "kib": 1024,
    "mi": 1024**2,
    "mib": 1024**2,
    "gi": 1024**3,
    "gib": 1024**3,
    "ti": 1024**4,
    "tib": 1024**4,
}


def parse_size(text: str) -> int:
    """Parses ``"256MB"``, ``"1.5GiB"``, ``"4096"``... into bytes; raises ValueError."""
    match = _SIZE_RE.match(text)
    if not match:
        raise ValueError(f"not a size: {text!r} (examples: 4096, 256MB, 1GiB)")
    number, unit = match.group(1), (match.group(2) or "").lower()
    return int(float(number) * _UNITS[unit]) if "." in number else int(number) * _UNITS[unit]


def parse_memory_limit(value: object, source: str = MEMORY_LIMIT_ENV_VAR) -> int:
    """Validates a memory limit: -1 (unlimited), 0 (largest tensor) or a positive byte count."""
    if value is None:
        return UNLIMITED
    if isinstance(value, bool):
        raise StreamerConfigError(f"{source}={value!r} is not a number of bytes")
    if isinstance(value, int):
        number = value
    else:
        text = str(value).strip()
        if text == "":
            return UNLIMITED
        try:
            number = int(text)
        except ValueError:
            try:
                number = parse_size(text)
            except ValueError:
                raise StreamerConfigError(
                    f"{source}={value!r} is not a number of bytes "
                    "(-1: unlimited, 0: the largest tensor, N: at most N bytes in flight)"
                ) from None
    if number < UNLIMITED:
        raise StreamerConfigError(
            f"{source}={value!r} is negative; use -1 for unlimited, 0 for the largest tensor, "
            "or a positive number of bytes"
        )
    return number


def memory_limit_from_env(env: Mapping[str, str] | None = None) -> int:
    env = os.environ if env is None else env
    return parse_memory_limit(env.get(MEMORY_LIMIT_ENV_VAR), MEMORY_LIMIT_ENV_VAR)


OBJ_CONCURRENCY_ENV_VAR = "RUNAI_STREAMER_OBJ_CONCURRENCY"
MAX_CONCURRENCY = 1024


def object_concurrency_for(
    paths: Sequence[str], usual: int, env: Mapping[str, str] | None = None
) -> int | None:
    """The worker count a stream of ``paths`` needs: RUNAI_STREAMER_OBJ_CONCURRENCY when it is
    set and every path is an object-storage URI, ``usual`` when it is set and some path is not
    (an engine made for objects is replaced), None (any) when it is unset."""
    env = os.environ if env is None else env
    value = env.get(OBJ_CONCURRENCY_ENV_VAR, "").strip()
    if not value:
        return None
    if not value.isdigit() or not 1 <= int(value) <= MAX_CONCURRENCY:
        raise StreamerConfigError(
            f"{OBJ_CONCURRENCY_ENV_VAR}={env[OBJ_CONCURRENCY_ENV_VAR]!r} must be a whole number "
            f"from 1 to {MAX_CONCURRENCY}"
        )
    return int(value) if all_object_storage(paths) else usual


def parse_log_level(value: str) -> int:
    text = value.strip()
    if text.lstrip("-").isdigit():
        return int(text)
    level = logging.getLevelName(text.upper())
    if isinstance(level, int):
        return level
    raise StreamerConfigError(
        f"{LOG_LEVEL_ENV_VAR}={value!r} is not a log level (DEBUG, INFO, WARNING, ERROR, CRITICAL)"
    )


def _log_to_stderr(env: Mapping[str, str]) -> bool:
    value = env.get(LOG_TO_STDERR_ENV_VAR, "").strip()
    if value not in ("", "0", "1"):
        raise StreamerConfigError(f"{LOG_TO_STDERR_ENV_VAR}={value!r} must be 0 or 1")
    return value == "1"


def check_log_level_env(env: Mapping[str, str] | None = None) -> None:
    """Raises StreamerConfigError when RUNAI_STREAMER_LOG_LEVEL or RUNAI_STREAMER_LOG_TO_STDERR
    is set but invalid (checked when a streamer starts, like every other variable; import only
    warns)."""
    env = os.environ if env is None else env
    value = env.get(LOG_LEVEL_ENV_VAR)
    if value:
        parse_log_level(value)
    _log_to_stderr(env)


class FallbackStderrHandler(logging.StreamHandler):  # type: ignore[type-arg]
    """Writes a record to stderr only when no other handler of the logger's chain would: a
    process that configures no logging (vLLM's workers) still shows what the user asked for,
    and one that does configure it sees every record once."""

    def __init__(self) -> None:
        super().__init__()
        self.setFormatter(logging.Formatter(LOG_FORMAT))

    def emit(self, record: logging.LogRecord) -> None:
        if not self._handled_elsewhere(record):
            self.stream = sys.stderr  # looked up at each record: pytest and others swap it
            super().emit(record)

    def _handled_elsewhere(self, record: logging.LogRecord) -> bool:
        current: logging.Logger | None = logging.getLogger(record.name)
        while current is not None:
            for handler in current.handlers:
                if handler is self or isinstance(handler, LogFileHandler):
                    continue  # the log file is not where the user looks for stderr's lines
                if record.levelno >= handler.level:
                    return True
            if not current.propagate:
                return False
            current = current.parent
        return False


class LogFileHandler(logging.FileHandler):
    """RUNAI_STREAMER_LOG_FILE's handler: appends, opening the file at the first record."""

    def __init__(self, path: str) -> None:
        super().__init__(path, delay=True)
        self.setFormatter(logging.Formatter(LOG_FORMAT))


def apply_log_level(logger: logging.Logger, env: Mapping[str, str] | None = None) -> None:
    """Sets up the package logger from the environment, at import: its level from
    RUNAI_STREAMER_LOG_LEVEL (INFO when only RUNAI_STREAMER_LOG_TO_STDERR=1 is set, as upstream
    logs); with either, a :class:`FallbackStderrHandler`; with RUNAI_STREAMER_LOG_FILE, a file
    handler appending to that file. Neither set: no handler is added. Invalid values warn (an
    import must not fail; the first streamer raises, see check_log_level_env)."""
    env = os.environ if env is None else env
    value = env.get(LOG_LEVEL_ENV_VAR, "").strip()
    try:
        to_stderr = _log_to_stderr(env)
        level = parse_log_level(value) if value else (logging.INFO if to_stderr else None)
    except StreamerConfigError as error:
        warnings.warn(str(error), RuntimeWarning, stacklevel=3)
        return
    if level is not None:
        logger.setLevel(level)
    has = {type(h) for h in logger.handlers}
    if (level is not None or to_stderr) and FallbackStderrHandler not in has:
        logger.addHandler(FallbackStderrHandler())
    log_file = env.get(LOG_FILE_ENV_VAR, "").strip()
    if log_file and LogFileHandler not in has:
        logger.addHandler(LogFileHandler(log_file))
