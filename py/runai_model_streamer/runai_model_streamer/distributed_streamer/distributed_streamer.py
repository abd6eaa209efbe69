"""DistributedStreamer: byte-range streaming shared between the ranks of a torch.distributed
group.

The interface is upstream's (``runai_model_streamer.distributed_streamer.DistributedStreamer``):
a context manager with ``stream_files(file_stream_requests, credentials, device,
is_distributed)`` and ``get_chunks()``, which yields ``(file_id, chunk_index, tensor)`` like
:class:`~runai_model_streamer.file_streamer.FileStreamer`. With ``is_distributed=True`` (and
torch.distributed initialized with more than one rank in the group) each rank reads a share of
the bytes and the shares are exchanged, so every rank gets every chunk while the storage serves
each byte once; otherwise this process reads everything. When it is shared, and the settings
that change it, are described in :mod:`runai_model_streamer._distributed`.

Every rank of a group must ask for the same chunks, at the same point of the program. Chunks
then come in request order, a request's chunks by offset; they are the caller's (owned).
"""

from __future__ import annotations

from collections.abc import Iterator, Sequence
from types import TracebackType
from typing import TYPE_CHECKING, Any

import torch

from runai_model_streamer._backends import all_object_storage
from runai_model_streamer._common import check_device
from runai_model_streamer._config import memory_limit_from_env, parse_memory_limit
from runai_model_streamer._distributed import Request, Share, agree, failures_reported, share_for
from runai_model_streamer._stream import Describe, FileRanges
from runai_model_streamer.file_streamer.file_streamer import FileStreamer, check_requests
from runai_model_streamer.file_streamer.requests_iterator import FileChunks

if TYPE_CHECKING:
    from runai_model_streamer.s3_utils.s3_utils import S3Credentials

__all__ = ["DistributedStreamer"]


class DistributedStreamer:
    """Streams byte ranges of files, shared between ranks on request (see the module doc).

    ``process_group``: the torch.distributed group whose ranks share the reads (default: the
    ranks on this node, or all ranks with ``RUNAI_STREAMER_DIST_GLOBAL=1``).
    """

    def __init__(self, process_group: Any = None) -> None:
        self.file_streamer = FileStreamer()
        self.process_group = process_group
        #: whether the last stream_files() shares its reads with other ranks
        self.is_distributed = False

    def __enter__(self) -> DistributedStreamer:
        self.file_streamer.__enter__()
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
        self.file_streamer.close()

    def share_for(
        self, is_distributed: bool, device: torch.device, paths: Sequence[object]
    ) -> Share | None:
        """Whether (and with whom) a stream of ``paths`` to ``device`` is shared; collective
        the first time a group is needed, so every rank calls it at the same point."""
        return share_for(is_distributed, device, all_object_storage(paths), self.process_group)

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
            limit = (
                memory_limit_from_env()
                if memory_limit is None
                else parse_memory_limit(memory_limit, "memory_limit")
            )
            self.file_streamer.cancel()
            self.file_streamer._register([r.path for r in requests], credentials)
        self.start(share, requests, resolved_device, limit, owned)

    def start(
        self,
        share: Share | None,
        requests: Sequence[FileChunks],
        device: torch.device,
        memory_limit: int,
        owned: bool = True,
        describe: Describe | None = None,
    ) -> None:
        """Starts a stream whose backends are registered (the second half of stream_files, for
        SafetensorsStreamer): the ranks of ``share`` first agree on what they stream."""
        if share is not None:
            files = [FileRanges(r.path, r.offsets, r.sizes) for r in requests]
            agree(share, Request.of(files, [r.id for r in requests]))
        self.is_distributed = share is not None
        self.file_streamer._start(requests, device, memory_limit, owned, describe, share)

    def get_chunks(self) -> Iterator[tuple[int, int, torch.Tensor]]:
        """Yields ``(file_id, chunk_index, tensor)`` for every chunk streamed."""
        yield from self.file_streamer.get_chunks()
