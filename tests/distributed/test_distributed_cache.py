"""The local cache in distributed streams (gloo ranks on 127.0.0.1, the testfs store).

The ranks of a shared stream read an object from their cache entries only when every rank has
an entry of it; otherwise every rank reads it from the store. A rank that can write an object's
entry (one per cache directory: its lock) writes it from the exchanged bytes, so a node's
cache is filled by one read of the store shared by its ranks.
"""

from __future__ import annotations

import json
import os
from pathlib import Path
from typing import Any

from runai_model_streamer._cache_entry import read_pieces

from tests.distributed.launcher import (
    FILES,
    check_tensors,
    expected_model,
    header,
    launch,
)
from tests.distributed.test_distributed import _check_reads, _data_bytes_read, _with_checksums

WORLD = 3
TESTFS = [f"testfs://{name}" for name in FILES]


def _env(**variables: str) -> dict[str, dict[str, str]]:
    return {str(rank): dict(variables) for rank in range(WORLD)}


def _entries(cache: Path) -> dict[str, Path]:
    """The committed entries of ``cache``: URI -> entry directory."""
    found = {}
    for meta in cache.glob("entries/*/*/meta.json"):
        found[json.loads(meta.read_text())["uri"]] = meta.parent
    return found


def _case(name: str, **extra: Any) -> dict[str, Any]:
    return {"name": name, "paths": TESTFS, "barrier": True, **extra}


def _filled(tmp_path: Path, model_dir: Path, cases: list[str] | None = None) -> dict[str, str]:
    """The environment of a testfs store that keeps CRC32Cs and a cache, filled by a stream of
    WORLD ranks (``cases``: the names of the streams run, "fill" by default)."""
    store = _with_checksums(model_dir, tmp_path / "store")
    env = {
        "RUNAI_STREAMER_TESTFS_ROOT": str(store),
        "RUNAI_STREAMER_CACHE_DIR": str(tmp_path / "cache"),
    }
    filled = launch(tmp_path / "fill", WORLD, [_case(c) for c in cases or ["fill"]], env)
    assert filled["returncodes"] == [0] * WORLD, filled["logs"]
    return env


def _flip(entry: Path, at: int) -> None:
    """Flips a bit of an entry's data (negative ``at``: from its end)."""
    data = bytearray((entry / "data").read_bytes())
    data[at] ^= 0x10
    (entry / "data").write_bytes(bytes(data))


def test_the_ranks_fill_the_cache_with_one_shared_read_and_then_read_it_alone(
    tmp_path: Path, model_dir: Path
) -> None:
    store = _with_checksums(model_dir, tmp_path / "store")
    cache, other = tmp_path / "cache", tmp_path / "other-cache"
    nothing = tmp_path / "empty-store"
    nothing.mkdir()
    lacking = _env(RUNAI_STREAMER_CACHE_DIR=str(cache))
    lacking["2"] = {"RUNAI_STREAMER_CACHE_DIR": str(other)}  # rank 2 has no entries
    offline = _env(
        RUNAI_STREAMER_CACHE_DIR=str(cache),
        RUNAI_STREAMER_CACHE_OFFLINE="1",
        RUNAI_STREAMER_TESTFS_ROOT=str(nothing),  # the store is gone: only entries serve
    )
    changed = _with_checksums(model_dir, tmp_path / "changed-store")  # the objects anew
    for path in changed.iterdir():
        os.utime(path, ns=(path.stat().st_atime_ns, path.stat().st_mtime_ns + 10**9))
    changed_offline = _env(
        RUNAI_STREAMER_CACHE_DIR=str(cache),
        RUNAI_STREAMER_CACHE_OFFLINE="1",
        RUNAI_STREAMER_TESTFS_ROOT=str(changed),
    )
    changed_offline["2"]["RUNAI_STREAMER_CACHE_DIR"] = str(tmp_path / "third-cache")
    cases = [
        _case("fill"),
        _case("hit"),
        _case("one-rank-lacks", env_by_rank=lacking),
        _case("offline", env_by_rank=offline),
        _case("alone", env_by_rank=_env(RUNAI_STREAMER_DIST="0")),
        _case("auto", env_by_rank=_env(RUNAI_STREAMER_DIST="auto")),
        # offline, ranks 0 and 1 take their entries unasked, rank 2 has none and asks the
        # store, whose objects changed: 0 and 1 must read the store too, and cannot
        _case("offline-changed", env_by_rank=changed_offline),
    ]
    env = {"RUNAI_STREAMER_TESTFS_ROOT": str(store), "RUNAI_STREAMER_CACHE_DIR": str(cache)}
    run = launch(tmp_path / "out", WORLD, cases, env)
    assert run["returncodes"] == [0] * WORLD, run["logs"]
    full = expected_model(model_dir, FILES)
    results = run["results"]
    ranks = list(range(WORLD))

    # the first load reads each byte once, shared, and one rank writes each entry
    for rank in ranks:
        check_tensors(results["fill", rank], full, f"fill, rank {rank}")
        assert results["fill", rank]["cached"] == 0
    _check_reads(run, "fill", ranks, full, model_dir)
    entries = _entries(cache)
    assert sorted(entries) == sorted(TESTFS)
    for name in FILES:
        entry = entries[f"testfs://{name}"]
        assert (entry / "data").read_bytes() == (model_dir / name).read_bytes()
        # each tensor's CRC is kept (a stream of one rank checks its pieces), and each
        # stripe's (a group of this size checks those)
        pieces = read_pieces(entry)
        data_start = header(model_dir / name)["data_start"]
        assert (0, data_start) in pieces
        for tensor in header(model_dir / name)["tensors"].values():
            begin, end = tensor["data_offsets"]
            if end > begin:
                assert (data_start + begin, end - begin) in pieces, (name, tensor)
    assert not list((cache / "staging").iterdir())

    # every rank has every entry: nothing is read from the store
    for rank in ranks:
        result = results["hit", rank]
        check_tensors(result, full, f"hit, rank {rank}")
        assert result["cached"] == len(FILES), result
        assert result["verified"] == f"verified crc32c of {len(FILES)} object(s)", result
        assert (run["out"] / f"hit.rank{rank}.reads").read_text() == "", rank  # not a byte

    # rank 2 lacks the entries: every rank reads the store, each byte once, as checked as
    # ever; rank 2 fills its own cache meanwhile
    for rank in ranks:
        check_tensors(results["one-rank-lacks", rank], full, f"one-rank-lacks, rank {rank}")
        assert results["one-rank-lacks", rank]["cached"] == 0
    _check_reads(run, "one-rank-lacks", ranks, full, model_dir)
    assert sorted(_entries(other)) == sorted(TESTFS)

    # offline, the entries alone serve (the store has no objects)
    for rank in ranks:
        check_tensors(results["offline", rank], full, f"offline, rank {rank}")
        assert results["offline", rank]["cached"] == len(FILES)

    # with RUNAI_STREAMER_DIST=auto, a stream whose every object is a hit on every rank reads
    # local files only: on gloo each rank reads them alone, as auto does with local paths
    for rank in ranks:
        check_tensors(results["auto", rank], full, f"auto, rank {rank}", shared=False)
        assert results["auto", rank]["cached"] == len(FILES)

    for rank in (0, 1):
        result = results["offline-changed", rank]
        assert result["error"] == "StreamerIOError", result
        assert "changed in its store since it was cached" in result["message"], result
    assert results["offline-changed", 2]["error"] == "DistributedStreamError"
    assert "changed in its store" in results["offline-changed", 2]["message"]

    # an entry written by a shared stream serves a rank that streams alone
    for rank in ranks:
        check_tensors(results["alone", rank], full, f"alone, rank {rank}", shared=False)
        assert results["alone", rank]["cached"] == len(FILES)
        assert _data_bytes_read(run["out"], "alone", rank, model_dir) == 0


def test_a_damaged_entry_is_repaired_from_the_store_and_dropped(
    tmp_path: Path, model_dir: Path
) -> None:
    """A byte of an entry changed on disk: the rank that reads that piece finds it damaged
    (the entry keeps each stripe's CRC), reads it from the store instead, and the load goes
    on; the entry is dropped and the next load writes it again."""
    env = _filled(tmp_path, model_dir)
    cache = tmp_path / "cache"
    _flip(_entries(cache)[TESTFS[1]], -1000)  # in the file's last tensors

    run = launch(tmp_path / "out", WORLD, [_case("damaged"), _case("again")], env)
    assert run["returncodes"] == [0] * WORLD, run["logs"]
    full = expected_model(model_dir, FILES)
    reread = 0
    for rank in range(WORLD):
        check_tensors(run["results"]["damaged", rank], full, f"damaged, rank {rank}")
        assert run["results"]["damaged", rank]["cached"] == len(FILES)
        reread += _data_bytes_read(run["out"], "damaged", rank, model_dir)
        check_tensors(run["results"]["again", rank], full, f"again, rank {rank}")
    assert 0 < reread < full["total"] / 10  # the damaged piece only
    assert "cache entry" in run["logs"] and "is damaged" in run["logs"]
    # the damaged entry was dropped after the stream; "again" read that object from the store
    # and wrote its entry anew
    assert (
        _entries(cache)[TESTFS[1]].joinpath("data").read_bytes()
        == (model_dir / FILES[1]).read_bytes()
    )
    assert [run["results"]["again", rank]["cached"] for rank in range(WORLD)] == [2] * WORLD


def test_read_by_a_group_of_another_size_a_damaged_split_piece_raises_and_drops_the_entry(
    tmp_path: Path, model_dir: Path
) -> None:
    """Two ranks read an entry three wrote: a piece split between the two is not one whose CRC
    the entry keeps, so damage there is caught when the object is verified, before the stream
    ends: every rank raises the same error, naming the entry, which is dropped."""
    env = _filled(tmp_path, model_dir)
    cache = tmp_path / "cache"
    big = header(model_dir / FILES[0])
    begin, end = big["tensors"]["f0.big"]["data_offsets"]
    _flip(_entries(cache)[TESTFS[0]], big["data_start"] + (begin + end) // 2)  # split by ranks

    run = launch(tmp_path / "out", 2, [_case("split"), _case("again")], env)
    assert run["returncodes"] == [0] * 2, run["logs"]
    full = expected_model(model_dir, FILES)
    errors = [run["results"]["split", rank] for rank in range(2)]
    for result in errors:
        assert result["error"] == "ChecksumMismatchError", result
        assert f"{TESTFS[0]}: crc32c mismatch" in result["message"]
        assert "cache entry" in result["message"] and "dropped" in result["message"]
        assert len(result["order"]) < len(full["order"])
    for rank in range(2):
        check_tensors(run["results"]["again", rank], full, f"again, rank {rank}")
    assert (_entries(cache)[TESTFS[0]] / "data").read_bytes() == (model_dir / FILES[0]).read_bytes()


def test_a_group_of_another_size_leaves_its_pieces_and_damage_there_is_then_repaired(
    tmp_path: Path, model_dir: Path
) -> None:
    """Once two ranks have read (and verified) an entry three wrote, it keeps the CRCs of the
    two ranks' pieces too: damage in a piece split between them is then read again from the
    store, and the load goes on."""
    env = _filled(tmp_path, model_dir, ["fill", "learn"])
    cache = tmp_path / "cache"
    learned = launch(tmp_path / "learn", 2, [_case("learn")], env)
    assert learned["returncodes"] == [0] * 2, learned["logs"]
    big = header(model_dir / FILES[0])
    begin, end = big["tensors"]["f0.big"]["data_offsets"]
    _flip(_entries(cache)[TESTFS[0]], big["data_start"] + (begin + end) // 2)

    run = launch(tmp_path / "out", 2, [_case("repaired"), _case("again")], env)
    assert run["returncodes"] == [0] * 2, run["logs"]
    full = expected_model(model_dir, FILES)
    for rank in range(2):
        for case in ("repaired", "again"):
            check_tensors(run["results"][case, rank], full, f"{case}, rank {rank}")
    reread = [_data_bytes_read(run["out"], "repaired", rank, model_dir) for rank in range(2)]
    # the damaged piece alone: one rank's half of the tensor (a round of its own)
    assert 0 < sum(reread) <= (end - begin) // 2 + 64, reread
    assert [run["results"]["again", rank]["cached"] for rank in range(2)] == [2, 2]
