"""How the ranks of a group split the bytes of one stream between them (pure functions).

Every chunk of every file gets a place in one *virtual* byte sequence: files in the given
order, a file's chunks by offset, each chunk starting 64-byte aligned (the gaps are never read).
The sequence is cut into *rounds* at chunk boundaries, each about ``round_bytes`` long (a chunk
larger than that is a round of its own), and each round into one *stripe* per rank, of equal
size. A round is one buffer on every rank: each rank reads its stripe into its slice and
broadcasts it into the others'; the chunks of the round are then views of the buffer, 64-byte
aligned, and no chunk spans two rounds. A chunk that crosses a stripe boundary is read in
pieces by several ranks.

A rank reads at most ``ceil(round / ranks) + 64`` bytes of each round: the stream's bytes split
evenly, to within 64 bytes a round.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass

ALIGNMENT = 64


def align_up(value: int, alignment: int = ALIGNMENT) -> int:
    return -(-value // alignment) * alignment


@dataclass(frozen=True)
class Chunk:
    """One requested chunk: item ``index`` of file ``position``, ``size`` bytes at ``offset``
    in the file, at ``start`` in the virtual sequence."""

    position: int
    index: int
    offset: int
    size: int
    start: int

    @property
    def end(self) -> int:
        return self.start + self.size


@dataclass(frozen=True)
class Piece:
    """The part of ``chunk`` that lies in one stripe: ``size`` bytes from ``skip`` bytes into
    the chunk."""

    chunk: Chunk
    skip: int
    size: int

    @property
    def start(self) -> int:
        """Where the piece lies in the virtual sequence."""
        return self.chunk.start + self.skip

    @property
    def file_offset(self) -> int:
        return self.chunk.offset + self.skip


def layout(offsets: Sequence[Sequence[int]], sizes: Sequence[Sequence[int]]) -> list[Chunk]:
    """Every chunk (file ``p`` has ``offsets[p]``, ``sizes[p]``) in virtual order."""
    chunks: list[Chunk] = []
    cursor = 0
    for position, (file_offsets, file_sizes) in enumerate(zip(offsets, sizes, strict=True)):
        order = sorted(range(len(file_offsets)), key=lambda i: (file_offsets[i], file_sizes[i], i))
        for index in order:
            start = align_up(cursor)
            size = file_sizes[index]
            chunks.append(Chunk(position, index, file_offsets[index], size, start))
            cursor = start + size
    return chunks


def virtual_size(chunks: Sequence[Chunk]) -> int:
    return chunks[-1].end if chunks else 0


@dataclass(frozen=True)
class Round:
    """Chunks ``first`` to ``stop - 1`` (virtual ``start`` to ``end``), exchanged together."""

    first: int
    stop: int
    start: int
    end: int

    def stripe(self, ranks: int) -> int:
        return align_up(-(-(self.end - self.start) // ranks))

    def span_of(self, rank: int, ranks: int) -> tuple[int, int]:
        """The virtual range that ``rank`` reads of this round (empty past the end)."""
        stripe = self.stripe(ranks)
        lo = min(self.end, self.start + rank * stripe)
        return lo, min(self.end, lo + stripe)


def plan_rounds(chunks: Sequence[Chunk], round_bytes: int) -> list[Round]:
    """Consecutive rounds covering ``chunks``, each ending at a chunk boundary."""
    rounds: list[Round] = []
    first = 0
    for index, chunk in enumerate(chunks):
        if index > first and chunk.end - chunks[first].start > round_bytes:
            rounds.append(Round(first, index, chunks[first].start, chunks[index - 1].end))
            first = index
    if first < len(chunks):
        rounds.append(Round(first, len(chunks), chunks[first].start, chunks[-1].end))
    return rounds


def pieces_of_rank(
    chunks: Sequence[Chunk], rounds: Sequence[Round], rank: int, ranks: int
) -> list[list[Piece]]:
    """For each round, the pieces that ``rank`` reads, in virtual order."""
    result: list[list[Piece]] = []
    for round_ in rounds:
        lo, hi = round_.span_of(rank, ranks)
        pieces = []
        for chunk in chunks[round_.first : round_.stop]:
            begin, end = max(chunk.start, lo), min(chunk.end, hi)
            if begin < end:
                pieces.append(Piece(chunk, begin - chunk.start, end - begin))
        result.append(pieces)
    return result
