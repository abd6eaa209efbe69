"""Models the storage tests upload: safetensors shards under object names that need encoding,
and the check that a stream of them yields every tensor bit-exact."""

from __future__ import annotations

from collections.abc import Callable
from pathlib import Path

import torch
from runai_model_streamer import SafetensorsStreamer
from safetensors.torch import load_file, save_file

#: object names that need encoding: spaces, unicode, '+', '=', '~', '%'
NAMES = ["model/shard one.safetensors", "model/ሴ-é+2.safetensors", "model/three=3~%25.safetensors"]


def write_shards(
    directory: Path,
    upload: Callable[[str, bytes], None],
    names: list[str] = NAMES,
    tag: str = "s",
) -> dict[str, Path]:
    """Writes one shard per name (tensors of several dtypes and shapes, named <tag><index>.*),
    uploads each with upload(name, bytes), plus a config.json and an object under a
    sub-prefix."""
    directory.mkdir(parents=True, exist_ok=True)
    local = {}
    for index, name in enumerate(names):
        path = directory / f"shard{index}.safetensors"
        key = f"{tag}{index}"
        tensors = {f"{key}.w{j}": torch.randn(64 + j, 32 + index) for j in range(40)}
        tensors[f"{key}.ids"] = torch.arange(1000 + index, dtype=torch.int64)
        tensors[f"{key}.half"] = torch.randn(3, 5).to(torch.bfloat16)
        tensors[f"{key}.empty"] = torch.zeros(0, 4)
        save_file(tensors, str(path))
        upload(name, path.read_bytes())
        local[name] = path
    prefix = names[0].rsplit("/", 1)[0]
    upload(f"{prefix}/config.json", b"{}")
    upload(f"{prefix}/sub/extra.txt", b"extra")
    return local


def check_stream(uris: list[str], local: list[Path], **kwargs: object) -> None:
    with SafetensorsStreamer() as streamer:
        streamer.stream_files(uris, **kwargs)  # type: ignore[arg-type]
        got = dict(streamer.get_tensors())
    expected: dict[str, torch.Tensor] = {}
    for path in local:
        expected.update(load_file(str(path)))
    assert sorted(got) == sorted(expected)
    for name, tensor in expected.items():
        assert got[name].dtype == tensor.dtype and torch.equal(got[name], tensor), name


def stream_tensors(uri: str) -> dict[str, torch.Tensor]:
    """Every tensor of one file, streamed with SafetensorsStreamer."""
    with SafetensorsStreamer() as streamer:
        streamer.stream_file(uri)
        return dict(streamer.get_tensors())
