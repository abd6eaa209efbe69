"""Integrity checks against the real servers: each store's own checksums (SeaweedFS keeps the
x-amz-checksum-* an upload sent, botocore sends CRC32 by default, and of a multipart upload the
CRC32 of its parts' CRC32s; fake-gcs-server keeps a CRC32C
of every object, through the JSON and the XML API; Azurite keeps the Content-MD5 of a blob put
whole, hashed in order as the ranges land), a bit flipped in transit by the fault proxy (caught,
named, no file left by a download), checksum headers dropped on the way (auto streams and says
so, require refuses), and bodies resumed after faults (still verified)."""

from __future__ import annotations

import base64
import contextlib
import json
import logging
import re
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

import google_crc32c
import pytest
import torch
from runai_model_streamer import (
    ChecksumMismatchError,
    ChecksumUnavailableError,
    FileChunks,
    FileStreamer,
    pull_files,
)
from runai_model_streamer._cache_entry import wait_for_writers
from safetensors.torch import load_file, save_file

from .fault_proxy import FaultProxy
from .model_files import stream_tensors
from .servers import AzuriteServer, GcsServer, S3Server

BUCKET = "integrity"
HMAC_ID = "GOOG1EXAMPLEHMACACCESSID"


@dataclass
class Target:
    uri: str
    model: Path
    proxy: FaultProxy
    algorithm: str  # what the store keeps and is checked
    prefix: str  # of the service's HTTP variables


@pytest.fixture(scope="module")
def model(tmp_path_factory: pytest.TempPathFactory) -> Path:
    path = tmp_path_factory.mktemp("integrity") / "model.safetensors"
    generator = torch.Generator().manual_seed(28)
    save_file({f"t{i}": torch.randn(128, 256, generator=generator) for i in range(16)}, str(path))
    return path  # 2 MiB


#: the parts of the multipart upload but the last: of two sizes (S3's least part but the last
#: is 5 MiB, and SeaweedFS enforces it too), so that the first and the last part alone do not
#: tell where the second ends
PART_SIZES = (5 << 20, 6 << 20)


@pytest.fixture(scope="module")
def multipart_model(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """A model of 11 MiB and a header, uploaded in three parts (5 MiB, 6 MiB and the rest),
    whose part boundaries fall inside tensors."""
    path = tmp_path_factory.mktemp("integrity-multipart") / "model.safetensors"
    generator = torch.Generator().manual_seed(29)
    save_file({f"t{i}": torch.randn(128, 1408, generator=generator) for i in range(16)}, str(path))
    return path


def _upload_in_parts(client: object, key: str, data: bytes) -> None:
    """A multipart upload with botocore's CRC32 of each part: S3 keeps the CRC32 of the parts'
    CRC32s (COMPOSITE, "<base64>-3")."""
    up = client.create_multipart_upload(Bucket=BUCKET, Key=key, ChecksumAlgorithm="CRC32")  # type: ignore[attr-defined]
    parts = []
    starts = [0, PART_SIZES[0], sum(PART_SIZES)]
    for number, (start, end) in enumerate(
        zip(starts, [*starts[1:], len(data)], strict=True), start=1
    ):
        sent = client.upload_part(  # type: ignore[attr-defined]
            Bucket=BUCKET,
            Key=key,
            UploadId=up["UploadId"],
            PartNumber=number,
            Body=data[start:end],
            ChecksumAlgorithm="CRC32",
        )
        parts.append(
            {"PartNumber": number, "ETag": sent["ETag"], "ChecksumCRC32": sent["ChecksumCRC32"]}
        )
    done = client.complete_multipart_upload(  # type: ignore[attr-defined]
        Bucket=BUCKET, Key=key, UploadId=up["UploadId"], MultipartUpload={"Parts": parts}
    )
    assert done["ChecksumCRC32"].endswith("-3"), done


def _crc32c_base64(data: bytes) -> str:
    return base64.b64encode(google_crc32c.value(data).to_bytes(4, "big")).decode()


TARGETS = ["s3-crc32c", "s3-crc32", "s3-sha256", "s3-multipart", "gcs-json", "gcs-xml", "azure"]


@pytest.fixture(params=TARGETS)
def target(request: pytest.FixtureRequest, model: Path) -> Iterator[Target]:
    data = model.read_bytes()
    kind = str(request.param)
    if kind.startswith("s3"):
        weed: S3Server = request.getfixturevalue("weed")
        env: pytest.MonkeyPatch = request.getfixturevalue("s3_env")
        client = weed.client()
        with contextlib.suppress(client.exceptions.BucketAlreadyOwnedByYou):
            client.create_bucket(Bucket=BUCKET)
        key = f"{kind}/model.safetensors"
        if kind == "s3-crc32c":
            client.put_object(
                Bucket=BUCKET, Key=key, Body=data, ChecksumCRC32C=_crc32c_base64(data)
            )
        elif kind == "s3-sha256":  # a digest: hashed in order as the ranges land
            client.put_object(Bucket=BUCKET, Key=key, Body=data, ChecksumAlgorithm="SHA256")
        elif kind == "s3-multipart":
            model = request.getfixturevalue("multipart_model")
            data = model.read_bytes()
            _upload_in_parts(client, key, data)
        else:  # botocore's default: a CRC32 of every upload
            client.put_object(Bucket=BUCKET, Key=key, Body=data)
        proxy = FaultProxy(int(weed.endpoint.rsplit(":", 1)[1]))
        env.setenv("AWS_ENDPOINT_URL", proxy.endpoint)
        algorithm = "crc32" if kind == "s3-multipart" else kind.removeprefix("s3-")
        found = Target(f"s3://{BUCKET}/{key}", model, proxy, algorithm, "RUNAI_STREAMER_S3_")
    elif kind.startswith("gcs"):
        gcs: GcsServer = request.getfixturevalue("gcs")
        env = request.getfixturevalue("gcs_env")
        gcs.create_bucket(BUCKET)
        gcs.upload(BUCKET, "model.safetensors", data)
        proxy = FaultProxy(int(gcs.endpoint.rsplit(":", 1)[1]), rewrite_host=True)
        env.delenv("STORAGE_EMULATOR_HOST")
        env.setenv("CLOUD_STORAGE_EMULATOR_ENDPOINT", proxy.endpoint)
        if kind == "gcs-xml":  # HMAC keys: HEAD and x-goog-hash
            env.setenv("RUNAI_STREAMER_GCS_HMAC_ACCESS_ID", HMAC_ID)
            env.setenv("RUNAI_STREAMER_GCS_HMAC_SECRET", "secret")
        uri = f"gs://{BUCKET}/model.safetensors"
        found = Target(uri, model, proxy, "crc32c", "RUNAI_STREAMER_GCS_")
    else:
        azure: AzuriteServer = request.getfixturevalue("azure")
        env = request.getfixturevalue("azure_env")
        azure.create_container(BUCKET)
        azure.upload(BUCKET, "model.safetensors", data)
        proxy = FaultProxy(azure.port)
        env.setenv("AZURE_STORAGE_CONNECTION_STRING", azure.connection_string(proxy.port))
        found = Target(
            f"az://{BUCKET}/model.safetensors", model, proxy, "md5", "RUNAI_STREAMER_AZURE_"
        )
    env.setenv("RUNAI_STREAMER_CHUNK_BYTESIZE", str(256 << 10))  # 8+ ranged GETs
    env.setenv(found.prefix + "RETRY_BASE_MS", "10")
    yield found
    proxy.close()


def _assert_model(got: dict[str, torch.Tensor], model: Path) -> None:
    expected = load_file(str(model))
    assert sorted(got) == sorted(expected)
    for name, tensor in expected.items():
        assert torch.equal(got[name], tensor), name


def test_each_store_checks_what_it_keeps(
    target: Target, caplog: pytest.LogCaptureFixture, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("RUNAI_STREAMER_VERIFY", "require")  # refuses what it cannot check
    with caplog.at_level(logging.INFO, logger="runai_model_streamer"):
        _assert_model(stream_tensors(target.uri), target.model)
    assert f"verified {target.algorithm} of 1 object(s)" in caplog.text


def test_a_bit_flipped_in_transit_is_caught_and_named(target: Target, tmp_path: Path) -> None:
    # the first ranged GET reads the header; the flip lands in tensor data
    target.proxy.add("pass", "flip_bit")
    with pytest.raises(ChecksumMismatchError) as raised:
        stream_tensors(target.uri)
    assert target.proxy.applied == ["pass", "flip_bit"]
    assert target.uri in str(raised.value) and f"{target.algorithm} mismatch" in str(raised.value)
    # a download keeps nothing of it
    target.proxy.add("pass", "flip_bit")
    prefix = target.uri.rsplit("/", 1)[0]
    with pytest.raises(ChecksumMismatchError):
        pull_files(prefix, tmp_path / "dst")
    assert list((tmp_path / "dst").iterdir()) == []


def test_a_bit_flipped_in_an_objects_first_read_is_caught(target: Target) -> None:
    """The first ranged GET reads the object's first 256 KiB: its header, and the tensors
    within them, which are not read again. The flip (at 128 KiB) lands in the first tensor:
    caught where that tensor lies within the read, read again (and right) where it does not."""
    target.proxy.add("flip_bit")
    raw = target.model.read_bytes()
    header_end = 8 + int.from_bytes(raw[:8], "little")
    header = json.loads(raw[8:header_end])
    first_end = header_end + min(v["data_offsets"][1] for k, v in header.items() if k[0] != "_")
    if first_end > 256 << 10:  # the multipart model's tensors are 704 KiB
        _assert_model(stream_tensors(target.uri), target.model)
        assert target.proxy.applied == ["flip_bit"]
        return
    with pytest.raises(ChecksumMismatchError) as raised:
        stream_tensors(target.uri)
    assert target.proxy.applied == ["flip_bit"]
    assert target.uri in str(raised.value) and f"{target.algorithm} mismatch" in str(raised.value)


def test_checksum_headers_dropped_on_the_way(
    target: Target, caplog: pytest.LogCaptureFixture, monkeypatch: pytest.MonkeyPatch
) -> None:
    target.proxy.drop_checksums = True
    with caplog.at_level(logging.INFO, logger="runai_model_streamer"):
        _assert_model(stream_tensors(target.uri), target.model)
    assert f"unchecked: {target.uri} (the store keeps no checksum of it)" in caplog.text
    monkeypatch.setenv("RUNAI_STREAMER_VERIFY", "require")
    with pytest.raises(ChecksumUnavailableError) as raised:
        stream_tensors(target.uri)
    assert target.uri in str(raised.value)


@pytest.mark.parametrize("receiver", ["direct", "curl"])
def test_bodies_resumed_after_faults_are_verified(
    target: Target, caplog: pytest.LogCaptureFixture, monkeypatch: pytest.MonkeyPatch, receiver: str
) -> None:
    """Each piece of a body is checksummed as it lands, by either receive path (curl's serves
    requests through a proxy), and a body resumed after a cut continues its CRC."""
    if receiver == "curl":
        for name in ("no_proxy", "NO_PROXY"):
            monkeypatch.delenv(name, raising=False)
        monkeypatch.setenv("http_proxy", target.proxy.endpoint)
    target.proxy.add("pass", "truncate", "reset", "truncate")
    with caplog.at_level(logging.INFO, logger="runai_model_streamer"):
        _assert_model(stream_tensors(target.uri), target.model)
    assert target.proxy.applied == ["pass", "truncate", "reset", "truncate"]
    if target.algorithm:
        assert f"verified {target.algorithm} of 1 object(s)" in caplog.text


def test_a_verified_object_is_cached_and_read_back_without_a_body_from_the_store(
    target: Target, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """The write-through cache against each store: keyed by the store's version of the
    object (ETag, generation); a hit asks the store for the object's metadata only, and
    offline not even that. An object verified by a digest (Azure's MD5, S3's SHA-256) is
    cached with the CRC32C of its bytes."""
    cache = tmp_path / "cache"
    monkeypatch.setenv("RUNAI_STREAMER_CACHE_DIR", str(cache))
    _assert_model(stream_tensors(target.uri), target.model)
    wait_for_writers()  # the entry is committed in the background
    committed = list(cache.glob("entries/*/*/data"))
    assert [p.read_bytes() for p in committed] == [target.model.read_bytes()]
    target.proxy.requests.clear()
    _assert_model(stream_tensors(target.uri), target.model)
    assert target.proxy.requests and "GET range" not in target.proxy.requests
    target.proxy.kill()  # the store is gone: offline, the cache alone serves the object
    monkeypatch.setenv("RUNAI_STREAMER_CACHE_OFFLINE", "1")
    _assert_model(stream_tensors(target.uri), target.model)


def _swap_part_sizes(body: bytes) -> bytes:
    first, second = (f"<Size>{size}</Size>".encode() for size in PART_SIZES)
    return body.replace(first, b"<Size>x</Size>").replace(second, first).replace(b"<Size>x", second)


def _without_last_part(body: bytes) -> bytes:
    """A page that always says there is more, and never gets to the end."""
    start = body.rfind(b"<Part>")
    return body if start < 0 else body[:start] + body[body.index(b"</Part>", start) + 7 :]


# What a hostile or broken store may answer to GetObjectAttributes (the part layout)
HOSTILE_LAYOUTS = {
    "short": lambda body: body.replace(f"<Size>{PART_SIZES[1]}<".encode(), b"<Size>1<"),
    "huge": lambda body: body.replace(
        f"<Size>{PART_SIZES[1]}<".encode(), b"<Size>99999999999999999999999<"
    ),
    "disordered": lambda body: body.replace(b"<PartNumber>2<", b"<PartNumber>3<"),
    "endless": lambda body: _without_last_part(body).replace(
        b"<IsTruncated>false<", b"<IsTruncated>true<"
    ),
    "changed": lambda body: (
        re.sub(rb"<ETag>[^<]*</ETag>", b"<ETag>another</ETag>", body)
        if b"<ETag>" in body
        else body.replace(b"<ObjectParts>", b"<ETag>another</ETag><ObjectParts>")
    ),
    "no parts": lambda body: re.sub(rb"<Part>.*</Part>", b"", body, flags=re.S),
    "not xml": lambda body: b"\x00\xff garbage",
}


@pytest.fixture
def multipart(
    weed: S3Server, s3_env: pytest.MonkeyPatch, multipart_model: Path
) -> Iterator[tuple[str, FaultProxy]]:
    """The multipart model in SeaweedFS, behind a fault proxy: its URI and the proxy."""
    client = weed.client()
    with contextlib.suppress(client.exceptions.BucketAlreadyOwnedByYou):
        client.create_bucket(Bucket=BUCKET)
    _upload_in_parts(client, "parts/model.safetensors", multipart_model.read_bytes())
    proxy = FaultProxy(int(weed.endpoint.rsplit(":", 1)[1]))
    s3_env.setenv("AWS_ENDPOINT_URL", proxy.endpoint)
    s3_env.setenv("RUNAI_STREAMER_S3_RETRY_BASE_MS", "10")
    yield f"s3://{BUCKET}/parts/model.safetensors", proxy
    proxy.close()


def _one_part_a_page(body: bytes) -> bytes:
    """A store that pages GetObjectAttributes one part at a time: each page keeps its first
    part and says more follow, unless that part is the last."""
    parts = re.findall(rb"<Part>.*?</Part>", body, flags=re.S)
    if len(parts) < 2:
        return body
    cut = body.index(parts[1])
    body = body[:cut] + body[body.rindex(b"</Part>") + len(b"</Part>") :]
    return body.replace(b"<IsTruncated>false<", b"<IsTruncated>true<")


@pytest.mark.parametrize("answer", sorted(HOSTILE_LAYOUTS))
def test_a_part_layout_that_does_not_hold_leaves_a_multipart_checksum_unchecked(
    multipart: tuple[str, FaultProxy],
    multipart_model: Path,
    monkeypatch: pytest.MonkeyPatch,
    caplog: pytest.LogCaptureFixture,
    answer: str,
) -> None:
    """The sizes of a multipart object's parts come from the store: an answer that does not
    add up to the object, names parts out of order, pages on without end, belongs to another
    version of the object or is not XML at all leaves the checksum unchecked (auto streams
    and says why, require refuses); it never hangs the stream or fails a good object."""
    uri, proxy = multipart
    proxy.rewrite_body = (b"attributes", HOSTILE_LAYOUTS[answer])
    with caplog.at_level(logging.INFO, logger="runai_model_streamer"):
        _assert_model(stream_tensors(uri), multipart_model)
    assert "(a multipart upload), whose sizes are not known" in caplog.text
    monkeypatch.setenv("RUNAI_STREAMER_VERIFY", "require")
    with pytest.raises(ChecksumUnavailableError, match="whose sizes are not known"):
        stream_tensors(uri)


def test_a_part_layout_that_adds_up_but_is_not_the_objects_fails_the_stream(
    multipart: tuple[str, FaultProxy],
) -> None:
    """Sizes that add up to the object but put a part boundary elsewhere make the checksum of
    other parts: the stream raises, naming the object, and hands out nothing of it as good."""
    uri, proxy = multipart
    proxy.rewrite_body = (b"attributes", _swap_part_sizes)
    with pytest.raises(ChecksumMismatchError) as raised:
        stream_tensors(uri)
    assert f"{uri}: crc32 mismatch" in str(raised.value)
    assert "of its 3 parts: a multipart upload" in str(raised.value)


def test_a_part_layout_given_a_page_at_a_time_is_asked_for_to_its_end(
    multipart: tuple[str, FaultProxy],
    multipart_model: Path,
    caplog: pytest.LogCaptureFixture,
) -> None:
    """S3 gives a multipart object's part sizes 1,000 to a page (a 10 GB model uploaded in the
    AWS CLI's 8 MiB parts has 1,280): the plugin asks page after page, each from the last part
    it has, until it has them all, and then checks the composite checksum. The proxy keeps one
    part of each page; SeaweedFS answers each next page from the marker the plugin sends."""
    uri, proxy = multipart
    proxy.rewrite_body = (b"attributes", _one_part_a_page)
    with caplog.at_level(logging.INFO, logger="runai_model_streamer"):
        _assert_model(stream_tensors(uri), multipart_model)
    assert proxy.requests.count("GET") == 3  # one GetObjectAttributes a part
    assert "whose sizes are not known" not in caplog.text
    assert "verified crc32 of 1 object(s)" in caplog.text


def test_the_part_sizes_are_asked_for_only_where_they_are_checked(
    multipart: tuple[str, FaultProxy], multipart_model: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """One HEAD and one GetObjectAttributes (a GET that is not ranged) besides the ranged
    GETs; no GetObjectAttributes with RUNAI_STREAMER_VERIFY=off. The reads do not HEAD the
    object again: the stream hands the engine the size the HEAD said."""
    uri, proxy = multipart
    _assert_model(stream_tensors(uri), multipart_model)
    assert sorted(set(proxy.requests)) == ["GET", "GET range", "HEAD"]
    assert proxy.requests.count("HEAD") == proxy.requests.count("GET") == 1
    proxy.requests.clear()
    monkeypatch.setenv("RUNAI_STREAMER_VERIFY", "off")
    _assert_model(stream_tensors(uri), multipart_model)
    assert sorted(set(proxy.requests)) == ["GET range", "HEAD"]
    assert proxy.requests.count("HEAD") == 1
    # byte ranges (no checksum to check): the engine's HEAD asks nothing more
    proxy.requests.clear()
    monkeypatch.setenv("RUNAI_STREAMER_VERIFY", "auto")
    data = multipart_model.read_bytes()
    with FileStreamer() as streamer:
        streamer.stream_files([FileChunks(0, uri, [100, 6 << 20], [1000, 5000])])
        chunks = {index: bytes(t.numpy()) for _, index, t in streamer.get_chunks()}
    assert chunks == {0: data[100:1100], 1: data[6 << 20 : (6 << 20) + 5000]}
    assert proxy.requests[0] == "HEAD" and set(proxy.requests[1:]) == {"GET range"}
