"""Shared helpers of the release-engineering tests."""

from __future__ import annotations

import importlib.machinery
import importlib.util
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parents[2]


def load_rehearse_release():
    """scripts/rehearse-release as a module (the file has no .py suffix)."""
    name = "rehearse_release"
    if name not in sys.modules:
        path = ROOT / "scripts" / "rehearse-release"
        loader = importlib.machinery.SourceFileLoader(name, str(path))
        module = importlib.util.module_from_spec(importlib.util.spec_from_loader(name, loader))
        sys.modules[name] = module
        loader.exec_module(module)
    return sys.modules[name]
