"""Wrong inputs to the native-library step fail the build at configure time, with a message that
names the path (or setting) and what was found."""

from __future__ import annotations

import platform
import shutil
import subprocess
import sys
from pathlib import Path

import pytest
from packaging_helpers import REPO, build_env, pip_wheel, run

pytestmark = pytest.mark.slow

TARGET = f"linux-{platform.machine()}"


def failing_build(tmp_path: Path, env: dict[str, str], extra: list[str] = ()) -> str:
    """Builds the core wheel, expecting failure; returns the output with whitespace collapsed."""
    result, wheel = pip_wheel(REPO, tmp_path / "out", env, check=False, extra=list(extra))
    assert result.returncode != 0 and wheel is None, f"the build should fail:\n{result.stdout}"
    return " ".join(result.stdout.split())


def test_native_libs_path_that_does_not_exist(tmp_path: Path) -> None:
    missing = tmp_path / "no-such-dir"
    out = failing_build(tmp_path, build_env(NATIVE_LIBS_PATH=str(missing)))
    assert f"NATIVE_LIBS_PATH={missing}: {missing} does not exist." in out


def test_native_libs_path_that_is_empty(tmp_path: Path) -> None:
    empty = tmp_path / "empty"
    empty.mkdir()
    out = failing_build(tmp_path, build_env(NATIVE_LIBS_PATH=str(empty)))
    assert (
        f"NATIVE_LIBS_PATH={empty}: no libstreamer.so for {TARGET}; looked at "
        f"{empty}/{TARGET}/libstreamer.so and {empty}/libstreamer.so; the directory is empty."
    ) in out


def test_native_libs_path_as_a_cmake_define(tmp_path: Path) -> None:
    """The CMake variable works like the environment variable (and names what is there)."""
    libs = tmp_path / "libs"
    (libs / "linux-riscv64").mkdir(parents=True)
    (libs / "linux-riscv64" / "libstreamer.so").write_bytes(b"\x7fELF")
    out = failing_build(
        tmp_path, build_env(), extra=[f"--config-settings=cmake.define.NATIVE_LIBS_PATH={libs}"]
    )
    assert f"NATIVE_LIBS_PATH={libs}: no libstreamer.so for {TARGET}" in out
    assert "it contains: linux-riscv64/libstreamer.so." in out


def test_native_libs_path_with_a_library_for_another_architecture(tmp_path: Path) -> None:
    host = platform.machine()
    foreign = "x86_64" if host == "aarch64" else "aarch64"
    libs = tmp_path / "libs"
    (libs / TARGET).mkdir(parents=True)
    source = tmp_path / "lib.c"
    source.write_text("int runai_streamer_api_version(void) { return 1; }\n")
    library = libs / TARGET / "libstreamer.so"
    run(
        [
            sys.executable,
            "-m",
            "ziglang",
            "cc",
            "-target",
            f"{foreign}-linux-gnu",
            "-shared",
            "-o",
            library,
            source,
        ],
        env=build_env(),
    )
    out = failing_build(tmp_path, build_env(NATIVE_LIBS_PATH=str(libs)))
    assert (
        f"NATIVE_LIBS_PATH: {library} is an ELF shared library for {foreign}, "
        f"but this build targets {TARGET} (needs {host})."
    ) in out


def test_native_libs_path_with_a_file_that_is_not_a_library(tmp_path: Path) -> None:
    libs = tmp_path / "libs"
    libs.mkdir()
    (libs / "libstreamer.so").write_text("this is text, not a shared library\n" * 4)
    out = failing_build(tmp_path, build_env(NATIVE_LIBS_PATH=str(libs)))
    assert f"NATIVE_LIBS_PATH: {libs}/libstreamer.so is neither ELF nor Mach-O" in out
    assert f"this build targets {TARGET}" in out


def test_bazel_mode_without_bazel(tmp_path: Path) -> None:
    """PATH with cmake and ninja but no bazel/bazelisk."""
    bin_dir = tmp_path / "bin"
    bin_dir.mkdir()
    for tool in ("cmake", "ninja"):
        found = shutil.which(tool)
        assert found, f"{tool} is needed on PATH"
        (bin_dir / tool).symlink_to(found)
    env = build_env(STREAMER_NATIVE_BUILD="bazel", PATH=str(bin_dir))
    out = failing_build(tmp_path, env)
    assert (
        f"STREAMER_NATIVE_BUILD=bazel, but neither `bazel` nor `bazelisk` is on PATH ({bin_dir})."
    ) in out


def test_unknown_build_mode(tmp_path: Path) -> None:
    out = failing_build(tmp_path, build_env(STREAMER_NATIVE_BUILD="make"))
    assert "STREAMER_NATIVE_BUILD=make is not one of auto, bazel, cmake." in out


def zig_shared_library(tmp_path: Path, target: str, output: Path) -> Path:
    source = tmp_path / "lib.c"
    source.write_text("int runai_streamer_api_version(void) { return 1; }\n")
    output.parent.mkdir(parents=True, exist_ok=True)
    run([sys.executable, "-m", "ziglang", "cc", "-target", target, "-shared", "-o", output, source])
    return output


def configure(tmp_path: Path, *defines: str) -> subprocess.CompletedProcess[str]:
    """Configures the core package's CMake project alone (no wheel), as scikit-build-core would."""
    return run(
        ["cmake", "-S", REPO, "-B", tmp_path / "build", "-G", "Ninja", *defines],
        env=build_env(),
        check=False,
    )


@pytest.mark.parametrize(
    ("toolchain", "built_for", "accepted"),
    [
        ("zig-macos-arm64", "aarch64-macos.11.0", True),
        ("zig-macos-arm64", "x86_64-macos.11.0", False),
        ("zig-macos-x86_64", "x86_64-macos.11.0", True),
    ],
)
def test_macos_targets_check_the_mach_o_header(
    tmp_path: Path, toolchain: str, built_for: str, accepted: bool
) -> None:
    """A macOS target (here through the zig toolchain files) wants a Mach-O dylib of its CPU,
    under macos-<arch>/; the configure step reads the Mach-O header like it reads ELF."""
    tag = toolchain.removeprefix("zig-")
    libs = tmp_path / "libs"
    library = zig_shared_library(tmp_path, built_for, libs / tag / "libstreamer.dylib")
    result = configure(
        tmp_path,
        f"-DCMAKE_TOOLCHAIN_FILE={REPO / 'cmake' / 'toolchains' / toolchain}.cmake",
        f"-DNATIVE_LIBS_PATH={libs}",
    )
    out = " ".join(result.stdout.split())
    if accepted:
        assert result.returncode == 0, result.stdout
        assert f"mode prebuilt (NATIVE_LIBS_PATH): {library}" in out
    else:
        assert result.returncode != 0, result.stdout
        assert (
            f"NATIVE_LIBS_PATH: {library} is a Mach-O shared library for x86_64, "
            f"but this build targets {tag} (needs arm64)."
        ) in out


def test_linux_target_rejects_a_mach_o_library(tmp_path: Path) -> None:
    libs = tmp_path / "libs"
    library = zig_shared_library(tmp_path, "aarch64-macos.11.0", libs / "libstreamer.so")
    result = configure(tmp_path, f"-DNATIVE_LIBS_PATH={libs}")
    out = " ".join(result.stdout.split())
    assert result.returncode != 0, result.stdout
    assert (
        f"NATIVE_LIBS_PATH: {library} is Mach-O for arm64, but this build targets {TARGET} "
        "and needs an ELF shared library."
    ) in out


def test_static_tls_prefix_without_the_libraries(tmp_path: Path) -> None:
    """A STREAMER_STATIC_TLS_PREFIX that scripts/build-tls-deps did not fill fails at configure
    time (CMake) and at fetch time (Bazel), naming the prefix and the script."""
    prefix = tmp_path / "no-tls"
    configure = subprocess.run(
        ["cmake", "-S", str(REPO / "cpp"), "-B", str(tmp_path / "build"), "-G", "Ninja",
         "-DSTREAMER_BUILD_TESTS=OFF", "-DSTREAMER_BUILD_S3=ON",
         f"-DSTREAMER_STATIC_TLS_PREFIX={prefix}"],
        capture_output=True, text=True, check=False,
    )  # fmt: skip
    out = " ".join((configure.stdout + configure.stderr).split())
    assert configure.returncode != 0
    assert f"STREAMER_STATIC_TLS_PREFIX={prefix} has no lib/libcurl.a" in out, out
    assert f"scripts/build-tls-deps --prefix {prefix}" in out

    bazel = shutil.which("bazel") or shutil.which("bazelisk")
    assert bazel, "bazel is needed (Debian: bazel-bootstrap)"
    built = subprocess.run(
        [bazel, "--max_idle_secs=60", "build", "--symlink_prefix=/",
         f"--repo_env=STREAMER_STATIC_TLS_PREFIX={prefix}", "//cpp:libstreamers3.so"],
        cwd=REPO, capture_output=True, text=True, check=False,
    )  # fmt: skip
    out = " ".join((built.stdout + built.stderr).split())
    assert built.returncode != 0
    assert f"STREAMER_STATIC_TLS_PREFIX={prefix} has no lib/libcurl.a" in out, out
