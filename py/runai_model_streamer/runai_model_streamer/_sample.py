"""Writes generated safetensors models (no torch or safetensors package needed).

The layout imitates a transformer checkpoint: per layer q/k/v/o and gate/up/down projections
(BF16) and two norms (F32), plus embeddings (BF16), an output head (F16), and a few small
I64/BOOL/U8 tensors, so a 2 GB model has about 300 tensors of mixed dtypes. Data are
pseudo-random bytes (fast to produce; floats may hold NaN patterns, compare bitwise).
"""

from __future__ import annotations

import json
import os
from dataclasses import dataclass

import numpy as np

_ITEMSIZE = {"F64": 8, "F32": 4, "F16": 2, "BF16": 2, "I64": 8, "I32": 4, "U8": 1, "BOOL": 1}
_BLOCK = 16 << 20


@dataclass(frozen=True)
class SampleTensor:
    name: str
    dtype: str
    shape: tuple[int, ...]

    @property
    def nbytes(self) -> int:
        count = _ITEMSIZE[self.dtype]
        for dim in self.shape:
            count *= dim
        return count


def plan_model(size: int, layers: int | None = None) -> list[SampleTensor]:
    """Tensors whose data add up to about ``size`` bytes (exactly, up to 64 bytes)."""
    if size < 4096:
        raise ValueError(f"sample size {size} is too small (at least 4096 bytes)")
    if layers is None:
        layers = max(1, min(32, size // (8 << 20)))
    # per layer: 4 h*h + 3 h*(11h/4) BF16 = 24.5 h^2 bytes; keep ~85% of the size for layers
    hidden = max(8, int((0.85 * size / layers / 24.5) ** 0.5) // 8 * 8)
    inter = hidden * 11 // 4 // 8 * 8
    tensors: list[SampleTensor] = []
    for layer in range(layers):
        prefix = f"model.layers.{layer}"
        for proj in ("q_proj", "k_proj", "v_proj", "o_proj"):
            tensors.append(
                SampleTensor(f"{prefix}.self_attn.{proj}.weight", "BF16", (hidden, hidden))
            )
        tensors.append(SampleTensor(f"{prefix}.mlp.gate_proj.weight", "BF16", (inter, hidden)))
        tensors.append(SampleTensor(f"{prefix}.mlp.up_proj.weight", "BF16", (inter, hidden)))
        tensors.append(SampleTensor(f"{prefix}.mlp.down_proj.weight", "BF16", (hidden, inter)))
        tensors.append(SampleTensor(f"{prefix}.input_layernorm.weight", "F32", (hidden,)))
        tensors.append(SampleTensor(f"{prefix}.post_attention_layernorm.weight", "F32", (hidden,)))
    tensors.append(SampleTensor("model.norm.weight", "F32", (hidden,)))
    tensors.append(SampleTensor("model.position_ids", "I64", (1, 2048)))
    tensors.append(SampleTensor("model.attention_mask", "BOOL", (64, 64)))
    used = sum(t.nbytes for t in tensors)
    remaining = max(0, size - used)
    # the rest: embeddings (BF16) and output head (F16), rows of `hidden`; leftovers as U8
    rows = remaining // 2 // (2 * hidden)
    if rows:
        tensors.append(SampleTensor("model.embed_tokens.weight", "BF16", (rows, hidden)))
        tensors.append(SampleTensor("lm_head.weight", "F16", (rows, hidden)))
    leftover = size - sum(t.nbytes for t in tensors)
    if leftover > 0:
        tensors.append(SampleTensor("model.extra_state", "U8", (leftover,)))
    return tensors


def _header(tensors: list[SampleTensor]) -> tuple[bytes, list[SampleTensor]]:
    # largest item size first, so every tensor is aligned for its dtype (as safetensors does)
    ordered = sorted(tensors, key=lambda t: (-_ITEMSIZE[t.dtype], t.name))
    document: dict[str, object] = {"__metadata__": {"format": "pt", "generator": "runai"}}
    offset = 0
    for tensor in ordered:
        document[tensor.name] = {
            "dtype": tensor.dtype,
            "shape": list(tensor.shape),
            "data_offsets": [offset, offset + tensor.nbytes],
        }
        offset += tensor.nbytes
    raw = json.dumps(document, separators=(",", ":")).encode()
    raw += b" " * (-(8 + len(raw)) % 8)
    return raw, ordered


def write_safetensors(path: str, tensors: list[SampleTensor], seed: int = 0) -> int:
    """Writes one file; returns its size."""
    raw, ordered = _header(tensors)
    block = np.random.default_rng(seed).integers(0, 256, size=_BLOCK, dtype=np.uint8).tobytes()
    view = memoryview(block)
    position = seed * 7919 % _BLOCK
    directory = os.path.dirname(os.path.abspath(path))
    os.makedirs(directory, exist_ok=True)
    temporary = path + ".partial"
    with open(temporary, "wb") as out:
        out.write(len(raw).to_bytes(8, "little"))
        out.write(raw)
        for tensor in ordered:
            size = tensor.nbytes
            if tensor.dtype == "BOOL":  # only 0 and 1 are valid booleans
                out.write((np.frombuffer(view[:size], dtype=np.uint8) & 1).tobytes())
                continue
            while size:
                step = min(size, _BLOCK - position)
                out.write(view[position : position + step])
                size -= step
                position = (position + step * 31 + 4097) % _BLOCK
    os.replace(temporary, path)
    return os.path.getsize(path)


def write_sample(path: str, size: int, shards: int = 1, seed: int = 0) -> list[str]:
    """Writes a model of about ``size`` bytes. One shard: ``path`` is the file; several:
    ``path`` is a directory receiving ``model-0000i-of-0000n.safetensors``."""
    if shards < 1:
        raise ValueError("shards must be at least 1")
    tensors = plan_model(size)
    if shards == 1:
        write_safetensors(path, tensors, seed)
        return [path]
    os.makedirs(path, exist_ok=True)
    groups: list[list[SampleTensor]] = [[] for _ in range(shards)]
    totals = [0] * shards
    for tensor in sorted(tensors, key=lambda t: -t.nbytes):
        index = totals.index(min(totals))
        groups[index].append(tensor)
        totals[index] += tensor.nbytes
    paths = []
    for index, group in enumerate(groups):
        name = f"model-{index + 1:05d}-of-{shards:05d}.safetensors"
        paths.append(os.path.join(path, name))
        write_safetensors(paths[-1], group, seed + index)
    return paths
