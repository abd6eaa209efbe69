"""The gs:// backend of runai-model-streamer (Google Cloud Storage).

Found by the core through the ``runai_model_streamer.backends`` entry point named ``gs``. The
native library ``libstreamergcs`` lives in this package. Everything that needs a policy is
decided here and handed to the library as options:

- the endpoint: ``CLOUD_STORAGE_EMULATOR_ENDPOINT``, ``STORAGE_EMULATOR_HOST`` (emulators;
  requests to them are anonymous unless credentials are named by one of the variables below
  or ``GOOGLE_APPLICATION_CREDENTIALS``),
  ``RUNAI_STREAMER_GCS_ENDPOINT`` (private endpoints), else https://storage.googleapis.com;
- the credentials, first that applies: anonymous
  (``RUNAI_STREAMER_GCS_USE_ANONYMOUS_CREDENTIALS=1``); an HMAC key
  (``RUNAI_STREAMER_GCS_HMAC_ACCESS_ID`` + ``_SECRET``: the XML API, signed
  GOOG4-HMAC-SHA256); else an OAuth 2 access token from google-auth, from
  ``RUNAI_STREAMER_GCS_CREDENTIAL_FILE`` or Application Default Credentials
  (``GOOGLE_APPLICATION_CREDENTIALS``, gcloud's user ADC, workload identity federation, the
  metadata server). Tokens are refreshed before they expire: the core asks for options again
  during long streams, and a new token re-registers the backend;
- the CA bundle and the HTTP settings (``RUNAI_STREAMER_GCS_CONNECT_TIMEOUT_MS``...).
"""

from __future__ import annotations

import datetime
import functools
import os
import threading
import warnings
from typing import Any

from runai_model_streamer import backend_support
from runai_model_streamer.backend_support import BackendConfigError, settings

__all__ = ["GcsConfigError", "backend_options", "library_path"]

LIBRARY_ENV_VAR = "STREAMER_GCS_LIBRARY"
#: emulator endpoints (anonymous by default), first set wins
EMULATOR_ENV_VARS = ("CLOUD_STORAGE_EMULATOR_ENDPOINT", "STORAGE_EMULATOR_HOST")
ENDPOINT_ENV_VAR = settings.GCS_ENDPOINT.name
ANONYMOUS_ENV_VAR = settings.GCS_USE_ANONYMOUS_CREDENTIALS.name
CREDENTIAL_FILE_ENV_VAR = settings.GCS_CREDENTIAL_FILE.name
HMAC_ID_ENV_VAR = settings.GCS_HMAC_ACCESS_ID.name
HMAC_SECRET_ENV_VAR = settings.GCS_HMAC_SECRET.name
LIST_PAGE_SIZE_ENV_VAR = settings.GCS_LIST_PAGE_SIZE.name
SCOPES = ("https://www.googleapis.com/auth/devstorage.read_only",)
#: a token with less time left than this is refreshed before it is handed out
REFRESH_MARGIN = datetime.timedelta(minutes=5)


class GcsConfigError(BackendConfigError):
    """A bad environment value or credentials that cannot be used; the message says which."""


def library_path() -> str:
    """Absolute path of libstreamergcs inside this package ($STREAMER_GCS_LIBRARY overrides
    it)."""
    return backend_support.library_path(
        __name__, "streamergcs", LIBRARY_ENV_VAR, "runai-model-streamer-gcs"
    )


def _endpoint() -> tuple[str, bool]:
    """(endpoint URL or "", whether it is an emulator's)."""
    found = backend_support.first_env(*EMULATOR_ENV_VARS)
    emulator = found is not None
    if found is None:
        found = backend_support.first_env(ENDPOINT_ENV_VAR)
    if found is None:
        return "", False
    name, value = found
    if "://" not in value:  # STORAGE_EMULATOR_HOST is often host:port
        value = "http://" + value
    if not value.startswith(("http://", "https://")):
        raise GcsConfigError(f"{name}={value!r} is not an http:// or https:// URL")
    return value.rstrip("/"), emulator


class _TokenSource:
    """google-auth credentials and a lock: refreshed at most once at a time, and only when the
    token is missing or about to expire."""

    def __init__(self, credential_file: str | None) -> None:
        self.credential_file = credential_file
        self._lock = threading.Lock()
        self._credentials: Any = None

    def _load(self) -> Any:
        import google.auth
        import google.auth.exceptions

        try:
            if self.credential_file:
                with warnings.catch_warnings():
                    # google-auth warns that files from untrusted sources need validating:
                    # this one is the user's own setting, as GOOGLE_APPLICATION_CREDENTIALS is.
                    warnings.simplefilter("ignore", DeprecationWarning)
                    credentials, _ = google.auth.load_credentials_from_file(
                        self.credential_file, scopes=list(SCOPES)
                    )
            else:
                credentials, _ = google.auth.default(scopes=list(SCOPES))
        except google.auth.exceptions.DefaultCredentialsError as error:
            where = self.credential_file or "Application Default Credentials"
            raise GcsConfigError(
                f"no usable Google credentials ({where}): {error}; set "
                f"{CREDENTIAL_FILE_ENV_VAR} or GOOGLE_APPLICATION_CREDENTIALS, or "
                f"{ANONYMOUS_ENV_VAR}=1 for a public bucket"
            ) from error
        return credentials

    def token(self) -> str:
        import google.auth.exceptions
        import google.auth.transport.requests

        with self._lock:
            if self._credentials is None:
                self._credentials = self._load()
            credentials = self._credentials
            expiry = credentials.expiry  # naive UTC, None: does not expire
            now = datetime.datetime.now(datetime.timezone.utc).replace(tzinfo=None)
            if not credentials.token or (expiry is not None and expiry - now < REFRESH_MARGIN):
                try:
                    credentials.refresh(google.auth.transport.requests.Request())
                except google.auth.exceptions.GoogleAuthError as error:
                    raise GcsConfigError(
                        f"refreshing the Google access token failed: {error}"
                    ) from error
            return str(credentials.token)


@functools.lru_cache(maxsize=8)
def _token_source(credential_file: str | None, environment: tuple[tuple[str, str], ...]) -> Any:
    """One token source per credential file and GOOGLE_* environment: creating credentials
    costs a token request, and a cached one stays fresh."""
    del environment  # the cache key: google-auth reads the environment itself
    return _TokenSource(credential_file)


def _access_token() -> str:
    credential_file = settings.GCS_CREDENTIAL_FILE.read() or None
    if credential_file is not None and not os.path.isfile(credential_file):
        raise GcsConfigError(f"{CREDENTIAL_FILE_ENV_VAR}={credential_file} names no file")
    google = tuple(sorted((k, v) for k, v in os.environ.items() if k.startswith("GOOGLE_")))
    return str(_token_source(credential_file, google).token())


def backend_options(credentials: Any = None) -> dict[str, str]:
    """Options for libstreamergcs (see cpp/gcs/gcs_backend.cc). ``credentials`` (the core's
    ``S3Credentials``) does not apply to gs:// and is ignored."""
    del credentials
    endpoint, emulator = _endpoint()
    options = {"endpoint": endpoint}
    anonymous = settings.GCS_USE_ANONYMOUS_CREDENTIALS.read(error=GcsConfigError)
    hmac_id = settings.GCS_HMAC_ACCESS_ID.read()
    hmac_secret = settings.GCS_HMAC_SECRET.read()
    if bool(hmac_id) != bool(hmac_secret):
        raise GcsConfigError(f"set both {HMAC_ID_ENV_VAR} and {HMAC_SECRET_ENV_VAR}, or neither")
    if anonymous is None:  # an emulator takes anonymous requests unless credentials are named
        named = backend_support.first_env(CREDENTIAL_FILE_ENV_VAR, "GOOGLE_APPLICATION_CREDENTIALS")
        anonymous = emulator and not (hmac_id or named)
    if anonymous:
        pass
    elif hmac_id:
        options.update(hmac_access_id=hmac_id, hmac_secret=hmac_secret)
    else:
        options["access_token"] = _access_token()
    if not endpoint.startswith("http://"):
        options["ca_file"] = backend_support.ca_bundle((), GcsConfigError)
    page_size = settings.GCS_LIST_PAGE_SIZE.read(error=GcsConfigError)
    if page_size is not None:
        options["list_page_size"] = str(page_size)
    options.update(backend_support.http_options(settings.GCS_HTTP, GcsConfigError))
    return options
