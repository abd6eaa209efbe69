"""Upstream's module path of ``SafetensorsStreamer`` and its helpers; they are defined in
:mod:`runai_model_streamer._safetensors_streamer` and :mod:`runai_model_streamer.storage`."""

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
