"""Planning a stream: each file's byte ranges ("items") grouped into *windows*, each one
destination buffer and one engine request whose ranges are the window's items
(:class:`~runai_model_streamer._stream.RangeStream` runs them). Items adjacent in the file get
adjacent destinations, so the engine can merge their reads; every other item starts at a
64-byte aligned destination, or, when large or first in its window, at the position within a
4 KiB block of its file offset (for direct I/O into place).

A window holds at most :data:`MAX_WINDOW_BYTES` (256 MiB) and, with a memory limit L, at most
L bytes (one item larger than that gets a window of its own).
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass, field

ALIGNMENT = 64
#: An item of at least DIRECT_MIN_BYTES that starts a window or follows a gap in the file gets
#: a destination at the same position within a 4 KiB block as its file offset (up to 4 KiB of
#: padding), so that the engine can read it with O_DIRECT straight into place.
DIRECT_ALIGNMENT = 4096
DIRECT_MIN_BYTES = 64 << 10
#: windows are at most this big (one larger item gets its own): the first tensors arrive
#: sooner, and memory of a big file is allocated (and freed) piece by piece
MAX_WINDOW_BYTES: float = 256 << 20


@dataclass
class FileRanges:
    """The byte ranges to read from one file (``offsets[i]``, ``sizes[i]`` is item i)."""

    path: str
    offsets: Sequence[int]
    sizes: Sequence[int]
    #: the object's size where its store told it (0: the engine asks it before the first read)
    size: int = 0
    #: the file's first bytes, read already with its header: items wholly within them are
    #: copied from here, not read again (a round trip less before a small first tensor)
    start: bytes = b""


@dataclass
class WindowPlan:
    file_position: int
    items: list[int] = field(default_factory=list)  # items with size > 0, in file-offset order
    dst: list[int] = field(default_factory=list)  # destination offset of each item in the buffer
    nbytes: int = 0
    empty_items: list[int] = field(default_factory=list)  # size-0 items (never sent to the engine)


def effective_limit(limit: int, files: Sequence[FileRanges]) -> float:
    """-1 -> unlimited (inf); 0 -> the largest item; N -> N."""
    if limit < 0:
        return float("inf")
    if limit == 0:
        return float(max((max(f.sizes, default=0) for f in files), default=0))
    return float(limit)


def plan_windows(
    files: Sequence[FileRanges], limit: int, max_window: float | None = None
) -> list[WindowPlan]:
    """Groups every file's items into windows of at most ``limit`` bytes (see module doc)."""
    cap = min(effective_limit(limit, files), MAX_WINDOW_BYTES if max_window is None else max_window)
    plans: list[WindowPlan] = []
    for position, file in enumerate(files):
        offsets, sizes = file.offsets, file.sizes
        if len(offsets) != len(sizes):
            raise ValueError(f"{file.path}: {len(offsets)} offsets but {len(sizes)} sizes")
        # (sorting tuples compares in C: a key function would be called per item)
        order = [i for _, _, i in sorted(zip(offsets, sizes, range(len(offsets)), strict=True))]
        window = WindowPlan(position)
        file_windows = [window]
        previous_end = -1
        cursor = 0
        for item in order:
            size = sizes[item]
            if size == 0:
                file_windows[0].empty_items.append(item)
                continue
            offset = offsets[item]
            if not window.items:
                dst = _start_of_window(offset, size, cap)
            else:
                dst = cursor if offset == previous_end else _start_of(offset, size, cursor)
            if window.items and dst + size > cap:
                window = WindowPlan(position)
                file_windows.append(window)
                dst = _start_of_window(offset, size, cap)
            window.items.append(item)
            window.dst.append(dst)
            window.nbytes = cursor = dst + size
            previous_end = offset + size
        plans.extend(file_windows)
    return plans


def _start_of_window(offset: int, size: int, cap: float) -> int:
    """Where the first item of a window starts: at the position within a 4 KiB block of its
    file offset, whatever its size, when that offset is 8-byte aligned and the padding keeps
    it within the window's ``cap`` (the run of adjacent items it starts, often the whole
    window, is then read with O_DIRECT into place, and a cache entry written from it with
    O_DIRECT; each tensor in it is exactly as aligned as at position 0, for dtypes of up to 8
    bytes); else at 0."""
    if size >= DIRECT_MIN_BYTES:
        return offset % DIRECT_ALIGNMENT
    if offset % 8 == 0 and offset % DIRECT_ALIGNMENT + size <= cap:
        return offset % DIRECT_ALIGNMENT
    return 0


def _start_of(offset: int, size: int, cursor: int) -> int:
    """Where an item not adjacent to the previous one starts (at or after ``cursor``)."""
    if size >= DIRECT_MIN_BYTES:
        return cursor + (offset - cursor) % DIRECT_ALIGNMENT
    return -(-cursor // ALIGNMENT) * ALIGNMENT
