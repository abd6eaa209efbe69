"""The readers of byte ranges: :class:`ChunkReader` and the two public classes built on it.

:class:`ChunkReader` owns the native engine (created lazily) and the stream in flight: it
registers the backends a stream needs, decides whether a stream is shared with the other ranks
of a torch.distributed group, and yields ``(file_id, chunk_index, tensor)``. Every streamer of
the package reads through one:

- :class:`FileStreamer` reads alone (upstream's class);
- :class:`DistributedStreamer` shares the reads on request (upstream's class, see below);
- ``SafetensorsStreamer`` plans tensors and reads them through a ``DistributedStreamer``.

Distributed streaming (``DistributedStreamer.stream_files(..., is_distributed=True)``, with
torch.distributed initialized and more than one rank in the group): each rank reads a share of
the bytes and the shares are exchanged, so every rank gets every chunk while the storage serves
each byte once; otherwise this process reads everything. When it is shared, and the settings
that change it, are described in :mod:`runai_model_streamer._distributed`. Every rank of a group
must ask for the same chunks, at the same point of the program; chunks then come in request
order, a request's chunks by offset, and they are the caller's (owned).
"""

from __future__ import annotations

import dataclasses
import functools
import time
from collections.abc import Callable, Iterator, Sequence
from types import TracebackType
from typing import TYPE_CHECKING, Any, TypeVar

import torch

from runai_model_streamer._backends import all_object_storage, register_backends
from runai_model_streamer._cache_entry import CacheWriter
from runai_model_streamer._collectives import Request, agree, failures_reported
from runai_model_streamer._common import check_device, format_bytes, logger
from runai_model_streamer._distributed import Share, share_for
from runai_model_streamer._file_chunks import FileChunks
from runai_model_streamer._logging import check_log_level_env
from runai_model_streamer._native import Engine, default_config
from runai_model_streamer._plan import FileRanges
from runai_model_streamer._settings import MEMORY_LIMIT, OBJ_CONCURRENCY, parse_memory_limit
from runai_model_streamer._shared_stream import SharedStream
from runai_model_streamer._stream import Describe, Piece, RangeStream, chunks_of
from runai_model_streamer._verify import ObjectCheck

if TYPE_CHECKING:
    from runai_model_streamer._credentials import S3Credentials

__all__ = ["ChunkReader", "DistributedStreamer", "FileStreamer", "check_requests"]

_Reader = TypeVar("_Reader", bound="ChunkReader")


def check_requests(file_stream_requests: Sequence[FileChunks]) -> list[FileChunks]:
    requests = list(file_stream_requests)
    for request in requests:
        if not isinstance(request, FileChunks):
            raise TypeError(f"expected FileChunks, got {type(request).__name__}")
    return requests


def memory_limit_of(memory_limit: int | None) -> int:
    """The argument's limit, validated; None: RUNAI_STREAMER_MEMORY_LIMIT's."""
    if memory_limit is None:
        return MEMORY_LIMIT.read()
    return parse_memory_limit(memory_limit, "memory_limit")


def object_concurrency_for(paths: Sequence[str], usual: int) -> int | None:
    """The worker count a stream of ``paths`` needs: RUNAI_STREAMER_OBJ_CONCURRENCY when it is
    set and every path is an object-storage URI, ``usual`` when it is set and some path is not
    (an engine made for objects is replaced), None (any) when it is unset."""
    concurrency = OBJ_CONCURRENCY.read()
    if concurrency is None:
        return None
    return concurrency if all_object_storage(paths) else usual


class ChunkReader:
    """Reads :class:`FileChunks` into 1-D uint8 tensors, alone or shared with the ranks of
    ``process_group`` (default: the ranks on this node, or all ranks with
    ``RUNAI_STREAMER_DIST_GLOBAL=1``). The context manager and close() end the stream in
    flight and free the native streamer."""

    def __init__(self, process_group: Any = None) -> None:
        self.process_group = process_group
        #: whether the last stream shares its reads with other ranks
        self.is_distributed = False
        self.total_size = 0
        self.device_str: str | None = None
        self._engine: Engine | None = None
        self._stream: RangeStream | SharedStream | None = None
        self._refresh: Callable[[], None] | None = None
        self._ids: list[int] = []
        self._device = torch.device("cpu")
        self._start_time = 0.0

    def __enter__(self: _Reader) -> _Reader:
        self.engine()
        return self

    def __exit__(
        self,
        exc_type: type[BaseException] | None,
        exc_value: BaseException | None,
        traceback: TracebackType | None,
    ) -> None:
        self.close()

    def close(self) -> None:
        """Cancels any stream in flight and frees the native streamer."""
        self.cancel()
        engine, self._engine = self._engine, None
        if engine is not None:
            engine.close()

    @property
    def streaming(self) -> bool:
        """Whether a stream was started and not yet fully collected or cancelled."""
        return self._stream is not None

    def cancel(self) -> None:
        """Cancels the stream in flight, if any (the engine stays)."""
        stream, self._stream = self._stream, None
        if stream is not None:
            stream.close()

    def engine(self, concurrency: int | None = None) -> Engine:
        """The engine (created on first use); ``concurrency``: the worker count it must have
        (None: any), a different one replaces it."""
        engine = self._engine
        if engine is not None and concurrency not in (None, engine.config.concurrency):
            self.close()
            engine = None
        if engine is None:
            check_log_level_env()  # the native library validates its own variables
            config = None
            if concurrency is not None:
                config = dataclasses.replace(default_config(), concurrency=concurrency)
            engine = self._engine = Engine(config)
        return engine

    def prepare(
        self, paths: Sequence[str], credentials: S3Credentials | None, register: bool = True
    ) -> Engine:
        """Cancels the stream in flight and readies the engine for ``paths``: the worker count
        they need, their backends registered with ``credentials`` (``register=False``: the
        caller registers them, e.g. in a thread while cached objects are read)."""
        self.cancel()
        engine = self.engine(object_concurrency_for(paths, default_config().concurrency))
        if register:
            register_backends(engine, paths, credentials)
        # what a long stream calls to pick up refreshed credentials (see RangeStream)
        self._refresh = functools.partial(register_backends, engine, list(paths), credentials)
        return engine

    def share_for(
        self, is_distributed: bool, device: torch.device, paths: Sequence[object]
    ) -> Share | None:
        """Whether (and with whom) a stream of ``paths`` to ``device`` is shared; collective
        the first time a group is needed, so every rank calls it at the same point."""
        return share_for(is_distributed, device, all_object_storage(paths), self.process_group)

    def start(
        self,
        share: Share | None,
        requests: Sequence[FileChunks],
        device: torch.device,
        memory_limit: int,
        owned: bool = True,
        describe: Describe | None = None,
        checks: Sequence[ObjectCheck | None] | None = None,
        writers: Sequence[CacheWriter | None] | None = None,
        stores: Sequence[str | None] | None = None,
        object_sizes: Sequence[int] | None = None,
        starts: Sequence[bytes] | None = None,
    ) -> None:
        """Starts the stream of ``requests`` (after :meth:`prepare`); the ranks of ``share``
        first agree on what they stream. ``checks``: per request, the check of its object when
        it is read whole; ``writers``: the cache entry it is written to; ``stores``: for a
        request that reads a cache entry, its object's URI in the store; ``object_sizes``: the
        size of each request's object as its store told it (no HEAD before the first read);
        ``starts``: each file's first bytes, read already (its chunks within them are copied
        from there; a shared stream reads them again)."""
        sizes = object_sizes if object_sizes is not None else [0] * len(requests)
        firsts = starts if starts is not None else [b""] * len(requests)
        files = [
            FileRanges(r.path, r.offsets, r.sizes, size, first)
            for r, size, first in zip(requests, sizes, firsts, strict=True)
        ]
        if share is not None:
            agree(share, Request.of(files, [r.id for r in requests], checks, stores))
        self.cancel()
        engine = self.engine()
        self.is_distributed = share is not None
        self._start_time = time.perf_counter()
        self._ids = [r.id for r in requests]
        self._device = device
        self.device_str = str(device)
        self.total_size = sum(sum(r.sizes) for r in requests)
        describe = describe or self._describe
        stream: RangeStream | SharedStream
        if share is None:
            stream = RangeStream(
                engine,
                files,
                memory_limit,
                owned=owned,
                describe=describe,
                refresh=self._refresh,
                checks=checks,
                writers=writers,
                stores=stores,
            )
        else:
            stream = SharedStream(
                share,
                engine,
                files,
                memory_limit,
                describe=describe,
                refresh=self._refresh,
                checks=checks,
                writers=writers,
                stores=stores,
            )
        self._stream = stream
        stream.start()

    def _describe(self, position: int, item: int) -> str:
        return f"chunk {item} of request {self._ids[position]!r}"

    def get_chunks(self) -> Iterator[tuple[int, int, torch.Tensor]]:
        """Yields ``(file_id, chunk_index, tensor)`` for every chunk streamed."""
        ids = self._ids
        device = self._device
        to_device = device.type != "cpu"
        for position, item, u8 in chunks_of(self.pieces()):
            yield ids[position], item, (u8.to(device) if to_device else u8)

    def pieces(self) -> Iterator[Piece]:
        """Where each chunk landed, ``(request position, chunk index, buffer, start, size)``:
        its bytes are ``buffer[start:start + size]``, on the CPU or already on the device."""
        stream = self._stream
        if stream is None:
            raise RuntimeError("get_chunks() called before stream_files()")
        yield from stream.pieces()
        if self._stream is stream:
            self._stream = None
        elapsed = max(time.perf_counter() - self._start_time, 1e-9)
        logger.debug(
            "streamed %s of %d requests in %.2f s (%.2f GB/s) to %s",
            format_bytes(self.total_size),
            len(self._ids),
            elapsed,
            self.total_size / elapsed / 1e9,
            self.device_str,
        )


class FileStreamer(ChunkReader):
    """Streams byte ranges of files (local paths or object-storage URIs).

    ``get_chunks()`` yields ``(file_id, chunk_index, tensor)`` where ``tensor`` is a 1-D uint8
    tensor of the chunk's bytes: requests in the given order, chunks within a request in
    completion order. Ownership and memory limit as in :class:`SafetensorsStreamer`
    (``memory_limit=None`` reads RUNAI_STREAMER_MEMORY_LIMIT).
    """

    def __init__(self) -> None:
        super().__init__()

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
        limit = memory_limit_of(memory_limit)
        resolved_device = check_device(device)
        self.prepare([r.path for r in requests], credentials)
        self.start(None, requests, resolved_device, limit, owned)


class DistributedStreamer(ChunkReader):
    """Streams byte ranges of files, shared between ranks on request (see the module doc).

    ``process_group``: the torch.distributed group whose ranks share the reads (default: the
    ranks on this node, or all ranks with ``RUNAI_STREAMER_DIST_GLOBAL=1``).
    """

    def stream_files(
        self,
        file_stream_requests: Sequence[FileChunks],
        credentials: S3Credentials | None = None,
        device: str | torch.device | None = "cpu",
        is_distributed: bool = False,
        memory_limit: int | None = None,
        owned: bool = True,
    ) -> None:
        """Starts reading every chunk of every request; collect with get_chunks()."""
        resolved_device = check_device(device)
        requests = list(file_stream_requests)
        paths = [getattr(r, "path", None) for r in requests]
        share = self.share_for(is_distributed, resolved_device, paths)
        with failures_reported(share):
            requests = check_requests(requests)
            limit = memory_limit_of(memory_limit)
            self.prepare([r.path for r in requests], credentials)
        self.start(share, requests, resolved_device, limit, owned)
