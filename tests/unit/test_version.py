"""The version scheme: this package continues upstream's numbers, so the pins that callers
already write for runai-model-streamer select it (README, "Versions")."""

from __future__ import annotations

import importlib.metadata
from pathlib import Path

import pytest
from packaging.specifiers import SpecifierSet
from packaging.version import Version

ROOT = Path(__file__).resolve().parents[2]

#: what callers require today (read from their requirement files)
CALLER_PINS = {
    "vLLM's [runai] extra": "runai-model-streamer[s3,gcs]>=0.15.7",
    "vLLM before 0.10": "runai-model-streamer[s3,gcs]>=0.15.0",
    "SGLang": "runai-model-streamer[s3,gcs,azure]>=0.15.7",
}


def test_one_version_everywhere() -> None:
    version = (ROOT / "VERSION").read_text().strip()
    assert importlib.metadata.version("runai-model-streamer") == version
    for plugin in ("s3", "gcs", "azure", "hf"):
        assert importlib.metadata.version(f"runai-model-streamer-{plugin}") == version
    requires = importlib.metadata.requires("runai-model-streamer") or []
    for extra in ("s3", "gcs", "azure", "hf"):
        assert f'runai-model-streamer-{extra}=={version}; extra == "{extra}"' in requires


@pytest.mark.parametrize("caller", sorted(CALLER_PINS))
def test_the_installed_version_satisfies_what_callers_pin(caller: str) -> None:
    specifier = SpecifierSet(CALLER_PINS[caller].split("]", 1)[1])
    installed = Version(importlib.metadata.version("runai-model-streamer"))
    assert installed in specifier, f"{caller} pins {specifier}; this package is {installed}"
    assert installed > Version("0.17.0")  # above upstream's releases the API is drop-in for
