"""gs:// against fake-gcs-server on 127.0.0.1: the JSON API (anonymous and bearer tokens from
google-auth credential files) and the XML API (HMAC keys, GOOG4 signing)."""

from __future__ import annotations

import json
from collections.abc import Iterator
from pathlib import Path

import pytest
import torch
from runai_model_streamer import (
    RunaiStreamerError,
    SafetensorsStreamer,
    StreamerConfigError,
    list_safetensors,
    pull_files,
)
from safetensors.torch import save

from .fault_proxy import FaultProxy
from .model_files import NAMES, check_stream, write_shards
from .oauth_server import TokenServer
from .servers import GcsServer

BUCKET = "gcs-models"
HMAC_ID = "GOOG1EXAMPLEHMACACCESSID"
HMAC_SECRET = "hmac-secret-never-in-messages"


@pytest.fixture(scope="module")
def model(gcs: GcsServer, tmp_path_factory: pytest.TempPathFactory) -> dict[str, Path]:
    gcs.create_bucket(BUCKET)
    return write_shards(
        tmp_path_factory.mktemp("gcs-model"), lambda name, data: gcs.upload(BUCKET, name, data)
    )


@pytest.fixture
def proxy(gcs: GcsServer, gcs_env: pytest.MonkeyPatch) -> Iterator[FaultProxy]:
    fault_proxy = FaultProxy(int(gcs.endpoint.rsplit(":", 1)[1]), rewrite_host=True)
    gcs_env.delenv("STORAGE_EMULATOR_HOST")
    gcs_env.setenv("CLOUD_STORAGE_EMULATOR_ENDPOINT", fault_proxy.endpoint)
    yield fault_proxy
    fault_proxy.close()


URIS = [f"gs://{BUCKET}/{name}" for name in NAMES]


@pytest.mark.parametrize("variable", ["STORAGE_EMULATOR_HOST", "CLOUD_STORAGE_EMULATOR_ENDPOINT"])
def test_stream_a_model_anonymously_from_the_emulator(
    gcs: GcsServer, model: dict[str, Path], gcs_env: pytest.MonkeyPatch, variable: str
) -> None:
    gcs_env.delenv("STORAGE_EMULATOR_HOST")
    gcs_env.setenv(variable, gcs.endpoint)
    check_stream(URIS, [model[name] for name in NAMES])


def test_list_and_pull_past_one_page(
    model: dict[str, Path], gcs_env: pytest.MonkeyPatch, tmp_path: Path
) -> None:
    gcs_env.setenv("RUNAI_STREAMER_GCS_LIST_PAGE_SIZE", "2")  # 5 objects + a prefix: 3 pages
    assert sorted(list_safetensors(f"gs://{BUCKET}/model/")) == sorted(URIS)
    pulled = tmp_path / "pulled"
    pull_files(f"gs://{BUCKET}/model/", pulled)
    for name, path in model.items():
        assert (pulled / name.removeprefix("model/")).read_bytes() == path.read_bytes()
    assert (pulled / "config.json").read_bytes() == b"{}"
    assert (pulled / "sub" / "extra.txt").read_bytes() == b"extra"


def _service_account_file(directory: Path, token_uri: str) -> Path:
    from cryptography.hazmat.primitives import serialization
    from cryptography.hazmat.primitives.asymmetric import rsa

    key = rsa.generate_private_key(public_exponent=65537, key_size=2048)
    pem = key.private_bytes(
        serialization.Encoding.PEM, serialization.PrivateFormat.PKCS8, serialization.NoEncryption()
    ).decode()
    info = {
        "type": "service_account",
        "project_id": "test",
        "private_key_id": "1",
        "private_key": pem,
        "client_email": "streamer@test.iam.gserviceaccount.com",
        "client_id": "1",
        "token_uri": token_uri,
    }
    path = directory / "service-account.json"
    path.write_text(json.dumps(info))
    return path


# (gcloud's authorized_user files always refresh at oauth2.googleapis.com: google-auth ignores
# their token_uri, so only service-account files can be pointed at a local token server.)
@pytest.mark.parametrize(
    "variable", ["GOOGLE_APPLICATION_CREDENTIALS", "RUNAI_STREAMER_GCS_CREDENTIAL_FILE"]
)
def test_tokens_from_a_credential_file_reach_the_server_and_are_refreshed(
    proxy: FaultProxy,
    model: dict[str, Path],
    gcs_env: pytest.MonkeyPatch,
    tmp_path: Path,
    variable: str,
) -> None:
    from runai_model_streamer import _stream

    token_server = TokenServer(expires_in=3600)
    try:
        gcs_env.setenv(variable, str(_service_account_file(tmp_path, token_server.url)))
        check_stream(URIS[:1], [model[NAMES[0]]])
        assert proxy.bearer_tokens and set(proxy.bearer_tokens) == {"tok-1"}

        # Tokens that expire within the refresh margin are replaced while a stream goes on.
        token_server.expires_in = 60
        gcs_env.setattr(_stream, "REFRESH_SECONDS", 0.0)  # fresh options at every window
        gcs_env.setenv("RUNAI_STREAMER_MEMORY_LIMIT", "0")  # one tensor per window
        gcs_env.setenv("GOOGLE_CLOUD_QUOTA_PROJECT", "new-credentials")  # a new token source
        proxy.bearer_tokens.clear()
        check_stream(URIS[1:2], [model[NAMES[1]]])
        assert len(set(proxy.bearer_tokens)) >= 3, proxy.bearer_tokens
    finally:
        token_server.close()


def test_hmac_keys_sign_xml_api_requests(
    proxy: FaultProxy, model: dict[str, Path], gcs_env: pytest.MonkeyPatch, tmp_path: Path
) -> None:
    gcs_env.setenv("RUNAI_STREAMER_GCS_HMAC_ACCESS_ID", HMAC_ID)
    gcs_env.setenv("RUNAI_STREAMER_GCS_HMAC_SECRET", HMAC_SECRET)
    gcs_env.setenv("RUNAI_STREAMER_GCS_LIST_PAGE_SIZE", "2")
    check_stream(URIS, [model[name] for name in NAMES])
    assert sorted(list_safetensors(f"gs://{BUCKET}/model/")) == sorted(URIS)
    assert proxy.access_keys and set(proxy.access_keys) == {HMAC_ID}
    with pytest.raises(RunaiStreamerError) as raised, SafetensorsStreamer() as streamer:
        streamer.stream_file(f"gs://{BUCKET}/missing.safetensors")
    assert "404" in str(raised.value) and HMAC_SECRET not in str(raised.value)


@pytest.mark.parametrize(
    ("uri", "expected"),
    [
        (f"gs://{BUCKET}/model/missing.safetensors", "HTTP 404"),
        ("gs://no-such-bucket/model.safetensors", "HTTP 404"),
        ("gs:///model.safetensors", "names no bucket"),
        (f"gs://{BUCKET}", "names a bucket, not an object"),
    ],
)
def test_errors_name_the_uri_and_the_cause(
    model: dict[str, Path], gcs_env: pytest.MonkeyPatch, uri: str, expected: str
) -> None:
    del model
    with pytest.raises(RunaiStreamerError) as raised, SafetensorsStreamer() as streamer:
        streamer.stream_file(uri)
    assert uri in str(raised.value) and expected in str(raised.value), raised.value


@pytest.mark.parametrize(
    ("variable", "value"),
    [
        ("RUNAI_STREAMER_GCS_USE_ANONYMOUS_CREDENTIALS", "yes"),
        ("RUNAI_STREAMER_GCS_LIST_PAGE_SIZE", "0"),
        ("RUNAI_STREAMER_GCS_MAX_ATTEMPTS", "many"),
        ("RUNAI_STREAMER_GCS_CREDENTIAL_FILE", "/nonexistent/key.json"),
        ("RUNAI_STREAMER_GCS_HMAC_ACCESS_ID", HMAC_ID),  # without its secret
        ("CLOUD_STORAGE_EMULATOR_ENDPOINT", "ftp://127.0.0.1:1"),
    ],
)
def test_bad_environment_values_name_the_variable(
    model: dict[str, Path], gcs_env: pytest.MonkeyPatch, variable: str, value: str
) -> None:
    del model
    gcs_env.setenv(variable, value)
    with pytest.raises(StreamerConfigError) as raised, SafetensorsStreamer() as streamer:
        streamer.stream_file(URIS[0])
    assert variable in str(raised.value), raised.value


def test_no_credentials_at_all_is_a_clear_error(gcs_env: pytest.MonkeyPatch) -> None:
    gcs_env.delenv("STORAGE_EMULATOR_HOST")
    gcs_env.setenv("NO_GCE_CHECK", "True")  # google-auth must not probe the metadata server
    gcs_env.setenv("GCE_METADATA_HOST", "127.0.0.1:9")
    gcs_env.setenv("GCE_METADATA_IP", "127.0.0.1:9")
    gcs_env.setenv("CLOUDSDK_CONFIG", "/nonexistent")  # no gcloud user ADC either
    with pytest.raises(StreamerConfigError) as raised, SafetensorsStreamer() as streamer:
        streamer.stream_file(URIS[0])
    message = str(raised.value)
    assert "no usable Google credentials" in message and "ANONYMOUS" in message, message


def test_a_uri_asks_for_exactly_the_object_named(
    gcs: GcsServer, gcs_env: pytest.MonkeyPatch, tmp_path: Path
) -> None:
    """Dot and empty segments are part of the object's name (the JSON API encodes it whole),
    never resolved into another object's."""
    gcs.create_bucket("gcs-exact")
    names = ["exact/a/../x.safetensors", "exact/./y.safetensors", "exact/b//z.safetensors"]
    twins = ["exact/x.safetensors", "exact/y.safetensors", "exact/b/z.safetensors"]
    paths = []
    for index, (name, twin) in enumerate(zip(names, twins, strict=True)):
        tensors = {f"exact{index}.w": torch.randn(4, 3 + index)}
        gcs.upload("gcs-exact", name, save(tensors))
        gcs.upload("gcs-exact", twin, save({f"twin{index}.w": torch.zeros(2)}))
        paths.append(tmp_path / f"{index}.safetensors")
        paths[-1].write_bytes(save(tensors))
    check_stream([f"gs://gcs-exact/{name}" for name in names], paths)
