"""az:// against Azurite on 127.0.0.1, which checks SharedKey signatures and SAS tokens: the
connection string (account key or SAS, BlobEndpoint over http), account name + key or SAS
variables, bearer tokens from azure-identity, paginated listing, and errors."""

from __future__ import annotations

import datetime
import os
import stat
import sys
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
from runai_model_streamer._errors import StreamerPermissionError
from safetensors.torch import save

from .model_files import NAMES, check_stream, write_shards
from .servers import AZURITE_ACCOUNT, AZURITE_KEY, AzuriteServer

CONTAINER = "azure-models"
URIS = [f"az://{CONTAINER}/{name}" for name in NAMES]
#: a valid base64 key that is not the account's
WRONG_KEY = "d3Jvbmcta2V5LXdyb25nLWtleS13cm9uZy1rZXktd3Jvbmcta2V5LXdyb25nLWtleQ=="


@pytest.fixture(scope="module")
def model(azure: AzuriteServer, tmp_path_factory: pytest.TempPathFactory) -> dict[str, Path]:
    azure.create_container(CONTAINER)
    return write_shards(
        tmp_path_factory.mktemp("azure-model"),
        lambda name, data: azure.upload(CONTAINER, name, data),
    )


def _sas(expiry: datetime.datetime) -> str:
    from azure.storage.blob import ContainerSasPermissions, generate_container_sas

    return str(
        generate_container_sas(
            AZURITE_ACCOUNT,
            CONTAINER,
            account_key=AZURITE_KEY,
            permission=ContainerSasPermissions(read=True, list=True),
            expiry=expiry,
        )
    )


def _in(hours: float) -> datetime.datetime:
    return datetime.datetime.now(datetime.timezone.utc) + datetime.timedelta(hours=hours)


def test_stream_a_model_with_the_connection_string(
    model: dict[str, Path], azure_env: pytest.MonkeyPatch
) -> None:
    del azure_env
    check_stream(URIS, [model[name] for name in NAMES])


def test_account_name_and_key_variables(
    azure: AzuriteServer, model: dict[str, Path], azure_env: pytest.MonkeyPatch
) -> None:
    azure_env.delenv("AZURE_STORAGE_CONNECTION_STRING")
    azure_env.setenv("AZURE_STORAGE_ACCOUNT_NAME", AZURITE_ACCOUNT)
    azure_env.setenv("AZURE_STORAGE_ACCOUNT_KEY", AZURITE_KEY)
    azure_env.setenv("RUNAI_STREAMER_AZURE_BLOB_ENDPOINT", azure.blob_endpoint())
    check_stream(URIS[:1], [model[NAMES[0]]])


@pytest.mark.parametrize("where", ["variable", "connection string"])
def test_sas_tokens_are_checked_by_the_server(
    azure: AzuriteServer, model: dict[str, Path], azure_env: pytest.MonkeyPatch, where: str
) -> None:
    def use(sas: str) -> None:
        if where == "variable":
            azure_env.delenv("AZURE_STORAGE_CONNECTION_STRING", raising=False)
            azure_env.setenv("AZURE_STORAGE_ACCOUNT_NAME", AZURITE_ACCOUNT)
            azure_env.setenv("AZURE_STORAGE_SAS_TOKEN", "?" + sas)
            azure_env.setenv("RUNAI_STREAMER_AZURE_BLOB_ENDPOINT", azure.blob_endpoint())
        else:
            azure_env.setenv(
                "AZURE_STORAGE_CONNECTION_STRING",
                f"BlobEndpoint={azure.blob_endpoint()};AccountName={AZURITE_ACCOUNT};"
                f"SharedAccessSignature={sas}",
            )

    use(_sas(_in(1)))
    check_stream(URIS[1:2], [model[NAMES[1]]])
    assert list_safetensors(f"az://{CONTAINER}/model/") == sorted(URIS)

    expired = _sas(_in(-1))
    use(expired)
    with pytest.raises(StreamerPermissionError) as raised, SafetensorsStreamer() as streamer:
        streamer.stream_file(URIS[0])
    message = str(raised.value)
    assert URIS[0] in message and "HTTP 403" in message and "attempts" not in message, message
    assert expired.split("sig=")[1].split("&")[0] not in message  # the signature is a secret


def test_a_wrong_key_fails_fast_with_the_service_code(
    azure: AzuriteServer, model: dict[str, Path], azure_env: pytest.MonkeyPatch
) -> None:
    del model
    azure_env.setenv("AZURE_STORAGE_CONNECTION_STRING", azure.connection_string(key=WRONG_KEY))
    with pytest.raises(StreamerPermissionError) as raised, SafetensorsStreamer() as streamer:
        streamer.stream_file(URIS[0])
    message = str(raised.value)
    assert URIS[0] in message and "HTTP 403 AuthorizationFailure" in message, message
    assert "attempts" not in message and WRONG_KEY not in message, message


def test_list_and_pull_past_one_page(
    model: dict[str, Path], azure_env: pytest.MonkeyPatch, tmp_path: Path
) -> None:
    azure_env.setenv("RUNAI_STREAMER_AZURE_LIST_PAGE_SIZE", "2")  # 5 blobs + a prefix
    assert list_safetensors(f"az://{CONTAINER}/model/") == sorted(URIS)
    pull_files(f"az://{CONTAINER}/model/", tmp_path)
    for name, path in model.items():
        assert (tmp_path / name.removeprefix("model/")).read_bytes() == path.read_bytes()
    assert (tmp_path / "config.json").read_bytes() == b"{}"
    assert (tmp_path / "sub" / "extra.txt").read_bytes() == b"extra"


FAKE_AZ = """#!{python}
# `az account get-access-token`, as azure-identity's AzureCliCredential runs it: a new token
# (an unsigned JWT with Entra ID's claims, which Azurite's basic OAuth checks) per call.
import base64, json, os, time
count_file = os.environ["FAKE_AZ_COUNT"]
count = int(open(count_file).read() or 0) + 1 if os.path.exists(count_file) else 1
open(count_file, "w").write(str(count))
lifetime = int(os.environ.get("FAKE_AZ_LIFETIME", "3600"))
now = int(time.time())
def part(data):
    return base64.urlsafe_b64encode(json.dumps(data).encode()).rstrip(b"=").decode()
claims = {{"aud": "https://storage.azure.com", "iat": now - 60, "nbf": now - 60,
          "iss": "https://sts.windows.net/00000000-0000-0000-0000-000000000001/",
          "exp": now + lifetime, "n": count}}
token = part({{"alg": "none", "typ": "JWT"}}) + "." + part(claims) + ".sig"
print(json.dumps({{"accessToken": token, "expires_on": now + lifetime}}))
"""


@pytest.fixture(scope="module")
def tls_model(
    azure_tls: AzuriteServer, tmp_path_factory: pytest.TempPathFactory
) -> dict[str, Path]:
    azure_tls.create_container(CONTAINER)
    return write_shards(
        tmp_path_factory.mktemp("azure-tls-model"),
        lambda name, data: azure_tls.upload(CONTAINER, name, data),
    )


@pytest.fixture
def tls_env(azure_tls: AzuriteServer, azure_env: pytest.MonkeyPatch) -> pytest.MonkeyPatch:
    """No Azure settings; Azurite's certificate trusted."""
    azure_env.delenv("AZURE_STORAGE_CONNECTION_STRING")
    azure_env.setenv("SSL_CERT_FILE", str(azure_tls.certificate))
    return azure_env


def _fake_az(directory: Path, env: pytest.MonkeyPatch) -> Path:
    """An `az` on PATH for azure-identity's AzureCliCredential; returns its call counter."""
    az = directory / "bin" / "az"
    az.parent.mkdir()
    az.write_text(FAKE_AZ.format(python=sys.executable))
    az.chmod(az.stat().st_mode | stat.S_IEXEC)
    env.setenv("PATH", f"{az.parent}{os.pathsep}{os.environ['PATH']}")
    env.setenv("FAKE_AZ_COUNT", str(directory / "count"))
    env.setenv("AZURE_TOKEN_CREDENTIALS", "AzureCliCredential")  # no IMDS probe
    return directory / "count"


def test_https_blob_urls_over_tls_with_shared_key(
    azure_tls: AzuriteServer, tls_model: dict[str, Path], tls_env: pytest.MonkeyPatch
) -> None:
    tls_env.setenv("AZURE_STORAGE_ACCOUNT_NAME", AZURITE_ACCOUNT)
    tls_env.setenv("AZURE_STORAGE_ACCOUNT_KEY", AZURITE_KEY)
    base = f"{azure_tls.production_url()}/{CONTAINER}"
    check_stream([f"{base}/{name}" for name in NAMES], [tls_model[name] for name in NAMES])
    assert list_safetensors(f"{base}/model/") == sorted(f"{base}/{name}" for name in NAMES)

    other = f"https://otheraccount.blob.localhost:{azure_tls.port}/{CONTAINER}/{NAMES[0]}"
    with pytest.raises(StreamerPermissionError) as raised, SafetensorsStreamer() as streamer:
        streamer.stream_file(other)
    assert "for account 'devstoreaccount1', not 'otheraccount'" in str(raised.value)


def test_bearer_tokens_from_azure_identity_are_checked_and_refreshed(
    azure_tls: AzuriteServer,
    tls_model: dict[str, Path],
    tls_env: pytest.MonkeyPatch,
    tmp_path: Path,
) -> None:
    from runai_model_streamer_azure import backend_options

    count = _fake_az(tmp_path, tls_env)
    # https:// URLs need no configured account: the token serves any.
    url = f"{azure_tls.production_url()}/{CONTAINER}/{NAMES[0]}"
    check_stream([url], [tls_model[NAMES[0]]])
    assert count.read_text() == "1"
    check_stream([url], [tls_model[NAMES[0]]])
    assert count.read_text() == "1"  # still valid: cached
    # az:// with the account and an endpoint.
    tls_env.setenv("AZURE_STORAGE_ACCOUNT_NAME", AZURITE_ACCOUNT)
    tls_env.setenv("RUNAI_STREAMER_AZURE_BLOB_ENDPOINT", azure_tls.blob_endpoint())
    check_stream(URIS[1:2], [tls_model[NAMES[1]]])
    assert count.read_text() == "2"  # other AZURE_* settings: a new token source
    tls_env.setenv("FAKE_AZ_LIFETIME", "60")  # inside the refresh margin
    tls_env.setenv("AZURE_CLIENT_ID", "changed")  # a new token source
    first = backend_options()["access_token"]
    second = backend_options()["access_token"]  # expiring: refreshed again
    assert first != second and count.read_text() == "4"
    check_stream(URIS[2:3], [tls_model[NAMES[2]]])  # a refreshed token is accepted too

    # A token the server rejects is a clear error, and the token is not in it.
    tls_env.setenv("PATH", os.environ["PATH"].split(os.pathsep, 1)[1])  # no fake az
    tls_env.setenv("AZURE_CLIENT_ID", "gone")
    with pytest.raises(StreamerConfigError) as raised, SafetensorsStreamer() as streamer:
        streamer.stream_file(URIS[0])
    assert "no usable Azure credentials" in str(raised.value)


def test_urls_that_are_not_azure_blob_urls_are_refused(
    azure_env: pytest.MonkeyPatch,
) -> None:
    del azure_env
    with pytest.raises(RunaiStreamerError) as raised, SafetensorsStreamer() as streamer:
        streamer.stream_file("https://example.invalid/models/model.safetensors")
    assert "not an Azure Blob URL" in str(raised.value), raised.value


@pytest.mark.parametrize(
    ("uri", "expected"),
    [
        (f"az://{CONTAINER}/model/missing.safetensors", "HTTP 404 BlobNotFound"),
        ("az://no-such-container/model.safetensors", "HTTP 404 ContainerNotFound"),
        ("az:///model.safetensors", "names no container"),
        (f"az://{CONTAINER}", "names a container, not a blob"),
    ],
)
def test_errors_name_the_uri_and_the_service_code(
    model: dict[str, Path], azure_env: pytest.MonkeyPatch, uri: str, expected: str
) -> None:
    del model, azure_env
    with pytest.raises(RunaiStreamerError) as raised, SafetensorsStreamer() as streamer:
        streamer.stream_file(uri)
    assert uri in str(raised.value) and expected in str(raised.value), raised.value


@pytest.mark.parametrize(
    ("variable", "value"),
    [
        ("AZURE_STORAGE_CONNECTION_STRING", "AccountName=devstoreaccount1;garbage"),
        ("AZURE_STORAGE_CONNECTION_STRING", "AccountKey=abc"),  # no AccountName
        ("AZURE_STORAGE_CONNECTION_STRING", "AccountName=a;AccountKey=not-base64!"),
        ("RUNAI_STREAMER_AZURE_USE_ANONYMOUS_CREDENTIALS", "true"),
        ("RUNAI_STREAMER_AZURE_LIST_PAGE_SIZE", "0"),
        ("RUNAI_STREAMER_AZURE_LOW_SPEED_SECONDS", "-1"),
    ],
)
def test_bad_environment_values_name_the_variable(
    model: dict[str, Path], azure_env: pytest.MonkeyPatch, variable: str, value: str
) -> None:
    del model
    azure_env.setenv(variable, value)
    with pytest.raises(StreamerConfigError) as raised, SafetensorsStreamer() as streamer:
        streamer.stream_file(URIS[0])
    assert variable in str(raised.value), raised.value
    assert "not-base64" not in str(raised.value)


def test_no_account_at_all_is_a_clear_error(azure_env: pytest.MonkeyPatch) -> None:
    azure_env.delenv("AZURE_STORAGE_CONNECTION_STRING")
    with pytest.raises(StreamerConfigError) as raised, SafetensorsStreamer() as streamer:
        streamer.stream_file(URIS[0])
    assert "AZURE_STORAGE_ACCOUNT_NAME" in str(raised.value), raised.value


def test_a_uri_asks_for_exactly_the_blob_named(
    azure: AzuriteServer, azure_env: pytest.MonkeyPatch, tmp_path: Path
) -> None:
    """Azure keeps empty segments in blob names and refuses names with "." or ".." segments
    (the SDK cannot even upload them); a URI with such segments is asked for as written, so it
    is a missing blob, never the blob its normalised form names."""
    from runai_model_streamer import SafetensorsStreamer

    azure.create_container("exact")
    tensors = {"exact.w": torch.randn(4, 3)}
    azure.upload("exact", "m/b//z.safetensors", save(tensors))
    for twin in ("m/b/z.safetensors", "m/x.safetensors", "m/y.safetensors"):
        azure.upload("exact", twin, save({"twin.w": torch.zeros(2)}))
    (tmp_path / "z.safetensors").write_bytes(save(tensors))
    check_stream(["az://exact/m/b//z.safetensors"], [tmp_path / "z.safetensors"])
    for uri in ("az://exact/m/a/../x.safetensors", "az://exact/m/./y.safetensors"):
        with pytest.raises(FileNotFoundError) as raised, SafetensorsStreamer() as streamer:
            streamer.stream_file(uri)
        assert uri in str(raised.value) and "BlobNotFound" in str(raised.value)
