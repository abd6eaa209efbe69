"""The CMake and Bazel builds of cpp/ compile the same sources and produce the same libraries:
same exported symbols (the C API of the headers, nothing else), same version."""

from __future__ import annotations

import re
import shutil
from pathlib import Path

import pytest
from packaging_helpers import (
    BACKEND_ABI,
    BAZEL_STARTUP,
    REPO,
    STREAMER_API,
    VERSION,
    exported_symbols,
    library_version,
    run,
)

pytestmark = pytest.mark.slow


@pytest.mark.parametrize(
    ("library", "expected"),
    [("libstreamer.so", STREAMER_API), ("libstreamer_testfs.so", BACKEND_ABI)],
)
def test_cmake_and_bazel_export_the_same_symbols(
    native_cmake_libs: Path, native_bazel_libs: Path, library: str, expected: list[str]
) -> None:
    from_cmake = exported_symbols(native_cmake_libs / library)
    from_bazel = exported_symbols(native_bazel_libs / library)
    assert from_cmake == from_bazel, (
        f"{library}: only in CMake build: {sorted(set(from_cmake) - set(from_bazel))}; "
        f"only in Bazel build: {sorted(set(from_bazel) - set(from_cmake))}"
    )
    assert from_cmake == expected


def test_cmake_and_bazel_libraries_report_the_version(
    native_cmake_libs: Path, native_bazel_libs: Path
) -> None:
    assert library_version(native_cmake_libs / "libstreamer.so") == VERSION
    assert library_version(native_bazel_libs / "libstreamer.so") == VERSION


def cmake_sources() -> set[str]:
    """The .cc files the CMake build names (cpp/CMakeLists.txt and its subdirectories)."""
    cpp = REPO / "cpp"
    found = set()
    for lists in cpp.rglob("CMakeLists.txt"):
        if lists.relative_to(cpp).parts[0].startswith("build"):
            continue
        for name in re.findall(r"[\w./-]+\.cc\b", lists.read_text()):
            found.add((lists.parent / name).relative_to(cpp).as_posix())
    return found


def test_bazel_and_cmake_compile_the_same_sources() -> None:
    """The Bazel globs and the CMake source lists stay in step as cpp/ changes."""
    bazel = shutil.which("bazel") or shutil.which("bazelisk")
    assert bazel, "Bazel is needed: install bazel-bootstrap (Debian) or bazelisk"
    out = run(
        [bazel, *BAZEL_STARTUP, "query", 'kind("source file", deps(//cpp/...))'], cwd=REPO
    ).stdout
    from_bazel = {
        line.removeprefix("//cpp:") for line in out.split() if re.fullmatch(r"//cpp:\S+\.cc", line)
    }
    from_cmake = cmake_sources()
    assert from_bazel == from_cmake, (
        f"only in cpp/BUILD.bazel: {sorted(from_bazel - from_cmake)}; "
        f"only in CMake: {sorted(from_cmake - from_bazel)}"
    )
