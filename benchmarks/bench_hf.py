#!/usr/bin/env python3
"""hf:// load throughput, client CPU and peak memory of runai-model-streamer against
huggingface_hub's download + safetensors load and a raw range-GET ceiling, from a Hub on
127.0.0.1.

The Hub is the tests' (tests/storage/hub_server.py): it resolves each file and redirects it, as
the real Hub does, to a presigned S3 URL, here on SeaweedFS (tests/storage/servers.py), which
serves the bytes. A generated model (--size, ~300 tensors of mixed dtypes) is committed as one
file and as a 4-shard set, then loaded by every loader, each run in its own process,
alternating loaders round by round after one untimed warm-up run; the table gives median GB/s,
client CPU seconds per GB, peak RSS and the ratios between loaders. The servers and the client
share this machine's cores; ``--link-rate RATE`` (as in bench_s3.py) shapes the loopback device
to that rate while the loaders run, so that the client has a core to spare (what hashing
costs a stream when the network, not the CPU, is its limit).

Loaders:

* ``runai-model-streamer``: hf:// URIs, each file's SHA-256 checked as it lands (owned CPU
  tensors); with ``--verify-off`` also ``RUNAI_STREAMER_VERIFY=off``, to show what hashing
  costs.
* ``huggingface_hub``: ``snapshot_download`` of the files (8 workers, into a cache of its layout
  on local disk; no hf_transfer, and no Xet: the test Hub serves no Xet storage), then
  ``safetensors.torch.load_file`` + clone.
* ``Hub ceiling``: 16 threads of 8 MiB ranged GETs on the redirect targets, received straight
  into one preallocated buffer per file, no parsing, no tensors, no hashing.

Usage::

    python benchmarks/bench_hf.py --size 1GiB --rounds 5 --verify-off --output hf.md
    python benchmarks/bench_hf.py --size 1GiB --rounds 5 --verify-off --link-rate 8gbit
"""

from __future__ import annotations

import argparse
import os
import sys
import tempfile
from pathlib import Path

import harness

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))
from tests.storage.hub_server import HubServer
from tests.storage.servers import seaweedfs

BUCKET = "hub-storage"
REPO = "bench/model"


def _env(hub: HubServer, home: Path, **extra: str) -> dict[str, str]:
    env = {
        k: v
        for k, v in os.environ.items()
        if not k.startswith(("HF_", "HUGGING_FACE_", "RUNAI_STREAMER_HF_")) and k != "PYTHONPATH"
    }
    env.update(HF_ENDPOINT=hub.endpoint, HF_HOME=str(home), HF_HUB_DISABLE_XET="1")
    env.update(HF_HUB_DISABLE_TELEMETRY="1", HF_HUB_DISABLE_PROGRESS_BARS="1")
    env.update(extra)
    return env


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--size", default="1GiB", help="model size (default 1GiB)")
    parser.add_argument("--rounds", type=int, default=5)
    parser.add_argument("--no-shards", action="store_true", help="skip the 4-shard set")
    parser.add_argument("--output", help="also write the tables to this markdown file")
    parser.add_argument(
        "--verify-off", action="store_true", help="also run this package without the check"
    )
    harness.add_link_rate_argument(parser)
    args = parser.parse_args()
    size = harness.parse_size(args.size)
    sections: list[str] = []
    with tempfile.TemporaryDirectory(prefix="runai-bench-hf-") as tmp:
        directory = Path(tmp)
        sets = [("1 file", harness.write_sample(str(directory / "model.safetensors"), size))]
        if not args.no_shards:
            sets.append(
                ("4 shards", harness.write_sample(str(directory / "sharded"), size, shards=4))
            )
        with seaweedfs(directory / "seaweedfs") as storage:
            client = storage.client(checksums="when_required")
            client.create_bucket(Bucket=BUCKET)
            hub = HubServer()
            hub.blob_url = lambda sha: client.generate_presigned_url(
                "get_object", Params={"Bucket": BUCKET, "Key": sha}, ExpiresIn=3600
            )
            env = _env(hub, directory / "hf-home")
            loaders = [harness.Loader("runai-model-streamer", "runai", env=env)]
            if args.verify_off:
                off = {**env, "RUNAI_STREAMER_VERIFY": "off"}
                loaders.append(harness.Loader("runai-model-streamer, VERIFY=off", "runai", env=off))
            if harness.installed("huggingface_hub"):
                loaders.append(harness.Loader("huggingface_hub + safetensors", "hf-hub", env=env))
            else:
                sections.append("Skipped: huggingface_hub: not installed")
            loaders.append(
                harness.Loader("Hub ceiling (16 GETs into a buffer)", "hf-ceiling", env=env)
            )
            try:
                for set_label, files in sets:
                    tree = {f"{len(files)}/{Path(p).name}": Path(p).read_bytes() for p in files}
                    hub.commit(REPO, tree)  # the whole tree: this set only
                    for data in tree.values():
                        key = hub.sha256(data)
                        client.put_object(Bucket=BUCKET, Key=key, Body=data)
                    hub.blobs.clear()  # SeaweedFS serves the bytes
                    uris = [f"hf://{REPO}/{name}" for name in sorted(tree)]
                    print(f"== {set_label}: {len(loaders)} loaders", file=sys.stderr, flush=True)
                    with harness.link_rate(args.link_rate):
                        results = harness.run_benchmark(
                            loaders,
                            uris,
                            rounds=args.rounds,
                            progress=lambda s: print(s, file=sys.stderr, flush=True),
                        )
                    model_bytes = sum(os.path.getsize(p) for p in files)
                    title = "hf:// from the test Hub on 127.0.0.1 (bytes from SeaweedFS), "
                    if args.link_rate:
                        title += f"behind a {args.link_rate} loopback, "
                    title += f"{set_label}, {args.rounds} rounds (median)"
                    sections.append(
                        harness.format_table(results, title=title, model_bytes=model_bytes)
                    )
                    sections.append(
                        f"{loaders[0].label} per round:\n\n"
                        + harness.format_round_ratios(results, loaders[0].label)
                    )
                    print("\n\n".join(sections[-2:]) + "\n", flush=True)
            finally:
                hub.close()
    if args.output:
        Path(args.output).write_text("\n\n".join(sections) + "\n")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
