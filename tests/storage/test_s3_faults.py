"""s3:// through a fault-injecting proxy in front of SeaweedFS: every fault either completes
with correct tensors (retried, a cut body resumed) or raises a clear error in time."""

from __future__ import annotations

import time
from collections.abc import Iterator
from pathlib import Path

import pytest
import torch
from runai_model_streamer import RunaiStreamerError, SafetensorsStreamer
from safetensors.torch import load_file, save_file

from .fault_proxy import FaultProxy
from .servers import S3Server

URI = "s3://faults/model.safetensors"


@pytest.fixture(scope="module")
def model(weed: S3Server, tmp_path_factory: pytest.TempPathFactory) -> Path:
    path = tmp_path_factory.mktemp("faults") / "model.safetensors"
    save_file({f"t{i}": torch.randn(128, 256) for i in range(16)}, str(path))  # 2 MiB
    client = weed.client()
    client.create_bucket(Bucket="faults")
    client.put_object(Bucket="faults", Key="model.safetensors", Body=path.read_bytes())
    return path


@pytest.fixture
def proxy(weed: S3Server, s3_env: pytest.MonkeyPatch) -> Iterator[FaultProxy]:
    fault_proxy = FaultProxy(int(weed.endpoint.rsplit(":", 1)[1]))
    s3_env.setenv("AWS_ENDPOINT_URL", fault_proxy.endpoint)
    s3_env.setenv("RUNAI_STREAMER_CHUNK_BYTESIZE", str(256 << 10))  # 8+ ranged GETs
    s3_env.setenv("RUNAI_STREAMER_S3_LOW_SPEED_BYTES", "100000")
    s3_env.setenv("RUNAI_STREAMER_S3_LOW_SPEED_SECONDS", "1")
    s3_env.setenv("RUNAI_STREAMER_S3_RETRY_BASE_MS", "10")
    s3_env.setenv("RUNAI_STREAMER_S3_MAX_ATTEMPTS", "4")
    yield fault_proxy
    fault_proxy.close()


def _stream() -> dict[str, torch.Tensor]:
    with SafetensorsStreamer() as streamer:
        streamer.stream_file(URI)
        return dict(streamer.get_tensors())


@pytest.mark.parametrize(
    "faults",
    [
        ["reset", "reset"],
        ["slowdown", "slowdown", "slowdown"],
        ["stall"],
        ["truncate", "reset", "truncate"],
    ],
)
def test_transient_faults_are_retried_and_tensors_are_correct(
    proxy: FaultProxy, model: Path, faults: list[str]
) -> None:
    proxy.add(*faults)
    got = _stream()
    assert proxy.applied == faults  # the faults really happened
    expected = load_file(str(model))
    assert sorted(got) == sorted(expected)
    for name, tensor in expected.items():
        assert torch.equal(got[name], tensor), name


def test_a_wrong_content_range_is_an_error_never_data(proxy: FaultProxy, model: Path) -> None:
    del model
    proxy.add("wrong_range")
    with pytest.raises(RunaiStreamerError) as raised:
        _stream()
    message = str(raised.value)
    assert URI in message and "Content-Range" in message, message


def test_too_many_slowdowns_fail_after_the_configured_attempts(
    proxy: FaultProxy, model: Path
) -> None:
    del model
    proxy.add(*["slowdown"] * 20)
    with pytest.raises(RunaiStreamerError) as raised:
        _stream()
    message = str(raised.value)
    assert URI in message and "503 SlowDown" in message and "after 4 attempts" in message, message


def test_server_killed_mid_stream_fails_within_the_timeouts(
    proxy: FaultProxy,
    model: Path,
    s3_env: pytest.MonkeyPatch,
) -> None:
    del model
    s3_env.setenv("RUNAI_STREAMER_MEMORY_LIMIT", "0")  # one tensor at a time: reads still to come
    start = time.monotonic()
    names = []
    with pytest.raises(OSError) as raised, SafetensorsStreamer() as streamer:
        streamer.stream_file(URI)
        for name, _ in streamer.get_tensors():
            names.append(name)
            if len(names) == 2:
                proxy.kill()
    assert 2 <= len(names) < 16
    assert URI in str(raised.value), raised.value
    assert time.monotonic() - start < 30


def test_credentials_refreshed_during_a_long_stream_sign_the_later_reads(
    proxy: FaultProxy,
    model: Path,
    s3_env: pytest.MonkeyPatch,
) -> None:
    from runai_model_streamer import _stream

    from .servers import ACCESS_KEY, ACCESS_KEY_2, SECRET_KEY_2

    s3_env.setattr(_stream, "REFRESH_SECONDS", 0.0)  # ask for fresh options at every window
    s3_env.setenv("RUNAI_STREAMER_MEMORY_LIMIT", "0")  # one tensor per window
    got = {}
    with SafetensorsStreamer() as streamer:
        streamer.stream_file(URI)
        for name, tensor in streamer.get_tensors():
            got[name] = tensor
            if len(got) == 2:  # the provider hands out new credentials mid-stream
                s3_env.setenv("AWS_ACCESS_KEY_ID", ACCESS_KEY_2)
                s3_env.setenv("AWS_SECRET_ACCESS_KEY", SECRET_KEY_2)
    assert proxy.access_keys[0] == ACCESS_KEY and proxy.access_keys[-1] == ACCESS_KEY_2
    expected = load_file(str(model))
    assert all(torch.equal(got[name], tensor) for name, tensor in expected.items())
