"""Every dtype the installed safetensors can save streams into what safetensors loads."""

from __future__ import annotations

import json
import math
import tempfile
import warnings
from pathlib import Path

import pytest
import torch
from hypothesis import given
from hypothesis import strategies as st
from runai_model_streamer import SafetensorsFormatError, SafetensorsStreamer
from runai_model_streamer._safetensors import DTYPES
from safetensors.torch import load_file, save_file

from .helpers import assert_same, header_file, raw_file


def _saved_dtype_name(dtype: torch.dtype) -> str | None:
    """The header dtype safetensors writes for a torch dtype, or None when it cannot save it."""
    with tempfile.TemporaryDirectory() as directory:
        path = Path(directory) / "probe.safetensors"
        try:
            with warnings.catch_warnings():  # experimental and deprecated dtypes warn
                warnings.simplefilter("ignore")
                itemsize = torch.empty(0, dtype=dtype).element_size()
            save_file({"t": torch.zeros(2 * itemsize, dtype=torch.uint8).view(dtype)}, str(path))
        except Exception:  # torch cannot make it, or safetensors cannot save it
            return None
        raw = path.read_bytes()
    header = json.loads(raw[8 : 8 + int.from_bytes(raw[:8], "little")])
    return str(header["t"]["dtype"])


def _savable_dtypes() -> dict[torch.dtype, str]:
    """Found by probing every dtype of the installed torch, not from a fixed list."""
    candidates = {v for v in vars(torch).values() if isinstance(v, torch.dtype)}
    found = {}
    for dtype in sorted(candidates, key=str):
        name = _saved_dtype_name(dtype)
        if name is not None:
            found[dtype] = name
    return found


SAVABLE = _savable_dtypes()


def test_probe_finds_the_dtypes_of_this_safetensors() -> None:
    names = set(SAVABLE.values())
    # what safetensors 0.8 with torch 2.13 writes; the probe must at least find these
    assert {"F4", "F8_E8M0", "F8_E4M3FNUZ", "F8_E5M2FNUZ", "U64", "U32", "U16", "C64", "BOOL"} <= (
        names
    ), names
    assert names <= set(DTYPES), names - set(DTYPES)


def _random_tensor(dtype: torch.dtype, shape: list[int], seed: int) -> torch.Tensor:
    itemsize = torch.empty(0, dtype=dtype).element_size()
    count = 1
    for dimension in shape:
        count *= dimension
    generator = torch.Generator().manual_seed(seed)
    raw = torch.randint(0, 256, (count * itemsize,), dtype=torch.uint8, generator=generator)
    if dtype == torch.bool:
        raw %= 2
    return raw.view(dtype).reshape(shape)


tensor_specs = st.lists(
    st.tuples(
        st.sampled_from(sorted(SAVABLE, key=str)),
        st.lists(st.integers(0, 9), max_size=3),
        st.integers(0, 2**31),
    ),
    min_size=1,
    max_size=10,
)


@given(specs=tensor_specs, owned=st.booleans())
def test_every_savable_dtype_streams_bit_for_bit(
    specs: list[tuple[torch.dtype, list[int], int]], owned: bool
) -> None:
    tensors = {
        # safetensors cannot save a packed (F4) scalar: its one value does not fill a byte
        f"t{i}": _random_tensor(dtype, shape or ([1] if SAVABLE[dtype] == "F4" else []), seed)
        for i, (dtype, shape, seed) in enumerate(specs)
    }
    with tempfile.TemporaryDirectory() as directory:
        path = Path(directory) / "model.safetensors"
        save_file(tensors, str(path))
        expected = load_file(str(path))
        with SafetensorsStreamer() as streamer:
            streamer.stream_file(path, owned=owned)
            got = {name: tensor.clone() for name, tensor in streamer.get_tensors()}
    assert sorted(got) == sorted(expected)
    for name, tensor in expected.items():
        assert_same(got[name], tensor, name)


def test_f4_shape_counts_values_and_torch_holds_pairs(tmp_path: Path) -> None:
    data = bytes(range(16))
    path = raw_file(tmp_path / "f4.safetensors", [("w", "F4", [4, 8], data)])
    with SafetensorsStreamer() as streamer:
        streamer.stream_file(path)
        (name, tensor), *_ = list(streamer.get_tensors())
        assert streamer.files_to_tensors_metadata[0][0].shape == (4, 8)
    assert tensor.dtype == torch.float4_e2m1fn_x2 and tuple(tensor.shape) == (4, 4)
    assert_same(tensor, load_file(str(path))["w"], name)


def test_f4_with_an_odd_last_dimension_names_the_tensor(tmp_path: Path) -> None:
    path = header_file(
        tmp_path / "odd.safetensors",
        {"w": {"dtype": "F4", "shape": [2, 3], "data_offsets": [0, 3]}},
        b"\0" * 3,
    )
    with SafetensorsStreamer() as streamer, pytest.raises(SafetensorsFormatError) as raised:
        streamer.stream_file(path)
    message = str(raised.value)
    assert str(path) in message and "'w'" in message and "multiple of 2" in message, message


@pytest.mark.parametrize("dtype", ["F6_E2M3", "F6_E3M2"])
def test_dtype_no_torch_has_is_a_clear_error(tmp_path: Path, dtype: str) -> None:
    path = header_file(
        tmp_path / "f6.safetensors",
        {"w": {"dtype": dtype, "shape": [4], "data_offsets": [0, 3]}},
        b"\0" * 3,
    )
    with SafetensorsStreamer() as streamer, pytest.raises(SafetensorsFormatError) as raised:
        streamer.stream_file(path)
    message = str(raised.value)
    assert str(path) in message and "'w'" in message and dtype in message, message
    assert "does not support" in message and torch.__version__ in message, message


def test_f4_on_a_torch_without_it_is_a_clear_error(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    path = raw_file(tmp_path / "f4.safetensors", [("w", "F4", [2], b"\x12")])
    monkeypatch.delattr(torch, "float4_e2m1fn_x2")
    with SafetensorsStreamer() as streamer, pytest.raises(SafetensorsFormatError) as raised:
        streamer.stream_file(path)
    message = str(raised.value)
    assert "'w'" in message and "F4" in message and "no torch.float4_e2m1fn_x2" in message


@given(
    lead=st.integers(0, 15),
    pieces=st.lists(
        st.tuples(
            st.sampled_from(["F64", "F32", "F16", "BF16", "I64", "I16", "U8", "BOOL", "C64"]),
            st.lists(st.integers(0, 5), max_size=3),
            st.integers(0, 200),
        ),
        min_size=1,
        max_size=12,
    ),
)
def test_a_tensor_is_the_bytes_it_landed_in_wherever_they_lie(
    lead: int, pieces: list[tuple[str, list[int], int]]
) -> None:
    """TensorViews over a buffer that may start misaligned (``lead``), at any start: each
    tensor holds exactly its bytes, as a view where they are aligned for the dtype, as a copy
    where not."""
    from runai_model_streamer._safetensors import TensorMetadata
    from runai_model_streamer._tensors import TensorViews, dtype_table

    metas = [
        TensorMetadata(f"t{i}", dtype, tuple(shape), start, 0, (0, 0), "p")
        for i, (dtype, shape, start) in enumerate(pieces)
    ]
    table = dtype_table([metas])
    storage = torch.randint(0, 256, (lead + 4096,), dtype=torch.uint8)
    base = storage[lead:]
    views = TensorViews(table)
    for meta in metas:
        dtype, itemsize, _ = table[meta.dtype]
        size = math.prod(meta.shape) * itemsize
        tensor = views.make(meta, base, meta.offset, size)
        assert tensor.dtype == dtype and tuple(tensor.shape) == meta.shape, meta
        expected = base[meta.offset : meta.offset + size]
        assert torch.equal(tensor.reshape(-1).view(torch.uint8), expected), meta
        aligned = (base.data_ptr() + meta.offset) % itemsize == 0
        if size and aligned:  # a view, not a copy
            assert tensor.data_ptr() == expected.data_ptr(), meta
