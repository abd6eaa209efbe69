"""Upstream's module path of ``StreamerPatcher``; it is defined in
:mod:`runai_model_streamer._streamer_mock`."""

from runai_model_streamer._streamer_mock import StreamerPatcher

__all__ = ["StreamerPatcher"]
