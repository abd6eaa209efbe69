"""Upstream's module path of ``S3Credentials`` and the object-storage URI helpers.

``from runai_model_streamer.s3_utils.s3_utils import S3Credentials`` is the import callers
(vLLM, SGLang) use. This module only re-exports: the credentials are defined in
:mod:`runai_model_streamer._credentials`, the helpers in
:mod:`runai_model_streamer._upstream_helpers`. Importing it stays cheap (no torch).
"""

from runai_model_streamer import _upstream_helpers
from runai_model_streamer._credentials import S3Credentials
from runai_model_streamer._upstream_helpers import *  # noqa: F403  (upstream's helpers)

__all__ = ["S3Credentials", *_upstream_helpers.__all__]
