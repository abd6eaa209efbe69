"""s3://, gs://, az:// and hf:// through the fault-injecting proxy in front of SeaweedFS,
fake-gcs-server, Azurite and the test Hub (whose redirects lead back through the proxy): the
shared HTTP layer retries and resumes for every service, so each fault either completes with
correct tensors or fails with a clear error in time."""

from __future__ import annotations

import contextlib
import re
import time
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

import pytest
import torch
from runai_model_streamer import RunaiStreamerError, SafetensorsStreamer
from safetensors.torch import load_file, save_file

from .fault_proxy import FaultProxy
from .hub_server import HubServer
from .model_files import stream_tensors
from .servers import AzuriteServer, GcsServer, S3Server

BUCKET = "faults"


@dataclass
class Target:
    uri: str
    model: Path
    proxy: FaultProxy
    prefix: str  # of the service's HTTP variables
    #: how messages name the object (hf://: pinned to the commit the stream read)
    named: str = ""

    def named_in(self, message: str) -> bool:
        return re.search(self.named or re.escape(self.uri), message) is not None


@pytest.fixture(scope="module")
def model(tmp_path_factory: pytest.TempPathFactory) -> Path:
    path = tmp_path_factory.mktemp("faults") / "model.safetensors"
    save_file({f"t{i}": torch.randn(128, 256) for i in range(16)}, str(path))  # 2 MiB
    return path


@pytest.fixture(params=["s3", "gcs", "azure", "hf"])
def target(request: pytest.FixtureRequest, model: Path) -> Iterator[Target]:
    if request.param == "s3":
        weed: S3Server = request.getfixturevalue("weed")
        env: pytest.MonkeyPatch = request.getfixturevalue("s3_env")
        client = weed.client()
        with contextlib.suppress(client.exceptions.BucketAlreadyOwnedByYou):
            client.create_bucket(Bucket=BUCKET)
        client.put_object(Bucket=BUCKET, Key="model.safetensors", Body=model.read_bytes())
        proxy = FaultProxy(int(weed.endpoint.rsplit(":", 1)[1]))
        env.setenv("AWS_ENDPOINT_URL", proxy.endpoint)
        found = Target(f"s3://{BUCKET}/model.safetensors", model, proxy, "RUNAI_STREAMER_S3_")
    elif request.param == "gcs":
        gcs: GcsServer = request.getfixturevalue("gcs")
        env = request.getfixturevalue("gcs_env")
        gcs.create_bucket(BUCKET)
        gcs.upload(BUCKET, "model.safetensors", model.read_bytes())
        proxy = FaultProxy(int(gcs.endpoint.rsplit(":", 1)[1]), rewrite_host=True)
        env.delenv("STORAGE_EMULATOR_HOST")
        env.setenv("CLOUD_STORAGE_EMULATOR_ENDPOINT", proxy.endpoint)
        found = Target(f"gs://{BUCKET}/model.safetensors", model, proxy, "RUNAI_STREAMER_GCS_")
    elif request.param == "hf":
        hub: HubServer = request.getfixturevalue("hub")
        env = request.getfixturevalue("monkeypatch")
        hub.commit("org/faults", {"model.safetensors": model.read_bytes()})
        proxy = FaultProxy(int(hub.endpoint.rsplit(":", 1)[1]))
        hub.cdn = proxy.endpoint + "/cdn"
        env.setenv("HF_ENDPOINT", proxy.endpoint)
        found = Target(
            "hf://org/faults/model.safetensors",
            model,
            proxy,
            "RUNAI_STREAMER_HF_",
            r"hf://org/faults@[0-9a-f]{40}/model\.safetensors",
        )
    else:
        azure: AzuriteServer = request.getfixturevalue("azure")
        env = request.getfixturevalue("azure_env")
        azure.create_container(BUCKET)
        azure.upload(BUCKET, "model.safetensors", model.read_bytes())
        proxy = FaultProxy(azure.port)
        env.setenv("AZURE_STORAGE_CONNECTION_STRING", azure.connection_string(proxy.port))
        found = Target(f"az://{BUCKET}/model.safetensors", model, proxy, "RUNAI_STREAMER_AZURE_")
    env.setenv("RUNAI_STREAMER_CHUNK_BYTESIZE", str(256 << 10))  # 8+ ranged GETs
    env.setenv(found.prefix + "LOW_SPEED_BYTES", "100000")
    env.setenv(found.prefix + "LOW_SPEED_SECONDS", "1")
    env.setenv(found.prefix + "RETRY_BASE_MS", "10")
    env.setenv(found.prefix + "MAX_ATTEMPTS", "4")
    yield found
    proxy.close()


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
    target: Target, faults: list[str]
) -> None:
    target.proxy.add(*faults)
    got = stream_tensors(target.uri)
    assert target.proxy.applied == faults  # the faults really happened
    expected = load_file(str(target.model))
    assert sorted(got) == sorted(expected)
    for name, tensor in expected.items():
        assert torch.equal(got[name], tensor), name


def test_a_proxy_from_the_environment_carries_every_request(
    target: Target, monkeypatch: pytest.MonkeyPatch
) -> None:
    """With http_proxy set, data reads go through curl's own receive path (which speaks to
    proxies), and it retries and resumes as the direct path does."""
    for name in ("no_proxy", "NO_PROXY"):
        monkeypatch.delenv(name, raising=False)
    monkeypatch.setenv("http_proxy", target.proxy.endpoint)
    target.proxy.add("reset", "truncate")
    got = stream_tensors(target.uri)
    assert target.proxy.applied == ["reset", "truncate"]
    assert len(target.proxy.proxied) >= 8, target.proxy.proxied  # the 8+ ranged GETs
    expected = load_file(str(target.model))
    assert sorted(got) == sorted(expected)
    for name, tensor in expected.items():
        assert torch.equal(got[name], tensor), name


def test_a_wrong_content_range_is_an_error_never_data(target: Target) -> None:
    target.proxy.add("wrong_range")
    with pytest.raises(RunaiStreamerError) as raised:
        stream_tensors(target.uri)
    assert target.named_in(str(raised.value)) and "Content-Range" in str(raised.value)


def test_too_many_503s_fail_after_the_configured_attempts(target: Target) -> None:
    target.proxy.add(*["slowdown"] * 20)
    with pytest.raises(RunaiStreamerError) as raised:
        stream_tensors(target.uri)
    message = str(raised.value)
    assert target.named_in(message) and "HTTP 503" in message and "after 4 attempts" in message


def test_server_killed_mid_stream_fails_within_the_timeouts(
    target: Target, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("RUNAI_STREAMER_MEMORY_LIMIT", "0")  # one tensor at a time
    start = time.monotonic()
    names = []
    with pytest.raises(OSError) as raised, SafetensorsStreamer() as streamer:
        streamer.stream_file(target.uri)
        for name, _ in streamer.get_tensors():
            names.append(name)
            if len(names) == 2:
                target.proxy.kill()
    assert 2 <= len(names) < 16
    assert target.named_in(str(raised.value)), raised.value
    assert time.monotonic() - start < 30
