"""What the benchmark scripts share: the package's benchmark runner (alternating rounds, peak
RSS, tables), with loaders run by ``comparison_worker.py`` so that every comparison loader is
available, the sample writer and the size parser. The one place the benchmarks reach into the
package's private modules."""

from __future__ import annotations

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
    "can_drop_caches",
    "clean_env",
    "drop_caches",
    "format_round_ratios",
    "format_table",
    "installed",
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
