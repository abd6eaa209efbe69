"""libstreamer's status codes (``runai_status_t`` in streamer.h, checked against the header by
the tests) and the exception class each one raises."""

from __future__ import annotations

from runai_model_streamer._errors import (
    BackendError,
    BackendNotInstalledError,
    StreamCancelledError,
    StreamerConfigError,
    StreamerEOFError,
    StreamerFileNotFoundError,
    StreamerIOError,
    StreamerPermissionError,
)

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

_ERRORS: dict[int, type[Exception]] = {
    E_NOT_FOUND: StreamerFileNotFoundError,
    E_PERMISSION: StreamerPermissionError,
    E_CONFIG: StreamerConfigError,
    E_INVALID_ARGUMENT: StreamerConfigError,
    E_UNSUPPORTED_SCHEME: BackendNotInstalledError,
    E_PLUGIN: BackendError,
    E_CANCELLED: StreamCancelledError,
    E_NO_MEMORY: MemoryError,
    E_NOT_A_FILE: StreamerIOError,
    E_EOF: StreamerEOFError,
    E_IO: StreamerIOError,
    E_BACKEND: StreamerIOError,
}


def error_class(status: int) -> type[Exception] | None:
    """The exception class of a status code; None for one without its own (the message then
    names the status)."""
    return _ERRORS.get(status)
