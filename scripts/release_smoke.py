"""The smoke step of scripts/rehearse-release: the wheels of this machine installed into a fresh
virtual environment stream a generated model and an object from SeaweedFS over HTTPS; with
--qemu, the linux-aarch64 libraries stream under qemu-aarch64."""

from __future__ import annotations

import contextlib
import os
import re
import shutil
import sys
import tempfile
import zipfile
from collections.abc import Iterator
from pathlib import Path
from typing import Any

from release_targets import PACKAGES, PLATFORMS, ROOT


class SmokeSteps:
    """The smoke steps of a Rehearsal (which sets these attributes and runs the commands)."""

    out: Path
    log_dir: Path
    python: str
    zig: str

    def run(self, step: str, command: list[str], env: dict | None = None, cwd: Path = ROOT) -> None:
        raise NotImplementedError

    def smoke(self, wheels: dict[str, Path]) -> list[str]:
        """Installs the wheels into a fresh venv (torch and the plugins' Python dependencies
        from this Python) and streams a local model; with the s3 wheel, also a model from
        SeaweedFS over HTTPS with a self-signed CA (AWS_CA_BUNDLE)."""
        venv = self.out / "smoke-venv"
        shutil.rmtree(venv, ignore_errors=True)
        self.run("smoke", [self.python, "-m", "venv", "--system-site-packages", str(venv)])
        python = venv / "bin" / "python"
        install = [str(python), "-m", "pip", "install", "--no-deps", "--no-index"]
        self.run("smoke", [*install, "--force-reinstall", *map(str, wheels.values())])
        command = venv / "bin" / "runai-model-streamer"
        with tempfile.TemporaryDirectory(prefix="rehearse-smoke-") as directory:
            cwd = Path(directory)  # away from the source tree: only the installed package counts
            self.run("smoke", [str(command), "info"], cwd=cwd)
            self.run(
                "smoke", [str(command), "sample", "model.safetensors", "--size", "16MB"], cwd=cwd
            )
            self.run(
                "smoke",
                [str(command), "stream", "--quiet", "--verify", "model.safetensors"],
                cwd=cwd,
            )
            if "s3" in wheels:
                self.stream_over_https(python, cwd)
        log = (self.log_dir / "smoke.log").read_text()
        problems = []
        for package in wheels:
            library = PACKAGES[package].filename(PLATFORMS["linux-x86_64"])
            if not re.search(rf"{re.escape(str(venv))}\S*/{re.escape(library)}", log):
                problems.append(f"smoke: `runai-model-streamer info` did not show {library} "
                                f"from {venv}")  # fmt: skip
        if "verify: all" not in log:
            problems.append("smoke: stream --verify did not report all tensors equal")
        if "s3" in wheels and "https stream: ok" not in log:
            problems.append("smoke: the s3 wheel did not stream from SeaweedFS over HTTPS")
        return problems

    def stream_over_https(self, python: Path, cwd: Path) -> None:
        model = cwd / "model.safetensors"
        with seaweedfs_over_https(cwd / "seaweedfs", model) as (server, credentials):
            env = {
                "AWS_ENDPOINT_URL": server.endpoint,
                "AWS_CA_BUNDLE": str(server.certificate),
                "AWS_ACCESS_KEY_ID": credentials[0],
                "AWS_SECRET_ACCESS_KEY": credentials[1],
                "AWS_CONFIG_FILE": "/nonexistent",
                "AWS_SHARED_CREDENTIALS_FILE": "/nonexistent",
                "AWS_EC2_METADATA_DISABLED": "true",
            }
            self.run(
                "smoke",
                [
                    str(python),
                    str(ROOT / "tests" / "release" / "stream_and_compare.py"),
                    f"s3://rehearsal/{model.name}",
                    str(model),
                ],
                env,
                cwd,
            )

    def qemu_aarch64(self, wheels: dict[str, Path]) -> list[str]:
        """Streams a file through the aarch64 wheel's libstreamer under qemu-aarch64, and with
        the s3 wheel an object from SeaweedFS over HTTPS through its libstreamers3."""
        qemu = shutil.which("qemu-aarch64-static") or shutil.which("qemu-aarch64")
        sysroot = Path("/usr/aarch64-linux-gnu")
        if not qemu or not (sysroot / "lib" / "ld-linux-aarch64.so.1").exists():
            return [
                "qemu: needs qemu-aarch64(-static) and an aarch64 glibc in /usr/aarch64-linux-gnu "
                "(apt-get install qemu-user-static libc6-arm64-cross)"
            ]
        work = self.out / "qemu-aarch64"
        shutil.rmtree(work, ignore_errors=True)
        work.mkdir(parents=True)
        libraries = {}
        for key, wheel in wheels.items():
            package = PACKAGES[key]
            member = f"{package.module}/{package.filename(PLATFORMS['linux-aarch64'])}"
            with zipfile.ZipFile(wheel) as archive:
                archive.extract(member, work)
            libraries[key] = work / member
        driver = ROOT / "tests" / "release" / "stream_with_libstreamer.c"
        self.run(
            "qemu-aarch64",
            [
                self.zig,
                "cc",
                "-target",
                "aarch64-linux-gnu.2.17",
                "-O1",
                "-I",
                str(ROOT / "cpp"),
                "-o",
                str(work / "stream"),
                str(driver),
                "-ldl",
            ],
        )
        payload = work / "payload.bin"
        payload.write_bytes(os.urandom(3 << 20))
        run = [qemu, "-L", str(sysroot), str(work / "stream"), str(libraries["core"])]
        self.run("qemu-aarch64", [*run, str(payload)])
        expected = 1
        if "s3" in libraries:
            with seaweedfs_over_https(work / "seaweedfs", payload) as (server, credentials):
                options = {
                    "endpoint": server.endpoint,
                    "virtual_addressing": "0",
                    "region": "us-east-1",
                    "ca_file": str(server.certificate),
                    "access_key_id": credentials[0],
                    "secret_access_key": credentials[1],
                }
                self.run(
                    "qemu-aarch64",
                    [*run, str(payload), "s3://rehearsal/payload.bin", str(libraries["s3"]),
                     *(f"{k}={v}" for k, v in options.items())],
                )  # fmt: skip
            expected = 2
        log = (self.log_dir / "qemu-aarch64.log").read_text()
        if log.count("stream: ok") != expected:
            return [f"qemu: the aarch64 driver reported `stream: ok` {log.count('stream: ok')} "
                    f"times, expected {expected}"]  # fmt: skip
        return []


@contextlib.contextmanager
def seaweedfs_over_https(directory: Path, upload: Path) -> Iterator[tuple[Any, tuple[str, str]]]:
    """SeaweedFS over HTTPS with a self-signed CA (the storage tests' fixture), holding `upload`
    as s3://rehearsal/<its name>; yields the server and its (access key, secret key)."""
    sys.path.insert(0, str(ROOT))
    from tests.storage.servers import ACCESS_KEY, SECRET_KEY, seaweedfs

    with seaweedfs(directory, tls=True) as server:
        client = server.client()
        client.create_bucket(Bucket="rehearsal")
        client.put_object(Bucket="rehearsal", Key=upload.name, Body=upload.read_bytes())
        yield server, (ACCESS_KEY, SECRET_KEY)
