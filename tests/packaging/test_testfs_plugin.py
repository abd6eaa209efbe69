"""The testfs plugin module's contract with the core: library_path() and backend_options().

Loaded from its source file, so these run without a build; the installed plugin (with its
library) is exercised by test_wheels.py."""

from __future__ import annotations

import importlib.util
import sys
from pathlib import Path
from types import ModuleType

import pytest
from packaging_helpers import TESTFS_PROJECT

ROOT_ENV = "RUNAI_STREAMER_TESTFS_ROOT"


@pytest.fixture
def plugin(monkeypatch: pytest.MonkeyPatch) -> ModuleType:
    name = "runai_model_streamer_testfs"
    spec = importlib.util.spec_from_file_location(name, TESTFS_PROJECT / name / "__init__.py")
    assert spec is not None and spec.loader is not None
    module = importlib.util.module_from_spec(spec)
    monkeypatch.setitem(sys.modules, name, module)  # importlib.resources looks it up there
    spec.loader.exec_module(module)
    return module


def test_backend_options_name_the_served_directory(
    plugin: ModuleType, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv(ROOT_ENV, str(tmp_path))
    assert plugin.backend_options(None) == {"root": str(tmp_path)}


def test_backend_options_without_the_root_variable(
    plugin: ModuleType, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.delenv(ROOT_ENV, raising=False)
    with pytest.raises(RuntimeError, match=f"{ROOT_ENV} is not set"):
        plugin.backend_options(None)


def test_backend_options_with_a_root_that_is_not_a_directory(
    plugin: ModuleType, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    missing = tmp_path / "missing"
    monkeypatch.setenv(ROOT_ENV, str(missing))
    with pytest.raises(RuntimeError, match=f"{ROOT_ENV}={missing} is not a directory"):
        plugin.backend_options(None)


def test_library_path_names_the_missing_library(plugin: ModuleType) -> None:
    """In the source tree there is no built library: the error names where it looked."""
    expected = TESTFS_PROJECT / "runai_model_streamer_testfs" / plugin.LIBRARY_NAME
    assert not expected.exists()
    with pytest.raises(FileNotFoundError, match=f"{expected} does not exist"):
        plugin.library_path()
