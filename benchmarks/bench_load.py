#!/usr/bin/env python3
"""Load throughput and peak memory of runai-model-streamer against other loaders.

Generates (in a temporary directory) a model of --size bytes with ~300 tensors of mixed dtypes
as one file and as a 4-shard set, then loads each with every available loader, each run in its
own process (so peak RSS is per run), loaders alternating round by round (each round in the
order of a row of a balanced Latin square, so that no loader always runs right after the same
one) after one untimed warm-up run, with a warm page cache (the files read whole before every
run) and (as root) a cold one (``echo 3 > /proc/sys/vm/drop_caches`` before every run).
Prints markdown tables: median GB/s, median seconds, peak RSS (and RSS above the interpreter
with its imports), and the ratio of every loader against every other.

Loaders (those not installed are listed as skipped):

* ``runai-model-streamer``: this package (``SafetensorsStreamer``, owned CPU tensors), with
  its defaults (and with ``RUNAI_STREAMER_HUGE_PAGES=1`` when given ``--huge-pages``).
* ``safetensors (mmap+copy)``: ``safetensors.torch.load_file`` then ``clone()`` of every
  tensor, the one copy a weight loader makes into its parameters (mmap alone reads nothing).
* ``safetensors (pread)``: ``load_file(..., backend="pread")``, owned tensors directly.
* ``upstream 0.17``: the PyPI ``runai-model-streamer==0.17.0`` in a side virtual environment
  (``--upstream-python``; default ``/tmp/upstream/bin/python`` when it exists). Create it with::

      python -m venv /tmp/upstream
      /tmp/upstream/bin/pip install runai-model-streamer==0.17.0 torch==2.13.0

* ``fastsafetensors`` and ``tensorizer`` (``num_readers=2``; the model is first serialized
  to tensorizer's own format) when importable.
* ``pread into new memory``: two threads ``pread`` each file in 8 MiB pieces into one fresh
  private anonymous mapping, and nothing else (no header, no tensors), after importing torch
  like the other loaders: the ceiling for any loader that hands out tensors in new memory.
  Warm, it measures this machine's cost of faulting in and filling new pages; the other
  loaders are read against it.
* ``dd``: ``dd bs=16M`` of the files to /dev/null, and ``dd iflag=direct bs=16M``, the
  storage references (cold runs).
* ``O_DIRECT ceiling``: 16 threads O_DIRECT-read 8 MiB pieces into reused aligned memory: the
  storage without page-cache or page-fault costs (cold runs).
* ``fio ceiling``: the device's own limit (cold runs): fio's O_DIRECT reads of the same files
  through io_uring and libaio, 1 and 8 MiB blocks, queue depths 8-64, 1-4 jobs a file, swept
  once per set before the rounds; the fastest setting then runs in the rounds like any loader
  (fio_ceiling.py; needs ``apt-get install fio``, else it is listed as skipped).
* ``--upstream-strategies``: upstream 0.17 with each file-system strategy it accepts
  (``RUNAI_STREAMER_FS_STRATEGY``: io_uring_direct, its default; io_uring_buffered,
  libaio_direct, sync_buffered) and its default strategy at ``RUNAI_STREAMER_CONCURRENCY`` 8
  and 32 (default 16): upstream at its best, not only at its defaults.
* ``--strategies``: this package also with ``RUNAI_STREAMER_FS_STRATEGY=buffered`` and
  ``=direct`` beside its default (``auto``), and ``auto`` with ``RUNAI_STREAMER_IO_URING=0``
  (direct reads with one pread after another instead of io_uring).

Usage::

    python benchmarks/bench_load.py                     # 2 GB, 5 rounds, warm (+ cold as root)
    python benchmarks/bench_load.py --size 512MB --rounds 5 --output results.md
"""

from __future__ import annotations

import argparse
import os
import shutil
import subprocess
import sys
import tempfile
from pathlib import Path

import fio_ceiling
from harness import (
    PREAD_CEILING,
    Loader,
    can_drop_caches,
    clean_env,
    drop_caches,
    format_round_ratios,
    format_table,
    installed,
    parse_size,
    run_benchmark,
    write_sample,
)

DEFAULT_UPSTREAM = "/tmp/upstream/bin/python"
#: upstream 0.17's other settings (its log lists the strategies it accepts; its default is
#: io_uring_direct with 16 workers)
UPSTREAM_VARIANTS = {
    "io_uring_buffered": {"RUNAI_STREAMER_FS_STRATEGY": "io_uring_buffered"},
    "libaio_direct": {"RUNAI_STREAMER_FS_STRATEGY": "libaio_direct"},
    "sync_buffered": {"RUNAI_STREAMER_FS_STRATEGY": "sync_buffered"},
    "concurrency 8": {"RUNAI_STREAMER_CONCURRENCY": "8"},
    "concurrency 32": {"RUNAI_STREAMER_CONCURRENCY": "32"},
}


def _upstream_ok(python: str) -> str:
    """'' when the interpreter has the upstream package, else why not."""
    if not os.path.exists(python):
        return f"{python} not found"
    probe = subprocess.run(
        [
            python,
            "-c",
            "import importlib.metadata as m, runai_model_streamer;"
            "print(m.version('runai-model-streamer'))",
        ],
        capture_output=True,
        text=True,
        env=clean_env(),
        check=False,
    )
    if probe.returncode != 0:
        return probe.stderr.strip().splitlines()[-1] if probe.stderr.strip() else "import failed"
    return ""


_CONVERT = """
import sys
from safetensors.torch import load_file
from tensorizer import TensorSerializer
serializer = TensorSerializer(sys.argv[2])
serializer.write_state_dict(load_file(sys.argv[1]))
serializer.close()
"""


def _tensorizer_files(files: list[str], directory: Path) -> list[str]:
    """Serializes the model to tensorizer's format (its loader cannot read safetensors), in a
    child process so this one stays small (children inherit nothing of it)."""
    out = []
    for path in files:
        target = directory / (Path(path).stem + ".tensors")
        subprocess.run([sys.executable, "-c", _CONVERT, path, str(target)], check=True)
        out.append(str(target))
    return out


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--size", default="2GB", help="model size (default 2GB)")
    parser.add_argument("--rounds", type=int, default=5)
    parser.add_argument(
        "--huge-pages",
        action="store_true",
        help="also run this package with RUNAI_STREAMER_HUGE_PAGES=1",
    )
    parser.add_argument("--dir", help="where to create the temporary model (default $TMPDIR)")
    parser.add_argument("--upstream-python", default=DEFAULT_UPSTREAM)
    parser.add_argument("--no-cold", action="store_true", help="skip cold-cache runs")
    parser.add_argument("--no-shards", action="store_true", help="skip the 4-shard set")
    parser.add_argument("--output", help="also write the tables to this markdown file")
    parser.add_argument(
        "--strategies",
        action="store_true",
        help="also run this package buffered, direct, and auto without io_uring",
    )
    parser.add_argument(
        "--upstream-strategies",
        action="store_true",
        help="run upstream 0.17 with each of its file-system strategies and concurrencies",
    )
    parser.add_argument(
        "--only",
        help="comma-separated loader label prefixes to run (e.g. runai,upstream,dd,O_DIRECT)",
    )
    args = parser.parse_args()
    size = parse_size(args.size)

    loaders = [Loader("runai-model-streamer", "runai")]
    if args.huge_pages:
        loaders.append(
            Loader(
                "runai-model-streamer (huge pages)",
                "runai",
                env={**os.environ, "RUNAI_STREAMER_HUGE_PAGES": "1"},
            )
        )
    if args.strategies:
        variants = {
            "buffered": {"RUNAI_STREAMER_FS_STRATEGY": "buffered"},
            "direct": {"RUNAI_STREAMER_FS_STRATEGY": "direct"},
            "auto, pread": {"RUNAI_STREAMER_IO_URING": "0"},
        }
        for variant, settings in variants.items():
            loaders.append(
                Loader(f"runai-model-streamer ({variant})", "runai", env={**os.environ, **settings})
            )
    skipped: list[str] = []
    if installed("safetensors"):
        loaders.append(Loader("safetensors (mmap+copy)", "safetensors"))
        loaders.append(Loader("safetensors (pread)", "safetensors-pread"))
    else:
        skipped.append("safetensors: not installed")
    why = _upstream_ok(args.upstream_python)
    if why:
        skipped.append(f"upstream 0.17: {why}")
    else:
        loaders.append(Loader("upstream 0.17", "runai", args.upstream_python, env=clean_env()))
        if args.upstream_strategies:
            for label, settings in UPSTREAM_VARIANTS.items():
                env = {**clean_env(), **settings}
                loaders.append(
                    Loader(f"upstream 0.17 ({label})", "runai", args.upstream_python, env=env)
                )
    if installed("fastsafetensors"):
        loaders.append(Loader("fastsafetensors", "fastsafetensors"))
    else:
        skipped.append("fastsafetensors: not installed")
    use_tensorizer = installed("tensorizer")
    if not use_tensorizer:
        skipped.append("tensorizer: not installed")
    cold = not args.no_cold and can_drop_caches()
    if not args.no_cold and not cold:
        skipped.append("cold cache: needs root (writes /proc/sys/vm/drop_caches)")

    sections: list[str] = []

    def report(line: str) -> None:
        print(line, file=sys.stderr, flush=True)

    with tempfile.TemporaryDirectory(prefix="runai-bench-", dir=args.dir) as tmp:
        directory = Path(tmp)
        sets = [("1 file", write_sample(str(directory / "model.safetensors"), size))]
        if not args.no_shards:
            sets.append(("4 shards", write_sample(str(directory / "sharded"), size, shards=4)))
        for label, files in sets:
            model_bytes = sum(os.path.getsize(f) for f in files)
            these = list(loaders)
            if use_tensorizer:
                tdir = directory / f"tensorizer-{len(files)}"
                tdir.mkdir()
                these.append(
                    Loader(
                        "tensorizer (2 readers)", "tensorizer", files=_tensorizer_files(files, tdir)
                    )
                )
            these.append(Loader(PREAD_CEILING, "pread"))
            caches = ["warm", "cold"] if cold else ["warm"]
            fio: list[Loader] = []
            if cold and fio_ceiling.available():
                best, swept = fio_ceiling.sweep(files, progress=report, before=drop_caches)
                sections.append(
                    f"fio sweep, {label} (fastest first):\n\n"
                    + "\n".join(f"- {line}" for line in swept)
                )
                env = {**os.environ, "FIO_SETTINGS": best.to_env()}
                fio.append(Loader(f"fio ceiling ({best.describe()})", "fio", env=env))
            elif cold and "fio ceiling: not installed (apt-get install fio)" not in skipped:
                skipped.append("fio ceiling: not installed (apt-get install fio)")
            for cache in caches:
                references = [
                    Loader("dd", "dd"),
                    Loader("dd iflag=direct", "dd-direct"),
                    Loader("O_DIRECT ceiling (16 threads, reused memory)", "direct-ceiling"),
                    *fio,
                ]
                run_loaders = these + (references if cache == "cold" else [])
                if args.only:
                    prefixes = tuple(p.strip() for p in args.only.split(",") if p.strip())
                    run_loaders = [x for x in run_loaders if x.label.startswith(prefixes)]
                report(f"== {label}, {cache} cache, {len(run_loaders)} loaders")
                results = run_benchmark(
                    run_loaders,
                    files,
                    rounds=args.rounds,
                    cold=cache == "cold",
                    warm=cache == "warm",
                    progress=report,
                )
                title = f"{label}, {cache} cache, {args.rounds} rounds (median)"
                sections.append(format_table(results, title=title, model_bytes=model_bytes))
                sections.append(
                    f"{run_loaders[0].label} per round:\n\n"
                    + format_round_ratios(results, run_loaders[0].label)
                )
                print("\n\n".join(sections[-2:]) + "\n", flush=True)
            if use_tensorizer:
                shutil.rmtree(directory / f"tensorizer-{len(files)}", ignore_errors=True)
    if skipped:
        sections.append("Skipped: " + "; ".join(skipped))
        print(sections[-1])
    if args.output:
        Path(args.output).write_text("\n\n".join(sections) + "\n")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
