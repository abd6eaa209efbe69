"""Integrity checks while streaming (RUNAI_STREAMER_VERIFY), through the testfs plugin, whose
objects carry the checksums written beside them ("<file>.checksums"). The expected CRCs come
from google-crc32c, zlib and a bit-at-a-time CRC64/NVME written here, not from this package."""

from __future__ import annotations

import logging
import zlib
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


CRCS = {
    "crc32c": lambda data: google_crc32c.value(data),
    "crc32": lambda data: zlib.crc32(data),
    "crc64nvme": crc64nvme,
}


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


@pytest.mark.parametrize("algorithm", sorted(CRCS))
def test_an_object_read_whole_is_verified_against_the_stores_checksum(
    testfs_root: Path, algorithm: str, caplog: pytest.LogCaptureFixture
) -> None:
    path = testfs_root / "model.safetensors"
    weights = model(path)
    keep(path, f"{algorithm}={CRCS[algorithm](path.read_bytes()):x}")
    with caplog.at_level(logging.INFO, logger="runai_model_streamer"):
        got = stream("testfs://model.safetensors")
    assert got.keys() == weights.keys()
    for name, tensor in weights.items():
        assert torch.equal(got[name], tensor)
    assert f"verified {algorithm} of 1 object(s)" in caplog.text


@pytest.mark.parametrize("algorithm", sorted(CRCS))
def test_a_flipped_bit_raises_before_the_stream_ends(testfs_root: Path, algorithm: str) -> None:
    path = testfs_root / "model.safetensors"
    weights = model(path)
    good = path.read_bytes()
    expected = CRCS[algorithm](good)
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
    width = 16 if algorithm == "crc64nvme" else 8
    assert "testfs://model.safetensors" in message and f"{algorithm} mismatch" in message
    assert f"{expected:0{width}x}" in message
    assert f"{CRCS[algorithm](bytes(corrupted)):0{width}x}" in message
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
        (
            "md5=00112233445566778899aabbccddeeff",
            "the store keeps only md5, which cannot be computed",
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
    keep(source / "config.json", f"crc32c={google_crc32c.value(config):x}")
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
