"""The collectives of a shared stream, with errors that say which rank failed and why:
:func:`agree` (every rank asks for the same bytes, or tells the group that it failed before it
could), :func:`failures_reported`, and the helpers the exchange rounds use."""

from __future__ import annotations

import contextlib
import hashlib
import socket
from collections.abc import Iterator, Sequence
from dataclasses import dataclass
from typing import Any

from runai_model_streamer._distributed import Share
from runai_model_streamer._errors import DistributedStreamError
from runai_model_streamer._plan import FileRanges
from runai_model_streamer._verify import ObjectCheck


@contextlib.contextmanager
def collective(share: Share, what: str) -> Iterator[None]:
    """Turns a failed or timed-out collective into a DistributedStreamError."""
    try:
        yield
    except (RuntimeError, TimeoutError) as error:
        if isinstance(error, DistributedStreamError):
            raise
        raise DistributedStreamError(
            f"{share.describe_rank(share.rank)}: {what} with the ranks {list(share.global_ranks)} "
            f"failed (within {share.timeout.total_seconds():g} s): {error}; another rank "
            "stopped or failed (its own error says why)"
        ) from error


def all_gather_object(share: Share, value: object, what: str) -> list[Any]:
    import torch.distributed as dist

    gathered: list[Any] = [None] * share.size
    with collective(share, what):
        dist.all_gather_object(gathered, value, group=share.group)
    return gathered


def failure_text(error: BaseException) -> str:
    return f"{type(error).__name__}: {error}"


def raise_failures(share: Share, failures: Sequence[tuple[int, str, str]], doing: str) -> None:
    listed = "; ".join(f"{share.describe_rank(r)} ({host}): {text}" for r, host, text in failures)
    raise DistributedStreamError(f"{doing} failed on another rank: {listed}")


@dataclass(frozen=True)
class Request:
    """What one rank asks for: enough to compare ranks and to say how they differ."""

    digest: str
    summary: str

    @classmethod
    def of(
        cls,
        files: Sequence[FileRanges],
        ids: Sequence[object],
        checks: Sequence[ObjectCheck | None] | None = None,
        stores: Sequence[str | None] | None = None,
    ) -> Request:
        """``checks``: how each file is verified; the ranks must agree on it too (each
        checksums its own pieces, and the CRCs are combined across ranks). ``stores``: for a
        file read from a cache entry, its object's URI (what the ranks compare: each rank's
        entry has a path of its own)."""
        checks = checks if checks is not None else [None] * len(files)
        paths = [
            store or file.path
            for file, store in zip(files, stores or [None] * len(files), strict=True)
        ]
        digest = hashlib.sha256()
        for file_id, file, path, check in zip(ids, files, paths, checks, strict=True):
            verified = (check.algorithm, check.expected) if check is not None else None
            digest.update(
                repr((file_id, path, list(file.offsets), list(file.sizes), verified)).encode()
            )
        names = ", ".join(paths[:3]) + (", ..." if len(files) > 3 else "")
        chunks = sum(len(f.sizes) for f in files)
        total = sum(sum(f.sizes) for f in files)
        verified_count = sum(check is not None for check in checks)
        summary = f"{len(files)} files ({names}), {chunks} chunks, {total} bytes"
        summary += f", {verified_count} verified"
        return cls(digest.hexdigest(), summary)


def gather_unless_failed(
    share: Share, value: object, failure: BaseException | None = None, what: str = ""
) -> list[Any]:
    """Every rank's ``value``, or (on a rank that failed) its error, told to the others.
    Raises on every rank when a rank failed, but the failed rank itself returns (to raise its
    own error). Every collective of a stream's preparation goes through this, so a rank that
    failed before any of them (:func:`failures_reported`) meets the others at the next."""
    host = socket.gethostname()
    payload = (host, failure_text(failure) if failure is not None else None, value)
    gathered = all_gather_object(share, payload, what or "agreeing on the stream")
    failures = [(r, h, text) for r, (h, text, _) in enumerate(gathered) if text is not None]
    if failure is None and failures:
        raise_failures(share, failures, "preparing the distributed stream")
    return [value for _, _, value in gathered]


def agree(share: Share, request: Request | None, failure: BaseException | None = None) -> None:
    """Every rank of the group calls this before a shared stream starts, with what it asks for
    or with the error that stopped it. Raises on every rank when a rank failed (the failed rank
    itself returns, to raise its own error) or when the ranks ask for different bytes."""
    gathered = gather_unless_failed(share, request, failure)
    if failure is not None:
        return
    digests = {req.digest for req in gathered}
    if len(digests) > 1:
        listed = "; ".join(
            f"{share.describe_rank(r)}: {req.summary}" for r, req in enumerate(gathered)
        )
        raise DistributedStreamError(
            f"the ranks of the group asked for different data ({listed}); every rank of a "
            "distributed stream must ask for the same files (and tensor_names) and verify them "
            "alike (the same RUNAI_STREAMER_VERIFY; objects unchanged between the ranks' HEADs)"
        )


@contextlib.contextmanager
def failures_reported(share: Share | None) -> Iterator[None]:
    """Runs a rank's preparation of a shared stream: an error is told to the group (see
    :func:`agree`) before it propagates, so the other ranks raise instead of waiting."""
    try:
        yield
    except BaseException as error:
        if share is not None and isinstance(error, Exception):
            with contextlib.suppress(DistributedStreamError):
                agree(share, None, error)
        raise
