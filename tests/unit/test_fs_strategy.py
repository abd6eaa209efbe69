"""RUNAI_STREAMER_FS_STRATEGY: every way of reading local files yields the same tensors, cold
(the file's pages dropped from the page cache) and warm; a bad value names the variable."""

from __future__ import annotations

import os
from pathlib import Path

import pytest
import torch
from runai_model_streamer import SafetensorsStreamer, StreamerConfigError
from safetensors.torch import load_file, save_file


def _drop_from_page_cache(path: Path) -> None:
    fd = os.open(path, os.O_RDONLY)
    try:
        os.fdatasync(fd)
        os.posix_fadvise(fd, 0, 0, os.POSIX_FADV_DONTNEED)
    finally:
        os.close(fd)


@pytest.fixture(scope="module")
def model(tmp_path_factory: pytest.TempPathFactory) -> Path:
    path = tmp_path_factory.mktemp("strategy") / "model.safetensors"
    tensors = {f"w{i}": torch.randn(97 + i, 129) for i in range(24)}  # odd sizes and offsets
    tensors["big"] = torch.randn(1 << 19)  # 2 MiB: read direct into place
    tensors["ids"] = torch.arange(12345, dtype=torch.int64)
    tensors["half"] = torch.randn(7, 3).to(torch.float16)
    tensors["empty"] = torch.zeros(0, 5)
    save_file(tensors, str(path))
    return path


@pytest.mark.parametrize("cache", ["cold", "warm"])
@pytest.mark.parametrize("strategy", ["auto", "buffered", "direct"])
def test_every_strategy_yields_the_same_tensors(
    model: Path, monkeypatch: pytest.MonkeyPatch, strategy: str, cache: str
) -> None:
    monkeypatch.setenv("RUNAI_STREAMER_FS_STRATEGY", strategy)
    monkeypatch.setenv("RUNAI_STREAMER_CHUNK_BYTESIZE", str(256 << 10))
    if cache == "cold":
        _drop_from_page_cache(model)
    with SafetensorsStreamer() as streamer:
        streamer.stream_file(str(model))
        got = dict(streamer.get_tensors())
    expected = load_file(str(model))
    assert sorted(got) == sorted(expected)
    for name, tensor in expected.items():
        assert got[name].dtype == tensor.dtype and torch.equal(got[name], tensor), name


def test_a_bad_strategy_names_the_variable(model: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("RUNAI_STREAMER_FS_STRATEGY", "fastest")
    with pytest.raises(StreamerConfigError) as raised, SafetensorsStreamer() as streamer:
        streamer.stream_file(str(model))
    assert "RUNAI_STREAMER_FS_STRATEGY='fastest'" in str(raised.value)
