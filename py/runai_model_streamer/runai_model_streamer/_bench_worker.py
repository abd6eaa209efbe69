"""One benchmark run of one loader, in its own process (for a clean peak-RSS figure).

Run as a script, possibly by another interpreter (for example a virtual environment holding
the upstream package), so it imports nothing from this package at module level:

    python _bench_worker.py LOADER FILE [FILE...]

Prints one JSON line: loader, seconds (loading only, imports excluded), bytes, tensors,
rss_base (peak RSS after imports, bytes), rss_peak (peak RSS at the end, bytes) and
cpu_seconds (user + system CPU time of the loading, children included).
"""

from __future__ import annotations

import json
import os
import resource
import subprocess
import sys
import time
from collections.abc import Callable
from typing import Any

_KEEP_ALIVE: list[object] = []


def _keep(tensors: dict[str, Any]) -> int:
    """Keep a loader's tensors alive past the timed region, as the references keep their
    buffers: freeing gigabytes (munmap) is not loading, and took 0.3-0.5 s of a 2 GB run."""
    _KEEP_ALIVE.append(tensors)
    return len(tensors)


def _peak_rss() -> int:
    # Linux: VmHWM of this process image (ru_maxrss survives exec, so it would include the
    # parent's peak when the parent was bigger); elsewhere ru_maxrss.
    try:
        with open("/proc/self/status") as status:
            for line in status:
                if line.startswith("VmHWM:"):
                    return int(line.split()[1]) * 1024
    except OSError:
        pass
    peak = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss
    return int(peak if sys.platform == "darwin" else peak * 1024)


def _cpu_seconds() -> float:
    """User + system CPU time of this process and its finished children (s5cmd, dd)."""
    own = resource.getrusage(resource.RUSAGE_SELF)
    children = resource.getrusage(resource.RUSAGE_CHILDREN)
    return own.ru_utime + own.ru_stime + children.ru_utime + children.ru_stime


def _runai(files: list[str]) -> tuple[int, int]:
    from runai_model_streamer import SafetensorsStreamer

    kept: dict[str, Any] = {}
    total = 0
    with SafetensorsStreamer() as streamer:
        streamer.stream_files(files)
        for name, tensor in streamer.get_tensors():
            kept[name] = tensor
            total += tensor.numel() * tensor.element_size()
    return total, _keep(kept)


def _safetensors(backend: str | None) -> Callable[[list[str]], tuple[int, int]]:
    def load(files: list[str]) -> tuple[int, int]:
        from safetensors.torch import load_file

        kept: dict[str, Any] = {}
        total = 0
        for path in files:
            tensors = load_file(path) if backend is None else load_file(path, backend=backend)
            for name, tensor in tensors.items():
                # mmap: copy once into process memory, as a weight loader copies into params
                kept[name] = tensor.clone() if backend is None else tensor
                total += tensor.numel() * tensor.element_size()
        return total, _keep(kept)

    return load


def _fastsafetensors(files: list[str]) -> tuple[int, int]:
    from fastsafetensors import SafeTensorsFileLoader, SingleGroup

    loader = SafeTensorsFileLoader(SingleGroup(), "cpu", nogds=True)
    loader.add_filenames({0: files})
    buffer = loader.copy_files_to_device()
    kept = {}
    total = 0
    for name in loader.get_keys():
        # views into the loader's buffer, valid while it is open (kept open: no extra copy)
        tensor = buffer.get_tensor(name)
        kept[name] = tensor
        total += tensor.numel() * tensor.element_size()
    _KEEP_ALIVE.append((loader, buffer))
    return total, _keep(kept)


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
    return total, _keep(kept)


def _pread_into(memory: memoryview, fd: int, start: int, end: int, path: str) -> None:
    while start < end:
        got = os.preadv(fd, [memory[start:end]], start)
        if got <= 0:
            raise OSError(f"{path}: file ended at offset {start}")
        start += got


def _pread(files: list[str]) -> tuple[int, int]:
    """The reference for loaders that read into new memory: 2 threads pread 8 MiB pieces of
    each file into one fresh private anonymous mapping (no parsing, no tensors; the GIL is
    released)."""
    import mmap
    from concurrent.futures import ThreadPoolExecutor

    piece = 8 << 20
    total = 0
    with ThreadPoolExecutor(2) as pool:
        for path in files:
            size = os.path.getsize(path)
            memory = mmap.mmap(-1, max(size, 1), flags=mmap.MAP_PRIVATE | mmap.MAP_ANONYMOUS)
            view = memoryview(memory)
            fd = os.open(path, os.O_RDONLY)
            try:
                reads = [
                    pool.submit(_pread_into, view, fd, at, min(at + piece, size), path)
                    for at in range(0, size, piece)
                ]
                for read in reads:
                    read.result()
            finally:
                os.close(fd)
            _KEEP_ALIVE.append((memory, view))
            total += size
    return total, 0


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


def _split_uri(uri: str) -> tuple[str, str]:
    """ "s3://bucket/key" (or gs://, az://) -> (bucket, key)."""
    bucket, _, key = uri.split("://", 1)[1].partition("/")
    return bucket, key


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
    _KEEP_ALIVE.append(buffer)
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
        client.download_fileobj(*_split_uri(uri), data)
        for name, tensor in load(data.getvalue()).items():
            kept[name] = tensor
            total += tensor.numel() * tensor.element_size()
    return total, _keep(kept)


def _sdk_load(files: list[str], download: Callable[[str], bytes]) -> tuple[int, int]:
    """download(uri) -> the object's bytes, then safetensors.torch.load of them."""
    from safetensors.torch import load

    kept: dict[str, Any] = {}
    total = 0
    for uri in files:
        for name, tensor in load(download(uri)).items():
            kept[name] = tensor
            total += tensor.numel() * tensor.element_size()
    return total, _keep(kept)


def _gcs_sdk(files: list[str]) -> tuple[int, int]:
    """google-cloud-storage's download_as_bytes (anonymous client on the emulator of
    STORAGE_EMULATOR_HOST), then safetensors.torch.load."""
    from google.cloud import storage

    client = storage.Client.create_anonymous_client()

    def download(uri: str) -> bytes:
        bucket, name = _split_uri(uri)
        return bytes(client.bucket(bucket).blob(name).download_as_bytes())

    return _sdk_load(files, download)


def _azure_sdk(files: list[str]) -> tuple[int, int]:
    """azure-storage-blob's download_blob(max_concurrency=16).readall() with
    AZURE_STORAGE_CONNECTION_STRING, then safetensors.torch.load."""
    from azure.storage.blob import BlobServiceClient

    connection_string = os.environ["AZURE_STORAGE_CONNECTION_STRING"]
    service = BlobServiceClient.from_connection_string(connection_string)

    def download(uri: str) -> bytes:
        container, name = _split_uri(uri)
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
        bucket = _split_uri(uri)[0]
        if bucket not in stores:
            stores[bucket] = S3Store(
                bucket,
                endpoint=os.environ.get("AWS_ENDPOINT_URL"),
                client_options={"allow_http": True},
                virtual_hosted_style_request=False,
            )
    _KEEP_ALIVE.append(stores)

    async def fetch(uri: str, limit: asyncio.Semaphore) -> bytearray:
        bucket, key = _split_uri(uri)
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
    _KEEP_ALIVE.append(loop)
    for buffer in loop.run_until_complete(fetch_all()):
        for name, tensor in _tensors_from_buffer(buffer).items():
            kept[name] = tensor
            total += tensor.numel() * tensor.element_size()
    return total, _keep(kept)


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
    return total, _keep(kept)


def _gets_into_buffers(
    files: list[str],
    host: str,
    port: int | None,
    sizes: list[int],
    request: Callable[[str, int, int], tuple[str, dict[str, str]]],
) -> tuple[int, int]:
    """The reference for object-storage loaders: 16 threads send 8 MiB range GETs over
    kept-alive connections and receive each body straight into one preallocated buffer per
    file (recv_into, the GIL released), with no parsing and no tensors. request(uri, first,
    end) gives the path and headers of one GET."""
    import http.client
    import mmap
    import threading
    from concurrent.futures import ThreadPoolExecutor

    piece = 8 << 20
    local = threading.local()

    def get(uri: str, view: memoryview, at: int, end: int) -> None:
        path, headers = request(uri, at, end)
        if getattr(local, "connection", None) is None:
            local.connection = http.client.HTTPConnection(host, port)
        local.connection.request("GET", path, headers=headers)
        response = local.connection.getresponse()
        if response.status != 206:
            raise OSError(f"{uri}: HTTP {response.status} {response.read()[:200]!r}")
        while at < end:
            got = response.readinto(view[at:end])
            if not got:
                raise OSError(f"{uri}: body ended at {at}")
            at += got

    total = 0
    with ThreadPoolExecutor(16) as pool:
        for uri, size in zip(files, sizes, strict=True):
            memory = mmap.mmap(-1, max(size, 1), flags=mmap.MAP_PRIVATE | mmap.MAP_ANONYMOUS)
            view = memoryview(memory)
            reads = [pool.submit(get, uri, view, at, min(at + piece, size))
                     for at in range(0, size, piece)]  # fmt: skip
            for read in reads:
                read.result()
            _KEEP_ALIVE.append((memory, view))
            total += size
    return total, 0


def _s3_ceiling(files: list[str]) -> tuple[int, int]:
    """_gets_into_buffers with SigV4-signed GETs (botocore signs, path-style URLs)."""
    from urllib.parse import quote, urlsplit

    import botocore.session
    from botocore.auth import S3SigV4Auth
    from botocore.awsrequest import AWSRequest

    endpoint = urlsplit(os.environ.get("AWS_ENDPOINT_URL", ""))
    session = botocore.session.get_session()
    credentials = session.get_credentials().get_frozen_credentials()
    region = session.get_config_variable("region") or "us-east-1"
    client = session.create_client("s3", endpoint_url=os.environ.get("AWS_ENDPOINT_URL"))
    sizes = [int(client.head_object(Bucket=b, Key=k)["ContentLength"])
             for b, k in map(_split_uri, files)]  # fmt: skip

    def request(uri: str, at: int, end: int) -> tuple[str, dict[str, str]]:
        bucket, key = _split_uri(uri)
        path = quote(f"/{bucket}/{key}", safe="/~")
        signed = AWSRequest("GET", f"{endpoint.scheme}://{endpoint.netloc}{path}",
                            headers={"Range": f"bytes={at}-{end - 1}"})  # fmt: skip
        S3SigV4Auth(credentials, "s3", region).add_auth(signed)
        return path, dict(signed.headers)

    return _gets_into_buffers(files, endpoint.hostname or "", endpoint.port, sizes, request)


def _gcs_ceiling(files: list[str]) -> tuple[int, int]:
    """_gets_into_buffers with anonymous JSON API media GETs on STORAGE_EMULATOR_HOST."""
    import urllib.request
    from urllib.parse import quote, urlsplit

    endpoint = urlsplit(os.environ["STORAGE_EMULATOR_HOST"])

    def path_of(uri: str) -> str:
        bucket, name = _split_uri(uri)
        return f"/storage/v1/b/{quote(bucket, safe='')}/o/{quote(name, safe='')}"

    sizes = []
    for uri in files:
        with urllib.request.urlopen(endpoint.geturl() + path_of(uri)) as response:
            sizes.append(int(json.loads(response.read())["size"]))

    def request(uri: str, at: int, end: int) -> tuple[str, dict[str, str]]:
        return path_of(uri) + "?alt=media", {"Range": f"bytes={at}-{end - 1}"}

    return _gets_into_buffers(files, endpoint.hostname or "", endpoint.port, sizes, request)


LOADERS: dict[str, Callable[[list[str]], tuple[int, int]]] = {
    "runai": _runai,
    "safetensors": _safetensors(None),
    "safetensors-pread": _safetensors("pread"),
    "fastsafetensors": _fastsafetensors,
    "tensorizer": _tensorizer,
    "pread": _pread,
    "dd": _dd_with(),
    "dd-direct": _dd_with("iflag=direct"),
    "direct-ceiling": _direct_ceiling,
    "boto3": _boto3,
    "obstore": _obstore,
    "s5cmd": _s5cmd,
    "s3-ceiling": _s3_ceiling,
    "gcs-ceiling": _gcs_ceiling,
    "gcs-sdk": _gcs_sdk,
    "azure-sdk": _azure_sdk,
}

_IMPORTS = {
    "runai": "runai_model_streamer",
    "safetensors": "safetensors.torch",
    "safetensors-pread": "safetensors.torch",
    "fastsafetensors": "fastsafetensors",
    "tensorizer": "tensorizer",
    "pread": "os",
    "dd": "os",
    "dd-direct": "os",
    "direct-ceiling": "os",
    "boto3": "boto3",
    "obstore": "obstore",
    "s5cmd": "safetensors.torch",
    "s3-ceiling": "botocore.auth",
    "gcs-ceiling": "http.client",
    "gcs-sdk": "google.cloud.storage",
    "azure-sdk": "azure.storage.blob",
}


def main(argv: list[str]) -> int:
    if len(argv) < 2 or argv[0] not in LOADERS:
        print(f"usage: {sys.argv[0]} {{{','.join(LOADERS)}}} FILE...", file=sys.stderr)
        return 2
    loader, files = argv[0], argv[1:]
    if not loader.startswith("dd"):
        # Import cost is not part of loading, but its time is: on the VMs measured, memory the
        # previous run freed is taken back by the host within about 2 s, so a process that
        # starts reading sooner (no torch import) faults in cheaper pages. Every Python loader,
        # the pread reference included, pays the same import first.
        import torch  # noqa: F401

        __import__(_IMPORTS[loader])
    base = _peak_rss()
    cpu_before = _cpu_seconds()
    start = time.perf_counter()
    total, tensors = LOADERS[loader](files)
    seconds = time.perf_counter() - start
    cpu = _cpu_seconds() - cpu_before
    result = {
        "loader": loader,
        "seconds": seconds,
        "bytes": total,
        "tensors": tensors,
        "rss_base": base,
        "rss_peak": _peak_rss(),
        "cpu_seconds": cpu,
    }
    print(json.dumps(result))
    return 0


if __name__ == "__main__":
    raise SystemExit(main(sys.argv[1:]))
