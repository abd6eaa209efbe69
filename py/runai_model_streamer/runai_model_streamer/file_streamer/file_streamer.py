"""Upstream's module path of ``FileStreamer``; it is defined in
:mod:`runai_model_streamer._reader`."""

from runai_model_streamer._reader import FileStreamer

__all__ = ["FileStreamer"]
