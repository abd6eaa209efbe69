"""The local cache in pull_files (testfs store, whose objects keep their CRC32C): a pulled object
that was verified is cached as it lands; a later pull copies it from its entry, checked whole,
and reads nothing but the HEAD from the store; a damaged entry is dropped and the store serves."""

from __future__ import annotations

import json
import logging
import os
from pathlib import Path

import google_crc32c
import pytest
from runai_model_streamer import pull_files
from runai_model_streamer._cache_entry import wait_for_writers

from .cache_helpers import assert_same, entries, make_object, served, stream


def _store(root: Path) -> dict[str, bytes]:
    """A model prefix ``m/`` of two objects that keep their CRC32C and one that keeps none."""
    (root / "m").mkdir()
    make_object(root / "m" / "model.safetensors")
    tokenizer = root / "m" / "tokenizer.json"
    tokenizer.write_bytes(b'{"vocab": [' + b'"t", ' * 5000 + b'"end"]}')
    tokenizer.with_name("tokenizer.json.checksums").write_text(
        f"crc32c={google_crc32c.value(tokenizer.read_bytes()):08x}"
    )
    (root / "m" / "config.json").write_text('{"layers": 12}')  # no checksum: not cached
    return {p.name: p.read_bytes() for p in (root / "m").iterdir() if p.suffix != ".checksums"}


def _pull(dst: Path, cache: Path) -> dict[str, bytes]:
    pull_files("testfs://m", dst, ignore_pattern=["*.checksums"], cache_dir=cache)
    wait_for_writers()
    return {p.name: p.read_bytes() for p in dst.iterdir()}


def _entry_data(cache: Path, uri: str) -> Path:
    [meta] = [
        m for m in cache.glob("entries/*/*/meta.json") if json.loads(m.read_text())["uri"] == uri
    ]
    return meta.parent / "data"


def test_a_second_pull_copies_the_cached_objects_and_a_stream_reads_them_too(
    testfs_root: Path, tmp_path: Path, reads: Path, caplog: pytest.LogCaptureFixture
) -> None:
    files = _store(testfs_root)
    cache = tmp_path / "cache"
    assert _pull(tmp_path / "first", cache) == files
    assert served(reads) >= sum(len(data) for data in files.values())
    cached = sorted(str(e["uri"]) for e in entries(cache))
    assert cached == ["testfs://m/model.safetensors", "testfs://m/tokenizer.json"]

    assert _pull(tmp_path / "second", cache) == files
    assert served(reads) == len(files["config.json"])  # the uncached object alone

    # an entry a pull wrote serves a stream (checked whole: it kept the pull's pieces), which
    # leaves the CRC of each tensor in it: damage found in a later stream is repaired there
    uri = "testfs://m/model.safetensors"
    weights = make_object(tmp_path / "same.safetensors")  # the bytes of the store's object
    assert_same(stream(uri, cache_dir=cache), weights)
    assert served(reads) == 0
    data = _entry_data(cache, uri)
    damaged = bytearray(data.read_bytes())
    damaged[-10] ^= 0x01  # in the last tensor
    data.write_bytes(bytes(damaged))
    with caplog.at_level(logging.WARNING, logger="runai_model_streamer"):
        assert_same(stream(uri, cache_dir=cache), weights)
    assert "is damaged (bytes" in caplog.text
    assert 0 < served(reads) <= weights["layer.11.weight"].nbytes


def test_a_damaged_entry_is_dropped_and_the_object_pulled_from_its_store(
    testfs_root: Path, tmp_path: Path, reads: Path, caplog: pytest.LogCaptureFixture
) -> None:
    files = _store(testfs_root)
    cache = tmp_path / "cache"
    _pull(tmp_path / "first", cache)
    served(reads)
    data = _entry_data(cache, "testfs://m/tokenizer.json")
    damaged = bytearray(data.read_bytes())
    damaged[100] ^= 0x01
    data.write_bytes(bytes(damaged))

    with caplog.at_level(logging.WARNING, logger="runai_model_streamer"):
        assert _pull(tmp_path / "second", cache) == files
    assert "is damaged (its bytes changed since it was written)" in caplog.text
    assert served(reads) == len(files["config.json"]) + len(files["tokenizer.json"])
    # written again, from the store's bytes
    assert _entry_data(cache, "testfs://m/tokenizer.json").read_bytes() == files["tokenizer.json"]


def test_a_changed_object_is_pulled_from_its_store_and_unverified_pulls_are_not_cached(
    testfs_root: Path, tmp_path: Path, reads: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    _store(testfs_root)
    cache = tmp_path / "cache"
    _pull(tmp_path / "first", cache)
    path = testfs_root / "m" / "model.safetensors"
    make_object(path, seed=5)  # same size, other bytes, a new version (its mtime)
    os.utime(path, ns=(path.stat().st_atime_ns, path.stat().st_mtime_ns + 10**9))
    served(reads)
    assert _pull(tmp_path / "second", cache)["model.safetensors"] == path.read_bytes()
    assert served(reads) >= path.stat().st_size

    monkeypatch.setenv("RUNAI_STREAMER_VERIFY", "off")
    other = tmp_path / "other-cache"
    _pull(tmp_path / "third", other)
    assert entries(other) == []


def test_the_cli_pulls_through_the_cache(testfs_root: Path, tmp_path: Path) -> None:
    from .test_cli import run

    files = _store(testfs_root)
    cache = tmp_path / "cache"
    for dst in ("first", "second"):
        done = run("pull", "testfs://m", str(tmp_path / dst), "--quiet", "--cache-dir", str(cache))
        assert done.returncode == 0, done.stderr
        assert {p.name: p.read_bytes() for p in (tmp_path / dst).iterdir()} == {
            **files,
            **{
                f"{n}.checksums": (testfs_root / "m" / f"{n}.checksums").read_bytes()
                for n in ("model.safetensors", "tokenizer.json")
            },
        }
    assert len(entries(cache)) == 2
    listed = run("cache", "ls", "--cache-dir", str(cache))
    assert "testfs://m/tokenizer.json" in listed.stdout, listed
