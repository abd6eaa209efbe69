"""What the cache tests share: objects in the testfs store (their store keeps a CRC32C), a
stream that waits for the cache's writers, and what an entry holds. The testfs plugin logs
every read it serves (RUNAI_STREAMER_TESTFS_READ_LOG; the ``reads`` fixture of conftest.py),
so a hit is seen to read nothing from the store."""

from __future__ import annotations

import json
from pathlib import Path

import google_crc32c
import torch
from runai_model_streamer import SafetensorsStreamer
from runai_model_streamer._cache_entry import wait_for_writers
from safetensors.torch import save_file

URI = "testfs://model.safetensors"


def make_object(path: Path, seed: int = 28, tensors: int = 12) -> dict[str, torch.Tensor]:
    """A safetensors object whose store keeps its CRC32C."""
    generator = torch.Generator().manual_seed(seed)
    weights = {
        f"layer.{i}.weight": torch.randn(16, 64 + i, generator=generator) for i in range(tensors)
    }
    save_file(weights, str(path))
    crc = google_crc32c.value(path.read_bytes())
    path.with_name(path.name + ".checksums").write_text(f"crc32c={crc:08x}")
    return weights


def stream(uri: str = URI, **options: object) -> dict[str, torch.Tensor]:
    """The tensors, once the cache writers (background threads) are done too."""
    with SafetensorsStreamer() as streamer:
        streamer.stream_file(uri, **options)  # type: ignore[arg-type]
        tensors = dict(streamer.get_tensors())
    wait_for_writers()
    return tensors


def assert_same(got: dict[str, torch.Tensor], want: dict[str, torch.Tensor]) -> None:
    assert sorted(got) == sorted(want)
    for name, tensor in want.items():
        assert torch.equal(got[name], tensor), name


def served(log: Path) -> int:
    """Bytes the store served (and forgets them)."""
    if not log.exists():
        return 0
    total = sum(int(line.split(" ", 2)[1]) for line in log.read_text().splitlines())
    log.unlink()
    return total


def entries(cache: Path) -> list[dict[str, object]]:
    return [json.loads(p.read_text()) for p in sorted(cache.glob("entries/*/*/meta.json"))]
