"""Raw byte-range streaming: ``FileStreamer`` and ``FileChunks`` (upstream's package path; both
are defined in the core, :mod:`runai_model_streamer._reader` and ``_file_chunks``)."""

from runai_model_streamer._file_chunks import FileChunks
from runai_model_streamer._reader import FileStreamer

__all__ = ["FileChunks", "FileStreamer"]
