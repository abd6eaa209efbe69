"""FileStreamer and FileChunks: stream raw byte ranges of files into uint8 tensors."""

from __future__ import annotations

import time
from collections.abc import Iterator, Sequence
from typing import TYPE_CHECKING

import torch

from runai_model_streamer._backends import to_engine_path
from runai_model_streamer._common import EngineOwner, PathLike, check_device, format_bytes, logger
from runai_model_streamer._config import memory_limit_from_env, parse_memory_limit
from runai_model_streamer._stream import FileRanges, RangeStream

if TYPE_CHECKING:
    from runai_model_streamer.s3_utils.s3_utils import S3Credentials

__all__ = ["FileChunks", "FileStreamer"]


def _non_negative_ints(values: Sequence[int], what: str, path: str) -> list[int]:
    result = []
    for value in values:
        if isinstance(value, bool) or not isinstance(value, int) or value < 0:
            raise ValueError(f"{path}: {what} must be non-negative integers, got {value!r}")
        result.append(int(value))
    return result


class FileChunks:
    """Byte ranges ("chunks") of one file: chunk i is ``sizes[i]`` bytes at ``offsets[i]``.

    ``offsets`` may also be a single integer: the chunks then follow each other from there
    (the same as :meth:`contiguous`, and the form older callers use).
    """

    def __init__(
        self, id: int, path: PathLike, offsets: int | Sequence[int], sizes: Sequence[int]
    ) -> None:
        self.id = id
        self.path = to_engine_path(path)
        self.sizes = _non_negative_ints(sizes, "sizes", self.path)
        if isinstance(offsets, int) and not isinstance(offsets, bool):
            start = _non_negative_ints([offsets], "offsets", self.path)[0]
            self.offsets = []
            for size in self.sizes:
                self.offsets.append(start)
                start += size
        else:
            self.offsets = _non_negative_ints(offsets, "offsets", self.path)
        if len(self.offsets) != len(self.sizes):
            raise ValueError(
                f"{self.path}: {len(self.offsets)} offsets but {len(self.sizes)} sizes"
            )

    @classmethod
    def contiguous(cls, id: int, path: PathLike, offset: int, sizes: Sequence[int]) -> FileChunks:
        """Chunks that follow each other, the first at ``offset``."""
        return cls(id, path, offset, sizes)

    @property
    def chunks(self) -> list[int]:
        """The chunk sizes (alias of ``sizes``)."""
        return self.sizes

    @property
    def offset(self) -> int:
        """Offset of the first chunk (0 when there are none)."""
        return self.offsets[0] if self.offsets else 0

    def __repr__(self) -> str:
        return f"FileChunks(id={self.id!r}, path={self.path!r}, chunks={len(self.sizes)})"


class FileStreamer(EngineOwner):
    """Streams byte ranges of files (local paths or object-storage URIs).

    ``get_chunks()`` yields ``(file_id, chunk_index, tensor)`` where ``tensor`` is a 1-D uint8
    tensor of the chunk's bytes: requests in the given order, chunks within a request in
    completion order. Ownership and memory limit as in :class:`SafetensorsStreamer`
    (``memory_limit=None`` reads RUNAI_STREAMER_MEMORY_LIMIT).
    """

    def __init__(self) -> None:
        super().__init__()
        self.total_size = 0
        self.device_str: str | None = None
        self._ids: list[int] = []
        self._device = torch.device("cpu")
        self._start_time = 0.0

    def stream_files(
        self,
        file_stream_requests: Sequence[FileChunks],
        credentials: S3Credentials | None = None,
        device: str | torch.device | None = "cpu",
        memory_limit: int | None = None,
        owned: bool = True,
    ) -> None:
        """Starts reading every chunk of every request; collect with get_chunks()."""
        requests = list(file_stream_requests)
        for request in requests:
            if not isinstance(request, FileChunks):
                raise TypeError(f"expected FileChunks, got {type(request).__name__}")
        limit = (
            memory_limit_from_env()
            if memory_limit is None
            else parse_memory_limit(memory_limit, "memory_limit")
        )
        resolved_device = check_device(device)
        if self._stream is not None:
            self._stream.close()
            self._stream = None
        self._start_time = time.perf_counter()
        engine = self._register([r.path for r in requests], credentials)
        self._ids = [r.id for r in requests]
        self._device = resolved_device
        self.device_str = str(resolved_device)
        self.total_size = sum(sum(r.sizes) for r in requests)
        files = [FileRanges(r.path, r.offsets, r.sizes) for r in requests]
        self._stream = RangeStream(engine, files, limit, owned=owned, describe=self._describe)
        self._stream.start()

    def _describe(self, position: int, item: int) -> str:
        return f"chunk {item} of request {self._ids[position]!r}"

    def get_chunks(self) -> Iterator[tuple[int, int, torch.Tensor]]:
        stream = self._stream
        if stream is None:
            raise RuntimeError("get_chunks() called before stream_files()")
        ids = self._ids
        device = self._device
        to_device = device.type != "cpu"
        for position, item, u8 in stream:
            yield ids[position], item, (u8.to(device) if to_device else u8)
        if self._stream is stream:
            self._stream = None
        elapsed = max(time.perf_counter() - self._start_time, 1e-9)
        logger.info(
            "streamed %s of %d requests in %.2f s (%.2f GB/s) to %s",
            format_bytes(self.total_size),
            len(ids),
            elapsed,
            self.total_size / elapsed / 1e9,
            self.device_str,
        )
