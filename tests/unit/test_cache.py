"""The local cache of objects (RUNAI_STREAMER_CACHE_DIR / cache_dir=), through the testfs
plugin: its objects have a version (their mtime) and keep the checksums written beside them, so
a hit, a miss, eviction, sharing between processes and a full disk are real. Helpers:
cache_helpers.py; what entries hold and how damage is caught: test_cache_integrity.py."""

from __future__ import annotations

import itertools
import logging
import os
import subprocess
import sys
import textwrap
from pathlib import Path

import google_crc32c
import numpy as np
import pytest
from runai_model_streamer._cache import Cache
from runai_model_streamer._cache_entry import wait_for_writers

from .cache_helpers import URI, assert_same, entries, make_object, served, stream


def test_a_verified_object_is_cached_and_then_read_from_the_cache_alone(
    testfs_root: Path, tmp_path: Path, reads: Path, caplog: pytest.LogCaptureFixture
) -> None:
    weights = make_object(testfs_root / "model.safetensors")
    size = (testfs_root / "model.safetensors").stat().st_size
    cache = tmp_path / "cache"
    assert_same(stream(cache_dir=cache), weights)
    assert served(reads) >= size - 4096  # the first load reads it from the store
    [meta] = entries(cache)
    assert meta["uri"] == URI and meta["size"] == size and meta["algorithm"] == "crc32c"
    [data] = cache.glob("entries/*/*/data")
    assert data.read_bytes() == (testfs_root / "model.safetensors").read_bytes()
    assert not list((cache / "staging").iterdir())

    with caplog.at_level(logging.INFO, logger="runai_model_streamer"):
        assert_same(stream(cache_dir=cache), weights)
    assert served(reads) == 0  # a hit: the HEAD only, not one byte from the store
    assert "1 from the cache, verified crc32c of 1 object(s)" in caplog.text


def test_the_variable_names_the_cache_too(
    testfs_root: Path, tmp_path: Path, reads: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    weights = make_object(testfs_root / "model.safetensors")
    monkeypatch.setenv("RUNAI_STREAMER_CACHE_DIR", str(tmp_path / "cache"))
    stream()
    served(reads)
    assert_same(stream(), weights)
    assert served(reads) == 0


def test_a_changed_object_is_a_miss_never_stale_bytes(
    testfs_root: Path, tmp_path: Path, reads: Path, caplog: pytest.LogCaptureFixture
) -> None:
    path = testfs_root / "model.safetensors"
    make_object(path, seed=1)
    cache = tmp_path / "cache"
    stream(cache_dir=cache)
    changed = make_object(path, seed=2)  # same size, other bytes, a new version (mtime)
    os.utime(path, ns=(path.stat().st_atime_ns, path.stat().st_mtime_ns + 10**9))
    served(reads)
    with caplog.at_level(logging.INFO, logger="runai_model_streamer"):
        assert_same(stream(cache_dir=cache), changed)
    # the old entry was read at once, while the store was asked: refuted, it was not taken
    assert f"not taken: {URI} changed in its store since it was cached" in caplog.text
    assert served(reads) > 0
    assert len(entries(cache)) == 2  # each version its entry (the old one ages out)


def test_what_is_not_read_whole_and_verified_is_not_cached(
    testfs_root: Path, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    path = testfs_root / "model.safetensors"
    make_object(path)
    cache = tmp_path / "cache"
    stream(cache_dir=cache, tensor_names=["layer.3.weight"])  # some tensors only
    assert entries(cache) == []
    monkeypatch.setenv("RUNAI_STREAMER_VERIFY", "off")  # nothing verified
    stream(cache_dir=cache)
    assert entries(cache) == []
    monkeypatch.delenv("RUNAI_STREAMER_VERIFY")
    path.with_name(path.name + ".checksums").unlink()  # nothing to verify against
    stream(cache_dir=cache)
    assert not cache.exists()  # nothing was even begun


def test_an_object_gone_from_its_store_is_not_served_from_the_cache_online(
    testfs_root: Path, tmp_path: Path, caplog: pytest.LogCaptureFixture
) -> None:
    """The entry is read while the store is asked; the store's answer (no such object) wins:
    the same error as without a cache."""
    make_object(testfs_root / "model.safetensors")
    cache = tmp_path / "cache"
    stream(cache_dir=cache)
    (testfs_root / "model.safetensors").unlink()
    with (
        caplog.at_level(logging.INFO, logger="runai_model_streamer"),
        pytest.raises(FileNotFoundError, match=URI),
    ):
        stream(cache_dir=cache)
    assert "cache entries read while the store was asked not taken: the store did not" in (
        caplog.text
    )
    assert len(entries(cache)) == 1  # kept: the store may come back with that very object


def test_offline_uses_the_cache_without_asking_the_store(
    testfs_root: Path, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    weights = make_object(testfs_root / "model.safetensors")
    cache = tmp_path / "cache"
    stream(cache_dir=cache)
    (testfs_root / "model.safetensors").unlink()  # the store is gone
    monkeypatch.setenv("RUNAI_STREAMER_CACHE_OFFLINE", "1")
    assert_same(stream(cache_dir=cache), weights)


def test_least_recently_used_entries_are_evicted_under_the_cap_never_one_in_use(
    testfs_root: Path, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    uris = []
    for index in range(3):
        make_object(testfs_root / f"m{index}.safetensors", seed=index)
        uris.append(f"testfs://m{index}.safetensors")
    size = (testfs_root / "m0.safetensors").stat().st_size
    cache = tmp_path / "cache"
    monkeypatch.setenv("RUNAI_STREAMER_CACHE_MAX_BYTES", str(2 * size + size // 2))
    stream(uris[0], cache_dir=cache)
    stream(uris[1], cache_dir=cache)
    stream(uris[0], cache_dir=cache)  # m0 used last: m1 is the least recently used
    stream(uris[2], cache_dir=cache)
    assert sorted(e["uri"] for e in entries(cache)) == [uris[0], uris[2]]
    # an entry in use (a stream holds it) is not evicted, even to empty the cache
    store = Cache(cache)
    [held] = [e for e in store.entries() if e.meta.uri == uris[0]]
    opened = store.lookup(held.meta.key)
    assert opened is not None
    evicted = store.prune(0)
    assert [e.meta.uri for e in evicted] == [uris[2]]
    assert [e["uri"] for e in entries(cache)] == [uris[0]]
    opened.release()
    assert [e.meta.uri for e in store.prune(0)] == [uris[0]]


def test_uses_a_moment_apart_keep_their_order(testfs_root: Path, tmp_path: Path) -> None:
    """The kernel stamps files only as finely as its tick (a few ms): uses closer than that
    must not tie, or eviction picks by directory order (a CI run evicted the entry used last)."""
    cache = tmp_path / "cache"
    for name in ("a", "b"):
        make_object(testfs_root / f"{name}.safetensors")
        stream(f"testfs://{name}.safetensors", cache_dir=cache)
    store = Cache(cache)
    keys = {e.meta.uri: e.meta.key for e in store.entries()}
    for _ in range(10):
        for first, last in itertools.permutations(keys):
            for uri in (first, last):  # microseconds apart, no stat between
                opened = store.lookup(keys[uri])
                assert opened is not None
                opened.release()
            assert store.entries()[-1].meta.uri == last


WRITER = textwrap.dedent(
    """
    import os, sys
    from runai_model_streamer import SafetensorsStreamer
    with SafetensorsStreamer() as streamer:
        streamer.stream_file(sys.argv[1], cache_dir=sys.argv[2])
        for count, _ in enumerate(streamer.get_tensors()):
            if count == int(sys.argv[3]):
                os._exit(17)  # killed mid-write
    print("done")
    """
)


def test_a_process_killed_mid_write_leaves_no_entry(testfs_root: Path, tmp_path: Path) -> None:
    weights = make_object(testfs_root / "model.safetensors", tensors=40)
    cache = tmp_path / "cache"
    # windows of 64 KiB: the object is read (and written) in several, the kill comes in the first
    env = {**os.environ, "RUNAI_STREAMER_MEMORY_LIMIT": str(64 << 10)}
    killed = subprocess.run(
        [sys.executable, "-c", WRITER, URI, str(cache), "3"],
        capture_output=True,
        text=True,
        env=env,
    )
    assert killed.returncode == 17, killed.stderr
    assert entries(cache) == []
    assert len(list((cache / "staging").iterdir())) == 1  # what it was writing
    assert_same(stream(cache_dir=cache), weights)  # a miss: from the store, then committed
    assert len(entries(cache)) == 1
    assert not list((cache / "staging").iterdir())  # the dead writer's is cleaned up


def test_processes_streaming_one_object_at_once_share_one_entry(
    testfs_root: Path, tmp_path: Path
) -> None:
    make_object(testfs_root / "model.safetensors", tensors=40)
    cache = tmp_path / "cache"
    env = dict(os.environ)
    runs = [
        subprocess.Popen(
            [sys.executable, "-c", WRITER, URI, str(cache), "-1"],
            stdout=subprocess.PIPE,
            stderr=subprocess.PIPE,
            text=True,
            env=env,
        )
        for _ in range(4)
    ]
    for run in runs:
        out, err = run.communicate(timeout=120)
        assert run.returncode == 0 and out.strip() == "done", err
    assert len(entries(cache)) == 1
    assert not list((cache / "staging").iterdir())


def test_a_full_disk_never_fails_a_load(
    testfs_root: Path, tmp_path: Path, caplog: pytest.LogCaptureFixture
) -> None:
    """The cache on a 64 KiB tmpfs (made here; the suite runs as root): the write fails,
    the load goes on from the store with one WARNING, and nothing is left."""
    weights = make_object(testfs_root / "model.safetensors", tensors=40)
    assert (testfs_root / "model.safetensors").stat().st_size > 64 << 10
    cache = tmp_path / "small"
    cache.mkdir()
    subprocess.run(["mount", "-t", "tmpfs", "-o", "size=64k", "tmpfs", str(cache)], check=True)
    try:
        with caplog.at_level(logging.WARNING, logger="runai_model_streamer"):
            assert_same(stream(cache_dir=cache), weights)
        warnings = [r for r in caplog.records if r.levelno == logging.WARNING]
        assert len(warnings) == 1 and "No space left on device" in warnings[0].getMessage()
        assert entries(cache) == [] and not list((cache / "staging").iterdir())
        # read-only: no entry either, the same single WARNING
        subprocess.run(["mount", "-o", "remount,ro", str(cache)], check=True)
        caplog.clear()
        with caplog.at_level(logging.WARNING, logger="runai_model_streamer"):
            assert_same(stream(cache_dir=cache), weights)
        warnings = [r for r in caplog.records if r.levelno == logging.WARNING]
        assert len(warnings) == 1 and "Read-only file system" in warnings[0].getMessage()
    finally:
        subprocess.run(["umount", str(cache)], check=True)


def test_the_cli_lists_sizes_and_prunes_the_cache(
    testfs_root: Path, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    from runai_model_streamer.cli import main

    make_object(testfs_root / "model.safetensors")
    size = (testfs_root / "model.safetensors").stat().st_size
    cache = tmp_path / "cache"
    assert main(["stream", "--quiet", "--cache-dir", str(cache), URI]) == 0
    wait_for_writers()
    capsys.readouterr()
    assert main(["cache", "ls", "--cache-dir", str(cache)]) == 0
    listed = capsys.readouterr().out.split()
    assert listed[0] == str(size) and listed[-1] == URI and listed[-2].startswith("crc32c=")
    assert main(["cache", "du", "--cache-dir", str(cache)]) == 0
    assert capsys.readouterr().out.startswith(f"{size} bytes (")
    assert main(["cache", "prune", "--cache-dir", str(cache)]) == 1  # no limit given
    assert "give --max-bytes" in capsys.readouterr().err
    assert main(["cache", "prune", "--cache-dir", str(cache), "--max-bytes", "0"]) == 0
    assert capsys.readouterr().out.startswith(f"evicted 1 entries, {size} bytes")
    assert entries(cache) == []


@pytest.mark.parametrize("shift", [0, 100])
def test_large_writes_go_around_the_page_cache_and_keep_every_byte(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, shift: int
) -> None:
    """Writes take O_DIRECT for their whole blocks (where the filesystem offers it: this
    test's directory does), from the memory where it is 4 KiB-congruent to the file (shift 0),
    else through the bounce buffer (here of 1 MiB: several turns), and the page cache for
    their partial ends; in any order, at any offset, the entry holds exactly the bytes
    written."""
    import mmap

    from runai_model_streamer import _cache_entry
    from runai_model_streamer._abi import CHECKSUM_CRC32C
    from runai_model_streamer._cache_entry import CacheKey

    monkeypatch.setattr(_cache_entry, "BOUNCE_BYTES", 1 << 20)

    size = (3 << 20) + 12345
    memory = mmap.mmap(-1, size + 8192)  # page-aligned, as the stream's buffers are
    content = np.frombuffer(memory, dtype=np.uint8)
    content[:] = np.random.default_rng(28).integers(0, 256, len(content), dtype=np.uint8)
    cuts = [0, 1000, 4096 * 100 + 7, (2 << 20) + 1, size]  # pieces congruent to the file
    store = Cache(tmp_path / "cache")
    key = CacheKey("testfs://big", "v=1", size)
    writer = store.writer(key)
    assert writer is not None and writer._direct is not None  # the filesystem takes O_DIRECT
    for start, end in reversed(list(itertools.pairwise(cuts))):
        piece = memoryview(memory)[start + shift : end + shift]
        writer.write(start, piece, google_crc32c.value(bytes(piece)), CHECKSUM_CRC32C)
    writer.commit(("crc32c", "0"))
    writer.wait()
    [data] = (tmp_path / "cache").glob("entries/*/*/data")
    assert data.read_bytes() == bytes(memory[shift : size + shift])


@pytest.mark.parametrize(
    ("name", "value"),
    [("RUNAI_STREAMER_CACHE_MAX_BYTES", "lots"), ("RUNAI_STREAMER_CACHE_OFFLINE", "yes")],
)
def test_a_bad_setting_names_the_variable(
    testfs_root: Path, tmp_path: Path, monkeypatch: pytest.MonkeyPatch, name: str, value: str
) -> None:
    from runai_model_streamer import StreamerConfigError

    make_object(testfs_root / "model.safetensors")
    monkeypatch.setenv(name, value)
    with pytest.raises(StreamerConfigError) as raised:
        stream(cache_dir=tmp_path / "cache")
    assert name in str(raised.value) and repr(value) in str(raised.value)
