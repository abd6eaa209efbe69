"""Load benchmark: every loader in its own process, alternating, median GB/s and peak RSS."""

from __future__ import annotations

import contextlib
import importlib.util
import json
import os
import statistics
import subprocess
import sys
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path

WORKER = str(Path(__file__).with_name("_bench_worker.py"))
DROP_CACHES = "/proc/sys/vm/drop_caches"
#: the reference loader that only reads (see _bench_worker._pread): no loader that hands out
#: tensors in new memory can beat it by much, so the other ratios are read against it
PREAD_CEILING = "pread into new memory"


@dataclass
class Loader:
    label: str
    kind: str  # a key of the worker's LOADERS
    python: str = sys.executable
    files: list[str] | None = None  # files this loader reads (default: the benchmark's)
    env: dict[str, str] | None = None  # replaces the environment when set
    worker: str = WORKER  # the script that runs it (the benchmarks' has more loaders)


@dataclass
class Result:
    label: str
    seconds: list[float] = field(default_factory=list)
    rss_peak: list[int] = field(default_factory=list)
    rss_base: list[int] = field(default_factory=list)
    cpu_seconds: list[float] = field(default_factory=list)
    first_seconds: list[float] = field(default_factory=list)  # to the first tensor, if known
    bytes: int = 0
    tensors: int = 0
    errors: list[str] = field(default_factory=list)

    @property
    def gbps(self) -> float:
        return self.bytes / statistics.median(self.seconds) / 1e9 if self.seconds else 0.0

    @property
    def cpu_per_gb(self) -> float:
        """Median CPU seconds per GB loaded (client side: this process and its children)."""
        if not self.cpu_seconds or not self.bytes:
            return 0.0
        return statistics.median(self.cpu_seconds) / (self.bytes / 1e9)

    @property
    def peak(self) -> int:
        return int(statistics.median(self.rss_peak)) if self.rss_peak else 0

    @property
    def base(self) -> int:
        return int(statistics.median(self.rss_base)) if self.rss_base else 0


def installed(module: str, python: str = sys.executable) -> bool:
    if python == sys.executable:
        return importlib.util.find_spec(module) is not None
    probe = subprocess.run(
        [python, "-c", f"import {module}"], capture_output=True, env=_clean_env(), check=False
    )
    return probe.returncode == 0


def _clean_env() -> dict[str, str]:
    """The environment without what points at this checkout (for other interpreters)."""
    return {k: v for k, v in os.environ.items() if k not in ("PYTHONPATH", "STREAMER_LIBRARY")}


def default_loaders() -> list[Loader]:
    loaders = [Loader("runai-model-streamer", "runai")]
    if installed("safetensors"):
        loaders.append(Loader("safetensors (mmap+copy)", "safetensors"))
        loaders.append(Loader("safetensors (pread)", "safetensors-pread"))
    if installed("fastsafetensors"):
        loaders.append(Loader("fastsafetensors", "fastsafetensors"))
    loaders.append(Loader(PREAD_CEILING, "pread"))
    return loaders


def can_drop_caches() -> bool:
    return os.access(DROP_CACHES, os.W_OK)


def drop_caches() -> None:
    os.sync()
    with open(DROP_CACHES, "w") as out:
        out.write("3\n")


def fill_page_cache(files: Sequence[str]) -> None:
    """Reads every file once, so that all of it is in the page cache."""
    for path in files:
        with open(path, "rb", buffering=0) as handle:
            while handle.read(64 << 20):
                pass


def run_once(loader: Loader, files: Sequence[str], timeout: float = 600) -> dict[str, object]:
    command = [loader.python, loader.worker, loader.kind, *(loader.files or files)]
    env = loader.env if loader.env is not None else dict(os.environ)
    done = subprocess.run(
        command, capture_output=True, text=True, env=env, timeout=timeout, check=False
    )
    if done.returncode != 0:
        tail = (done.stderr or done.stdout).strip().splitlines()[-3:]
        raise RuntimeError(f"{loader.label} failed (exit {done.returncode}): {' | '.join(tail)}")
    result: dict[str, object] = json.loads(done.stdout.strip().splitlines()[-1])
    return result


def round_order(loaders: Sequence[Loader], round_index: int) -> list[Loader]:
    """The order of one round, from a balanced Latin square (Williams design): within rounds,
    each loader runs right after each other one once in every len(loaders) rounds (an even
    count; odd counts take twice as many rounds, the second half mirrored). Not a rotation: on
    the VMs measured a process runs slower right after one that freed gigabytes (the host takes
    the freed memory back while the next one faults its pages in), and a rotation puts every
    loader after the same one in every round."""
    n = len(loaders)
    # First row 0, 1, n-1, 2, n-2, ...; round r adds r to every entry (mod n).
    first = [(j + 1) // 2 if j % 2 else (n - j // 2) % n for j in range(n)]
    order = [loaders[(k + round_index) % n] for k in first]
    if n % 2 and (round_index // n) % 2:
        order.reverse()
    return order


def run_benchmark(
    loaders: Sequence[Loader],
    files: Sequence[str],
    rounds: int = 3,
    cold: bool = False,
    progress: Callable[[str], None] | None = None,
    warm: bool = False,
    before: Callable[[Loader], None] | None = None,
) -> list[Result]:
    """Runs every loader ``rounds`` times, alternating (each round in the order of
    round_order), after one untimed run of the first loader: on the VMs measured, the first
    process to fault in memory after a pause pays for pages the host has taken back, whatever
    loader it is. Before every run, ``cold`` drops the page cache and ``warm`` (local files)
    reads the files whole: on those VMs the page cache loses pages not read for a while (1% of
    a 2 GB file in 10 s, 16% in 90 s), and a loader reading with O_DIRECT brings none back, so
    without it a loader's warm figure would depend on the loaders that ran before it.
    ``before(loader)`` runs before each run too (untimed: a benchmark's own preparation)."""
    if cold and warm:
        raise ValueError("a run is cold or warm, not both")
    if cold and not can_drop_caches():
        raise PermissionError(f"cold-cache runs need to write {DROP_CACHES} (run as root)")
    results = {loader.label: Result(loader.label) for loader in loaders}

    def prepare(loader: Loader) -> None:
        if cold:
            drop_caches()
        elif warm:
            fill_page_cache(loader.files or files)
        if before is not None:
            before(loader)

    if loaders:
        prepare(loaders[0])
        with contextlib.suppress(RuntimeError, subprocess.TimeoutExpired):
            run_once(loaders[0], files)  # its failures show up again in the timed rounds
    for round_index in range(rounds):
        for loader in round_order(loaders, round_index):
            result = results[loader.label]
            prepare(loader)
            try:
                run = run_once(loader, files)
            except (RuntimeError, subprocess.TimeoutExpired) as error:
                result.errors.append(str(error))
                if progress:
                    progress(f"round {round_index + 1}: {error}")
                continue
            result.seconds.append(float(run["seconds"]))  # type: ignore[arg-type]
            result.rss_peak.append(int(run["rss_peak"]))  # type: ignore[call-overload]
            result.rss_base.append(int(run["rss_base"]))  # type: ignore[call-overload]
            result.cpu_seconds.append(float(run.get("cpu_seconds", 0.0)))  # type: ignore[arg-type]
            if "first_seconds" in run:
                result.first_seconds.append(float(run["first_seconds"]))  # type: ignore[arg-type]
            result.bytes = int(run["bytes"])  # type: ignore[call-overload]
            result.tensors = int(run["tensors"])  # type: ignore[call-overload]
            if progress:
                progress(
                    f"round {round_index + 1}/{rounds} {loader.label}: "
                    f"{result.bytes / float(run['seconds']) / 1e9:.2f} GB/s"  # type: ignore[arg-type]
                )
    return list(results.values())


def format_table(results: Sequence[Result], title: str = "", model_bytes: int = 0) -> str:
    """A markdown table: median GB/s, seconds, peak RSS, and ratios against every loader."""
    ok = [r for r in results if r.seconds]
    header = ["loader", "GB/s", "s (median)", "runs", "CPU s/GB", "peak RSS", "RSS - base"]
    header += [f"x vs {r.label}" for r in ok]
    rows = [header, ["---"] * len(header)]
    for result in results:
        if not result.seconds:
            reason = result.errors[-1] if result.errors else "no runs"
            rows.append([result.label, "failed", reason[:60], "0", "", "", ""] + [""] * len(ok))
            continue
        row = [
            result.label,
            f"{result.gbps:.2f}",
            f"{statistics.median(result.seconds):.3f}",
            str(len(result.seconds)),
            f"{result.cpu_per_gb:.2f}",
            f"{result.peak / 2**20:.0f} MiB",
            f"{(result.peak - result.base) / 2**20:.0f} MiB",
        ]
        for other in ok:
            row.append(f"{result.gbps / other.gbps:.2f}" if other.gbps else "")
        rows.append(row)
    lines = [f"### {title}", ""] if title else []
    if model_bytes:
        lines += [f"model: {model_bytes / 1e9:.2f} GB", ""]
    lines += ["| " + " | ".join(row) + " |" for row in rows]
    return "\n".join(lines)


def format_round_ratios(results: Sequence[Result], reference: str) -> str:
    """A markdown table of ``reference``'s speed over every other loader's, round by round
    (the rounds alternate loaders, so round i of each ran close in time)."""
    base = next((r for r in results if r.label == reference and r.seconds), None)
    if base is None:
        return ""
    others = [r for r in results if r is not base and len(r.seconds) == len(base.seconds)]
    rows = [["round", *(f"x vs {r.label}" for r in others)], ["---"] * (len(others) + 1)]
    for index, seconds in enumerate(base.seconds):
        ratios = [f"{other.seconds[index] / seconds:.2f}" for other in others]
        rows.append([str(index + 1), *ratios])
    return "\n".join("| " + " | ".join(row) + " |" for row in rows)


def loader_env(overrides: Mapping[str, str] | None = None) -> dict[str, str]:
    env = dict(os.environ)
    env.update(overrides or {})
    return env
