"""Fixtures of the storage tests: real storage servers on 127.0.0.1, started once per session,
and environments holding only the settings a test gives."""

from __future__ import annotations

import os
from collections.abc import Iterator
from pathlib import Path

import pytest

from .hub_server import HubServer
from .servers import (
    ACCESS_KEY,
    SECRET_KEY,
    AzuriteServer,
    GcsServer,
    S3Server,
    azurite,
    fake_gcs_server,
    moto_server,
    seaweedfs,
)

#: variables of the clouds' libraries that a test must not inherit from the machine
GCS_PREFIXES = ("GOOGLE_", "CLOUDSDK_", "RUNAI_STREAMER_GCS_", "STORAGE_EMULATOR_HOST",
                "CLOUD_STORAGE_EMULATOR_ENDPOINT")  # fmt: skip
AZURE_PREFIXES = ("AZURE_", "IDENTITY_", "MSI_", "RUNAI_STREAMER_AZURE_")


@pytest.fixture(scope="session")
def weed(tmp_path_factory: pytest.TempPathFactory) -> Iterator[S3Server]:
    with seaweedfs(tmp_path_factory.mktemp("seaweedfs")) as server:
        yield server


@pytest.fixture(scope="session")
def weed_tls(tmp_path_factory: pytest.TempPathFactory) -> Iterator[S3Server]:
    """A second SeaweedFS, its S3 gateway over HTTPS with a self-signed certificate."""
    with seaweedfs(tmp_path_factory.mktemp("seaweedfs-tls"), tls=True) as server:
        yield server


@pytest.fixture(scope="session")
def moto(tmp_path_factory: pytest.TempPathFactory) -> Iterator[S3Server]:
    with moto_server(tmp_path_factory.mktemp("moto")) as server:
        yield server


@pytest.fixture
def s3_env(monkeypatch: pytest.MonkeyPatch) -> Iterator[pytest.MonkeyPatch]:
    """An environment with no AWS settings but the test credentials."""
    for name in list(os.environ):
        if name.startswith(("AWS_", "RUNAI_STREAMER_S3_")):
            monkeypatch.delenv(name)
    monkeypatch.setenv("AWS_ACCESS_KEY_ID", ACCESS_KEY)
    monkeypatch.setenv("AWS_SECRET_ACCESS_KEY", SECRET_KEY)
    monkeypatch.setenv("AWS_CONFIG_FILE", "/nonexistent")
    monkeypatch.setenv("AWS_SHARED_CREDENTIALS_FILE", "/nonexistent")
    monkeypatch.setenv("AWS_EC2_METADATA_DISABLED", "true")
    yield monkeypatch


@pytest.fixture(scope="session")
def gcs(tmp_path_factory: pytest.TempPathFactory) -> Iterator[GcsServer]:
    with fake_gcs_server(tmp_path_factory.mktemp("fake-gcs")) as server:
        yield server


@pytest.fixture(scope="session")
def azure(tmp_path_factory: pytest.TempPathFactory) -> Iterator[AzuriteServer]:
    with azurite(tmp_path_factory.mktemp("azurite")) as server:
        yield server


@pytest.fixture(scope="session")
def azure_tls(tmp_path_factory: pytest.TempPathFactory) -> Iterator[AzuriteServer]:
    with azurite(tmp_path_factory.mktemp("azurite-tls"), tls=True) as server:
        yield server


@pytest.fixture
def gcs_env(monkeypatch: pytest.MonkeyPatch, gcs: GcsServer) -> Iterator[pytest.MonkeyPatch]:
    """No Google settings but the emulator's endpoint (anonymous requests)."""
    for name in list(os.environ):
        if name.startswith(GCS_PREFIXES):
            monkeypatch.delenv(name)
    monkeypatch.setenv("STORAGE_EMULATOR_HOST", gcs.endpoint.removeprefix("http://"))
    yield monkeypatch


@pytest.fixture
def azure_env(
    monkeypatch: pytest.MonkeyPatch, azure: AzuriteServer
) -> Iterator[pytest.MonkeyPatch]:
    """No Azure settings but Azurite's connection string (SharedKey)."""
    for name in list(os.environ):
        if name.startswith(AZURE_PREFIXES):
            monkeypatch.delenv(name)
    monkeypatch.setenv("AZURE_STORAGE_CONNECTION_STRING", azure.connection_string())
    yield monkeypatch


@pytest.fixture
def hub(monkeypatch: pytest.MonkeyPatch, tmp_path: Path) -> Iterator[HubServer]:
    """A test Hub, and no Hugging Face settings but its endpoint (and a home with no token)."""
    for name in list(os.environ):
        if name.startswith(("HF_", "HUGGING_FACE_", "RUNAI_STREAMER_HF_")):
            monkeypatch.delenv(name)
    server = HubServer()
    monkeypatch.setenv("HF_ENDPOINT", server.endpoint)
    monkeypatch.setenv("HF_HOME", str(tmp_path / "hf-home"))
    monkeypatch.setenv("RUNAI_STREAMER_HF_RETRY_BASE_MS", "10")
    yield server
    server.close()
