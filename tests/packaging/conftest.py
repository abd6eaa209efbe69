"""Fixtures for the packaging tests: real native builds, wheels, sdists and virtual environments.

Everything expensive is session-scoped and built once: the native libraries (one CMake build
of cpp/ and one Bazel build), the core wheel in each of the three modes, the plugin wheel, the
sdists. Wheels are built with ``pip wheel --no-build-isolation --no-deps`` so nothing is
downloaded: scikit-build-core, cmake and ninja come from the running environment.
"""

from __future__ import annotations

import platform
import shutil
from pathlib import Path

import pytest
from packaging_helpers import (
    BAZEL_STARTUP,
    JOBS,
    REPO,
    TESTFS_PROJECT,
    BuiltWheel,
    build_env,
    build_wheel,
    run,
)

# ---- native builds ---------------------------------------------------------------------------


@pytest.fixture(scope="session")
def native_cmake_libs(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """cpp/ built and installed by its own CMake (Release): the directory holding the libs."""
    root = tmp_path_factory.mktemp("native-cmake")
    build, prefix = root / "build", root / "install"
    run(
        [
            "cmake",
            "-S",
            REPO / "cpp",
            "-B",
            build,
            "-G",
            "Ninja",
            "-DCMAKE_BUILD_TYPE=Release",
            "-DSTREAMER_BUILD_TESTS=OFF",
            "-DSTREAMER_INSTALL_TESTFS=ON",
            f"-DCMAKE_INSTALL_PREFIX={prefix}",
            "-DCMAKE_INSTALL_LIBDIR=lib",
        ]
    )
    run(["cmake", "--build", build, "-j", JOBS])
    run(["cmake", "--install", build])
    return prefix / "lib"


@pytest.fixture(scope="session")
def native_bazel_libs(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """//cpp:libstreamer.so and //cpp:libstreamer_testfs.so built by Bazel (-c opt), copied."""
    bazel = shutil.which("bazel") or shutil.which("bazelisk")
    assert bazel, "Bazel is needed: install bazel-bootstrap (Debian) or bazelisk"
    flags = ["--compilation_mode=opt", "--symlink_prefix=/", f"--jobs={JOBS}"]
    targets = ["//cpp:libstreamer.so", "//cpp:libstreamer_testfs.so"]
    run([bazel, *BAZEL_STARTUP, "build", *flags, *targets], cwd=REPO)
    bazel_bin = run([bazel, *BAZEL_STARTUP, "info", *flags, "bazel-bin"], cwd=REPO).stdout
    bazel_bin = Path(bazel_bin.strip().splitlines()[-1])
    out = tmp_path_factory.mktemp("native-bazel")
    for name in ("libstreamer.so", "libstreamer_testfs.so"):
        shutil.copy(bazel_bin / "cpp" / name, out / name)
    return out


# ---- wheels ----------------------------------------------------------------------------------

#: How the core wheel is built. "cmake-zig": the CMake mode with the zig cross toolchain of
#: cmake/toolchains (glibc 2.17 target), forwarded to the inner build: a manylinux2014 library.
MODES = ("prebuilt", "cmake", "bazel", "cmake-zig")


@pytest.fixture(scope="session", params=MODES)
def core_wheel(
    request: pytest.FixtureRequest, tmp_path_factory: pytest.TempPathFactory
) -> tuple[str, BuiltWheel]:
    """(mode, wheel) for the core wheel built in each of MODES."""
    mode = request.param
    if mode == "prebuilt":
        # The release layout: <dir>/linux-<arch>/lib*.so (the plugin wheel uses a flat dir).
        libs = request.getfixturevalue("native_cmake_libs")
        artifacts = tmp_path_factory.mktemp("native-libs")
        shutil.copytree(libs, artifacts / f"linux-{platform.machine()}")
        env = build_env(NATIVE_LIBS_PATH=str(artifacts))
    elif mode == "cmake-zig":
        toolchain = REPO / "cmake" / "toolchains" / f"zig-linux-{platform.machine()}.cmake"
        env = build_env(STREAMER_NATIVE_BUILD="cmake", CMAKE_TOOLCHAIN_FILE=str(toolchain))
    else:
        env = build_env(STREAMER_NATIVE_BUILD=mode)
    wheel = build_wheel(REPO, tmp_path_factory.mktemp(f"wheel-{mode}"), env)
    return mode, wheel


@pytest.fixture(scope="session")
def testfs_wheel(tmp_path_factory: pytest.TempPathFactory, native_cmake_libs: Path) -> BuiltWheel:
    """The testfs plugin wheel, from prebuilt libraries (the same cmake/ function), laid out
    flat and as a symlink to a versioned file (the wheel must carry the file itself)."""
    libs = tmp_path_factory.mktemp("native-libs-flat")
    shutil.copy(native_cmake_libs / "libstreamer_testfs.so", libs / "libstreamer_testfs.so.1")
    (libs / "libstreamer_testfs.so").symlink_to("libstreamer_testfs.so.1")
    env = build_env(NATIVE_LIBS_PATH=str(libs))
    return build_wheel(TESTFS_PROJECT, tmp_path_factory.mktemp("wheel-testfs"), env)
