"""Destination buffers of a stream: lazily faulted anonymous mappings by default, or native
buffers faulted in ahead (``RUNAI_STREAMER_PREFAULT=1``), and the pool that reuses them for
``owned=False`` streams (see :mod:`runai_model_streamer._stream`)."""

from __future__ import annotations

import contextlib
import mmap

import numpy as np

from runai_model_streamer._native import NativeBuffer

#: buffers smaller than this are faulted in by the calling thread only
SMALL_BUFFER = 32 << 20


class BufferPool:
    """Reusable destination buffers of an ``owned=False`` stream. A free buffer is kept only
    while it and the buffers in use fit in the stream's memory budget: what the stream holds,
    reused or not, stays within RUNAI_STREAMER_MEMORY_LIMIT."""

    def __init__(self, prefault: bool = False, huge_pages: bool = False) -> None:
        self.prefault = prefault
        self.huge_pages = huge_pages
        self._free: list[Buffer] = []

    @property
    def free_bytes(self) -> int:
        return sum(b.size for b in self._free)

    def _fitting(self, size: int) -> Buffer | None:
        fitting = [b for b in self._free if b.size >= size]
        return min(fitting, key=lambda b: b.size) if fitting else None

    def cost(self, size: int) -> int:
        """The bytes that :meth:`take` would hand out for ``size``: a free buffer may be larger."""
        best = self._fitting(size)
        return size if best is None else best.size

    def take(self, size: int, room: float) -> Buffer:
        """The smallest free buffer of at least ``size`` bytes; else a new one, after dropping
        free buffers (smallest first) until they and it fit in ``room`` bytes (the budget less
        the buffers in use)."""
        best = self._fitting(size)
        if best is not None:
            self._free.remove(best)
            return best
        self._free.sort(key=lambda b: b.size)
        while self._free and self.free_bytes + size > room:
            self._free.pop(0)
        return allocate(size, self.prefault, self.huge_pages)

    def give(self, buffer: Buffer) -> None:
        self._free.append(buffer)

    def clear(self) -> None:
        self._free.clear()


class MappedBuffer:
    """An anonymous private mapping (huge pages advised on request), not faulted in up front:
    the engine's reader threads fault its pages in, in parallel, each just before its read.
    Unmapped when the last array viewing it is gone."""

    __slots__ = ("__weakref__", "_array", "_map", "address", "size")

    def __init__(self, size: int, huge_pages: bool = False) -> None:
        self.size = max(int(size), 1)
        self._map = mmap.mmap(-1, self.size, flags=mmap.MAP_PRIVATE | mmap.MAP_ANONYMOUS)
        advice = getattr(mmap, "MADV_HUGEPAGE", None)
        if advice is not None and self.size >= (2 << 20) and huge_pages:
            with contextlib.suppress(OSError):
                self._map.madvise(advice)
        self._array = np.frombuffer(self._map, dtype=np.uint8)
        self.address = int(self._array.ctypes.data)

    @property
    def __array_interface__(self) -> dict[str, object]:
        return {
            "data": (self.address, False),
            "shape": (self.size,),
            "typestr": "|u1",
            "version": 3,
        }


Buffer = NativeBuffer | MappedBuffer


def allocate(size: int, prefault: bool = False, huge_pages: bool = False) -> Buffer:
    """A destination buffer: by default a lazily faulted MappedBuffer; with ``prefault`` one
    from runai_streamer_alloc, faulted in by helper threads before any read starts.

    Lazy is the default because the engine's reader threads fault pages in while they copy, in
    parallel, instead of a separate pass before reading (benchmarks/RESULTS.md, "Measurements
    behind defaults").
    """
    if prefault:
        return NativeBuffer(size, 1 if size < SMALL_BUFFER else 0)
    return MappedBuffer(size, huge_pages)
