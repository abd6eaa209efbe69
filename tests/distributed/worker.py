"""One rank of a distributed test: ``python worker.py SPEC.json RANK``.

The spec names the world size, the TCP port of the rendezvous, and the cases to run in order;
each case streams with ``is_distributed=True`` and writes ``<out>/<case>.rank<R>.pt``: the
tensors in the order they came (or the error raised), whether the stream was shared, and the
seconds it took. Hooks for failure cases: ``exit_after`` (this rank exits abruptly after that
many tensors), ``paths_by_rank`` (a rank asks for other files), ``env_by_rank``, ``barrier``
(every rank ends the case before any starts the next: what it cached is there).
"""

from __future__ import annotations

import json
import os
import socket
import sys
import time
from datetime import timedelta
from typing import Any

import torch
import torch.distributed as dist


def run_case(case: dict[str, Any], rank: int, out: str) -> None:
    saved = dict(os.environ)
    os.environ.update(case.get("env_by_rank", {}).get(str(rank), {}))
    # the testfs plugin logs every read it serves here (bytes read per rank)
    log = os.path.join(out, f"{case['name']}.rank{rank}.reads")
    os.environ["RUNAI_STREAMER_TESTFS_READ_LOG"] = log
    try:
        _run(case, rank, out)
    finally:
        os.environ.clear()
        os.environ.update(saved)


def _run(case: dict[str, Any], rank: int, out: str) -> None:
    from runai_model_streamer import DistributedStreamer, FileChunks, SafetensorsStreamer
    from runai_model_streamer._cache_entry import wait_for_writers

    paths = case.get("paths_by_rank", {}).get(str(rank), case.get("paths"))
    result: dict[str, Any] = {"order": [], "tensors": {}}
    started = time.monotonic()
    try:
        if case.get("kind") == "chunks":
            requests = [
                FileChunks(i, p, offsets, sizes)
                for i, (p, offsets, sizes) in enumerate(case["requests"])
            ]
            with DistributedStreamer() as streamer:
                streamer.stream_files(requests, None, "cpu", is_distributed=True)
                result["is_distributed"] = streamer.is_distributed
                for file_id, index, chunk in streamer.get_chunks():
                    name = f"{file_id}:{index}"
                    result["order"].append(name)
                    result["tensors"][name] = chunk
        else:
            with SafetensorsStreamer() as streamer:
                streamer.stream_files(
                    paths, is_distributed=True, tensor_names=case.get("tensor_names")
                )
                result["is_distributed"] = streamer.file_streamer.is_distributed
                stream = streamer.file_streamer._stream
                result["bytes_read"] = getattr(stream, "bytes_read", None)
                report = streamer._report
                cached = len(streamer._cached)  # objects read from cache entries
                for count, (name, tensor) in enumerate(streamer.get_tensors()):
                    if case.get("exit_after", {}).get(str(rank)) == count:
                        os._exit(17)  # a rank that dies mid-stream
                    result["order"].append(name)
                    result["tensors"][name] = tensor  # kept as handed out: never overwritten?
                result["verified"] = report.summary()  # what the stream's log line says
                result["cached"] = cached
            wait_for_writers()  # the cache entries this rank writes are committed
    except Exception as error:
        result["error"] = type(error).__name__
        result["message"] = str(error)
    result["seconds"] = time.monotonic() - started
    # cloned only now, so a buffer reused after a tensor was handed out shows as a difference
    # (and torch.save wants tensors with storages of their own)
    result["tensors"] = {name: t.clone() for name, t in result["tensors"].items()}
    torch.save(result, os.path.join(out, f"{case['name']}.rank{rank}.pt"))


def main() -> None:
    with open(sys.argv[1]) as spec_file:
        spec = json.load(spec_file)
    rank = int(sys.argv[2])
    if spec.get("fake_nodes"):  # ranks 0..k-1 on "node0", the next k on "node1"...
        per_node = int(spec["fake_nodes"])
        socket.gethostname = lambda: f"node{rank // per_node}"  # type: ignore[assignment]
    dist.init_process_group(
        "gloo",
        init_method=f"tcp://127.0.0.1:{spec['port']}",
        rank=rank,
        world_size=int(spec["world"]),
        timeout=timedelta(seconds=60),
    )
    for case in spec["cases"]:
        run_case(case, rank, spec["out"])
        if case.get("barrier"):  # the next case starts after this one ended on every rank
            dist.barrier()
    dist.destroy_process_group()


if __name__ == "__main__":
    main()
