"""Upstream's module path of ``DistributedStreamer``; it is defined in
:mod:`runai_model_streamer._reader`."""

from runai_model_streamer._reader import DistributedStreamer

__all__ = ["DistributedStreamer"]
