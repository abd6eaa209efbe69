"""How the benchmarks run loaders: every loader once a round, no loader always right after the
same one (on the VMs measured, the process after one that freed gigabytes runs slower, so a
fixed predecessor biases one loader's figures), and a page cache either dropped or refilled
before every run."""

from __future__ import annotations

import itertools
import subprocess
from collections import Counter
from pathlib import Path
from types import ModuleType

import pytest
from runai_model_streamer._bench import Loader, round_order, run_benchmark


def _loaders(count: int) -> list[Loader]:
    return [Loader(f"loader {i}", "runai") for i in range(count)]


@pytest.mark.parametrize("count", range(1, 11))
def test_every_loader_follows_every_other_equally_often(count: int) -> None:
    loaders = _loaders(count)
    rounds = count if count % 2 == 0 else 2 * count  # a Williams square's cycle
    follows: Counter[tuple[str, str]] = Counter()
    for round_index in range(rounds):
        order = round_order(loaders, round_index)
        assert sorted(x.label for x in order) == sorted(x.label for x in loaders)
        follows.update((a.label, b.label) for a, b in itertools.pairwise(order))
    expected = {(a.label, b.label) for a in loaders for b in loaders if a is not b}
    assert set(follows) == expected
    assert len(set(follows.values())) <= 1  # each pair the same number of times


def test_the_order_is_the_same_in_every_run() -> None:
    loaders = _loaders(6)
    first_run = [round_order(loaders, r) for r in range(5)]
    assert first_run == [round_order(loaders, r) for r in range(5)]
    assert round_order([], 3) == []


def test_the_first_loader_does_not_always_follow_the_same_one() -> None:
    loaders = _loaders(6)  # bench_load's warm set with --strategies: this package first
    before = []
    for round_index in range(1, 5):  # round 1 has it first
        order = round_order(loaders, round_index)
        before.append(order[order.index(loaders[0]) - 1].label)
    assert len(set(before)) == 4


def test_a_run_is_cold_or_warm_not_both(tmp_path: Path) -> None:
    with pytest.raises(ValueError, match="cold or warm"):
        run_benchmark(_loaders(1), [str(tmp_path / "x")], cold=True, warm=True)


def test_warm_runs_read_the_files_first(tmp_path: Path) -> None:
    # The refill reads every file before the loader runs: a missing one fails there.
    with pytest.raises(FileNotFoundError, match=r"missing\.safetensors"):
        run_benchmark(_loaders(1), [str(tmp_path / "missing.safetensors")], warm=True)


def _harness() -> ModuleType:
    import importlib
    import sys

    sys.path.insert(0, str(Path(__file__).resolve().parents[2] / "benchmarks"))
    try:
        return importlib.import_module("harness")
    finally:
        sys.path.pop(0)


def test_the_wheel_carries_only_the_cli_loaders_and_the_benchmarks_all(tmp_path: Path) -> None:
    """The comparison loaders live in benchmarks/ (comparison_worker.py), not in the package's
    worker; the benchmarks' loaders run through that worker, which has the package's too."""
    from runai_model_streamer import _bench, _bench_worker

    assert set(_bench_worker.LOADERS) == {
        "runai",
        "safetensors",
        "safetensors-pread",
        "fastsafetensors",
        "pread",
    }
    path = tmp_path / "m.bin"
    path.write_bytes(b"y" * 100_000)
    with pytest.raises(RuntimeError, match="exit 2"):
        _bench.run_once(_bench.Loader("dd in the wheel", "dd"), [str(path)])
    harness = _harness()
    for kind in ("dd", "pread"):
        result = harness.run_once(harness.Loader(kind, kind), [str(path)])
        assert result["bytes"] == 100_000, kind


def _loopback_qdisc() -> str:
    shown = subprocess.run(
        ["tc", "qdisc", "show", "dev", "lo"], capture_output=True, text=True, check=True
    )
    return shown.stdout


def test_a_link_rate_shapes_the_loopback_only_while_the_block_runs() -> None:
    """--link-rate of bench_s3.py and bench_hf.py: inside the block the loopback device sends
    at that rate (tc's token bucket), after it as before; a rate tc refuses stops the
    benchmark, naming the command (needs tc and root, as the benchmarks do)."""
    harness = _harness()
    before = _loopback_qdisc()
    with harness.link_rate("1gbit"):
        shaped = _loopback_qdisc()
    assert "tbf" in shaped and "rate 1Gbit" in shaped
    assert _loopback_qdisc() == before
    with pytest.raises(SystemExit, match="tbf rate fast"), harness.link_rate("fast"):
        pass
    assert _loopback_qdisc() == before
