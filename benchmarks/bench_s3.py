#!/usr/bin/env python3
"""s3:// load throughput, client CPU and peak memory of runai-model-streamer against other
S3 loaders, from a SeaweedFS server on 127.0.0.1.

Starts SeaweedFS (tests/storage/servers.py), uploads a generated model (--size, ~300 tensors
of mixed dtypes) as one file and as a 4-shard set, then loads it with every available loader,
each run in its own process, alternating loaders round by round after one untimed warm-up
run, and prints median GB/s, client CPU seconds per GB, peak RSS and the ratios between
loaders. SeaweedFS and the client share this machine's cores, so client CPU per GB decides
much of the throughput.

Loaders (those not installed are listed as skipped):

* ``runai-model-streamer``: this package with the s3 plugin (owned CPU tensors).
* ``upstream 0.17``: PyPI ``runai-model-streamer==0.17.0`` + ``runai-model-streamer-s3==0.17.1``
  in a side virtual environment (``--upstream-python``, default ``/tmp/upstream-s3/bin/python``)::

      python -m venv /tmp/upstream-s3
      /tmp/upstream-s3/bin/pip install runai-model-streamer==0.17.0 \\
          runai-model-streamer-s3==0.17.1 torch==2.13.0

* ``boto3``: ``download_fileobj`` into memory, then ``safetensors.torch.load``.
* ``obstore``: ``get_range_async``, 16 ranges of 8 MiB in flight, tensors viewing the buffer.
* ``s5cmd``: ``s5cmd cp`` to /dev/shm, then ``load_file`` + ``clone``.
* ``S3 ceiling``: 16 threads of SigV4-signed 8 MiB range GETs received straight into one
  preallocated buffer, no parsing and no tensors.
* with ``--verify-off``: this package again with ``RUNAI_STREAMER_VERIFY=off``, to show what
  the integrity check costs.
* with ``--cache``: this package with ``RUNAI_STREAMER_CACHE_DIR``: a first load (an empty
  cache before each run: the cost of writing through), a hit (the page cache dropped before
  each run) and the cached file streamed as a local file, cold (the hit's ceiling). Needs root
  (drop_caches).

With ``--latency-ms N`` every client reaches SeaweedFS through a proxy that holds each answer
N ms (tests/storage/fault_proxy.py): a store that far away, where round trips, not the two
cores, make the time to the first tensor. With ``--link-rate RATE`` (tc's units, e.g. 8gbit;
needs tc and root) the loopback device is shaped to that rate while the loaders run: a store
behind a link slower than this machine's two cores, where the client has CPU to spare, as it
has beside a real store (what writing a cache or hashing then costs).

Objects are uploaded with the checksum ``--checksum`` names: ``crc32`` (botocore's default for
every upload), ``crc32c`` (computed here with google-crc32c), ``sha256`` (computed by botocore)
or ``none``; this package verifies the first three as it streams (a SHA-256 hashed in order).

Usage::

    python benchmarks/bench_s3.py --size 1GiB --rounds 5 --output s3-results.md
    python benchmarks/bench_s3.py --rounds 5 --only runai,S3 --cache --verify-off \
        --checksum crc32c --link-rate 8gbit
"""

from __future__ import annotations

import argparse
import contextlib
import json
import os
import shutil
import statistics
import subprocess
import sys
import tempfile
from collections.abc import Callable, Iterator
from pathlib import Path

from harness import (
    Loader,
    Result,
    add_link_rate_argument,
    drop_caches,
    format_round_ratios,
    format_table,
    installed,
    link_rate,
    parse_size,
    run_benchmark,
    run_once,
    write_sample,
)

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))
from tests.storage.fault_proxy import FaultProxy
from tests.storage.servers import ACCESS_KEY, SECRET_KEY, S3Server, seaweedfs

DEFAULT_UPSTREAM = "/tmp/upstream-s3/bin/python"
BUCKET = "bench"


def _env(endpoint: str, **extra: str) -> dict[str, str]:
    env = {
        k: v
        for k, v in os.environ.items()
        if not k.startswith(("AWS_", "RUNAI_STREAMER_S3_")) and k not in ("PYTHONPATH",)
    }
    env.update(
        AWS_ACCESS_KEY_ID=ACCESS_KEY,
        AWS_SECRET_ACCESS_KEY=SECRET_KEY,
        AWS_ENDPOINT_URL=endpoint,
        AWS_REGION="us-east-1",
        AWS_EC2_METADATA_DISABLED="true",
        **extra,
    )
    return env


def _checksum(algorithm: str, path: str) -> dict[str, str]:
    """put_object's argument that uploads the file with a CRC32C or a SHA-256 (botocore
    computes CRC32s by default)."""
    if algorithm == "sha256":
        return {"ChecksumAlgorithm": "SHA256"}
    if algorithm != "crc32c":
        return {}
    import base64

    import google_crc32c

    crc = google_crc32c.Checksum()
    with open(path, "rb") as body:
        for block in iter(lambda: body.read(64 << 20), b""):
            crc.update(block)
    return {"ChecksumCRC32C": base64.b64encode(crc.digest()).decode()}


def upstream_ok(python: str, plugin: str = "runai_model_streamer_s3") -> str:
    """Why the side venv of upstream cannot run (its core and `plugin`), or ""."""
    if not os.path.exists(python):
        return f"{python} not found"
    probe = subprocess.run(
        [python, "-c", f"import runai_model_streamer, {plugin}"],
        capture_output=True,
        text=True,
        check=False,
    )
    return "" if probe.returncode == 0 else (probe.stderr.strip().splitlines() or ["failed"])[-1]


CACHE_FIRST = "runai-model-streamer, cache: first load"
CACHE_HIT = "runai-model-streamer, cache: hit (cold)"
LOCAL_COLD = "runai-model-streamer, the cached file as a local file (cold)"


def _cache_loaders(
    env: dict[str, str], root: Path, uris: list[str]
) -> tuple[list[Loader], Callable[[Loader], None]]:
    """The cache's loaders and what runs before each of their runs: the first load gets an
    empty cache; the hit and the local read get a cold page cache. The hit's cache is filled
    here, by one untimed load."""
    first_dir, hit_dir = root / "cache-first", root / "cache-hit"
    first = Loader(CACHE_FIRST, "runai", env={**env, "RUNAI_STREAMER_CACHE_DIR": str(first_dir)})
    hit = Loader(CACHE_HIT, "runai", env={**env, "RUNAI_STREAMER_CACHE_DIR": str(hit_dir)})
    run_once(hit, uris)
    data = {}
    for meta in hit_dir.glob("entries/*/*/meta.json"):
        data[json.loads(meta.read_text())["uri"]] = str(meta.with_name("data"))
    if sorted(data) != sorted(uris):
        raise RuntimeError(f"the cache in {hit_dir} did not take every object: {sorted(data)}")
    local = Loader(LOCAL_COLD, "runai", files=[data[u] for u in uris], env=env)

    def before(loader: Loader) -> None:
        if loader is first:
            shutil.rmtree(first_dir, ignore_errors=True)
        elif loader in (hit, local):
            drop_caches()

    return [first, hit, local], before


ONE_GET = "one 8 MiB GET"


@contextlib.contextmanager
def _far(server: S3Server, args: argparse.Namespace) -> Iterator[str]:
    """The endpoint the clients use: the server's, or with --latency-ms a proxy's that holds
    each answer that long."""
    if not args.latency_ms:
        yield server.endpoint
        return
    proxy = FaultProxy(int(server.endpoint.rsplit(":", 1)[1]), latency=args.latency_ms / 1000)
    try:
        yield proxy.endpoint
    finally:
        proxy.close()


def _first_tensor(results: list[Result]) -> str:
    """The time from stream_files to the first tensor of each loader that records it, against
    one chunk-sized GET on a new connection (median over the rounds)."""
    one = next((r for r in results if r.label == ONE_GET and r.first_seconds), None)
    if one is None:
        return ""
    latency = statistics.median(one.first_seconds)
    parts = [
        f"{r.label} {statistics.median(r.first_seconds) * 1e3:.1f} ms "
        f"({statistics.median(r.first_seconds) / latency:.1f}x; per round "
        + ", ".join(
            f"{f / g:.1f}" for f, g in zip(r.first_seconds, one.first_seconds, strict=False)
        )
        + ")"
        for r in results
        if r is not one and r.first_seconds
    ]
    return (
        f"Time to the first tensor, against {ONE_GET} on a new connection "
        f"({latency * 1e3:.1f} ms): " + "; ".join(parts)
    )


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--size", default="1GiB", help="model size (default 1GiB)")
    parser.add_argument("--rounds", type=int, default=5)
    parser.add_argument("--upstream-python", default=DEFAULT_UPSTREAM)
    parser.add_argument("--no-shards", action="store_true", help="skip the sharded set")
    parser.add_argument("--shards", type=int, default=4, help="files of the sharded set")
    parser.add_argument("--output", help="also write the tables to this markdown file")
    parser.add_argument(
        "--checksum", choices=["crc32", "crc32c", "sha256", "none"], default="crc32"
    )
    parser.add_argument(
        "--verify-off", action="store_true", help="also run this package without the check"
    )
    parser.add_argument(
        "--cache",
        action="store_true",
        help="also run this package with the local cache: a first load (an empty cache, "
        "written through), a hit (cold page cache) and the cached file read as a local file cold",
    )
    parser.add_argument(
        "--tls",
        action="store_true",
        help="serve over HTTPS (a self-signed CA, given to every client by SSL_CERT_FILE and "
        "AWS_CA_BUNDLE); the ceiling's GETs go over TLS too",
    )
    parser.add_argument(
        "--latency-ms",
        type=float,
        default=0.0,
        help="put a proxy between every client and SeaweedFS that holds each answer this long "
        "(a store that far away: what the time to the first tensor is made of there)",
    )
    add_link_rate_argument(parser)
    parser.add_argument(
        "--compare-library",
        metavar="PATH",
        help="also run this package with another build of libstreamer (STREAMER_LIBRARY=PATH): "
        "an engine change against the installed one, alternating in the same rounds",
    )
    parser.add_argument(
        "--variant",
        action="append",
        default=[],
        metavar="NAME=VALUE[,NAME=VALUE]",
        help="also run this package with these environment variables set (repeatable), e.g. "
        "RUNAI_STREAMER_CONCURRENCY=32",
    )
    parser.add_argument(
        "--only",
        help="comma-separated loader label prefixes to run (e.g. runai,upstream,obstore,S3)",
    )
    args = parser.parse_args()
    if args.latency_ms and args.tls:
        parser.error("--latency-ms relays plain HTTP only: not with --tls")
    size = parse_size(args.size)
    sections: list[str] = []
    skipped: list[str] = []

    def report(line: str) -> None:
        print(line, file=sys.stderr, flush=True)

    with tempfile.TemporaryDirectory(prefix="runai-bench-s3-") as tmp:
        directory = Path(tmp)
        with seaweedfs(directory / "seaweedfs", tls=args.tls) as server, _far(server, args) as at:
            trust = {}
            if server.certificate is not None:  # its own CA: trusted by every client
                trust = {"SSL_CERT_FILE": str(server.certificate)}
                trust["AWS_CA_BUNDLE"] = trust["SSL_CERT_FILE"]
            env = _env(at, **trust)
            loaders = [Loader("runai-model-streamer", "runai", env=env)]
            for variant in args.variant:
                settings = dict(item.split("=", 1) for item in variant.split(","))
                loaders.append(
                    Loader(f"runai-model-streamer ({variant})", "runai", env={**env, **settings})
                )
            if args.compare_library:
                other = {**env, "STREAMER_LIBRARY": os.path.abspath(args.compare_library)}
                compared = f"runai-model-streamer ({args.compare_library})"
                loaders.append(Loader(compared, "runai", env=other))
            if args.verify_off:
                off = {**env, "RUNAI_STREAMER_VERIFY": "off"}
                loaders.append(Loader("runai-model-streamer, VERIFY=off", "runai", env=off))
            why = upstream_ok(args.upstream_python)
            if why:
                skipped.append(f"upstream 0.17: {why}")
            else:
                path_style = _env(at, RUNAI_STREAMER_S3_USE_VIRTUAL_ADDRESSING="0", **trust)
                upstream = Loader("upstream 0.17", "runai", args.upstream_python, env=path_style)
                loaders.append(upstream)
            for label, kind, module in [
                ("boto3", "boto3", "boto3"),
                ("obstore (16 in flight)", "obstore", "obstore"),
                ("s5cmd to /dev/shm", "s5cmd", "s5cmd"),
            ]:
                if installed(module):
                    loaders.append(Loader(label, kind, env=env))
                else:
                    skipped.append(f"{label}: not installed")
            loaders.append(Loader("S3 ceiling (16 GETs into a buffer)", "s3-ceiling", env=env))
            loaders.append(Loader(ONE_GET, "s3-one-get", env=env))
            if args.only:
                prefixes = tuple(p.strip() for p in args.only.split(",") if p.strip())
                skipped += [
                    f"{x.label}: not in --only" for x in loaders if not x.label.startswith(prefixes)
                ]
                loaders = [x for x in loaders if x.label.startswith(prefixes)]

            client = server.client(
                checksums="when_required" if args.checksum == "none" else "when_supported"
            )
            client.create_bucket(Bucket=BUCKET)
            sets = [("1 file", write_sample(str(directory / "model.safetensors"), size))]
            if not args.no_shards:
                sharded = write_sample(str(directory / "sharded"), size, shards=args.shards)
                sets.append((f"{args.shards} shards", sharded))
            for label, files in sets:
                uris = []
                for path in files:
                    key = f"{len(files)}/{Path(path).name}"
                    with open(path, "rb") as body:
                        client.put_object(
                            Bucket=BUCKET, Key=key, Body=body, **_checksum(args.checksum, path)
                        )
                    uris.append(f"s3://{BUCKET}/{key}")
                    os.unlink(path)
                model_bytes = sum(
                    client.head_object(Bucket=BUCKET, Key=u.split("/", 3)[3])["ContentLength"]
                    for u in uris
                )
                runs = loaders
                before = None
                if args.cache:
                    cache_loaders, before = _cache_loaders(env, directory / label, uris)
                    runs = [loaders[0], *cache_loaders, *loaders[1:]]
                report(f"== {label}: {len(runs)} loaders")
                with link_rate(args.link_rate):
                    results = run_benchmark(
                        runs, uris, rounds=args.rounds, progress=report, before=before
                    )
                over = " over HTTPS" if args.tls else ""
                if args.link_rate:
                    over += f" behind a {args.link_rate} loopback"
                title = f"s3:// from SeaweedFS{over} on 127.0.0.1, {label}, {args.rounds} rounds"
                first = _first_tensor(results)
                results = [r for r in results if r.label != ONE_GET]  # not a load
                sections.append(format_table(results, title=title, model_bytes=model_bytes))
                for base in [runs[0], *(x for x in runs if x.label.startswith(CACHE_HIT))]:
                    sections.append(
                        f"{base.label} per round:\n\n" + format_round_ratios(results, base.label)
                    )
                if first:
                    sections.append(first)
                print("\n\n".join(sections[-4 if args.cache else -3 :]) + "\n", flush=True)
    if skipped:
        sections.append("Skipped: " + "; ".join(skipped))
        print(sections[-1])
    if args.output:
        Path(args.output).write_text("\n\n".join(sections) + "\n")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
