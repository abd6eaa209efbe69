"""A window of a stream in flight (see :mod:`runai_model_streamer._stream`): its destination
buffer, the ranges of its items, the engine request that reads them, and what else is done
with the buffer: items copied into it from bytes read already, and its bytes written to a
cache entry."""

from __future__ import annotations

from concurrent.futures import Future

import numpy as np
import torch

from runai_model_streamer._abi import COMPLETION_DTYPE
from runai_model_streamer._buffers import Buffer
from runai_model_streamer._cache_entry import CacheWriter
from runai_model_streamer._native import checksum, checksum_combine
from runai_model_streamer._plan import WindowPlan


class ActiveWindow:
    __slots__ = (
        "base",
        "buffer",
        "busy",
        "early",
        "held",
        "landed",
        "plan",
        "ranges",
        "request_id",
        "skipped",
    )

    def __init__(
        self,
        plan: WindowPlan,
        buffer: Buffer | None = None,
        base: torch.Tensor | None = None,
        ranges: np.ndarray | None = None,
    ) -> None:
        self.plan = plan
        self.buffer = buffer
        #: the buffer as a uint8 tensor (None once the window is finished or closed)
        self.base = base
        #: the RANGE_DTYPE range of each item, in the order of ``plan.items``
        self.ranges = ranges
        self.request_id: int | None = None
        #: destination bytes this window holds (a reused buffer may be larger than the plan)
        self.held = 0 if buffer is None else buffer.size
        #: background work still reading this window's buffer (a cache writer's writes, a
        #: check's hashing): a reused buffer is not handed out again before it is done
        self.busy: list[Future[None]] = []
        #: (index in plan.items, CRC) of the items completed, for a cache writer
        self.landed: list[tuple[int, int]] = []
        #: the completions of the items copied from the file's start: the first ``skipped``
        #: items (the engine reads the others, and numbers them from 0)
        self.early: np.ndarray | None = None
        self.skipped = 0

    def land_from_start(self, start: bytes, kind: int) -> None:
        """Copies into the buffer the first items that lie wholly within ``start`` (the file's
        first bytes; items are in file order), with the completions the engine would have made
        of them (CRCs of ``kind``; 0: none)."""
        ranges, base = self.ranges, self.base
        assert ranges is not None and base is not None
        within = ranges["offset"] + ranges["size"] <= len(start)
        count = len(within) if within.all() else int(within.argmin())
        if not count:
            return
        done = np.zeros(count, dtype=COMPLETION_DTYPE)
        done["range_index"] = np.arange(count)
        destination, source = base.numpy(), memoryview(start)
        for index in range(count):
            offset, size = int(ranges["offset"][index]), int(ranges["size"][index])
            dst = self.plan.dst[index]
            destination[dst : dst + size] = np.frombuffer(start, np.uint8, size, offset)
            if kind:
                done["checksum"][index] = checksum(kind, source[offset : offset + size])
        self.early, self.skipped = done, count

    def write_to(self, writer: CacheWriter, kind: int, reused: bool) -> None:
        """Writes the buffer's items (all landed: :attr:`landed`) to a cache entry, one write
        per run of items adjacent both in the file and in the buffer (a whole object's window
        is one run: large writes, 4 KiB congruent for O_DIRECT), each with the CRC of its bytes
        (combined from its items'). ``reused``: the buffer is handed out again later, not
        before these writes are done."""
        plan, ranges, base = self.plan, self.ranges, self.base
        assert ranges is not None and base is not None
        offsets, sizes = ranges["offset"].tolist(), ranges["size"].tolist()
        crcs = dict(self.landed)
        runs: list[list[int]] = []  # indices into plan.items, in file order
        for index in range(len(plan.items)):
            if runs:
                last = runs[-1][-1]
                if (
                    offsets[index] == offsets[last] + sizes[last]
                    and plan.dst[index] == plan.dst[last] + sizes[last]
                ):
                    runs[-1].append(index)
                    continue
            runs.append([index])
        for run in runs:
            crc, span = crcs[run[0]], sizes[run[0]]
            for index in run[1:]:
                crc = checksum_combine(kind, crc, crcs[index], sizes[index])
                span += sizes[index]
            start = plan.dst[run[0]]
            data = base[start : start + span].numpy().data
            written = writer.write(offsets[run[0]], data, crc, kind)
            if written is not None and reused:
                self.busy.append(written)
