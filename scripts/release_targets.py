"""What scripts/rehearse-release builds: the five packages and the four release platforms
(their minimum OS versions read from pyproject.toml, as cibuildwheel reads them)."""

from __future__ import annotations

import dataclasses
import re
from pathlib import Path

import tomllib

ROOT = Path(__file__).resolve().parent.parent


@dataclasses.dataclass(frozen=True)
class Package:
    key: str  # core | s3 | gcs | azure | hf
    source: Path  # the directory pip builds the wheel from
    module: str  # the import package that holds the library inside the wheel
    library: str  # lib<library>.so / .dylib
    exports: str  # the prefix of every symbol the library exports

    @property
    def needs_tls(self) -> bool:
        """The object-storage plugins link libcurl and OpenSSL (scripts/build-tls-deps)."""
        return self.key != "core"

    def filename(self, plat: Platform) -> str:
        return f"lib{self.library}.{'dylib' if plat.os == 'macos' else 'so'}"


PACKAGES = {
    package.key: package
    for package in [
        Package("core", ROOT, "runai_model_streamer", "streamer", "runai_streamer_"),
        *(
            Package(key, ROOT / "py" / f"runai_model_streamer_{key}",
                    f"runai_model_streamer_{key}", f"streamer{key}", "runai_backend_")
            for key in ("s3", "gcs", "azure", "hf")
        ),
    ]
}  # fmt: skip


@dataclasses.dataclass(frozen=True)
class Platform:
    name: str  # <os>-<arch>, the NATIVE_LIBS_PATH directory
    os: str  # linux | macos
    arch: str  # x86_64 | aarch64 | arm64
    min_os: str  # glibc version (Linux) or macOS deployment target
    zig_target: str
    build_tag: str  # platform tag given to the unrepaired wheel
    release_tags: tuple[str, ...]  # platform tags the repaired wheel must carry


def macos_deployment_targets(pyproject: Path) -> dict[str, str]:
    """MACOSX_DEPLOYMENT_TARGET per macOS arch from [tool.cibuildwheel] (one source of truth)."""
    config = tomllib.loads(pyproject.read_text())["tool"]["cibuildwheel"]
    targets = {}
    for override in config.get("overrides", []):
        match = re.fullmatch(r"\*-macosx_(\w+)", override.get("select", ""))
        target = override.get("environment", {}).get("MACOSX_DEPLOYMENT_TARGET")
        if match and target:
            targets[match.group(1)] = target
    return targets


def release_platforms() -> dict[str, Platform]:
    macos = macos_deployment_targets(ROOT / "pyproject.toml")
    platforms = [
        Platform(
            "linux-x86_64",
            "linux",
            "x86_64",
            "2.17",
            "x86_64-linux-gnu.2.17",
            "linux_x86_64",
            ("manylinux_2_17_x86_64", "manylinux2014_x86_64"),
        ),
        Platform(
            "linux-aarch64",
            "linux",
            "aarch64",
            "2.17",
            "aarch64-linux-gnu.2.17",
            "linux_aarch64",
            ("manylinux_2_17_aarch64", "manylinux2014_aarch64"),
        ),
    ]
    for arch, zig_arch in (("x86_64", "x86_64"), ("arm64", "aarch64")):
        target = macos[arch]
        tag = f"macosx_{target.replace('.', '_')}_{arch}"
        platforms.append(
            Platform(
                f"macos-{arch}", "macos", arch, target, f"{zig_arch}-macos.{target}", tag, (tag,)
            )
        )
    return {p.name: p for p in platforms}


PLATFORMS = release_platforms()
