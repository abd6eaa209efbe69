"""Helpers for the unit tests: hand-written safetensors files (valid, misaligned or broken)."""

from __future__ import annotations

import json
import os
from collections.abc import Iterator, Mapping, Sequence
from contextlib import contextmanager
from pathlib import Path

import torch

Entry = tuple[str, str, Sequence[int], bytes]  # name, dtype, shape, data


def raw_file(
    path: Path | str,
    entries: Sequence[Entry],
    metadata: Mapping[str, str] | None = None,
    pad_header_to: int = 8,
) -> Path:
    """Writes tensors back to back in the given order, with no alignment between them."""
    document: dict[str, object] = {}
    if metadata is not None:
        document["__metadata__"] = dict(metadata)
    offset = 0
    for name, dtype, shape, data in entries:
        document[name] = {
            "dtype": dtype,
            "shape": list(shape),
            "data_offsets": [offset, offset + len(data)],
        }
        offset += len(data)
    header = json.dumps(document).encode()
    header += b" " * (-(8 + len(header)) % pad_header_to)
    return write_bytes(
        path, len(header).to_bytes(8, "little") + header + b"".join(e[3] for e in entries)
    )


def header_file(path: Path | str, header: bytes | str | object, data: bytes = b"") -> Path:
    """A file with the given header (bytes, str or a JSON-able object) followed by ``data``."""
    if isinstance(header, bytes):
        raw = header
    elif isinstance(header, str):
        raw = header.encode()
    else:
        raw = json.dumps(header).encode()
    return write_bytes(path, len(raw).to_bytes(8, "little") + raw + data)


def write_bytes(path: Path | str, data: bytes) -> Path:
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_bytes(data)
    return path


def tensor_bytes(tensor: torch.Tensor) -> bytes:
    if tensor.numel() == 0:
        return b""
    return tensor.contiguous().reshape(-1).view(torch.uint8).numpy().tobytes()


def assert_same(actual: torch.Tensor, expected: torch.Tensor, what: str = "") -> None:
    assert actual.dtype == expected.dtype, f"{what}: dtype {actual.dtype} != {expected.dtype}"
    assert actual.shape == expected.shape, f"{what}: shape {actual.shape} != {expected.shape}"
    assert tensor_bytes(actual) == tensor_bytes(expected), f"{what}: bytes differ"


@contextmanager
def environ(**values: str | None) -> Iterator[None]:
    """Sets (or with None removes) environment variables for the block (hypothesis-safe)."""
    saved = {key: os.environ.get(key) for key in values}
    try:
        for key, value in values.items():
            if value is None:
                os.environ.pop(key, None)
            else:
                os.environ[key] = value
        yield
    finally:
        for key, value in saved.items():
            if value is None:
                os.environ.pop(key, None)
            else:
                os.environ[key] = value
