#!/usr/bin/env python3
"""gs:// and az:// load throughput, client CPU and peak memory of runai-model-streamer against
upstream 0.17 and the clouds' own SDKs, from fake-gcs-server and Azurite on 127.0.0.1.

Starts both emulators (tests/storage/servers.py), uploads a generated model (--size, ~300
tensors of mixed dtypes) as one file and as a 4-shard set to each, then loads it with every
available loader, each run in its own process, alternating loaders round by round after one
untimed warm-up run, and prints median GB/s, client CPU seconds per GB, peak RSS and the ratios
between loaders. The emulators and the client share this machine's cores.

Loaders (those not installed are listed as skipped):

* ``runai-model-streamer``: this package with the gcs / azure plugin (owned CPU tensors).
* ``upstream 0.17``: PyPI ``runai-model-streamer==0.17.0`` with its gcs / azure plugins in the
  side virtual environment of bench_s3.py (``--upstream-python``)::

      /tmp/upstream-s3/bin/pip install "runai-model-streamer-gcs==0.17.*" \\
          "runai-model-streamer-azure==0.17.*"

  Its Azure library reads only over https from <account>.blob.core.windows.net, so it cannot
  reach Azurite: that pairing is probed and reported as skipped when it fails.
* ``google-cloud-storage``: ``download_as_bytes``, then ``safetensors.torch.load``.
* ``azure-storage-blob``: ``download_blob(max_concurrency=16).readall()``, then the same.
* ``GCS ceiling``: 16 threads of anonymous 8 MiB media GETs received straight into one
  preallocated buffer, no parsing and no tensors (as bench_s3.py's S3 ceiling).
* with ``--verify-off``: this package again with ``RUNAI_STREAMER_VERIFY=off``, to show what
  the integrity check costs (GCS: its CRC32C; Azure: the blob's Content-MD5, which the upload
  sets here, hashed in order).

Usage::

    python benchmarks/bench_gcs_azure.py --size 1GiB --rounds 5 --output gcs-azure.md
"""

from __future__ import annotations

import argparse
import os
import subprocess
import sys
import tempfile
from collections.abc import Callable
from pathlib import Path

import harness

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))
from bench_s3 import DEFAULT_UPSTREAM, upstream_ok

from tests.storage.servers import azurite, fake_gcs_server

BUCKET = "bench"
CLOUD_PREFIXES = ("GOOGLE_", "CLOUDSDK_", "RUNAI_STREAMER_GCS_", "AZURE_", "RUNAI_STREAMER_AZURE_",
                  "STORAGE_EMULATOR_HOST", "CLOUD_STORAGE_EMULATOR_ENDPOINT")  # fmt: skip


def _env(**extra: str) -> dict[str, str]:
    env = {
        k: v
        for k, v in os.environ.items()
        if not k.startswith(CLOUD_PREFIXES) and k not in ("PYTHONPATH",)
    }
    env.update(extra)
    return env


def _bench_service(
    service: str,
    env: dict[str, str],
    upstream_env: dict[str, str],
    sdk: tuple[str, str, str],
    ceiling: harness.Loader | None,
    upload: Callable[[str, str], None],
    sets: list[tuple[str, list[str]]],
    args: argparse.Namespace,
    sections: list[str],
    skipped: list[str],
) -> None:
    scheme = "gs" if service == "gcs" else "az"
    loaders = [harness.Loader("runai-model-streamer", "runai", env=env)]
    if args.verify_off:
        off = {**env, "RUNAI_STREAMER_VERIFY": "off"}
        loaders.append(harness.Loader("runai-model-streamer, VERIFY=off", "runai", env=off))
    plugin = f"runai_model_streamer_{service}"
    why = upstream_ok(args.upstream_python, plugin)
    upstream = harness.Loader("upstream 0.17", "runai", args.upstream_python, env=upstream_env)
    label, kind, module = sdk
    if args.no_sdk:
        skipped.append(f"{service} {label}: --no-sdk")
    elif harness.installed(module):
        loaders.append(harness.Loader(label, kind, env=env))
    else:
        skipped.append(f"{service} {label}: not installed")
    if ceiling is not None:
        loaders.append(ceiling)
    for set_label, files in sets:
        uris = []
        for path in files:
            name = f"{len(files)}/{Path(path).name}"
            upload(name, path)
            uris.append(f"{scheme}://{BUCKET}/{name}")
        run = list(loaders)
        if not why:
            try:
                harness.run_once(upstream, uris[:1], timeout=120)
                run.insert(1, upstream)
            except (RuntimeError, subprocess.TimeoutExpired) as error:
                why = str(error)[-300:]
        if why:
            skipped.append(f"{service} upstream 0.17: {why}")
            why = "see above"
        print(f"== {service} {set_label}: {len(run)} loaders", file=sys.stderr, flush=True)
        results = harness.run_benchmark(
            run, uris, rounds=args.rounds, progress=lambda s: print(s, file=sys.stderr, flush=True)
        )
        model_bytes = sum(os.path.getsize(p) for p in files)
        title = f"{scheme}:// from the {service} emulator on 127.0.0.1, {set_label}, "
        title += f"{args.rounds} rounds (median)"
        sections.append(harness.format_table(results, title=title, model_bytes=model_bytes))
        sections.append(
            f"{run[0].label} per round:\n\n" + harness.format_round_ratios(results, run[0].label)
        )
        print("\n\n".join(sections[-2:]) + "\n", flush=True)


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--size", default="1GiB", help="model size (default 1GiB)")
    parser.add_argument("--rounds", type=int, default=5)
    parser.add_argument("--upstream-python", default=DEFAULT_UPSTREAM)
    parser.add_argument("--no-shards", action="store_true", help="skip the 4-shard set")
    parser.add_argument("--only", choices=["gcs", "azure"], help="one service only")
    parser.add_argument("--output", help="also write the tables to this markdown file")
    parser.add_argument("--no-sdk", action="store_true", help="skip the SDK loaders (slow)")
    parser.add_argument(
        "--verify-off", action="store_true", help="also run this package without the check"
    )
    args = parser.parse_args()
    size = harness.parse_size(args.size)
    sections: list[str] = []
    skipped: list[str] = []
    with tempfile.TemporaryDirectory(prefix="runai-bench-gcs-azure-") as tmp:
        directory = Path(tmp)
        sets = [("1 file", harness.write_sample(str(directory / "model.safetensors"), size))]
        if not args.no_shards:
            sets.append(
                ("4 shards", harness.write_sample(str(directory / "sharded"), size, shards=4))
            )
        if args.only in (None, "gcs"):
            with fake_gcs_server(directory / "gcs") as gcs:
                gcs.create_bucket(BUCKET)
                _bench_service(
                    "gcs",
                    _env(STORAGE_EMULATOR_HOST=gcs.endpoint),
                    _env(
                        CLOUD_STORAGE_EMULATOR_ENDPOINT=gcs.endpoint,
                        RUNAI_STREAMER_GCS_USE_ANONYMOUS_CREDENTIALS="1",
                    ),
                    ("google-cloud-storage", "gcs-sdk", "google.cloud.storage"),
                    harness.Loader(
                        "GCS ceiling (16 GETs into a buffer)",
                        "gcs-ceiling",
                        env=_env(STORAGE_EMULATOR_HOST=gcs.endpoint),
                    ),
                    lambda name, path: gcs.upload(BUCKET, name, Path(path).read_bytes()),
                    sets,
                    args,
                    sections,
                    skipped,
                )
        if args.only in (None, "azure"):
            with azurite(directory / "azurite") as azure:
                azure.create_container(BUCKET)
                connection = azure.connection_string()
                _bench_service(
                    "azure",
                    _env(AZURE_STORAGE_CONNECTION_STRING=connection),
                    _env(AZURE_STORAGE_CONNECTION_STRING=connection),
                    ("azure-storage-blob", "azure-sdk", "azure.storage.blob"),
                    None,
                    lambda name, path: azure.upload(
                        BUCKET, name, Path(path).read_bytes(), content_md5=True
                    ),
                    sets,
                    args,
                    sections,
                    skipped,
                )
    if skipped:
        sections.append("Skipped: " + "; ".join(skipped))
        print(sections[-1])
    if args.output:
        Path(args.output).write_text("\n\n".join(sections) + "\n")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
