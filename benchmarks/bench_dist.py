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

``--cache``: from SeaweedFS only, shared loads against shared loads that fill a new cache
(RUNAI_STREAMER_CACHE_DIR; a rank's time ends at its last tensor, before the entry is synced
and committed) and shared loads whose every rank reads its entries (cache hits, warm page
cache: the entries were just written).
"""

from __future__ import annotations

import argparse
import json
import os
import resource
import shutil
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
        cached = len(streamer._cached)
        read = getattr(stream, "bytes_read", streamer.total_size)
        for _, tensor in streamer.get_tensors():
            keep.append(tensor)  # a loader keeps what it loads
        total = streamer.total_size
    seconds = time.perf_counter() - started
    rss = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss * 1024
    print(
        json.dumps(
            {
                "seconds": seconds,
                "read": read,
                "total": total,
                "rss": rss,
                "shared": shared,
                "cached": cached,
            }
        )
    )
    dist.barrier()
    dist.destroy_process_group()


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


def run_ranks(
    paths: list[str], ranks: int, shared: bool, env: dict[str, str], dist: str = "1"
) -> list[dict]:
    """Runs the ranks; ``dist``: their RUNAI_STREAMER_DIST."""
    spec = json.dumps({"paths": paths, "ranks": ranks, "shared": shared, "port": free_port()})
    procs = [
        subprocess.Popen(
            [sys.executable, __file__, "--rank-spec", spec, "--rank", str(r)],
            env={**env, "RUNAI_STREAMER_DIST": dist, "OMP_NUM_THREADS": "1"},
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
    lines.append("")
    for mode in runs:
        if mode == "shared":
            continue
        other = [max(r["seconds"] for r in ranks) for ranks in runs[mode]]
        ratios = [s / o for s, o in zip(shared, other, strict=True)]
        lines.append(
            f"{mode} throughput / shared's, per round: {', '.join(f'{r:.2f}' for r in ratios)} "
            f"(median {statistics.median(ratios):.2f})"
        )
    return "\n".join(lines)


def main() -> int:
    from harness import parse_size, write_sample

    from tests.storage.servers import ACCESS_KEY, SECRET_KEY, seaweedfs

    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--size", default="2GB")
    parser.add_argument("--ranks", type=int, default=4)
    parser.add_argument("--rounds", type=int, default=5)
    parser.add_argument("--no-s3", action="store_true", help="local files only")
    parser.add_argument(
        "--cache",
        action="store_true",
        help="from SeaweedFS, shared loads with the cache: filling a new one, and hits",
    )
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
        if args.cache:  # the cache pays for object storage: its source alone
            sources = sources[1:]
        try:
            for label, paths, env in sources:
                # mode: (environment, RUNAI_STREAMER_DIST, whether the stream is shared)
                modes = {"shared": (env, "1", True), "independent": (env, "1", False)}
                if args.cache:
                    hits = {**env, "RUNAI_STREAMER_CACHE_DIR": os.path.join(tmp, "cache-hits")}
                    modes = {
                        "shared": (env, "1", True),
                        "shared, filling the cache": (env, "1", True),  # a new cache each round
                        "shared, cache hits": (hits, "1", True),
                        # auto: hits are local files, which each rank reads alone on gloo
                        "cache hits, DIST=auto": (hits, "auto", False),
                    }
                    run_ranks(paths, args.ranks, True, hits)  # fills it
                runs: dict[str, list[list[dict]]] = {mode: [] for mode in modes}
                run_ranks(paths, args.ranks, True, env)  # warm-up (page cache, server)
                for index in range(args.rounds):
                    order = list(modes) if index % 2 == 0 else list(reversed(modes))
                    for mode in order:
                        mode_env, dist, shared = modes[mode]
                        if mode == "shared, filling the cache":
                            fresh = os.path.join(tmp, f"cache-{index}")
                            mode_env = {**env, "RUNAI_STREAMER_CACHE_DIR": fresh}
                        result = run_ranks(paths, args.ranks, mode != "independent", mode_env, dist)
                        assert all(r["shared"] == shared for r in result), result
                        if "hits" in mode:
                            assert all(r["cached"] == len(paths) for r in result), result
                        if mode == "shared, filling the cache":
                            assert os.listdir(os.path.join(fresh, "entries")), "nothing cached"
                            shutil.rmtree(fresh)
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
