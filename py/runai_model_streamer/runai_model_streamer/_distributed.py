"""Distributed streaming: the ranks of a group each read a share and exchange the shares.

Used by ``stream_files(..., is_distributed=True)``. :func:`share_for` (here) decides whether a
stream is shared and with which group; ``_collectives.agree`` checks that every rank of the
group asks for the same bytes (or tells the group that this rank failed before it could);
``_shared_stream.SharedStream`` reads this rank's stripes (see
:mod:`runai_model_streamer._partition`) and exchanges them round by round, yielding every chunk
to every rank in file order.

Settings (validated when a stream asks to be distributed; a bad value names the variable):

``RUNAI_STREAMER_DIST``
    ``auto`` (default): shared where it pays: NCCL with CUDA destinations, or any backend when
    every path is an object-storage URI (each rank would otherwise fetch the whole model over
    the network). ``1``: shared whenever torch.distributed has more than one rank in the group
    (how gloo with CPU destinations and local files is used). ``0``: never.
``RUNAI_STREAMER_DIST_GLOBAL``
    ``0`` (default): one group per node (ranks with the same hostname), so the exchange stays on
    the node's fastest links; ``1``: all ranks form one group.
``RUNAI_STREAMER_DIST_TIMEOUT``
    Seconds a rank waits for the others at any step of the exchange (default 600).
``RUNAI_STREAMER_DIST_BUFFER_BYTES``
    Bytes exchanged per round by the whole group (default 64 MiB; each rank reads
    ``1/ranks`` of it per round).

The cache (``RUNAI_STREAMER_CACHE_DIR``): the ranks read an object from their cache entries only
when every rank has one (``SafetensorsStreamer`` gathers the keys); a stream whose every object
is then a local file is shared under ``auto`` on NCCL only (:func:`shares_local_reads`); the
rank that takes an object's entry writes it from the exchanged rounds (``SharedStream``).

Memory: round buffers are handed out as the tensors themselves (each round's buffer is fresh,
so what a rank yields is never overwritten, and a rank's own pieces are copied straight into
its slice of it); beyond the tensors a rank holds its read-ahead (:data:`READ_AHEAD_STRIPES`
of its stripes, less under ``RUNAI_STREAMER_MEMORY_LIMIT``) and at most one chunk that crosses
a round boundary.
"""

from __future__ import annotations

import logging
import socket
from dataclasses import dataclass
from datetime import timedelta
from typing import Any

import torch

from runai_model_streamer._settings import (
    DIST,
    DIST_BUFFER_BYTES,
    DIST_BUFFER_MIN_BYTESIZE,
    DIST_GLOBAL,
    DIST_TIMEOUT,
)

logger = logging.getLogger("runai_model_streamer")

#: how many of its own stripes a rank reads ahead of the exchange
READ_AHEAD_STRIPES = 2
#: the smallest round (upstream's tests ask for 0)
MIN_ROUND_BYTES = 4096


@dataclass(frozen=True)
class DistSettings:
    mode: str  # "0", "1" or "auto"
    global_group: bool
    timeout: timedelta
    round_bytes: int

    @classmethod
    def from_env(cls) -> DistSettings:
        round_bytes = DIST_BUFFER_BYTES.read()
        if not DIST_BUFFER_BYTES.raw() and DIST_BUFFER_MIN_BYTESIZE.raw():
            round_bytes = DIST_BUFFER_MIN_BYTESIZE.read()  # upstream's name, when ours is unset
        return cls(
            DIST.read(),
            DIST_GLOBAL.read(),
            timedelta(seconds=DIST_TIMEOUT.read()),
            max(MIN_ROUND_BYTES, round_bytes),
        )


@dataclass(frozen=True)
class Share:
    """A stream shared by the ranks of ``group``: this process is ``rank`` of ``size``."""

    group: Any  # torch.distributed.ProcessGroup
    rank: int
    size: int
    global_ranks: tuple[int, ...]
    exchange_device: torch.device
    timeout: timedelta
    round_bytes: int

    def describe_rank(self, rank: int) -> str:
        return f"rank {self.global_ranks[rank]}"


def _backend_name(group: Any) -> str:
    import torch.distributed as dist

    return str(dist.get_backend(group)).lower()


#: the per-node groups, created once per default group and settings (creating a group is a
#: collective over every rank; see _group_for)
_group_cache: tuple[tuple[int, bool, float], Any] | None = None


def _group_for(settings: DistSettings) -> Any:
    """This rank's group: all ranks with ``RUNAI_STREAMER_DIST_GLOBAL=1``, else the ranks on
    this node (same hostname). Every rank must call this at the same point (it is collective
    the first time)."""
    global _group_cache
    import torch.distributed as dist

    world = dist.group.WORLD
    key = (id(world), settings.global_group, settings.timeout.total_seconds())
    if _group_cache is not None and _group_cache[0] == key:
        return _group_cache[1]
    size = dist.get_world_size()
    if settings.global_group:
        nodes = [list(range(size))]
    else:
        hosts: list[Any] = [None] * size
        dist.all_gather_object(hosts, socket.gethostname())
        order = list(dict.fromkeys(hosts))
        nodes = [[r for r in range(size) if hosts[r] == host] for host in order]
    mine = None
    me = dist.get_rank()
    for ranks in nodes:  # every rank creates every group, in the same order
        group = dist.new_group(ranks=ranks, timeout=settings.timeout)
        if me in ranks:
            mine = group
    _group_cache = (key, mine)
    return mine


def shares_local_reads(share: Share) -> bool:
    """Whether ``share`` is kept for a stream that reads local files only (every object a
    cache hit on every rank): as for local paths, ``auto`` shares them on NCCL/CUDA alone,
    where the exchange outruns each rank reading the file itself."""
    return share.exchange_device.type == "cuda" or DistSettings.from_env().mode != "auto"


def share_for(
    is_distributed: bool,
    device: torch.device,
    object_storage: bool,
    process_group: Any = None,
) -> Share | None:
    """The share of a stream (None: this rank streams everything itself). ``object_storage``:
    every path is an object-storage URI. ``process_group``: the group to share with (default:
    see :func:`_group_for`)."""
    if not is_distributed:
        return None
    settings = DistSettings.from_env()
    if settings.mode == "0":
        return None
    import torch.distributed as dist

    if not dist.is_available() or not dist.is_initialized():
        logger.debug("is_distributed=True, but torch.distributed is not initialized: not shared")
        return None
    if dist.get_world_size(process_group) <= 1:
        return None
    backend = _backend_name(process_group)
    cuda = device.type == "cuda"
    if cuda and "nccl" in backend:
        index = device.index if device.index is not None else torch.cuda.current_device()
        exchange_device = torch.device("cuda", index)
    elif backend == "nccl":
        logger.info(
            "is_distributed=True: the NCCL group cannot exchange %s tensors; not shared", device
        )
        return None
    else:
        exchange_device = torch.device("cpu")
    if settings.mode == "auto" and not (exchange_device.type == "cuda" or object_storage):
        logger.debug(
            "is_distributed=True: %s=auto shares NCCL/CUDA and object-storage streams only "
            "(set it to 1 to share this one)",
            DIST.name,
        )
        return None
    group = process_group if process_group is not None else _group_for(settings)
    size = dist.get_world_size(group)
    if size <= 1:
        return None
    global_ranks = tuple(dist.get_process_group_ranks(group))
    return Share(
        group,
        dist.get_rank(group),
        size,
        global_ranks,
        exchange_device,
        settings.timeout,
        settings.round_bytes,
    )
