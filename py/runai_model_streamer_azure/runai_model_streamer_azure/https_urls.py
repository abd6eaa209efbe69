"""The https:// entry point of the Azure plugin: ``https://<account>.blob.<suffix>/container/blob``
URLs, each naming its own account. The same library and settings as az:// (see the package's
docstring), except that no account need be configured: a key or SAS applies to URLs of its own
account, an Entra ID token from ``DefaultAzureCredential`` to any."""

from __future__ import annotations

from typing import Any

from runai_model_streamer_azure import account_options, library_path

__all__ = ["backend_options", "library_path"]


def backend_options(credentials: Any = None) -> dict[str, str]:
    """Options for libstreamerazure serving https:// URLs (``credentials`` is ignored)."""
    del credentials
    return account_options(require_account=False)
