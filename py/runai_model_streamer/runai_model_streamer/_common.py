"""Pieces shared by the public streamer classes."""

from __future__ import annotations

import dataclasses
import functools
import logging
import os
from collections.abc import Callable, Iterable, Sequence
from types import TracebackType
from typing import TYPE_CHECKING, TypeVar

import torch

from runai_model_streamer._backends import register_backends, to_engine_path, uri_scheme
from runai_model_streamer._config import (
    OBJ_CONCURRENCY_ENV_VAR,
    check_log_level_env,
    object_concurrency_from_env,
)
from runai_model_streamer._native import Engine, default_config
from runai_model_streamer._safetensors import (
    SafetensorsHeader,
    read_engine_headers,
    read_local_header,
)
from runai_model_streamer._stream import RangeStream

if TYPE_CHECKING:
    from runai_model_streamer._distributed import SharedStream
    from runai_model_streamer.s3_utils.s3_utils import S3Credentials

logger = logging.getLogger("runai_model_streamer")

PathLike = str | os.PathLike[str]


def check_paths(paths: object, what: str = "paths") -> list[str]:
    """A list of engine paths from a sequence of str/PathLike (a bare string is a TypeError)."""
    if isinstance(paths, str | bytes | os.PathLike):
        raise TypeError(
            f"{what} must be a list of paths, not a single {type(paths).__name__} "
            f"({paths!r}); use stream_file() for one file"
        )
    if not isinstance(paths, Iterable):
        raise TypeError(f"{what} must be a list of paths, got {type(paths).__name__}")
    result = []
    for path in paths:
        if not isinstance(path, str | os.PathLike):
            raise TypeError(f"every entry of {what} must be a str or os.PathLike, got {path!r}")
        result.append(to_engine_path(path))
    return result


def check_device(device: str | torch.device | None) -> torch.device:
    if device is None:
        return torch.device("cpu")
    try:
        resolved = torch.device(device)
    except (RuntimeError, TypeError, ValueError) as error:
        raise ValueError(f"device={device!r} is not a torch device: {error}") from None
    if resolved.type == "cuda" and not torch.cuda.is_available():
        raise ValueError(f"device={device!r}: CUDA is not available to this torch build or machine")
    return resolved


_Owner = TypeVar("_Owner", bound="EngineOwner")


class EngineOwner:
    """Owns the native engine (created lazily) and the stream in flight; the context manager
    and close() end both."""

    def __init__(self) -> None:
        self._engine: Engine | None = None
        self._stream: RangeStream | SharedStream | None = None
        self._refresh: Callable[[], None] | None = None

    def __enter__(self: _Owner) -> _Owner:
        self._get_engine()
        return self

    def __exit__(
        self,
        exc_type: type[BaseException] | None,
        exc_value: BaseException | None,
        traceback: TracebackType | None,
    ) -> None:
        self.close()

    def close(self) -> None:
        """Cancels any stream in flight and frees the native streamer."""
        stream, self._stream = self._stream, None
        if stream is not None:
            stream.close()
        self._close_engine()

    def _get_engine(self, concurrency: int | None = None) -> Engine:
        """The engine (created on first use); ``concurrency``: the worker count it must have
        (None: any), a different one replaces it."""
        engine = self._engine
        if engine is not None and concurrency not in (None, engine.config.concurrency):
            self._close_engine()
            engine = None
        if engine is None:
            check_log_level_env()  # the native library validates its own variables
            config = None
            if concurrency is not None:
                config = dataclasses.replace(default_config(), concurrency=concurrency)
            engine = self._engine = Engine(config)
        return engine

    def _close_engine(self) -> None:
        engine, self._engine = self._engine, None
        if engine is not None:
            engine.close()

    def _register(self, paths: Sequence[str], credentials: S3Credentials | None) -> Engine:
        concurrency = object_concurrency_from_env(paths)
        if concurrency is None and os.environ.get(OBJ_CONCURRENCY_ENV_VAR, "").strip():
            concurrency = default_config().concurrency  # not all objects: the usual count
        engine = self._get_engine(concurrency)
        register_backends(engine, paths, credentials)
        # what a long stream calls to pick up refreshed credentials (see RangeStream)
        self._refresh = functools.partial(register_backends, engine, list(paths), credentials)
        return engine


def read_headers(engine_factory: EngineOwner, paths: Sequence[str]) -> list[SafetensorsHeader]:
    """Headers of local files (plain reads) and URIs (concurrent engine reads), in order."""
    headers: list[SafetensorsHeader | None] = [None] * len(paths)
    remote = [i for i, p in enumerate(paths) if uri_scheme(p) is not None]
    for index, path in enumerate(paths):
        if uri_scheme(path) is None:
            headers[index] = read_local_header(path)
    if remote:
        engine = engine_factory._get_engine()
        for index, header in zip(
            remote, read_engine_headers(engine, [paths[i] for i in remote]), strict=True
        ):
            headers[index] = header
    return [h for h in headers if h is not None]


def format_bytes(count: float) -> str:
    for unit in ("B", "KiB", "MiB", "GiB", "TiB"):
        if abs(count) < 1024 or unit == "TiB":
            return f"{count:.0f} {unit}" if unit == "B" else f"{count:.2f} {unit}"
        count /= 1024
    return f"{count:.2f} TiB"  # pragma: no cover
