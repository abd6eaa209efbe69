#!/usr/bin/env python3
"""Distributed streaming: N ranks on this machine (gloo) sharing one read of a model, against
N independent loads of the whole model.

Each round starts N fresh rank processes twice, alternating which goes first: ``shared``
(``is_distributed=True``, ``RUNAI_STREAMER_DIST=1``) and ``independent`` (every rank streams
everything). The ranks start together at a barrier; a rank's time is from there to its last
tensor (owned CPU tensors). Sources: the model as a local file (warm page cache), and the same
file from SeaweedFS on 127.0.0.1 (tests/storage/servers.py). Prints, per source and mode, the
median wall time (slowest rank), bytes read from storage by all ranks together (the streams'
own count: ``bytes_read`` of a shared stream, the model size each for independent ones) and
the peak RSS of a rank.

Usage::

    python benchmarks/bench_dist.py --size 2GB --ranks 4 --rounds 5 --output dist.md
"""

from __future__ import annotations

import argparse
import json
import os
import resource
import socket
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))


def rank_main(spec: dict[str, object], rank: int) -> None:
    """One rank: stream every tensor of ``spec["paths"]`` after a barrier, report JSON."""
    from datetime import timedelta

    import torch.distributed as dist
    from runai_model_streamer import SafetensorsStreamer

    dist.init_process_group(
        "gloo",
        init_method=f"tcp://127.0.0.1:{spec['port']}",
        rank=rank,
        world_size=int(spec["ranks"]),  # type: ignore[call-overload]
        timeout=timedelta(seconds=600),
    )
    dist.barrier()
    started = time.perf_counter()
    keep = []
    with SafetensorsStreamer() as streamer:
        streamer.stream_files(spec["paths"], is_distributed=bool(spec["shared"]))  # type: ignore[arg-type]
        stream = streamer.file_streamer._stream
        shared = streamer.file_streamer.is_distributed
        read = getattr(stream, "bytes_read", streamer.total_size)
        for _, tensor in streamer.get_tensors():
            keep.append(tensor)  # a loader keeps what it loads
        total = streamer.total_size
    seconds = time.perf_counter() - started
    rss = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss * 1024
    print(
        json.dumps({"seconds": seconds, "read": read, "total": total, "rss": rss, "shared": shared})
    )
    dist.barrier()
    dist.destroy_process_group()


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


def run_ranks(paths: list[str], ranks: int, shared: bool, env: dict[str, str]) -> list[dict]:
    spec = json.dumps({"paths": paths, "ranks": ranks, "shared": shared, "port": free_port()})
    procs = [
        subprocess.Popen(
            [sys.executable, __file__, "--rank-spec", spec, "--rank", str(r)],
            env={**env, "RUNAI_STREAMER_DIST": "1", "OMP_NUM_THREADS": "1"},
            stdout=subprocess.PIPE,
            text=True,
        )
        for r in range(ranks)
    ]
    results = []
    for proc in procs:
        out, _ = proc.communicate(timeout=1800)
        if proc.returncode != 0:
            raise RuntimeError(f"a rank failed (exit {proc.returncode})")
        results.append(json.loads(out.strip().splitlines()[-1]))
    return results


def summarize(label: str, runs: dict[str, list[list[dict]]], model: int) -> str:
    lines = [
        f"### {label}",
        "",
        "| mode | median wall s (slowest rank) | GB/s per rank | read from storage, all ranks "
        "| peak RSS per rank (max) | per round (s) |",
        "|---|---|---|---|---|---|",
    ]
    for mode, rounds in runs.items():
        walls = [max(r["seconds"] for r in ranks) for ranks in rounds]
        read = statistics.median(sum(r["read"] for r in ranks) for ranks in rounds)
        rss = max(r["rss"] for ranks in rounds for r in ranks)
        median = statistics.median(walls)
        lines.append(
            f"| {mode} | {median:.2f} | {model / median / 1e9:.2f} | {read / 1e9:.2f} GB "
            f"({read / model:.2f}x the model) | {rss / 1e9:.2f} GB "
            f"(model {model / 1e9:.2f} GB) | {', '.join(f'{w:.2f}' for w in walls)} |"
        )
    shared = [max(r["seconds"] for r in ranks) for ranks in runs["shared"]]
    alone = [max(r["seconds"] for r in ranks) for ranks in runs["independent"]]
    ratios = ", ".join(f"{a / s:.2f}" for s, a in zip(shared, alone, strict=True))
    lines += ["", f"independent / shared wall time per round: {ratios}"]
    return "\n".join(lines)


def main() -> int:
    from harness import parse_size, write_sample

    from tests.storage.servers import ACCESS_KEY, SECRET_KEY, seaweedfs

    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--size", default="2GB")
    parser.add_argument("--ranks", type=int, default=4)
    parser.add_argument("--rounds", type=int, default=5)
    parser.add_argument("--no-s3", action="store_true", help="local files only")
    parser.add_argument("--output")
    args = parser.parse_args()
    sections = []
    with tempfile.TemporaryDirectory(prefix="runai-bench-dist-") as tmp:
        path = write_sample(os.path.join(tmp, "model.safetensors"), parse_size(args.size))[0]
        model = os.path.getsize(path)
        sources = [("local file, warm page cache", [path], dict(os.environ))]
        server_cm = None
        if not args.no_s3:
            server_cm = seaweedfs(Path(tmp) / "seaweedfs")
            server = server_cm.__enter__()
            client = server.client()
            client.create_bucket(Bucket="bench")
            with open(path, "rb") as body:
                client.put_object(Bucket="bench", Key="model.safetensors", Body=body)
            s3_env = {
                **{k: v for k, v in os.environ.items() if not k.startswith("AWS_")},
                "AWS_ACCESS_KEY_ID": ACCESS_KEY,
                "AWS_SECRET_ACCESS_KEY": SECRET_KEY,
                "AWS_ENDPOINT_URL": server.endpoint,
                "AWS_REGION": "us-east-1",
                "AWS_EC2_METADATA_DISABLED": "true",
            }
            sources.append(
                ("s3:// from SeaweedFS on 127.0.0.1", ["s3://bench/model.safetensors"], s3_env)
            )
        try:
            for label, paths, env in sources:
                runs: dict[str, list[list[dict]]] = {"shared": [], "independent": []}
                run_ranks(paths, args.ranks, True, env)  # warm-up (page cache, server)
                for index in range(args.rounds):
                    order = (
                        ["shared", "independent"] if index % 2 == 0 else ["independent", "shared"]
                    )
                    for mode in order:
                        result = run_ranks(paths, args.ranks, mode == "shared", env)
                        assert all(r["shared"] == (mode == "shared") for r in result), result
                        runs[mode].append(result)
                        print(
                            f"{label} round {index + 1} {mode}: "
                            f"{max(r['seconds'] for r in result):.2f} s",
                            file=sys.stderr,
                        )
                title = f"{label}, {args.ranks} ranks, {model / 1e9:.2f} GB, {args.rounds} rounds"
                sections.append(summarize(title, runs, model))
                print(sections[-1] + "\n", flush=True)
        finally:
            if server_cm is not None:
                server_cm.__exit__(None, None, None)
    if args.output:
        Path(args.output).write_text("\n\n".join(sections) + "\n")
    return 0


if __name__ == "__main__":
    if "--rank-spec" in sys.argv:
        rank_main(
            json.loads(sys.argv[sys.argv.index("--rank-spec") + 1]),
            int(sys.argv[sys.argv.index("--rank") + 1]),
        )
    else:
        raise SystemExit(main())
