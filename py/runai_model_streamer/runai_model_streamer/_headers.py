"""Reading safetensors headers: local files with plain reads, URIs through the engine (a
:class:`~runai_model_streamer._stream.RangeStream`, so one completion loop serves headers and
tensors). The format rules are :mod:`runai_model_streamer._safetensors`'. For an object, the HEAD
that gives its size also says how it can be checked (:mod:`runai_model_streamer._verify`): its
check starts here, with the header's bytes."""

from __future__ import annotations

import os
import stat
from collections.abc import Callable, Sequence
from concurrent.futures import ThreadPoolExecutor

from runai_model_streamer._backends import uri_scheme
from runai_model_streamer._errors import (
    StreamerFileNotFoundError,
    StreamerIOError,
    StreamerIsADirectoryError,
    StreamerPermissionError,
)
from runai_model_streamer._native import Engine
from runai_model_streamer._safetensors import (
    SafetensorsHeader,
    check_header_length,
    format_error,
    parse_header,
)
from runai_model_streamer._settings import UNLIMITED
from runai_model_streamer._stream import FileRanges, RangeStream
from runai_model_streamer._verify import ObjectCheck, check_for

#: per path, for an object: its check (None: not checked) and why it is not checked
Integrity = tuple[ObjectCheck | None, str] | None

#: bytes read at once from the start of a file, so most headers take a single read
PREFIX_READ_SIZE = 1024 * 1024
#: same for object storage (one ranged GET per file for common headers)
REMOTE_PREFIX_READ_SIZE = 256 * 1024


def read_headers(
    paths: Sequence[str], engine: Callable[[], Engine], verify: str = "off"
) -> tuple[list[SafetensorsHeader], list[Integrity]]:
    """Headers of local files (plain reads) and URIs (concurrent reads through ``engine()``,
    called only when there is a URI), in order; and how each object is checked when read whole
    (``verify``: RUNAI_STREAMER_VERIFY's mode; None for local files)."""
    headers: list[SafetensorsHeader | None] = [None] * len(paths)
    integrity: list[Integrity] = [None] * len(paths)
    remote = [i for i, p in enumerate(paths) if uri_scheme(p) is not None]
    for index, path in enumerate(paths):
        if uri_scheme(path) is None:
            headers[index] = read_local_header(path)
    if remote:
        found = read_engine_headers(engine(), [paths[i] for i in remote], verify)
        for index, (header, checked) in zip(remote, found, strict=True):
            headers[index] = header
            integrity[index] = checked
    return [h for h in headers if h is not None], integrity


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
                raise format_error(path, f"could read only {len(prefix)} bytes (file changed?)")
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


def read_engine_headers(
    engine: Engine, paths: Sequence[str], verify: str = "off"
) -> list[tuple[SafetensorsHeader, tuple[ObjectCheck | None, str]]]:
    """Reads the headers of several files through the engine (object storage), concurrently:
    sizes (HEADs) in parallel, one read of each file's start, and one more for the rare large
    header. With each header: the object's check, seeded with the header's bytes (None: not
    checked, and why)."""
    if not paths:
        return []
    with ThreadPoolExecutor(max_workers=min(16, len(paths))) as pool:
        stored = list(pool.map(engine.object_info, paths))
    sizes = [info.size for info in stored]
    for path, size in zip(paths, sizes, strict=True):
        if size < 8:
            check_header_length(path, size, 0)

    prefix_sizes = [min(size, REMOTE_PREFIX_READ_SIZE) for size in sizes]
    prefixes = _read_ranges(engine, [(p, 0, n) for p, n in zip(paths, prefix_sizes, strict=True)])
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
    extra = _read_ranges(engine, rest) if rest else []
    raws = [prefix[8 : 8 + n] for prefix, n in zip(prefixes, header_sizes, strict=True)]
    for index, data in zip(rest_index, extra, strict=True):
        raws[index] += data
    found = []
    for path, info, n, raw, prefix in zip(paths, stored, header_sizes, raws, prefixes, strict=True):
        header = parse_header(path, info.size, n, raw)
        check, why = check_for(path, info, verify)
        if check is not None:
            check.add_bytes(0, prefix[:8] + raw)
        found.append((header, (check, why)))
    return found


def _read_ranges(engine: Engine, reads: Sequence[tuple[str, int, int]]) -> list[bytes]:
    """The bytes of ``(path, offset, size)`` ranges, read concurrently; raises the first error
    (naming the path and the header)."""
    files = [FileRanges(path, [offset], [size]) for path, offset, size in reads]
    found: list[bytes] = [b""] * len(reads)
    stream = RangeStream(engine, files, UNLIMITED, describe=lambda _file, _item: "its header")
    for position, _item, u8 in stream:
        found[position] = u8.numpy().tobytes()
    return found
