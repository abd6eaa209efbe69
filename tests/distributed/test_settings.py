"""When a stream is shared, in this process: settings, and the plain fallbacks."""

from __future__ import annotations

from collections.abc import Iterator
from datetime import timedelta
from pathlib import Path

import pytest
import torch
import torch.distributed as dist
from runai_model_streamer import SafetensorsStreamer, StreamerConfigError
from runai_model_streamer._distributed import DistSettings
from safetensors.torch import save_file

from tests.distributed.launcher import free_port


@pytest.fixture
def small_model(tmp_path: Path) -> Path:
    path = tmp_path / "m.safetensors"
    save_file({"a": torch.arange(10.0), "b": torch.ones(3, 3)}, str(path))
    return path


def _stream(path: Path) -> tuple[bool, dict[str, torch.Tensor]]:
    with SafetensorsStreamer() as streamer:
        streamer.stream_file(path, is_distributed=True)
        tensors = dict(streamer.get_tensors())
        return streamer.file_streamer.is_distributed, tensors


def test_without_torch_distributed_a_rank_streams_alone(
    small_model: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("RUNAI_STREAMER_DIST", "1")
    assert not dist.is_initialized()
    shared, tensors = _stream(small_model)
    assert not shared and torch.equal(tensors["a"], torch.arange(10.0))


@pytest.fixture
def world_of_one() -> Iterator[None]:
    dist.init_process_group(
        "gloo",
        init_method=f"tcp://127.0.0.1:{free_port()}",
        rank=0,
        world_size=1,
        timeout=timedelta(seconds=30),
    )
    try:
        yield
    finally:
        dist.destroy_process_group()


def test_a_world_of_one_rank_streams_alone(
    small_model: Path, monkeypatch: pytest.MonkeyPatch, world_of_one: None
) -> None:
    monkeypatch.setenv("RUNAI_STREAMER_DIST", "1")
    shared, tensors = _stream(small_model)
    assert not shared and torch.equal(tensors["b"], torch.ones(3, 3))


@pytest.mark.parametrize(
    ("variable", "value"),
    [
        ("RUNAI_STREAMER_DIST", "yes"),
        ("RUNAI_STREAMER_DIST", "2"),
        ("RUNAI_STREAMER_DIST_GLOBAL", "true"),
        ("RUNAI_STREAMER_DIST_TIMEOUT", "0"),
        ("RUNAI_STREAMER_DIST_TIMEOUT", "-5"),
        ("RUNAI_STREAMER_DIST_TIMEOUT", "soon"),
        ("RUNAI_STREAMER_DIST_TIMEOUT", "inf"),
        ("RUNAI_STREAMER_DIST_BUFFER_BYTES", "lots"),
        ("RUNAI_STREAMER_DIST_BUFFER_BYTES", "100"),
    ],
)
def test_a_bad_setting_is_an_error_naming_the_variable(
    small_model: Path, monkeypatch: pytest.MonkeyPatch, variable: str, value: str
) -> None:
    monkeypatch.setenv(variable, value)
    with pytest.raises(StreamerConfigError) as raised:
        _stream(small_model)
    assert variable in str(raised.value) and repr(value) in str(raised.value)
    # without is_distributed the variables are not read
    with SafetensorsStreamer() as streamer:
        streamer.stream_file(small_model)
        assert len(dict(streamer.get_tensors())) == 2


def test_settings_defaults_and_values(monkeypatch: pytest.MonkeyPatch) -> None:
    for name in (
        "DIST",
        "DIST_GLOBAL",
        "DIST_TIMEOUT",
        "DIST_BUFFER_BYTES",
        "DIST_BUFFER_MIN_BYTESIZE",
    ):
        monkeypatch.delenv(f"RUNAI_STREAMER_{name}", raising=False)
    default = DistSettings.from_env()
    assert (default.mode, default.global_group) == ("auto", False)
    assert default.timeout == timedelta(seconds=600) and default.round_bytes == 64 << 20
    monkeypatch.setenv("RUNAI_STREAMER_DIST", "AUTO")
    monkeypatch.setenv("RUNAI_STREAMER_DIST_GLOBAL", "1")
    monkeypatch.setenv("RUNAI_STREAMER_DIST_TIMEOUT", "2.5")
    monkeypatch.setenv("RUNAI_STREAMER_DIST_BUFFER_BYTES", "32MiB")
    custom = DistSettings.from_env()
    assert (custom.mode, custom.global_group) == ("auto", True)
    assert custom.timeout == timedelta(seconds=2.5) and custom.round_bytes == 32 << 20


def test_upstream_dist_buffer_min_bytesize_sets_the_round_when_ours_is_unset(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    monkeypatch.delenv("RUNAI_STREAMER_DIST_BUFFER_BYTES", raising=False)
    monkeypatch.setenv("RUNAI_STREAMER_DIST_BUFFER_MIN_BYTESIZE", str(1 << 20))
    assert DistSettings.from_env().round_bytes == 1 << 20
    monkeypatch.setenv("RUNAI_STREAMER_DIST_BUFFER_MIN_BYTESIZE", "0")  # upstream's tests' value
    assert DistSettings.from_env().round_bytes == 4096
    monkeypatch.setenv("RUNAI_STREAMER_DIST_BUFFER_BYTES", "8MiB")  # ours wins
    assert DistSettings.from_env().round_bytes == 8 << 20
    monkeypatch.delenv("RUNAI_STREAMER_DIST_BUFFER_BYTES")
    monkeypatch.setenv("RUNAI_STREAMER_DIST_BUFFER_MIN_BYTESIZE", "-1")
    with pytest.raises(ValueError, match="RUNAI_STREAMER_DIST_BUFFER_MIN_BYTESIZE"):
        DistSettings.from_env()
