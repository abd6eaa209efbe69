"""RUNAI_STREAMER_FS_STRATEGY: every way of reading local files yields the same tensors, cold
(the file's pages dropped from the page cache) and warm; a bad value names the variable."""

from __future__ import annotations

import os
import subprocess
import sys
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


@pytest.mark.parametrize("io_uring", ["1", "0"])
def test_direct_reads_with_and_without_io_uring_yield_the_same_tensors(
    model: Path, monkeypatch: pytest.MonkeyPatch, io_uring: str
) -> None:
    monkeypatch.setenv("RUNAI_STREAMER_FS_STRATEGY", "direct")
    monkeypatch.setenv("RUNAI_STREAMER_IO_URING", io_uring)
    _drop_from_page_cache(model)
    with SafetensorsStreamer() as streamer:
        streamer.stream_file(str(model))
        got = dict(streamer.get_tensors())
    for name, tensor in load_file(str(model)).items():
        assert torch.equal(got[name], tensor), name


def _how_direct_reads_go(model: Path, io_uring: str, strategy: str = "direct") -> str:
    """The DEBUG line of a fresh process (the engine says it once per process)."""
    code = (
        "import sys\n"
        "from runai_model_streamer import SafetensorsStreamer\n"
        "with SafetensorsStreamer() as s:\n"
        "    s.stream_file(sys.argv[1])\n"
        "    n = sum(1 for _ in s.get_tensors())\n"
    )
    env = dict(
        os.environ,
        RUNAI_STREAMER_LOG_LEVEL="DEBUG",
        RUNAI_STREAMER_FS_STRATEGY=strategy,
        RUNAI_STREAMER_IO_URING=io_uring,
    )
    _drop_from_page_cache(model)
    done = subprocess.run(
        [sys.executable, "-c", code, str(model)], env=env, capture_output=True, text=True
    )
    assert done.returncode == 0, done.stderr
    return "\n".join(line for line in done.stderr.splitlines() if "direct reads" in line)


@pytest.mark.skipif(sys.platform != "linux", reason="io_uring is Linux only")
def test_direct_reads_go_through_io_uring_where_the_kernel_offers_it(model: Path) -> None:
    # CI's Linux kernels offer io_uring (kernel.io_uring_disabled=0): its absence fails here.
    assert _how_direct_reads_go(model, "1") == "runai-model-streamer: direct reads through io_uring"
    assert _how_direct_reads_go(model, "0") == ""  # off: nothing set up, nothing to say


#: upstream 0.17's names (and its comma-separated preference lists) -> whether reads go direct
UPSTREAM_STRATEGIES = {
    "io_uring_direct": True,
    "libaio_direct": True,
    "io_uring_buffered": False,
    "sync_buffered": False,
    "io_uring_buffered,sync_buffered": False,
    "io_uring_direct,sync_buffered": True,
}


@pytest.mark.skipif(sys.platform != "linux", reason="io_uring is Linux only")
@pytest.mark.parametrize("strategy", sorted(UPSTREAM_STRATEGIES))
def test_upstream_strategy_names_keep_their_meaning(model: Path, strategy: str) -> None:
    direct = _how_direct_reads_go(model, "1", strategy)
    assert direct == (
        "runai-model-streamer: direct reads through io_uring"
        if UPSTREAM_STRATEGIES[strategy]
        else ""
    )


@pytest.mark.parametrize(
    "variable, value, also",
    [
        ("RUNAI_STREAMER_FS_STRATEGY", "fastest", "auto, buffered or direct"),
        ("RUNAI_STREAMER_FS_STRATEGY", "io_uring_direct,fastest", "sync_buffered"),  # upstream's
        ("RUNAI_STREAMER_IO_URING", "yes", "0 or 1"),
    ],
)
def test_a_bad_value_names_the_variable(
    model: Path, monkeypatch: pytest.MonkeyPatch, variable: str, value: str, also: str
) -> None:
    monkeypatch.setenv(variable, value)
    with pytest.raises(StreamerConfigError) as raised, SafetensorsStreamer() as streamer:
        streamer.stream_file(str(model))
    assert f"{variable}={value!r}" in str(raised.value) and also in str(raised.value)
