"""Safetensors streaming (upstream's package path).

Re-exports only (those of its ``safetensors_streamer`` module): the streamer is defined in
:mod:`runai_model_streamer._safetensors_streamer`;
``streamer_mock.StreamerPatcher`` (defined in ``_streamer_mock``) serves object-storage URIs from
a local directory in callers' tests.
"""

from runai_model_streamer.safetensors_streamer.safetensors_streamer import *  # noqa: F403
from runai_model_streamer.safetensors_streamer.safetensors_streamer import __all__ as __all__
