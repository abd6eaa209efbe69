"""StreamerPatcher: serve object-storage URIs from a local directory, for callers' test suites.

Inference servers' tests patch ``SafetensorsStreamer``, ``list_safetensors`` and ``pull_files``
with the shims of a ``StreamerPatcher(local_dir)``, so that ``s3://bucket/key`` (also ``gs://``
and ``az://``) reads ``local_dir/key``: the bucket is replaced by the directory. This is
upstream's helper with the same methods, re-exported at upstream's path
(``safetensors_streamer.streamer_mock``); the shims call this package's real streamer and
listing on the local paths, so the tests exercise real reads.

Example (pytest)::

    patcher = StreamerPatcher(str(tmp_path))
    monkeypatch.setattr(module, "SafetensorsStreamer", patcher.create_mock_streamer)
    monkeypatch.setattr(module, "list_safetensors", patcher.shim_list_safetensors)
"""

from __future__ import annotations

import logging
import os
from collections.abc import Iterator, Sequence
from types import TracebackType
from typing import Any
from urllib.parse import urlparse

import torch

from runai_model_streamer._credentials import S3Credentials
from runai_model_streamer._safetensors_streamer import SafetensorsStreamer
from runai_model_streamer._upstream_helpers import is_object_storage_path
from runai_model_streamer.storage import list_safetensors, pull_files

__all__ = ["StreamerPatcher"]

logger = logging.getLogger(__name__)


class StreamerPatcher:
    """Makes shims that read object-storage URIs from ``local_bucket_path``."""

    def __init__(self, local_bucket_path: str | os.PathLike[str]) -> None:
        self.local_path = os.fspath(local_bucket_path)

    def is_remote_path(self, path: str | os.PathLike[str]) -> bool:
        """Whether ``path`` is an object-storage URI (s3://, gs://, az://)."""
        return is_object_storage_path(os.fspath(path))

    def convert_remote_path_to_local_path(self, path: str | os.PathLike[str]) -> str:
        """``s3://bucket/a/b`` -> ``<local_path>/a/b``; other paths are returned as given."""
        text = os.fspath(path)
        if not self.is_remote_path(text):
            return text
        key = urlparse(text).path.lstrip("/")
        converted = os.path.join(self.local_path, key)
        logger.debug("StreamerPatcher: %s -> %s", text, converted)
        return converted

    def convert_local_path_to_mocked_remote_path(
        self, local_path_result: str, original_remote_path: str
    ) -> str:
        """A local result under ``local_path`` as a URI in the bucket of ``original_remote_path``
        (a path outside ``local_path`` is returned as given)."""
        root = os.path.abspath(self.local_path)
        absolute = os.path.abspath(local_path_result)
        if os.path.commonpath([root, absolute]) != root:
            return local_path_result
        relative = os.path.relpath(absolute, root).replace(os.sep, "/")
        parsed = urlparse(original_remote_path)
        return f"{parsed.scheme}://{parsed.netloc}/{relative}"

    def shim_list_safetensors(
        self, path: str, s3_credentials: S3Credentials | None = None
    ) -> list[str]:
        """``list_safetensors`` on the local directory, answered as URIs of ``path``'s bucket."""
        local = list_safetensors(self.convert_remote_path_to_local_path(path), s3_credentials)
        if not self.is_remote_path(path):
            return local
        return [self.convert_local_path_to_mocked_remote_path(p, path) for p in local]

    def shim_pull_files(
        self,
        model_path: str,
        dst: str,
        allow_pattern: Sequence[str] | None = None,
        ignore_pattern: Sequence[str] | None = None,
        s3_credentials: S3Credentials | None = None,
    ) -> None:
        """``pull_files`` of a URI: copies the matching files of the local directory to ``dst``
        (recursively; patterns match paths relative to ``model_path``)."""
        if not self.is_remote_path(model_path):
            raise NotImplementedError(
                f"StreamerPatcher.shim_pull_files serves object-storage URIs, not {model_path!r}"
            )
        source = self.convert_remote_path_to_local_path(model_path)
        pull_files(source, dst, allow_pattern, ignore_pattern, s3_credentials)

    def create_mock_streamer(self, *args: Any, **kwargs: Any) -> MockSafetensorsStreamer:
        """Stands in for ``SafetensorsStreamer(...)`` (its arguments are accepted and unused)."""
        return self.MockSafetensorsStreamer(self)

    class MockSafetensorsStreamer:
        """A real :class:`SafetensorsStreamer` whose URIs are rewritten to local paths; every
        other attribute (``files_to_tensors_metadata``, ``total_size``...) is the real one's."""

        def __init__(self, patcher: StreamerPatcher) -> None:
            self.patcher = patcher
            self.original_streamer = SafetensorsStreamer()

        def __enter__(self) -> StreamerPatcher.MockSafetensorsStreamer:
            self.original_streamer.__enter__()
            return self

        def __exit__(
            self,
            exc_type: type[BaseException] | None,
            exc_value: BaseException | None,
            traceback: TracebackType | None,
        ) -> None:
            self.original_streamer.__exit__(exc_type, exc_value, traceback)

        def __getattr__(self, name: str) -> Any:
            return getattr(self.original_streamer, name)

        def stream_file(self, path: str, *args: Any, **kwargs: Any) -> None:
            local = self.patcher.convert_remote_path_to_local_path(path)
            self.original_streamer.stream_file(local, *args, **kwargs)

        def stream_files(self, paths: Sequence[str], *args: Any, **kwargs: Any) -> None:
            local = [self.patcher.convert_remote_path_to_local_path(p) for p in paths]
            self.original_streamer.stream_files(local, *args, **kwargs)

        def get_tensors(self) -> Iterator[tuple[str, torch.Tensor]]:
            return self.original_streamer.get_tensors()
