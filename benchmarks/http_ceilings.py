"""The raw ranged-GET ceilings of the object-store benchmarks, run by comparison_worker.py: 16
threads of 8 MiB GETs received straight into one preallocated buffer per file, no parsing and
no tensors, against S3 (SigV4-signed), GCS (the JSON API) and the Hub (its redirect targets).
Like the worker, it imports nothing from this project."""

from __future__ import annotations

import json
import os
from collections.abc import Callable
from typing import Any

#: the buffers of the last run, kept until the process exits (their release is not timed)
KEEP_ALIVE: list[Any] = []


def split_uri(uri: str) -> tuple[str, str]:
    """ "s3://bucket/key" (or gs://, az://) -> (bucket, key)."""
    bucket, _, key = uri.split("://", 1)[1].partition("/")
    return bucket, key


def hub_files(files: list[str]) -> tuple[str, list[str]]:
    """hf://<owner>/<name>/<path> URIs of one repository -> (repo id, paths)."""
    repos = {"/".join(uri.removeprefix("hf://").split("/")[:2]) for uri in files}
    (repo,) = repos
    return repo, [uri.removeprefix(f"hf://{repo}/") for uri in files]


def gets_into_buffers(
    files: list[str],
    host: str,
    port: int | None,
    sizes: list[int],
    request: Callable[[str, int, int], tuple[str, dict[str, str]]],
    scheme: str = "http",
) -> tuple[int, int]:
    """The reference for object-storage loaders: 16 threads send 8 MiB range GETs over
    kept-alive connections and receive each body straight into one preallocated buffer per
    file (recv_into, the GIL released), with no parsing and no tensors. request(uri, first,
    end) gives the path and headers of one GET. ``https``: over TLS, the certificate checked
    against the default CAs (SSL_CERT_FILE where set), as the loaders check it."""
    import http.client
    import mmap
    import ssl
    import threading
    from concurrent.futures import ThreadPoolExecutor

    piece = 8 << 20
    local = threading.local()

    def get(uri: str, view: memoryview, at: int, end: int) -> None:
        path, headers = request(uri, at, end)
        if getattr(local, "connection", None) is None:
            if scheme == "https":
                context = ssl.create_default_context()
                local.connection = http.client.HTTPSConnection(host, port, context=context)
            else:
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
            KEEP_ALIVE.append((memory, view))
            total += size
    return total, 0


def _s3_requests(
    files: list[str],
) -> tuple[Callable[[str, int, int], tuple[str, dict[str, str]]], Any, list[int]]:
    """SigV4-signed range GETs (botocore signs, path-style URLs): (request(uri, first, end) ->
    (path, headers), the endpoint's parts, each object's size)."""
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
             for b, k in map(split_uri, files)]  # fmt: skip

    def request(uri: str, at: int, end: int) -> tuple[str, dict[str, str]]:
        bucket, key = split_uri(uri)
        path = quote(f"/{bucket}/{key}", safe="/~")
        signed = AWSRequest("GET", f"{endpoint.scheme}://{endpoint.netloc}{path}",
                            headers={"Range": f"bytes={at}-{end - 1}"})  # fmt: skip
        S3SigV4Auth(credentials, "s3", region).add_auth(signed)
        return path, dict(signed.headers)

    return request, endpoint, sizes


def s3_ceiling(files: list[str]) -> tuple[int, int]:
    """gets_into_buffers with SigV4-signed GETs."""
    request, endpoint, sizes = _s3_requests(files)
    host, port = endpoint.hostname or "", endpoint.port
    return gets_into_buffers(files, host, port, sizes, request, endpoint.scheme)


#: seconds of the last s3_one_get's GET (connection, request and body; not the signing)
ONE_GET_SECONDS: list[float] = []


def s3_one_get(files: list[str]) -> tuple[int, int]:
    """One signed GET of the first 8 MiB of the first object on a new connection (TLS
    handshake included where https), received into a preallocated buffer: the latency that
    the time to the first tensor is read against."""
    import http.client
    import mmap
    import ssl
    import time

    request, endpoint, sizes = _s3_requests(files[:1])
    end = min(8 << 20, sizes[0])
    path, headers = request(files[0], 0, end)
    memory = mmap.mmap(-1, max(end, 1), flags=mmap.MAP_PRIVATE | mmap.MAP_ANONYMOUS)
    view = memoryview(memory)
    start = time.perf_counter()
    if endpoint.scheme == "https":
        context = ssl.create_default_context()
        connection: Any = http.client.HTTPSConnection(
            endpoint.hostname, endpoint.port, context=context
        )
    else:
        connection = http.client.HTTPConnection(endpoint.hostname, endpoint.port)
    connection.request("GET", path, headers=headers)
    response = connection.getresponse()
    at = 0
    while at < end:
        got = response.readinto(view[at:end])
        if not got:
            raise OSError(f"{files[0]}: HTTP {response.status}, body ended at {at}")
        at += got
    ONE_GET_SECONDS.append(time.perf_counter() - start)
    connection.close()
    KEEP_ALIVE.append((memory, view))
    return end, 0


def gcs_ceiling(files: list[str]) -> tuple[int, int]:
    """_gets_into_buffers with anonymous JSON API media GETs on STORAGE_EMULATOR_HOST."""
    import urllib.request
    from urllib.parse import quote, urlsplit

    endpoint = urlsplit(os.environ["STORAGE_EMULATOR_HOST"])

    def path_of(uri: str) -> str:
        bucket, name = split_uri(uri)
        return f"/storage/v1/b/{quote(bucket, safe='')}/o/{quote(name, safe='')}"

    sizes = []
    for uri in files:
        with urllib.request.urlopen(endpoint.geturl() + path_of(uri)) as response:
            sizes.append(int(json.loads(response.read())["size"]))

    def request(uri: str, at: int, end: int) -> tuple[str, dict[str, str]]:
        return path_of(uri) + "?alt=media", {"Range": f"bytes={at}-{end - 1}"}

    return gets_into_buffers(files, endpoint.hostname or "", endpoint.port, sizes, request)


def hf_ceiling(files: list[str]) -> tuple[int, int]:
    """_gets_into_buffers on the URLs the Hub redirects to (one HEAD of each file on resolve/
    for its signed URL and size), unsigned ranged GETs there."""
    import http.client
    from urllib.parse import urlsplit

    endpoint = urlsplit(os.environ["HF_ENDPOINT"])
    repo, paths = hub_files(files)
    hub = http.client.HTTPConnection(endpoint.hostname or "", endpoint.port)
    targets, sizes = {}, []
    for uri, path in zip(files, paths, strict=True):
        hub.request("HEAD", f"/{repo}/resolve/main/{path}")
        response = hub.getresponse()
        response.read()
        targets[uri] = urlsplit(response.headers["Location"])
        sizes.append(int(response.headers["X-Linked-Size"]))
    (host,) = {(t.hostname or "", t.port) for t in targets.values()}

    def request(uri: str, at: int, end: int) -> tuple[str, dict[str, str]]:
        target = targets[uri]
        return f"{target.path}?{target.query}", {"Range": f"bytes={at}-{end - 1}"}

    return gets_into_buffers(files, host[0], host[1], sizes, request)
