"""Safetensors streaming (upstream's package path).

``runai_model_streamer.safetensors_streamer.safetensors_streamer`` holds the implementation;
``streamer_mock.StreamerPatcher`` serves object-storage URIs from a local directory in tests.
"""

from runai_model_streamer.safetensors_streamer.safetensors_streamer import (
    ObjectStorageModel,
    SafetensorsStreamer,
    TensorMetadata,
    list_safetensors,
    pull_files,
    torch_dtype,
    torch_shape,
)

__all__ = [
    "ObjectStorageModel",
    "SafetensorsStreamer",
    "TensorMetadata",
    "list_safetensors",
    "pull_files",
    "torch_dtype",
    "torch_shape",
]
