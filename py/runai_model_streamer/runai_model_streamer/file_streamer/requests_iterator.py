"""Upstream's module path of ``FileChunks``; it is defined in
:mod:`runai_model_streamer._file_chunks`."""

from runai_model_streamer._file_chunks import RUNAI_STREAMER_MEMORY_LIMIT_ENV_VAR_NAME, FileChunks

__all__ = ["RUNAI_STREAMER_MEMORY_LIMIT_ENV_VAR_NAME", "FileChunks"]
