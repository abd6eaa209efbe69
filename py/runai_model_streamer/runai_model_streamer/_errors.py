"""Exceptions raised by runai_model_streamer.

Every error derives from :class:`RunaiStreamerError` and also from the builtin exception a
caller would expect (``FileNotFoundError`` for a missing file, ``ValueError`` for a malformed
file or a bad setting...), so both ``except RunaiStreamerError`` and the usual builtin
``except`` clauses work. Messages name the file or URI and the cause.
"""

from __future__ import annotations


class RunaiStreamerError(Exception):
    """Base class of every error raised by this package."""


class StreamerLibraryError(RunaiStreamerError, OSError):
    """The native library could not be found, loaded, or has an incompatible API version."""


class StreamerConfigError(RunaiStreamerError, ValueError):
    """A configuration value (environment variable or argument) is invalid."""


class SafetensorsFormatError(RunaiStreamerError, ValueError):
    """A file is not a valid safetensors file (the message names the file and the problem)."""


class StreamerFileNotFoundError(RunaiStreamerError, FileNotFoundError):
    """A file or object does not exist."""


class StreamerPermissionError(RunaiStreamerError, PermissionError):
    """Access to a file or object was denied."""


class StreamerIsADirectoryError(RunaiStreamerError, IsADirectoryError):
    """A directory was given where a file was expected."""


class StreamerIOError(RunaiStreamerError, OSError):
    """Reading a file or object failed (I/O error, short file, object-storage error)."""


class StreamerEOFError(StreamerIOError):
    """A read ran past the end of a file or object: it is shorter than the read asked for."""


class BackendNotInstalledError(RunaiStreamerError, ImportError):
    """No installed plugin serves the URI scheme; the message says what to install."""


class BackendError(RunaiStreamerError, OSError):
    """A backend plugin could not be loaded or configured."""


class StreamCancelledError(RunaiStreamerError):
    """A read was cancelled before it completed."""


class DistributedStreamError(RunaiStreamerError, RuntimeError):
    """A shared stream failed on another rank of the group, the ranks asked for different data,
    or the exchange between them failed (a rank stopped, or a timeout)."""


class UnsafeObjectKeyError(RunaiStreamerError, ValueError):
    """A listed object key (or a source file) would map to a path outside the destination
    directory, or to no well-formed path at all; nothing was downloaded."""


class ChecksumMismatchError(StreamerIOError):
    """The bytes read from an object do not have the checksum its store keeps of it (the
    message names the URI, the algorithm, the expected and the computed value)."""


class ChecksumUnavailableError(RunaiStreamerError, ValueError):
    """``RUNAI_STREAMER_VERIFY=require``, and an object has no checksum that could be checked
    (the message names each such object and why)."""
