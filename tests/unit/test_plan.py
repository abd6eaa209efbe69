"""The planner (``_plan.plan_windows``): where each item lands in its window's buffer."""

from __future__ import annotations

from hypothesis import given, settings
from hypothesis import strategies as st
from runai_model_streamer._plan import (
    DIRECT_ALIGNMENT,
    DIRECT_MIN_BYTES,
    FileRanges,
    plan_windows,
)


def _contiguous(offset: int, sizes: list[int]) -> FileRanges:
    offsets = [offset + sum(sizes[:i]) for i in range(len(sizes))]
    return FileRanges("f", offsets, sizes)


def test_a_window_starts_congruent_to_the_file_so_its_run_reads_and_caches_directly() -> None:
    """The tensors after a 33,016-byte header (8-byte aligned, small first): the window's
    first item sits where its offset sits in a 4 KiB block, and its neighbours follow."""
    [window] = plan_windows([_contiguous(33_016, [512, 1 << 20, 100])], -1)
    assert window.dst == [33_016 % DIRECT_ALIGNMENT, 33_016 % DIRECT_ALIGNMENT + 512, 1049336]
    assert window.nbytes == window.dst[-1] + 100


def test_a_misaligned_or_a_tight_first_item_starts_at_zero() -> None:
    [odd] = plan_windows([_contiguous(33_013, [512, 100])], -1)  # not 8-byte aligned: as is
    assert odd.dst == [0, 512]
    [tight] = plan_windows([_contiguous(4000, [600])], 600)  # the padding would pass the limit
    assert tight.dst == [0] and tight.nbytes == 600


@settings(max_examples=300, deadline=None)
@given(
    st.integers(0, 1 << 20),
    st.lists(st.integers(0, 3 * DIRECT_MIN_BYTES), min_size=1, max_size=30),
    st.sampled_from([-1, 0, 4096, 100_000, 1 << 20]),
    st.booleans(),
)
def test_items_keep_their_file_alignment_and_windows_their_limit(
    start: int, sizes: list[int], limit: int, aligned: bool
) -> None:
    """``aligned``: every offset 8-byte aligned (sizes of 8-byte elements after a padded
    header, as safetensors writes them): each item is then as aligned in memory as in the
    file. Otherwise (any sizes, any start) only the layout rules are checked."""
    if aligned:
        start, sizes = start * 8, [size * 8 for size in sizes]
    files = [_contiguous(start, sizes)]
    windows = plan_windows(files, limit)
    seen = sorted(i for w in windows for i in w.items + w.empty_items)
    assert seen == list(range(len(sizes)))
    cap = max(sizes) if limit == 0 else (float("inf") if limit < 0 else limit)
    for window in windows:
        ends = 0
        for item, dst in zip(window.items, window.dst, strict=True):
            offset = files[0].offsets[item]
            assert dst >= ends  # no overlap, in file order
            assert not aligned or (dst - offset) % 8 == 0  # as aligned as in the file
            ends = dst + sizes[item]
        assert window.nbytes == ends
        if len(window.items) > 1:
            assert window.nbytes <= cap
        elif window.items and sizes[window.items[0]] < DIRECT_MIN_BYTES:
            assert window.nbytes <= max(cap, sizes[window.items[0]])
