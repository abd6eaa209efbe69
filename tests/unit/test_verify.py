"""Integrity checks while streaming (RUNAI_STREAMER_VERIFY), through the testfs plugin, whose
objects carry the checksums written beside them ("<file>.checksums"). The expected values come
from google-crc32c, zlib, hashlib and a bit-at-a-time CRC64/NVME written here, not from this
package."""

from __future__ import annotations

import hashlib
import logging
import threading
import time
import zlib
from collections.abc import Callable
from pathlib import Path

import google_crc32c
import pytest
import torch
from runai_model_streamer import (
    ChecksumMismatchError,
    ChecksumUnavailableError,
    SafetensorsStreamer,
    StreamerConfigError,
    pull_files,
)
from safetensors.torch import save_file


def crc64nvme(data: bytes) -> int:
    crc = (1 << 64) - 1
    for byte in data:
        crc ^= byte
        for _ in range(8):
            crc = (crc >> 1) ^ (0x9A6C9329AC4BC9B5 if crc & 1 else 0)
    return crc ^ ((1 << 64) - 1)


def digest(name: str) -> Callable[[bytes], int]:
    return lambda data: int(hashlib.new(name, data).hexdigest(), 16)


#: what a store may keep of an object, and how it is computed here
CHECKSUMS: dict[str, Callable[[bytes], int]] = {
    "crc32c": lambda data: google_crc32c.value(data),
    "crc32": lambda data: zlib.crc32(data),
    "crc64nvme": crc64nvme,
    "md5": digest("md5"),  # Azure's Content-MD5
    "sha1": digest("sha1"),  # S3's x-amz-checksum-sha1
    "sha256": digest("sha256"),
}
WIDTHS = {"crc32c": 8, "crc32": 8, "crc64nvme": 16, "md5": 32, "sha1": 40, "sha256": 64}


def model(path: Path, tensors: int = 12) -> dict[str, torch.Tensor]:
    generator = torch.Generator().manual_seed(28)
    weights = {
        f"layer.{i}.weight": torch.randn(8, 40 + i, generator=generator) for i in range(tensors)
    }
    save_file(weights, str(path))
    return weights


def keep(path: Path, checksums: str) -> None:
    """What the store keeps of the object at ``path``."""
    path.with_name(path.name + ".checksums").write_text(checksums)


def stream(uri: str, **options: object) -> dict[str, torch.Tensor]:
    with SafetensorsStreamer() as streamer:
        streamer.stream_file(uri, **options)  # type: ignore[arg-type]
        return dict(streamer.get_tensors())


@pytest.mark.parametrize("algorithm", sorted(CHECKSUMS))
def test_an_object_read_whole_is_verified_against_the_stores_checksum(
    testfs_root: Path, algorithm: str, caplog: pytest.LogCaptureFixture
) -> None:
    path = testfs_root / "model.safetensors"
    weights = model(path)
    keep(path, f"{algorithm}={CHECKSUMS[algorithm](path.read_bytes()):x}")
    with caplog.at_level(logging.INFO, logger="runai_model_streamer"):
        got = stream("testfs://model.safetensors")
    assert got.keys() == weights.keys()
    for name, tensor in weights.items():
        assert torch.equal(got[name], tensor)
    assert f"verified {algorithm} of 1 object(s)" in caplog.text


@pytest.mark.parametrize("algorithm", sorted(CHECKSUMS))
def test_a_flipped_bit_raises_before_the_stream_ends(testfs_root: Path, algorithm: str) -> None:
    path = testfs_root / "model.safetensors"
    weights = model(path)
    good = path.read_bytes()
    expected = CHECKSUMS[algorithm](good)
    keep(path, f"{algorithm}={expected:x}")
    corrupted = bytearray(good)
    corrupted[len(good) - 100] ^= 0x04  # one bit of the last tensor's bytes, "in storage"
    path.write_bytes(corrupted)
    yielded = []
    with SafetensorsStreamer() as streamer:
        streamer.stream_file("testfs://model.safetensors")
        with pytest.raises(ChecksumMismatchError) as raised:
            for name, _tensor in streamer.get_tensors():
                yielded.append(name)
    message = str(raised.value)
    width = WIDTHS[algorithm]
    assert "testfs://model.safetensors" in message and f"{algorithm} mismatch" in message
    assert f"{expected:0{width}x}" in message
    assert f"{CHECKSUMS[algorithm](bytes(corrupted)):0{width}x}" in message
    assert isinstance(raised.value, OSError)
    assert len(yielded) < len(weights)  # the batch that completed the object was held back


def test_off_checks_nothing(testfs_root: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    path = testfs_root / "model.safetensors"
    weights = model(path)
    keep(path, "crc32c=12345678")  # wrong
    monkeypatch.setenv("RUNAI_STREAMER_VERIFY", "off")
    assert len(stream("testfs://model.safetensors")) == len(weights)


def test_auto_streams_an_object_it_cannot_check_and_says_why(
    testfs_root: Path, caplog: pytest.LogCaptureFixture
) -> None:
    path = testfs_root / "model.safetensors"
    weights = model(path)
    with caplog.at_level(logging.INFO, logger="runai_model_streamer"):
        assert len(stream("testfs://model.safetensors")) == len(weights)
    assert (
        "unchecked: testfs://model.safetensors (the store keeps no checksum of it)" in caplog.text
    )


@pytest.mark.parametrize(
    ("checksums", "why"),
    [
        ("", "the store keeps no checksum of it"),
        (  # an algorithm this package does not compute
            "sha512=00112233445566778899aabbccddeeff",
            "the store keeps only sha512, which cannot be computed",
        ),
        (
            "composite-crc32c=0a0b0c0d-3",
            "the store keeps only crc32c checksums of its parts (a multipart upload)",
        ),
    ],
)
def test_require_refuses_an_object_it_cannot_check_before_reading(
    testfs_root: Path, monkeypatch: pytest.MonkeyPatch, checksums: str, why: str
) -> None:
    path = testfs_root / "model.safetensors"
    model(path)
    keep(path, checksums)
    monkeypatch.setenv("RUNAI_STREAMER_VERIFY", "require")
    with SafetensorsStreamer() as streamer, pytest.raises(ChecksumUnavailableError) as raised:
        streamer.stream_file("testfs://model.safetensors")
    assert "RUNAI_STREAMER_VERIFY=require" in str(raised.value)
    assert f"testfs://model.safetensors: {why}" in str(raised.value)
    assert isinstance(raised.value, ValueError)


def test_a_stream_of_some_tensors_is_not_verified(
    testfs_root: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    path = testfs_root / "model.safetensors"
    model(path)
    keep(path, "crc32c=12345678")  # wrong, but only a whole object can be checked
    assert len(stream("testfs://model.safetensors", tensor_names=["layer.3.weight"])) == 1
    monkeypatch.setenv("RUNAI_STREAMER_VERIFY", "require")
    with pytest.raises(ChecksumUnavailableError, match="only some of its tensors were read"):
        stream("testfs://model.safetensors", tensor_names=["layer.3.weight"])


def test_require_leaves_local_files_alone(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    weights = model(tmp_path / "model.safetensors")
    monkeypatch.setenv("RUNAI_STREAMER_VERIFY", "require")
    assert len(stream(str(tmp_path / "model.safetensors"))) == len(weights)


def test_a_bad_mode_names_the_variable(testfs_root: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    model(testfs_root / "model.safetensors")
    monkeypatch.setenv("RUNAI_STREAMER_VERIFY", "sometimes")
    with pytest.raises(StreamerConfigError, match="RUNAI_STREAMER_VERIFY='sometimes'"):
        stream("testfs://model.safetensors")


def test_pull_files_verifies_each_object_and_keeps_no_corrupted_file(
    testfs_root: Path, tmp_path: Path
) -> None:
    source = testfs_root / "m"
    source.mkdir()
    config = b'{"layers": 12}'
    (source / "config.json").write_bytes(config)
    keep(source / "config.json", f"md5={hashlib.md5(config).hexdigest()}")  # hashed in order
    model(source / "model.safetensors")
    data = (source / "model.safetensors").read_bytes()
    keep(source / "model.safetensors", f"crc64nvme={crc64nvme(data):x}")
    good = tmp_path / "good"
    pull_files("testfs://m", good, ignore_pattern=["*.checksums"])
    assert (good / "model.safetensors").read_bytes() == data
    assert (good / "config.json").read_bytes() == config
    keep(source / "model.safetensors", f"crc64nvme={crc64nvme(data) ^ 1:x}")
    bad = tmp_path / "bad"
    with pytest.raises(ChecksumMismatchError, match=r"testfs://m/model\.safetensors: crc64nvme"):
        pull_files("testfs://m", bad, ignore_pattern=["*.checksums"])
    assert sorted(p.name for p in bad.iterdir()) == []  # nothing renamed in, no temporary left


def many_tensors(path: Path) -> tuple[dict[str, torch.Tensor], bytes]:
    """A model of 40 tensors of 4-40 KiB (and its bytes): many ranges in many windows."""
    generator = torch.Generator().manual_seed(31)
    weights = {f"w{i}": torch.randn(1024 * (1 + i % 10), generator=generator) for i in range(40)}
    save_file(weights, str(path))
    return weights, path.read_bytes()


@pytest.mark.parametrize("owned", [True, False])
def test_a_digest_is_hashed_in_file_order_across_windows_and_reused_buffers(
    testfs_root: Path, monkeypatch: pytest.MonkeyPatch, owned: bool
) -> None:
    """Ranges complete in any order, in windows of 64 KiB whose buffers are reused (owned=False):
    the digest still sees the object's bytes in order, and a reused buffer is not written
    before its bytes were hashed (else the digest would be of other bytes, and raise)."""
    path = testfs_root / "model.safetensors"
    weights, data = many_tensors(path)
    keep(path, f"md5={hashlib.md5(data).hexdigest()}")
    monkeypatch.setenv("RUNAI_STREAMER_MEMORY_LIMIT", str(64 << 10))
    monkeypatch.setenv("RUNAI_STREAMER_CONCURRENCY", "8")
    with SafetensorsStreamer() as streamer:
        streamer.stream_file("testfs://model.safetensors", owned=owned)
        for name, tensor in streamer.get_tensors():
            assert torch.equal(tensor, weights[name]), name
    corrupted = bytearray(data)
    corrupted[len(data) // 2] ^= 0x10  # in a window in the middle
    path.write_bytes(corrupted)
    with pytest.raises(ChecksumMismatchError, match="md5 mismatch"):
        stream("testfs://model.safetensors", owned=owned)


def test_a_stream_left_early_stops_hashing_and_waits_for_nothing(
    testfs_root: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    path = testfs_root / "model.safetensors"
    weights, data = many_tensors(path)
    keep(path, f"sha256={hashlib.sha256(data).hexdigest()}")
    monkeypatch.setenv("RUNAI_STREAMER_MEMORY_LIMIT", str(64 << 10))
    for _ in range(3):
        with SafetensorsStreamer() as streamer:
            streamer.stream_file("testfs://model.safetensors", owned=False)
            for count, (name, tensor) in enumerate(streamer.get_tensors()):
                assert torch.equal(tensor, weights[name])
                if count == 5:
                    break  # the consumer goes away with ranges in flight and pieces waiting
    deadline = time.monotonic() + 10
    while any(t.name.startswith("runai-digest") for t in threading.enumerate()):
        assert time.monotonic() < deadline, "a digest thread outlived its stream"
        time.sleep(0.05)


def _composite(data: bytes, sizes: list[int]) -> str:
    """What S3 keeps of an object uploaded in parts of these sizes (the last takes the rest),
    with a CRC32 of each (computed with zlib here): the CRC32 of the parts' big-endian CRC32s,
    and (what the s3 plugin adds from GetObjectAttributes) the sizes of the parts, in runs."""
    sizes = [*sizes, len(data) - sum(sizes)]
    starts = [sum(sizes[:i]) for i in range(len(sizes))]
    crcs = b"".join(
        zlib.crc32(data[start : start + size]).to_bytes(4, "big")
        for start, size in zip(starts, sizes, strict=True)
    )
    runs: list[list[int]] = []
    for size in sizes:
        if runs and runs[-1][0] == size:
            runs[-1][1] += 1
        else:
            runs.append([size, 1])
    layout = "/".join(f"{size}*{count}" for size, count in runs)
    return f"composite-crc32={zlib.crc32(crcs):08x}-{len(sizes)},parts={layout}"


def _parts_of(part: int, size: int) -> list[int]:
    """Parts of ``part`` bytes but the last, as the AWS SDKs upload them."""
    return [part] * ((size - 1) // part)


@pytest.mark.parametrize(
    "parts",
    [
        pytest.param(lambda size: _parts_of(4096, size), id="4KiB"),
        pytest.param(lambda size: _parts_of(10_007, size), id="odd"),
        pytest.param(lambda size: [], id="one"),
        # parts of several sizes: a first and a last part alone do not tell where the others
        # start (the sizes of these add up as if they were all of the first's size)
        pytest.param(lambda size: [5_000, 2_500, 7_500], id="uneven"),
    ],
)
def test_a_multipart_objects_checksum_of_its_parts_checksums_is_checked(
    testfs_root: Path,
    caplog: pytest.LogCaptureFixture,
    monkeypatch: pytest.MonkeyPatch,
    parts: Callable[[int], list[int]],
) -> None:
    """Parts of 4 KiB and of an odd size start inside tensors (and inside the header): each
    side of a boundary gets its own CRC."""
    path = testfs_root / "model.safetensors"
    weights = model(path)
    data = path.read_bytes()
    sizes = parts(len(data))
    assert sum(sizes) < len(data)
    keep(path, _composite(data, sizes))
    monkeypatch.setenv("RUNAI_STREAMER_VERIFY", "require")
    monkeypatch.setenv("RUNAI_STREAMER_CHUNK_BYTESIZE", "8192")  # many ranges
    with caplog.at_level(logging.INFO, logger="runai_model_streamer"):
        assert sorted(stream("testfs://model.safetensors")) == sorted(weights)
    assert "verified crc32 of 1 object(s)" in caplog.text

    flipped = bytearray(data)
    flipped[len(data) - 100] ^= 1  # the store keeps the checksum of other bytes
    keep(path, _composite(bytes(flipped), sizes))
    with pytest.raises(ChecksumMismatchError) as raised:
        stream("testfs://model.safetensors")
    assert "crc32 mismatch: the store keeps" in str(raised.value)
    assert f"(the crc32 of the crc32s of its {len(sizes) + 1} parts" in str(raised.value)


@pytest.mark.parametrize(
    ("layout", "why"),
    [
        ("", "whose sizes are not known"),
        ("parts=4096*2", "whose sizes (4096*2) do not add up to its bytes and parts"),
        ("parts=4096*3/0*1", "whose sizes (4096*3/0*1) do not add up to its bytes and parts"),
        ("parts=4096x3", "whose sizes (4096x3) do not add up to its bytes and parts"),
    ],
)
def test_a_multipart_checksum_whose_parts_are_not_known_is_not_checked(
    testfs_root: Path, caplog: pytest.LogCaptureFixture, layout: str, why: str
) -> None:
    path = testfs_root / "model.safetensors"
    weights = model(path)
    keep(path, ",".join(filter(None, ["composite-crc32=0a0b0c0d-3", layout])))
    with caplog.at_level(logging.INFO, logger="runai_model_streamer"):
        assert sorted(stream("testfs://model.safetensors")) == sorted(weights)
    assert why in caplog.text
