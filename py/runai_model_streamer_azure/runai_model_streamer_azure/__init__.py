"""The az:// backend of runai-model-streamer (Azure Blob Storage).

Found by the core through the ``runai_model_streamer.backends`` entry points named ``az``
(``az://container/blob``) and ``https`` (``https://<account>.blob.<suffix>/container/blob``,
module ``runai_model_streamer_azure.https_urls``). The native library ``libstreamerazure`` lives
in this package.
Everything that needs a policy is decided here and handed to the library as options:

- the account and endpoint: ``AZURE_STORAGE_CONNECTION_STRING`` (its ``AccountName``,
  ``BlobEndpoint``, http or https, ``EndpointSuffix``; ``UseDevelopmentStorage=true`` for
  Azurite's defaults), else ``AZURE_STORAGE_ACCOUNT_NAME`` and
  ``RUNAI_STREAMER_AZURE_BLOB_ENDPOINT`` or
  https://<account>.blob.<``AZURE_STORAGE_ENDPOINT_SUFFIX`` or core.windows.net>;
- the credentials, first that applies: the connection string's ``AccountKey`` (SharedKey) or
  ``SharedAccessSignature``; ``AZURE_STORAGE_ACCOUNT_KEY``; ``AZURE_STORAGE_SAS_TOKEN``;
  anonymous (``RUNAI_STREAMER_AZURE_USE_ANONYMOUS_CREDENTIALS=1``); else an Entra ID token from
  azure-identity's ``DefaultAzureCredential`` (environment client secret or certificate,
  workload identity, managed identity, Azure CLI...), refreshed before it expires;
- the CA bundle and the HTTP settings (``RUNAI_STREAMER_AZURE_CONNECT_TIMEOUT_MS``...).
"""

from __future__ import annotations

import base64
import binascii
import functools
import os
import threading
import time
from typing import Any

from runai_model_streamer import backend_support
from runai_model_streamer.backend_support import BackendConfigError, settings

__all__ = [
    "AzureConfigError",
    "account_options",
    "backend_options",
    "library_path",
    "parse_connection_string",
]

LIBRARY_ENV_VAR = "STREAMER_AZURE_LIBRARY"
CONNECTION_STRING_ENV_VAR = "AZURE_STORAGE_CONNECTION_STRING"
ACCOUNT_NAME_ENV_VAR = "AZURE_STORAGE_ACCOUNT_NAME"
ACCOUNT_KEY_ENV_VAR = "AZURE_STORAGE_ACCOUNT_KEY"
SAS_TOKEN_ENV_VAR = "AZURE_STORAGE_SAS_TOKEN"
ENDPOINT_SUFFIX_ENV_VAR = "AZURE_STORAGE_ENDPOINT_SUFFIX"
#: the Blob endpoint itself, for private endpoints and custom domains (not with a connection
#: string, whose BlobEndpoint says it)
ENDPOINT_ENV_VAR = settings.AZURE_BLOB_ENDPOINT.name
ANONYMOUS_ENV_VAR = settings.AZURE_USE_ANONYMOUS_CREDENTIALS.name
LIST_PAGE_SIZE_ENV_VAR = settings.AZURE_LIST_PAGE_SIZE.name
TOKEN_SCOPE = "https://storage.azure.com/.default"
#: a token with less time left than this (seconds) is refreshed before it is handed out
REFRESH_MARGIN_SECONDS = 300
#: Azurite's well-known development account (published in Microsoft's documentation)
DEVELOPMENT_ACCOUNT = "devstoreaccount1"
DEVELOPMENT_KEY = (
    "Eby8vdM02xNOcqFlqUwJPLlmEtlCDXJ1OUzFT50uSRZ6IFsuFq2UVErCz4I6tq/K1SZFPTOtr/KBHBeksoGMGw=="
)


class AzureConfigError(BackendConfigError):
    """A bad environment value or credentials that cannot be used; the message says which
    (never the secret itself)."""


def library_path() -> str:
    """Absolute path of libstreamerazure inside this package ($STREAMER_AZURE_LIBRARY overrides
    it)."""
    return backend_support.library_path(
        __name__, "streamerazure", LIBRARY_ENV_VAR, "runai-model-streamer-azure"
    )


def parse_connection_string(text: str) -> dict[str, str]:
    """``Key=value;...`` -> {key: value} (keys as written; values may contain '=')."""
    fields: dict[str, str] = {}
    for part in text.split(";"):
        part = part.strip()
        if not part:
            continue
        key, sep, value = part.partition("=")
        if not sep or not key.strip():
            # never echo the part: it may be the account key
            raise AzureConfigError(
                f"{CONNECTION_STRING_ENV_VAR} is malformed: expected Key=value pairs "
                "separated by ';'"
            )
        fields[key.strip()] = value.strip()
    return fields


def _from_connection_string(text: str) -> dict[str, str]:
    fields = parse_connection_string(text)
    if fields.get("UseDevelopmentStorage", "").lower() == "true":
        proxy = fields.get("DevelopmentStorageProxyUri", "http://127.0.0.1").rstrip("/")
        return {
            "account_name": DEVELOPMENT_ACCOUNT,
            "account_key": DEVELOPMENT_KEY,
            "endpoint": f"{proxy}:10000/{DEVELOPMENT_ACCOUNT}",
        }
    account = fields.get("AccountName", "")
    if not account:
        raise AzureConfigError(f"{CONNECTION_STRING_ENV_VAR} has no AccountName")
    options = {"account_name": account}
    if fields.get("BlobEndpoint"):
        options["endpoint"] = fields["BlobEndpoint"]
    else:
        protocol = fields.get("DefaultEndpointsProtocol", "https")
        suffix = fields.get("EndpointSuffix") or os.environ.get(ENDPOINT_SUFFIX_ENV_VAR, "")
        options["endpoint"] = f"{protocol}://{account}.blob.{suffix or 'core.windows.net'}"
    if fields.get("AccountKey"):
        options["account_key"] = _check_key(fields["AccountKey"], CONNECTION_STRING_ENV_VAR)
    elif fields.get("SharedAccessSignature"):
        options["sas_token"] = fields["SharedAccessSignature"]
    return options


def _check_key(key: str, source: str) -> str:
    try:
        if base64.b64decode(key, validate=True):
            return key
    except (binascii.Error, ValueError):
        pass
    raise AzureConfigError(f"the account key in {source} is not base64 (never shown here)")


class _TokenSource:
    """A DefaultAzureCredential and its current token, refreshed under a lock only when the
    token is missing or about to expire."""

    def __init__(self) -> None:
        self._lock = threading.Lock()
        self._credential: Any = None
        self._token: Any = None

    def token(self) -> str:
        from azure.core.exceptions import ClientAuthenticationError

        with self._lock:
            if self._token is None or self._token.expires_on - time.time() < REFRESH_MARGIN_SECONDS:
                try:
                    if self._credential is None:
                        from azure.identity import DefaultAzureCredential

                        self._credential = DefaultAzureCredential()
                    self._token = self._credential.get_token(TOKEN_SCOPE)
                except ClientAuthenticationError as error:
                    raise AzureConfigError(
                        "no usable Azure credentials: DefaultAzureCredential found no token "
                        f"({error.message}); set {CONNECTION_STRING_ENV_VAR}, "
                        f"{ACCOUNT_KEY_ENV_VAR} or {SAS_TOKEN_ENV_VAR}, or configure a "
                        "credential azure-identity supports"
                    ) from error
            return str(self._token.token)


@functools.lru_cache(maxsize=8)
def _token_source(environment: tuple[tuple[str, str], ...]) -> _TokenSource:
    """One token source per AZURE_* / IDENTITY_* / MSI_* environment."""
    del environment  # the cache key: azure-identity reads the environment itself
    return _TokenSource()


def _access_token() -> str:
    environment = tuple(
        sorted(
            (k, v) for k, v in os.environ.items() if k.startswith(("AZURE_", "IDENTITY_", "MSI_"))
        )
    )
    return _token_source(environment).token()


def backend_options(credentials: Any = None) -> dict[str, str]:
    """Options for libstreamerazure (see cpp/azure/azure_backend.cc) serving az:// URIs.
    ``credentials`` (the core's ``S3Credentials``) does not apply and is ignored."""
    del credentials
    return account_options(require_account=True)


def account_options(require_account: bool) -> dict[str, str]:
    """The options from the environment; without ``require_account`` (https:// URLs, which
    name their account) no account may be configured, and then requests carry an Entra ID
    token or nothing."""
    connection_string = os.environ.get(CONNECTION_STRING_ENV_VAR, "").strip()
    if connection_string:
        options = _from_connection_string(connection_string)
    else:
        account = os.environ.get(ACCOUNT_NAME_ENV_VAR, "").strip()
        if not account and require_account:
            raise AzureConfigError(
                f"az:// needs a storage account: set {CONNECTION_STRING_ENV_VAR} or "
                f"{ACCOUNT_NAME_ENV_VAR}"
            )
        options = {"account_name": account} if account else {}
        endpoint = settings.AZURE_BLOB_ENDPOINT.read()
        suffix = os.environ.get(ENDPOINT_SUFFIX_ENV_VAR, "").strip()
        if endpoint:
            if not endpoint.startswith(("http://", "https://")):
                raise AzureConfigError(f"{ENDPOINT_ENV_VAR}={endpoint!r} is not an http(s) URL")
            options["endpoint"] = endpoint
        elif suffix:
            options["endpoint_suffix"] = suffix
        key = os.environ.get(ACCOUNT_KEY_ENV_VAR, "").strip()
        sas = os.environ.get(SAS_TOKEN_ENV_VAR, "").strip()
        if (key or sas) and not account:
            which = ACCOUNT_KEY_ENV_VAR if key else SAS_TOKEN_ENV_VAR
            raise AzureConfigError(f"{which} needs {ACCOUNT_NAME_ENV_VAR} (the key's account)")
        if key:
            options["account_key"] = _check_key(key, ACCOUNT_KEY_ENV_VAR)
        elif sas:
            options["sas_token"] = sas
    anonymous = settings.AZURE_USE_ANONYMOUS_CREDENTIALS.read(error=AzureConfigError)
    if anonymous:
        options.pop("account_key", None)
        options.pop("sas_token", None)
    elif "account_key" not in options and "sas_token" not in options:
        options["access_token"] = _access_token()
    if not options.get("endpoint", "").startswith("http://"):
        options["ca_file"] = backend_support.ca_bundle((), AzureConfigError)
    page_size = settings.AZURE_LIST_PAGE_SIZE.read(error=AzureConfigError)
    if page_size is not None:
        options["list_page_size"] = str(page_size)
    options.update(backend_support.http_options(settings.AZURE_HTTP, AzureConfigError))
    return options
