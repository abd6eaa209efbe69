"""Shared helpers of the release-engineering tests."""

from __future__ import annotations

import importlib
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parents[2]


def load_release_modules():
    """scripts/'s release_checks and release_targets, the modules of rehearse-release."""
    scripts = str(ROOT / "scripts")
    if scripts not in sys.path:
        sys.path.insert(0, scripts)
    return importlib.import_module("release_checks"), importlib.import_module("release_targets")
