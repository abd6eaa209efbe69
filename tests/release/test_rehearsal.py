"""Runs scripts/rehearse-release: the core package's wheels for four platforms and the four
plugins' wheels for Linux x86_64 (static OpenSSL + libcurl from scripts/build-tls-deps), built on
this Linux x86_64 machine with zig, repaired and checked; the host's wheels installed and
streamed (local and s3:// over HTTPS), the aarch64 core library run under qemu-aarch64.
The plugin wheels of the other three platforms (and the aarch64 s3 plugin streaming over HTTPS
under qemu) are one documented command, `scripts/rehearse-release --qemu` (docs/RELEASING.md):
each platform's OpenSSL + curl build adds about 5 minutes, which would take a fresh-machine CI
run past 45 minutes."""

from __future__ import annotations

import dataclasses
import json
import subprocess
import sys
import zipfile

import pytest

from .conftest import ROOT, load_release_modules

pytestmark = pytest.mark.slow
VERSION = (ROOT / "VERSION").read_text().strip()
EXPECTED = {
    "linux-x86_64": ("manylinux2014_x86_64.manylinux_2_17_x86_64", "x86_64", "2.17", "so"),
    "linux-aarch64": ("manylinux2014_aarch64.manylinux_2_17_aarch64", "aarch64", "2.17", "so"),
    "macos-x86_64": ("macosx_10_15_x86_64", "x86_64", "10.15", "dylib"),
    "macos-arm64": ("macosx_11_0_arm64", "arm64", "11.0", "dylib"),
}
PLUGIN_PLATFORMS = ("linux-x86_64",)
PLUGINS = ("s3", "gcs", "azure", "hf")
#: what a plugin may need on Linux: glibc's own libraries, nothing else (no libcurl, no libssl)
GLIBC = {"libc.so.6", "libm.so.6", "libpthread.so.0", "libdl.so.2", "librt.so.1",
         "ld-linux-x86-64.so.2", "ld-linux-aarch64.so.1"}  # fmt: skip


@pytest.fixture(scope="module")
def rehearsal(tmp_path_factory):
    out = tmp_path_factory.mktemp("rehearsal")
    command = [sys.executable, str(ROOT / "scripts" / "rehearse-release"), "--out", str(out),
               "--plugin-platforms", ",".join(PLUGIN_PLATFORMS), "--qemu"]  # fmt: skip
    result = subprocess.run(command, capture_output=True, text=True, timeout=2400)
    print(result.stdout[-6000:], result.stderr[-6000:])
    report = json.loads((out / "report.json").read_text())
    return result, report, out


def test_rehearsal_succeeds(rehearsal):
    result, report, _ = rehearsal
    assert report["problems"] == []
    assert result.returncode == 0, result.stdout[-3000:] + result.stderr[-3000:]
    assert "8 wheel(s), 0 problem(s)" in result.stdout


@pytest.mark.parametrize("platform", sorted(EXPECTED))
def test_wheel_of_each_platform(rehearsal, platform):
    _, report, out = rehearsal
    tag, arch, min_os, suffix = EXPECTED[platform]
    wheel = report["wheels"][f"{platform}/core"]
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


@pytest.mark.parametrize("platform", PLUGIN_PLATFORMS)
@pytest.mark.parametrize("plugin", PLUGINS)
def test_plugin_wheels_link_their_http_and_tls_stack_in(rehearsal, platform, plugin):
    _, report, out = rehearsal
    tag, arch, min_os, _ = EXPECTED[platform]
    wheel = report["wheels"][f"{platform}/{plugin}"]
    distribution = f"runai_model_streamer_{plugin}"
    assert wheel["wheel"] == f"{distribution}-{VERSION}-py3-none-{tag}.whl"
    assert wheel["binaries"].keys() == {f"{distribution}/libstreamer{plugin}.so"}
    (binary,) = wheel["binaries"].values()
    assert (binary["arch"], binary["min_os"]) == (arch, min_os)
    assert set(binary["needs"]) <= GLIBC, binary["needs"]
    assert binary["exports"] and all(s.startswith("runai_backend_") for s in binary["exports"])
    assert binary["cxx_runtime"] == "linked in"
    assert (out / "native-libs" / platform / f"libstreamer{plugin}.so").is_file()


def test_host_wheels_install_and_stream_local_and_s3_over_https(rehearsal):
    _, report, out = rehearsal
    assert report["wheels"]["linux-x86_64/core"]["smoke"] == "ok"
    log = (out / "logs" / "smoke.log").read_text()
    assert "https stream: ok" in log and "libstreamers3.so (ok)" in log


def test_aarch64_library_streams_a_file_under_qemu(rehearsal):
    _, report, out = rehearsal
    assert report["wheels"]["linux-aarch64/core"]["qemu"] == "ok"
    log = (out / "logs" / "qemu-aarch64.log").read_text()
    assert "stream: ok, 3145728 bytes of " in log and "/payload.bin in 4 ranges" in log


def test_auditwheel_accepts_the_linux_wheels(rehearsal):
    _, report, _ = rehearsal
    names = ["linux-aarch64/core"] + [
        f"{p}/{k}" for p in PLUGIN_PLATFORMS for k in ("core", *PLUGINS)
    ]
    for name in names:
        platform = name.split("/")[0]
        shown = subprocess.run(
            [sys.executable, "-m", "auditwheel", "show", report["wheels"][name]["path"]],
            capture_output=True,
            text=True,
            check=True,
        ).stdout
        assert f'platform tag:\n"manylinux_2_17_{platform.split("-")[1]}"' in shown
        assert "external shared libraries are required" not in shown


def test_checks_catch_a_wrong_architecture(rehearsal):
    # The same checks reject an aarch64 library in a wheel that claims x86_64.
    checks, targets = load_release_modules()
    _, report, _ = rehearsal
    platforms = targets.release_platforms()
    with zipfile.ZipFile(report["wheels"]["linux-aarch64/core"]["path"]) as archive:
        data = archive.read("runai_model_streamer/libstreamer.so")
    info = checks.read_binary(data)
    problems = checks.check_binary(
        "libstreamer.so",
        info,
        platforms["linux-x86_64"],
        checks.manylinux2014_libraries(),
        "runai_streamer_",
    )
    assert problems == ["libstreamer.so: built for aarch64, the wheel is for x86_64"]


def test_checks_catch_a_wrong_minimum_macos(rehearsal):
    checks, targets = load_release_modules()
    _, report, _ = rehearsal
    platforms = targets.release_platforms()
    with zipfile.ZipFile(report["wheels"]["macos-arm64/core"]["path"]) as archive:
        info = checks.read_binary(archive.read("runai_model_streamer/libstreamer.dylib"))
    wrong = dataclasses.replace(platforms["macos-arm64"], min_os="12.0")
    assert checks.check_binary("lib", info, wrong, set(), "runai_streamer_") == [
        "lib: minimum macOS 11.0, expected 12.0"
    ]
    # A library importing aligned_alloc (macOS 10.15) cannot claim 10.14.
    info_1014 = {**info, "min_os": "10.14", "undefined": [*info["undefined"], "_aligned_alloc"]}
    wrong = dataclasses.replace(platforms["macos-arm64"], min_os="10.14")
    assert "lib: imports _aligned_alloc (macOS 10.15) but claims macOS 10.14" in (
        checks.check_binary("lib", info_1014, wrong, set(), "runai_streamer_")
    )
    # pipe2 is in new SDKs' libSystem, but only macOS 27 has it.
    info_pipe2 = {**info, "undefined": [*info["undefined"], "_pipe2"]}
    assert "lib: imports _pipe2 (macOS 27.0) but claims macOS 11.0" in (
        checks.check_binary("lib", info_pipe2, platforms["macos-arm64"], set(), "runai_streamer_")
    )
