"""The runai-model-streamer command, run as a subprocess (python -m runai_model_streamer)."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import pytest
import torch
from runai_model_streamer import SafetensorsStreamer
from runai_model_streamer._sample import plan_model
from safetensors.torch import load_file


def run(*args: str, timeout: float = 240) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [sys.executable, "-m", "runai_model_streamer", *args],
        capture_output=True,
        text=True,
        timeout=timeout,
        check=False,
    )


def test_sample_then_stream_with_verify(tmp_path: Path) -> None:
    path = tmp_path / "model.safetensors"
    made = run("sample", str(path), "--size", "8MB")
    assert made.returncode == 0, made.stderr
    assert f"to {path}" in made.stdout
    tensors = load_file(str(path))
    assert len(tensors) == len(plan_model(8 * 10**6)) > 10
    assert {t.dtype for t in tensors.values()} >= {torch.bfloat16, torch.float32, torch.int64}
    assert abs(sum(t.numel() * t.element_size() for t in tensors.values()) - 8 * 10**6) < 64
    streamed = run("stream", str(path), "--verify")
    assert streamed.returncode == 0, streamed.stderr
    assert "GB/s" in streamed.stdout and "tensors/s" in streamed.stdout
    assert f"all {len(tensors)} tensors equal" in streamed.stdout


def test_stream_a_sharded_directory_with_options(tmp_path: Path) -> None:
    directory = tmp_path / "sharded"
    assert run("sample", str(directory), "--size", "4MB", "--shards", "3").returncode == 0
    assert len(list(directory.glob("*.safetensors"))) == 3
    done = run(
        "stream",
        str(directory),
        "--verify",
        "--memory-limit",
        "1MB",
        "--concurrency",
        "2",
        "--chunk-bytesize",
        "64KiB",
        "--not-owned",
        "--quiet",
    )
    # with --not-owned the buffers are reused: --verify must keep copies to pass
    assert done.returncode == 0, done.stdout + done.stderr
    assert "from 3 file(s)" in done.stdout


def test_stream_errors_name_the_path(tmp_path: Path) -> None:
    missing = tmp_path / "absent.safetensors"
    done = run("stream", str(missing))
    assert done.returncode == 1
    assert str(missing) in done.stderr and "error" in done.stderr
    bad = tmp_path / "bad.safetensors"
    bad.write_bytes(b"\x05" + b"\0" * 7 + b"{oops")
    done = run("stream", str(bad))
    assert done.returncode == 1 and str(bad) in done.stderr and "JSON" in done.stderr


def test_verify_detects_a_difference(tmp_path: Path) -> None:
    path = tmp_path / "model.safetensors"
    assert run("sample", str(path), "--size", "1MB").returncode == 0
    # the CLI verifies against the file on disk; a streamer reading a different file than the
    # reference would differ: emulate by verifying a second, different sample under the same name
    other = tmp_path / "other.safetensors"
    assert run("sample", str(other), "--size", "1MB", "--seed", "5").returncode == 0
    from runai_model_streamer.cli import _verify

    with SafetensorsStreamer() as streamer:
        streamer.stream_file(other)
        kept = {(0, name): tensor for name, tensor in streamer.get_tensors()}
    problems = _verify([str(path)], kept)
    assert problems and all(str(path) in p for p in problems)
    assert _verify([str(other)], kept) == []


def test_info_reports_library_and_backends() -> None:
    done = run("info")
    assert done.returncode == 0, done.stdout + done.stderr
    assert "libstreamer" in done.stdout and "API 4" in done.stdout
    assert "platform" in done.stdout and "status ok" in done.stdout


def test_info_without_the_library_explains(tmp_path: Path) -> None:
    env = dict(os.environ, STREAMER_LIBRARY=str(tmp_path / "gone.so"))
    done = subprocess.run(
        [sys.executable, "-m", "runai_model_streamer", "info"],
        capture_output=True,
        text=True,
        env=env,
        check=False,
    )
    assert done.returncode == 1
    assert "NOT LOADED" in done.stdout and str(tmp_path / "gone.so") in done.stdout


def test_bench_small(tmp_path: Path) -> None:
    done = run(
        "bench",
        "--size",
        "4MB",
        "--rounds",
        "2",
        "--loaders",
        "runai,safetensors",
        "--dir",
        str(tmp_path),
        "--quiet",
    )
    assert done.returncode == 0, done.stdout + done.stderr
    rows = [line for line in done.stdout.splitlines() if line.startswith("| ")]
    assert rows[0].startswith("| loader | GB/s")
    labels = [row.split("|")[1].strip() for row in rows[2:]]
    assert labels == ["runai-model-streamer", "safetensors (mmap+copy)"]
    assert "MiB" in rows[2]
    assert list(tmp_path.iterdir()) == []  # the temporary model is removed


def test_bench_worker_reports_json(tmp_path: Path) -> None:
    path = tmp_path / "m.safetensors"
    assert run("sample", str(path), "--size", "1MB").returncode == 0
    from runai_model_streamer import _bench

    result = _bench.run_once(_bench.Loader("this", "runai"), [str(path)])
    assert result["tensors"] == len(plan_model(10**6))
    assert json.loads(json.dumps(result))["rss_peak"] >= result["rss_base"] > 0


def test_bench_pread_ceiling_reads_every_byte(tmp_path: Path) -> None:
    paths = [tmp_path / "a.bin", tmp_path / "b.bin"]
    paths[0].write_bytes(b"x" * ((8 << 20) * 2 + 12345))  # spans three 8 MiB pieces
    paths[1].write_bytes(b"")
    from runai_model_streamer import _bench

    result = _bench.run_once(_bench.Loader("ceiling", "pread"), [str(p) for p in paths])
    assert result["bytes"] == (8 << 20) * 2 + 12345
    assert result["tensors"] == 0
    gone = _bench.Loader("ceiling", "pread", files=[str(tmp_path / "missing.bin")])
    with pytest.raises(RuntimeError, match=r"missing\.bin"):
        _bench.run_once(gone, [])


def test_verify_without_safetensors_says_so_before_streaming(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    from runai_model_streamer.cli import main

    monkeypatch.setitem(sys.modules, "safetensors", None)  # as if it were not installed
    with pytest.raises(SystemExit) as raised:
        main(["stream", str(tmp_path / "absent.safetensors"), "--verify"])
    message = str(raised.value)
    assert "safetensors package, which is not installed: pip install safetensors" in message


def test_pull_a_local_directory_with_a_progress_bar(tmp_path: Path) -> None:
    source = tmp_path / "model"
    assert run("sample", str(source), "--size", "2MB", "--shards", "2").returncode == 0
    (source / "notes.md").write_text("skip me")
    dst = tmp_path / "copy"
    done = run("pull", str(source), str(dst), "--ignore", "*.md")
    assert done.returncode == 0, done.stderr
    assert sorted(p.name for p in dst.iterdir()) == sorted(
        p.name for p in source.glob("*.safetensors")
    )
    assert f"into {dst}" in done.stdout and "GB/s" in done.stdout
    missing = run("pull", str(tmp_path / "absent"), str(dst))
    assert missing.returncode == 1 and "absent: no such directory" in missing.stderr
