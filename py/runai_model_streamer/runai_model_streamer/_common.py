"""Pieces shared by the public streamer classes."""

from __future__ import annotations

import logging
import os
from collections.abc import Iterable

import torch

from runai_model_streamer._backends import to_engine_path

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


def format_bytes(count: float) -> str:
    for unit in ("B", "KiB", "MiB", "GiB", "TiB"):
        if abs(count) < 1024 or unit == "TiB":
            return f"{count:.0f} {unit}" if unit == "B" else f"{count:.2f} {unit}"
        count /= 1024
    return f"{count:.2f} TiB"  # pragma: no cover
