"""One process, one stream_files call, three object stores: s3:// (SeaweedFS), gs://
(fake-gcs-server) and az:// (Azurite), each plugin registered with its own engine options."""

from __future__ import annotations

import contextlib
from pathlib import Path

import pytest

from .model_files import check_stream, write_shards
from .servers import AzuriteServer, GcsServer, S3Server


def test_one_stream_of_s3_gcs_and_azure_files(
    weed: S3Server,
    gcs: GcsServer,
    azure: AzuriteServer,
    s3_env: pytest.MonkeyPatch,
    gcs_env: pytest.MonkeyPatch,
    azure_env: pytest.MonkeyPatch,
    tmp_path: Path,
) -> None:
    del gcs_env, azure_env  # their environments, beside the S3 one
    s3_env.setenv("AWS_ENDPOINT_URL", weed.endpoint)
    client = weed.client()
    with contextlib.suppress(client.exceptions.BucketAlreadyOwnedByYou):
        client.create_bucket(Bucket="mixed")
    gcs.create_bucket("mixed")
    azure.create_container("mixed")
    names = {"s3": "s3/a b.safetensors", "gs": "gs/c+d.safetensors", "az": "az/é f.safetensors"}
    uploads = {
        "s3": lambda n, d: client.put_object(Bucket="mixed", Key=n, Body=d),
        "gs": lambda n, d: gcs.upload("mixed", n, d),
        "az": lambda n, d: azure.upload("mixed", n, d),
    }
    local = {
        scheme: write_shards(tmp_path / scheme, upload, [names[scheme]], f"{scheme}_")
        for scheme, upload in uploads.items()
    }
    uris = [f"{scheme}://mixed/{names[scheme]}" for scheme in ("s3", "gs", "az")]
    check_stream(uris, [local[scheme][names[scheme]] for scheme in ("s3", "gs", "az")])
