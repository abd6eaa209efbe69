"""The local cache of objects (RUNAI_STREAMER_CACHE_DIR / cache_dir=), through the testfs
plugin: its objects have a version (their mtime) and keep the checksums written beside them,
and it logs every read it serves (RUNAI_STREAMER_TESTFS_READ_LOG), so a hit is seen to read
nothing from the store."""

from __future__ import annotations

import hashlib
import itertools
import json
import logging
import os
import subprocess
import sys
import textwrap
from pathlib import Path

import google_crc32c
import numpy as np
import pytest
import torch
from runai_model_streamer import ChecksumMismatchError, SafetensorsStreamer
from runai_model_streamer._cache import Cache
from runai_model_streamer._cache_entry import wait_for_writers
from safetensors.torch import save_file

URI = "testfs://model.safetensors"


def make_object(path: Path, seed: int = 28, tensors: int = 12) -> dict[str, torch.Tensor]:
    """A safetensors object whose store keeps its CRC32C."""
    generator = torch.Generator().manual_seed(seed)
    weights = {
        f"layer.{i}.weight": torch.randn(16, 64 + i, generator=generator) for i in range(tensors)
    }
    save_file(weights, str(path))
    crc = google_crc32c.value(path.read_bytes())
    path.with_name(path.name + ".checksums").write_text(f"crc32c={crc:08x}")
    return weights


def stream(uri: str = URI, **options: object) -> dict[str, torch.Tensor]:
    """The tensors, once the cache writers (background threads) are done too."""
    with SafetensorsStreamer() as streamer:
        streamer.stream_file(uri, **options)  # type: ignore[arg-type]
        tensors = dict(streamer.get_tensors())
    wait_for_writers()
    return tensors


def assert_same(got: dict[str, torch.Tensor], want: dict[str, torch.Tensor]) -> None:
    assert sorted(got) == sorted(want)
    for name, tensor in want.items():
        assert torch.equal(got[name], tensor), name


@pytest.fixture
def reads(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Path:
    """The testfs read log: one line per range the store served."""
    log = tmp_path / "reads.log"
    monkeypatch.setenv("RUNAI_STREAMER_TESTFS_READ_LOG", str(log))
    return log


def served(log: Path) -> int:
    """Bytes the store served (and forgets them)."""
    if not log.exists():
        return 0
    total = sum(int(line.split(" ", 2)[1]) for line in log.read_text().splitlines())
    log.unlink()
    return total


def entries(cache: Path) -> list[dict[str, object]]:
    return [json.loads(p.read_text()) for p in sorted(cache.glob("entries/*/*/meta.json"))]


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
        writer = store.writer(key, "crc32c", f"{crc:08x}")
        assert writer is not None
        writer.write(0, memoryview(data), crc, CHECKSUM_CRC32C)
        writer.commit()
        writer.wait()
        assert len([e for e in store.entries() if e.meta.uri == key.uri]) == committed
    assert not list((tmp_path / "cache" / "staging").iterdir())


def test_large_writes_go_around_the_page_cache_and_keep_every_byte(tmp_path: Path) -> None:
    """Writes of 4 KiB-congruent memory take O_DIRECT for their whole blocks (where the
    filesystem offers it: this test's directory does) and the page cache for their partial
    ends; in any order, at any offset, the entry holds exactly the bytes written."""
    import mmap

    import numpy as np
    from runai_model_streamer._abi import CHECKSUM_CRC32C
    from runai_model_streamer._cache_entry import CacheKey

    size = (3 << 20) + 12345
    memory = mmap.mmap(-1, size + 8192)  # page-aligned, as the stream's buffers are
    content = np.frombuffer(memory, dtype=np.uint8)
    content[:] = np.random.default_rng(28).integers(0, 256, len(content), dtype=np.uint8)
    cuts = [0, 1000, 4096 * 100 + 7, (2 << 20) + 1, size]  # pieces congruent to the file
    store = Cache(tmp_path / "cache")
    key = CacheKey("testfs://big", "v=1", size)
    writer = store.writer(key, "crc32c", "0")
    assert writer is not None and writer._direct is not None  # the filesystem takes O_DIRECT
    for start, end in reversed(list(itertools.pairwise(cuts))):
        piece = memoryview(memory)[start:end]
        writer.write(start, piece, google_crc32c.value(bytes(piece)), CHECKSUM_CRC32C)
    writer.commit()
    writer.wait()
    [data] = (tmp_path / "cache").glob("entries/*/*/data")
    assert data.read_bytes() == bytes(memory[:size])


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
