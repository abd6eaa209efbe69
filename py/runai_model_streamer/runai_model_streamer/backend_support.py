"""What every object-storage plugin package (s3, gcs, azure) needs from Python, in one place:
finding its native library, the CA bundle for TLS, its settings (``settings``: the core's
definitions of every variable, the plugins' included) and the options of the shared HTTP layer
(cpp/common/http), each checked with an error that names the variable."""

from __future__ import annotations

import importlib.resources
import os
import ssl
import sys
from collections.abc import Mapping

from runai_model_streamer import _settings as settings
from runai_model_streamer._errors import StreamerConfigError
from runai_model_streamer._settings import Setting

__all__ = [
    "BackendConfigError",
    "ca_bundle",
    "first_env",
    "http_options",
    "library_path",
    "settings",
]

#: CA bundle variables every plugin honours (after its own), first set wins
CA_ENV_VARS = ("SSL_CERT_FILE", "CURL_CA_BUNDLE", "REQUESTS_CA_BUNDLE")
DISTRO_CA_FILES = (
    "/etc/ssl/certs/ca-certificates.crt",  # Debian, Ubuntu, Alpine
    "/etc/pki/tls/certs/ca-bundle.crt",  # RHEL, Fedora, Amazon Linux
    "/etc/ssl/ca-bundle.pem",  # SUSE
    "/etc/ssl/cert.pem",  # macOS
)


class BackendConfigError(StreamerConfigError):
    """A bad environment value or missing credentials of a backend; the message names the
    variable."""


def library_path(package: str, stem: str, override_env_var: str, distribution: str) -> str:
    """Absolute path of lib<stem>.so (.dylib on macOS) inside ``package``; the variable
    ``override_env_var`` may name another file (the sanitizer run of the tests does)."""
    override = os.environ.get(override_env_var)
    if override:
        if not os.path.isfile(override):
            raise FileNotFoundError(f"{override_env_var}={override} names no file")
        return os.path.abspath(override)
    name = f"lib{stem}.dylib" if sys.platform == "darwin" else f"lib{stem}.so"
    path = os.path.abspath(str(importlib.resources.files(package) / name))
    if not os.path.isfile(path):
        raise FileNotFoundError(
            f"{path} does not exist: the {distribution} installation is incomplete "
            "(its native library is missing); reinstall the package"
        )
    return path


def first_env(*names: str) -> tuple[str, str] | None:
    """(name, value) of the first of ``names`` set to a non-empty value."""
    for name in names:
        value = os.environ.get(name, "").strip()
        if value:
            return name, value
    return None


def ca_bundle(
    own_env_vars: tuple[str, ...] = (), error: type[BackendConfigError] = BackendConfigError
) -> str:
    """The CA bundle for TLS: the plugin's variables, the common ones, Python's default, the
    distribution's bundle, certifi."""
    found = first_env(*own_env_vars, *CA_ENV_VARS)
    if found is not None:
        name, value = found
        if not os.path.isfile(value):
            raise error(f"{name}={value} names no file (the CA bundle for TLS)")
        return value
    default = ssl.get_default_verify_paths().cafile
    if default and os.path.isfile(default):
        return default
    for path in DISTRO_CA_FILES:
        if os.path.isfile(path):
            return path
    import certifi

    return str(certifi.where())


def http_options(
    variables: Mapping[str, Setting[int | None]],
    error: type[BackendConfigError] = BackendConfigError,
) -> dict[str, str]:
    """Options of the shared HTTP layer from a plugin's variables (``_settings.S3_HTTP``...),
    those that are set."""
    options: dict[str, str] = {}
    for option, setting in variables.items():
        value = setting.read(error=error)
        if value is not None:
            options[option] = str(value)
    return options
