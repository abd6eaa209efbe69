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
import os
from typing import Any

from runai_model_streamer import backend_support
from runai_model_streamer.backend_support import BackendConfigError, settings

__all__ = ["S3ConfigError", "backend_options", "ca_bundle", "library_path"]

LIBRARY_ENV_VAR = "STREAMER_S3_LIBRARY"

#: endpoint variables, first set wins (after S3Credentials.endpoint); vLLM sets the last
ENDPOINT_ENV_VARS = ("AWS_ENDPOINT_URL_S3", "AWS_ENDPOINT_URL", settings.S3_ENDPOINT.name)
VIRTUAL_ADDRESSING_ENV_VAR = settings.S3_USE_VIRTUAL_ADDRESSING.name
UNSIGNED_ENV_VAR = settings.S3_UNSIGNED.name
#: upstream 0.17's: 0 ignores the endpoint variables; retries after the first attempt
OVERRIDE_ENDPOINT_ENV_VAR = settings.OVERRIDE_ENDPOINT_URL.name
MAX_RETRIES_ENV_VAR = settings.S3_MAX_RETRIES.name
#: the HTTP settings: RUNAI_STREAMER_S3_CONNECT_TIMEOUT_MS and the others (backend_support)


class S3ConfigError(BackendConfigError):
    """A bad environment value or missing credentials; the message names the variable."""


def library_path() -> str:
    """Absolute path of libstreamers3 inside this package ($STREAMER_S3_LIBRARY overrides it)."""
    return backend_support.library_path(
        __name__, "streamers3", LIBRARY_ENV_VAR, "runai-model-streamer-s3"
    )


def ca_bundle() -> str:
    """The CA bundle for TLS: AWS_CA_BUNDLE, then what every backend honours."""
    return backend_support.ca_bundle(("AWS_CA_BUNDLE",), S3ConfigError)


def _endpoint(credentials: Any) -> str:
    explicit = getattr(credentials, "endpoint", None)
    if explicit:
        return str(explicit)
    if settings.OVERRIDE_ENDPOINT_URL.read(error=S3ConfigError) is False:
        return ""
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


def _session_region() -> str | None:
    """botocore's region: read here, without importing botocore (170 ms, before the first
    request of a stream), where no profile is named and AWS_DEFAULT_REGION is set or no
    config file exists (botocore's only other source)."""
    named = os.environ.get("AWS_PROFILE") or os.environ.get("AWS_DEFAULT_PROFILE")
    if not named:
        if "AWS_DEFAULT_REGION" in os.environ:
            return os.environ["AWS_DEFAULT_REGION"]
        config = os.environ.get("AWS_CONFIG_FILE") or os.path.join("~", ".aws", "config")
        if not os.path.exists(os.path.expanduser(config)):
            return None
    return _session().get_config_variable("region")  # type: ignore[no-any-return]


def _environment_credentials() -> tuple[str, str, str] | None:
    """The credentials of botocore's first provider, the environment variables, read here
    where they are fixed (no AWS_CREDENTIAL_EXPIRATION to refresh them by)."""
    key = os.environ.get("AWS_ACCESS_KEY_ID")
    secret = os.environ.get("AWS_SECRET_ACCESS_KEY")
    if not key or not secret or os.environ.get("AWS_CREDENTIAL_EXPIRATION"):
        return None
    # botocore takes the first of these that is set and not empty
    token = os.environ.get("AWS_SECURITY_TOKEN") or os.environ.get("AWS_SESSION_TOKEN") or ""
    return key, secret, token


def _resolved_credentials(credentials: Any) -> tuple[str, str, str, str | None]:
    """(access key id, secret, session token, region from the session) as botocore finds
    them."""
    access_key = getattr(credentials, "access_key_id", None)
    secret = getattr(credentials, "secret_access_key", None)
    token = getattr(credentials, "session_token", None)
    if access_key and secret:
        return access_key, secret, token or "", _session_region()
    if access_key or secret:
        raise S3ConfigError(
            "S3Credentials has only one of access_key_id and secret_access_key; give both"
        )
    from_environment = _environment_credentials()
    if from_environment is not None:  # what botocore's chain would find first
        return (*from_environment, _session_region())
    session = _session()
    region = session.get_config_variable("region")
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
    virtual = settings.S3_USE_VIRTUAL_ADDRESSING.read(error=S3ConfigError)
    if virtual is None:  # botocore's "auto": path style for a custom endpoint
        virtual = endpoint == ""
    options = {"endpoint": endpoint, "virtual_addressing": "1" if virtual else "0"}
    region = getattr(credentials, "region_name", None)
    if settings.S3_UNSIGNED.read(error=S3ConfigError):
        session_region = _session_region()
    else:
        key, secret, token, session_region = _resolved_credentials(credentials)
        options.update(access_key_id=key, secret_access_key=secret, session_token=token)
    options["region"] = region or session_region or "us-east-1"
    if endpoint.startswith("https://") or endpoint == "":
        options["ca_file"] = ca_bundle()
    options.update(backend_support.http_options(settings.S3_HTTP, S3ConfigError))
    # the part sizes of multipart objects serve only the check of their checksums
    options["object_parts"] = "0" if settings.VERIFY.read() == "off" else "1"
    retries = settings.S3_MAX_RETRIES.read(error=S3ConfigError)
    if retries and "max_attempts" not in options:  # upstream: 0 keeps the default
        options["max_attempts"] = str(retries + 1)
    return options
