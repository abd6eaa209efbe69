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
import functools
import gc
import itertools
import math
import operator
from collections.abc import Iterator
from dataclasses import dataclass
from typing import Any, NamedTuple

from runai_model_streamer._errors import (
    SafetensorsFormatError,
)
from runai_model_streamer._header_json import decode_header

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


def _decode(path: str, raw: bytes) -> dict[str, Any]:
    try:
        return decode_header(raw)
    except ValueError as error:
        raise format_error(path, str(error)) from None


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
    spans = list(map(operator.itemgetter(5), tensors))
    begins = list(map(operator.itemgetter(0), spans))
    ends = list(map(operator.itemgetter(1), spans))
    if begins and begins[0] == 0 and ends[-1] == data_size and begins[1:] == ends[:-1]:
        return  # (checked in C; the loop below finds what is wrong, and says it)
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
    tensors = _plain_entries(path, document, data_offset, data_size)
    if tensors is None:
        tensors = _entries_one_by_one(path, document, data_offset, data_size)
    tensors.sort(key=_BY_OFFSETS_THEN_NAME)
    _check_coverage(path, tensors, data_size)
    return SafetensorsHeader(
        path=path,
        file_size=file_size,
        header_size=header_size,
        tensors=tuple(tensors),
        metadata=metadata,
    )


#: TensorMetadata from its fields as one tuple, made in C (its __new__ is Python: 1 us a call)
_NEW_METADATA = functools.partial(tuple.__new__, TensorMetadata)
#: TensorMetadata's (data_offsets, name): its sort key
_BY_OFFSETS_THEN_NAME = operator.itemgetter(5, 0)


def _plain_entries(
    path: str, document: dict[str, Any], data_offset: int, data_size: int
) -> list[TensorMetadata] | None:
    """Every entry checked at once, each check one loop in C (100,000 tensors: a few ms a
    check), when all are plain objects of the three fields that pass; None when any is not,
    for the precise check one by one (which names what is wrong)."""
    entries = list(document.values())
    if set(map(type, entries)) != {dict} or set(map(len, entries)) != {3}:
        return None
    try:
        dtypes = list(map(operator.itemgetter("dtype"), entries))
        shapes = list(map(operator.itemgetter("shape"), entries))
        offsets = list(map(operator.itemgetter("data_offsets"), entries))
    except KeyError:
        return None
    if (
        set(map(type, dtypes)) != {str}
        or not set(dtypes).issubset(_BITS)
        or set(map(type, shapes)) != {list}
        or set(map(type, offsets)) != {list}
        or set(map(len, offsets)) != {2}
    ):
        return None
    begins = list(map(operator.itemgetter(0), offsets))
    ends = list(map(operator.itemgetter(1), offsets))
    dimensions = list(itertools.chain.from_iterable(shapes))
    if not set(map(type, itertools.chain(begins, ends, dimensions))) <= {int}:
        return None
    if min(begins) < 0 or max(ends) > data_size or min(dimensions, default=0) < 0:
        return None
    sizes = list(map(operator.sub, ends, begins))
    bits = list(map(operator.mul, map(math.prod, shapes), map(_BITS.__getitem__, dtypes)))
    if min(sizes) < 0 or any(map(operator.and_, bits, itertools.repeat(7))):
        return None
    if list(map(operator.rshift, bits, itertools.repeat(3))) != sizes:
        return None
    # an empty tensor of several dimensions may overflow the reference's count: checked there
    if 0 in bits and any(b == 0 and len(s) > 1 for b, s in zip(bits, shapes, strict=True)):
        return None
    fields = zip(
        document,
        dtypes,
        map(tuple, shapes),
        map(operator.add, begins, itertools.repeat(data_offset)),
        sizes,
        zip(begins, ends, strict=True),
        itertools.repeat(path),
    )
    return list(map(_NEW_METADATA, fields))


def _entries_one_by_one(
    path: str, document: dict[str, Any], data_offset: int, data_size: int
) -> list[TensorMetadata]:
    tensors = []
    for name, entry in document.items():
        try:
            dtype, shape, begin, end = _entry_fields(name, entry, data_size)
        except ValueError as problem:
            raise format_error(path, str(problem)) from None
        tensors.append(
            TensorMetadata(
                name, dtype, tuple(shape), data_offset + begin, end - begin, (begin, end), path
            )
        )
    return tensors
