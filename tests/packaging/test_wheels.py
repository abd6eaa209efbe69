"""The core wheel built three ways (prebuilt, CMake, Bazel) and the testfs plugin wheel:
tags, contents, metadata, exported symbols, dynamic section, auditwheel, and a fresh
virtual environment that streams a file with the installed packages."""

from __future__ import annotations

import json
import platform
import re
import shutil
import textwrap
import zipfile
from pathlib import Path

import pytest
from packaging_helpers import (
    BACKEND_ABI,
    GLIBC_LIBRARIES,
    REPO,
    STREAMER_API,
    VERSION,
    BuiltWheel,
    dynamic_section,
    exported_symbols,
    library_version,
    make_venv,
    run,
)

pytestmark = pytest.mark.slow

MACHINE = platform.machine()


def metadata(wheel: Path) -> str:
    with zipfile.ZipFile(wheel) as archive:
        (name,) = [n for n in archive.namelist() if n.endswith(".dist-info/METADATA")]
        return archive.read(name).decode()


def check_linux_library(library: Path) -> None:
    """Needs only glibc, no absolute RPATH/RUNPATH, stripped (no .symtab)."""
    dynamic = dynamic_section(library)
    needed = re.findall(r"\(NEEDED\)\s+Shared library: \[([^\]]+)\]", dynamic)
    assert needed, dynamic
    not_glibc = [n for n in needed if not GLIBC_LIBRARIES.match(n)]
    assert not not_glibc, f"{library} needs more than glibc: {not_glibc}\n{dynamic}"
    for kind, value in re.findall(r"\((RPATH|RUNPATH)\)\s+Library \w+: \[([^\]]*)\]", dynamic):
        absolute = [p for p in value.split(":") if p.startswith("/")]
        assert not absolute, f"{library} has an absolute {kind}: {value}"
    sections = run(["readelf", "-S", "-W", library]).stdout
    assert ".symtab" not in sections, f"{library} is not stripped"


def test_core_wheel_tag_contents_and_build_mode(
    core_wheel: tuple[str, BuiltWheel], tmp_path: Path
) -> None:
    mode, wheel = core_wheel
    assert wheel.path.name == f"runai_model_streamer-{VERSION}-py3-none-linux_{MACHINE}.whl"
    names = wheel.names()
    for required in (
        "runai_model_streamer/libstreamer.so",
        "runai_model_streamer/_build_info.json",
        "runai_model_streamer/__init__.py",
        "runai_model_streamer/cli.py",
        # upstream's module paths, which callers import
        "runai_model_streamer/safetensors_streamer/safetensors_streamer.py",
        "runai_model_streamer/safetensors_streamer/streamer_mock.py",
        "runai_model_streamer/file_streamer/requests_iterator.py",
        "runai_model_streamer/distributed_streamer/distributed_streamer.py",
        "runai_model_streamer/s3_utils/s3_utils.py",
        "runai_model_streamer/py.typed",
    ):
        assert required in names, f"{required} missing from {wheel.path.name}: {names}"
    # The build log says which mode ran (pip -v shows it).
    build_mode = mode.removesuffix("-zig")
    assert f"native library libstreamer.so: mode {build_mode}" in wheel.log
    info = json.loads(
        wheel.extract(tmp_path).joinpath("runai_model_streamer", "_build_info.json").read_text()
    )
    assert info["mode"] == build_mode
    assert info["target"] == f"linux-{MACHINE}"
    assert info["version"] == VERSION


def test_core_wheel_metadata_pins_plugins_to_its_version(
    core_wheel: tuple[str, BuiltWheel],
) -> None:
    text = metadata(core_wheel[1].path)
    assert f"\nVersion: {VERSION}\n" in text
    assert "Requires-Python: >=3.10" in text
    assert "Requires-Dist: torch<3,>=2.0" in text
    for extra, dist in (("s3", "s3"), ("gcs", "gcs"), ("azure", "azure"), ("hf", "hf")):
        assert f'Requires-Dist: runai-model-streamer-{dist}=={VERSION}; extra == "{extra}"' in text


def test_core_wheel_library_exports_the_c_api_only(
    core_wheel: tuple[str, BuiltWheel], tmp_path: Path
) -> None:
    _, wheel = core_wheel
    library = wheel.extract(tmp_path) / "runai_model_streamer" / "libstreamer.so"
    assert exported_symbols(library) == STREAMER_API
    check_linux_library(library)
    assert library_version(library) == VERSION


def test_testfs_wheel(testfs_wheel: BuiltWheel, tmp_path: Path) -> None:
    assert testfs_wheel.path.name == (
        f"runai_model_streamer_testfs-{VERSION}-py3-none-linux_{MACHINE}.whl"
    )
    text = metadata(testfs_wheel.path)
    assert f"\nVersion: {VERSION}\n" in text
    assert f"Requires-Dist: runai-model-streamer=={VERSION}" in text
    root = testfs_wheel.extract(tmp_path)
    entry_points = next(root.glob("*.dist-info/entry_points.txt")).read_text()
    assert "[runai_model_streamer.backends]\ntestfs = runai_model_streamer_testfs" in entry_points
    library = root / "runai_model_streamer_testfs" / "libstreamer_testfs.so"
    assert library.is_file() and not library.is_symlink()
    assert not [n for n in testfs_wheel.names() if ".so." in n], testfs_wheel.names()
    assert exported_symbols(library) == BACKEND_ABI
    check_linux_library(library)
    info = json.loads((root / "runai_model_streamer_testfs" / "_build_info.json").read_text())
    assert info["mode"] == "prebuilt"


@pytest.fixture(scope="session")
def repaired_testfs(testfs_wheel: BuiltWheel, tmp_path_factory: pytest.TempPathFactory) -> Path:
    out = tmp_path_factory.mktemp("repaired-testfs")
    run(["auditwheel", "repair", "-w", out, testfs_wheel.path])
    (wheel,) = out.glob("*.whl")
    return wheel


INSTALLED_CHECK = textwrap.dedent(
    """
    import json, os, sys
    from pathlib import Path

    import torch
    from safetensors.torch import load_file, save_file

    import runai_model_streamer
    from runai_model_streamer import SafetensorsStreamer

    package = Path(runai_model_streamer.__file__).resolve().parent
    assert package.is_relative_to(Path(sys.prefix).resolve()), (package, sys.prefix)
    print("build:", json.loads((package / "_build_info.json").read_text()))

    tensors = {
        "f32": torch.arange(4096, dtype=torch.float32).reshape(64, 64),
        "bf16": torch.linspace(-3, 3, 999).to(torch.bfloat16),
        "i64": torch.tensor([1, -2, 3], dtype=torch.int64),
        "empty": torch.zeros(0, 7, dtype=torch.float16),
    }
    save_file(tensors, "model.safetensors")
    expected = load_file("model.safetensors")

    def check(uri):
        with SafetensorsStreamer() as streamer:
            streamer.stream_file(uri)
            got = {name: tensor.clone() for name, tensor in streamer.get_tensors()}
        assert got.keys() == expected.keys(), (uri, sorted(got))
        for name, tensor in expected.items():
            assert got[name].dtype == tensor.dtype and torch.equal(got[name], tensor), (uri, name)

    check("model.safetensors")
    os.environ["RUNAI_STREAMER_TESTFS_ROOT"] = os.getcwd()
    check("testfs://model.safetensors")
    print("streamed OK")
    """
)


def test_auditwheel_repair_install_and_stream(
    core_wheel: tuple[str, BuiltWheel], repaired_testfs: Path, tmp_path: Path
) -> None:
    mode, wheel = core_wheel
    show = run(["auditwheel", "show", wheel.path]).stdout
    assert "manylinux" in show, show
    out = tmp_path / "repaired"
    repair = run(["auditwheel", "repair", "-w", out, wheel.path]).stdout
    (repaired,) = out.glob("*.whl")
    tag = re.search(r"-py3-none-(.+)\.whl$", repaired.name).group(1)
    platforms = tag.split(".")
    assert all(re.fullmatch(rf"manylinux(2014|_\d+_\d+)_{MACHINE}", p) for p in platforms), (
        f"{repaired.name}\n{repair}"
    )
    print(f"[{mode}] auditwheel repaired tag: {tag}")
    if mode == "cmake-zig":  # built for glibc 2.17
        assert f"manylinux2014_{MACHINE}" in platforms, tag

    python = make_venv(tmp_path / "venv")
    run(
        [
            python,
            "-m",
            "pip",
            "install",
            "--no-deps",
            "--no-index",
            "--disable-pip-version-check",
            repaired,
            repaired_testfs,
        ]
    )
    work = tmp_path / "work"  # outside the source tree
    work.mkdir()
    (work / "check.py").write_text(INSTALLED_CHECK)
    result = run([python, "check.py"], cwd=work)
    assert "streamed OK" in result.stdout, result.stdout
    assert f"'mode': '{mode.removesuffix('-zig')}'" in result.stdout

    cli = python.parent / "runai-model-streamer"
    run([cli, "sample", work / "sample.safetensors", "--size", "8MB"], cwd=work)
    streamed = run([cli, "stream", "--quiet", "--verify", work / "sample.safetensors"], cwd=work)
    assert "GB/s" in streamed.stdout, streamed.stdout
    info = run([cli, "info"], cwd=work).stdout
    assert str(tmp_path / "venv") in info and "testfs" in info, info


def test_editable_install_loads_the_built_library(tmp_path: Path) -> None:
    """`pip install -e .`: the library is found through importlib.resources (build/editable)."""
    python = make_venv(tmp_path / "venv")
    run(
        [
            python,
            "-m",
            "pip",
            "install",
            "--no-deps",
            "--no-build-isolation",
            "--no-index",
            "--disable-pip-version-check",
            "-e",
            REPO,
        ]
    )
    script = (
        "import json, pathlib, runai_model_streamer, runai_model_streamer._library as n;"
        "lib = n.library(); print(runai_model_streamer.__file__); print(lib.path, lib.version);"
        "info = pathlib.Path(lib.path).parent / '_build_info.json';"
        "print(json.loads(info.read_text())['mode'])"
    )
    out = run([python, "-c", script], cwd=tmp_path).stdout.split()
    assert Path(out[0]).is_relative_to(REPO / "py"), out  # the sources, editable
    assert Path(out[1]).name == "libstreamer.so" and Path(out[1]).is_file(), out
    assert out[2] == VERSION
    # STREAMER_NATIVE_BUILD unset: auto takes Bazel when it is on PATH.
    assert out[3] == ("bazel" if shutil.which("bazel") or shutil.which("bazelisk") else "cmake")
