"""SafetensorsStreamer API: the calls inference servers make, ownership, devices, limits."""

from __future__ import annotations

import gc
import weakref
from collections.abc import Iterator
from pathlib import Path

import numpy as np
import pytest
import torch
from runai_model_streamer import SafetensorsStreamer, TensorMetadata
from runai_model_streamer._buffers import BufferPool, MappedBuffer
from runai_model_streamer._native import NativeBuffer
from safetensors.torch import load_file, save_file
from tqdm import tqdm

from .helpers import assert_same, raw_file


def _shards(directory: Path, count: int = 3, per_file: int = 4) -> list[Path]:
    paths = []
    for shard in range(count):
        tensors = {
            f"layer{shard}.w{i}": torch.randn(16 + i, 8 + shard) * (shard + 1)
            for i in range(per_file)
        }
        tensors[f"layer{shard}.bias"] = torch.arange(5, dtype=torch.int64) + shard
        path = directory / f"model-{shard:05d}-of-{count:05d}.safetensors"
        save_file(tensors, str(path), metadata={"format": "pt"})
        paths.append(path)
    return paths


def runai_safetensors_weights_iterator(
    hf_weights_files: list[str], use_tqdm_on_load: bool
) -> Iterator[tuple[str, torch.Tensor]]:
    """The shape of vLLM's weight iterator over this package."""
    with SafetensorsStreamer() as streamer:
        streamer.stream_files(hf_weights_files, device="cpu", is_distributed=False)
        total_tensors = sum(
            len(tensors_meta) for tensors_meta in streamer.files_to_tensors_metadata.values()
        )
        tensor_iter = tqdm(
            streamer.get_tensors(),
            total=total_tensors,
            desc="Loading safetensors using Runai Model Streamer",
            disable=not use_tqdm_on_load,
        )
        yield from tensor_iter


def test_vllm_style_iterator(tmp_path: Path) -> None:
    paths = [str(p) for p in _shards(tmp_path)]
    expected: dict[str, torch.Tensor] = {}
    for path in paths:
        expected.update(load_file(path))
    got = dict(runai_safetensors_weights_iterator(paths, use_tqdm_on_load=True))
    assert sorted(got) == sorted(expected)
    for name in expected:
        assert_same(got[name], expected[name], name)


def test_metadata_total_size_and_file_order(tmp_path: Path) -> None:
    paths = _shards(tmp_path)
    with SafetensorsStreamer() as streamer:
        streamer.stream_files(paths)
        metadata = streamer.files_to_tensors_metadata
        assert sorted(metadata) == [0, 1, 2]
        for index, path in enumerate(paths):
            assert {m.path for m in metadata[index]} == {str(path)}
            offsets = [m.offset for m in metadata[index]]
            assert offsets == sorted(offsets)
            assert all(isinstance(m, TensorMetadata) for m in metadata[index])
        assert streamer.total_size == sum(m.size for ms in metadata.values() for m in ms)
        order = [name for name, _ in streamer.get_tensors()]
    files_in_order = [int(name[len("layer")]) for name in order]
    assert files_in_order == sorted(files_in_order)


def test_tensor_names_subset_and_errors(tmp_path: Path) -> None:
    paths = _shards(tmp_path)
    with SafetensorsStreamer() as streamer:
        streamer.stream_files(paths, tensor_names=["layer2.w1", "layer0.bias"])
        assert [len(m) for m in streamer.files_to_tensors_metadata.values()] == [1, 0, 1]
        assert sorted(n for n, _ in streamer.get_tensors()) == ["layer0.bias", "layer2.w1"]
        with pytest.raises(TypeError, match="not a single string"):
            streamer.stream_files(paths, tensor_names="layer0.bias")
        with pytest.raises(ValueError, match="empty"):
            streamer.stream_files(paths, tensor_names=[])
        with pytest.raises(KeyError) as raised:
            streamer.stream_files(paths, tensor_names=["layer0.bias", "nope", "also.nope"])
        assert "'nope'" in str(raised.value) and "'also.nope'" in str(raised.value)
        assert str(paths[0]) in str(raised.value)


def test_bad_paths_argument(tmp_path: Path) -> None:
    path = _shards(tmp_path, count=1)[0]
    with SafetensorsStreamer() as streamer:
        with pytest.raises(TypeError, match="stream_file"):
            streamer.stream_files(str(path))
        with pytest.raises(TypeError):
            streamer.stream_files([3])  # type: ignore[list-item]
        with pytest.raises(RuntimeError, match="before stream_file"):
            next(SafetensorsStreamer().get_tensors())


def test_owned_tensors_are_never_overwritten(tmp_path: Path) -> None:
    first, second = (tmp_path / "a.safetensors"), (tmp_path / "b.safetensors")
    save_file({"x": torch.full((4096,), 1.0), "y": torch.full((33,), 2.0)}, str(first))
    save_file({"x": torch.full((4096,), 7.0), "y": torch.full((33,), 9.0)}, str(second))
    with SafetensorsStreamer() as streamer:
        streamer.stream_file(first)
        kept = dict(streamer.get_tensors())
        copies = {k: v.clone() for k, v in kept.items()}
        streamer.stream_file(second)
        again = dict(streamer.get_tensors())
        streamer.stream_files([second, second])
        list(streamer.get_tensors())
    with SafetensorsStreamer() as other:
        other.stream_files([second, first, second])
        list(other.get_tensors())
    for name in kept:
        assert torch.equal(kept[name], copies[name]), name
    assert torch.equal(again["x"], torch.full((4096,), 7.0))


def test_not_owned_streams_correctly_when_copied(tmp_path: Path) -> None:
    paths = _shards(tmp_path, count=4)
    expected: dict[str, torch.Tensor] = {}
    for path in paths:
        expected.update(load_file(str(path)))
    with SafetensorsStreamer() as streamer:
        streamer.stream_files(paths, owned=False)
        got = {name: tensor.clone() for name, tensor in streamer.get_tensors()}
    for name in expected:
        assert_same(got[name], expected[name], name)


def test_buffer_lives_exactly_as_long_as_its_last_view() -> None:
    buffer = NativeBuffer(1 << 20, 1)
    ref = weakref.ref(buffer)
    base = torch.from_numpy(np.asarray(buffer))
    view = base[4096:8192].view(torch.float32)
    view.fill_(3.0)
    del buffer, base
    gc.collect()
    assert ref() is not None
    assert float(view.sum()) == 3.0 * 1024
    del view
    gc.collect()
    assert ref() is None


def test_streamed_tensors_keep_their_memory_after_the_streamer_closes(tmp_path: Path) -> None:
    path = _shards(tmp_path, count=1)[0]
    with SafetensorsStreamer() as streamer:
        streamer.stream_file(path)
        got = dict(streamer.get_tensors())
    del streamer
    gc.collect()
    [torch.empty(1 << 16) for _ in range(8)]  # churn the allocator
    for name, tensor in load_file(str(path)).items():
        assert_same(got[name], tensor, name)


def test_devices(tmp_path: Path) -> None:
    path = _shards(tmp_path, count=1)[0]
    expected = load_file(str(path))
    with SafetensorsStreamer() as streamer:
        streamer.stream_file(path, device="meta")
        for name, tensor in streamer.get_tensors():
            assert tensor.device.type == "meta"
            assert tensor.shape == expected[name].shape and tensor.dtype == expected[name].dtype
        assert streamer.device_str == "meta"
        streamer.stream_file(path, device=torch.device("cpu"), is_distributed=True)
        assert len(dict(streamer.get_tensors())) == len(expected)
        with pytest.raises(ValueError, match="not a torch device"):
            streamer.stream_file(path, device="warp-drive")
        if not torch.cuda.is_available():
            with pytest.raises(ValueError, match="CUDA is not available"):
                streamer.stream_file(path, device="cuda")


def _live_buffer_bytes() -> int:
    """Destination memory alive now: every mapped buffer not yet freed, whoever holds it."""
    return sum(o.size for o in gc.get_objects() if isinstance(o, MappedBuffer))


@pytest.mark.parametrize("owned", [True, False])
@pytest.mark.parametrize("limit", [0, 1, 4096, 20000, 10**9])
def test_memory_in_flight_stays_within_the_limit(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, limit: int, owned: bool
) -> None:
    """Windows in flight stay within the limit; with owned=False the buffers kept for reuse
    count too: windows of different sizes once left a pool of buffers that no later window
    fitted, and a 512 MiB limit held 1.1 GB."""
    paths = []
    for shard in range(3):
        tensors = {f"s{shard}.t{i}": torch.randn(64 * (i + 1) + 200 * shard) for i in range(12)}
        path = tmp_path / f"s{shard}.safetensors"
        save_file(tensors, str(path))
        paths.append(path)
    monkeypatch.setenv("RUNAI_STREAMER_MEMORY_LIMIT", str(limit))
    with SafetensorsStreamer() as streamer:
        streamer.stream_files(paths, owned=owned)
        stream = streamer.file_streamer._stream
        assert stream is not None
        sizes = [m.size for ms in streamer.files_to_tensors_metadata.values() for m in ms]
        largest = max(sizes)
        bound = largest if limit == 0 else max(limit, largest)
        count = 0
        for _, tensor in streamer.get_tensors():
            count += 1
            if not owned:  # the caller keeps nothing: what is alive is the stream's
                del tensor
                assert _live_buffer_bytes() <= bound
    assert count == 36
    assert 0 < stream.peak_in_flight <= bound


def test_a_pool_keeps_free_buffers_only_within_the_room_left() -> None:
    pool = BufferPool()
    small, large = pool.take(100, room=1000), pool.take(700, room=900)
    pool.give(small)
    pool.give(large)
    assert pool.free_bytes == 800 and pool.cost(50) == 100 and pool.cost(300) == 700
    assert pool.take(300, room=1000) is large  # the smallest that fits
    pool.give(large)
    bigger = pool.take(900, room=1600)  # none fits: free buffers go, smallest first, until
    assert bigger.size == 900 and pool.free_bytes == 700  # they and the new one fit the room
    assert pool.take(2000, room=1000).size == 2000 and pool.free_bytes == 0


def test_abandoned_iteration_and_restream(tmp_path: Path) -> None:
    paths = _shards(tmp_path, count=3)
    with SafetensorsStreamer() as streamer:
        streamer.stream_files(paths)
        iterator = streamer.get_tensors()
        next(iterator)
        iterator.close()  # cancels what is in flight
        streamer.stream_files(paths)  # replaces the old stream
        streamer.stream_files(paths)
        assert len(dict(streamer.get_tensors())) == 15
    # without a with-block the engine is created lazily and released by close()
    plain = SafetensorsStreamer()
    plain.stream_files([str(p) for p in paths])
    assert len(list(plain.get_tensors())) == 15
    plain.close()


def test_special_tensors(tmp_path: Path) -> None:
    rows = [
        ("scalar", "F32", [], np.float32(2.5).tobytes()),
        ("empty", "F64", [0, 7], b""),
        ("e8m0", "F8_E8M0", [3], bytes([127, 128, 1])),
        ("flags", "BOOL", [4], bytes([1, 0, 0, 1])),
        ("c", "C64", [2], np.array([1 + 2j, 3 - 4j], dtype=np.complex64).tobytes()),
        ("u16", "U16", [2], np.array([1, 65535], dtype=np.uint16).tobytes()),
    ]
    path = raw_file(tmp_path / "special.safetensors", rows, metadata={"note": "ignored"})
    with SafetensorsStreamer() as streamer:
        streamer.stream_file(path)
        got = dict(streamer.get_tensors())
    assert got["scalar"].shape == () and float(got["scalar"]) == 2.5
    assert got["empty"].shape == (0, 7) and got["empty"].dtype == torch.float64
    assert got["e8m0"].dtype == torch.float8_e8m0fnu
    assert got["e8m0"].view(torch.uint8).tolist() == [127, 128, 1]
    assert got["flags"].tolist() == [True, False, False, True]
    assert got["c"].tolist() == [1 + 2j, 3 - 4j]
    assert got["u16"].dtype == torch.uint16
    assert got["u16"].view(torch.int16).tolist() == [1, -1]
    assert "__metadata__" not in got


def test_file_with_only_empty_tensors_and_empty_file_list(tmp_path: Path) -> None:
    path = raw_file(
        tmp_path / "empty.safetensors", [("a", "F32", [0], b""), ("b", "I8", [2, 0], b"")]
    )
    with SafetensorsStreamer() as streamer:
        streamer.stream_files([path, path])
        got = list(streamer.get_tensors())
        assert [n for n, _ in got] == ["a", "b", "a", "b"]
        assert streamer.total_size == 0
        streamer.stream_files([])
        assert list(streamer.get_tensors()) == []


def test_misaligned_tensor_is_copied_to_aligned_memory(tmp_path: Path) -> None:
    values = np.arange(1000, dtype=np.float32)
    rows = [("odd", "U8", [3], b"abc"), ("f", "F32", [1000], values.tobytes())]
    path = raw_file(tmp_path / "odd.safetensors", rows, pad_header_to=8)
    with SafetensorsStreamer() as streamer:
        streamer.stream_file(path)
        got = dict(streamer.get_tensors())
    assert got["f"].data_ptr() % 4 == 0
    assert got["f"].tolist() == values.tolist()
    assert bytes(got["odd"].numpy()) == b"abc"


def test_mapped_buffer_lives_exactly_as_long_as_its_last_view() -> None:
    from runai_model_streamer._buffers import MappedBuffer

    buffer = MappedBuffer(4 << 20)
    ref = weakref.ref(buffer)
    assert buffer.address % 4096 == 0
    view = torch.from_numpy(np.asarray(buffer))[4096:8192].view(torch.int32)
    view.fill_(7)
    del buffer
    gc.collect()
    assert ref() is not None and int(view.sum()) == 7 * 1024
    del view
    gc.collect()
    assert ref() is None


@pytest.mark.parametrize(("prefault", "huge_pages"), [("0", "1"), ("0", "0"), ("1", "")])
@pytest.mark.parametrize("owned", [True, False])
def test_both_allocators(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, prefault: str, huge_pages: str, owned: bool
) -> None:
    monkeypatch.setenv("RUNAI_STREAMER_PREFAULT", prefault)
    monkeypatch.setenv("RUNAI_STREAMER_HUGE_PAGES", huge_pages)
    monkeypatch.setattr("runai_model_streamer._plan.MAX_WINDOW_BYTES", 2000)
    paths = _shards(tmp_path, count=3)
    expected: dict[str, torch.Tensor] = {}
    for path in paths:
        expected.update(load_file(str(path)))
    with SafetensorsStreamer() as streamer:
        streamer.stream_files(paths, owned=owned)
        got = {name: tensor.clone() for name, tensor in streamer.get_tensors()}
    for name in expected:
        assert_same(got[name], expected[name], name)


def test_dropping_streamers_mid_stream_is_safe(tmp_path: Path) -> None:
    path = tmp_path / "big.safetensors"
    save_file({f"t{i}": torch.full((1 << 18,), float(i)) for i in range(16)}, str(path))
    for _ in range(5):
        streamer = SafetensorsStreamer()
        streamer.stream_file(path)  # reads in flight, never consumed
        del streamer
        gc.collect()
        other = SafetensorsStreamer().__enter__()
        other.stream_file(path)
        iterator = other.get_tensors()
        next(iterator)
        other.close()  # engine gone while the generator still exists
        del iterator
        gc.collect()
    with SafetensorsStreamer() as streamer:
        streamer.stream_file(path)
        got = dict(streamer.get_tensors())
    assert all(float(got[f"t{i}"][-1]) == float(i) for i in range(16))


def test_restreaming_inside_the_loop_ends_the_old_iteration(tmp_path: Path) -> None:
    paths = _shards(tmp_path, count=3)
    with SafetensorsStreamer() as streamer:
        streamer.stream_files(paths)
        old = streamer.get_tensors()
        next(old)
        streamer.stream_files(paths[:1], tensor_names=["layer0.bias"])
        assert list(old) == []  # the old stream was cancelled; it never steals new results
        assert [name for name, _ in streamer.get_tensors()] == ["layer0.bias"]
