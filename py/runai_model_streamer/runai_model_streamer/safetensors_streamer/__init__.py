"""Safetensors streaming (upstream's package path).

Re-exports only: the streamer is defined in :mod:`runai_model_streamer._safetensors_streamer`;
``streamer_mock.StreamerPatcher`` (defined in ``_streamer_mock``) serves object-storage URIs from
a local directory in callers' tests.
"""

from runai_model_streamer._safetensors import TensorMetadata
from runai_model_streamer._safetensors_streamer import (
    SafetensorsStreamer,
    torch_dtype,
    torch_shape,
)
from runai_model_streamer.storage import ObjectStorageModel, list_safetensors, pull_files

__all__ = [
    "ObjectStorageModel",
    "SafetensorsStreamer",
    "TensorMetadata",
    "list_safetensors",
    "pull_files",
    "torch_dtype",
    "torch_shape",
]
