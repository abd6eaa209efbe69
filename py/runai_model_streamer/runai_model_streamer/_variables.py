"""Every ``RUNAI_STREAMER_*`` environment variable that this project or upstream
runai-model-streamer (up to 0.17) reads, and the check that tells a user about the others.

- :data:`OURS`: the variables this project reads (core, plugins, test plugin; defined in
  :mod:`runai_model_streamer._settings`), by name.
- :data:`UPSTREAM`: upstream's variables, each mapped onto ours (it keeps its meaning here, and
  the note says where) or without an effect here (the note says why and what to set instead).
- :func:`check_environment` logs one WARNING per process for each upstream variable that is set
  and has no effect here, and for each set ``RUNAI_STREAMER_*`` name that no version knows,
  with the closest known name: a typo in a timeout would otherwise go unnoticed.

The README's table of variables is checked against this module by the tests, and so is every
variable name the sources read.
"""

from __future__ import annotations

import difflib
import logging
import os
import threading
from collections.abc import Mapping
from dataclasses import dataclass

from runai_model_streamer._settings import ALL, PREFIX


@dataclass(frozen=True)
class UpstreamVariable:
    """An upstream variable: ``mapped`` onto ours (``note`` says onto what), or not (``note``
    says why it has no effect here and what to set instead)."""

    mapped: bool
    note: str


def _mapped(note: str) -> UpstreamVariable:
    return UpstreamVariable(True, note)


def _no_effect(note: str) -> UpstreamVariable:
    return UpstreamVariable(False, note)


#: upstream runai-model-streamer's variables that are not ours by name
UPSTREAM: dict[str, UpstreamVariable] = {
    PREFIX + "S3_MAX_RETRIES": _mapped(
        "retries after the first attempt: RUNAI_STREAMER_S3_MAX_ATTEMPTS is this + 1 when "
        "unset (0: the default)"
    ),
    PREFIX + "OVERRIDE_ENDPOINT_URL": _mapped(
        "0: the endpoint variables (AWS_ENDPOINT_URL...) are not used, S3Credentials.endpoint "
        "still is"
    ),
    PREFIX + "DIST_BUFFER_MIN_BYTESIZE": _mapped(
        "bytes a group exchanges per round, as RUNAI_STREAMER_DIST_BUFFER_BYTES when that is "
        "unset (at least 4096)"
    ),
    PREFIX + "S3_TIMEOUT": _no_effect(
        "there is no per-chunk retry window here: each request is retried up to "
        "RUNAI_STREAMER_S3_MAX_ATTEMPTS times with backoff capped at "
        "RUNAI_STREAMER_S3_RETRY_CAP_MS, and a stalled transfer is cut after "
        "RUNAI_STREAMER_S3_LOW_SPEED_SECONDS; set those instead"
    ),
    PREFIX + "S3_MAX_CONNECTIONS": _no_effect(
        "each worker holds one connection; set RUNAI_STREAMER_OBJ_CONCURRENCY for how many "
        "requests are in flight"
    ),
    PREFIX + "S3_TARGET_GBPS": _no_effect(
        "it is a throughput target of the AWS CRT, which this package does not use; set "
        "RUNAI_STREAMER_OBJ_CONCURRENCY for how many requests are in flight"
    ),
    PREFIX + "S3_TRACE": _no_effect(
        "there is no AWS SDK to trace here; set RUNAI_STREAMER_LOG_LEVEL=DEBUG (with "
        "RUNAI_STREAMER_LOG_TO_STDERR=1) for this package's own log"
    ),
    PREFIX + "NO_BOTO3_SESSION": _no_effect(
        "credentials always come from S3Credentials or botocore's chain (the same sources as "
        "the AWS SDK's); set AWS_PROFILE or the AWS_* variables to choose them"
    ),
    PREFIX + "FS_QUEUE_DEPTH": _no_effect(
        "each of the RUNAI_STREAMER_CONCURRENCY workers keeps up to 32 direct reads in flight "
        "through io_uring; set RUNAI_STREAMER_CONCURRENCY for the number of workers"
    ),
    PREFIX + "FS_MAX_ENGINES": _no_effect(
        "one engine serves every mount of a streamer; set RUNAI_STREAMER_CONCURRENCY for its "
        "workers"
    ),
    PREFIX + "FS_CHUNK_BYTESIZE": _no_effect(
        "local and object reads share one piece size; set RUNAI_STREAMER_CHUNK_BYTESIZE"
    ),
    PREFIX + "PARTITION_POLICY": _no_effect(
        "the ranks of a distributed stream always split the bytes in stripes by offset, which "
        "balances them within one stripe"
    ),
    PREFIX + "CUDA_ALIGNMENT": _no_effect(
        "CUDA tensors are allocated by torch, whose allocator aligns them"
    ),
    PREFIX + "RING_BUFFERS": _no_effect(
        "memory in flight is bounded by RUNAI_STREAMER_MEMORY_LIMIT alone; set that"
    ),
    PREFIX + "GCS_USE_GRPC": _no_effect(
        "gs:// is read through the JSON API over HTTP(S); there is no gRPC transport"
    ),
    PREFIX + "DIRECTIO": _no_effect(
        "local files are read with O_DIRECT wherever their pages are not cached "
        "(RUNAI_STREAMER_FS_STRATEGY=auto, the default); set RUNAI_STREAMER_FS_STRATEGY=direct "
        "to read them all that way"
    ),
    PREFIX + "EXPERIMENTAL_AZURE_CACHE_ENABLED": _no_effect(
        "no Azure cache provider is loaded by this package"
    ),
}

#: the variables this project reads that upstream does not (upstream's that are read here
#: too, mapped onto ours, are in UPSTREAM)
OURS: frozenset[str] = frozenset(ALL) - frozenset(UPSTREAM)
#: every name that some version knows
KNOWN: frozenset[str] = OURS | frozenset(UPSTREAM)

logger = logging.getLogger("runai_model_streamer")
_warned: set[str] = set()
_lock = threading.Lock()


def environment_problems(env: Mapping[str, str]) -> dict[str, str]:
    """``{variable: message}`` for each set variable that has no effect here or that no
    version knows."""
    problems = {}
    for name in sorted(env):
        if not name.startswith(PREFIX) or env[name] == "":
            continue
        upstream = UPSTREAM.get(name)
        if upstream is not None and not upstream.mapped:
            problems[name] = (
                f"{name} (an upstream runai-model-streamer variable) has no effect here: "
                f"{upstream.note}"
            )
        elif name not in KNOWN:
            close = difflib.get_close_matches(name, sorted(KNOWN), n=1, cutoff=0.6)
            hint = f"; did you mean {close[0]}?" if close else ""
            problems[name] = f"{name} is not a variable of runai-model-streamer{hint}"
    return problems


def check_environment(env: Mapping[str, str] | None = None) -> None:
    """Logs one WARNING per process for each problem of :func:`environment_problems`."""
    problems = environment_problems(os.environ if env is None else env)
    with _lock:
        new = {name: text for name, text in problems.items() if name not in _warned}
        _warned.update(new)
    for text in new.values():
        logger.warning("%s", text)
