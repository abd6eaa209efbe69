"""Finding and loading libstreamer: platform names, the override, the error text, laziness."""

from __future__ import annotations

import ctypes
import os
import re
import subprocess
import sys
from pathlib import Path

import pytest
from runai_model_streamer import _abi, _library, _status
from runai_model_streamer._errors import RunaiStreamerError, StreamerLibraryError


@pytest.mark.parametrize(
    ("system", "name"),
    [
        ("Linux", "libstreamer.so"),
        ("Darwin", "libstreamer.dylib"),
        ("FreeBSD", "libstreamer.so"),
    ],
)
def test_library_filename_per_platform(system: str, name: str) -> None:
    assert _library.library_filename(system) == name


@pytest.mark.parametrize(
    ("system", "name"), [("Linux", "libstreamer.so"), ("Darwin", "libstreamer.dylib")]
)
def test_candidates_are_in_the_package_directory(tmp_path: Path, system: str, name: str) -> None:
    paths = _library.candidate_paths(env={}, package_dir=tmp_path, system=system)
    assert paths == [tmp_path / name, tmp_path / "lib" / name]


def test_default_candidates_are_the_package_directories() -> None:
    import runai_model_streamer

    directories = _library.package_directories()
    # regular install: the package directory; editable install: site-packages + the source
    assert Path(runai_model_streamer.__file__).parent in directories
    name = _library.library_filename()
    expected = [p for d in directories for p in (d / name, d / "lib" / name)]
    assert _library.candidate_paths(env={}) == expected
    if not os.environ.get(_library.LIBRARY_ENV_VAR):
        assert _library.library().path in expected  # found in the package, as installed


def test_override_with_a_file_is_the_only_candidate(tmp_path: Path) -> None:
    target = tmp_path / "custom.so"
    env = {_library.LIBRARY_ENV_VAR: str(target)}
    assert _library.candidate_paths(env=env, package_dir=tmp_path / "pkg", system="Linux") == [
        target
    ]


def test_override_with_a_directory_uses_the_platform_name(tmp_path: Path) -> None:
    env = {_library.LIBRARY_ENV_VAR: str(tmp_path)}
    assert _library.candidate_paths(env=env, system="Darwin") == [tmp_path / "libstreamer.dylib"]


def test_failure_lists_every_path_and_reason(tmp_path: Path) -> None:
    package = tmp_path / "pkg"
    (package / "lib").mkdir(parents=True)
    (package / "libstreamer.so").write_text("not an ELF file")
    with pytest.raises(StreamerLibraryError) as raised:
        _library.load_library(env={}, package_dir=package, system="Linux")
    text = str(raised.value)
    assert f"{package / 'libstreamer.so'}: the loader refused it:" in text
    assert f"{package / 'lib' / 'libstreamer.so'}: no such file" in text
    assert _library.LIBRARY_ENV_VAR in text
    assert isinstance(raised.value, OSError) and isinstance(raised.value, RunaiStreamerError)


def test_override_failure_says_only_the_override_was_tried(tmp_path: Path) -> None:
    missing = tmp_path / "nope" / "libstreamer.so"
    with pytest.raises(StreamerLibraryError) as raised:
        _library.load_library(env={_library.LIBRARY_ENV_VAR: str(missing)}, package_dir=tmp_path)
    text = str(raised.value)
    assert f"{missing}: no such file" in text
    assert "only that path was tried" in text
    assert str(tmp_path / "libstreamer.so") not in text.replace(str(missing), "")


def test_a_library_without_the_api_is_rejected_with_the_missing_symbols() -> None:
    # any shared library present on disk on every platform: numpy's core extension module
    try:
        from numpy._core import _multiarray_umath as extension
    except ImportError:  # numpy < 2
        from numpy.core import _multiarray_umath as extension  # type: ignore[no-redef]
    other = extension.__file__
    assert other is not None and os.path.isfile(other)
    with pytest.raises(StreamerLibraryError) as raised:
        _library.load_library(env={_library.LIBRARY_ENV_VAR: other})
    assert f"{other}: not libstreamer: missing symbols runai_streamer_version" in str(raised.value)


def test_the_real_library_loads_with_api_version_4() -> None:
    lib = _library.library()
    assert lib.api_version == _library.API_VERSION == 4
    assert lib.version.count(".") == 2
    assert lib.path.is_file()


def test_import_does_not_need_the_library(tmp_path: Path) -> None:
    env = dict(os.environ, **{_library.LIBRARY_ENV_VAR: str(tmp_path / "missing.so")})
    code = (
        "import runai_model_streamer as r\n"
        "from runai_model_streamer import SafetensorsStreamer, StreamerLibraryError\n"
        "try:\n"
        "    SafetensorsStreamer().stream_file('x.safetensors')\n"
        "except StreamerLibraryError as e:\n"
        "    print('LIBERR', e)\n"
    )
    done = subprocess.run(
        [sys.executable, "-c", code], env=env, capture_output=True, text=True, check=False
    )
    assert done.returncode == 0, done.stderr
    assert "LIBERR" in done.stdout and str(tmp_path / "missing.so") in done.stdout


def test_version_comes_from_metadata_or_fallback() -> None:
    import importlib.metadata

    import runai_model_streamer

    try:
        expected = importlib.metadata.version("runai-model-streamer")
    except importlib.metadata.PackageNotFoundError:
        expected = "0.0.0+unknown"
    assert runai_model_streamer.__version__ == expected


def test_package_ships_py_typed() -> None:
    import runai_model_streamer

    assert (Path(runai_model_streamer.__file__).parent / "py.typed").is_file()


def test_s3_credentials_import_path() -> None:
    from runai_model_streamer.s3_utils.s3_utils import S3Credentials

    credentials = S3Credentials(access_key_id="a", secret_access_key="hunter2", region_name="r")
    assert credentials.endpoint is None and credentials.session_token is None
    assert "hunter2" not in repr(credentials)


def test_the_status_codes_equal_the_c_header() -> None:
    """_status's constants are written by hand from streamer.h: equal names, values and
    the library's own names for them, so neither side can drift."""
    header = (Path(__file__).resolve().parents[2] / "cpp" / "streamer" / "streamer.h").read_text()
    declared = {
        name: int(value)
        for name, value in re.findall(r"^\s*RUNAI_(OK|E_[A-Z_]+) = (\d+),?", header, re.M)
    }
    ours = {
        name: getattr(_status, name) for name in dir(_status) if re.fullmatch(r"OK|E_[A-Z_]+", name)
    }
    assert declared and ours == declared
    for name, value in declared.items():
        assert _library.status_name(value) == f"RUNAI_{name}"


def test_the_ctypes_structs_and_checksum_kinds_equal_the_c_header(tmp_path: Path) -> None:
    """_abi's structs are written by hand from streamer.h: a C program compiled against the
    header prints each struct's size and its fields' offsets, which must be ctypes' own; the
    runai_checksum_t values must be _abi's CHECKSUM_* constants."""
    root = Path(__file__).resolve().parents[2]
    structs = {
        "runai_streamer_config_t": _abi.Config,
        "runai_range_t": _abi.Range,
        "runai_file_request_t": _abi.FileRequest,
        "runai_completion_t": _abi.Completion,
        "runai_object_info_t": _abi.ObjectInfo,
    }
    lines = []
    for c_name, struct in structs.items():
        lines.append(f'printf("{c_name} %zu\\n", sizeof({c_name}));')
        for field in struct._fields_:
            lines.append(f'printf("{c_name}.{field[0]} %zu\\n", offsetof({c_name}, {field[0]}));')
    program = tmp_path / "layout.c"
    program.write_text(
        '#include <stddef.h>\n#include <stdio.h>\n#include "streamer/streamer.h"\n'
        "int main(void) {\n" + "\n".join(lines) + "\nreturn 0;\n}\n"
    )
    binary = tmp_path / "layout"
    subprocess.run(["cc", "-I", str(root / "cpp"), str(program), "-o", str(binary)], check=True)
    printed = dict(
        line.rsplit(" ", 1)
        for line in subprocess.run(
            [str(binary)], check=True, capture_output=True, text=True
        ).stdout.splitlines()
    )
    ours = {}
    for c_name, struct in structs.items():
        ours[c_name] = str(ctypes.sizeof(struct))
        for field in struct._fields_:
            ours[f"{c_name}.{field[0]}"] = str(getattr(struct, field[0]).offset)
    assert printed == ours
    header = (root / "cpp" / "streamer" / "streamer.h").read_text()
    declared = dict(re.findall(r"^\s*RUNAI_(CHECKSUM_[A-Z0-9]+) = (\d+),?", header, re.M))
    assert declared and {name: getattr(_abi, name) for name in declared} == {
        name: int(value) for name, value in declared.items()
    }
