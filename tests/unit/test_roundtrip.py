"""Property-based round trips: files written by safetensors, streamed, equal bit for bit."""

from __future__ import annotations

import tempfile
from pathlib import Path

import torch
from hypothesis import given
from hypothesis import strategies as st
from runai_model_streamer import SafetensorsStreamer
from safetensors.torch import load_file, save_file

from .helpers import assert_same, environ, raw_file, tensor_bytes

DTYPES = [
    torch.float64,
    torch.float32,
    torch.float16,
    torch.bfloat16,
    torch.int64,
    torch.int32,
    torch.int16,
    torch.int8,
    torch.uint8,
    torch.bool,
    torch.complex64,
]
DTYPES += [getattr(torch, n) for n in ("uint16", "uint32", "uint64") if hasattr(torch, n)]
DTYPES += [getattr(torch, n) for n in ("float8_e4m3fn", "float8_e5m2") if hasattr(torch, n)]

CHUNK = 4096  # the smallest chunk size the engine accepts; tensors up to ~5x bigger below

shapes = st.one_of(
    st.just(()),  # scalars
    st.lists(st.integers(0, 12), min_size=1, max_size=3),  # small, some zero-size
    st.tuples(st.integers(CHUNK // 8, 5 * CHUNK)),  # larger than a chunk
)


def make_tensor(dtype: torch.dtype, shape: tuple[int, ...] | list[int], seed: int) -> torch.Tensor:
    generator = torch.Generator().manual_seed(seed)
    count = 1
    for dim in shape:
        count *= dim
    nbytes = count * torch.empty((), dtype=dtype).element_size()
    raw = torch.randint(0, 256, (nbytes,), dtype=torch.uint8, generator=generator)
    if dtype == torch.bool:
        raw = raw % 2
    return raw.view(dtype).reshape(shape)


tensor_sets = st.lists(
    st.tuples(st.sampled_from(DTYPES), shapes, st.integers(0, 2**31)), min_size=1, max_size=8
)


def save_files(directory: Path, files: list[list[tuple[torch.dtype, object, int]]]) -> list[Path]:
    paths = []
    for index, specs in enumerate(files):
        tensors = {
            f"f{index}.t{j}": make_tensor(dtype, shape, seed)  # type: ignore[arg-type]
            for j, (dtype, shape, seed) in enumerate(specs)
        }
        path = directory / f"model-{index}.safetensors"
        save_file(tensors, str(path))
        paths.append(path)
    return paths


def stream_all(
    paths: list[Path], owned: bool, tensor_names: list[str] | None = None
) -> dict[str, torch.Tensor]:
    out: dict[str, torch.Tensor] = {}
    with SafetensorsStreamer() as streamer:
        streamer.stream_files(paths, owned=owned, tensor_names=tensor_names)
        expected_count = sum(len(m) for m in streamer.files_to_tensors_metadata.values())
        for name, tensor in streamer.get_tensors():
            assert name not in out
            # owned=False buffers are reused later: copy at once, as documented
            out[name] = tensor if owned else tensor.clone()
    assert len(out) == expected_count
    return out


@given(
    files=st.lists(tensor_sets, min_size=1, max_size=4),
    owned=st.booleans(),
    memory_limit=st.sampled_from(["-1", "0", "1", "5000", "100000"]),
    subset=st.data(),
)
def test_roundtrip_equals_safetensors(
    files: list[list[tuple[torch.dtype, object, int]]],
    owned: bool,
    memory_limit: str,
    subset: st.DataObject,
) -> None:
    with (
        tempfile.TemporaryDirectory() as directory,
        environ(RUNAI_STREAMER_CHUNK_BYTESIZE=str(CHUNK), RUNAI_STREAMER_MEMORY_LIMIT=memory_limit),
    ):
        paths = save_files(Path(directory), files)
        expected: dict[str, torch.Tensor] = {}
        for path in paths:
            expected.update(load_file(str(path)))
        names = None
        if subset.draw(st.booleans(), label="use tensor_names"):
            names = subset.draw(
                st.lists(st.sampled_from(sorted(expected)), min_size=1, unique=True),
                label="tensor_names",
            )
            expected = {n: expected[n] for n in names}
        streamed = stream_all(paths, owned, names)
        assert sorted(streamed) == sorted(expected)
        for name, tensor in expected.items():
            assert_same(streamed[name], tensor, name)


@given(
    entries=st.lists(
        st.tuples(st.sampled_from(DTYPES), shapes, st.integers(0, 2**31)), min_size=1, max_size=8
    ),
    owned=st.booleans(),
)
def test_misaligned_tensors_are_correct(
    entries: list[tuple[torch.dtype, object, int]], owned: bool
) -> None:
    """Tensors packed back to back with odd offsets (not what safetensors writes, but valid)."""
    from runai_model_streamer._safetensors import DTYPES as NAMES
    from runai_model_streamer.safetensors_streamer import torch_dtype  # noqa: F401

    by_torch = {
        getattr(torch, attr): name
        for name, (attr, _) in NAMES.items()
        if attr is not None and hasattr(torch, attr)
    }
    tensors = {f"t{i}": make_tensor(d, s, seed) for i, (d, s, seed) in enumerate(entries)}  # type: ignore[arg-type]
    pad = make_tensor(torch.uint8, (3,), 1)
    with tempfile.TemporaryDirectory() as directory:
        rows = [("pad", "U8", [3], tensor_bytes(pad))]
        rows += [(n, by_torch[t.dtype], list(t.shape), tensor_bytes(t)) for n, t in tensors.items()]
        path = raw_file(Path(directory) / "odd.safetensors", rows, pad_header_to=1)
        streamed = stream_all([path], owned)
    tensors["pad"] = pad
    for name, tensor in tensors.items():
        assert_same(streamed[name], tensor, name)
