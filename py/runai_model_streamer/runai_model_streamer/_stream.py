"""The streaming core shared by SafetensorsStreamer and FileStreamer.

Input: for each file, byte ranges ("items"), grouped into windows by
:mod:`runai_model_streamer._plan`; a window is one destination buffer and one engine request
whose ranges are the window's items. Windows are submitted while the bytes of windows not yet
fully handed out stay within the memory limit L (without a limit: within
:data:`PREFETCH_BYTES`), so reading runs ahead of the consumer, across files.

Items are yielded file by file in the given order, and within a window in completion order.
Items wholly within a file's ``start`` (its first bytes, read already with its header) are
copied from there and yielded first, without a read.

Checks: a file given an :class:`~runai_model_streamer._verify.ObjectCheck` has the CRC of each
of its items computed by the engine (and, for a digest such as MD5, each item's bytes fed to the
check's hashing thread as it completes); the completion that makes the object whole verifies
it, and a mismatch raises before that batch's items are yielded. A file read from a cache entry
has each item checked against the CRC it was written with as it completes; a damaged item is
read again from the object's store (``stores``) into the same place, before it is yielded.

Buffers (:mod:`runai_model_streamer._buffers`): anonymous mappings of plain pages, faulted in
by the engine's reader threads. With ``owned=True`` every window gets a fresh buffer, released
when the last tensor viewing it is garbage-collected. With ``owned=False`` buffers return to a
pool once the consumer has moved past their window, and are overwritten by later windows; the
pool keeps a free buffer only while it and the windows in flight fit in L (or PREFETCH_BYTES),
so that everything the stream holds does.
"""

from __future__ import annotations

import contextlib
import dataclasses
import logging
import time
from collections import deque
from collections.abc import Callable, Iterator, Sequence

import numpy as np
import torch

from runai_model_streamer._abi import COMPLETION_DTYPE, RANGE_DTYPE
from runai_model_streamer._buffers import Buffer, BufferPool, allocate
from runai_model_streamer._cache_entry import CacheWriter
from runai_model_streamer._errors import ChecksumMismatchError, RunaiStreamerError
from runai_model_streamer._library import error_for_status
from runai_model_streamer._native import Engine, completion_message
from runai_model_streamer._plan import FileRanges, WindowPlan, effective_limit, plan_windows
from runai_model_streamer._settings import HUGE_PAGES, PREFAULT
from runai_model_streamer._verify import ObjectCheck
from runai_model_streamer._window import ActiveWindow

logger = logging.getLogger("runai_model_streamer")

PREFETCH_BYTES = 1 << 30
#: how often, at most, a stream asks the backend plugins for fresh options (credentials that
#: expire are refreshed by their providers; a plugin re-registered with new options serves
#: the windows submitted after it, and those in flight finish with the old ones)
REFRESH_SECONDS = 60.0
MAX_REQUESTS_IN_FLIGHT = 64
MAX_COMPLETIONS_PER_WAIT = 4096
WAIT_TIMEOUT_MS = 200


Describe = Callable[[int, int], str]
#: what a size-0 item yields
EMPTY_CHUNK = torch.empty(0, dtype=torch.uint8)
#: (file position, item index, buffer, start, size): the item's bytes are
#: ``buffer[start:start + size]`` (a consumer that makes typed views slices once, not twice)
Piece = tuple[int, int, torch.Tensor, int, int]


def chunks_of(pieces: Iterator[Piece]) -> Iterator[tuple[int, int, torch.Tensor]]:
    """``(file position, item index, uint8 tensor of its bytes)`` for each piece."""
    for position, item, base, start, size in pieces:
        yield position, item, base[start : start + size]


class RangeStream:
    """Streams the items of ``files`` through ``engine``; iterate for
    ``(file_position, item_index, uint8 tensor)``, or :meth:`pieces` for where each item
    landed. Not thread-safe (one consumer)."""

    def __init__(
        self,
        engine: Engine,
        files: Sequence[FileRanges],
        memory_limit: int,
        owned: bool = True,
        describe: Describe | None = None,
        refresh: Callable[[], None] | None = None,
        max_window: float | None = None,
        checks: Sequence[ObjectCheck | None] | None = None,
        writers: Sequence[CacheWriter | None] | None = None,
        stores: Sequence[str | None] | None = None,
    ) -> None:
        """``stores``: for a file that is a cache entry, the URI of its object in its store."""
        self._engine = engine
        self._stores = list(stores) if stores is not None else [None] * len(files)
        self._checks = list(checks) if checks is not None else [None] * len(files)
        self._writers = list(writers) if writers is not None else [None] * len(files)
        self._refresh = refresh
        self._refreshed_at = time.monotonic()
        self._files = list(files)
        self._sizes = [list(f.sizes) for f in self._files]
        self._offsets = [np.asarray(f.offsets, dtype=np.uint64) for f in self._files]
        self._size_arrays = [np.asarray(f.sizes, dtype=np.uint64) for f in self._files]
        plans = plan_windows(self._files, memory_limit, max_window)
        self._pending: deque[WindowPlan] = deque(plans)
        budget = effective_limit(memory_limit, self._files)
        self._budget = PREFETCH_BYTES if budget == float("inf") else budget
        self._active: deque[ActiveWindow] = deque()
        self._in_flight = 0
        self._prefault = PREFAULT.read()
        self._huge_pages = HUGE_PAGES.read()
        self._pool = (
            None if owned else BufferPool(prefault=self._prefault, huge_pages=self._huge_pages)
        )
        self._describe = describe
        largest = max((len(w.items) for w in self._pending), default=1)
        self._completions = np.zeros(
            max(1, min(largest, MAX_COMPLETIONS_PER_WAIT)), dtype=COMPLETION_DTYPE
        )
        self.total_bytes = sum(sum(s) for s in self._sizes)
        self._started = False
        #: most destination bytes held at once: windows submitted and not yet fully handed
        #: out, and (owned=False) free buffers kept for reuse
        self.peak_in_flight = 0

    def start(self) -> None:
        """Submits the first windows (so reading starts before iteration)."""
        self._started = True
        self._fill()

    def __iter__(self) -> Iterator[tuple[int, int, torch.Tensor]]:
        return chunks_of(self.pieces())

    def pieces(self) -> Iterator[Piece]:
        """Each item as it lands (see :data:`Piece`)."""
        try:
            if not self._started:
                self.start()
            while self._active or self._pending:
                self._fill()
                if not self._active:  # closed while the consumer was away
                    return
                window = self._active[0]
                position = window.plan.file_position
                for item in window.plan.empty_items:
                    yield position, item, EMPTY_CHUNK, 0, 0
                if window.buffer is not None:
                    yield from self._drain(window)
                if not self._active or self._active[0] is not window:
                    return  # closed while the consumer was away
                self._active.popleft()
                self._finish(window)
        finally:
            self.close()

    def __del__(self) -> None:
        # Before the buffers go: no worker may write into memory that is about to be freed.
        with contextlib.suppress(Exception):
            self.close()

    def close(self) -> None:
        """Cancels and forgets every request in flight; safe to call more than once."""
        for check in self._checks:
            if check is not None:  # verified already, or never will be: stop hashing
                check.close()
        while self._active:
            window = self._active.popleft()
            self._finish(window, cancel=True)
        self._pending.clear()
        if self._pool is not None:
            self._pool.clear()
        for position, writer in enumerate(self._writers):
            if writer is not None:  # its object was not read whole and verified
                writer.abort()
                self._writers[position] = None

    def _finish(self, window: ActiveWindow, cancel: bool = False) -> None:
        if window.request_id is not None:
            if cancel:
                self._engine.cancel(window.request_id)
            self._engine.release(window.request_id)
            window.request_id = None
        self._in_flight -= window.held
        for work in window.busy:  # a cache writer or a digest still reading the buffer
            work.result()
        window.busy = []
        if self._pool is not None and window.buffer is not None and not cancel:
            self._pool.give(window.buffer)
        window.buffer = None
        window.base = None
        window.ranges = None

    def _fill(self) -> None:
        batch: list[tuple[WindowPlan, Buffer | None]] = []
        in_flight = self._in_flight
        while self._pending:
            plan = self._pending[0]
            cost = self._cost(plan)
            if (self._active or batch) and (
                in_flight + cost > self._budget
                or len(self._active) + len(batch) >= MAX_REQUESTS_IN_FLIGHT
            ):
                break
            self._pending.popleft()
            batch.append((plan, self._take_buffer(plan, self._budget - in_flight)))
            in_flight += cost
        # Every window of the batch is made ready (its buffer mapped, its ranges built, the
        # items read already copied in) before the batch's first read starts: once reads run,
        # the engine's workers hold the address-space lock (shared) while they fault
        # destination pages in, and this thread's mmap() waits behind them (2 GB warm: 20-90
        # ms), as do its allocations that grow the heap.
        if batch:
            self._refresh_backends()
        windows = [self._prepare(plan, buffer) for plan, buffer in batch]
        for window in windows:
            self._send(window)

    def _refresh_backends(self) -> None:
        if self._refresh is None or time.monotonic() - self._refreshed_at < REFRESH_SECONDS:
            return
        self._refreshed_at = time.monotonic()
        try:
            self._refresh()
        except Exception as error:  # the current options may well still be valid
            logger.warning("refreshing the backend options failed (streaming goes on): %s", error)

    def _cost(self, plan: WindowPlan) -> int:
        """The destination bytes ``plan`` will hold (what :meth:`_take_buffer` gives it)."""
        if not plan.items:
            return 0
        return plan.nbytes if self._pool is None else self._pool.cost(plan.nbytes)

    def _take_buffer(self, plan: WindowPlan, room: float) -> Buffer | None:
        if not plan.items:
            return None
        if self._pool is not None:
            return self._pool.take(plan.nbytes, room)
        return allocate(plan.nbytes, self._prefault, self._huge_pages)

    def _prepare(self, plan: WindowPlan, buffer: Buffer | None) -> ActiveWindow:
        """The window of ``plan`` in ``buffer``, its items within the file's start copied."""
        if buffer is None:
            return ActiveWindow(plan)
        base = torch.from_numpy(np.asarray(buffer))
        items = np.asarray(plan.items, dtype=np.intp)
        ranges = np.empty(len(items), dtype=RANGE_DTYPE)
        ranges["offset"] = self._offsets[plan.file_position][items]
        ranges["size"] = self._size_arrays[plan.file_position][items]
        ranges["dst"] = np.asarray(plan.dst, dtype=np.uint64) + np.uint64(buffer.address)
        window = ActiveWindow(plan, buffer, base, ranges)
        file = self._files[plan.file_position]
        if file.start:
            window.land_from_start(file.start, self._checksum_kind(plan.file_position))
            if window.skipped < len(ranges):  # no later window has an item within it
                self._files[plan.file_position] = dataclasses.replace(file, start=b"")
        return window

    def _send(self, window: ActiveWindow) -> None:
        """Submits the window's items the engine reads; it is in flight from now on."""
        ranges, position = window.ranges, window.plan.file_position
        if ranges is not None and window.skipped < len(ranges):
            file = self._files[position]
            window.request_id = self._engine.submit(
                [(file.path, ranges[window.skipped :])], self._checksum_kind(position), [file.size]
            )
        self._active.append(window)
        self._in_flight += window.held
        kept = 0 if self._pool is None else self._pool.free_bytes
        self.peak_in_flight = max(self.peak_in_flight, self._in_flight + kept)

    def _checksum_kind(self, position: int) -> int:
        """The CRC each completion of file ``position`` carries (0: none, it is not checked)."""
        check = self._checks[position]
        return check.kind if check is not None else 0

    def _drain(self, window: ActiveWindow) -> Iterator[Piece]:
        early, window.early = window.early, None
        if early is not None:
            yield from self._landed(window, early)
        completions = self._completions
        remaining = len(window.plan.items) - window.skipped
        while remaining:
            request_id = window.request_id
            if request_id is None:  # the stream was closed (or replaced) meanwhile
                return
            batch = completions[: min(remaining, len(completions))]
            count = self._engine.wait(request_id, batch, WAIT_TIMEOUT_MS)
            if count == 0:
                continue
            done = batch[:count]
            if window.skipped:  # the engine numbers the items it was given from 0
                done["range_index"] += window.skipped
            remaining -= count
            yield from self._landed(window, done)

    def _landed(self, window: ActiveWindow, done: np.ndarray) -> Iterator[Piece]:
        """Checks and writes through the items ``done`` says landed, then yields them."""
        plan = window.plan
        position = plan.file_position
        base = window.base
        assert base is not None
        if done["status"].any():
            self._raise_failure(window, done)
        check = self._checks[position]
        if check is not None:
            self._check(check, window, done)
        writer = self._writers[position]
        if writer is not None:
            self._write_through(writer, window, done, check)
        sizes = self._sizes[position]
        for index in done["range_index"].tolist():
            if window.base is None:  # closed while the consumer was away
                return
            item = plan.items[index]
            yield position, item, base, plan.dst[index], sizes[item]

    def _check(self, check: ObjectCheck, window: ActiveWindow, done: np.ndarray) -> None:
        """Adds the completed items' CRCs (and their bytes, for a digest); verifies once the
        object is whole (raises)."""
        plan = window.plan
        offsets = self._offsets[plan.file_position]
        sizes = self._sizes[plan.file_position]
        base = window.base
        assert base is not None
        for index, crc in zip(done["range_index"].tolist(), done["checksum"].tolist(), strict=True):
            item = plan.items[index]
            offset, size = int(offsets[item]), sizes[item]
            if check.known and check.damaged(offset, size, crc):
                crc = self._read_again(window, index, check)
            if check.spans_parts(offset, size):  # a CRC for each part: from the bytes
                start = plan.dst[index]
                check.add_bytes(offset, base[start : start + size].numpy().data)
                continue
            check.add(offset, size, crc)
            if check.digest is not None:
                start = plan.dst[index]
                hashed = check.feed(offset, base[start : start + size].numpy().data)
                if hashed is not None and self._pool is not None:
                    window.busy.append(hashed)
        if check.complete:
            check.verify()

    def _read_again(self, window: ActiveWindow, index: int, check: ObjectCheck) -> int:
        """Reads item ``index`` of a window, whose bytes from a cache entry are damaged, again
        from the object's store into the same place; its CRC, which must be the one the entry
        was written with."""
        assert window.ranges is not None
        position = window.plan.file_position
        uri, entry = self._stores[position], self._files[position].path
        offset, size = int(window.ranges["offset"][index]), int(window.ranges["size"][index])
        what = f"{uri}: bytes {offset}..{offset + size} (damaged in the cache entry {entry})"
        if uri is None:
            raise RunaiStreamerError(f"{what}: internal error: no store to read them from")
        if check.on_damage is not None:
            check.on_damage(offset, size)
        request_id = self._engine.submit(
            [(uri, window.ranges[index : index + 1])], check.kind, [check.size]
        )
        completion = np.zeros(1, dtype=COMPLETION_DTYPE)
        done = False
        try:
            while not self._engine.wait(request_id, completion, WAIT_TIMEOUT_MS):
                pass
            done = True
        finally:
            if not done:
                self._engine.cancel(request_id)
            self._engine.release(request_id)
        status = int(completion["status"][0])
        if status:
            message = completion_message(int(completion["message"][0]))
            raise error_for_status(status, f"{what}: reading them from the store failed: {message}")
        crc = int(completion["checksum"][0])
        if check.damaged(offset, size, crc):
            raise ChecksumMismatchError(
                f"{what}: the store's bytes are not those verified when the object was cached "
                "(changed or corrupted in its store)"
            )
        return crc

    def _write_through(
        self,
        writer: CacheWriter,
        window: ActiveWindow,
        done: np.ndarray,
        check: ObjectCheck | None,
    ) -> None:
        """Collects the window's completed items (checked: a mismatch raised before); once all
        have landed, writes them to the object's cache entry (:meth:`ActiveWindow.write_to`);
        commits the entry once the object is whole and verified."""
        assert check is not None  # an object is cached only when it is verified
        window.landed.extend(
            zip(done["range_index"].tolist(), done["checksum"].tolist(), strict=True)
        )
        if len(window.landed) == len(window.plan.items):
            window.write_to(writer, check.kind, reused=self._pool is not None)
        if check.complete:
            writer.commit(check.entry_checksum(), check.pieces)
            self._writers[window.plan.file_position] = None

    def _raise_failure(self, window: ActiveWindow, done: np.ndarray) -> None:
        failed = done[done["status"] != 0][0]
        status = int(failed["status"])
        index = int(failed["range_index"])
        item = window.plan.items[index]
        path = self._files[window.plan.file_position].path
        message = completion_message(int(failed["message"]))
        if self._describe is not None:
            what = self._describe(window.plan.file_position, item)
        else:
            what = f"range {item}"
        prefix = f"{path}: reading {what} failed"
        raise error_for_status(status, f"{prefix}: {message}" if message else prefix)
