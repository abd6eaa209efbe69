"""ctypes declarations of streamer.h: the structs, numpy views of the arrays the engine fills,
and every function's signature (declared on the library when it is loaded)."""

from __future__ import annotations

import ctypes
from typing import Any

import numpy as np

#: runai_checksum_t
CHECKSUM_NONE = 0
CHECKSUM_CRC32C = 1
CHECKSUM_CRC32 = 2
CHECKSUM_CRC64NVME = 3


class Config(ctypes.Structure):
    _fields_ = [
        ("concurrency", ctypes.c_int32),
        ("chunk_bytesize", ctypes.c_int64),
        ("backend_timeout_ms", ctypes.c_int64),
        ("fs_strategy", ctypes.c_int32),
        ("io_uring", ctypes.c_int32),
    ]


class Range(ctypes.Structure):
    _fields_ = [
        ("offset", ctypes.c_uint64),
        ("size", ctypes.c_uint64),
        ("dst", ctypes.c_void_p),
    ]


class FileRequest(ctypes.Structure):
    _fields_ = [
        ("path", ctypes.c_char_p),
        ("ranges", ctypes.POINTER(Range)),
        ("num_ranges", ctypes.c_size_t),
        ("checksum", ctypes.c_int32),
        ("size", ctypes.c_uint64),
    ]


class Completion(ctypes.Structure):
    _fields_ = [
        ("request_id", ctypes.c_uint64),
        ("file_index", ctypes.c_uint32),
        ("range_index", ctypes.c_uint32),
        ("status", ctypes.c_int32),
        ("checksum", ctypes.c_uint64),
        ("message", ctypes.c_void_p),
    ]


OBJECT_INFO_TEXT_SIZE = 512


class ObjectInfo(ctypes.Structure):
    _fields_ = [
        ("size", ctypes.c_uint64),
        ("version", ctypes.c_char * OBJECT_INFO_TEXT_SIZE),
        ("checksums", ctypes.c_char * OBJECT_INFO_TEXT_SIZE),
    ]


LIST_ENTRY_FN = ctypes.CFUNCTYPE(ctypes.c_int, ctypes.c_char_p, ctypes.c_uint64, ctypes.c_void_p)
_PTR_FORMAT = "=u8" if ctypes.sizeof(ctypes.c_void_p) == 8 else "=u4"

#: numpy view of ``runai_range_t`` so range arrays are filled without per-element ctypes calls.
RANGE_DTYPE = np.dtype(
    {
        "names": ["offset", "size", "dst"],
        "formats": ["=u8", "=u8", _PTR_FORMAT],
        "offsets": [Range.offset.offset, Range.size.offset, Range.dst.offset],
        "itemsize": ctypes.sizeof(Range),
    }
)
#: numpy view of ``runai_completion_t``.
COMPLETION_DTYPE = np.dtype(
    {
        "names": ["request_id", "file_index", "range_index", "status", "checksum", "message"],
        "formats": ["=u8", "=u4", "=u4", "=i4", "=u8", _PTR_FORMAT],
        "offsets": [
            Completion.request_id.offset,
            Completion.file_index.offset,
            Completion.range_index.offset,
            Completion.status.offset,
            Completion.checksum.offset,
            Completion.message.offset,
        ],
        "itemsize": ctypes.sizeof(Completion),
    }
)

_c_int = ctypes.c_int
SIGNATURES: dict[str, tuple[Any, list[Any]]] = {
    "runai_streamer_version": (ctypes.c_char_p, []),
    "runai_streamer_api_version": (_c_int, []),
    "runai_streamer_status_name": (ctypes.c_char_p, [_c_int]),
    "runai_streamer_last_error": (ctypes.c_char_p, []),
    "runai_streamer_config_default": (_c_int, [ctypes.POINTER(Config)]),
    "runai_streamer_create": (_c_int, [ctypes.POINTER(Config), ctypes.POINTER(ctypes.c_void_p)]),
    "runai_streamer_destroy": (None, [ctypes.c_void_p]),
    "runai_streamer_register_backend": (
        _c_int,
        [
            ctypes.c_void_p,
            ctypes.c_char_p,
            ctypes.c_char_p,
            ctypes.POINTER(ctypes.c_char_p),
            ctypes.POINTER(ctypes.c_char_p),
            ctypes.c_size_t,
        ],
    ),
    "runai_streamer_file_size": (
        _c_int,
        [ctypes.c_void_p, ctypes.c_char_p, ctypes.POINTER(ctypes.c_uint64)],
    ),
    "runai_streamer_object_info": (
        _c_int,
        [ctypes.c_void_p, ctypes.c_char_p, ctypes.POINTER(ObjectInfo)],
    ),
    "runai_streamer_checksum": (
        _c_int,
        [
            ctypes.c_int32,
            ctypes.c_uint64,
            ctypes.c_void_p,
            ctypes.c_uint64,
            ctypes.POINTER(ctypes.c_uint64),
        ],
    ),
    "runai_streamer_checksum_combine": (
        _c_int,
        [
            ctypes.c_int32,
            ctypes.c_uint64,
            ctypes.c_uint64,
            ctypes.c_uint64,
            ctypes.POINTER(ctypes.c_uint64),
        ],
    ),
    "runai_streamer_list": (
        _c_int,
        [ctypes.c_void_p, ctypes.c_char_p, LIST_ENTRY_FN, ctypes.c_void_p],
    ),
    "runai_streamer_submit": (
        _c_int,
        [
            ctypes.c_void_p,
            ctypes.POINTER(FileRequest),
            ctypes.c_size_t,
            ctypes.POINTER(ctypes.c_uint64),
        ],
    ),
    "runai_streamer_wait": (
        _c_int,
        [
            ctypes.c_void_p,
            ctypes.c_uint64,
            ctypes.c_void_p,
            ctypes.c_size_t,
            ctypes.c_int64,
            ctypes.POINTER(ctypes.c_size_t),
        ],
    ),
    "runai_streamer_cancel": (_c_int, [ctypes.c_void_p, ctypes.c_uint64]),
    "runai_streamer_release": (_c_int, [ctypes.c_void_p, ctypes.c_uint64]),
    "runai_streamer_alloc": (ctypes.c_void_p, [ctypes.c_uint64, ctypes.c_int32]),
    "runai_streamer_free": (None, [ctypes.c_void_p, ctypes.c_uint64]),
}
