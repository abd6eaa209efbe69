"""Every distribution's sdist carries what it needs and builds a wheel alone and offline, from
an unpacked copy in an empty directory (no access to the repository)."""

from __future__ import annotations

import shutil
import sys
import tarfile
from pathlib import Path

import pytest
from packaging_helpers import (
    AZURE_PROJECT,
    BAZEL_STARTUP,
    GCS_PROJECT,
    HF_PROJECT,
    REPO,
    S3_PROJECT,
    TESTFS_PROJECT,
    VERSION,
    build_env,
    build_wheel,
    run,
    unpack_sdist,
)

pytestmark = pytest.mark.slow

PROJECTS = {
    "runai_model_streamer": (REPO, "runai_model_streamer/libstreamer.so"),
    "runai_model_streamer_testfs": (
        TESTFS_PROJECT,
        "runai_model_streamer_testfs/libstreamer_testfs.so",
    ),
    "runai_model_streamer_s3": (S3_PROJECT, "runai_model_streamer_s3/libstreamers3.so"),
    "runai_model_streamer_gcs": (GCS_PROJECT, "runai_model_streamer_gcs/libstreamergcs.so"),
    "runai_model_streamer_azure": (
        AZURE_PROJECT,
        "runai_model_streamer_azure/libstreamerazure.so",
    ),
    "runai_model_streamer_hf": (HF_PROJECT, "runai_model_streamer_hf/libstreamerhf.so"),
}
#: plugin package -> (entry point, what it requires besides the core)
PLUGINS = {
    "runai_model_streamer_s3": ("s3", ["botocore", "certifi"]),
    "runai_model_streamer_gcs": ("gs", ["google-auth", "requests", "certifi"]),
    "runai_model_streamer_azure": ("az", ["azure-identity", "certifi"]),
    "runai_model_streamer_hf": ("hf", ["certifi"]),
}
#: Files every sdist must carry to build alone (relative to its top directory).
NEEDED = [
    "pyproject.toml",
    "PKG-INFO",
    "VERSION",
    "CMakeLists.txt",
    "cmake/StreamerNativeLibrary.cmake",
    "cmake/StreamerBazelBuild.cmake",
    "cpp/CMakeLists.txt",
    "cpp/BUILD.bazel",
    "cpp/streamer/streamer.h",
    "MODULE.bazel",
    "WORKSPACE.bazel",
    "BUILD.bazel",
    "bazel/rules_cc/cc/defs.bzl",
]


@pytest.fixture(scope="session", params=sorted(PROJECTS))
def sdist(request: pytest.FixtureRequest, tmp_path_factory: pytest.TempPathFactory) -> Path:
    project = PROJECTS[request.param][0]
    out = tmp_path_factory.mktemp(f"sdist-{request.param}")
    run([sys.executable, "-m", "build", "--sdist", "--no-isolation", "-o", out, project])
    (archive,) = out.glob("*.tar.gz")
    assert archive.name == f"{request.param}-{VERSION}.tar.gz"
    return archive


def test_sdist_carries_the_native_sources(sdist: Path) -> None:
    with tarfile.open(sdist) as archive:
        names = archive.getnames()
        top = names[0].split("/")[0]
        members = {name.removeprefix(f"{top}/") for name in names}
        missing = [n for n in NEEDED if n not in members]
        assert not missing, f"{sdist.name} lacks {missing}"
        version = archive.extractfile(f"{top}/VERSION")
        assert version is not None, "VERSION must be a regular file in the sdist"
        assert version.read().decode().strip() == VERSION
    unwanted = [
        m
        for m in members
        if m.startswith(("cpp/build", "build/", "tests/", ".git/", "bazel-"))
        or m.endswith((".so", ".o", ".pyc"))
    ]
    assert not unwanted, f"{sdist.name} carries build outputs or tests: {unwanted[:20]}"


@pytest.mark.parametrize("mode", ["cmake", "bazel"])
def test_sdist_builds_a_wheel_offline_in_an_empty_directory(
    sdist: Path, mode: str, tmp_path: Path
) -> None:
    source = unpack_sdist(sdist, tmp_path / "src")
    name = sdist.name.removesuffix(f"-{VERSION}.tar.gz")
    library = PROJECTS[name][1]
    try:
        # --no-build-isolation --no-index (build_env): nothing is downloaded.
        wheel = build_wheel(source, tmp_path / "out", build_env(STREAMER_NATIVE_BUILD=mode))
    finally:
        if mode == "bazel":  # drop the output base Bazel made for this temporary workspace
            bazel = shutil.which("bazel") or shutil.which("bazelisk")
            run([bazel, *BAZEL_STARTUP, "clean", "--expunge"], cwd=source, check=False)
    assert wheel.path.name.startswith(f"{name}-{VERSION}-py3-none-linux_")
    assert library in wheel.names()
    assert f"mode {mode}" in wheel.log
    if name in PLUGINS:
        scheme, requires = PLUGINS[name]
        entry_points = wheel.read(f"{name}-{VERSION}.dist-info/entry_points.txt")
        assert f"[runai_model_streamer.backends]\n{scheme} = {name}" in entry_points
        metadata = wheel.read(f"{name}-{VERSION}.dist-info/METADATA")
        assert f"Requires-Dist: runai-model-streamer=={VERSION}" in metadata
        for requirement in requires:
            assert f"Requires-Dist: {requirement}" in metadata, requirement
    assert str(source) in wheel.log  # built from its own copy of the sources
