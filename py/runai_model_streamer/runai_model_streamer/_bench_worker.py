"""One benchmark run of one loader, in its own process (for a clean peak-RSS figure).

Run as a script, possibly by another interpreter (for example a virtual environment holding
the upstream package), so it imports nothing from this package at module level:

    python _bench_worker.py LOADER FILE [FILE...]

The loaders here are what ``runai-model-streamer bench`` compares: this package, safetensors
and fastsafetensors where installed, and the pread ceiling. The comparison loaders of the
benchmarks (object-store SDKs, s5cmd, tensorizer, dd, the O_DIRECT and raw-GET ceilings) are in
``benchmarks/comparison_worker.py``, which runs this module's :func:`main` with them added.

Prints one JSON line: loader, seconds (loading only, imports excluded), bytes, tensors,
rss_base (peak RSS after imports, bytes), rss_peak (peak RSS at the end, bytes) and
cpu_seconds (user + system CPU time of the loading, children included); first_seconds (to the
first tensor) where the loader yields tensors one by one.
"""

from __future__ import annotations

import json
import os
import resource
import sys
import time
from collections.abc import Callable
from typing import Any

KEEP_ALIVE: list[object] = []
#: seconds from a load's start to its first tensor (loaders that yield tensors one by one)
FIRST_TENSOR: list[float] = []


def keep(tensors: dict[str, Any]) -> int:
    """Keep a loader's tensors alive past the timed region, as the references keep their
    buffers: freeing gigabytes (munmap) is not loading, and took 0.3-0.5 s of a 2 GB run."""
    KEEP_ALIVE.append(tensors)
    return len(tensors)


def _peak_rss() -> int:
    # Linux: VmHWM of this process image (ru_maxrss survives exec, so it would include the
    # parent's peak when the parent was bigger); elsewhere ru_maxrss.
    try:
        with open("/proc/self/status") as status:
            for line in status:
                if line.startswith("VmHWM:"):
                    return int(line.split()[1]) * 1024
    except OSError:
        pass
    peak = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss
    return int(peak if sys.platform == "darwin" else peak * 1024)


def _cpu_seconds() -> float:
    """User + system CPU time of this process and its finished children (s5cmd, dd)."""
    own = resource.getrusage(resource.RUSAGE_SELF)
    children = resource.getrusage(resource.RUSAGE_CHILDREN)
    return own.ru_utime + own.ru_stime + children.ru_utime + children.ru_stime


def runai(owned: bool) -> Callable[[list[str]], tuple[int, int]]:
    """This package. ``owned=False`` reuses buffers within RUNAI_STREAMER_MEMORY_LIMIT: one
    element of each tensor is read, as a consumer that copies each tensor elsewhere (a GPU)
    reads it, and nothing is kept."""

    def load(files: list[str]) -> tuple[int, int]:
        from runai_model_streamer import SafetensorsStreamer

        kept: dict[str, Any] = {}
        total = count = 0
        start = time.perf_counter()
        with SafetensorsStreamer() as streamer:
            streamer.stream_files(files, owned=owned)
            for name, tensor in streamer.get_tensors():
                if not count:
                    FIRST_TENSOR.append(time.perf_counter() - start)
                count += 1
                total += tensor.numel() * tensor.element_size()
                if owned:
                    kept[name] = tensor
                elif tensor.numel():
                    tensor.reshape(-1)[0].item()
        return total, keep(kept) if owned else count

    return load


def _safetensors(backend: str | None) -> Callable[[list[str]], tuple[int, int]]:
    def load(files: list[str]) -> tuple[int, int]:
        from safetensors.torch import load_file

        kept: dict[str, Any] = {}
        total = 0
        for path in files:
            tensors = load_file(path) if backend is None else load_file(path, backend=backend)
            for name, tensor in tensors.items():
                # mmap: copy once into process memory, as a weight loader copies into params
                kept[name] = tensor.clone() if backend is None else tensor
                total += tensor.numel() * tensor.element_size()
        return total, keep(kept)

    return load


def _fastsafetensors(files: list[str]) -> tuple[int, int]:
    from fastsafetensors import SafeTensorsFileLoader, SingleGroup

    loader = SafeTensorsFileLoader(SingleGroup(), "cpu", nogds=True)
    loader.add_filenames({0: files})
    buffer = loader.copy_files_to_device()
    kept = {}
    total = 0
    for name in loader.get_keys():
        # views into the loader's buffer, valid while it is open (kept open: no extra copy)
        tensor = buffer.get_tensor(name)
        kept[name] = tensor
        total += tensor.numel() * tensor.element_size()
    KEEP_ALIVE.append((loader, buffer))
    return total, keep(kept)


def _pread_into(memory: memoryview, fd: int, start: int, end: int, path: str) -> None:
    while start < end:
        got = os.preadv(fd, [memory[start:end]], start)
        if got <= 0:
            raise OSError(f"{path}: file ended at offset {start}")
        start += got


def _pread(files: list[str]) -> tuple[int, int]:
    """The reference for loaders that read into new memory: 2 threads pread 8 MiB pieces of
    each file into one fresh private anonymous mapping (no parsing, no tensors; the GIL is
    released)."""
    import mmap
    from concurrent.futures import ThreadPoolExecutor

    piece = 8 << 20
    total = 0
    with ThreadPoolExecutor(2) as pool:
        for path in files:
            size = os.path.getsize(path)
            memory = mmap.mmap(-1, max(size, 1), flags=mmap.MAP_PRIVATE | mmap.MAP_ANONYMOUS)
            view = memoryview(memory)
            fd = os.open(path, os.O_RDONLY)
            try:
                reads = [
                    pool.submit(_pread_into, view, fd, at, min(at + piece, size), path)
                    for at in range(0, size, piece)
                ]
                for read in reads:
                    read.result()
            finally:
                os.close(fd)
            KEEP_ALIVE.append((memory, view))
            total += size
    return total, 0


LOADERS: dict[str, Callable[[list[str]], tuple[int, int]]] = {
    "runai": runai(owned=True),
    "safetensors": _safetensors(None),
    "safetensors-pread": _safetensors("pread"),
    "fastsafetensors": _fastsafetensors,
    "pread": _pread,
}

IMPORTS = {
    "runai": "runai_model_streamer",
    "safetensors": "safetensors.torch",
    "safetensors-pread": "safetensors.torch",
    "fastsafetensors": "fastsafetensors",
    "pread": "os",
}


Load = Callable[[list[str]], tuple[int, int]]


def main(
    argv: list[str], loaders: dict[str, Load] | None = None, imports: dict[str, str] | None = None
) -> int:
    """Runs ``argv[0]`` (a key of ``loaders``, default :data:`LOADERS`) on the files ``argv[1:]``
    and prints the JSON line; the benchmarks' worker passes more loaders."""
    loaders = LOADERS if loaders is None else loaders
    imports = IMPORTS if imports is None else imports
    if len(argv) < 2 or argv[0] not in loaders:
        print(f"usage: {sys.argv[0]} {{{','.join(loaders)}}} FILE...", file=sys.stderr)
        return 2
    loader, files = argv[0], argv[1:]
    if imports[loader] != "":  # dd (a program) imports nothing
        # Import cost is not part of loading, but its time is: on the VMs measured, memory the
        # previous run freed is taken back by the host within about 2 s, so a process that
        # starts reading sooner (no torch import) faults in cheaper pages. Every Python loader,
        # the pread reference included, pays the same import first.
        import torch  # noqa: F401

        __import__(imports[loader])
    base = _peak_rss()
    cpu_before = _cpu_seconds()
    start = time.perf_counter()
    total, tensors = loaders[loader](files)
    seconds = time.perf_counter() - start
    cpu = _cpu_seconds() - cpu_before
    result = {
        "loader": loader,
        "seconds": seconds,
        "bytes": total,
        "tensors": tensors,
        "rss_base": base,
        "rss_peak": _peak_rss(),
        "cpu_seconds": cpu,
    }
    if FIRST_TENSOR:
        result["first_seconds"] = FIRST_TENSOR[0]
    print(json.dumps(result))
    return 0


if __name__ == "__main__":
    raise SystemExit(main(sys.argv[1:]))
