"""The package logger, set up from the environment at import (see :mod:`._settings`):
``RUNAI_STREAMER_LOG_LEVEL``, and upstream's ``RUNAI_STREAMER_LOG_TO_STDERR`` and
``RUNAI_STREAMER_LOG_FILE``."""

from __future__ import annotations

import logging
import sys
import warnings
from collections.abc import Mapping

from runai_model_streamer._errors import StreamerConfigError
from runai_model_streamer._settings import LOG_FILE, LOG_LEVEL, LOG_TO_STDERR

LOG_FORMAT = "%(asctime)s %(levelname)s %(name)s: %(message)s"


def check_log_level_env(env: Mapping[str, str] | None = None) -> None:
    """Raises StreamerConfigError when RUNAI_STREAMER_LOG_LEVEL or RUNAI_STREAMER_LOG_TO_STDERR
    is set but invalid (checked when a streamer starts, like every other variable; import only
    warns)."""
    LOG_LEVEL.read(env)
    LOG_TO_STDERR.read(env)


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
    try:
        to_stderr = LOG_TO_STDERR.read(env)
        level = LOG_LEVEL.read(env)
    except StreamerConfigError as error:
        warnings.warn(str(error), RuntimeWarning, stacklevel=3)
        return
    if level is None and to_stderr:
        level = logging.INFO  # as upstream logs
    if level is not None:
        logger.setLevel(level)
    has = {type(h) for h in logger.handlers}
    if (level is not None or to_stderr) and FallbackStderrHandler not in has:
        logger.addHandler(FallbackStderrHandler())
    log_file = LOG_FILE.read(env)
    if log_file and LogFileHandler not in has:
        logger.addHandler(LogFileHandler(log_file))
