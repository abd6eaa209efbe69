"""Fixtures of the distributed tests: a generated model and a launcher of gloo ranks."""

from __future__ import annotations

import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

import pytest

from tests.distributed.launcher import launch, write_model

Launch = Callable[..., dict[str, Any]]


@pytest.fixture(scope="session")
def model_dir(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """The model of launcher.write_model; ``empty/`` beside it has no files."""
    root = tmp_path_factory.mktemp("dist-model")
    write_model(root)
    (root / "empty").mkdir()
    return root


@pytest.fixture
def launch_ranks(tmp_path: Path, model_dir: Path) -> Launch:
    """launcher.launch with the testfs plugin serving ``model_dir``."""

    def run(world: int, cases: list[dict[str, Any]], **spec: Any) -> dict[str, Any]:
        env = {"RUNAI_STREAMER_TESTFS_ROOT": str(model_dir)}
        return launch(tmp_path / f"out-{time.monotonic_ns()}", world, cases, env, **spec)

    return run
