"""Runs scripts/rehearse-release for the core package: four platforms' wheels, built on this
Linux x86_64 machine with zig, repaired and checked, the host's installed and streamed."""

from __future__ import annotations

import json
import subprocess
import sys
import zipfile

import pytest

from .conftest import ROOT, load_rehearse_release

pytestmark = pytest.mark.slow
VERSION = (ROOT / "VERSION").read_text().strip()
EXPECTED = {
    "linux-x86_64": ("manylinux2014_x86_64.manylinux_2_17_x86_64", "x86_64", "2.17", "so"),
    "linux-aarch64": ("manylinux2014_aarch64.manylinux_2_17_aarch64", "aarch64", "2.17", "so"),
    "macos-x86_64": ("macosx_10_15_x86_64", "x86_64", "10.15", "dylib"),
    "macos-arm64": ("macosx_11_0_arm64", "arm64", "11.0", "dylib"),
}


@pytest.fixture(scope="module")
def rehearsal(tmp_path_factory):
    out = tmp_path_factory.mktemp("rehearsal")
    result = subprocess.run(
        [sys.executable, str(ROOT / "scripts" / "rehearse-release"), "--out", str(out)],
        capture_output=True,
        text=True,
        timeout=900,
    )
    print(result.stdout[-6000:], result.stderr[-6000:])
    report = json.loads((out / "report.json").read_text())
    return result, report, out


def test_rehearsal_succeeds(rehearsal):
    result, report, _ = rehearsal
    assert report["problems"] == []
    assert result.returncode == 0, result.stdout[-3000:] + result.stderr[-3000:]
    assert "4 wheel(s), 0 problem(s)" in result.stdout


@pytest.mark.parametrize("platform", sorted(EXPECTED))
def test_wheel_of_each_platform(rehearsal, platform):
    _, report, out = rehearsal
    tag, arch, min_os, suffix = EXPECTED[platform]
    wheel = report["wheels"][platform]
    assert wheel["wheel"] == f"runai_model_streamer-{VERSION}-py3-none-{tag}.whl"
    assert wheel["binaries"].keys() == {f"runai_model_streamer/libstreamer.{suffix}"}
    (binary,) = wheel["binaries"].values()
    assert (binary["arch"], binary["min_os"]) == (arch, min_os)
    assert binary["cxx_runtime"] == "linked in"
    if platform.startswith("macos"):
        assert binary["needs"] == ["/usr/lib/libSystem.B.dylib"]  # libc++ is inside
    else:
        assert not {"libstdc++.so.6", "libc++.so.1", "libgcc_s.so.1"} & set(binary["needs"])
    assert (out / "native-libs" / platform / f"libstreamer.{suffix}").is_file()


def test_host_wheel_installs_and_streams(rehearsal):
    _, report, _ = rehearsal
    assert report["wheels"]["linux-x86_64"]["smoke"] == "ok"


def test_auditwheel_accepts_the_linux_wheels(rehearsal):
    _, report, _ = rehearsal
    for platform in ("linux-x86_64", "linux-aarch64"):
        shown = subprocess.run(
            [sys.executable, "-m", "auditwheel", "show", report["wheels"][platform]["path"]],
            capture_output=True,
            text=True,
            check=True,
        ).stdout
        assert f'platform tag:\n"manylinux_2_17_{platform.split("-")[1]}"' in shown
        assert "external shared libraries are required" not in shown


def test_checks_catch_a_wrong_architecture(rehearsal):
    # The same checks reject an aarch64 library in a wheel that claims x86_64.
    module = load_rehearse_release()
    _, report, _ = rehearsal
    platforms = module.release_platforms()
    with zipfile.ZipFile(report["wheels"]["linux-aarch64"]["path"]) as archive:
        data = archive.read("runai_model_streamer/libstreamer.so")
    info = module.read_binary(data)
    problems = module.check_binary(
        "libstreamer.so", info, platforms["linux-x86_64"], module.manylinux2014_libraries()
    )
    assert problems == ["libstreamer.so: built for aarch64, the wheel is for x86_64"]


def test_checks_catch_a_wrong_minimum_macos(rehearsal):
    module = load_rehearse_release()
    _, report, _ = rehearsal
    platforms = module.release_platforms()
    with zipfile.ZipFile(report["wheels"]["macos-arm64"]["path"]) as archive:
        info = module.read_binary(archive.read("runai_model_streamer/libstreamer.dylib"))
    wrong = module.dataclasses.replace(platforms["macos-arm64"], min_os="12.0")
    assert module.check_binary("lib", info, wrong, set()) == [
        "lib: minimum macOS 11.0, expected 12.0"
    ]
    # A library importing aligned_alloc (macOS 10.15) cannot claim 10.14.
    info_1014 = {**info, "min_os": "10.14", "undefined": [*info["undefined"], "_aligned_alloc"]}
    wrong = module.dataclasses.replace(platforms["macos-arm64"], min_os="10.14")
    assert "lib: imports _aligned_alloc (macOS 10.15) but claims macOS 10.14" in (
        module.check_binary("lib", info_1014, wrong, set())
    )
