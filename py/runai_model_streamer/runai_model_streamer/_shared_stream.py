"""SharedStream: the ranks of a group read their stripes of the bytes (see
:mod:`runai_model_streamer._partition`) and exchange them round by round (each rank broadcasts
its stripe into the round's buffer), yielding every chunk to every rank in file order. When a
stream is shared, and the memory it holds, is described in
:mod:`runai_model_streamer._distributed`."""

from __future__ import annotations

import socket
from collections import deque
from collections.abc import Callable, Iterator, Sequence
from concurrent.futures import Future
from typing import Any

import torch

from runai_model_streamer import _partition
from runai_model_streamer._cache_entry import CacheWriter
from runai_model_streamer._collectives import (
    all_gather_object,
    collective,
    failure_text,
    raise_failures,
)
from runai_model_streamer._distributed import READ_AHEAD_STRIPES, Share
from runai_model_streamer._native import Engine
from runai_model_streamer._plan import FileRanges
from runai_model_streamer._stream import EMPTY_CHUNK, Describe, Piece, RangeStream, chunks_of
from runai_model_streamer._verify import ObjectCheck

#: writes to cache entries (each a round's chunks of one object) a writing rank lets run
#: ahead of the exchange: the round buffers they read stay held until they are done
WRITES_AHEAD = 4


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
        checks: Sequence[ObjectCheck | None] | None = None,
        writers: Sequence[CacheWriter | None] | None = None,
        stores: Sequence[str | None] | None = None,
    ) -> None:
        """``writers``: the cache entry an object read whole is written to, on the rank that
        writes it (the exchange gives every rank every byte); ``stores``: for a file that is a
        cache entry, its object's URI (a damaged piece this rank reads is read from there)."""
        self._share = share
        self._files = list(files)
        # Each rank's reader adds the CRCs of its own pieces; _verify gathers the rest.
        self._checks = list(checks) if checks is not None else [None] * len(self._files)
        self._writers = list(writers) if writers is not None else [None] * len(self._files)
        self._writes: deque[Future[None]] = deque()
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
            FileRanges(f.path, [p.file_offset for _, p in ps], [p.size for _, p in ps], f.size)
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
            checks=self._checks,
            stores=stores,
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
        for position, writer in enumerate(self._writers):
            if writer is not None:  # the stream did not end: its objects are not cached
                writer.abort()
                self._writers[position] = None

    def __iter__(self) -> Iterator[tuple[int, int, torch.Tensor]]:
        return chunks_of(self.pieces())

    def pieces(self) -> Iterator[Piece]:
        """Each piece as its round is exchanged (see :data:`Piece`)."""
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
            self._verify()  # every piece has landed on its rank: before the last round
            if pending is not None:
                yield from self._finish_round(*pending)
            self._commit_writers()
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
        with collective(share, f"round {round_index} of the exchange"):
            _all_gather_tensor(flags, mine, share.group)
        if not bool(flags.any()):
            return
        text = failure_text(failure) if failure is not None else None
        gathered = all_gather_object(share, (socket.gethostname(), text), "reporting a failure")
        if failure is not None:
            raise failure
        failures = [(r, host, text) for r, (host, text) in enumerate(gathered) if text is not None]
        raise_failures(share, failures, "reading the distributed stream")

    def _verify(self) -> None:
        """The ranks gather the CRCs of the pieces each read, and every rank verifies every
        checked object whole (the same verdict everywhere: no further agreement needed)."""
        if all(check is None for check in self._checks):
            return
        mine = [check.pieces if check is not None else [] for check in self._checks]
        gathered = all_gather_object(self._share, mine, "gathering the checksums of the pieces")
        for position, check in enumerate(self._checks):
            if check is not None:
                for pieces in gathered:
                    check.merge(pieces[position])
                check.verify()

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
        with collective(share, f"round {round_index} of the exchange"):
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
    ) -> Iterator[Piece]:
        with collective(self._share, f"round {round_index} of the exchange"):
            for work in works:
                work.wait(timeout=self._share.timeout)
        round_ = self._rounds[round_index]
        self._write_round(round_, buffer)
        for chunk in self._chunks[round_.first : round_.stop]:
            if chunk.size == 0:
                yield chunk.position, chunk.index, EMPTY_CHUNK, 0, 0
            else:
                yield chunk.position, chunk.index, buffer, chunk.start - round_.start, chunk.size

    def _write_round(self, round_: _partition.Round, buffer: torch.Tensor) -> None:
        """Hands the round's chunks of objects this rank caches to their writers (in the
        background; a CUDA round is copied to the host first), keeping at most
        :data:`WRITES_AHEAD` rounds of writes in flight."""
        pieces: dict[int, list[tuple[int, int, int]]] = {}
        for chunk in self._chunks[round_.first : round_.stop]:
            if chunk.size and self._writers[chunk.position] is not None:
                piece = (chunk.offset, chunk.start - round_.start, chunk.size)
                pieces.setdefault(chunk.position, []).append(piece)
        if not pieces:
            return
        host = buffer if buffer.device.type == "cpu" else buffer.cpu()
        data = host.numpy().data
        for position, file_pieces in pieces.items():
            writer, check = self._writers[position], self._checks[position]
            assert writer is not None and check is not None  # an object cached is verified
            written = writer.write_pieces(data, file_pieces, check.kind)
            if written is not None:
                self._writes.append(written)
        while len(self._writes) > WRITES_AHEAD:
            self._writes.popleft().result()

    def _commit_writers(self) -> None:
        """Commits the entries of the objects this rank wrote (verified by :meth:`_verify`)."""
        for position, writer in enumerate(self._writers):
            check = self._checks[position]
            if writer is not None and check is not None:
                writer.commit(check.entry_checksum(), check.pieces)
                self._writers[position] = None
        self._writes.clear()


def _all_gather_tensor(out: torch.Tensor, tensor: torch.Tensor, group: Any) -> None:
    import torch.distributed as dist

    # torch 2.13 renamed all_gather_into_tensor (and deprecated the old name)
    gather = getattr(dist, "all_gather_single", None) or dist.all_gather_into_tensor
    gather(out, tensor, group=group)
