"""DistributedStreamer: byte-range streaming that may be shared between the ranks of a group.

The interface is upstream's (``runai_model_streamer.distributed_streamer.DistributedStreamer``):
a context manager with ``stream_files(file_stream_requests, credentials, device,
is_distributed)`` and ``get_chunks()``, which yields ``(file_id, chunk_index, tensor)`` like
:class:`~runai_model_streamer.file_streamer.FileStreamer`.

Today every process reads every chunk it asks for: ``is_distributed=True`` is accepted and
logged, and ``is_distributed`` stays False. Splitting the reads between the ranks of a
torch.distributed group and exchanging the shares is the next step of this class.
"""

from __future__ import annotations

from collections.abc import Iterator, Sequence
from types import TracebackType
from typing import TYPE_CHECKING

import torch

from runai_model_streamer._common import logger
from runai_model_streamer.file_streamer.file_streamer import FileStreamer
from runai_model_streamer.file_streamer.requests_iterator import FileChunks

if TYPE_CHECKING:
    from runai_model_streamer.s3_utils.s3_utils import S3Credentials

__all__ = ["DistributedStreamer"]


class DistributedStreamer:
    """Streams byte ranges of files; see the module docstring for what ``is_distributed`` does."""

    def __init__(self) -> None:
        self.file_streamer = FileStreamer()
        #: whether the last stream_files() shares its reads between ranks (not yet: always False)
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

    def stream_files(
        self,
        file_stream_requests: Sequence[FileChunks],
        credentials: S3Credentials | None = None,
        device: str | torch.device | None = "cpu",
        is_distributed: bool = False,
    ) -> None:
        """Starts reading every chunk of every request; collect with get_chunks()."""
        if is_distributed:
            logger.debug("is_distributed=True: this process reads every requested chunk itself")
        self.is_distributed = False
        self.file_streamer.stream_files(file_stream_requests, credentials, device)

    def get_chunks(self) -> Iterator[tuple[int, int, torch.Tensor]]:
        """Yields ``(file_id, chunk_index, tensor)`` for every chunk streamed."""
        yield from self.file_streamer.get_chunks()
