# ruff: noqa: UP031  (JSON text is clearer with %-formatting than with doubled braces)
"""Malformed files: this package accepts exactly what ``safetensors.torch.load_file`` accepts.

The only allowed difference: a ``__metadata__`` value that is not a string is ignored here
(safetensors refuses the file). Where both accept, every tensor is equal bit for bit.
"""

from __future__ import annotations

import json
import tempfile
from pathlib import Path

import pytest
from hypothesis import given
from hypothesis import strategies as st
from runai_model_streamer import SafetensorsFormatError, SafetensorsStreamer
from safetensors.torch import load_file

from .helpers import assert_same, write_bytes


def _entry(dtype: str, shape: list[int], begin: int, end: int) -> str:
    return json.dumps({"dtype": dtype, "shape": shape, "data_offsets": [begin, end]})


def _u8(begin: int, end: int) -> str:
    return _entry("U8", [end - begin], begin, end)


def _file(path: Path, header: str | bytes, data_size: int) -> Path:
    raw = header.encode() if isinstance(header, str) else header
    data = bytes((i * 37 + 11) % 256 for i in range(data_size))
    return write_bytes(path, len(raw).to_bytes(8, "little") + raw + data)


def _metadata_is_not_all_strings(path: Path) -> bool:
    raw = path.read_bytes()
    try:
        document = json.loads(raw[8 : 8 + int.from_bytes(raw[:8], "little")])
    except ValueError:
        return False
    metadata = document.get("__metadata__") if isinstance(document, dict) else None
    return isinstance(metadata, dict) and not all(isinstance(v, str) for v in metadata.values())


def check_same_decision(path: Path) -> str:
    """Loads ``path`` both ways; asserts the same decision (and tensors). Returns it."""
    try:
        expected = load_file(str(path))
    except Exception as error:  # safetensors raises SafetensorError and others
        expected_error: Exception | None = error
    else:
        expected_error = None
    try:
        with SafetensorsStreamer() as streamer:
            streamer.stream_file(path)
            got = dict(streamer.get_tensors())  # owned: no copy (a copy would normalise BOOL bytes)
    except SafetensorsFormatError as error:
        assert str(path) in str(error), error
        assert expected_error is not None, f"refused what safetensors loads: {error}"
        return "refused"
    if expected_error is not None:
        assert _metadata_is_not_all_strings(path), (
            f"accepted what safetensors refuses ({expected_error})"
        )
        return "accepted (metadata value ignored)"
    assert sorted(got) == sorted(expected)
    for name, tensor in expected.items():
        assert_same(got[name], tensor, name)
    return "accepted"


A = _u8(0, 4)
CASES: dict[str, tuple[str | bytes, int, str]] = {
    # name: (header, data bytes, decision)
    "valid": ('{"a": %s, "b": %s}' % (A, _u8(4, 8)), 8, "accepted"),
    "empty header object": ("{}", 0, "accepted"),
    "unknown key in an entry": (
        '{"a": {"dtype": "U8", "shape": [4], "data_offsets": [0, 4], "x": 1}}',
        4,
        "accepted",
    ),
    "repeated name, same entry": ('{"a": %s, "a": %s}' % (A, A), 4, "accepted"),
    "repeated name, last entry kept": ('{"a": %s, "a": %s}' % (A, _u8(4, 8)), 8, "refused"),
    # the earlier entries of a repeated name are parsed (names, types), not checked further
    "repeated name, earlier entry of another size": (
        '{"a": %s, "a": %s}' % (_entry("F32", [4], 0, 16), A),
        4,
        "accepted",
    ),
    "repeated name, earlier entry past the end": (
        '{"a": %s, "a": %s}' % (_u8(0, 99), A),
        4,
        "accepted",
    ),
    "repeated name, earlier entry with an unknown dtype": (
        '{"a": %s, "a": %s}' % (_entry("Q9", [4], 0, 4), A),
        4,
        "refused",
    ),
    "repeated name, earlier entry with a field twice": (
        '{"a": {"dtype": "U8", "dtype": "U8", "shape": [4], "data_offsets": [0, 4]}, "a": %s}' % A,
        4,
        "refused",
    ),
    "repeated name, earlier entry with a negative dimension": (
        '{"a": %s, "a": %s}' % (_entry("U8", [-4], 0, 4), A),
        4,
        "refused",
    ),
    "repeated name, earlier entry not an object": ('{"a": 5, "a": %s}' % A, 4, "refused"),
    # (JSON without backslashes is decoded a faster way, whose key count must see each repeat)
    "repeated name, space before a colon": ('{"a" : 5, "a": %s}' % A, 4, "refused"),
    "repeated name, compact JSON": ('{"a":%s,"a":%s}' % (_entry("Q9", [4], 0, 4), A), 4, "refused"),
    "repeated name, a name that starts with a colon": (
        '{":a": %s, "b": %s, "b": %s}' % (A, _entry("Q9", [4], 4, 8), _u8(4, 8)),
        8,
        "refused",
    ),
    "a name that starts with a colon": ('{":a": %s, "b:": %s}' % (A, _u8(4, 8)), 8, "accepted"),
    "entry as an array": ('{"a": ["U8", [4], [0, 4]]}', 4, "accepted"),
    "entry as a short array": ('{"a": ["U8", [4]]}', 4, "refused"),
    "gap": ('{"a": %s, "b": %s}' % (A, _u8(6, 8)), 8, "refused"),
    "gap before the first tensor": ('{"a": %s}' % _u8(2, 4), 4, "refused"),
    "trailing bytes": ('{"a": %s}' % A, 6, "refused"),
    "overlap": ('{"a": %s, "b": %s}' % (_u8(0, 6), _u8(4, 8)), 8, "refused"),
    "empty tensor inside another": (
        '{"a": %s, "z": %s}' % (_u8(0, 8), _entry("U8", [0], 4, 4)),
        8,
        "refused",
    ),
    "empty tensor at the end": (
        '{"a": %s, "z": %s}' % (_u8(0, 8), _entry("U8", [0], 8, 8)),
        8,
        "accepted",
    ),
    "empty tensor at the start": (
        '{"z": %s, "a": %s}' % (_entry("U8", [0], 0, 0), A),
        4,
        "accepted",
    ),
    "empty shape overflowing 64 bits": (
        '{"a": %s}' % _entry("U8", [2**32, 2**32, 0], 0, 0),
        0,
        "refused",
    ),
    "dimension of 2**64": ('{"a": %s}' % _entry("U8", [2**64, 0], 0, 0), 0, "refused"),
    "metadata null": ('{"__metadata__": null, "a": %s}' % A, 4, "accepted"),
    "metadata not a string": (
        '{"__metadata__": {"x": 1}, "a": %s}' % A,
        4,
        "accepted (metadata value ignored)",
    ),
    "metadata a string": ('{"__metadata__": "x", "a": %s}' % A, 4, "refused"),
    "metadata twice": ('{"__metadata__": {}, "__metadata__": {}, "a": %s}' % A, 4, "refused"),
    "metadata key repeated": ('{"__metadata__": {"k": "1", "k": "2"}, "a": %s}' % A, 4, "accepted"),
    "field repeated in an entry": (
        '{"a": {"dtype": "U8", "dtype": "I8", "shape": [4], "data_offsets": [0, 4]}}',
        4,
        "refused",
    ),
    "NaN": ('{"__metadata__": {"x": NaN}, "a": %s}' % A, 4, "refused"),
    "Infinity in an entry": (
        '{"a": {"dtype": "U8", "shape": [4], "data_offsets": [0, 4], "x": Infinity}}',
        4,
        "refused",
    ),
    "negative zero offset": (
        '{"a": {"dtype": "U8", "shape": [4], "data_offsets": [-0, 4]}}',
        4,
        "refused",
    ),
    "float offset": (
        '{"a": {"dtype": "U8", "shape": [4], "data_offsets": [0, 4e0]}}',
        4,
        "refused",
    ),
    "bool offset": (
        '{"a": {"dtype": "U8", "shape": [4], "data_offsets": [false, 4]}}',
        4,
        "refused",
    ),
    "three offsets": (
        '{"a": {"dtype": "U8", "shape": [4], "data_offsets": [0, 4, 5]}}',
        4,
        "refused",
    ),
    "lowercase dtype": ('{"a": %s}' % _entry("u8", [4], 0, 4), 4, "refused"),
    "lone surrogate in a name": ('{"\\ud800": %s}' % A, 4, "refused"),
    "lone surrogate in metadata": ('{"__metadata__": {"k": "\\udc00"}, "a": %s}' % A, 4, "refused"),
    "surrogate pair in a name": ('{"\\ud83d\\ude00": %s}' % A, 4, "accepted"),
    "escaped backslash before u": ('{"\\\\ud800": %s}' % A, 4, "accepted"),
    "control character in a name": ('{"a\x01": %s}' % A, 4, "refused"),
    "whitespace around the header": ('  {"a": %s}\n ' % A, 4, "accepted"),
    "byte order mark": (b'\xef\xbb\xbf{"a": ' + A.encode() + b"}", 4, "refused"),
    "trailing characters": ('{"a": %s} x' % A, 4, "refused"),
    "NUL after the header": (b'{"a": ' + A.encode() + b"}\x00", 4, "refused"),
    "entry null": ('{"a": null}', 0, "refused"),
    "F4 of 4x8 values": ('{"a": %s}' % _entry("F4", [4, 8], 0, 16), 16, "accepted"),
    "F4 odd last dimension": ('{"a": %s}' % _entry("F4", [2, 3], 0, 3), 3, "refused"),
    "F4 odd value count": ('{"a": %s}' % _entry("F4", [3], 0, 2), 2, "refused"),
    "F4 scalar": ('{"a": %s}' % _entry("F4", [], 0, 0), 0, "refused"),
    "F4 empty, odd last dimension": ('{"a": %s}' % _entry("F4", [0, 3], 0, 0), 0, "refused"),
    "F6 (no torch dtype)": ('{"a": %s}' % _entry("F6_E2M3", [4], 0, 3), 3, "refused"),
    "F8_E8M0": ('{"a": %s}' % _entry("F8_E8M0", [4], 0, 4), 4, "accepted"),
}


@pytest.mark.parametrize("case", sorted(CASES))
def test_malformed_file_decision_matches_safetensors(tmp_path: Path, case: str) -> None:
    header, data_size, decision = CASES[case]
    path = _file(tmp_path / "case.safetensors", header, data_size)
    assert check_same_decision(path) == decision


DTYPE_BITS = {"U8": 8, "I16": 16, "F32": 32, "F64": 64, "F4": 4, "BF16": 16, "BOOL": 8}


@st.composite
def mutated_files(draw: st.DrawFn) -> tuple[str, int]:
    """A valid header of a few tensors, then a few random mutations of its entries, its
    coverage of the data or its JSON."""
    count = draw(st.integers(0, 4))
    entries: list[list[object]] = []  # [name, dtype, shape, begin, end, extra]
    cursor = 0
    for index in range(count):
        dtype = draw(st.sampled_from(sorted(DTYPE_BITS)))
        shape = draw(st.lists(st.integers(0, 4), max_size=2))
        if dtype == "F4" and shape:
            shape[-1] *= 2
        values = 1
        for dimension in shape:
            values *= dimension
        size = values * DTYPE_BITS[dtype] // 8
        entries.append([f"t{index}", dtype, shape, cursor, cursor + size, ""])
        cursor += size
    data_size = cursor
    for _ in range(draw(st.integers(0, 3))):
        mutation = draw(
            st.sampled_from(
                ["shift", "resize", "dtype", "shape", "extra", "data", "drop", "rename"]
            )
        )
        if mutation == "data":
            data_size = max(0, data_size + draw(st.integers(-3, 3)))
            continue
        if not entries:
            continue
        entry = entries[draw(st.integers(0, len(entries) - 1))]
        if mutation == "shift":
            delta = draw(st.integers(-3, 3))
            entry[3] = max(0, int(entry[3]) + delta)  # type: ignore[call-overload]
            entry[4] = max(0, int(entry[4]) + delta)  # type: ignore[call-overload]
        elif mutation == "resize":
            entry[4] = max(0, int(entry[4]) + draw(st.integers(-3, 3)))  # type: ignore[call-overload]
        elif mutation == "dtype":
            entry[1] = draw(st.sampled_from(sorted(DTYPE_BITS)))
        elif mutation == "shape":
            entry[2] = draw(st.lists(st.integers(0, 6), max_size=3))
        elif mutation == "extra":
            entry[5] = draw(st.sampled_from([', "x": 1', ', "x": "y"', ', "dtype": "U8"']))
        elif mutation == "drop":
            entries.remove(entry)
        elif mutation == "rename":
            entry[0] = str(entries[0][0])
    parts = []
    if draw(st.booleans()):
        value = draw(st.sampled_from(['"v"', "1", "null", "[1]"]))
        parts.append(f'"__metadata__": {{"k": {value}}}')
    for name, dtype, shape, begin, end, extra in entries:
        parts.append(
            f'"{name}": {{"dtype": "{dtype}", "shape": {json.dumps(shape)}, '
            f'"data_offsets": [{begin}, {end}]{extra}}}'
        )
    return "{" + ", ".join(parts) + "}", data_size


@given(mutated_files())
def test_mutated_files_decision_matches_safetensors(case: tuple[str, int]) -> None:
    header, data_size = case
    with tempfile.TemporaryDirectory() as directory:
        check_same_decision(_file(Path(directory) / "mutated.safetensors", header, data_size))


def test_parsing_pauses_the_garbage_collector_and_restores_it(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """Headers of many tensors parse with the cyclic collector paused (it would scan every
    object of the process again and again); the caller's setting is back afterwards, after an
    error too, and a caller that paused it keeps it paused."""
    import gc

    from runai_model_streamer import _safetensors

    during = []
    decode = _safetensors._decode

    def recording(path: str, raw: bytes) -> dict[str, object]:
        during.append(gc.isenabled())
        return decode(path, raw)

    monkeypatch.setattr(_safetensors, "_decode", recording)
    good = _file(tmp_path / "good.safetensors", "{%s}" % ('"a": ' + _u8(0, 4)), 4)
    bad = _file(tmp_path / "bad.safetensors", "{%s}" % ('"a": ' + _u8(0, 5)), 4)
    assert gc.isenabled()
    with SafetensorsStreamer() as streamer:
        streamer.stream_file(good)
        assert [name for name, _ in streamer.get_tensors()] == ["a"]
        assert gc.isenabled()
        with pytest.raises(SafetensorsFormatError):
            streamer.stream_file(bad)
        assert gc.isenabled()
        gc.disable()
        try:
            streamer.stream_file(good)
            assert not gc.isenabled()
        finally:
            gc.enable()
    assert during == [False, False, False]
