"""FileStreamer and FileChunks: raw byte ranges."""

from __future__ import annotations

import os
from pathlib import Path

import pytest
import torch
from hypothesis import given
from hypothesis import strategies as st
from runai_model_streamer import FileChunks, FileStreamer, RunaiStreamerError

from .helpers import environ


def _data_file(path: Path, size: int) -> bytes:
    data = os.urandom(size)
    path.write_bytes(data)
    return data


def test_contiguous_chunks(tmp_path: Path) -> None:
    data = _data_file(tmp_path / "blob", 100_000)
    chunks = FileChunks.contiguous(7, tmp_path / "blob", 100, [10, 0, 50_000, 3])
    assert chunks.offsets == [100, 110, 110, 50_110]
    assert chunks.chunks == chunks.sizes == [10, 0, 50_000, 3]
    legacy = FileChunks(8, str(tmp_path / "blob"), 5, [4, 4])
    assert legacy.offsets == [5, 9] and legacy.offset == 5
    with FileStreamer() as streamer:
        streamer.stream_files([chunks, legacy])
        assert streamer.total_size == 50_021
        got = {(fid, index): t.clone() for fid, index, t in streamer.get_chunks()}
    assert sorted(got) == [(7, 0), (7, 1), (7, 2), (7, 3), (8, 0), (8, 1)]
    for (fid, index), tensor in got.items():
        request = chunks if fid == 7 else legacy
        start, size = request.offsets[index], request.sizes[index]
        assert tensor.dtype == torch.uint8 and tensor.dim() == 1
        assert bytes(tensor.numpy()) == data[start : start + size]


@given(
    ranges=st.lists(
        st.tuples(st.integers(0, 30_000), st.integers(0, 12_000)), min_size=1, max_size=20
    ),
    owned=st.booleans(),
    limit=st.sampled_from([None, -1, 0, 4096, 50_000]),
)
def test_random_ranges(
    tmp_path_factory: pytest.TempPathFactory,
    ranges: list[tuple[int, int]],
    owned: bool,
    limit: int | None,
) -> None:
    directory = tmp_path_factory.mktemp("ranges")
    data = _data_file(directory / "blob", 42_000)
    offsets = [o for o, _ in ranges]
    sizes = [s for _, s in ranges]
    with environ(RUNAI_STREAMER_CHUNK_BYTESIZE="4096"), FileStreamer() as streamer:
        streamer.stream_files(
            [FileChunks(0, directory / "blob", offsets, sizes)], memory_limit=limit, owned=owned
        )
        seen = set()
        for fid, index, tensor in streamer.get_chunks():
            assert fid == 0 and index not in seen
            seen.add(index)
            assert bytes(tensor.numpy()) == data[offsets[index] : offsets[index] + sizes[index]]
    assert seen == set(range(len(ranges)))


def test_chunk_past_the_end_names_file_and_chunk(tmp_path: Path) -> None:
    _data_file(tmp_path / "blob", 1000)
    with FileStreamer() as streamer:
        streamer.stream_files([FileChunks(3, tmp_path / "blob", [0, 900], [10, 200])])
        with pytest.raises(RunaiStreamerError) as raised:
            list(streamer.get_chunks())
    assert str(tmp_path / "blob") in str(raised.value)
    assert "chunk 1 of request 3" in str(raised.value)


def test_missing_file_is_file_not_found(tmp_path: Path) -> None:
    with FileStreamer() as streamer:
        streamer.stream_files([FileChunks(0, tmp_path / "absent", [0], [10])])
        with pytest.raises(FileNotFoundError) as raised:
            list(streamer.get_chunks())
    assert str(tmp_path / "absent") in str(raised.value)


def test_invalid_chunks() -> None:
    with pytest.raises(ValueError, match="2 offsets but 1 sizes"):
        FileChunks(0, "f", [0, 1], [1])
    with pytest.raises(ValueError, match="non-negative"):
        FileChunks(0, "f", [0], [-1])
    with FileStreamer() as streamer, pytest.raises(TypeError, match="FileChunks"):
        streamer.stream_files(["f"])  # type: ignore[list-item]
    with FileStreamer() as streamer, pytest.raises(ValueError, match="memory_limit"):
        streamer.stream_files([FileChunks(0, "f", [0], [1])], memory_limit=-3)
