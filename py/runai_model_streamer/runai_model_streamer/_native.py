"""Calling libstreamer: :class:`Engine` (one ``runai_streamer_t`` handle) and
:class:`NativeBuffer` (destination memory from the library's allocator). The library is found
and loaded by :mod:`runai_model_streamer._library`, declared by ``_abi``."""

from __future__ import annotations

import contextlib
import ctypes
import os
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from typing import Any

import numpy as np

from runai_model_streamer._abi import LIST_ENTRY_FN, Config, FileRequest, ObjectInfo, Range
from runai_model_streamer._errors import RunaiStreamerError
from runai_model_streamer._library import library
from runai_model_streamer._status import E_TIMEOUT
from runai_model_streamer._variables import check_environment


class NativeBuffer:
    """Memory from ``runai_streamer_alloc``, freed by ``runai_streamer_free`` when unreferenced.

    It exposes ``__array_interface__`` so ``numpy.asarray(buffer)`` views it (the array keeps
    the buffer alive as its ``base``); torch tensors made with ``torch.from_numpy`` keep the
    array alive in turn, so the memory lives exactly as long as the last tensor viewing it.
    """

    __slots__ = ("__weakref__", "_cdll", "_ptr", "size")

    def __init__(self, size: int, prefault_threads: int = 0) -> None:
        lib = library()
        self._cdll: ctypes.CDLL | None = None
        self._ptr = 0
        self.size = max(int(size), 1)
        ptr = lib.cdll.runai_streamer_alloc(self.size, prefault_threads)
        if not ptr:
            raise MemoryError(
                f"runai_streamer_alloc could not allocate {self.size} bytes: {lib.last_error()}"
            )
        self._ptr = int(ptr)
        self._cdll = lib.cdll

    @property
    def address(self) -> int:
        return self._ptr

    @property
    def __array_interface__(self) -> dict[str, Any]:
        return {"data": (self._ptr, False), "shape": (self.size,), "typestr": "|u1", "version": 3}

    def __del__(self) -> None:
        cdll, ptr = self._cdll, self._ptr
        if cdll is not None and ptr:
            self._ptr = 0
            with contextlib.suppress(Exception):  # interpreter shutdown
                cdll.runai_streamer_free(ptr, self.size)


# ---- checksums --------------------------------------------------------------------------------


def checksum(kind: int, data: bytes | memoryview, crc: int = 0) -> int:
    """The checksum ``kind`` (a ``CHECKSUM_*`` of ``_abi``) of ``data``, continuing from
    ``crc`` (any buffer: read in place, with the GIL released)."""
    lib = library()
    out = ctypes.c_uint64()
    if isinstance(data, bytes):
        where: bytes | int | None = data
        size = len(data)
    else:
        view = memoryview(data).cast("B")
        size = len(view)
        where = np.frombuffer(view, dtype=np.uint8).ctypes.data if size else None
    lib.check(lib.cdll.runai_streamer_checksum(kind, crc, where, size, ctypes.byref(out)))
    return int(out.value)


def checksum_combine(kind: int, crc_a: int, crc_b: int, size_b: int) -> int:
    """The checksum of A then B from that of A, that of B and B's size."""
    lib = library()
    out = ctypes.c_uint64()
    lib.check(
        lib.cdll.runai_streamer_checksum_combine(kind, crc_a, crc_b, size_b, ctypes.byref(out))
    )
    return int(out.value)


@dataclass(frozen=True)
class StoredObject:
    """What the storage says of a file or object (``runai_object_info_t``): its size, its
    version (``{"etag": ..., "version": ...}``, ``{"generation": ...}``; local files: mtime and
    inode) and the checksums it keeps of the whole object (``{"crc32c": "<hex>", ...}``)."""

    size: int
    version: Mapping[str, str]
    checksums: Mapping[str, str]


def _pairs(text: bytes) -> dict[str, str]:
    pairs: dict[str, str] = {}
    for entry in text.decode("ascii", "replace").split(","):
        name, _, value = entry.partition("=")
        if name and value:
            pairs[name] = value
    return pairs


# ---- the engine -------------------------------------------------------------------------------


@dataclass(frozen=True)
class EngineConfig:
    """``runai_streamer_config_t``: everything the engine needs, the environment's settings
    included (libstreamer reads them, see ``runai_streamer_config_default``)."""

    concurrency: int
    chunk_bytesize: int
    backend_timeout_ms: int
    fs_strategy: int  # RUNAI_FS_AUTO (0), RUNAI_FS_BUFFERED (1), RUNAI_FS_DIRECT (2)
    io_uring: int

    @classmethod
    def of(cls, config: Config) -> EngineConfig:
        return cls(*(getattr(config, field[0]) for field in Config._fields_))

    def to_c(self) -> Config:
        return Config(*(getattr(self, field[0]) for field in Config._fields_))


def default_config() -> EngineConfig:
    """Defaults overridden by the RUNAI_STREAMER_* environment variables (validated natively)."""
    lib = library()
    config = Config()
    lib.check(lib.cdll.runai_streamer_config_default(ctypes.byref(config)))
    return EngineConfig.of(config)


class Engine:
    """One ``runai_streamer_t`` handle. Thread-safe like the handle itself."""

    def __init__(self, config: EngineConfig | None = None) -> None:
        check_environment()  # warns once about variables that have no effect here
        self._lib = library()
        cdll = self._lib.cdll
        self._handle: int | None = None
        self.config = default_config() if config is None else config
        conf = self.config.to_c()
        handle = ctypes.c_void_p()
        self._lib.check(cdll.runai_streamer_create(ctypes.byref(conf), ctypes.byref(handle)))
        self._handle = handle.value
        self.backends: dict[str, tuple[str, tuple[tuple[str, str], ...]]] = {}

    @property
    def handle(self) -> int:
        if self._handle is None:
            raise RunaiStreamerError("the streamer was closed")
        return self._handle

    def close(self) -> None:
        """Cancels everything in flight and frees the native streamer (idempotent)."""
        handle, self._handle = self._handle, None
        if handle is not None:
            self._lib.cdll.runai_streamer_destroy(handle)

    def __del__(self) -> None:
        with contextlib.suppress(Exception):  # interpreter shutdown
            self.close()

    def register_backend(self, scheme: str, library_path: str, options: Mapping[str, str]) -> None:
        items = tuple(sorted((str(k), str(v)) for k, v in options.items()))
        if self.backends.get(scheme) == (library_path, items):
            return
        keys = (ctypes.c_char_p * max(len(items), 1))(*[k.encode() for k, _ in items])
        values = (ctypes.c_char_p * max(len(items), 1))(*[v.encode() for _, v in items])
        status = self._lib.cdll.runai_streamer_register_backend(
            self.handle, scheme.encode(), os.fsencode(library_path), keys, values, len(items)
        )
        self._lib.check(status, f"registering backend {library_path} for {scheme}://")
        self.backends[scheme] = (library_path, items)

    def file_size(self, path: str) -> int:
        size = ctypes.c_uint64()
        status = self._lib.cdll.runai_streamer_file_size(
            self.handle, encode_path(path), ctypes.byref(size)
        )
        self._lib.check(status, path)
        return int(size.value)

    def object_info(self, path: str) -> StoredObject:
        info = ObjectInfo()
        status = self._lib.cdll.runai_streamer_object_info(
            self.handle, encode_path(path), ctypes.byref(info)
        )
        self._lib.check(status, path)
        return StoredObject(int(info.size), _pairs(info.version), _pairs(info.checksums))

    def list(self, path: str) -> list[tuple[str, int]]:
        entries: list[tuple[str, int]] = []
        errors: list[BaseException] = []

        def entry(raw: bytes, size: int, _context: object) -> int:
            try:
                entries.append((os.fsdecode(raw), int(size)))
            except BaseException as error:  # pragma: no cover - defensive
                errors.append(error)
                return 1
            return 0

        callback = LIST_ENTRY_FN(entry)
        status = self._lib.cdll.runai_streamer_list(self.handle, encode_path(path), callback, None)
        if errors:
            raise errors[0]
        self._lib.check(status, path)
        return entries

    def submit(
        self,
        files: Sequence[tuple[str, np.ndarray]],
        checksum: int = 0,
        sizes: Sequence[int] | None = None,
    ) -> int:
        """Submits ranges (``RANGE_DTYPE`` arrays, kept alive by the caller until complete);
        ``checksum``: the ``CHECKSUM_*`` every completion carries of its range's bytes;
        ``sizes``: each object's size where the caller knows it from its store (0: the engine
        HEADs it before its first read)."""
        requests = (FileRequest * len(files))()
        encoded = []
        for index, (path, ranges) in enumerate(files):
            requests[index].size = sizes[index] if sizes is not None else 0
            raw = encode_path(path)
            encoded.append(raw)
            requests[index].path = raw
            requests[index].ranges = ctypes.cast(ranges.ctypes.data, ctypes.POINTER(Range))
            requests[index].num_ranges = len(ranges)
            requests[index].checksum = checksum
        request_id = ctypes.c_uint64()
        status = self._lib.cdll.runai_streamer_submit(
            self.handle, requests, len(files), ctypes.byref(request_id)
        )
        what = files[0][0] if len(files) == 1 else f"{len(files)} files"
        self._lib.check(status, what)
        return int(request_id.value)

    def wait(self, request_id: int, completions: np.ndarray, timeout_ms: int) -> int:
        """Fills ``completions`` (a COMPLETION_DTYPE array); returns how many (0 on timeout).

        Raises for any status other than OK and TIMEOUT (IDLE included: the caller tracks how
        many ranges it still expects, so nothing left to report is a bug).
        """
        if request_id <= 0:
            raise ValueError(f"invalid request id {request_id}")
        count = ctypes.c_size_t()
        status = self._lib.cdll.runai_streamer_wait(
            self.handle,
            request_id,
            completions.ctypes.data,
            len(completions),
            timeout_ms,
            ctypes.byref(count),
        )
        if status == E_TIMEOUT:
            return 0
        self._lib.check(status, f"waiting for request {request_id}")
        return int(count.value)

    def cancel(self, request_id: int) -> None:
        if self._handle is not None:  # destroy already cancelled everything
            self._lib.cdll.runai_streamer_cancel(self._handle, request_id)

    def release(self, request_id: int) -> None:
        if self._handle is not None:
            self._lib.cdll.runai_streamer_release(self._handle, request_id)


def completion_message(pointer: int) -> str:
    if not pointer:
        return ""
    return ctypes.string_at(pointer).decode("utf-8", "replace")


def encode_path(path: str) -> bytes:
    return os.fsencode(path)
