"""A tiny Llama with random weights, written as real checkpoints are: several safetensors shards
and a model.safetensors.index.json (transformers' save_pretrained), and the same weights as the
per-rank checkpoint vLLM's runai_streamer_sharded format reads."""

from __future__ import annotations

import json
from pathlib import Path

import torch
from safetensors.torch import load_file, save_file

#: big enough for vLLM's CPU attention (head_dim 32; it refuses 16), small enough to load fast
CONFIG = {
    "vocab_size": 512,
    "hidden_size": 128,
    "intermediate_size": 256,
    "num_hidden_layers": 2,
    "num_attention_heads": 4,
    "num_key_value_heads": 2,
    "max_position_embeddings": 256,
    "tie_word_embeddings": False,
}
#: prompts as token ids (the model has no tokenizer; vLLM runs with skip_tokenizer_init)
PROMPTS = [[1, 5, 7, 9, 11], [3, 100, 200], [42] * 6]
#: the pattern of vLLM's sharded-state files for tensor-parallel rank 0
SHARDED_NAME = "model-rank-0-part-{part}.safetensors"


def write_model(directory: Path, seed: int = 0) -> list[Path]:
    """A Llama checkpoint in several shards (about 1.6 MiB in all); returns the shard paths."""
    from transformers import LlamaConfig, LlamaForCausalLM

    torch.manual_seed(seed)
    model = LlamaForCausalLM(LlamaConfig(**CONFIG)).to(torch.float32)
    model.save_pretrained(str(directory), max_shard_size="300KB", safe_serialization=True)
    shards = sorted(directory.glob("*.safetensors"))
    if len(shards) < 3 or not (directory / "model.safetensors.index.json").is_file():
        raise AssertionError(f"expected a sharded checkpoint with an index in {directory}")
    return shards


def hf_tensors(directory: Path) -> dict[str, torch.Tensor]:
    tensors: dict[str, torch.Tensor] = {}
    for shard in sorted(directory.glob("*.safetensors")):
        tensors.update(load_file(str(shard)))
    return tensors


def write_sharded_state(source: Path, directory: Path) -> list[Path]:
    """The weights of ``source`` under the names of vLLM's own Llama module (q, k and v fused
    into qkv_proj, gate and up into gate_up_proj, plus the attention's scales), in two parts,
    as vLLM's ShardedStateLoader saves a tensor-parallel rank. (vLLM's own save_sharded_state
    cannot write it on the CPU: its CPU GEMM dispatch empties the linear layers' weights
    before they are saved.)"""
    hf = hf_tensors(source)
    state: dict[str, torch.Tensor] = {}
    for name, tensor in hf.items():
        if ".self_attn.k_proj." in name or ".self_attn.v_proj." in name or ".mlp.up_proj." in name:
            continue  # fused below, with their q_proj / gate_proj
        if ".self_attn.q_proj." in name:
            layer = name.removesuffix("q_proj.weight")
            fused = [hf[layer + f"{part}_proj.weight"] for part in "qkv"]
            state[layer + "qkv_proj.weight"] = torch.cat(fused)
        elif ".mlp.gate_proj." in name:
            layer = name.removesuffix("gate_proj.weight")
            fused = [hf[layer + "gate_proj.weight"], hf[layer + "up_proj.weight"]]
            state[layer + "gate_up_proj.weight"] = torch.cat(fused)
        else:
            state[name] = tensor
    for layer in range(CONFIG["num_hidden_layers"]):  # the attention's scales, 1.0 unquantized
        for scale in ("q", "k", "v", "prob"):
            state[f"model.layers.{layer}.self_attn.attn._{scale}_scale"] = torch.tensor(1.0)
    directory.mkdir(parents=True, exist_ok=True)
    (directory / "config.json").write_bytes((source / "config.json").read_bytes())
    names = sorted(state)
    parts = [names[: len(names) // 2], names[len(names) // 2 :]]
    paths = []
    for index, part in enumerate(parts):
        path = directory / SHARDED_NAME.format(part=index)
        save_file({name: state[name].contiguous() for name in part}, str(path))
        paths.append(path)
    return paths


def index_weight_map(directory: Path) -> dict[str, str]:
    index = json.loads((directory / "model.safetensors.index.json").read_text())
    return dict(index["weight_map"])
