"""s3:// through the fault-injecting proxy in front of SeaweedFS: credentials that change
during a stream sign the later reads. (The faults every service shares are in
test_object_store_faults.py.)"""

from __future__ import annotations

import contextlib
from collections.abc import Iterator
from pathlib import Path

import pytest
import torch
from runai_model_streamer import SafetensorsStreamer
from safetensors.torch import load_file, save_file

from .fault_proxy import FaultProxy
from .servers import S3Server

URI = "s3://faults/model.safetensors"


@pytest.fixture(scope="module")
def model(weed: S3Server, tmp_path_factory: pytest.TempPathFactory) -> Path:
    path = tmp_path_factory.mktemp("faults") / "model.safetensors"
    save_file({f"t{i}": torch.randn(128, 256) for i in range(16)}, str(path))  # 2 MiB
    client = weed.client()
    with contextlib.suppress(client.exceptions.BucketAlreadyOwnedByYou):  # shared with
        client.create_bucket(Bucket="faults")  # test_object_store_faults.py
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


@pytest.mark.parametrize("retries, attempts", [("2", 3), ("0", 5)])
def test_upstream_max_retries_counts_the_attempts_after_the_first(
    proxy: FaultProxy, s3_env: pytest.MonkeyPatch, model: Path, retries: str, attempts: int
) -> None:
    """Upstream 0.17's RUNAI_STREAMER_S3_MAX_RETRIES: retries after the first attempt (0 keeps
    the default, 5 attempts); RUNAI_STREAMER_S3_MAX_ATTEMPTS, when set, wins."""
    from runai_model_streamer import RunaiStreamerError

    s3_env.delenv("RUNAI_STREAMER_S3_MAX_ATTEMPTS")
    s3_env.setenv("RUNAI_STREAMER_S3_MAX_RETRIES", retries)
    proxy.add(*["slowdown"] * 20)
    with pytest.raises(RunaiStreamerError) as raised, SafetensorsStreamer() as streamer:
        streamer.stream_file(URI)
    assert f"after {attempts} attempts" in str(raised.value), raised.value
    s3_env.setenv("RUNAI_STREAMER_S3_MAX_ATTEMPTS", "2")
    proxy.add(*["slowdown"] * 20)
    with pytest.raises(RunaiStreamerError) as raised, SafetensorsStreamer() as streamer:
        streamer.stream_file(URI)
    assert "after 2 attempts" in str(raised.value), raised.value


def test_upstream_override_endpoint_url_0_ignores_the_endpoint_variables(
    s3_env: pytest.MonkeyPatch,
) -> None:
    from runai_model_streamer.s3_utils.s3_utils import S3Credentials
    from runai_model_streamer_s3 import backend_options

    s3_env.setenv("AWS_ENDPOINT_URL", "http://127.0.0.1:1")
    assert backend_options()["endpoint"] == "http://127.0.0.1:1"
    s3_env.setenv("RUNAI_STREAMER_OVERRIDE_ENDPOINT_URL", "0")
    assert backend_options()["endpoint"] == ""  # AWS's own, from the region
    explicit = S3Credentials(endpoint="http://127.0.0.1:2")
    assert backend_options(explicit)["endpoint"] == "http://127.0.0.1:2"
    s3_env.setenv("RUNAI_STREAMER_OVERRIDE_ENDPOINT_URL", "no")
    with pytest.raises(ValueError, match="RUNAI_STREAMER_OVERRIDE_ENDPOINT_URL='no'"):
        backend_options()


def test_an_objects_start_is_read_while_it_is_headed(
    proxy: FaultProxy, model: Path, weed: S3Server, tmp_path: Path
) -> None:
    """Without a cache, the GET of an object's start (its header) does not wait for the HEAD:
    one round trip to the store before the first tensor is spared. An object smaller than that
    first read is read again once its HEAD has said its size, and its tensors are not read
    again after that: they lie within its start."""
    proxy.latency = 0.3
    _assert_streams(URI, model)
    header_read = proxy.events.index("GET range asked")
    assert header_read < proxy.events.index("HEAD answered"), proxy.events
    assert proxy.requests.count("HEAD") == 1

    small = tmp_path / "small.safetensors"
    save_file({"a": torch.arange(10.0), "b": torch.ones(3, 4)}, str(small))  # a few hundred bytes
    weed.client().put_object(Bucket="faults", Key="small.safetensors", Body=small.read_bytes())
    proxy.latency = 0.0
    proxy.requests.clear()
    _assert_streams("s3://faults/small.safetensors", small)
    assert sorted(proxy.requests) == ["GET range", "GET range", "HEAD"], proxy.requests


def _assert_streams(uri: str, model: Path) -> None:
    expected = load_file(str(model))
    with SafetensorsStreamer() as streamer:
        streamer.stream_file(uri)
        got = dict(streamer.get_tensors())
    assert sorted(got) == sorted(expected)
    for name, tensor in expected.items():
        assert torch.equal(got[name], tensor), name
