"""Runs ranks of worker.py on 127.0.0.1 (gloo), and the model they stream."""

from __future__ import annotations

import json
import os
import socket
import subprocess
import sys
import time
from pathlib import Path
from typing import Any

import torch
from safetensors.torch import load_file, save_file

WORKER = Path(__file__).with_name("worker.py")
#: a rank that has not finished after this long is killed and the test fails
LAUNCH_TIMEOUT_S = 240
FILES = [f"model-{i}.safetensors" for i in range(3)]
#: RUNAI_STREAMER_DIST_BUFFER_BYTES of the ranks: many rounds for a small model
ROUND_BYTES = 64 * 1024


def _tensors(seed: int) -> dict[str, torch.Tensor]:
    """Many dtypes and sizes: odd byte counts, zero-size tensors, one large tensor."""
    gen = torch.Generator().manual_seed(seed)
    tensors = {
        f"f{seed}.big": torch.randn(160_000, generator=gen),  # 640 KB: more than a rank's share
        f"f{seed}.bf16": torch.randn(3, 333, generator=gen).to(torch.bfloat16),
        f"f{seed}.f16": torch.randn(7, generator=gen).to(torch.float16),
        f"f{seed}.f64": torch.randn(5, 11, generator=gen).double(),
        f"f{seed}.i8": torch.randint(-128, 127, (1001,), generator=gen, dtype=torch.int8),
        f"f{seed}.u8": torch.randint(0, 255, (3,), generator=gen, dtype=torch.uint8),
        f"f{seed}.i64": torch.randint(-(2**40), 2**40, (17,), generator=gen),
        f"f{seed}.bool": torch.rand(13, generator=gen) > 0.5,
        f"f{seed}.empty": torch.empty(0, 4),
        f"f{seed}.scalar": torch.tensor(float(seed)),
    }
    for index in range(40):  # many small tensors: pieces of several fall into one stripe
        tensors[f"f{seed}.layer{index}"] = torch.randn(index * 37 + 1, generator=gen)
    tensors[f"f{seed}.empty2"] = torch.empty(0, dtype=torch.int32)
    return tensors


def write_model(root: Path) -> None:
    """Three safetensors files (about 2.3 MB in all) in ``root``."""
    for index, name in enumerate(FILES):
        save_file(_tensors(index), str(root / name))


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


def launch(
    out: Path, world: int, cases: list[dict[str, Any]], env: dict[str, str], **spec: Any
) -> dict[str, Any]:
    """Runs ``world`` ranks of worker.py over ``cases`` (environment: ours, then ``env``);
    returns ``{"results": {(case, rank): result}, "returncodes": [...], "out": out, "logs":
    text}``. Every rank must end within LAUNCH_TIMEOUT_S."""
    out.mkdir(parents=True)
    spec_path = out / "spec.json"
    spec = {"world": world, "port": free_port(), "cases": cases, "out": str(out), **spec}
    spec_path.write_text(json.dumps(spec))
    full_env = {
        **os.environ,
        "PYTHONPATH": os.pathsep.join(sys.path),  # the plugins this test process sees
        "RUNAI_STREAMER_DIST": "1",
        "RUNAI_STREAMER_DIST_BUFFER_BYTES": str(ROUND_BYTES),
        "RUNAI_STREAMER_DIST_TIMEOUT": "30",
        "OMP_NUM_THREADS": "1",
        **env,
    }
    logs = [open(out / f"rank{r}.log", "wb") for r in range(world)]  # noqa: SIM115
    procs = [
        subprocess.Popen(
            [sys.executable, str(WORKER), str(spec_path), str(r)],
            env=full_env,
            stdout=logs[r],
            stderr=subprocess.STDOUT,
        )
        for r in range(world)
    ]
    deadline = time.monotonic() + LAUNCH_TIMEOUT_S
    hung = []
    for rank, proc in enumerate(procs):
        try:
            proc.wait(timeout=max(1.0, deadline - time.monotonic()))
        except subprocess.TimeoutExpired:
            hung.append(rank)
    for proc in procs:
        if proc.poll() is None:
            proc.kill()
            proc.wait()
    for log in logs:
        log.close()
    text = "\n".join(
        f"--- rank {r} (exit {p.returncode}) ---\n"
        + (out / f"rank{r}.log").read_text(errors="replace")[-3000:]
        for r, p in enumerate(procs)
    )
    assert not hung, f"ranks {hung} did not finish within {LAUNCH_TIMEOUT_S} s\n{text}"
    results = {}
    for case in cases:
        for rank in range(world):
            path = out / f"{case['name']}.rank{rank}.pt"
            if path.exists():
                results[case["name"], rank] = torch.load(path, weights_only=False)
    return {
        "results": results,
        "returncodes": [p.returncode for p in procs],
        "out": out,
        "logs": text,
    }


def header(path: Path) -> dict[str, Any]:
    data = path.read_bytes()
    size = int.from_bytes(data[:8], "little")
    header = json.loads(data[8 : 8 + size])
    header.pop("__metadata__", None)
    return {"data_start": 8 + size, "tensors": header}


def expected_model(
    model_dir: Path, files: list[str], names: list[str] | None = None
) -> dict[str, Any]:
    """Tensors, the order rule (files in order, a file's tensors by offset), bytes requested."""
    tensors: dict[str, torch.Tensor] = {}
    order: list[str] = []
    total = 0
    for file in files:
        loaded = load_file(str(model_dir / file))
        entries = header(model_dir / file)["tensors"]
        for name, entry in sorted(entries.items(), key=lambda kv: tuple(kv[1]["data_offsets"])):
            if names is not None and name not in names:
                continue
            tensors[name] = loaded[name]
            order.append(name)
            total += entry["data_offsets"][1] - entry["data_offsets"][0]
    return {"tensors": tensors, "order": order, "total": total}


def bits(tensor: torch.Tensor) -> torch.Tensor:
    return tensor.contiguous().reshape(-1).view(torch.uint8)


def check_tensors(
    result: dict[str, Any], expected: dict[str, Any], where: str, shared: bool = True
) -> None:
    assert "error" not in result, f"{where}: {result.get('error')}: {result.get('message')}"
    assert result["is_distributed"] == shared, where
    if shared:  # otherwise a file's tensors come in completion order
        assert result["order"] == expected["order"], where
    assert sorted(result["order"]) == sorted(expected["order"]), where
    for name, want in expected["tensors"].items():
        got = result["tensors"][name]
        assert got.dtype == want.dtype and got.shape == want.shape, f"{where}: {name}"
        assert torch.equal(bits(got), bits(want)), f"{where}: {name} differs"
