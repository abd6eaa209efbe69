"""What the benchmark scripts share: the package's benchmark runner (alternating rounds, peak
RSS, tables), with loaders run by ``comparison_worker.py`` so that every comparison loader is
available, the sample writer and the size parser. The one place the benchmarks reach into the
package's private modules."""

from __future__ import annotations

import argparse
import contextlib
import shutil
import subprocess
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

from runai_model_streamer import _bench
from runai_model_streamer._bench import (
    PREAD_CEILING,
    Result,
    can_drop_caches,
    drop_caches,
    format_round_ratios,
    format_table,
    installed,
    loader_env,
    run_benchmark,
    run_once,
)
from runai_model_streamer._sample import write_sample
from runai_model_streamer._settings import parse_size

#: the environment without what points at this checkout (for other interpreters)
clean_env = _bench._clean_env
COMPARISON_WORKER = str(Path(__file__).with_name("comparison_worker.py"))

__all__ = [
    "COMPARISON_WORKER",
    "PREAD_CEILING",
    "Loader",
    "Result",
    "add_link_rate_argument",
    "can_drop_caches",
    "clean_env",
    "drop_caches",
    "format_round_ratios",
    "format_table",
    "installed",
    "link_rate",
    "loader_env",
    "parse_size",
    "run_benchmark",
    "run_once",
    "write_sample",
]


@dataclass
class Loader(_bench.Loader):
    """A loader of the benchmarks: run by the comparison worker."""

    worker: str = COMPARISON_WORKER


def add_link_rate_argument(parser: argparse.ArgumentParser) -> None:
    """--link-rate, which :func:`link_rate` applies around a benchmark's timed rounds."""
    parser.add_argument(
        "--link-rate",
        metavar="RATE",
        help="shape the loopback device to this rate for the timed rounds (tc's units, e.g. "
        "8gbit; needs tc and root): a store behind a link of that speed, where the client has "
        "a core to spare",
    )


@contextlib.contextmanager
def link_rate(rate: str | None) -> Iterator[None]:
    """With a rate (tc's units: "4gbit"), the loopback device sends no faster than that while
    the block runs: a store on 127.0.0.1 behind a link of that speed, so that what a loader
    costs in CPU shows where the machine has a core to spare (every byte a store on this
    machine serves may cross lo more than once: SeaweedFS's volume server hands it to its S3
    gateway). Needs tc (Debian: iproute2) and root. It replaces the loopback's root qdisc and
    deletes it on the way out (lo has none of its own on the machines here)."""
    if not rate:
        yield
        return
    tc = shutil.which("tc")
    if tc is None:
        raise SystemExit("--link-rate needs tc: apt-get install iproute2")
    shape = [tc, "qdisc", "replace", "dev", "lo", "root", "tbf", "rate", rate]
    shape += ["burst", "4mb", "latency", "50ms"]
    done = subprocess.run(shape, capture_output=True, text=True, check=False)
    if done.returncode:
        raise SystemExit(f"--link-rate: {' '.join(shape)} failed: {done.stderr.strip()}")
    try:
        yield
    finally:
        subprocess.run([tc, "qdisc", "del", "dev", "lo", "root"], check=False)
