"""The s3:// backend of runai-model-streamer (AWS S3 and S3-compatible stores).

Found by the core through the ``runai_model_streamer.backends`` entry point named ``s3``. The
native library ``libstreamers3`` lives in this package. Everything that needs a policy is
decided here, in Python, and handed to the library as options: the endpoint and addressing
style, the region, credentials (explicit ``S3Credentials`` first, else botocore's default
chain: environment, shared config and credentials files with profiles, SSO, web identity,
container and instance metadata), the CA bundle, and the HTTP settings.
"""

from __future__ import annotations

import functools
import importlib.resources
import os
import ssl
import sys
from typing import Any

from runai_model_streamer._errors import StreamerConfigError

__all__ = ["backend_options", "ca_bundle", "library_path"]

LIBRARY_NAME = "libstreamers3.dylib" if sys.platform == "darwin" else "libstreamers3.so"
LIBRARY_ENV_VAR = "STREAMER_S3_LIBRARY"

#: endpoint variables, first set wins (after S3Credentials.endpoint); vLLM sets the last
ENDPOINT_ENV_VARS = ("AWS_ENDPOINT_URL_S3", "AWS_ENDPOINT_URL", "RUNAI_STREAMER_S3_ENDPOINT")
VIRTUAL_ADDRESSING_ENV_VAR = "RUNAI_STREAMER_S3_USE_VIRTUAL_ADDRESSING"
UNSIGNED_ENV_VAR = "RUNAI_STREAMER_S3_UNSIGNED"
#: CA bundle variables, first set wins
CA_ENV_VARS = ("AWS_CA_BUNDLE", "SSL_CERT_FILE", "CURL_CA_BUNDLE", "REQUESTS_CA_BUNDLE")
DISTRO_CA_FILES = (
    "/etc/ssl/certs/ca-certificates.crt",  # Debian, Ubuntu, Alpine
    "/etc/pki/tls/certs/ca-bundle.crt",  # RHEL, Fedora, Amazon Linux
    "/etc/ssl/ca-bundle.pem",  # SUSE
    "/etc/ssl/cert.pem",  # macOS
)
#: environment variable -> (plugin option, lowest, highest)
HTTP_ENV_VARS = {
    "RUNAI_STREAMER_S3_CONNECT_TIMEOUT_MS": ("connect_timeout_ms", 1, 600_000),
    "RUNAI_STREAMER_S3_LOW_SPEED_BYTES": ("low_speed_bytes", 0, 2**31 - 1),
    "RUNAI_STREAMER_S3_LOW_SPEED_SECONDS": ("low_speed_seconds", 1, 3600),
    "RUNAI_STREAMER_S3_MAX_ATTEMPTS": ("max_attempts", 1, 100),
    "RUNAI_STREAMER_S3_RETRY_BASE_MS": ("retry_base_ms", 0, 600_000),
    "RUNAI_STREAMER_S3_RETRY_CAP_MS": ("retry_cap_ms", 0, 600_000),
}


class S3ConfigError(StreamerConfigError):
    """A bad environment value or missing credentials; the message names the variable."""


def library_path() -> str:
    """Absolute path of libstreamers3 inside this package ($STREAMER_S3_LIBRARY overrides it,
    as the sanitizer run of the tests does)."""
    override = os.environ.get(LIBRARY_ENV_VAR)
    if override:
        if not os.path.isfile(override):
            raise FileNotFoundError(f"{LIBRARY_ENV_VAR}={override} names no file")
        return os.path.abspath(override)
    path = os.path.abspath(str(importlib.resources.files(__name__) / LIBRARY_NAME))
    if not os.path.isfile(path):
        raise FileNotFoundError(
            f"{path} does not exist: the runai-model-streamer-s3 installation is incomplete "
            "(its native library is missing); reinstall the package"
        )
    return path


def _flag(name: str) -> bool | None:
    value = os.environ.get(name, "").strip()
    if value == "":
        return None
    if value not in ("0", "1"):
        raise S3ConfigError(f"{name}={value!r} must be 0 or 1")
    return value == "1"


def ca_bundle() -> str:
    """The CA bundle for TLS: explicit variables, Python's default, distro paths, certifi."""
    for name in CA_ENV_VARS:
        value = os.environ.get(name)
        if value:
            if not os.path.isfile(value):
                raise S3ConfigError(f"{name}={value} names no file (the CA bundle for TLS)")
            return value
    default = ssl.get_default_verify_paths().cafile
    if default and os.path.isfile(default):
        return default
    for path in DISTRO_CA_FILES:
        if os.path.isfile(path):
            return path
    import certifi

    return str(certifi.where())


def _endpoint(credentials: Any) -> str:
    explicit = getattr(credentials, "endpoint", None)
    if explicit:
        return str(explicit)
    for name in ENDPOINT_ENV_VARS:
        value = os.environ.get(name)
        if value:
            return value
    return ""


@functools.lru_cache(maxsize=4)
def _botocore_session(aws_environment: tuple[tuple[str, str], ...]) -> Any:
    """A botocore session per set of AWS_* variables: creating one and resolving its
    credentials costs a few hundred milliseconds, and refreshable credentials stay fresh."""
    del aws_environment  # the cache key: botocore reads the environment itself
    import botocore.session

    return botocore.session.get_session()


def _session() -> Any:
    aws = tuple(sorted((k, v) for k, v in os.environ.items() if k.startswith("AWS_")))
    return _botocore_session(aws)


def _resolved_credentials(credentials: Any) -> tuple[str, str, str, str | None]:
    """(access key id, secret, session token, region from the session) via botocore."""
    access_key = getattr(credentials, "access_key_id", None)
    secret = getattr(credentials, "secret_access_key", None)
    token = getattr(credentials, "session_token", None)
    session = _session()
    region = session.get_config_variable("region")
    if access_key and secret:
        return access_key, secret, token or "", region
    if access_key or secret:
        raise S3ConfigError(
            "S3Credentials has only one of access_key_id and secret_access_key; give both"
        )
    found = session.get_credentials()
    if found is None:
        raise S3ConfigError(
            "no AWS credentials found (botocore looked in the environment, the shared config "
            "and credentials files, SSO, web identity and instance metadata); pass "
            f"S3Credentials, configure credentials, or set {UNSIGNED_ENV_VAR}=1 for a public "
            "bucket"
        )
    frozen = found.get_frozen_credentials()
    return frozen.access_key, frozen.secret_key, frozen.token or "", region


def backend_options(credentials: Any = None) -> dict[str, str]:
    """Options for libstreamers3 (see cpp/s3/s3_backend.cc); ``credentials`` is the caller's
    ``S3Credentials`` or None."""
    endpoint = _endpoint(credentials)
    virtual = _flag(VIRTUAL_ADDRESSING_ENV_VAR)
    if virtual is None:  # botocore's "auto": path style for a custom endpoint
        virtual = endpoint == ""
    options = {"endpoint": endpoint, "virtual_addressing": "1" if virtual else "0"}
    region = getattr(credentials, "region_name", None)
    if _flag(UNSIGNED_ENV_VAR):
        session_region = _session().get_config_variable("region")
    else:
        key, secret, token, session_region = _resolved_credentials(credentials)
        options.update(access_key_id=key, secret_access_key=secret, session_token=token)
    options["region"] = region or session_region or "us-east-1"
    if endpoint.startswith("https://") or endpoint == "":
        options["ca_file"] = ca_bundle()
    for name, (option, low, high) in HTTP_ENV_VARS.items():
        value = os.environ.get(name, "").strip()
        if value == "":
            continue
        if not value.isdigit() or not low <= int(value) <= high:
            raise S3ConfigError(f"{name}={value!r} must be an integer in {low}..{high}")
        options[option] = value
    return options
