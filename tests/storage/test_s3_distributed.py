"""Distributed streaming from s3:// (SeaweedFS): four gloo ranks share one read of the model,
and fill the node's cache with it; the next stream reads the cache alone.

RUNAI_STREAMER_DIST=auto, its default: an object-storage stream is shared on any backend.
"""

from __future__ import annotations

import contextlib
from pathlib import Path

import pytest

from tests.distributed.launcher import FILES, check_tensors, expected_model, launch, write_model

from .servers import S3Server


def test_four_ranks_share_one_read_of_a_model_on_s3(
    weed: S3Server, tmp_path: Path, s3_env: pytest.MonkeyPatch
) -> None:
    model = tmp_path / "model"
    model.mkdir()
    write_model(model)
    client = weed.client()
    with contextlib.suppress(client.exceptions.BucketAlreadyOwnedByYou):
        client.create_bucket(Bucket="dist")
    for name in FILES:
        # botocore sends (and SeaweedFS keeps) a CRC32: the objects are verified, so cached
        client.put_object(Bucket="dist", Key=f"m/{name}", Body=(model / name).read_bytes())
    s3_env.setenv("AWS_ENDPOINT_URL", weed.endpoint)
    env = {"RUNAI_STREAMER_DIST": "auto", "RUNAI_STREAMER_CACHE_DIR": str(tmp_path / "cache")}
    paths = [f"s3://dist/m/{name}" for name in FILES]
    cases = [
        {"name": "s3", "paths": paths, "barrier": True},
        {"name": "cached", "paths": paths},
    ]
    run = launch(tmp_path / "out", 4, cases, env)
    assert run["returncodes"] == [0] * 4, run["logs"]
    full = expected_model(model, FILES)
    for rank in range(4):
        check_tensors(run["results"]["s3", rank], full, f"s3, rank {rank}")
    read = [run["results"]["s3", rank]["bytes_read"] for rank in range(4)]
    assert sum(read) == full["total"] and max(read) < full["total"] / 2, read
    for rank in range(4):
        assert run["results"]["s3", rank]["cached"] == 0
        assert run["results"]["s3", rank]["verified"] == f"verified crc32 of {len(FILES)} object(s)"
        # every object a hit on every rank: local files, which auto shares on NCCL only
        check_tensors(run["results"]["cached", rank], full, f"cached, rank {rank}", shared=False)
        assert run["results"]["cached", rank]["cached"] == len(FILES)
