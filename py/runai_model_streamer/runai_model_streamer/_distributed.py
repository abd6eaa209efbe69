"""Distributed streaming: the ranks of a group each read a share and exchange the shares.

Used by ``stream_files(..., is_distributed=True)``. :func:`share_for` decides whether a stream is
shared and with which group; :func:`agree` checks that every rank of the group asks for the same
bytes (or tells the group that this rank failed before it could); :class:`SharedStream` reads
this rank's stripes (see :mod:`runai_model_streamer._partition`) and exchanges them round by
round (each rank broadcasts its stripe into the round's buffer), yielding every chunk to every
rank in file order.

Settings (validated when a stream asks to be distributed; a bad value names the variable):

``RUNAI_STREAMER_DIST``
    ``auto`` (default): shared where it pays: NCCL with CUDA destinations, or any backend when
    every path is an object-storage URI (each rank would otherwise fetch the whole model over
    the network). ``1``: shared whenever torch.distributed has more than one rank in the group
    (how gloo with CPU destinations and local files is used). ``0``: never.
``RUNAI_STREAMER_DIST_GLOBAL``
    ``0`` (default): one group per node (ranks with the same hostname), so the exchange stays on
    the node's fastest links; ``1``: all ranks form one group.
``RUNAI_STREAMER_DIST_TIMEOUT``
    Seconds a rank waits for the others at any step of the exchange (default 600).
``RUNAI_STREAMER_DIST_BUFFER_BYTES``
    Bytes exchanged per round by the whole group (default 64 MiB; each rank reads
    ``1/ranks`` of it per round).

Memory: round buffers are handed out as the tensors themselves (each round's buffer is fresh,
so what a rank yields is never overwritten, and a rank's own pieces are copied straight into
its slice of it); beyond the tensors a rank holds its read-ahead (:data:`READ_AHEAD_STRIPES`
of its stripes, less under ``RUNAI_STREAMER_MEMORY_LIMIT``) and at most one chunk that crosses
a round boundary.
"""

from __future__ import annotations

import contextlib
import hashlib
import logging
import os
import socket
from collections.abc import Callable, Iterator, Sequence
from dataclasses import dataclass
from datetime import timedelta
from typing import Any

import torch

from runai_model_streamer import _partition
from runai_model_streamer._config import parse_size
from runai_model_streamer._errors import DistributedStreamError, StreamerConfigError
from runai_model_streamer._native import Engine
from runai_model_streamer._stream import EMPTY_CHUNK, Describe, FileRanges, RangeStream, env_flag

logger = logging.getLogger("runai_model_streamer")

DIST_ENV_VAR = "RUNAI_STREAMER_DIST"
DIST_GLOBAL_ENV_VAR = "RUNAI_STREAMER_DIST_GLOBAL"
DIST_TIMEOUT_ENV_VAR = "RUNAI_STREAMER_DIST_TIMEOUT"
DIST_BUFFER_ENV_VAR = "RUNAI_STREAMER_DIST_BUFFER_BYTES"
#: upstream's name for it, used when ours is unset
UPSTREAM_DIST_BUFFER_ENV_VAR = "RUNAI_STREAMER_DIST_BUFFER_MIN_BYTESIZE"
DEFAULT_TIMEOUT_SECONDS = 600.0
DEFAULT_ROUND_BYTES = 64 << 20
#: how many of its own stripes a rank reads ahead of the exchange
READ_AHEAD_STRIPES = 2


def _number_from_env(
    name: str,
    parse: Callable[[str], float],
    default: float,
    valid: Callable[[float], bool],
    expected: str,
) -> float:
    """``name`` parsed (``default`` when unset or empty); a StreamerConfigError otherwise."""
    raw = os.environ.get(name, "").strip()
    if not raw:
        return default
    try:
        value = parse(raw)
    except ValueError:
        value = None
    if value is None or not valid(value):
        raise StreamerConfigError(f"{name}={raw!r} must be {expected}")
    return value


@dataclass(frozen=True)
class DistSettings:
    mode: str  # "0", "1" or "auto"
    global_group: bool
    timeout: timedelta
    round_bytes: int

    @classmethod
    def from_env(cls) -> DistSettings:
        mode = os.environ.get(DIST_ENV_VAR, "").strip().lower() or "auto"
        if mode not in ("0", "1", "auto"):
            raise StreamerConfigError(
                f"{DIST_ENV_VAR}={os.environ[DIST_ENV_VAR]!r} must be 0, 1 or auto"
            )
        seconds = _number_from_env(
            DIST_TIMEOUT_ENV_VAR,
            float,
            DEFAULT_TIMEOUT_SECONDS,
            lambda v: 0 < v < float("inf"),
            "a positive number of seconds",
        )
        minimum, name = 4096, DIST_BUFFER_ENV_VAR
        if not os.environ.get(name, "").strip() and os.environ.get(UPSTREAM_DIST_BUFFER_ENV_VAR):
            # upstream's minimum round size (its tests set 0): rounds of at least 4096 bytes
            minimum, name = 0, UPSTREAM_DIST_BUFFER_ENV_VAR
        round_bytes = max(
            4096,
            _number_from_env(
                name,
                parse_size,
                DEFAULT_ROUND_BYTES,
                lambda v: v >= minimum,
                f"a size of at least {minimum} bytes (examples: 64MiB, 1GiB)",
            ),
        )
        return cls(
            mode,
            env_flag(DIST_GLOBAL_ENV_VAR, False),
            timedelta(seconds=seconds),
            int(round_bytes),
        )


@dataclass(frozen=True)
class Share:
    """A stream shared by the ranks of ``group``: this process is ``rank`` of ``size``."""

    group: Any  # torch.distributed.ProcessGroup
    rank: int
    size: int
    global_ranks: tuple[int, ...]
    exchange_device: torch.device
    timeout: timedelta
    round_bytes: int

    def describe_rank(self, rank: int) -> str:
        return f"rank {self.global_ranks[rank]}"


def _backend_name(group: Any) -> str:
    import torch.distributed as dist

    return str(dist.get_backend(group)).lower()


#: the per-node groups, created once per default group and settings (creating a group is a
#: collective over every rank; see _group_for)
_group_cache: tuple[tuple[int, bool, float], Any] | None = None


def _group_for(settings: DistSettings) -> Any:
    """This rank's group: all ranks with ``RUNAI_STREAMER_DIST_GLOBAL=1``, else the ranks on
    this node (same hostname). Every rank must call this at the same point (it is collective
    the first time)."""
    global _group_cache
    import torch.distributed as dist

    world = dist.group.WORLD
    key = (id(world), settings.global_group, settings.timeout.total_seconds())
    if _group_cache is not None and _group_cache[0] == key:
        return _group_cache[1]
    size = dist.get_world_size()
    if settings.global_group:
        nodes = [list(range(size))]
    else:
        hosts: list[Any] = [None] * size
        dist.all_gather_object(hosts, socket.gethostname())
        order = list(dict.fromkeys(hosts))
        nodes = [[r for r in range(size) if hosts[r] == host] for host in order]
    mine = None
    me = dist.get_rank()
    for ranks in nodes:  # every rank creates every group, in the same order
        group = dist.new_group(ranks=ranks, timeout=settings.timeout)
        if me in ranks:
            mine = group
    _group_cache = (key, mine)
    return mine


def share_for(
    is_distributed: bool,
    device: torch.device,
    object_storage: bool,
    process_group: Any = None,
) -> Share | None:
    """The share of a stream (None: this rank streams everything itself). ``object_storage``:
    every path is an object-storage URI. ``process_group``: the group to share with (default:
    see :func:`_group_for`)."""
    if not is_distributed:
        return None
    settings = DistSettings.from_env()
    if settings.mode == "0":
        return None
    import torch.distributed as dist

    if not dist.is_available() or not dist.is_initialized():
        logger.debug("is_distributed=True, but torch.distributed is not initialized: not shared")
        return None
    if dist.get_world_size(process_group) <= 1:
        return None
    backend = _backend_name(process_group)
    cuda = device.type == "cuda"
    if cuda and "nccl" in backend:
        index = device.index if device.index is not None else torch.cuda.current_device()
        exchange_device = torch.device("cuda", index)
    elif backend == "nccl":
        logger.info(
            "is_distributed=True: the NCCL group cannot exchange %s tensors; not shared", device
        )
        return None
    else:
        exchange_device = torch.device("cpu")
    if settings.mode == "auto" and not (exchange_device.type == "cuda" or object_storage):
        logger.debug(
            "is_distributed=True: %s=auto shares NCCL/CUDA and object-storage streams only "
            "(set it to 1 to share this one)",
            DIST_ENV_VAR,
        )
        return None
    group = process_group if process_group is not None else _group_for(settings)
    size = dist.get_world_size(group)
    if size <= 1:
        return None
    global_ranks = tuple(dist.get_process_group_ranks(group))
    return Share(
        group,
        dist.get_rank(group),
        size,
        global_ranks,
        exchange_device,
        settings.timeout,
        settings.round_bytes,
    )


@contextlib.contextmanager
def _collective(share: Share, what: str) -> Iterator[None]:
    """Turns a failed or timed-out collective into a DistributedStreamError."""
    try:
        yield
    except (RuntimeError, TimeoutError) as error:
        if isinstance(error, DistributedStreamError):
            raise
        raise DistributedStreamError(
            f"{share.describe_rank(share.rank)}: {what} with the ranks {list(share.global_ranks)} "
            f"failed (within {share.timeout.total_seconds():g} s): {error}; another rank "
            "stopped or failed (its own error says why)"
        ) from error


def _all_gather_object(share: Share, value: object, what: str) -> list[Any]:
    import torch.distributed as dist

    gathered: list[Any] = [None] * share.size
    with _collective(share, what):
        dist.all_gather_object(gathered, value, group=share.group)
    return gathered


def _failure_text(error: BaseException) -> str:
    return f"{type(error).__name__}: {error}"


def _raise_failures(share: Share, failures: Sequence[tuple[int, str, str]], doing: str) -> None:
    listed = "; ".join(f"{share.describe_rank(r)} ({host}): {text}" for r, host, text in failures)
    raise DistributedStreamError(f"{doing} failed on another rank: {listed}")


@dataclass(frozen=True)
class Request:
    """What one rank asks for: enough to compare ranks and to say how they differ."""

    digest: str
    summary: str

    @classmethod
    def of(cls, files: Sequence[FileRanges], ids: Sequence[object]) -> Request:
        digest = hashlib.sha256()
        for file_id, file in zip(ids, files, strict=True):
            digest.update(repr((file_id, file.path, list(file.offsets), list(file.sizes))).encode())
        names = ", ".join(f.path for f in files[:3]) + (", ..." if len(files) > 3 else "")
        chunks = sum(len(f.sizes) for f in files)
        total = sum(sum(f.sizes) for f in files)
        summary = f"{len(files)} files ({names}), {chunks} chunks, {total} bytes"
        return cls(digest.hexdigest(), summary)


def agree(share: Share, request: Request | None, failure: BaseException | None = None) -> None:
    """Every rank of the group calls this before a shared stream starts, with what it asks for
    or with the error that stopped it. Raises on every rank when a rank failed (the failed rank
    itself returns, to raise its own error) or when the ranks ask for different bytes."""
    host = socket.gethostname()
    payload = (host, _failure_text(failure) if failure is not None else None, request)
    gathered = _all_gather_object(share, payload, "agreeing on the stream")
    failures = [(r, h, text) for r, (h, text, _) in enumerate(gathered) if text is not None]
    if failure is not None:
        return
    if failures:
        _raise_failures(share, failures, "preparing the distributed stream")
    digests = {req.digest for _, _, req in gathered}
    if len(digests) > 1:
        listed = "; ".join(
            f"{share.describe_rank(r)}: {req.summary}" for r, (_, _, req) in enumerate(gathered)
        )
        raise DistributedStreamError(
            f"the ranks of the group asked for different data ({listed}); every rank of a "
            "distributed stream must ask for the same files (and tensor_names)"
        )


@contextlib.contextmanager
def failures_reported(share: Share | None) -> Iterator[None]:
    """Runs a rank's preparation of a shared stream: an error is told to the group (see
    :func:`agree`) before it propagates, so the other ranks raise instead of waiting."""
    try:
        yield
    except BaseException as error:
        if share is not None and isinstance(error, Exception):
            with contextlib.suppress(DistributedStreamError):
                agree(share, None, error)
        raise


class SharedStream:
    """Streams ``files`` shared with the ranks of ``share``; iterate for ``(file_position,
    item_index, uint8 tensor)`` like :class:`~runai_model_streamer._stream.RangeStream`
    (tensors on ``share.exchange_device``; files in order, a file's chunks by offset)."""

    def __init__(
        self,
        share: Share,
        engine: Engine,
        files: Sequence[FileRanges],
        memory_limit: int,
        describe: Describe | None = None,
        refresh: Callable[[], None] | None = None,
    ) -> None:
        self._share = share
        self._files = list(files)
        self._chunks = _partition.layout(
            [f.offsets for f in self._files], [f.sizes for f in self._files]
        )
        self._rounds = _partition.plan_rounds(self._chunks, share.round_bytes)
        pieces = _partition.pieces_of_rank(self._chunks, self._rounds, share.rank, share.size)
        #: bytes this rank reads from storage
        self.bytes_read = sum(p.size for round_pieces in pieces for p in round_pieces)
        # the reader's items, per file: (round, piece)
        self._pieces: list[list[tuple[int, _partition.Piece]]] = [[] for _ in self._files]
        for round_index, round_pieces in enumerate(pieces):
            for piece in round_pieces:
                self._pieces[piece.chunk.position].append((round_index, piece))
        self._remaining = [sum(p.size for p in round_pieces) for round_pieces in pieces]
        own = [
            FileRanges(f.path, [p.file_offset for _, p in ps], [p.size for _, p in ps])
            for f, ps in zip(self._files, self._pieces, strict=True)
        ]
        stripe = max((r.stripe(share.size) for r in self._rounds), default=1)
        read_ahead = READ_AHEAD_STRIPES * stripe
        if memory_limit > 0:
            read_ahead = max(stripe, min(read_ahead, memory_limit))
        self._describe = describe
        self._reader = RangeStream(
            engine,
            own,
            read_ahead,
            owned=False,
            describe=self._describe_piece,
            refresh=refresh,
            max_window=stripe,
        )
        self._reader_items: Iterator[tuple[int, int, torch.Tensor]] | None = None
        self._buffers: dict[int, torch.Tensor] = {}  # round -> its buffer, until it starts
        self._staged: dict[int, torch.Tensor] = {}  # round -> this rank's stripe (CUDA: host)

    def _describe_piece(self, position: int, item: int) -> str:
        piece = self._pieces[position][item][1]
        if self._describe is not None:
            return self._describe(position, piece.chunk.index)
        return f"range {piece.chunk.index}"

    def start(self) -> None:
        """Starts reading this rank's stripes."""
        self._reader.start()
        self._reader_items = iter(self._reader)

    def close(self) -> None:
        self._reader.close()
        self._buffers.clear()
        self._staged.clear()

    def __iter__(self) -> Iterator[tuple[int, int, torch.Tensor]]:
        return self._run()

    def _run(self) -> Iterator[tuple[int, int, torch.Tensor]]:
        try:
            if self._reader_items is None:
                self.start()
            pending: tuple[int, torch.Tensor, list[Any]] | None = None
            for round_index in range(len(self._rounds)):
                failure: Exception | None = None
                try:
                    self._read_round(round_index)
                except Exception as error:
                    failure = error
                self._check_round(round_index, failure)
                started = self._start_round(round_index)
                if pending is not None:  # yield a round while the next is exchanged
                    yield from self._finish_round(*pending)
                pending = started
            if pending is not None:
                yield from self._finish_round(*pending)
        finally:
            self.close()

    def _round_buffer(self, round_index: int) -> torch.Tensor:
        """The buffer a round is exchanged in (fresh per round: the tensors yielded view it)."""
        buffer = self._buffers.get(round_index)
        if buffer is None:
            round_ = self._rounds[round_index]
            buffer = torch.empty(
                round_.end - round_.start, dtype=torch.uint8, device=self._share.exchange_device
            )
            self._buffers[round_index] = buffer
        return buffer

    def _landing(self, round_index: int) -> torch.Tensor:
        """Where this rank's pieces of a round are written: its slice of the round's buffer,
        or (CUDA exchange) a host buffer that is copied there when the round starts."""
        share = self._share
        lo, hi = self._rounds[round_index].span_of(share.rank, share.size)
        if share.exchange_device.type == "cpu":
            start = self._rounds[round_index].start
            return self._round_buffer(round_index)[lo - start : hi - start]
        host = self._staged.get(round_index)
        if host is None:
            host = self._staged[round_index] = torch.empty(hi - lo, dtype=torch.uint8)
        return host

    def _read_round(self, round_index: int) -> None:
        """Reads until this rank's stripe of the round has landed (later rounds' pieces that
        arrive meanwhile land too)."""
        assert self._reader_items is not None
        share = self._share
        while self._remaining[round_index] > 0:
            got = next(self._reader_items, None)
            if got is None:  # cannot happen: the reader yields every piece planned
                raise RuntimeError(f"round {round_index}: the reader ended before its pieces")
            position, item, data = got
            piece_round, piece = self._pieces[position][item]
            lo, _ = self._rounds[piece_round].span_of(share.rank, share.size)
            at = piece.start - lo
            self._landing(piece_round)[at : at + piece.size].copy_(data)
            self._remaining[piece_round] -= piece.size

    def _check_round(self, round_index: int, failure: Exception | None) -> None:
        """Every rank says whether its stripe is ready; any failure is raised on every rank."""
        share = self._share
        device = share.exchange_device
        flags = torch.zeros(share.size, dtype=torch.int64, device=device)
        mine = torch.tensor([0 if failure is None else 1], dtype=torch.int64, device=device)
        with _collective(share, f"round {round_index} of the exchange"):
            _all_gather_tensor(flags, mine, share.group)
        if not bool(flags.any()):
            return
        text = _failure_text(failure) if failure is not None else None
        gathered = _all_gather_object(share, (socket.gethostname(), text), "reporting a failure")
        if failure is not None:
            raise failure
        failures = [(r, host, text) for r, (host, text) in enumerate(gathered) if text is not None]
        _raise_failures(share, failures, "reading the distributed stream")

    def _start_round(self, round_index: int) -> tuple[int, torch.Tensor, list[Any]]:
        """Every rank broadcasts its stripe into the others' round buffers: one broadcast per
        rank, in place, all in flight at once (on gloo twice the throughput of all_gather,
        which also gathers through a temporary buffer)."""
        import torch.distributed as dist

        share = self._share
        round_ = self._rounds[round_index]
        buffer = self._round_buffer(round_index)
        del self._buffers[round_index]
        host = self._staged.pop(round_index, None)
        works = []
        with _collective(share, f"round {round_index} of the exchange"):
            for rank in range(share.size):
                lo, hi = round_.span_of(rank, share.size)
                if lo == hi:
                    continue  # every rank knows this stripe is empty
                stripe = buffer[lo - round_.start : hi - round_.start]
                if host is not None and rank == share.rank:  # CUDA: stage it on the device
                    stripe.copy_(host)
                source = share.global_ranks[rank]
                works.append(dist.broadcast(stripe, src=source, group=share.group, async_op=True))
        return round_index, buffer, works

    def _finish_round(
        self, round_index: int, buffer: torch.Tensor, works: list[Any]
    ) -> Iterator[tuple[int, int, torch.Tensor]]:
        with _collective(self._share, f"round {round_index} of the exchange"):
            for work in works:
                work.wait(timeout=self._share.timeout)
        round_ = self._rounds[round_index]
        for chunk in self._chunks[round_.first : round_.stop]:
            if chunk.size == 0:
                yield chunk.position, chunk.index, EMPTY_CHUNK
            else:
                at = chunk.start - round_.start
                yield chunk.position, chunk.index, buffer[at : at + chunk.size]


def _all_gather_tensor(out: torch.Tensor, tensor: torch.Tensor, group: Any) -> None:
    import torch.distributed as dist

    # torch 2.13 renamed all_gather_into_tensor (and deprecated the old name)
    gather = getattr(dist, "all_gather_single", None) or dist.all_gather_into_tensor
    gather(out, tensor, group=group)
