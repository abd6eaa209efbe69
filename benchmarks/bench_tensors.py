#!/usr/bin/env python3
"""Many small tensors, as MoE checkpoints have: where a load of 10,000 or 100,000 tensors of a
few KiB spends its time, against ``safetensors.torch.load_file``.

For each count, one file of that many float32 tensors of --kib KiB is written (in --dir, kept
between runs) and read once (so the runs are warm: the file in the page cache). Then rounds
alternate the loaders, each run in a fresh interpreter (torch imported before the clock
starts), and report, for this package, the time of ``stream_file`` (reading and validating the
header, planning the reads: what grows with the tensor count, not the bytes) and of the whole
load (``get_tensors`` run to the end); for safetensors, ``load_file`` with every tensor
touched; and this package with the collector's pause undone (``gc.disable`` made a no-op), as
it ran before it paused it. Prints the medians and the per-round ratios.
"""

from __future__ import annotations

import argparse
import json
import statistics
import subprocess
import sys
from pathlib import Path

RUNAI = """
import json, sys, time
import torch
from runai_model_streamer import SafetensorsStreamer
start = time.perf_counter()
with SafetensorsStreamer() as streamer:
    streamer.stream_file(sys.argv[1])
    planned = time.perf_counter()
    count = sum(1 for _ in streamer.get_tensors())
done = time.perf_counter()
print(json.dumps({"plan": planned - start, "total": done - start, "tensors": count}))
"""
#: this package as it was before it paused the garbage collector during stream_file
RUNAI_COLLECTING = RUNAI.replace(
    "import torch\n", "import torch, gc\ngc.disable = lambda: None\n", 1
)
SAFETENSORS = """
import json, sys, time
import torch
from safetensors.torch import load_file
start = time.perf_counter()
tensors = load_file(sys.argv[1])
count = sum(1 for t in tensors.values() if t.reshape(-1)[:1].sum() is not None)
done = time.perf_counter()
print(json.dumps({"plan": 0.0, "total": done - start, "tensors": count}))
"""


def write_model(path: Path, count: int, kib: int) -> None:
    import torch
    from safetensors.torch import save_file

    values = kib * 1024 // 4
    tensors = {
        f"model.layers.{i // 128}.experts.{i % 128}.w": torch.randn(values) for i in range(count)
    }
    save_file(tensors, str(path))


def run(code: str, path: Path) -> dict[str, float]:
    done = subprocess.run(
        [sys.executable, "-c", code, str(path)], capture_output=True, text=True, check=True
    )
    return dict(json.loads(done.stdout.strip().splitlines()[-1]))


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--tensors", default="10000,100000", help="tensor counts (comma list)")
    parser.add_argument("--kib", type=int, default=4, help="KiB per tensor")
    parser.add_argument("--rounds", type=int, default=5)
    parser.add_argument("--dir", type=Path, default=Path("/tmp/bench-tensors"))
    args = parser.parse_args()
    args.dir.mkdir(parents=True, exist_ok=True)
    loaders = {"this package": RUNAI, "collector not paused": RUNAI_COLLECTING,
               "safetensors": SAFETENSORS}  # fmt: skip
    print(
        "| tensors | loader | stream_file s (median) | load s (median) | stream_file share | "
        "load: safetensors / this loader (per round) |"
    )
    print("| --- | --- | --- | --- | --- | --- |")
    for count in (int(c) for c in args.tensors.split(",")):
        path = args.dir / f"tensors-{count}-{args.kib}k.safetensors"
        if not path.exists():
            write_model(path, count, args.kib)
        path.read_bytes()  # warm
        results: dict[str, list[dict[str, float]]] = {name: [] for name in loaders}
        names = list(loaders)
        for round_index in range(args.rounds):
            shift = round_index % len(names)  # each loader first in turn
            for name in names[shift:] + names[:shift]:
                result = run(loaders[name], path)
                if result["tensors"] != count:
                    raise SystemExit(f"{path}: {name} gave {result['tensors']} tensors")
                results[name].append(result)
        for name, runs in results.items():
            plan = statistics.median(r["plan"] for r in runs)
            total = statistics.median(r["total"] for r in runs)
            ratios = [
                other["total"] / mine["total"]
                for mine, other in zip(runs, results["safetensors"], strict=True)
            ]
            per_round = ", ".join(f"{r:.2f}" for r in ratios)
            share = f"{plan / total:.0%}" if plan else "-"
            print(
                f"| {count} | {name} | {plan:.3f} | {total:.3f} | {share} | "
                f"{statistics.median(ratios):.2f} ({per_round}) |"
            )
    return 0


if __name__ == "__main__":
    sys.exit(main())
