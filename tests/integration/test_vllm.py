"""vLLM loads the tiny model with load_format="runai_streamer" (and _sharded) through this
package, from a local directory and from S3, GCS and Azure, and generates the same greedy tokens
as its own safetensors loader; the errors of a bad load reach its user naming the URI and the
cause."""

from __future__ import annotations

from pathlib import Path

import pytest

from .conftest import Load, Runner, StoredModel, model_files
from .tiny_model import index_weight_map

#: vLLM's model_loader_extra_config for this loader, which vLLM turns into our variables
EXTRA = {"concurrency": 3, "memory_limit": 1 << 20}
SETTINGS = "concurrency 3, memory limit 1.00 MiB"


def shape_of(model_dir: Path) -> tuple[int, int]:
    """(tensors, files) of the checkpoint, from its index."""
    weight_map = index_weight_map(model_dir)
    return len(weight_map), len(set(weight_map.values()))


def test_local_directory(model_dir: Path, reference_tokens: list[list[int]], run_vllm: Runner):
    load = run_vllm(str(model_dir), "runai_streamer", EXTRA)
    assert load.tokens == reference_tokens, load.output[-4000:]
    # one stream of every tensor of every shard, with the settings vLLM passed on
    assert load.summaries() == [(*shape_of(model_dir), SETTINGS)], load.streamer_log


@pytest.mark.parametrize(
    ("store", "verified"),
    [("s3_model", "verified crc32 of 7 object(s)"), ("gcs_model", "verified crc32c of 7 object(s)"),
     ("azure_model", "verified md5 of 7 object(s)")],
    ids=["s3", "gcs", "azure"],
)  # fmt: skip
def test_object_store(
    store: str,
    verified: str,
    request: pytest.FixtureRequest,
    model_dir: Path,
    reference_tokens: list[list[int]],
    run_vllm: Runner,
):
    stored: StoredModel = request.getfixturevalue(store)
    load = run_vllm(stored.uri, "runai_streamer", EXTRA, stored.env)
    assert load.tokens == reference_tokens, load.output[-4000:]
    assert load.summaries() == [(*shape_of(model_dir), SETTINGS)], load.streamer_log
    assert verified in load.streamer_log


def test_sharded_state(sharded_dir: Path, reference_tokens: list[list[int]], run_vllm: Runner):
    """load_format="runai_streamer_sharded": vLLM's per-rank checkpoint, read by this package."""
    load = run_vllm(str(sharded_dir), "runai_streamer_sharded")
    assert load.tokens == reference_tokens, load.output[-4000:]
    [(tensors, files, _)] = load.summaries()
    assert (tensors, files) == (23, 2)  # q/k/v and gate/up fused: 21 - 3 * 2, + 4 scales * 2


def test_distributed_option(
    s3_model: StoredModel, model_dir: Path, reference_tokens: list[list[int]], run_vllm: Runner
):
    """model_loader_extra_config={"distributed": true}: vLLM asks for a stream shared by its
    ranks. Here there is one (on the CPU, in the gloo group vLLM's worker made), so the stream
    is its own: nothing to share, the same tensors."""
    load = run_vllm(s3_model.uri, "runai_streamer", {**EXTRA, "distributed": True}, s3_model.env)
    assert load.tokens == reference_tokens, load.output[-4000:]
    [(tensors, files, settings)] = load.summaries()
    assert (tensors, files, settings) == (*shape_of(model_dir), SETTINGS), load.streamer_log


# ---- what a vLLM user sees when a load fails --------------------------------------------------


def failed(load: Load) -> str:
    """What the user of a load that must fail sees (vLLM's output and its workers')."""
    assert load.tokens is None and load.returncode != 0, load.output[-4000:]
    return load.output


def test_truncated_shard(s3_model: StoredModel, model_dir: Path, run_vllm: Runner):
    files = model_files(model_dir)
    name = "model-00003-of-00007.safetensors"
    files[name] = files[name][: len(files[name]) // 2]
    uri = s3_model.upload("truncated", files)
    output = failed(run_vllm(uri, "runai_streamer", EXTRA, s3_model.env))
    # raised in vLLM's worker process, logged with its traceback before the engine gives up
    assert f"SafetensorsFormatError: {uri}{name}: not a valid safetensors file" in output
    assert "file truncated?" in output


def test_wrong_key(s3_model: StoredModel, run_vllm: Runner):
    env = {**s3_model.env, "AWS_SECRET_ACCESS_KEY": "not-the-secret"}
    output = failed(run_vllm(s3_model.uri, "runai_streamer", EXTRA, env))
    # raised in vLLM's own process, by the pull_files that fetches the model's config
    assert f"StreamerPermissionError: s3: {s3_model.uri}: ListObjectsV2 failed: " in output
    assert "HTTP 403 SignatureDoesNotMatch" in output


def test_missing_model(s3_model: StoredModel, run_vllm: Runner):
    uri = s3_model.base + "no-such-model/"
    output = failed(run_vllm(uri, "runai_streamer", EXTRA, s3_model.env))
    assert f"StreamerFileNotFoundError: {uri}: no objects under this prefix" in output
