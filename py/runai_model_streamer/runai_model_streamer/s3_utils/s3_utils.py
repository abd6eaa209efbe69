"""Upstream's module path of ``S3Credentials`` and the object-storage URI helpers.

``from runai_model_streamer.s3_utils.s3_utils import S3Credentials`` is the import callers
(vLLM, SGLang) use. This module only re-exports: the credentials are defined in
:mod:`runai_model_streamer._credentials`, the helpers in
:mod:`runai_model_streamer._upstream_helpers`. Importing it stays cheap (no torch).
"""

from runai_model_streamer._credentials import S3Credentials
from runai_model_streamer._upstream_helpers import (
    AZURE_PROTOCOL_PREFIX,
    GCS_PROTOCOL_PREFIX,
    S3_PROTOCOL_PREFIX,
    azure_glob,
    azure_pull_files,
    filter_allow,
    filter_ignore,
    gcs_glob,
    gcs_pull_files,
    is_azure_path,
    is_gs_path,
    is_object_storage_path,
    is_s3_path,
    removeprefix,
    s3_glob,
    s3_pull_files,
)

__all__ = [
    "AZURE_PROTOCOL_PREFIX",
    "GCS_PROTOCOL_PREFIX",
    "S3_PROTOCOL_PREFIX",
    "S3Credentials",
    "azure_glob",
    "azure_pull_files",
    "filter_allow",
    "filter_ignore",
    "gcs_glob",
    "gcs_pull_files",
    "is_azure_path",
    "is_gs_path",
    "is_object_storage_path",
    "is_s3_path",
    "removeprefix",
    "s3_glob",
    "s3_pull_files",
]
