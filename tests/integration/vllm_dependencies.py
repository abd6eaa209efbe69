"""Prints the requirements of the installed vLLM (``python vllm_dependencies.py DIST``) that the
integration venv needs: all but torch, which the venv reuses from the system, and torchvision,
torchaudio and torchcodec, whose PyPI builds cannot load beside the CPU torch (transformers
would import them and fail). Markers are evaluated here; extras are left out."""

from __future__ import annotations

import sys
from importlib.metadata import requires

from packaging.requirements import Requirement

LEFT_OUT = {"torch", "torchvision", "torchaudio", "torchcodec"}


def dependencies(distribution: str) -> list[str]:
    needed = []
    for line in requires(distribution) or []:
        requirement = Requirement(line)
        if requirement.name in LEFT_OUT:
            continue
        if requirement.marker is not None and not requirement.marker.evaluate({"extra": ""}):
            continue
        requirement.marker = None
        needed.append(str(requirement))
    return needed


if __name__ == "__main__":
    print("\n".join(dependencies(sys.argv[1])))
