"""The benchmarks' worker: one run of one loader in its own process, like the package's
``_bench_worker`` (whose measuring frame and loaders it reuses), with the comparison loaders
that users' wheels do not carry: tensorizer, dd, the O_DIRECT ceiling, boto3, obstore, s5cmd,
the Google and Azure SDKs, huggingface_hub, and the raw GET ceilings of S3, GCS and the Hub.

    python benchmarks/comparison_worker.py LOADER FILE [FILE...]

Run by other interpreters too (a virtual environment holding upstream's package), so it
imports nothing from this project at module level: the package's worker is loaded from this
checkout by path.
"""

from __future__ import annotations

import importlib.util
import json
import os
import subprocess
import sys
from collections.abc import Callable
from pathlib import Path
from typing import Any

_BASE_PATH = (
    Path(__file__).resolve().parents[1]
    / "py"
    / "runai_model_streamer"
    / "runai_model_streamer"
    / "_bench_worker.py"
)
_spec = importlib.util.spec_from_file_location("_package_bench_worker", _BASE_PATH)
assert _spec is not None and _spec.loader is not None, _BASE_PATH
base = importlib.util.module_from_spec(_spec)
_spec.loader.exec_module(base)
keep = base.keep
KEEP_ALIVE = base.KEEP_ALIVE

import http_ceilings  # noqa: E402 (beside this file; after the package's worker)
from http_ceilings import hub_files, split_uri  # noqa: E402


def _tensorizer(files: list[str]) -> tuple[int, int]:
    from tensorizer import TensorDeserializer

    kept = {}
    total = 0
    for path in files:
        deserializer = TensorDeserializer(path, device="cpu", num_readers=2)
        for name, tensor in deserializer.items():
            kept[name] = tensor
            total += tensor.numel() * tensor.element_size()
        deserializer.close()
    return total, keep(kept)


def _dd_with(*flags: str) -> Callable[[list[str]], tuple[int, int]]:
    def dd(files: list[str]) -> tuple[int, int]:
        total = 0
        for path in files:
            subprocess.run(
                ["dd", f"if={path}", "of=/dev/null", "bs=16M", *flags],
                check=True,
                stdout=subprocess.DEVNULL,
                stderr=subprocess.DEVNULL,
            )
            total += os.path.getsize(path)
        return total, 0

    return dd


def _direct_ceiling(files: list[str]) -> tuple[int, int]:
    """The storage ceiling without page-cache costs: 16 threads O_DIRECT-read each file in
    8 MiB pieces into reused aligned buffers (one per thread; the tail block rounded up)."""
    import mmap
    import threading
    from concurrent.futures import ThreadPoolExecutor

    piece = 8 << 20
    local = threading.local()

    def read(fd: int, at: int, path: str) -> None:
        if getattr(local, "buffer", None) is None:
            local.buffer = mmap.mmap(-1, piece)  # page-aligned, reused
        got = os.preadv(fd, [local.buffer], at)
        if got <= 0:
            raise OSError(f"{path}: O_DIRECT read at {at} returned {got}")

    total = 0
    with ThreadPoolExecutor(16) as pool:
        for path in files:
            size = os.path.getsize(path)
            fd = os.open(path, os.O_RDONLY | os.O_DIRECT)
            try:
                for done in [pool.submit(read, fd, at, path) for at in range(0, size, piece)]:
                    done.result()
            finally:
                os.close(fd)
            total += size
    return total, 0


def _tensors_from_buffer(buffer: Any) -> dict[str, Any]:
    """Tensors viewing a whole safetensors file held in ``buffer`` (owned: nothing reuses it)."""
    import torch

    view = memoryview(buffer)
    header_size = int.from_bytes(view[:8], "little")
    header = json.loads(bytes(view[8 : 8 + header_size]))
    header.pop("__metadata__", None)
    start = 8 + header_size
    tensors = {}
    for name, entry in header.items():
        begin, end = entry["data_offsets"]
        dtype = getattr(torch, _TORCH_DTYPES[entry["dtype"]])
        raw = torch.frombuffer(view, dtype=torch.uint8, count=end - begin, offset=start + begin)
        tensors[name] = raw.view(dtype).reshape(entry["shape"])
    KEEP_ALIVE.append(buffer)
    return tensors


_TORCH_DTYPES = {"F32": "float32", "F16": "float16", "BF16": "bfloat16", "I64": "int64",
                 "I32": "int32", "I8": "int8", "U8": "uint8", "F64": "float64", "BOOL": "bool",
                 "I16": "int16"}  # fmt: skip


def _boto3(files: list[str]) -> tuple[int, int]:
    """boto3's managed download (download_fileobj) into memory, then safetensors.torch.load."""
    import io

    import boto3
    from safetensors.torch import load

    client = boto3.client("s3")
    kept: dict[str, Any] = {}
    total = 0
    for uri in files:
        data = io.BytesIO()
        client.download_fileobj(*split_uri(uri), data)
        for name, tensor in load(data.getvalue()).items():
            kept[name] = tensor
            total += tensor.numel() * tensor.element_size()
    return total, keep(kept)


def _sdk_load(files: list[str], download: Callable[[str], bytes]) -> tuple[int, int]:
    """download(uri) -> the object's bytes, then safetensors.torch.load of them."""
    from safetensors.torch import load

    kept: dict[str, Any] = {}
    total = 0
    for uri in files:
        for name, tensor in load(download(uri)).items():
            kept[name] = tensor
            total += tensor.numel() * tensor.element_size()
    return total, keep(kept)


def _gcs_sdk(files: list[str]) -> tuple[int, int]:
    """google-cloud-storage's download_as_bytes (anonymous client on the emulator of
    STORAGE_EMULATOR_HOST), then safetensors.torch.load."""
    from google.cloud import storage

    client = storage.Client.create_anonymous_client()

    def download(uri: str) -> bytes:
        bucket, name = split_uri(uri)
        return bytes(client.bucket(bucket).blob(name).download_as_bytes())

    return _sdk_load(files, download)


def _azure_sdk(files: list[str]) -> tuple[int, int]:
    """azure-storage-blob's download_blob(max_concurrency=16).readall() with
    AZURE_STORAGE_CONNECTION_STRING, then safetensors.torch.load."""
    from azure.storage.blob import BlobServiceClient

    connection_string = os.environ["AZURE_STORAGE_CONNECTION_STRING"]
    service = BlobServiceClient.from_connection_string(connection_string)

    def download(uri: str) -> bytes:
        container, name = split_uri(uri)
        blob = service.get_blob_client(container, name)
        return bytes(blob.download_blob(max_concurrency=16).readall())

    return _sdk_load(files, download)


def _obstore(files: list[str]) -> tuple[int, int]:
    """obstore: 16 get_range_async calls in flight (8 MiB each) into one buffer per file."""
    import asyncio

    import obstore
    from obstore.store import S3Store

    piece = 8 << 20
    stores = {}
    for uri in files:
        bucket = split_uri(uri)[0]
        if bucket not in stores:
            stores[bucket] = S3Store(
                bucket,
                endpoint=os.environ.get("AWS_ENDPOINT_URL"),
                client_options={"allow_http": True},
                virtual_hosted_style_request=False,
            )
    KEEP_ALIVE.append(stores)

    async def fetch(uri: str, limit: asyncio.Semaphore) -> bytearray:
        bucket, key = split_uri(uri)
        store = stores[bucket]
        size = (await obstore.head_async(store, key))["size"]
        buffer = bytearray(size)

        async def one(at: int) -> None:
            async with limit:
                end = min(at + piece, size)
                data = await obstore.get_range_async(store, key, start=at, end=end)
                buffer[at : at + len(data)] = memoryview(data)

        await asyncio.gather(*(one(at) for at in range(0, size, piece)))
        return buffer

    async def fetch_all() -> list[bytearray]:
        limit = asyncio.Semaphore(16)
        return list(await asyncio.gather(*(fetch(uri, limit) for uri in files)))

    kept: dict[str, Any] = {}
    total = 0
    # run_until_complete, not asyncio.run: closing the loop waits ~1.3 s for obstore's runtime
    loop = asyncio.new_event_loop()
    KEEP_ALIVE.append(loop)
    for buffer in loop.run_until_complete(fetch_all()):
        for name, tensor in _tensors_from_buffer(buffer).items():
            kept[name] = tensor
            total += tensor.numel() * tensor.element_size()
    return total, keep(kept)


def _s5cmd(files: list[str]) -> tuple[int, int]:
    """s5cmd cp to /dev/shm (memory), then safetensors load_file + clone, as from a local disk."""
    import shutil
    import tempfile

    from safetensors.torch import load_file

    endpoint = os.environ.get("AWS_ENDPOINT_URL")
    directory = tempfile.mkdtemp(dir="/dev/shm")
    try:
        command = ["s5cmd"] + (["--endpoint-url", endpoint] if endpoint else [])
        for uri in files:
            subprocess.run([*command, "cp", uri, directory + "/"], check=True,
                           stdout=subprocess.DEVNULL)  # fmt: skip
        kept: dict[str, Any] = {}
        total = 0
        for uri in files:
            for name, tensor in load_file(os.path.join(directory, uri.rsplit("/", 1)[1])).items():
                kept[name] = tensor.clone()
                total += tensor.numel() * tensor.element_size()
    finally:
        shutil.rmtree(directory, ignore_errors=True)
    return total, keep(kept)


def _hf_hub(files: list[str]) -> tuple[int, int]:
    """huggingface_hub.snapshot_download of the files (its default 8 workers, into a cache of
    its layout on local disk), then safetensors load_file + clone, as users load a Hub model."""
    import shutil
    import tempfile

    import huggingface_hub
    from safetensors.torch import load_file

    repo, paths = hub_files(files)
    directory = tempfile.mkdtemp(prefix="hf-cache-")
    try:
        snapshot = huggingface_hub.snapshot_download(
            repo, allow_patterns=paths, cache_dir=directory
        )
        kept: dict[str, Any] = {}
        total = 0
        for path in paths:
            for name, tensor in load_file(os.path.join(snapshot, path)).items():
                kept[name] = tensor.clone()
                total += tensor.numel() * tensor.element_size()
    finally:
        shutil.rmtree(directory, ignore_errors=True)
    return total, keep(kept)


def _fio(files: list[str]) -> tuple[int, int]:
    """fio with the settings the parent's sweep found fastest (FIO_SETTINGS): the device's
    cold-read ceiling (fio_ceiling.py)."""
    import fio_ceiling

    settings = fio_ceiling.FioSettings.from_env(os.environ["FIO_SETTINGS"])
    return fio_ceiling.read(files, settings), 0


def _one_chunk(files: list[str]) -> tuple[int, int]:
    """One read of the engine's chunk size (8 MiB) at the start of the first file, O_DIRECT:
    the latency that the time to the first tensor is read against."""
    import mmap

    piece = 8 << 20
    fd = os.open(files[0], os.O_RDONLY | os.O_DIRECT)
    try:
        got = os.preadv(fd, [mmap.mmap(-1, piece)], 0)
    finally:
        os.close(fd)
    return got, 0


def _s3_one_get(files: list[str]) -> tuple[int, int]:
    """http_ceilings.s3_one_get, its GET's own time recorded as the time to the first tensor
    (the signing and the HEAD before it are not)."""
    got = http_ceilings.s3_one_get(files)
    base.FIRST_TENSOR.append(http_ceilings.ONE_GET_SECONDS[-1])
    return got


LOADERS: dict[str, Callable[[list[str]], tuple[int, int]]] = {
    **base.LOADERS,
    "tensorizer": _tensorizer,
    "dd": _dd_with(),
    "dd-direct": _dd_with("iflag=direct"),
    "direct-ceiling": _direct_ceiling,
    "boto3": _boto3,
    "obstore": _obstore,
    "s5cmd": _s5cmd,
    "s3-ceiling": http_ceilings.s3_ceiling,
    "s3-one-get": _s3_one_get,
    "gcs-ceiling": http_ceilings.gcs_ceiling,
    "gcs-sdk": _gcs_sdk,
    "azure-sdk": _azure_sdk,
    "hf-hub": _hf_hub,
    "hf-ceiling": http_ceilings.hf_ceiling,
    "fio": _fio,
    "runai-reused": base.runai(owned=False),
    "one-chunk": _one_chunk,
}
IMPORTS = {
    **base.IMPORTS,
    "runai-reused": "runai_model_streamer",
    "tensorizer": "tensorizer",
    "dd": "",
    "dd-direct": "",
    "direct-ceiling": "os",
    "boto3": "boto3",
    "obstore": "obstore",
    "s5cmd": "safetensors.torch",
    "s3-ceiling": "botocore.auth",
    "s3-one-get": "botocore.auth",
    "gcs-ceiling": "http.client",
    "gcs-sdk": "google.cloud.storage",
    "azure-sdk": "azure.storage.blob",
    "hf-hub": "huggingface_hub",
    "hf-ceiling": "http.client",
    "fio": "json",
    "one-chunk": "os",
}

if __name__ == "__main__":
    raise SystemExit(base.main(sys.argv[1:], LOADERS, IMPORTS))
