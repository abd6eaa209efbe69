"""The safetensors format: parsing and validating a header (no I/O and no torch here; the
headers are read by :mod:`runai_model_streamer._headers`).

A safetensors file is an 8-byte little-endian header length N, N bytes of UTF-8 JSON mapping
tensor names to ``{"dtype", "shape", "data_offsets": [begin, end]}`` (offsets relative to the
data section, which starts at byte 8 + N), an optional ``__metadata__`` entry, then the data.
The whole header is validated before any tensor data is read; every problem raises
:class:`SafetensorsFormatError` naming the file.

The rules are those of the reference implementation (the ``safetensors`` package), so a file is
accepted here exactly when ``safetensors`` loads it, with one deliberate difference: a
``__metadata__`` value that is not a string is ignored rather than refused. In particular the
data section must be fully indexed: tensors sorted by offset follow each other from byte 0 to
the end of the file, with no gap, no overlap and nothing after the last one. Like the reference
(its JSON parser), unknown keys in a tensor entry are ignored, a repeated tensor name keeps its
last entry (the earlier ones must still have the fields and types of an entry), and an entry
may be written as the array ``[dtype, shape, data_offsets]``.
"""

from __future__ import annotations

import contextlib
import gc
import json
import math
import re
from collections.abc import Iterator
from dataclasses import dataclass
from typing import Any, NamedTuple

from runai_model_streamer._errors import (
    SafetensorsFormatError,
)

#: the header-length limit of the reference implementation (decimal bytes)
MAX_HEADER_SIZE = 100_000_000
#: shapes, offsets and sizes are 64-bit unsigned in the format
_U64_MAX = 2**64 - 1

#: safetensors dtype -> (torch attribute name, bits per value). Every dtype the format defines;
#: None where no torch has a matching dtype. F4 values are packed two per byte, and torch's
#: ``float4_e2m1fn_x2`` holds such a pair per element: the header's shape counts values, the
#: tensor's last dimension counts pairs.
DTYPES: dict[str, tuple[str | None, int]] = {
    "F64": ("float64", 64),
    "F32": ("float32", 32),
    "F16": ("float16", 16),
    "BF16": ("bfloat16", 16),
    "I64": ("int64", 64),
    "I32": ("int32", 32),
    "I16": ("int16", 16),
    "I8": ("int8", 8),
    "U64": ("uint64", 64),
    "U32": ("uint32", 32),
    "U16": ("uint16", 16),
    "U8": ("uint8", 8),
    "BOOL": ("bool", 8),
    "C64": ("complex64", 64),
    "F8_E4M3": ("float8_e4m3fn", 8),
    "F8_E5M2": ("float8_e5m2", 8),
    "F8_E4M3FNUZ": ("float8_e4m3fnuz", 8),
    "F8_E5M2FNUZ": ("float8_e5m2fnuz", 8),
    "F8_E8M0": ("float8_e8m0fnu", 8),
    "F4": ("float4_e2m1fn_x2", 4),
    "F6_E2M3": (None, 6),
    "F6_E3M2": (None, 6),
}
PACKED_DTYPES = {"F4": 2}  # values per torch element, where more than one


class TensorMetadata(NamedTuple):
    """One tensor of a safetensors file.

    ``offset`` is the absolute byte offset in the file, ``size`` its byte count,
    ``data_offsets`` the (begin, end) pair as written in the header. ``shape`` is the header's
    shape (for F4 it counts 4-bit values, not the pairs torch holds).
    """

    name: str
    dtype: str
    shape: tuple[int, ...]
    offset: int
    size: int
    data_offsets: tuple[int, int]
    path: str

    @property
    def numel(self) -> int:
        return math.prod(self.shape)


@dataclass(frozen=True, slots=True)
class SafetensorsHeader:
    path: str
    file_size: int
    header_size: int
    tensors: tuple[TensorMetadata, ...]  # sorted by offset (then name)
    metadata: dict[str, Any] | None

    @property
    def data_offset(self) -> int:
        return 8 + self.header_size


def format_error(path: str, problem: str) -> SafetensorsFormatError:
    return SafetensorsFormatError(f"{path}: not a valid safetensors file: {problem}")


def check_header_length(path: str, file_size: int, header_size: int) -> None:
    if file_size == 0:
        raise format_error(path, "the file is empty")
    if file_size < 8:
        raise format_error(
            path, f"the file has {file_size} bytes, fewer than the 8-byte header length"
        )
    if header_size > MAX_HEADER_SIZE:
        raise format_error(
            path, f"header length {header_size} is larger than the limit of {MAX_HEADER_SIZE} bytes"
        )
    if 8 + header_size > file_size:
        raise format_error(
            path,
            f"header length {header_size} runs past the end of the file ({file_size} bytes)",
        )
    if header_size < 2:
        raise format_error(path, f"header length {header_size} is too small for a JSON object")


class _RepeatedKeys(dict):  # type: ignore[type-arg]
    """A JSON object that repeats keys: the last value is kept, as the reference's maps do;
    ``shadowed`` holds the earlier ones, which the reference still parses (and may refuse)."""

    shadowed: tuple[tuple[str, Any], ...] = ()

    @property
    def repeated(self) -> frozenset[str]:
        return frozenset(key for key, _ in self.shadowed)


def _object(pairs: list[tuple[str, Any]]) -> dict[str, Any]:
    result = dict(pairs)
    if len(result) == len(pairs):
        return result
    last = {key: index for index, (key, _) in enumerate(pairs)}
    marked = _RepeatedKeys(result)
    marked.shadowed = tuple(pair for index, pair in enumerate(pairs) if last[pair[0]] != index)
    return marked


def _reject_constant(name: str) -> Any:
    raise ValueError(f"{name} is not valid JSON")


def _int_not_negative_zero(text: str) -> int | float:
    # "-0" is a float to the reference's parser (so not an offset or a dimension); json makes 0.
    return -0.0 if text == "-0" else int(text)


#: a \\u escape of a UTF-16 surrogate: only then can json produce a lone surrogate
_SURROGATE_ESCAPE = re.compile(r"\\u[dD][89a-fA-F]")


def _lone_surrogate(value: Any) -> bool:
    """Whether a decoded JSON value holds a string with a lone surrogate (which the reference's
    parser refuses: such a string is not Unicode)."""
    if isinstance(value, str):
        try:
            value.encode("utf-8")
        except UnicodeEncodeError:
            return True
        return False
    if isinstance(value, dict):
        return any(_lone_surrogate(k) or _lone_surrogate(v) for k, v in value.items())
    if isinstance(value, list):
        return any(_lone_surrogate(v) for v in value)
    return False


def _decode(path: str, raw: bytes) -> dict[str, Any]:
    try:
        text = raw.decode("utf-8")
    except UnicodeDecodeError as error:
        raise format_error(path, f"the header is not UTF-8 ({error})") from None
    try:
        document = json.loads(
            text,
            object_pairs_hook=_object,
            parse_constant=_reject_constant,
            parse_int=_int_not_negative_zero if "-0" in text else None,
        )
    except (ValueError, RecursionError) as error:
        raise format_error(path, f"the header is not valid JSON ({error})") from None
    if not isinstance(document, dict):
        raise format_error(path, f"the header is a JSON {type(document).__name__}, not an object")
    if _SURROGATE_ESCAPE.search(text) and _lone_surrogate(document):
        raise format_error(
            path, "the header is not valid JSON (a string holds a lone UTF-16 surrogate)"
        )
    if "__metadata__" in getattr(document, "repeated", ()):
        raise format_error(path, "__metadata__ appears more than once")
    return document


def _is_u64(value: Any) -> bool:
    return type(value) is int and 0 <= value <= _U64_MAX


_BITS = {name: bits for name, (_, bits) in DTYPES.items()}
_FIELDS = ("dtype", "shape", "data_offsets")


def _entry_types(where: str, entry: Any) -> tuple[str, list[int], list[int]]:
    """What the reference checks as it parses an entry (field names and types): its (dtype,
    shape, data_offsets), or raises ValueError saying what is wrong."""
    if isinstance(entry, list):
        if len(entry) != 3:
            raise ValueError(
                f"{where}: entry is an array of {len(entry)} items, not "
                "[dtype, shape, data_offsets]"
            )
        entry = dict(zip(_FIELDS, entry, strict=True))
    if not isinstance(entry, dict):
        raise ValueError(f"{where}: entry is not a JSON object")
    repeated = sorted(set(getattr(entry, "repeated", ())) & set(_FIELDS))
    if repeated:
        raise ValueError(f"{where}: {', '.join(repeated)} appears more than once")
    missing = [key for key in _FIELDS if key not in entry]
    if missing:
        raise ValueError(f"{where}: missing {', '.join(sorted(missing))}")
    dtype, shape, offsets = entry["dtype"], entry["shape"], entry["data_offsets"]
    if not isinstance(dtype, str) or dtype not in DTYPES:
        raise ValueError(f"{where}: unknown dtype {dtype!r} (known: {', '.join(DTYPES)})")
    if not isinstance(shape, list) or not all(_is_u64(d) for d in shape):
        raise ValueError(f"{where}: shape {shape!r} is not a list of non-negative integers")
    if not isinstance(offsets, list) or len(offsets) != 2 or not all(_is_u64(o) for o in offsets):
        raise ValueError(f"{where}: data_offsets {offsets!r} is not [begin, end]")
    return dtype, shape, offsets


def _entry_fields(name: str, entry: Any, data_size: int) -> tuple[str, list[int], int, int]:
    """The slow, precise check of one header entry: its (dtype, shape, begin, end), or raises
    ValueError saying what is wrong."""
    where = f"tensor {name!r}"
    dtype, shape, offsets = _entry_types(where, entry)
    begin, end = offsets
    if end < begin:
        raise ValueError(f"{where}: data_offsets {offsets!r} end before they begin")
    count = 1
    for dimension in shape:  # the reference multiplies in order and fails on overflow
        count *= dimension
        if count > _U64_MAX:
            raise ValueError(f"{where}: shape {shape} overflows a 64-bit element count")
    bits = count * _BITS[dtype]
    if bits % 8:
        raise ValueError(
            f"{where}: {count} values of {dtype} take {bits} bits, not a whole number of bytes"
        )
    if end - begin != bits // 8:
        raise ValueError(
            f"{where}: shape {shape} of {dtype} needs {bits // 8} bytes but data_offsets "
            f"{offsets} span {end - begin}"
        )
    if end > data_size:
        raise ValueError(
            f"{where}: data_offsets {offsets} end past the end of the data "
            f"({data_size} bytes after the header; file truncated?)"
        )
    return dtype, shape, begin, end


def _check_coverage(path: str, tensors: list[TensorMetadata], data_size: int) -> None:
    """Tensors sorted by (begin, end) must tile the data section exactly."""
    cursor = 0
    previous: TensorMetadata | None = None
    for tensor in tensors:
        begin, end = tensor.data_offsets
        if begin != cursor:
            if previous is None:
                raise format_error(
                    path,
                    f"data bytes 0..{begin} belong to no tensor (the first, {tensor.name!r}, "
                    f"starts at {begin})",
                )
            if begin < cursor:
                raise format_error(
                    path,
                    f"tensors {previous.name!r} {list(previous.data_offsets)} and {tensor.name!r} "
                    f"{list(tensor.data_offsets)} overlap",
                )
            raise format_error(
                path,
                f"data bytes {cursor}..{begin} between tensors {previous.name!r} "
                f"{list(previous.data_offsets)} and {tensor.name!r} {list(tensor.data_offsets)} "
                "belong to no tensor (a gap)",
            )
        cursor = end
        previous = tensor
    if cursor != data_size:
        last = f"the last tensor, {previous.name!r}, ends" if previous else "there are no tensors"
        raise format_error(
            path,
            f"{data_size - cursor} bytes after the tensor data belong to no tensor ({last} at "
            f"data byte {cursor} of {data_size})",
        )


@contextlib.contextmanager
def gc_paused() -> Iterator[None]:
    """Pauses Python's cyclic garbage collector (where it runs). A header of 100,000 tensors
    becomes some 400,000 containers, which trigger full collections that scan every object the
    process holds: 2-3x the parse itself. Nothing a header or a plan makes is cyclic garbage."""
    if not gc.isenabled():
        yield
        return
    gc.disable()
    try:
        yield
    finally:
        gc.enable()


@gc_paused()
def parse_header(path: str, file_size: int, header_size: int, raw: bytes) -> SafetensorsHeader:
    """Validates a whole header (``raw`` = the N JSON bytes) against the file size."""
    check_header_length(path, file_size, header_size)
    if len(raw) != header_size:
        raise format_error(
            path, f"read {len(raw)} header bytes, expected {header_size} (file changed?)"
        )
    document = _decode(path, raw)
    data_offset = 8 + header_size
    data_size = file_size - data_offset
    metadata = document.pop("__metadata__", None)
    if metadata is not None and not isinstance(metadata, dict):
        raise format_error(path, "__metadata__ is not a JSON object")
    for name, entry in getattr(document, "shadowed", ()):
        # A name given more than once: the last entry is the tensor, the others must parse.
        try:
            _entry_types(f"tensor {name!r} (an earlier entry of a name given twice)", entry)
        except ValueError as problem:
            raise format_error(path, str(problem)) from None
    bits_of = _BITS
    tensors: list[TensorMetadata] = []
    append = tensors.append
    for name, entry in document.items():
        # fast path for well-formed entries; anything unusual goes to _entry_fields
        if type(entry) is dict and len(entry) == 3:
            dtype = entry.get("dtype")
            shape = entry.get("shape")
            offsets = entry.get("data_offsets")
            if (
                type(dtype) is str
                and type(shape) is list
                and type(offsets) is list
                and len(offsets) == 2
                and dtype in bits_of
            ):
                begin, end = offsets
                if (
                    type(begin) is int
                    and type(end) is int
                    and 0 <= begin <= end <= data_size
                    and all(type(d) is int and d >= 0 for d in shape)
                ):
                    bits = math.prod(shape) * bits_of[dtype]
                    # (an empty tensor of several dimensions may overflow: the slow path checks)
                    if bits & 7 == 0 and end - begin == bits >> 3 and (bits or len(shape) < 2):
                        append(
                            TensorMetadata(
                                name,
                                dtype,
                                tuple(shape),
                                data_offset + begin,
                                end - begin,
                                (begin, end),
                                path,
                            )
                        )
                        continue
        try:
            dtype, shape, begin, end = _entry_fields(name, entry, data_size)
        except ValueError as problem:
            raise format_error(path, str(problem)) from None
        append(
            TensorMetadata(
                name, dtype, tuple(shape), data_offset + begin, end - begin, (begin, end), path
            )
        )
    tensors.sort(key=lambda t: (t.data_offsets, t.name))
    _check_coverage(path, tensors, data_size)
    return SafetensorsHeader(
        path=path,
        file_size=file_size,
        header_size=header_size,
        tensors=tuple(tensors),
        metadata=metadata,
    )
