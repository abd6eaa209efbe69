"""Fixtures of the vLLM tests: the tiny model on local disk and in each store, and a runner
that loads it with vLLM in a process of its own and returns the tokens and what was logged."""

from __future__ import annotations

import json
import os
import re
import subprocess
import sys
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from functools import partial
from pathlib import Path
from typing import Any

import pytest
from storage.servers import (
    ACCESS_KEY,
    SECRET_KEY,
    azurite,
    fake_gcs_server,
    seaweedfs,
)

from .tiny_model import write_model, write_sharded_state

HERE = Path(__file__).resolve().parent
#: a load that has not finished by then has hung (one takes 25-40 s on 2 cores)
LOAD_TIMEOUT = 420
#: variables of the machine that would change what a load does
INHERITED_PREFIXES = ("AWS_", "GOOGLE_", "AZURE_", "RUNAI_STREAMER_", "VLLM_", "HF_")
SUMMARY = re.compile(r"streamed (\d+) tensors from (\d+) files: .* \((concurrency \d+, [^)]*)\)")


@dataclass
class Load:
    """What one vLLM process did: its greedy tokens (None: it failed), its output, and the
    lines this package logged (RUNAI_STREAMER_LOG_FILE)."""

    tokens: list[list[int]] | None
    returncode: int
    output: str
    streamer_log: str

    def summaries(self) -> list[tuple[int, int, str]]:
        """(tensors, files, settings) of each stream this package logged."""
        return [(int(t), int(f), s) for t, f, s in SUMMARY.findall(self.streamer_log)]


Runner = Callable[..., Load]


@pytest.fixture(scope="session")
def run_vllm(tmp_path_factory: pytest.TempPathFactory) -> Runner:
    def run(
        model: str,
        load_format: str,
        extra_config: dict[str, Any] | None = None,
        env: dict[str, str] | None = None,
    ) -> Load:
        work = tmp_path_factory.mktemp("vllm-run")
        log = work / "streamer.log"
        environment = {k: v for k, v in os.environ.items() if not k.startswith(INHERITED_PREFIXES)}
        environment.update(
            RUNAI_STREAMER_LOG_LEVEL="INFO",
            RUNAI_STREAMER_LOG_FILE=str(log),
            HF_HUB_OFFLINE="1",  # nothing may come from the Hub
            HF_HOME=str(work / "hf"),
            VLLM_CACHE_ROOT=str(work / "vllm-cache"),
            VLLM_ASSETS_CACHE=str(work / "vllm-assets"),
            VLLM_NO_USAGE_STATS="1",
            DO_NOT_TRACK="1",
            **(env or {}),
        )
        command = [sys.executable, str(HERE / "vllm_run.py"), model, load_format]
        if extra_config is not None:
            command.append(json.dumps(extra_config))
        done = subprocess.run(
            command,
            cwd=work,
            env=environment,
            stdout=subprocess.PIPE,
            stderr=subprocess.STDOUT,
            timeout=LOAD_TIMEOUT,
            text=True,
        )
        (work / "output.txt").write_text(done.stdout)
        tokens = None
        for line in done.stdout.splitlines():
            if line.startswith("TOKENS "):
                tokens = json.loads(line.removeprefix("TOKENS "))
        streamer_log = log.read_text() if log.exists() else ""
        return Load(tokens, done.returncode, done.stdout, streamer_log)

    return run


@pytest.fixture(scope="session")
def model_dir(tmp_path_factory: pytest.TempPathFactory) -> Path:
    directory = tmp_path_factory.mktemp("tiny-llama")
    write_model(directory)
    return directory


@pytest.fixture(scope="session")
def sharded_dir(model_dir: Path, tmp_path_factory: pytest.TempPathFactory) -> Path:
    directory = tmp_path_factory.mktemp("tiny-llama-sharded")
    write_sharded_state(model_dir, directory)
    return directory


@pytest.fixture(scope="session")
def reference_tokens(model_dir: Path, run_vllm: Runner) -> list[list[int]]:
    """The tokens of vLLM's own safetensors loader: what every other load must generate."""
    load = run_vllm(str(model_dir), "safetensors")
    assert load.tokens is not None, load.output[-4000:]
    assert load.summaries() == [], "the safetensors load must not go through this package"
    return load.tokens


def model_files(directory: Path) -> dict[str, bytes]:
    return {path.name: path.read_bytes() for path in sorted(directory.iterdir())}


@dataclass
class StoredModel:
    """The model in a store: under ``uri``, which is ``base + "tiny-llama/"``."""

    base: str
    env: dict[str, str]
    #: stores an object: (name under base, bytes)
    put: Callable[[str, bytes], None]

    @property
    def uri(self) -> str:
        return self.base + "tiny-llama/"

    def upload(self, prefix: str, files: dict[str, bytes]) -> str:
        """Stores ``files`` under ``prefix``; returns its URI."""
        for name, data in files.items():
            self.put(f"{prefix}/{name}", data)
        return f"{self.base}{prefix}/"


def stored_model(
    base: str, env: dict[str, str], put: Callable[[str, bytes], None], model_dir: Path
) -> StoredModel:
    """The model uploaded under ``base + "tiny-llama/"``."""
    stored = StoredModel(base, env, put)
    stored.upload("tiny-llama", model_files(model_dir))
    return stored


@pytest.fixture(scope="session")
def s3_model(tmp_path_factory: pytest.TempPathFactory, model_dir: Path) -> Iterator[StoredModel]:
    with seaweedfs(tmp_path_factory.mktemp("seaweedfs")) as server:
        client = server.client()
        client.create_bucket(Bucket="models")

        def put(name: str, data: bytes) -> None:  # with botocore's CRC32, its default
            client.put_object(Bucket="models", Key=name, Body=data)

        env = {
            "AWS_ACCESS_KEY_ID": ACCESS_KEY,
            "AWS_SECRET_ACCESS_KEY": SECRET_KEY,
            "AWS_ENDPOINT_URL": server.endpoint,  # vLLM sets RUNAI_STREAMER_S3_ENDPOINT from it
            "AWS_REGION": "us-east-1",
            "AWS_EC2_METADATA_DISABLED": "true",
        }
        yield stored_model("s3://models/", env, put, model_dir)


@pytest.fixture(scope="session")
def gcs_model(tmp_path_factory: pytest.TempPathFactory, model_dir: Path) -> Iterator[StoredModel]:
    with fake_gcs_server(tmp_path_factory.mktemp("fake-gcs")) as server:
        server.create_bucket("models")
        env = {"STORAGE_EMULATOR_HOST": server.endpoint.removeprefix("http://")}
        yield stored_model("gs://models/", env, partial(server.upload, "models"), model_dir)


@pytest.fixture(scope="session")
def azure_model(tmp_path_factory: pytest.TempPathFactory, model_dir: Path) -> Iterator[StoredModel]:
    with azurite(tmp_path_factory.mktemp("azurite")) as server:
        server.create_container("models")
        env = {"AZURE_STORAGE_CONNECTION_STRING": server.connection_string()}
        yield stored_model("az://models/", env, partial(server.upload, "models"), model_dir)
