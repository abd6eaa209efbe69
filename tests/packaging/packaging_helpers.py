"""Helpers of the packaging tests: running commands, building wheels, reading libraries.

What the packaged libraries must export is read from the C headers (the one source).
"""

from __future__ import annotations

import ctypes
import os
import re
import subprocess
import sys
import tarfile
import zipfile
from dataclasses import dataclass
from pathlib import Path

import pytest

REPO = Path(__file__).resolve().parents[2]
VERSION = (REPO / "VERSION").read_text().strip()
TESTFS_PROJECT = REPO / "py" / "runai_model_streamer_testfs"
S3_PROJECT = REPO / "py" / "runai_model_streamer_s3"
GCS_PROJECT = REPO / "py" / "runai_model_streamer_gcs"
AZURE_PROJECT = REPO / "py" / "runai_model_streamer_azure"
HF_PROJECT = REPO / "py" / "runai_model_streamer_hf"
JOBS = os.environ.get("CMAKE_BUILD_PARALLEL_LEVEL", "2")
# Same startup options as cmake/StreamerBazelBuild.cmake, so one Bazel server serves both.
BAZEL_STARTUP = ["--max_idle_secs=60"]


def run(
    cmd: list[str | Path],
    *,
    cwd: Path | None = None,
    env: dict[str, str] | None = None,
    check: bool = True,
    timeout: float = 900,
) -> subprocess.CompletedProcess[str]:
    """Runs a command, capturing stdout+stderr; on failure (with check) the output is shown."""
    result = subprocess.run(
        [str(c) for c in cmd],
        cwd=cwd,
        env=env,
        stdout=subprocess.PIPE,
        stderr=subprocess.STDOUT,
        text=True,
        timeout=timeout,
        check=False,
    )
    if check and result.returncode != 0:
        pytest.fail(
            f"command failed (exit {result.returncode}): {' '.join(map(str, cmd))}\n"
            f"cwd: {cwd}\n--- output ---\n{result.stdout[-20000:]}",
            pytrace=False,
        )
    return result


def build_env(**overrides: str | None) -> dict[str, str]:
    """The environment for a wheel build: ours, minus build-mode variables, plus overrides."""
    env = dict(os.environ)
    for name in (
        "NATIVE_LIBS_PATH",
        "STREAMER_NATIVE_BUILD",
        "STREAMER_LIBRARY",
        "CMAKE_TOOLCHAIN_FILE",
        "ARCHFLAGS",
        "MACOSX_DEPLOYMENT_TARGET",
    ):
        env.pop(name, None)
    env["CMAKE_BUILD_PARALLEL_LEVEL"] = JOBS
    env["PIP_NO_INDEX"] = "1"  # a wheel build needs nothing from an index
    env["PIP_DISABLE_PIP_VERSION_CHECK"] = "1"
    for name, value in overrides.items():
        if value is None:
            env.pop(name, None)
        else:
            env[name] = value
    return env


@dataclass
class BuiltWheel:
    path: Path
    log: str  # pip -v output, with the build log

    def names(self) -> list[str]:
        with zipfile.ZipFile(self.path) as archive:
            return archive.namelist()

    def extract(self, dest: Path) -> Path:
        with zipfile.ZipFile(self.path) as archive:
            archive.extractall(dest)
        return dest

    def read(self, name: str) -> str:
        with zipfile.ZipFile(self.path) as archive:
            return archive.read(name).decode()


def pip_wheel(
    project: Path, out: Path, env: dict[str, str], *, check: bool = True, extra: list[str] = ()
) -> tuple[subprocess.CompletedProcess[str], Path | None]:
    out.mkdir(parents=True, exist_ok=True)
    result = run(
        [
            sys.executable,
            "-m",
            "pip",
            "wheel",
            "-v",
            "--no-build-isolation",
            "--no-deps",
            "-w",
            out,
            *extra,
            project,
        ],
        env=env,
        check=check,
    )
    wheels = sorted(out.glob("*.whl"))
    return result, (wheels[-1] if wheels else None)


def build_wheel(project: Path, out: Path, env: dict[str, str]) -> BuiltWheel:
    result, wheel = pip_wheel(project, out, env)
    assert wheel is not None, f"pip wheel succeeded but left no wheel in {out}:\n{result.stdout}"
    return BuiltWheel(wheel, result.stdout)


# ---- libraries, environments, archives ----------------------------------------------------


def exported_symbols(library: Path) -> list[str]:
    """Defined dynamic symbols (nm -D --defined-only), sorted."""
    out = run(["nm", "-D", "--defined-only", library]).stdout
    return sorted(line.split()[-1] for line in out.splitlines() if line.strip())


def dynamic_section(library: Path) -> str:
    return run(["readelf", "-d", library]).stdout


def make_venv(path: Path) -> Path:
    """A fresh virtual environment that reuses the system's torch/numpy/safetensors."""
    run([sys.executable, "-m", "venv", "--system-site-packages", path])
    return path / "bin" / "python"


def unpack_sdist(sdist: Path, dest: Path) -> Path:
    with tarfile.open(sdist) as archive:
        archive.extractall(dest, filter="data")
    (top,) = [p for p in dest.iterdir() if p.is_dir()]
    return top


# ---- the C API, from the headers ----


def header_functions(header: Path, pattern: str) -> list[str]:
    return sorted(set(re.findall(pattern, header.read_text())))


#: Functions libstreamer exports: every RUNAI_STREAMER_EXPORT declaration of streamer.h.
STREAMER_API = header_functions(
    REPO / "cpp" / "streamer" / "streamer.h",
    r"RUNAI_STREAMER_EXPORT\s+[^;(]*?\b(runai_streamer_\w+)\s*\(",
)
#: Functions a backend plugin exports: the RUNAI_BACKEND_SYM_* names of backend.h.
BACKEND_ABI = header_functions(
    REPO / "cpp" / "streamer" / "backend.h",
    r'#define\s+RUNAI_BACKEND_SYM_\w+\s+"(\w+)"',
)

#: Shared libraries a manylinux library may need (glibc and the loader).
GLIBC_LIBRARIES = re.compile(
    r"^(libc|libm|libdl|libpthread|librt|ld-linux-[\w-]+|ld-linux)\.so(\.\d+)*$"
)


def library_version(library: Path) -> str:
    lib = ctypes.CDLL(str(library))
    lib.runai_streamer_version.restype = ctypes.c_char_p
    return lib.runai_streamer_version().decode()
