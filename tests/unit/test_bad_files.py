"""Bad files raise (never crash or hang) with the file named; headers are validated first."""

from __future__ import annotations

import json
import os
from collections.abc import Callable
from pathlib import Path

import pytest
import torch
from runai_model_streamer import RunaiStreamerError, SafetensorsFormatError, SafetensorsStreamer
from runai_model_streamer._safetensors import DTYPES, MAX_HEADER_SIZE
from safetensors.torch import save_file

from .helpers import header_file, raw_file, write_bytes

F32x2 = {"dtype": "F32", "shape": [2], "data_offsets": [0, 8]}
F32x2_JSON = json.dumps(F32x2)


def _valid(path: Path) -> Path:
    save_file({"a": torch.arange(4.0), "b": torch.ones(2, 3)}, str(path))
    return path


def _truncated(path: Path) -> Path:
    _valid(path)
    os.truncate(path, os.path.getsize(path) - 5)
    return path


def _header_only(path: Path) -> Path:
    _valid(path)
    header_size = int.from_bytes(path.read_bytes()[:8], "little")
    os.truncate(path, 8 + header_size)
    return path


CASES: dict[str, tuple[Callable[[Path], Path], type[BaseException], str]] = {
    "missing": (lambda p: p, FileNotFoundError, "no such file"),
    "directory": (lambda p: p.mkdir() or p, IsADirectoryError, "is a directory"),
    "empty": (lambda p: write_bytes(p, b""), SafetensorsFormatError, "empty"),
    "shorter than 8 bytes": (
        lambda p: write_bytes(p, b"\x01\x02\x03"),
        SafetensorsFormatError,
        "fewer than the 8-byte",
    ),
    "header length past the file": (
        lambda p: write_bytes(p, (1000).to_bytes(8, "little") + b"{}"),
        SafetensorsFormatError,
        "runs past the end of the file",
    ),
    "header length over 100 MiB": (
        lambda p: write_bytes(p, (MAX_HEADER_SIZE + 1).to_bytes(8, "little") + b"{}"),
        SafetensorsFormatError,
        "larger than the limit",
    ),
    "header length 2**64-1": (
        lambda p: write_bytes(p, b"\xff" * 8 + b"{}"),
        SafetensorsFormatError,
        "larger than the limit",
    ),
    "not UTF-8": (
        lambda p: header_file(p, b'{"\xff\xfe": 1}'),
        SafetensorsFormatError,
        "not UTF-8",
    ),
    "not JSON": (lambda p: header_file(p, b"{not json"), SafetensorsFormatError, "not valid JSON"),
    "JSON array": (lambda p: header_file(p, b"[1, 2]"), SafetensorsFormatError, "not an object"),
    "metadata twice": (
        lambda p: header_file(
            p, '{"__metadata__": {}, "__metadata__": {}, "a": ' + F32x2_JSON + "}", b"\0" * 8
        ),
        SafetensorsFormatError,
        "__metadata__ appears more than once",
    ),
    "field twice in an entry": (
        lambda p: header_file(
            p, '{"a": {"dtype": "U8", "dtype": "I8", "shape": [1], "data_offsets": [0, 1]}}', b"x"
        ),
        SafetensorsFormatError,
        "'a': dtype appears more than once",
    ),
    "gap between tensors": (
        lambda p: header_file(
            p,
            {"a": F32x2, "b": {"dtype": "F32", "shape": [2], "data_offsets": [12, 20]}},
            b"\0" * 20,
        ),
        SafetensorsFormatError,
        "data bytes 8..12 between tensors 'a' [0, 8] and 'b' [12, 20] belong to no tensor",
    ),
    "first tensor after the data start": (
        lambda p: header_file(p, {"a": {**F32x2, "data_offsets": [4, 12]}}, b"\0" * 12),
        SafetensorsFormatError,
        "data bytes 0..4 belong to no tensor",
    ),
    "bytes after the last tensor": (
        lambda p: header_file(p, {"a": F32x2}, b"\0" * 10),
        SafetensorsFormatError,
        "2 bytes after the tensor data belong to no tensor",
    ),
    "F4 values that do not fill a byte": (
        lambda p: header_file(p, {"a": {"dtype": "F4", "shape": [3], "data_offsets": [0, 2]}}),
        SafetensorsFormatError,
        "3 values of F4 take 12 bits",
    ),
    "NaN in the header": (
        lambda p: header_file(p, '{"__metadata__": {"x": NaN}, "a": ' + F32x2_JSON + "}"),
        SafetensorsFormatError,
        "NaN is not valid JSON",
    ),
    "lone surrogate": (
        lambda p: header_file(p, '{"\\ud800": ' + F32x2_JSON + "}", b"\0" * 8),
        SafetensorsFormatError,
        "lone UTF-16 surrogate",
    ),
    "entry not an object": (
        lambda p: header_file(p, {"a": 3}),
        SafetensorsFormatError,
        "'a': entry",
    ),
    "missing keys": (
        lambda p: header_file(p, {"a": {"dtype": "F32"}}),
        SafetensorsFormatError,
        "missing data_offsets, shape",
    ),
    "unknown dtype": (
        lambda p: header_file(p, {"a": {**F32x2, "dtype": "F7"}}, b"\0" * 8),
        SafetensorsFormatError,
        "unknown dtype 'F7'",
    ),
    "negative dimension": (
        lambda p: header_file(p, {"a": {**F32x2, "shape": [-2]}}, b"\0" * 8),
        SafetensorsFormatError,
        "not a list of non-negative integers",
    ),
    "shape/offset mismatch": (
        lambda p: header_file(p, {"a": {**F32x2, "shape": [3]}}, b"\0" * 8),
        SafetensorsFormatError,
        "needs 12 bytes but data_offsets [0, 8] span 8",
    ),
    "offsets reversed": (
        lambda p: header_file(
            p, {"a": {"dtype": "U8", "shape": [0], "data_offsets": [4, 2]}}, b"\0" * 8
        ),
        SafetensorsFormatError,
        "end before they begin",
    ),
    "offsets not integers": (
        lambda p: header_file(p, {"a": {**F32x2, "data_offsets": [0, "8"]}}, b"\0" * 8),
        SafetensorsFormatError,
        "is not [begin, end]",
    ),
    "overlapping tensors": (
        lambda p: header_file(
            p,
            {"a": F32x2, "b": {"dtype": "F32", "shape": [2], "data_offsets": [4, 12]}},
            b"\0" * 12,
        ),
        SafetensorsFormatError,
        "overlap",
    ),
    "offsets past the end of the file": (
        lambda p: header_file(p, {"a": {**F32x2, "data_offsets": [8, 16]}}, b"\0" * 8),
        SafetensorsFormatError,
        "end past the end of the data",
    ),
    "truncated in the data": (_truncated, SafetensorsFormatError, "file truncated?"),
    "truncated right after the header": (_header_only, SafetensorsFormatError, "file truncated?"),
    "metadata not an object": (
        lambda p: header_file(p, {"__metadata__": [1], "a": F32x2}, b"\0" * 8),
        SafetensorsFormatError,
        "__metadata__",
    ),
}


@pytest.mark.parametrize("case", sorted(CASES))
def test_bad_file_raises_naming_the_file(tmp_path: Path, case: str) -> None:
    make, error, text = CASES[case]
    good = _valid(tmp_path / "good.safetensors")
    path = make(tmp_path / "bad.safetensors")
    with SafetensorsStreamer() as streamer:
        with pytest.raises(error) as raised:
            streamer.stream_files([good, path])
        assert isinstance(raised.value, RunaiStreamerError)
        message = str(raised.value)
        assert str(path) in message, message
        assert text in message, message
        # the streamer stays usable after a rejected file
        streamer.stream_file(good)
        assert sorted(n for n, _ in streamer.get_tensors()) == ["a", "b"]


def test_fifo_is_rejected_without_hanging(tmp_path: Path) -> None:
    fifo = tmp_path / "pipe.safetensors"
    os.mkfifo(fifo)
    with (
        SafetensorsStreamer() as streamer,
        pytest.raises(RunaiStreamerError, match="not a regular file") as raised,
    ):
        streamer.stream_file(fifo)  # no writer: a blocking open would hang here
    assert str(fifo) in str(raised.value)


def test_dtype_missing_from_torch_is_a_clear_error(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    path = raw_file(tmp_path / "f8.safetensors", [("x", "F8_E8M0", [2], b"\x01\x02")])
    monkeypatch.setitem(DTYPES, "F8_E8M0", ("float8_not_in_this_torch", 8))
    with SafetensorsStreamer() as streamer, pytest.raises(SafetensorsFormatError) as raised:
        streamer.stream_file(path)
    assert str(path) in str(raised.value) and "F8_E8M0" in str(raised.value)
    assert "does not support" in str(raised.value)


def test_file_shrinking_during_the_stream_fails_naming_file_and_tensor(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    path = tmp_path / "shrinks.safetensors"
    save_file({f"t{i}": torch.full((1024,), float(i)) for i in range(8)}, str(path))
    monkeypatch.setenv("RUNAI_STREAMER_MEMORY_LIMIT", "0")  # one tensor per window
    with SafetensorsStreamer() as streamer:
        streamer.stream_file(path)
        header_size = int.from_bytes(path.read_bytes()[:8], "little")
        os.truncate(path, 8 + header_size + 4096)  # keeps the first tensor only
        names = []
        with pytest.raises(OSError) as raised:
            for name, _ in streamer.get_tensors():
                names.append(name)
    message = str(raised.value)
    assert str(path) in message and "tensor 't" in message, message
    assert isinstance(raised.value, RunaiStreamerError)
    assert len(names) < 8
