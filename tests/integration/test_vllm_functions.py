"""What vLLM's own tests of this loader assert (tests/model_executor/model_loader/
runai_model_streamer/ in vLLM's repository), ported to the tiny model: they download gpt2 from
the Hub, these read local files and SeaweedFS. In this process: vLLM's functions, no engine."""

from __future__ import annotations

from pathlib import Path

import pytest
import torch
from vllm.config.load import LoadConfig
from vllm.model_executor.model_loader import get_model_loader
from vllm.model_executor.model_loader.weight_utils import (
    runai_safetensors_weights_iterator,
    safetensors_weights_iterator,
)
from vllm.transformers_utils.runai_utils import (
    ObjectStorageModel,
    is_runai_obj_uri,
    list_safetensors,
)

from .conftest import StoredModel


@pytest.fixture
def s3_env(monkeypatch: pytest.MonkeyPatch, s3_model: StoredModel) -> StoredModel:
    for name, value in s3_model.env.items():
        monkeypatch.setenv(name, value)
    return s3_model


def as_dict(weights: object) -> dict[str, torch.Tensor]:
    tensors = dict(weights)  # type: ignore[call-overload]
    assert tensors
    return tensors


def assert_same(actual: dict[str, torch.Tensor], expected: dict[str, torch.Tensor]) -> None:
    assert actual.keys() == expected.keys()
    for name, tensor in expected.items():
        assert actual[name].dtype == tensor.dtype, name
        assert actual[name].shape == tensor.shape, name
        assert torch.equal(actual[name], tensor), name


def test_loader_for_the_load_formats():
    loaders = {
        load_format: type(get_model_loader(LoadConfig(load_format=load_format))).__name__
        for load_format in ("runai_streamer", "runai_streamer_sharded")
    }
    assert loaders == {
        "runai_streamer": "RunaiModelStreamerLoader",
        "runai_streamer_sharded": "ShardedStateLoader",
    }


def test_is_runai_obj_uri():
    assert is_runai_obj_uri("gs://some-gcs-bucket/path")
    assert is_runai_obj_uri("s3://some-s3-bucket/path")
    assert is_runai_obj_uri("az://some-container/path")
    assert not is_runai_obj_uri("nfs://some-nfs-path")


def test_weights_iterator_local(model_dir: Path):
    shards = [str(path) for path in sorted(model_dir.glob("*.safetensors"))]
    ours = as_dict(runai_safetensors_weights_iterator(shards, True))
    assert_same(ours, as_dict(safetensors_weights_iterator(shards, True)))


def test_list_safetensors_local(model_dir: Path):
    shards = sorted(str(path) for path in model_dir.glob("*.safetensors"))
    assert sorted(list_safetensors(str(model_dir))) == shards


def test_weights_iterator_s3(s3_env: StoredModel, model_dir: Path):
    uris = list_safetensors(s3_env.uri)
    names = sorted(path.name for path in model_dir.glob("*.safetensors"))
    assert sorted(uris) == [s3_env.uri + name for name in names]
    local = [str(model_dir / name) for name in names]
    ours = as_dict(runai_safetensors_weights_iterator(uris, False))
    assert_same(ours, as_dict(safetensors_weights_iterator(local, False)))


def test_object_storage_model_pulls_the_config(
    s3_env: StoredModel, model_dir: Path, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
):
    """What vLLM fetches before loading from a store: the model's JSON files, no weights."""
    monkeypatch.setenv("VLLM_ASSETS_CACHE", str(tmp_path))
    model = ObjectStorageModel(url=s3_env.uri)
    model.pull_files(s3_env.uri, allow_pattern=["*.model", "*.py", "*.json"])
    pulled = {path.name: path.read_bytes() for path in Path(model.dir).iterdir()}
    assert pulled == {path.name: path.read_bytes() for path in model_dir.glob("*.json")}
