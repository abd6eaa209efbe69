"""The [tool.cibuildwheel] configuration, read by the cibuildwheel that CI installs."""

from __future__ import annotations

import dataclasses
import os
import subprocess
import sys
from pathlib import Path

import pytest
from cibuildwheel.options import CommandLineArguments, Options
from cibuildwheel.util.packaging import find_compatible_wheel

from .conftest import ROOT

PYTHONS = ["cp310", "cp311", "cp312", "cp313", "cp314"]


def identifiers(platform: str, **env: str) -> list[str]:
    environment = {k: v for k, v in os.environ.items() if not k.startswith("CIBW_")}
    result = subprocess.run(
        [
            sys.executable,
            "-m",
            "cibuildwheel",
            "--print-build-identifiers",
            "--platform",
            platform,
            "--config-file",
            "pyproject.toml",
            ".",
        ],
        cwd=ROOT,
        env={**environment, **env},
        capture_output=True,
        text=True,
        check=True,
    )
    return result.stdout.split()


def expected(*platform_tags: str) -> list[str]:
    return sorted(f"{py}-{tag}" for py in PYTHONS for tag in platform_tags)


def test_linux_identifiers():
    assert sorted(identifiers("linux")) == expected("manylinux_x86_64", "manylinux_aarch64")


def test_linux_identifiers_per_arch_as_the_workflows_ask():
    assert sorted(identifiers("linux", CIBW_ARCHS="aarch64")) == expected("manylinux_aarch64")
    assert sorted(identifiers("linux", CIBW_ARCHS_LINUX="x86_64")) == expected("manylinux_x86_64")


def test_macos_identifiers():
    assert sorted(identifiers("macos")) == expected("macosx_x86_64", "macosx_arm64")
    assert sorted(identifiers("macos", CIBW_ARCHS="arm64")) == expected("macosx_arm64")


@pytest.mark.parametrize("platform", ["linux", "macos"])
def test_nothing_else_even_if_every_arch_is_asked_for(platform):
    # No PyPy, GraalPy, musllinux, 32-bit, free-threaded (cp31xt), universal2, pre-release CPython
    # or other CPUs get through `build` and `skip`.
    tags = {
        "linux": ("manylinux_x86_64", "manylinux_aarch64"),
        "macos": ("macosx_x86_64", "macosx_arm64"),
    }[platform]
    assert sorted(
        identifiers(platform, CIBW_ARCHS="all", CIBW_ENABLE="pypy graalpy cpython-prerelease")
    ) == expected(*tags)


def test_one_wheel_per_platform_serves_every_python():
    # cibuildwheel builds cp310 first; for cp311..cp314 it finds the py3-none wheel compatible
    # and only installs and tests it.
    for platform_tag, wheel_platform in [
        ("manylinux_x86_64", "manylinux_2_17_x86_64.manylinux2014_x86_64"),
        ("manylinux_aarch64", "manylinux_2_17_aarch64.manylinux2014_aarch64"),
        ("macosx_x86_64", "macosx_10_15_x86_64"),
        ("macosx_arm64", "macosx_11_0_arm64"),
    ]:
        wheel = Path(f"runai_model_streamer-1.0.0-py3-none-{wheel_platform}.whl")
        for python in PYTHONS[1:]:
            assert find_compatible_wheel([wheel], f"{python}-{platform_tag}") == wheel
        other_arch = "arm64" if platform_tag.endswith("x86_64") else "x86_64"
        assert (
            find_compatible_wheel([wheel], f"cp311-{platform_tag.split('_')[0]}_{other_arch}")
            is None
        )


def build_options(platform: str, identifier: str, **env: str):
    arguments = dataclasses.replace(
        CommandLineArguments.defaults(),
        platform=platform,
        config_file=str(ROOT / "pyproject.toml"),
        package_dir=ROOT,
    )
    return Options(platform, arguments, env).build_options(identifier)


def test_linux_options():
    for arch in ("x86_64", "aarch64"):
        options = build_options("linux", f"cp310-manylinux_{arch}")
        assert f"/manylinux2014_{arch}@" in options.manylinux_images[arch]
        assert 'auditwheel repair --plat "$AUDITWHEEL_PLAT"' in options.repair_command


def test_native_libs_path_reaches_the_linux_container():
    # environment-pass: the release workflow's NATIVE_LIBS_PATH (a /project path) goes in.
    options = build_options(
        "linux", "cp310-manylinux_aarch64", NATIVE_LIBS_PATH="/project/build/native-libs"
    )
    assert options.environment.as_dictionary({})["NATIVE_LIBS_PATH"] == "/project/build/native-libs"
    assert "NATIVE_LIBS_PATH" not in build_options(
        "linux", "cp310-manylinux_x86_64"
    ).environment.as_dictionary({})


def test_macos_deployment_targets_and_repair():
    arm = build_options("macos", "cp310-macosx_arm64")
    intel = build_options("macos", "cp310-macosx_x86_64")
    assert arm.environment.as_dictionary({})["MACOSX_DEPLOYMENT_TARGET"] == "11.0"
    assert intel.environment.as_dictionary({})["MACOSX_DEPLOYMENT_TARGET"] == "10.15"
    for options in (arm, intel):
        assert "delocate-wheel --require-archs {delocate_archs}" in options.repair_command


def test_tests_run_on_every_python_where_torch_exists():
    untested = set()
    for platform, tags in [
        ("linux", ("manylinux_x86_64", "manylinux_aarch64")),
        ("macos", ("macosx_x86_64", "macosx_arm64")),
    ]:
        selector = build_options(platform, f"cp310-{tags[0]}").globals.test_selector
        untested |= {i for i in expected(*tags) if not selector(i)}
    # Linux cp314: no torch for glibc 2.17 (test-wheels.yaml covers it).
    # macOS x86_64 >= 3.13: no torch at all.
    assert untested == {
        "cp314-manylinux_x86_64",
        "cp314-manylinux_aarch64",
        "cp313-macosx_x86_64",
        "cp314-macosx_x86_64",
    }
    command = build_options("macos", "cp312-macosx_arm64").test_command
    assert "runai-model-streamer sample" in command and "stream --quiet --verify" in command
