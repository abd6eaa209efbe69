"""fio as the cold-read ceiling of the local benchmarks: the device's own limit, measured with
O_DIRECT reads through io_uring and libaio at several block sizes, queue depths and job counts
(the best of them is the ceiling), on the very files the loaders read. A file's whole blocks
are split into ``jobs`` contiguous parts read at once; the rest in 4 KiB reads beside them.

fio is a Debian package (``apt-get install fio``); without it the benchmarks say so and run
without this ceiling. The unaligned tail of a file (under 4 KiB) is left out: O_DIRECT cannot
read it.
"""

from __future__ import annotations

import itertools
import json
import os
import shutil
import subprocess
import tempfile
from collections.abc import Callable
from dataclasses import dataclass

ALIGN = 4096


@dataclass(frozen=True)
class FioSettings:
    engine: str  # io_uring | libaio
    block: str  # 1M | 8M
    depth: int
    jobs: int  # parts of each file read at once

    def describe(self) -> str:
        return f"{self.engine}, bs {self.block}, depth {self.depth}, {self.jobs} job(s) a file"

    def to_env(self) -> str:
        return json.dumps(self.__dict__)

    @classmethod
    def from_env(cls, text: str) -> FioSettings:
        return cls(**json.loads(text))


#: the settings the sweep tries (issue 32: 1 and 8 MiB blocks, depths 8-64, 1-4 jobs)
GRID = [
    FioSettings(engine, block, depth, jobs)
    for engine, block, depth, jobs in itertools.product(
        ("io_uring", "libaio"), ("1M", "8M"), (8, 16, 32, 64), (1, 2, 4)
    )
]


def available() -> bool:
    return shutil.which("fio") is not None


def job_file(files: list[str], settings: FioSettings) -> tuple[str, int]:
    """fio's job file reading ``files`` whole (but their unaligned tails), and the bytes it
    reads."""
    lines = [
        "[global]",
        "rw=read",
        "direct=1",
        f"ioengine={settings.engine}",
        f"bs={settings.block}",
        f"iodepth={settings.depth}",
        "thread",
    ]
    block = int(settings.block.removesuffix("M")) << 20
    total = 0
    for index, path in enumerate(files):
        size = os.path.getsize(path) // ALIGN * ALIGN
        body = size // block * block  # fio reads whole blocks: the rest in 4 KiB ones
        part = -(-(body // block) // settings.jobs) * block or block
        for at in range(0, body, part):
            length = min(part, body - at)
            lines += [f"[f{index}-{at}]", f"filename={path}", f"offset={at}", f"size={length}"]
            total += length
        if size > body:
            lines += [f"[f{index}-tail]", f"filename={path}", f"offset={body}"]
            lines += [f"size={size - body}", "bs=4k"]
            total += size - body
    return "\n".join(lines) + "\n", total


def _run(files: list[str], settings: FioSettings) -> tuple[int, float]:
    """Runs fio once: the bytes read and the seconds fio took (its longest job: all run at
    once). It fails loudly."""
    text, total = job_file(files, settings)
    with tempfile.NamedTemporaryFile("w", suffix=".fio") as job:
        job.write(text)
        job.flush()
        done = subprocess.run(
            ["fio", "--readonly", "--output-format=json", job.name],
            capture_output=True,
            text=True,
            check=False,
        )
    if done.returncode != 0:
        raise OSError(f"fio failed ({settings.describe()}): {done.stderr.strip()[-500:]}")
    jobs = json.loads(done.stdout)["jobs"]
    read_bytes = sum(job["read"]["io_bytes"] for job in jobs)
    if read_bytes != total:
        raise OSError(f"fio read {read_bytes} bytes, not {total} ({settings.describe()})")
    return total, max(job["read"]["runtime"] for job in jobs) / 1000


def read(files: list[str], settings: FioSettings) -> int:
    """The benchmark's loader: reads the files once; the bytes read."""
    return _run(files, settings)[0]


def sweep(
    files: list[str],
    progress: Callable[[str], None] | None = None,
    before: Callable[[], None] | None = None,
) -> tuple[FioSettings, list[str]]:
    """Every setting of GRID once, ``before`` each (dropping the caches: O_DIRECT skips the
    page cache, yet reads after a drop measured slower here); the fastest, and a line per
    setting, fastest first, in GB/s by fio's own clock (its I/O only: not its start nor the
    allocation of its buffers, up to depth x block x jobs)."""
    results = []
    for settings in GRID:
        if before is not None:
            before()
        total, seconds = _run(files, settings)
        results.append((total / seconds / 1e9 if seconds else 0.0, settings))
        if progress is not None:
            progress(f"fio {settings.describe()}: {results[-1][0]:.2f} GB/s")
    results.sort(key=lambda r: r[0], reverse=True)
    lines = [f"{gbps:.2f} GB/s: {settings.describe()}" for gbps, settings in results]
    return results[0][1], lines
