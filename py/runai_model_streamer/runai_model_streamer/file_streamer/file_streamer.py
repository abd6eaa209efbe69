"""FileStreamer: stream raw byte ranges of files into uint8 tensors."""

from __future__ import annotations

import time
from collections.abc import Iterator, Sequence
from typing import TYPE_CHECKING

import torch

from runai_model_streamer._common import EngineOwner, check_device, format_bytes, logger
from runai_model_streamer._config import memory_limit_from_env, parse_memory_limit
from runai_model_streamer._distributed import Share, SharedStream
from runai_model_streamer._stream import Describe, FileRanges, RangeStream
from runai_model_streamer.file_streamer.requests_iterator import FileChunks

if TYPE_CHECKING:
    from runai_model_streamer.s3_utils.s3_utils import S3Credentials

__all__ = ["FileStreamer", "check_requests"]


def check_requests(file_stream_requests: Sequence[FileChunks]) -> list[FileChunks]:
    requests = list(file_stream_requests)
    for request in requests:
        if not isinstance(request, FileChunks):
            raise TypeError(f"expected FileChunks, got {type(request).__name__}")
    return requests


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
        requests = check_requests(file_stream_requests)
        limit = (
            memory_limit_from_env()
            if memory_limit is None
            else parse_memory_limit(memory_limit, "memory_limit")
        )
        resolved_device = check_device(device)
        self.cancel()
        self._register([r.path for r in requests], credentials)
        self._start(requests, resolved_device, limit, owned)

    @property
    def streaming(self) -> bool:
        """Whether a stream was started and not yet fully collected or cancelled."""
        return self._stream is not None

    def cancel(self) -> None:
        """Cancels the stream in flight, if any (the engine stays)."""
        if self._stream is not None:
            self._stream.close()
            self._stream = None

    def _start(
        self,
        requests: Sequence[FileChunks],
        device: torch.device,
        memory_limit: int,
        owned: bool,
        describe: Describe | None = None,
        share: Share | None = None,
    ) -> None:
        """Starts the stream of ``requests`` (backends registered already); shared with the
        ranks of ``share`` when given (see DistributedStreamer)."""
        self.cancel()
        engine = self._get_engine()
        self._start_time = time.perf_counter()
        self._ids = [r.id for r in requests]
        self._device = device
        self.device_str = str(device)
        self.total_size = sum(sum(r.sizes) for r in requests)
        files = [FileRanges(r.path, r.offsets, r.sizes) for r in requests]
        describe = describe or self._describe
        stream: RangeStream | SharedStream
        if share is None:
            stream = RangeStream(
                engine, files, memory_limit, owned=owned, describe=describe, refresh=self._refresh
            )
        else:
            stream = SharedStream(
                share, engine, files, memory_limit, describe=describe, refresh=self._refresh
            )
        self._stream = stream
        stream.start()

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
        logger.debug(
            "streamed %s of %d requests in %.2f s (%.2f GB/s) to %s",
            format_bytes(self.total_size),
            len(ids),
            elapsed,
            self.total_size / elapsed / 1e9,
            self.device_str,
        )
