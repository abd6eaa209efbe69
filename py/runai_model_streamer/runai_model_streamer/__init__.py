"""runai_model_streamer: stream safetensors weights into torch tensors with concurrent reads.

Importing the package is cheap and never needs the native library; the public classes are
imported on first access, and libstreamer is loaded when a streamer is first used.
"""

from __future__ import annotations

import importlib
import importlib.metadata
import logging
from typing import TYPE_CHECKING, Any

from runai_model_streamer._logging import apply_log_level

try:
    __version__: str = importlib.metadata.version("runai-model-streamer")
except importlib.metadata.PackageNotFoundError:
    __version__ = "0.0.0+unknown"

_logger = logging.getLogger(__name__)
apply_log_level(_logger)

if TYPE_CHECKING:
    from runai_model_streamer._credentials import S3Credentials
    from runai_model_streamer._errors import (
        BackendError,
        BackendNotInstalledError,
        ChecksumMismatchError,
        ChecksumUnavailableError,
        DistributedStreamError,
        RunaiStreamerError,
        SafetensorsFormatError,
        StreamerConfigError,
        StreamerLibraryError,
        UnsafeObjectKeyError,
    )
    from runai_model_streamer._file_chunks import FileChunks
    from runai_model_streamer._reader import DistributedStreamer, FileStreamer
    from runai_model_streamer._safetensors import TensorMetadata
    from runai_model_streamer._safetensors_streamer import SafetensorsStreamer
    from runai_model_streamer.storage import ObjectStorageModel, list_safetensors, pull_files

_LAZY = {
    "SafetensorsStreamer": "runai_model_streamer._safetensors_streamer",
    "TensorMetadata": "runai_model_streamer._safetensors",
    "DistributedStreamer": "runai_model_streamer._reader",
    "FileStreamer": "runai_model_streamer._reader",
    "FileChunks": "runai_model_streamer._file_chunks",
    "ObjectStorageModel": "runai_model_streamer.storage",
    "list_safetensors": "runai_model_streamer.storage",
    "pull_files": "runai_model_streamer.storage",
    "S3Credentials": "runai_model_streamer._credentials",
    "RunaiStreamerError": "runai_model_streamer._errors",
    "StreamerLibraryError": "runai_model_streamer._errors",
    "StreamerConfigError": "runai_model_streamer._errors",
    "SafetensorsFormatError": "runai_model_streamer._errors",
    "BackendNotInstalledError": "runai_model_streamer._errors",
    "BackendError": "runai_model_streamer._errors",
    "DistributedStreamError": "runai_model_streamer._errors",
    "ChecksumMismatchError": "runai_model_streamer._errors",
    "ChecksumUnavailableError": "runai_model_streamer._errors",
    "UnsafeObjectKeyError": "runai_model_streamer._errors",
}

__all__ = [
    "BackendError",
    "BackendNotInstalledError",
    "ChecksumMismatchError",
    "ChecksumUnavailableError",
    "DistributedStreamError",
    "DistributedStreamer",
    "FileChunks",
    "FileStreamer",
    "ObjectStorageModel",
    "RunaiStreamerError",
    "S3Credentials",
    "SafetensorsFormatError",
    "SafetensorsStreamer",
    "StreamerConfigError",
    "StreamerLibraryError",
    "TensorMetadata",
    "UnsafeObjectKeyError",
    "__version__",
    "list_safetensors",
    "pull_files",
]


def __getattr__(name: str) -> Any:
    module = _LAZY.get(name)
    if module is None:
        raise AttributeError(f"module 'runai_model_streamer' has no attribute {name!r}")
    value = getattr(importlib.import_module(module), name)
    globals()[name] = value
    return value


def __dir__() -> list[str]:
    return sorted(set(globals()) | set(__all__))
