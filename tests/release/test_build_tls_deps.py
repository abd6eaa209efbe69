"""scripts/build-tls-deps refuses bad arguments before it downloads or deletes anything.
(The builds themselves run in test_rehearsal.py.)"""

from __future__ import annotations

import subprocess
from pathlib import Path

import pytest

from .conftest import ROOT

SCRIPT = ROOT / "scripts" / "build-tls-deps"


def run(*args: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [str(SCRIPT), *args], capture_output=True, text=True, timeout=60, check=False
    )


@pytest.mark.parametrize(
    ("args", "message"),
    [
        ((), "--prefix is required"),
        (("--prefix", "P", "--mirror", "ftp"), "--mirror must be upstream or debian, not 'ftp'"),
        (("--prefix", "P", "--target", "riscv64-linux-gnu"), "unsupported target 'riscv64"),
        (("--prefix", "P", "--target", "aarch64-macos"), "give the macOS target a version"),
        (("--prefix", "P", "--colour", "red"), "unknown argument '--colour'"),
    ],
)
def test_bad_arguments_are_clear_errors(tmp_path: Path, args: tuple[str, ...], message: str):
    args = tuple(str(tmp_path / "prefix") if a == "P" else a for a in args)
    result = run(*args)
    assert result.returncode == 2, result.stderr
    assert message in result.stderr
    assert not (tmp_path / "prefix.sources").exists()  # nothing was downloaded


def test_a_directory_it_did_not_make_is_left_alone(tmp_path: Path):
    prefix = tmp_path / "mine"
    prefix.mkdir()
    (prefix / "precious.txt").write_text("keep me")
    result = run("--prefix", str(prefix), "--target", "x86_64-linux-gnu.2.17")
    assert result.returncode == 2
    assert "not made by this script; not replacing it" in result.stderr
    assert (prefix / "precious.txt").read_text() == "keep me"


def test_help_describes_the_options():
    result = run("--help")
    assert result.returncode == 0
    for option in ("--prefix", "--target", "--mirror", "--sources", "sha256"):
        assert option in result.stdout
