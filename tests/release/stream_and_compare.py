"""Streams a safetensors URI with the installed runai-model-streamer and compares every tensor
with the local copy. Run by scripts/rehearse-release with the Python of a fresh virtual
environment holding the repaired wheels.

    python stream_and_compare.py URI LOCAL_FILE    prints "https stream: ok ..." on success
"""

from __future__ import annotations

import sys

import torch
from runai_model_streamer import SafetensorsStreamer
from safetensors.torch import load_file


def main(uri: str, local: str) -> int:
    with SafetensorsStreamer() as streamer:
        streamer.stream_file(uri)
        got = dict(streamer.get_tensors())
    expected = load_file(local)
    if sorted(got) != sorted(expected):
        print(f"tensor names differ: {sorted(set(got) ^ set(expected))[:5]}", file=sys.stderr)
        return 1
    for name, tensor in expected.items():
        same = got[name].dtype == tensor.dtype and got[name].shape == tensor.shape
        # bit for bit: random sample data holds NaNs, which never equal themselves
        if not same or not torch.equal(
            got[name].reshape(-1).view(torch.uint8), tensor.reshape(-1).view(torch.uint8)
        ):
            print(f"tensor {name} differs", file=sys.stderr)
            return 1
    print(f"https stream: ok, {len(got)} tensors from {uri} equal to {local}")
    return 0


if __name__ == "__main__":
    sys.exit(main(*sys.argv[1:]))
