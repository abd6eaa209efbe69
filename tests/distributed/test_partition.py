"""The split of a stream between ranks (pure functions of _partition)."""

from __future__ import annotations

import itertools

from hypothesis import given
from hypothesis import strategies as st
from runai_model_streamer import _partition

files = st.lists(
    st.lists(st.tuples(st.integers(0, 10_000), st.integers(0, 3_000)), max_size=12),
    min_size=1,
    max_size=4,
)


@given(files=files, ranks=st.integers(1, 8), round_bytes=st.integers(1, 40_000))
def test_the_ranks_read_every_chunk_byte_once_and_each_its_share_of_every_round(
    files: list[list[tuple[int, int]]], ranks: int, round_bytes: int
) -> None:
    offsets = [[o for o, _ in f] for f in files]
    sizes = [[s for _, s in f] for f in files]
    chunks = _partition.layout(offsets, sizes)
    assert len(chunks) == sum(len(f) for f in files)
    assert all(c.start % _partition.ALIGNMENT == 0 for c in chunks)
    assert all(a.end <= b.start for a, b in itertools.pairwise(chunks))
    assert [c.position for c in chunks] == sorted(c.position for c in chunks)  # files in order
    rounds = _partition.plan_rounds(chunks, round_bytes)
    # rounds tile the chunks, in order, at chunk boundaries; only a lone chunk exceeds the size
    assert [i for r in rounds for i in range(r.first, r.stop)] == list(range(len(chunks)))
    for round_ in rounds:
        members = chunks[round_.first : round_.stop]
        assert round_.start == members[0].start and round_.end == members[-1].end
        assert (
            round_.end - round_.start <= round_bytes
            or len(members) == 1
            or all(c.size == 0 for c in members[1:])
        )
    covered: dict[tuple[int, int], list[tuple[int, int]]] = {}
    per_rank = [0] * ranks
    for rank in range(ranks):
        for round_, pieces in zip(
            rounds, _partition.pieces_of_rank(chunks, rounds, rank, ranks), strict=True
        ):
            lo, hi = round_.span_of(rank, ranks)
            read = sum(p.size for p in pieces)
            assert read <= -(-(round_.end - round_.start) // ranks) + _partition.ALIGNMENT
            per_rank[rank] += read
            for piece in pieces:
                assert piece.size > 0 and lo <= piece.start and piece.start + piece.size <= hi
                covered.setdefault((piece.chunk.position, piece.chunk.index), []).append(
                    (piece.skip, piece.skip + piece.size)
                )
    for chunk in chunks:
        cursor = 0
        for lo, hi in sorted(covered.get((chunk.position, chunk.index), [])):
            assert lo == cursor  # the pieces of a chunk tile it exactly
            cursor = hi
        assert cursor == chunk.size
    assert sum(per_rank) == sum(c.size for c in chunks)


def test_a_small_stream_is_still_split_between_all_ranks() -> None:
    chunks = _partition.layout([[0]], [[4000]])
    rounds = _partition.plan_rounds(chunks, 128 << 20)
    pieces = _partition.pieces_of_rank
    shares = [sum(p.size for p in pieces(chunks, rounds, r, 4)[0]) for r in range(4)]
    assert shares == [1024, 1024, 1024, 928]
