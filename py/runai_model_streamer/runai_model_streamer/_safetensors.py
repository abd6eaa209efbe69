"""Reading and validating safetensors headers (no torch needed here).

A safetensors file is an 8-byte little-endian header length N, N bytes of UTF-8 JSON mapping
tensor names to ``{"dtype", "shape", "data_offsets": [begin, end]}`` (offsets relative to the
data section, which starts at byte 8 + N), an optional ``__metadata__`` entry (ignored), then
the data. The whole header is validated before any tensor data is read; every problem raises
:class:`SafetensorsFormatError` naming the file.
"""

from __future__ import annotations

import json
import math
import os
import stat
from collections.abc import Sequence
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any, NamedTuple

import numpy as np

from runai_model_streamer._errors import (
    SafetensorsFormatError,
    StreamerFileNotFoundError,
    StreamerIOError,
    StreamerIsADirectoryError,
    StreamerPermissionError,
)

if TYPE_CHECKING:
    from runai_model_streamer._native import Engine

MAX_HEADER_SIZE = 100 * 1024 * 1024
#: bytes read at once from the start of a file, so most headers take a single read
PREFIX_READ_SIZE = 1024 * 1024
#: same for object storage (one ranged GET per file for common headers)
REMOTE_PREFIX_READ_SIZE = 256 * 1024

#: safetensors dtype -> (torch attribute name, item size in bytes)
DTYPES: dict[str, tuple[str, int]] = {
    "F64": ("float64", 8),
    "F32": ("float32", 4),
    "F16": ("float16", 2),
    "BF16": ("bfloat16", 2),
    "I64": ("int64", 8),
    "I32": ("int32", 4),
    "I16": ("int16", 2),
    "I8": ("int8", 1),
    "U64": ("uint64", 8),
    "U32": ("uint32", 4),
    "U16": ("uint16", 2),
    "U8": ("uint8", 1),
    "BOOL": ("bool", 1),
    "C64": ("complex64", 8),
    "F8_E4M3": ("float8_e4m3fn", 1),
    "F8_E5M2": ("float8_e5m2", 1),
    "F8_E4M3FNUZ": ("float8_e4m3fnuz", 1),
    "F8_E5M2FNUZ": ("float8_e5m2fnuz", 1),
    "F8_E8M0": ("float8_e8m0fnu", 1),
}


class TensorMetadata(NamedTuple):
    """One tensor of a safetensors file.

    ``offset`` is the absolute byte offset in the file, ``size`` its byte count,
    ``data_offsets`` the (begin, end) pair as written in the header.
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


def _error(path: str, problem: str) -> SafetensorsFormatError:
    return SafetensorsFormatError(f"{path}: not a valid safetensors file: {problem}")


def check_header_length(path: str, file_size: int, header_size: int) -> None:
    if file_size == 0:
        raise _error(path, "the file is empty")
    if file_size < 8:
        raise _error(path, f"the file has {file_size} bytes, fewer than the 8-byte header length")
    if header_size > MAX_HEADER_SIZE:
        raise _error(
            path, f"header length {header_size} is larger than the limit of {MAX_HEADER_SIZE} bytes"
        )
    if 8 + header_size > file_size:
        raise _error(
            path,
            f"header length {header_size} runs past the end of the file ({file_size} bytes)",
        )
    if header_size < 2:
        raise _error(path, f"header length {header_size} is too small for a JSON object")


def _no_duplicates(pairs: list[tuple[str, Any]]) -> dict[str, Any]:
    result = dict(pairs)
    if len(result) != len(pairs):
        seen: set[str] = set()
        for key, _ in pairs:
            if key in seen:
                raise ValueError(f"duplicate key {key!r}")
            seen.add(key)
    return result


def _is_int(value: Any) -> bool:
    return isinstance(value, int) and not isinstance(value, bool)


_ITEMSIZES = {name: size for name, (_, size) in DTYPES.items()}
_KEYS = {"dtype", "shape", "data_offsets"}


def _entry_problem(name: str, entry: Any, data_size: int) -> str:
    """What is wrong with one header entry (the slow, precise check), or "" when valid."""
    where = f"tensor {name!r}"
    if not isinstance(entry, dict):
        return f"{where}: entry is not a JSON object"
    missing = _KEYS - set(entry)
    if missing:
        return f"{where}: missing {', '.join(sorted(missing))}"
    unknown = set(entry) - _KEYS
    if unknown:
        return f"{where}: unexpected keys {', '.join(sorted(unknown))}"
    dtype, shape, offsets = entry["dtype"], entry["shape"], entry["data_offsets"]
    if not isinstance(dtype, str) or dtype not in DTYPES:
        return f"{where}: unknown dtype {dtype!r} (known: {', '.join(DTYPES)})"
    if not isinstance(shape, list) or not all(_is_int(d) and d >= 0 for d in shape):
        return f"{where}: shape {shape!r} is not a list of non-negative integers"
    if (
        not isinstance(offsets, list)
        or len(offsets) != 2
        or not all(_is_int(o) and o >= 0 for o in offsets)
    ):
        return f"{where}: data_offsets {offsets!r} is not [begin, end]"
    begin, end = offsets
    if end < begin:
        return f"{where}: data_offsets {offsets!r} end before they begin"
    expected = math.prod(shape) * _ITEMSIZES[dtype]
    if end - begin != expected:
        return (
            f"{where}: shape {shape} of {dtype} needs {expected} bytes but data_offsets "
            f"{offsets} span {end - begin}"
        )
    if end > data_size:
        return (
            f"{where}: data_offsets {offsets} end past the end of the data "
            f"({data_size} bytes after the header; file truncated?)"
        )
    return ""


def parse_header(path: str, file_size: int, header_size: int, raw: bytes) -> SafetensorsHeader:
    """Validates a whole header (``raw`` = the N JSON bytes) against the file size."""
    check_header_length(path, file_size, header_size)
    if len(raw) != header_size:
        raise _error(path, f"read {len(raw)} header bytes, expected {header_size} (file changed?)")
    try:
        text = raw.decode("utf-8")
    except UnicodeDecodeError as error:
        raise _error(path, f"the header is not UTF-8 ({error})") from None
    try:
        document = json.loads(text, object_pairs_hook=_no_duplicates)
    except (ValueError, RecursionError) as error:
        raise _error(path, f"the header is not valid JSON ({error})") from None
    if not isinstance(document, dict):
        raise _error(path, f"the header is a JSON {type(document).__name__}, not an object")

    data_offset = 8 + header_size
    data_size = file_size - data_offset
    metadata = document.pop("__metadata__", None)
    if metadata is not None and not isinstance(metadata, dict):
        raise _error(path, "__metadata__ is not a JSON object")
    itemsizes = _ITEMSIZES
    tensors: list[TensorMetadata] = []
    append = tensors.append
    for name, entry in document.items():
        # fast path for well-formed entries; anything unusual goes to _entry_problem
        if type(entry) is dict and len(entry) == 3:
            dtype = entry.get("dtype")
            shape = entry.get("shape")
            offsets = entry.get("data_offsets")
            if (
                type(dtype) is str
                and type(shape) is list
                and type(offsets) is list
                and len(offsets) == 2
                and dtype in itemsizes
            ):
                begin, end = offsets
                if (
                    type(begin) is int
                    and type(end) is int
                    and 0 <= begin <= end <= data_size
                    and all(type(d) is int and d >= 0 for d in shape)
                    and end - begin == math.prod(shape) * itemsizes[dtype]
                ):
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
        problem = _entry_problem(name, entry, data_size)
        raise _error(path, problem or f"tensor {name!r}: invalid entry {entry!r}")
    tensors.sort(key=lambda t: (t.offset, t.size, t.name))
    previous: TensorMetadata | None = None
    for tensor in tensors:
        if tensor.size == 0:
            continue
        if previous is not None and tensor.offset < previous.offset + previous.size:
            raise _error(
                path,
                f"tensors {previous.name!r} {list(previous.data_offsets)} and {tensor.name!r} "
                f"{list(tensor.data_offsets)} overlap",
            )
        previous = tensor
    return SafetensorsHeader(
        path=path,
        file_size=file_size,
        header_size=header_size,
        tensors=tuple(tensors),
        metadata=metadata,
    )


def _os_error(path: str, error: OSError) -> Exception:
    reason = error.strerror or str(error)
    if isinstance(error, FileNotFoundError):
        return StreamerFileNotFoundError(f"{path}: no such file ({reason})")
    if isinstance(error, PermissionError):
        return StreamerPermissionError(f"{path}: permission denied ({reason})")
    if isinstance(error, IsADirectoryError):
        return StreamerIsADirectoryError(f"{path}: is a directory, not a safetensors file")
    return StreamerIOError(f"{path}: {reason}")


def read_local_header(path: str) -> SafetensorsHeader:
    """Reads and validates the header of a local file with plain reads (no engine needed)."""
    try:
        # O_NONBLOCK: opening a FIFO must not wait for a writer (regular files ignore it)
        fd = os.open(path, os.O_RDONLY | os.O_NONBLOCK | getattr(os, "O_CLOEXEC", 0))
    except OSError as error:
        raise _os_error(path, error) from None
    try:
        info = os.fstat(fd)
        if stat.S_ISDIR(info.st_mode):
            raise StreamerIsADirectoryError(f"{path}: is a directory, not a safetensors file")
        if not stat.S_ISREG(info.st_mode):
            raise StreamerIOError(f"{path}: not a regular file")
        file_size = info.st_size
        if file_size < 8:
            check_header_length(path, file_size, 0)
        try:
            prefix = os.pread(fd, min(file_size, PREFIX_READ_SIZE), 0)
            if len(prefix) < 8:
                raise _error(path, f"could read only {len(prefix)} bytes (file changed?)")
            header_size = int.from_bytes(prefix[:8], "little")
            check_header_length(path, file_size, header_size)
            raw = prefix[8 : 8 + header_size]
            if len(raw) < header_size:
                raw += os.pread(fd, header_size - len(raw), 8 + len(raw))
        except OSError as error:
            raise _os_error(path, error) from None
    finally:
        os.close(fd)
    return parse_header(path, file_size, header_size, raw)


def read_engine_headers(engine: Engine, paths: Sequence[str]) -> list[SafetensorsHeader]:
    """Reads the headers of several files through the engine (object storage), concurrently:
    sizes in parallel, one read of each file's start, and one more for the rare large header."""
    from concurrent.futures import ThreadPoolExecutor

    if not paths:
        return []
    with ThreadPoolExecutor(max_workers=min(16, len(paths))) as pool:
        sizes = list(pool.map(engine.file_size, paths))
    for path, size in zip(paths, sizes, strict=True):
        if size < 8:
            check_header_length(path, size, 0)

    prefix_sizes = [min(size, REMOTE_PREFIX_READ_SIZE) for size in sizes]
    prefixes = _engine_read(engine, [(p, 0, n) for p, n in zip(paths, prefix_sizes, strict=True)])
    header_sizes = [int.from_bytes(prefix[:8], "little") for prefix in prefixes]
    rest: list[tuple[str, int, int]] = []
    rest_index: list[int] = []
    for index, (path, size, header_size, prefix) in enumerate(
        zip(paths, sizes, header_sizes, prefixes, strict=True)
    ):
        check_header_length(path, size, header_size)
        if 8 + header_size > len(prefix):
            rest.append((path, len(prefix), 8 + header_size - len(prefix)))
            rest_index.append(index)
    extra = _engine_read(engine, rest) if rest else []
    raws = [bytes(prefix[8 : 8 + n]) for prefix, n in zip(prefixes, header_sizes, strict=True)]
    for index, data in zip(rest_index, extra, strict=True):
        raws[index] += bytes(data)
    return [
        parse_header(path, size, n, raw)
        for path, size, n, raw in zip(paths, sizes, header_sizes, raws, strict=True)
    ]


def _engine_read(engine: Engine, reads: Sequence[tuple[str, int, int]]) -> list[memoryview]:
    """Reads ``(path, offset, size)`` ranges with one engine request; raises the first error."""
    from runai_model_streamer._native import (
        COMPLETION_DTYPE,
        OK,
        RANGE_DTYPE,
        completion_message,
        error_for_status,
    )

    total = sum(size for _, _, size in reads)
    memory = np.empty(max(total, 1), dtype=np.uint8)
    base = memory.ctypes.data
    files: list[tuple[str, np.ndarray]] = []
    cursor = 0
    views: list[memoryview] = []
    for path, offset, size in reads:
        ranges = np.zeros(1, dtype=RANGE_DTYPE)
        ranges["offset"] = offset
        ranges["size"] = size
        ranges["dst"] = base + cursor
        files.append((path, ranges))
        views.append(memoryview(memory[cursor : cursor + size]))
        cursor += size
    request = engine.submit(files)
    try:
        completions = np.zeros(len(reads), dtype=COMPLETION_DTYPE)
        remaining = len(reads)
        while remaining:
            count = engine.wait(request, completions[:remaining], 250)
            for record in completions[:count]:
                if int(record["status"]) != OK:
                    path = reads[int(record["file_index"])][0]
                    message = completion_message(int(record["message"]))
                    if path not in message:
                        message = f"{path}: {message}"
                    raise error_for_status(int(record["status"]), message)
            remaining -= count
    finally:
        engine.release(request)
    return views
