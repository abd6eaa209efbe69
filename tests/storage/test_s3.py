"""s3:// against real servers: SeaweedFS (checks SigV4) and moto, both on 127.0.0.1."""

from __future__ import annotations

import contextlib
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

import pytest
import torch
from runai_model_streamer import (
    FileChunks,
    FileStreamer,
    RunaiStreamerError,
    SafetensorsStreamer,
    list_safetensors,
    pull_files,
)
from runai_model_streamer.s3_utils.s3_utils import S3Credentials
from safetensors.torch import save_file

from .model_files import check_stream
from .servers import ACCESS_KEY, SECRET_KEY, S3Server

#: object keys that need encoding: spaces, unicode, '+', '=', '~'
KEYS = ["model/shard one.safetensors", "model/ሴ-é+2.safetensors", "model/three=3~.safetensors"]


def _upload_model(server: S3Server, bucket: str, directory: Path) -> dict[str, Path]:
    client = server.client()
    with contextlib.suppress(client.exceptions.BucketAlreadyOwnedByYou):
        client.create_bucket(Bucket=bucket)
    local = {}
    for index, key in enumerate(KEYS):
        path = directory / f"shard{index}.safetensors"
        tensors = {f"s{index}.w{j}": torch.randn(64 + j, 32 + index) for j in range(40)}
        tensors[f"s{index}.ids"] = torch.arange(1000 + index, dtype=torch.int64)
        tensors[f"s{index}.half"] = torch.randn(3, 5).to(torch.bfloat16)
        save_file(tensors, str(path))
        client.put_object(Bucket=bucket, Key=key, Body=path.read_bytes())
        local[key] = path
    client.put_object(Bucket=bucket, Key="model/config.json", Body=b"{}")
    client.put_object(Bucket=bucket, Key="model/sub/extra.txt", Body=b"extra")
    return local


@pytest.fixture(scope="module")
def weed_model(weed: S3Server, tmp_path_factory: pytest.TempPathFactory) -> dict[str, Path]:
    return _upload_model(weed, "models", tmp_path_factory.mktemp("weed-model"))


@pytest.mark.parametrize("style", ["path", "virtual"])
def test_stream_a_model_from_seaweedfs(
    weed: S3Server, weed_model: dict[str, Path], s3_env: pytest.MonkeyPatch, style: str
) -> None:
    if style == "virtual":  # bucket.localhost:port; curl resolves *.localhost to loopback
        s3_env.setenv("AWS_ENDPOINT_URL", weed.endpoint.replace("127.0.0.1", "localhost"))
        s3_env.setenv("RUNAI_STREAMER_S3_USE_VIRTUAL_ADDRESSING", "1")
    else:
        s3_env.setenv("RUNAI_STREAMER_S3_ENDPOINT", weed.endpoint)  # what vLLM sets
    uris = [f"s3://models/{key}" for key in KEYS]
    check_stream(uris, [weed_model[key] for key in KEYS])


def test_explicit_credentials_and_endpoint(
    weed: S3Server, weed_model: dict[str, Path], s3_env: pytest.MonkeyPatch
) -> None:
    s3_env.delenv("AWS_ACCESS_KEY_ID")
    s3_env.delenv("AWS_SECRET_ACCESS_KEY")
    credentials = S3Credentials(ACCESS_KEY, SECRET_KEY, endpoint=weed.endpoint)
    check_stream([f"s3://models/{KEYS[0]}"], [weed_model[KEYS[0]]], s3_credentials=credentials)
    assert SECRET_KEY not in repr(credentials)


def test_64_requests_in_flight_over_hundreds_of_tensors(
    weed: S3Server, tmp_path: Path, s3_env: pytest.MonkeyPatch
) -> None:
    s3_env.setenv("AWS_ENDPOINT_URL", weed.endpoint)
    s3_env.setenv("RUNAI_STREAMER_CONCURRENCY", "64")
    s3_env.setenv("RUNAI_STREAMER_CHUNK_BYTESIZE", "65536")  # many part-GETs per tensor
    path = tmp_path / "many.safetensors"
    save_file({f"t{i:03d}": torch.randn(97 + i, 53) for i in range(300)}, str(path))
    weed.client().put_object(Bucket="models", Key="many/model.safetensors", Body=path.read_bytes())
    check_stream(["s3://models/many/model.safetensors"], [path])


def test_byte_ranges_with_file_streamer(
    weed: S3Server, weed_model: dict[str, Path], s3_env: pytest.MonkeyPatch
) -> None:
    s3_env.setenv("AWS_ENDPOINT_URL", weed.endpoint)
    data = weed_model[KEYS[1]].read_bytes()
    offsets = [0, 1, len(data) - 7, 4096, 100000]
    sizes = [1, 8, 7, 65536, len(data) - 100000]
    with FileStreamer() as streamer:
        streamer.stream_files([FileChunks(0, f"s3://models/{KEYS[1]}", offsets, sizes)])
        chunks = {index: bytes(t.numpy()) for _, index, t in streamer.get_chunks()}
    ranges = enumerate(zip(offsets, sizes, strict=True))
    assert chunks == {i: data[o : o + s] for i, (o, s) in ranges}


def test_list_and_pull(
    weed: S3Server, weed_model: dict[str, Path], s3_env: pytest.MonkeyPatch, tmp_path: Path
) -> None:
    s3_env.setenv("AWS_ENDPOINT_URL", weed.endpoint)
    assert list_safetensors("s3://models/model") == sorted(f"s3://models/{k}" for k in KEYS)
    pull_files("s3://models/model/", tmp_path, ignore_pattern=["*.safetensors"])
    assert (tmp_path / "config.json").read_bytes() == b"{}"
    assert (tmp_path / "sub" / "extra.txt").read_bytes() == b"extra"  # recursive


def test_listing_of_more_than_1000_objects_is_whole(
    weed: S3Server, s3_env: pytest.MonkeyPatch
) -> None:
    s3_env.setenv("AWS_ENDPOINT_URL", weed.endpoint)
    client = weed.client()
    client.create_bucket(Bucket="wide")
    names = [f"w/{i:04d}.safetensors" for i in range(1003)]
    with ThreadPoolExecutor(8) as pool:
        list(pool.map(lambda key: client.put_object(Bucket="wide", Key=key, Body=b""), names))
    assert list_safetensors("s3://wide/w/") == [f"s3://wide/{n}" for n in names]


def test_unsigned_requests_read_a_public_bucket(
    weed: S3Server, tmp_path: Path, s3_env: pytest.MonkeyPatch
) -> None:
    client = weed.client()
    client.create_bucket(Bucket="public-bucket")
    path = tmp_path / "public.safetensors"
    save_file({"w": torch.randn(10, 10)}, str(path))
    client.put_object(Bucket="public-bucket", Key="m.safetensors", Body=path.read_bytes())
    s3_env.delenv("AWS_ACCESS_KEY_ID")
    s3_env.delenv("AWS_SECRET_ACCESS_KEY")
    s3_env.setenv("AWS_ENDPOINT_URL", weed.endpoint)
    s3_env.setenv("RUNAI_STREAMER_S3_UNSIGNED", "1")
    check_stream(["s3://public-bucket/m.safetensors"], [path])
    # the same anonymous caller is denied a private bucket, with the service's code
    with SafetensorsStreamer() as streamer, pytest.raises(PermissionError) as raised:
        streamer.stream_file(f"s3://models/{KEYS[0]}")
    assert "AccessDenied" in str(raised.value) and f"s3://models/{KEYS[0]}" in str(raised.value)


@pytest.mark.parametrize(
    ("uri", "secret", "error", "code"),
    [
        ("s3://models/model/missing.safetensors", SECRET_KEY, FileNotFoundError, "NoSuchKey"),
        ("s3://no-such-bucket/m.safetensors", SECRET_KEY, FileNotFoundError, "NoSuchBucket"),
        (f"s3://models/{KEYS[0]}", "wrong-secret", PermissionError, "SignatureDoesNotMatch"),
    ],
)
def test_errors_name_the_uri_and_the_service_code(
    weed: S3Server,
    weed_model: dict[str, Path],
    s3_env: pytest.MonkeyPatch,
    uri: str,
    secret: str,
    error: type[Exception],
    code: str,
) -> None:
    s3_env.setenv("AWS_ENDPOINT_URL", weed.endpoint)
    s3_env.setenv("AWS_SECRET_ACCESS_KEY", secret)
    with SafetensorsStreamer() as streamer, pytest.raises(error) as raised:
        streamer.stream_file(uri)
    message = str(raised.value)
    assert isinstance(raised.value, RunaiStreamerError)
    assert uri in message and code in message and "request id" in message, message
    assert secret not in message


def test_refused_connection_is_a_clear_error(s3_env: pytest.MonkeyPatch) -> None:
    from .servers import free_port

    s3_env.setenv("AWS_ENDPOINT_URL", f"http://127.0.0.1:{free_port()}")
    s3_env.setenv("RUNAI_STREAMER_S3_MAX_ATTEMPTS", "2")
    s3_env.setenv("RUNAI_STREAMER_S3_RETRY_BASE_MS", "10")
    with SafetensorsStreamer() as streamer, pytest.raises(OSError) as raised:
        streamer.stream_file("s3://models/x.safetensors")
    message = str(raised.value)
    assert "s3://models/x.safetensors" in message and "after 2 attempts" in message, message


def test_https_verifies_the_server_with_the_ca_bundle_it_is_given(
    weed_tls: S3Server, s3_env: pytest.MonkeyPatch, tmp_path: Path
) -> None:
    assert weed_tls.certificate is not None and weed_tls.endpoint.startswith("https://")
    local = _upload_model(weed_tls, "tls-models", tmp_path)
    uris = [f"s3://tls-models/{key}" for key in KEYS]
    s3_env.setenv("AWS_ENDPOINT_URL", weed_tls.endpoint)
    for name in ("SSL_CERT_FILE", "CURL_CA_BUNDLE", "REQUESTS_CA_BUNDLE"):
        s3_env.delenv(name, raising=False)
    s3_env.setenv("AWS_CA_BUNDLE", str(weed_tls.certificate))
    check_stream(uris, [local[key] for key in KEYS])

    # The machine's own CAs do not trust a self-signed certificate: a clear error, no retries.
    s3_env.delenv("AWS_CA_BUNDLE")
    with SafetensorsStreamer() as streamer, pytest.raises(OSError) as raised:
        streamer.stream_file(uris[0])
    message = str(raised.value)
    assert uris[0] in message and "certificate" in message.lower(), message


def test_bad_environment_values_name_the_variable(s3_env: pytest.MonkeyPatch) -> None:
    from runai_model_streamer import StreamerConfigError

    for name, value in [
        ("RUNAI_STREAMER_S3_USE_VIRTUAL_ADDRESSING", "yes"),
        ("RUNAI_STREAMER_S3_MAX_ATTEMPTS", "0"),
        ("AWS_CA_BUNDLE", "/nonexistent/ca.pem"),
    ]:
        with s3_env.context() as env:
            env.setenv(name, value)
            with SafetensorsStreamer() as streamer, pytest.raises(StreamerConfigError) as raised:
                streamer.stream_file("s3://models/x.safetensors")
            assert name in str(raised.value), raised.value


def test_moto_with_a_session_token_and_a_slow_server(
    moto: S3Server, tmp_path: Path, s3_env: pytest.MonkeyPatch
) -> None:
    local = _upload_model(moto, "slow", tmp_path)
    s3_env.setenv("AWS_ENDPOINT_URL", moto.endpoint)
    s3_env.setenv("AWS_SESSION_TOKEN", "a-session-token")
    check_stream([f"s3://slow/{key}" for key in KEYS], [local[key] for key in KEYS])


def test_cli_streams_an_s3_uri(
    weed: S3Server, weed_model: dict[str, Path], s3_env: pytest.MonkeyPatch
) -> None:
    import subprocess
    import sys

    s3_env.setenv("AWS_ENDPOINT_URL", weed.endpoint)
    uri = f"s3://models/{KEYS[0]}"
    done = subprocess.run(
        [sys.executable, "-m", "runai_model_streamer", "stream", uri],
        capture_output=True,
        text=True,
        timeout=120,
        check=False,
    )
    assert done.returncode == 0, done.stderr
    assert "streamed 42 tensors" in done.stdout and "GB/s" in done.stdout, done.stdout
    verified = subprocess.run(  # against a downloaded copy, read by safetensors
        [sys.executable, "-m", "runai_model_streamer", "stream", uri, "--verify"],
        capture_output=True,
        text=True,
        timeout=120,
        check=False,
    )
    assert verified.returncode == 0, verified.stderr
    assert "verify: all 42 tensors equal the safetensors package's" in verified.stdout
