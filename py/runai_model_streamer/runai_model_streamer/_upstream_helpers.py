"""Upstream's object-storage URI helpers (``s3_glob``, ``s3_pull_files``...), with upstream's
signatures; ``runai_model_streamer.s3_utils.s3_utils`` re-exports them, as callers (vLLM,
SGLang) import them from there.

They list and download through the installed backend plugins; without the plugin for a scheme
they raise :class:`~runai_model_streamer.BackendNotInstalledError` (an ``ImportError``, as
upstream raises) naming the package to install. Importing this module stays cheap (no torch).
"""

from __future__ import annotations

import fnmatch
import os
from collections.abc import Sequence
from typing import TYPE_CHECKING

if TYPE_CHECKING:
    from runai_model_streamer._credentials import S3Credentials

__all__ = [
    "AZURE_PROTOCOL_PREFIX",
    "GCS_PROTOCOL_PREFIX",
    "S3_PROTOCOL_PREFIX",
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

S3_PROTOCOL_PREFIX = "s3://"
GCS_PROTOCOL_PREFIX = "gs://"
AZURE_PROTOCOL_PREFIX = "az://"


def is_s3_path(path: str) -> bool:
    return path.lower().startswith(S3_PROTOCOL_PREFIX)


def is_gs_path(path: str) -> bool:
    return path.lower().startswith(GCS_PROTOCOL_PREFIX)


def is_azure_path(path: str) -> bool:
    return path.lower().startswith(AZURE_PROTOCOL_PREFIX)


def is_object_storage_path(path: str) -> bool:
    return is_s3_path(path) or is_gs_path(path) or is_azure_path(path)


def filter_allow(paths: Sequence[str], patterns: Sequence[str]) -> list[str]:
    """The paths that match at least one fnmatch pattern."""
    return [path for path in paths if any(fnmatch.fnmatch(path, p) for p in patterns)]


def filter_ignore(paths: Sequence[str], patterns: Sequence[str]) -> list[str]:
    """The paths that match none of the fnmatch patterns."""
    return [path for path in paths if not any(fnmatch.fnmatch(path, p) for p in patterns)]


def removeprefix(s: str, prefix: str) -> str:
    return s[len(prefix) :] if s.startswith(prefix) else s


def _check_scheme(path: str, prefix: str, function: str) -> None:
    if not path.lower().startswith(prefix):
        raise ValueError(f"{function}() takes a {prefix} URI, got {path!r}")


def _glob(
    prefix: str,
    function: str,
    path: str,
    allow_pattern: Sequence[str] | None,
    credentials: S3Credentials | None,
) -> list[str]:
    """URIs of the objects directly under ``path`` whose keys (without the bucket) match an
    allow pattern, as upstream's plugins list them."""
    from runai_model_streamer.storage import list_files  # here: importing storage loads torch

    _check_scheme(path, prefix, function)
    uris = [uri for uri, _ in list_files(path, credentials)]
    keys = {uri.split("/", 3)[3] if uri.count("/") >= 3 else "": uri for uri in uris}
    selected = filter_ignore(list(keys), ["*/"])
    if allow_pattern is not None:
        selected = filter_allow(selected, allow_pattern)
    return [keys[key] for key in selected]


def _pull(
    prefix: str,
    function: str,
    model_path: str,
    dst: str | os.PathLike[str],
    allow_pattern: Sequence[str] | None,
    ignore_pattern: Sequence[str] | None,
    credentials: S3Credentials | None,
) -> None:
    from runai_model_streamer.storage import pull_files  # here: importing storage loads torch

    _check_scheme(model_path, prefix, function)
    pull_files(model_path, dst, allow_pattern, ignore_pattern, credentials)


def s3_glob(
    path: str,
    allow_pattern: Sequence[str] | None = None,
    s3_credentials: S3Credentials | None = None,
) -> list[str]:
    """The ``s3://`` URIs of the objects directly under ``path`` that match ``allow_pattern``."""
    return _glob(S3_PROTOCOL_PREFIX, "s3_glob", path, allow_pattern, s3_credentials)


def s3_pull_files(
    model_path: str,
    dst: str | os.PathLike[str],
    allow_pattern: Sequence[str] | None = None,
    ignore_pattern: Sequence[str] | None = None,
    s3_credentials: S3Credentials | None = None,
) -> None:
    """Downloads the objects under an ``s3://`` prefix into ``dst`` (see ``pull_files``)."""
    _pull(
        S3_PROTOCOL_PREFIX,
        "s3_pull_files",
        model_path,
        dst,
        allow_pattern,
        ignore_pattern,
        s3_credentials,
    )


def gcs_glob(path: str, allow_pattern: Sequence[str] | None = None) -> list[str]:
    """The ``gs://`` URIs of the objects directly under ``path`` that match ``allow_pattern``."""
    return _glob(GCS_PROTOCOL_PREFIX, "gcs_glob", path, allow_pattern, None)


def gcs_pull_files(
    model_path: str,
    dst: str | os.PathLike[str],
    allow_pattern: Sequence[str] | None = None,
    ignore_pattern: Sequence[str] | None = None,
    s3_credentials: S3Credentials | None = None,
) -> None:
    """Downloads the objects under a ``gs://`` prefix into ``dst`` (``s3_credentials`` is
    accepted, as upstream's signature has it, and not used: GCS finds its own)."""
    del s3_credentials
    _pull(
        GCS_PROTOCOL_PREFIX, "gcs_pull_files", model_path, dst, allow_pattern, ignore_pattern, None
    )


def azure_glob(path: str, allow_pattern: Sequence[str] | None = None) -> list[str]:
    """The ``az://`` URIs of the objects directly under ``path`` that match ``allow_pattern``."""
    return _glob(AZURE_PROTOCOL_PREFIX, "azure_glob", path, allow_pattern, None)


def azure_pull_files(
    model_path: str,
    dst: str | os.PathLike[str],
    allow_pattern: Sequence[str] | None = None,
    ignore_pattern: Sequence[str] | None = None,
) -> None:
    """Downloads the blobs under an ``az://`` prefix into ``dst`` (see ``pull_files``)."""
    _pull(
        AZURE_PROTOCOL_PREFIX,
        "azure_pull_files",
        model_path,
        dst,
        allow_pattern,
        ignore_pattern,
        None,
    )
