"""Distributed streaming over gloo: ranks on 127.0.0.1, each a fresh process (worker.py).

Every rank's tensors are compared bit for bit with ``safetensors.torch.load_file``; bytes read
from storage per rank are counted by the testfs plugin's read log.
"""

from __future__ import annotations

import hashlib
import zlib
from pathlib import Path
from typing import Any

import google_crc32c
import pytest
from runai_model_streamer._headers import REMOTE_PREFIX_READ_SIZE

from tests.distributed.conftest import Launch
from tests.distributed.launcher import (
    FILES,
    ROUND_BYTES,
    check_tensors,
    expected_model,
    header,
    launch,
)


def _data_bytes_read(out: Path, case: str, rank: int, model_dir: Path) -> int:
    """Bytes of tensor data that the testfs plugin served to a rank (header reads left out)."""
    log = out / f"{case}.rank{rank}.reads"
    if not log.exists():
        return 0
    starts = {f: header(model_dir / f)["data_start"] for f in FILES}
    total = 0
    for line in log.read_text().splitlines():
        offset, size, uri = line.split(" ", 2)
        if int(offset) >= starts[uri.rsplit("/", 1)[-1]]:
            total += int(size)
    return total


def _within_first_reads(model_dir: Path) -> int:
    """Bytes of tensor data within the first read of each file (256 KiB, for its header): a
    stream of its own copies those tensors from it and does not read them again."""
    total = 0
    for file in FILES:
        found = header(model_dir / file)
        first_read = min(256 << 10, (model_dir / file).stat().st_size)
        for entry in found["tensors"].values():
            begin, end = entry["data_offsets"]
            if found["data_start"] + end <= first_read:
                total += end - begin
    return total


def _check_reads(
    run: dict[str, Any], case: str, ranks: list[int], expected: dict[str, Any], model_dir: Path
) -> list[int]:
    """The ranks of one group read every requested byte once, none more than its share plus
    one stripe; returns the bytes per rank."""
    per_rank = [_data_bytes_read(run["out"], case, r, model_dir) for r in ranks]
    assert sum(per_rank) == expected["total"], (case, per_rank)
    count = len(ranks)
    chunks = len(expected["order"])
    share = -(-expected["total"] // count) + 64 * chunks // count + 64
    stripe = ROUND_BYTES // count
    assert max(per_rank) <= share + stripe, (case, per_rank, share, stripe)
    for rank, read in zip(ranks, per_rank, strict=True):
        assert run["results"][case, rank]["bytes_read"] == read, (case, rank)
    return per_rank


AUTO = {str(r): {"RUNAI_STREAMER_DIST": "auto"} for r in range(4)}
OFF = {str(r): {"RUNAI_STREAMER_DIST": "0"} for r in range(4)}
SUBSET = ["f0.big", "f0.empty", "f1.layer3", "f1.bool", "f2.empty2", "f2.layer39", "f2.scalar"]


def _main_cases() -> list[dict[str, Any]]:
    testfs = [f"testfs://{f}" for f in FILES]
    return [
        {"name": "testfs", "paths": testfs},
        {"name": "subset", "paths": testfs, "tensor_names": SUBSET},
        {"name": "one-file", "paths": testfs[2:]},
        {"name": "local", "paths": "LOCAL"},
        # RUNAI_STREAMER_DIST=auto shares object-storage streams only (on gloo)
        {"name": "auto-testfs", "paths": testfs, "env_by_rank": AUTO},
        {"name": "auto-local", "paths": "LOCAL", "env_by_rank": AUTO},
        {"name": "off", "paths": testfs, "env_by_rank": OFF},
    ]


def _localize(cases: list[dict[str, Any]], model_dir: Path) -> list[dict[str, Any]]:
    for case in cases:
        if case.get("paths") == "LOCAL":
            case["paths"] = [str(model_dir / f) for f in FILES]
    return cases


@pytest.mark.parametrize("world", [2, 4])
def test_every_rank_gets_every_tensor_and_the_storage_serves_each_byte_once(
    launch_ranks: Launch, model_dir: Path, world: int
) -> None:
    run = launch_ranks(world, _localize(_main_cases(), model_dir))
    assert run["returncodes"] == [0] * world, run["logs"]
    ranks = list(range(world))
    full = expected_model(model_dir, FILES)
    for case, expected in [
        ("testfs", full),
        ("subset", expected_model(model_dir, FILES, SUBSET)),
        ("one-file", expected_model(model_dir, FILES[2:])),
        ("local", full),
        ("auto-testfs", full),
    ]:
        for rank in ranks:
            check_tensors(run["results"][case, rank], expected, f"{case}, rank {rank}")
        if case == "local":  # no read log for local files: the stream's own count
            read = [run["results"][case, r]["bytes_read"] for r in ranks]
            assert sum(read) == full["total"], read
        else:
            _check_reads(run, case, ranks, expected, model_dir)
    for rank in ranks:
        for case in ("auto-local", "off"):  # every rank reads everything itself
            check_tensors(run["results"][case, rank], full, f"{case} {rank}", shared=False)
        read = _data_bytes_read(run["out"], "off", rank, model_dir)
        assert read + _within_first_reads(model_dir) == full["total"]


def test_byte_ranges_through_distributed_streamer(launch_ranks: Launch, model_dir: Path) -> None:
    """FileChunks straight through DistributedStreamer: overlapping, unordered, size-0 and
    odd ranges, one larger than a share; only size-0 ranges; no requests at all. Chunks come
    per request, by offset."""
    size = (model_dir / FILES[0]).stat().st_size
    cases = {
        "chunks": [
            [f"testfs://{FILES[0]}", [size - 100, 0, 5, 1000, 7], [100, 300_000, 0, 64 * 1024, 3]],
            [str(model_dir / FILES[1]), [17, 99], [1, 12345]],
        ],
        "zeros": [[f"testfs://{FILES[0]}", [0, 10], [0, 0]], [f"testfs://{FILES[1]}", [5], [0]]],
        "none": [],
    }
    run = launch_ranks(
        3, [{"name": name, "kind": "chunks", "requests": r} for name, r in cases.items()]
    )
    assert run["returncodes"] == [0, 0, 0], run["logs"]
    data = [(model_dir / FILES[0]).read_bytes(), (model_dir / FILES[1]).read_bytes()]
    for name, requests in cases.items():
        expected_order = []
        for file_id, (_, offsets, sizes) in enumerate(requests):
            ordered = sorted(range(len(offsets)), key=lambda i: (offsets[i], sizes[i], i))
            expected_order += [f"{file_id}:{i}" for i in ordered]
        for rank in range(3):
            result = run["results"][name, rank]
            assert "error" not in result, (name, result.get("message"))
            assert result["is_distributed"] and result["order"] == expected_order, name
            for file_id, (_, offsets, sizes) in enumerate(requests):
                for index, (offset, length) in enumerate(zip(offsets, sizes, strict=True)):
                    got = result["tensors"][f"{file_id}:{index}"]
                    assert bytes(got.numpy()) == data[file_id][offset : offset + length]


def test_groups_are_per_node_unless_global(launch_ranks: Launch, model_dir: Path) -> None:
    """Four ranks on two (pretended) nodes: each node's pair reads the model once; with
    RUNAI_STREAMER_DIST_GLOBAL=1 the four ranks read it once together."""
    testfs = [f"testfs://{f}" for f in FILES]
    everyone = {str(r): {"RUNAI_STREAMER_DIST_GLOBAL": "1"} for r in range(4)}
    cases = [
        {"name": "per-node", "paths": testfs},
        {"name": "global", "paths": testfs, "env_by_rank": everyone},
    ]
    run = launch_ranks(4, cases, fake_nodes=2)
    assert run["returncodes"] == [0] * 4, run["logs"]
    full = expected_model(model_dir, FILES)
    for case in ("per-node", "global"):
        for rank in range(4):
            check_tensors(run["results"][case, rank], full, f"{case}, rank {rank}")
    _check_reads(run, "per-node", [0, 1], full, model_dir)
    _check_reads(run, "per-node", [2, 3], full, model_dir)
    _check_reads(run, "global", [0, 1, 2, 3], full, model_dir)


def test_failures_raise_on_every_rank_and_the_group_goes_on(
    launch_ranks: Launch, model_dir: Path
) -> None:
    testfs = [f"testfs://{f}" for f in FILES]
    headers = sum(min((model_dir / f).stat().st_size, REMOTE_PREFIX_READ_SIZE) for f in FILES)
    fail_after = headers + 100_000
    cases = [
        # rank 1 asks for fewer files
        {"name": "different", "paths": testfs, "paths_by_rank": {"1": testfs[:2]}},
        # rank 2 sees no files at all (its storage lacks them)
        {
            "name": "missing",
            "paths": testfs,
            "env_by_rank": {"2": {"RUNAI_STREAMER_TESTFS_ROOT": str(model_dir / "empty")}},
        },
        # rank 3's storage fails after the headers and 100 KB of tensor data
        {
            "name": "broken",
            "paths": testfs,
            "env_by_rank": {"3": {"RUNAI_STREAMER_TESTFS_FAIL_AFTER_BYTES": str(fail_after)}},
        },
        {"name": "after", "paths": testfs},
    ]
    run = launch_ranks(4, cases)
    assert run["returncodes"] == [0] * 4, run["logs"]
    results = run["results"]

    different = [results["different", r] for r in range(4)]
    assert {r["error"] for r in different} == {"DistributedStreamError"}
    assert len({r["message"] for r in different}) == 1  # the same error on every rank
    message = different[0]["message"]
    assert "different data" in message and "rank 1: 2 files" in message

    assert results["missing", 2]["error"] == "StreamerFileNotFoundError"
    for rank in (0, 1, 3):
        result = results["missing", rank]
        assert result["error"] == "DistributedStreamError", result
        assert "rank 2" in result["message"] and "model-0.safetensors" in result["message"]

    assert results["broken", 3]["error"] == "StreamerIOError", results["broken", 3]
    assert "simulated server failure" in results["broken", 3]["message"]
    for rank in (0, 1, 2):
        result = results["broken", rank]
        assert result["error"] == "DistributedStreamError", result
        message = result["message"]
        assert message.startswith("reading the distributed stream failed on another rank: rank 3")
        assert "simulated server failure" in message and "testfs://model-" in message

    full = expected_model(model_dir, FILES)
    for rank in range(4):
        check_tensors(results["after", rank], full, f"after, rank {rank}")


def test_a_rank_killed_mid_stream_makes_the_others_raise(
    launch_ranks: Launch, model_dir: Path
) -> None:
    testfs = [f"testfs://{f}" for f in FILES]
    run = launch_ranks(3, [{"name": "killed", "paths": testfs, "exit_after": {"1": 5}}])
    assert run["returncodes"][1] == 17, run["logs"]
    for rank in (0, 2):
        result = run["results"]["killed", rank]
        assert result["error"] == "DistributedStreamError", result
        assert "rank" in result["message"]
        assert result["seconds"] < 30 + 15  # RUNAI_STREAMER_DIST_TIMEOUT=30 in the launcher


def _with_checksums(
    model_dir: Path, root: Path, flip_in: str | None = None, algorithm: str = "crc32c"
) -> Path:
    """A copy of the model whose objects keep their CRC32C, MD5 or S3 multipart CRC32 (testfs's
    "<file>.checksums"), of the bytes as written; ``flip_in``: one bit of that file's tensor
    data flipped afterwards."""
    root.mkdir()
    for name in FILES:
        data = bytearray((model_dir / name).read_bytes())
        if algorithm == "composite-crc32":  # S3's of parts of 100,000 bytes but the last
            parts = [bytes(data[o : o + 100_000]) for o in range(0, len(data), 100_000)]
            crcs = b"".join(zlib.crc32(p).to_bytes(4, "big") for p in parts)
            layout = f"100000*{len(parts) - 1}/{len(parts[-1])}*1"
            value = f"{zlib.crc32(crcs):08x}-{len(parts)},parts={layout}"
        elif algorithm == "crc32c":
            value = f"{google_crc32c.value(bytes(data)):08x}"
        else:
            value = hashlib.new(algorithm, bytes(data)).hexdigest()
        (root / f"{name}.checksums").write_text(f"{algorithm}={value}")
        if name == flip_in:
            data[len(data) - 1000] ^= 0x10
        (root / name).write_bytes(bytes(data))
    return root


def test_each_rank_verifies_every_object_from_the_pieces_all_ranks_read(
    tmp_path: Path, model_dir: Path
) -> None:
    """The ranks read disjoint pieces, gather the pieces' CRCs and each verifies every object
    whole; a flipped bit raises the same ChecksumMismatchError on every rank, before the
    stream ends; ranks that disagree on verifying raise before reading. An MD5, which cannot
    be combined from pieces, is left unchecked by every rank, which says why."""
    good = _with_checksums(model_dir, tmp_path / "good")
    bad = _with_checksums(model_dir, tmp_path / "bad", flip_in=FILES[1])
    md5 = _with_checksums(model_dir, tmp_path / "md5", algorithm="md5")
    multipart = _with_checksums(model_dir, tmp_path / "multipart", algorithm="composite-crc32")
    testfs = [f"testfs://{f}" for f in FILES]
    cases = [
        {"name": "good", "paths": testfs, "env_by_rank": _env(3, good)},
        {"name": "bad", "paths": testfs, "env_by_rank": _env(3, bad)},
        {
            "name": "disagree",
            "paths": testfs,
            "env_by_rank": {**_env(3, good), "2": {"RUNAI_STREAMER_VERIFY": "off"}},
        },
        {"name": "md5", "paths": testfs, "env_by_rank": _env(3, md5)},
        {"name": "multipart", "paths": testfs, "env_by_rank": _env(3, multipart)},
    ]
    run = launch(tmp_path / "out", 3, cases, {"RUNAI_STREAMER_TESTFS_ROOT": str(good)})
    assert run["returncodes"] == [0] * 3, run["logs"]
    full = expected_model(model_dir, FILES)
    for rank in range(3):
        result = run["results"]["good", rank]
        check_tensors(result, full, f"good, rank {rank}")
        assert result["verified"] == f"verified crc32c of {len(FILES)} object(s)", result
    _check_reads(run, "good", [0, 1, 2], full, model_dir)  # still each byte once
    bad_results = [run["results"]["bad", rank] for rank in range(3)]
    for result in bad_results:
        assert result["error"] == "ChecksumMismatchError", result
        assert f"testfs://{FILES[1]}: crc32c mismatch" in result["message"]
        assert len(result["order"]) < len(full["order"])  # raised before the stream ended
    assert len({r["message"] for r in bad_results}) == 1
    for rank in range(3):
        result = run["results"]["disagree", rank]
        assert result["error"] == "DistributedStreamError", result
        assert "3 verified" in result["message"] and "0 verified" in result["message"]
    for rank in range(3):  # pieces that span parts are split by the rank that read them
        result = run["results"]["multipart", rank]
        check_tensors(result, full, f"multipart, rank {rank}")
        assert result["verified"] == f"verified crc32 of {len(FILES)} object(s)", result
    why = "the store keeps only md5, which the ranks of a shared stream cannot combine"
    for rank in range(3):
        result = run["results"]["md5", rank]
        check_tensors(result, full, f"md5, rank {rank}")
        assert result["verified"].startswith(f"unchecked: testfs://{FILES[0]} ({why}"), result


def _env(world: int, root: Path) -> dict[str, dict[str, str]]:
    """Every rank's testfs serves ``root``."""
    return {str(r): {"RUNAI_STREAMER_TESTFS_ROOT": str(root)} for r in range(world)}
