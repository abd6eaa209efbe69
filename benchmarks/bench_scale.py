#!/usr/bin/env python3
"""The load at scale, local: GB/s, peak memory and the time to the first tensor against the
model's size (1, 4 and 16 GB in one file) and its shard count (4 GB in 4, 16 and 64 files),
read against the device's own limit (fio at its fastest setting) in the same runs.

Every set runs cold (``echo 3 > /proc/sys/vm/drop_caches`` before every run, so root), and
warm where the files and a copy of them fit in memory with 2 GB to spare (16 GB does not on
a 24 GiB machine); loaders alternate round by round (harness.run_benchmark), each run in its
own process. Loaders:

* ``runai-model-streamer``: this package, owned tensors (each file's tensors kept).
* ``runai-model-streamer (owned=False, 512 MiB)``: buffers reused, with
  ``RUNAI_STREAMER_MEMORY_LIMIT`` at 512 MiB; one element of each tensor read, nothing kept
  (a consumer that copies each tensor to a GPU). Its peak RSS is what the limit bounds.
* ``safetensors (pread)``: ``load_file(..., backend="pread")``, owned tensors.
* ``upstream 0.17`` with --upstream-python (see bench_load.py), its defaults.
* cold only: ``O_DIRECT ceiling`` (16 threads, reused memory), ``fio ceiling`` (the fastest of
  fio_ceiling.GRID on the 1 GB file, swept once before the rounds; needs ``apt-get install
  fio``) and ``one 8 MiB read`` (O_DIRECT, at the file's start: the latency that the time to
  the first tensor is read against).

Prints markdown tables (and writes them to --output): per set, every loader's median GB/s,
its per-round ratio against this package, peak RSS above the interpreter as a share of the
model, and the time to the first tensor; then the targets of issue 32 as measured. With
matplotlib installed (``pip install matplotlib``), --plot writes a PNG: GB/s against model
size and against shard count, a line per loader and ceiling.

Usage::

    python benchmarks/bench_scale.py --rounds 5 --dir /var/tmp --output scale.md --plot scale.png
    python benchmarks/bench_scale.py --sizes 1GB,4GB --shards 4 --rounds 3   # shorter
"""

from __future__ import annotations

import argparse
import os
import shutil
import statistics
import sys
import tempfile
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path

import fio_ceiling
from bench_load import DEFAULT_UPSTREAM, _upstream_ok
from harness import (
    Loader,
    Result,
    can_drop_caches,
    clean_env,
    drop_caches,
    installed,
    parse_size,
    run_benchmark,
    write_sample,
)

RUNAI = "runai-model-streamer"
REUSED = "runai-model-streamer (owned=False, 512 MiB)"
SAFETENSORS = "safetensors (pread)"
DIRECT = "O_DIRECT ceiling"
FIO = "fio ceiling"
ONE_READ = "one 8 MiB read"
REUSED_LIMIT = 512 << 20


@dataclass
class SetResult:
    label: str  # e.g. "16 GB, 1 file"
    size: int  # as asked (--sizes, --shard-size)
    model_bytes: int  # as written
    files: int
    cache: str
    results: list[Result]

    def get(self, label: str) -> Result | None:
        return next((r for r in self.results if r.label.startswith(label) and r.seconds), None)


def _memory_available() -> int:
    with open("/proc/meminfo") as meminfo:
        for line in meminfo:
            if line.startswith("MemAvailable:"):
                return int(line.split()[1]) * 1024
    return 0


def _loaders(upstream: str, skipped: list[str]) -> list[Loader]:
    loaders = [
        Loader(RUNAI, "runai"),
        Loader(
            REUSED,
            "runai-reused",
            env={**os.environ, "RUNAI_STREAMER_MEMORY_LIMIT": str(REUSED_LIMIT)},
        ),
    ]
    if installed("safetensors"):
        loaders.append(Loader(SAFETENSORS, "safetensors-pread"))
    else:
        skipped.append("safetensors: not installed")
    why = _upstream_ok(upstream)
    if why:
        skipped.append(f"upstream 0.17: {why}")
    else:
        loaders.append(Loader("upstream 0.17", "runai", upstream, env=clean_env()))
    return loaders


def _ratios(mine: Result, other: Result) -> list[float]:
    """other's seconds over mine, round by round (> 1: this package faster)."""
    return [o / m for m, o in zip(mine.seconds, other.seconds, strict=False)]


def _per_round(values: Sequence[float]) -> str:
    return f"{statistics.median(values):.2f} ({', '.join(f'{v:.2f}' for v in values)})"


def format_set(item: SetResult) -> str:
    runai = item.get(RUNAI)
    lines = [
        f"### {item.label}, {item.cache}",
        "",
        "| loader | GB/s | runai x it (per round) | peak RSS - base | of the model "
        "| first tensor |",
        "| --- | --- | --- | --- | --- | --- |",
    ]
    for result in item.results:
        if not result.seconds:
            reason = result.errors[-1][:60] if result.errors else "no runs"
            lines.append(f"| {result.label} | failed: {reason} | | | | |")
            continue
        if result.label == ONE_READ:
            seconds = statistics.median(result.seconds)
            lines.append(f"| {result.label} | | | | | {seconds * 1e3:.1f} ms |")
            continue
        above = result.peak - result.base
        first = (
            f"{statistics.median(result.first_seconds) * 1e3:.1f} ms"
            if result.first_seconds
            else ""
        )
        versus = "" if runai is None or result is runai else _per_round(_ratios(runai, result))
        lines.append(
            f"| {result.label} | {result.gbps:.2f} | {versus} | {above / 2**20:.0f} MiB "
            f"| {above / item.model_bytes:.1%} | {first} |"
        )
    return "\n".join(lines)


def format_targets(sets: list[SetResult]) -> str:
    """Issue 32's local targets, as measured."""
    lines = ["### Against the targets (cold, medians; per round in brackets)", ""]
    cold = [s for s in sets if s.cache == "cold"]
    singles = [s for s in cold if s.files == 1]
    if len(singles) >= 2 and all(s.get(RUNAI) for s in singles):
        small, large = singles[0], singles[-1]
        ratio = large.get(RUNAI).gbps / small.get(RUNAI).gbps  # type: ignore[union-attr]
        lines.append(f"- GB/s at {large.label} / at {small.label}: {ratio:.2f} (target >= 0.90)")
    for item in cold:
        runai, fio, reused = item.get(RUNAI), item.get(FIO), item.get(REUSED)
        one = item.get(ONE_READ)
        if runai is None:
            continue
        above = (runai.peak - runai.base) / item.model_bytes
        parts = [f"peak RSS above the interpreter {above:.1%} of the model (target <= 102%)"]
        if fio is not None:
            parts.append(f"x fio {_per_round(_ratios(runai, fio))} (target >= 0.95)")
        if one is not None and runai.first_seconds:
            first = statistics.median(runai.first_seconds) / statistics.median(one.seconds)
            parts.append(f"first tensor {first:.1f}x one 8 MiB read (target <= 2)")
        if reused is not None:
            parts.append(
                f"owned=False at 512 MiB: {(reused.peak - reused.base) / 2**20:.0f} MiB above"
                f" the interpreter, x owned {_per_round(_ratios(reused, runai))}"
                " (targets: <= 512 MiB, >= 0.9)"
            )
        lines.append(f"- {item.label}: " + "; ".join(parts))
    return "\n".join(lines)


def plot(sets: list[SetResult], path: str) -> str:
    """GB/s against model size (one file) and shard count, cold; '' or why not."""
    try:
        import matplotlib

        matplotlib.use("Agg")
        import matplotlib.pyplot as plt
    except ImportError:
        return "plot: matplotlib not installed (pip install matplotlib)"
    cold = [s for s in sets if s.cache == "cold"]
    singles = [s for s in cold if s.files == 1]
    shard_size = max((s.size for s in cold if s.files > 1), default=0)
    sharded = [s for s in cold if s.size == shard_size]
    sharded.sort(key=lambda s: s.files)
    figure, (by_size, by_files) = plt.subplots(1, 2, figsize=(12, 4.5))
    for axis, items, x_of, xlabel in (
        (by_size, singles, lambda s: s.model_bytes / 1e9, "model size, GB (one file)"),
        (by_files, sharded, lambda s: s.files, f"files ({shard_size / 1e9:g} GB in all)"),
    ):
        labels = [r.label for r in items[0].results if r.label != ONE_READ] if items else []
        for label in labels:
            points = [(x_of(s), s.get(label)) for s in items]
            xs = [x for x, r in points if r is not None]
            ys = [r.gbps for _, r in points if r is not None]
            style = "--" if "ceiling" in label else "-"
            axis.plot(xs, ys, style, marker="o", label=label)
        axis.set_xscale("log", base=2 if axis is by_files else 10)
        axis.set_xlabel(xlabel)
        axis.set_ylabel("GB/s (cold, median)")
        axis.set_ylim(bottom=0)
        axis.grid(True, alpha=0.3)
    handles, labels = by_size.get_legend_handles_labels()
    figure.legend(handles, labels, loc="lower center", ncol=3, fontsize=8)
    figure.suptitle("Local loads, cold page cache (benchmarks/bench_scale.py)")
    figure.tight_layout(rect=(0, 0.12, 1, 1))  # room for the legend below
    figure.savefig(path, dpi=110)
    return ""


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--sizes", default="1GB,4GB,16GB", help="one-file model sizes")
    parser.add_argument("--shards", default="4,16,64", help="shard counts (of --shard-size)")
    parser.add_argument("--shard-size", default="4GB")
    parser.add_argument("--rounds", type=int, default=5)
    parser.add_argument("--dir", help="where the models are written (default $TMPDIR)")
    parser.add_argument("--upstream-python", default=DEFAULT_UPSTREAM)
    parser.add_argument("--output", help="also write the tables to this markdown file")
    parser.add_argument("--plot", help="write the plot to this PNG file (needs matplotlib)")
    args = parser.parse_args()
    if not can_drop_caches():
        print("bench_scale.py runs cold: it needs root (writes /proc/sys/vm/drop_caches)")
        return 2
    skipped: list[str] = []
    loaders = _loaders(args.upstream_python, skipped)
    shard_bytes = parse_size(args.shard_size)
    plan = [(parse_size(size), 1) for size in args.sizes.split(",")]
    plan += [(shard_bytes, int(count)) for count in args.shards.split(",") if count.strip()]

    def report(line: str) -> None:
        print(line, file=sys.stderr, flush=True)

    sets: list[SetResult] = []
    sections: list[str] = []
    references: list[Loader] = [Loader(DIRECT, "direct-ceiling"), Loader(ONE_READ, "one-chunk")]
    fio_swept = False
    with tempfile.TemporaryDirectory(prefix="runai-scale-", dir=args.dir) as tmp:
        for size, count in plan:
            label = f"{size / 1e9:g} GB, " + ("1 file" if count == 1 else f"{count} files")
            directory = Path(tmp) / f"{size}-{count}"
            report(f"== writing {label}")
            target = directory / "model.safetensors" if count == 1 else directory
            directory.mkdir()
            files = write_sample(str(target), size, shards=count)
            model_bytes = sum(os.path.getsize(f) for f in files)
            if not fio_swept:
                fio_swept = True
                if fio_ceiling.available():
                    best, swept = fio_ceiling.sweep(files, progress=report, before=drop_caches)
                    sections.append(f"fio sweep on {label} (fastest first): " + "; ".join(swept))
                    env = {**os.environ, "FIO_SETTINGS": best.to_env()}
                    references.append(Loader(f"{FIO} ({best.describe()})", "fio", env=env))
                else:
                    skipped.append("fio ceiling: not installed (apt-get install fio)")
            caches = ["cold"]
            if 2 * model_bytes + (2 << 30) < _memory_available():
                caches.append("warm")
            for cache in caches:
                run = loaders + (references if cache == "cold" else [])
                report(f"== {label}, {cache}, {len(run)} loaders")
                results = run_benchmark(
                    run,
                    files,
                    rounds=args.rounds,
                    cold=cache == "cold",
                    warm=cache == "warm",
                    progress=report,
                )
                sets.append(SetResult(label, size, model_bytes, count, cache, results))
                sections.append(format_set(sets[-1]))
                print(sections[-1] + "\n", flush=True)
            shutil.rmtree(directory)
    tail = len(sections)  # what is printed at the end (the sets were printed as they ran)
    sections.append(format_targets(sets))
    if args.plot:
        why = plot(sets, args.plot)
        if why:
            skipped.append(why)
        else:
            sections.append(f"Plot: {args.plot}")
    if skipped:
        sections.append("Skipped: " + "; ".join(skipped))
    print("\n\n".join(sections[tail:]))
    if args.output:
        Path(args.output).write_text("\n\n".join(sections) + "\n")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
