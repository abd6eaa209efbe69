"""The CMake and Bazel builds of cpp/ produce the same libraries: same exported symbols (the C
API of the headers, nothing else), same version, only glibc needed."""

from __future__ import annotations

from pathlib import Path

import pytest
from packaging_helpers import (
    BACKEND_ABI,
    STREAMER_API,
    VERSION,
    exported_symbols,
    library_version,
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
