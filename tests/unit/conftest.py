"""Fixtures for the unit tests.

The tests import ``runai_model_streamer`` normally: in the real suite it is pip-installed with
libstreamer inside; while developing, ``PYTHONPATH=py/runai_model_streamer`` plus
``STREAMER_LIBRARY`` point at a build.

``testfs``: the object-storage path is tested with the test plugin (scheme ``testfs``). When the
``runai-model-streamer-testfs`` distribution is installed its entry point is used as is.
Otherwise a temporary ``*.dist-info`` directory on ``sys.path`` declares a real entry point to a
small module serving ``libstreamer_testfs`` from ``$STREAMER_TESTFS_LIBRARY`` (or from next to
``$STREAMER_LIBRARY``). Without either the testfs tests fail with instructions.
"""

from __future__ import annotations

import importlib
import importlib.metadata
import os
import sys
import textwrap
from collections.abc import Iterator
from pathlib import Path

import pytest

ENTRY_POINT_GROUP = "runai_model_streamer.backends"
TESTFS_ROOT_ENV = "RUNAI_STREAMER_TESTFS_ROOT"


def _testfs_library() -> str | None:
    explicit = os.environ.get("STREAMER_TESTFS_LIBRARY")
    if explicit:
        return explicit
    core = os.environ.get("STREAMER_LIBRARY")
    if core:
        candidate = Path(core).parent / Path(core).name.replace("libstreamer", "libstreamer_testfs")
        if candidate.is_file():
            return str(candidate)
    return None


@pytest.fixture(scope="session")
def testfs_plugin(tmp_path_factory: pytest.TempPathFactory) -> Iterator[str]:
    """Makes sure a ``testfs`` backend entry point exists; yields how it is provided."""
    if importlib.metadata.entry_points(group=ENTRY_POINT_GROUP, name="testfs"):
        yield "installed"
        return
    library = _testfs_library()
    if library is None:
        pytest.fail(
            "the testfs backend is needed: install runai-model-streamer-testfs "
            "(py/runai_model_streamer_testfs) or set STREAMER_TESTFS_LIBRARY to "
            "libstreamer_testfs.so"
        )
    site = tmp_path_factory.mktemp("testfs-site")
    (site / "unit_testfs_plugin.py").write_text(
        textwrap.dedent(
            f"""
            import os

            def library_path():
                return {os.path.abspath(library)!r}

            def backend_options(credentials=None):
                return {{"root": os.environ[{TESTFS_ROOT_ENV!r}]}}
            """
        )
    )
    info = site / "unit_testfs_plugin-1.0.dist-info"
    info.mkdir()
    (info / "METADATA").write_text(
        "Metadata-Version: 2.1\nName: unit-testfs-plugin\nVersion: 1.0\n"
    )
    (info / "entry_points.txt").write_text(f"[{ENTRY_POINT_GROUP}]\ntestfs = unit_testfs_plugin\n")
    sys.path.insert(0, str(site))
    importlib.invalidate_caches()
    try:
        yield "temporary dist-info"
    finally:
        sys.path.remove(str(site))
        importlib.invalidate_caches()


@pytest.fixture
def testfs_root(testfs_plugin: str, tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Path:
    """A directory served as ``testfs://``."""
    root = tmp_path / "testfs-root"
    root.mkdir()
    monkeypatch.setenv(TESTFS_ROOT_ENV, str(root))
    return root


@pytest.fixture
def reads(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Path:
    """The testfs read log: one line per range the store served."""
    log = tmp_path / "reads.log"
    monkeypatch.setenv("RUNAI_STREAMER_TESTFS_READ_LOG", str(log))
    return log
