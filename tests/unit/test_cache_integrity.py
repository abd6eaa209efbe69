"""What a cache entry holds and how damage is caught: only bytes verified against the store
enter it, with the CRC of every piece they were read in; a hit checks each piece before it is
handed out (a damaged one is read again from the store, the entry dropped after the stream),
and an object verified by a digest keeps the CRC32C of its bytes."""

from __future__ import annotations

import hashlib
import logging
import os
from pathlib import Path

import google_crc32c
import numpy as np
import pytest
from runai_model_streamer import ChecksumMismatchError, SafetensorsStreamer
from runai_model_streamer._cache import Cache
from runai_model_streamer._cache_entry import wait_for_writers

from .cache_helpers import URI, assert_same, entries, make_object, served, stream


def test_an_object_verified_by_its_md5_is_cached_with_the_crc32c_of_its_bytes(
    testfs_root: Path, tmp_path: Path, reads: Path, caplog: pytest.LogCaptureFixture
) -> None:
    """A store that keeps only an MD5 (Azure): the object is hashed in order as it lands, and
    its entry keeps the CRC32C of the bytes that matched, so a hit is checked by the engine as
    it reads, with no hashing pass; offline too."""
    path = testfs_root / "model.safetensors"
    weights = make_object(path)
    data = path.read_bytes()
    path.with_name(path.name + ".checksums").write_text(f"md5={hashlib.md5(data).hexdigest()}")
    cache = tmp_path / "cache"
    with caplog.at_level(logging.INFO, logger="runai_model_streamer"):
        assert_same(stream(cache_dir=cache), weights)
    assert "verified md5 of 1 object(s)" in caplog.text
    [meta] = entries(cache)
    assert (meta["algorithm"], meta["checksum"]) == ("crc32c", f"{google_crc32c.value(data):x}")
    served(reads)
    caplog.clear()
    with caplog.at_level(logging.INFO, logger="runai_model_streamer"):
        assert_same(stream(cache_dir=cache), weights)
    assert served(reads) == 0
    assert "1 from the cache, verified crc32c of 1 object(s)" in caplog.text
    [data_file] = cache.glob("entries/*/*/data")
    damaged = bytearray(data)
    damaged[-10] ^= 1
    data_file.write_bytes(damaged)  # the entry rots on disk: caught by its pieces' CRC32Cs
    assert_same(stream(cache_dir=cache), weights)
    assert entries(cache) == []


def test_a_corrupted_object_never_enters_the_cache(testfs_root: Path, tmp_path: Path) -> None:
    path = testfs_root / "model.safetensors"
    make_object(path)
    data = bytearray(path.read_bytes())
    data[-100] ^= 0x01  # the store's checksum is of the bytes before
    path.write_bytes(bytes(data))
    cache = tmp_path / "cache"
    with pytest.raises(ChecksumMismatchError):
        stream(cache_dir=cache)
    wait_for_writers()  # the entry's writer aborts in its own thread
    assert entries(cache) == []
    assert not list((cache / "staging").iterdir())


def test_a_corrupt_entry_never_fails_a_load(
    testfs_root: Path, tmp_path: Path, reads: Path, caplog: pytest.LogCaptureFixture
) -> None:
    """Each piece read from an entry is checked against the CRC it was written with before it
    is handed out: a damaged one is read again from the store (that piece alone), one WARNING
    says so, and the entry is dropped after the stream; the next load fetches it again."""
    path = testfs_root / "model.safetensors"
    weights = make_object(path)
    cache = tmp_path / "cache"
    stream(cache_dir=cache)
    [entry] = cache.glob("entries/*/*")
    pieces = np.fromfile(entry / "pieces", dtype="<u8").reshape(-1, 3).tolist()
    good = path.read_bytes()
    assert sorted(pieces) == sorted(
        [o, n, google_crc32c.value(good[o : o + n])] for o, n, _ in pieces
    )
    assert len(pieces) == len(weights) + 1  # the header and each tensor
    damaged = bytearray(good)
    damaged[-100] ^= 0x01  # in the last tensor
    (entry / "data").write_bytes(bytes(damaged))
    served(reads)
    with caplog.at_level(logging.WARNING, logger="runai_model_streamer"):
        assert_same(stream(cache_dir=cache), weights)
    last = max(pieces)  # (offset, size, crc) of the last tensor
    assert served(reads) == last[1]  # that tensor again, nothing else
    assert f"cache entry {entry} of {URI} is damaged (bytes {last[0]}..{last[0] + last[1]}" in (
        caplog.text
    )
    assert entries(cache) == []  # dropped once the stream was done with it
    assert_same(stream(cache_dir=cache), weights)  # fetched again, and cached again
    assert len(entries(cache)) == 1
    # an entry cut short is dropped when looked up (before reading), with a WARNING
    [data] = cache.glob("entries/*/*/data")
    os.truncate(data, 100)
    served(reads)
    assert_same(stream(cache_dir=cache), weights)
    assert served(reads) > 0


def test_an_entry_with_a_damaged_header_is_dropped_and_read_from_the_store(
    testfs_root: Path, tmp_path: Path, reads: Path, caplog: pytest.LogCaptureFixture
) -> None:
    weights = make_object(testfs_root / "model.safetensors")
    cache = tmp_path / "cache"
    stream(cache_dir=cache)
    [entry] = cache.glob("entries/*/*")
    data = bytearray((entry / "data").read_bytes())
    data[20] ^= 0x20  # in the header's JSON
    (entry / "data").write_bytes(bytes(data))
    served(reads)
    with caplog.at_level(logging.WARNING, logger="runai_model_streamer"):
        assert_same(stream(cache_dir=cache), weights)
    assert served(reads) > 0
    assert "its header's bytes changed since it was written): dropped" in caplog.text
    wait_for_writers()
    [entry_again] = cache.glob("entries/*/*")  # written again by that load
    assert (entry_again / "data").read_bytes() == (testfs_root / "model.safetensors").read_bytes()


def test_an_entry_without_its_pieces_is_checked_whole(
    testfs_root: Path, tmp_path: Path, reads: Path
) -> None:
    """An entry whose list of pieces is gone (or written before they were kept): a damaged
    byte is caught when the object is whole, the error names the entry, and it is dropped."""
    make_object(testfs_root / "model.safetensors")
    cache = tmp_path / "cache"
    stream(cache_dir=cache)
    [entry] = cache.glob("entries/*/*")
    (entry / "pieces").unlink()
    damaged = bytearray((entry / "data").read_bytes())
    damaged[-100] ^= 0x01
    (entry / "data").write_bytes(bytes(damaged))
    with pytest.raises(ChecksumMismatchError) as raised:
        stream(cache_dir=cache)
    assert "crc32c mismatch" in str(raised.value) and "cache entry" in str(raised.value)
    assert entries(cache) == []  # dropped


def test_entries_hold_the_verified_bytes_whatever_the_caller_does_with_its_tensors(
    testfs_root: Path, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """Entries are written in the background from the destinations: with owned=False and
    small windows the buffers are reused only after their writes; a caller that changes its
    tensors in place as they come never gets an entry of changed bytes (a write whose bytes no
    longer have their verified CRC drops the entry)."""
    path = testfs_root / "model.safetensors"
    make_object(path, tensors=40)
    original = path.read_bytes()
    monkeypatch.setenv("RUNAI_STREAMER_MEMORY_LIMIT", str(32 << 10))
    reused = tmp_path / "reused"
    stream(cache_dir=reused, owned=False)
    [data] = reused.glob("entries/*/*/data")
    assert data.read_bytes() == original
    changed = tmp_path / "changed"
    with SafetensorsStreamer() as streamer:
        streamer.stream_file(URI, cache_dir=changed)
        for _, tensor in streamer.get_tensors():
            tensor.zero_()
    wait_for_writers()
    assert [p.read_bytes() for p in changed.glob("entries/*/*/data")] in ([], [original])


def test_a_write_whose_bytes_changed_after_verification_drops_the_entry(tmp_path: Path) -> None:
    from runai_model_streamer._abi import CHECKSUM_CRC32C
    from runai_model_streamer._cache_entry import CacheKey

    store = Cache(tmp_path / "cache")
    data = bytes(range(256)) * 64
    for crc, committed in [(google_crc32c.value(data), 1), (google_crc32c.value(data) ^ 1, 0)]:
        key = CacheKey(f"testfs://k{crc}", "v=1", len(data))
        writer = store.writer(key)
        assert writer is not None
        writer.write(0, memoryview(data), crc, CHECKSUM_CRC32C)
        writer.commit(("crc32c", f"{crc:08x}"))
        writer.wait()
        assert len([e for e in store.entries() if e.meta.uri == key.uri]) == committed
    assert not list((tmp_path / "cache" / "staging").iterdir())
