"""The hf:// backend of runai-model-streamer: the Hugging Face Hub and its mirrors.

Found by the core through the ``runai_model_streamer.backends`` entry point named ``hf``. The
native library ``libstreamerhf`` lives in this package. URIs name a repository, a revision and
a path: ``hf://<owner>/<name>[@<revision>]/<path>`` (``hf://datasets/...`` for datasets;
revision: a branch, tag or commit, ``main`` when left out, ``/`` in it written ``%2F``).

What huggingface_hub reads, this reads the same way:

- the endpoint: ``HF_ENDPOINT`` (a mirror), else https://huggingface.co;
- the token, first that applies: ``HF_TOKEN`` (or the older ``HUGGING_FACE_HUB_TOKEN``), the
  file ``HF_TOKEN_PATH`` names, the file ``token`` in ``HF_HOME`` (default
  ``$XDG_CACHE_HOME/huggingface``, i.e. ``~/.cache/huggingface``), which ``hf auth login``
  writes; none: anonymous (public repositories). It is sent to the Hub only, never to the
  storage the Hub redirects a download to;
- ``HF_HUB_OFFLINE=1``: no request may reach the Hub, so hf:// URIs are refused, saying so;
- the CA bundle and the HTTP settings (``RUNAI_STREAMER_HF_CONNECT_TIMEOUT_MS``...).

A stream pins each revision to its commit first (:func:`pin_uris`): every file of one load
comes from the same commit, even when the branch moves meanwhile.
"""

from __future__ import annotations

import logging
import os
import re
from collections.abc import Callable, Sequence
from pathlib import Path
from typing import Any

from runai_model_streamer import backend_support
from runai_model_streamer.backend_support import BackendConfigError, settings

__all__ = ["HubConfigError", "backend_options", "library_path", "pin_uris"]

LIBRARY_ENV_VAR = "STREAMER_HF_LIBRARY"
DEFAULT_ENDPOINT = "https://huggingface.co"
TOKEN_ENV_VARS = ("HF_TOKEN", "HUGGING_FACE_HUB_TOKEN")
_TRUE = {"1", "on", "yes", "true"}
#: hf://[datasets/|spaces/]owner/name[@revision][/path]
_URI_RE = re.compile(
    r"^(?P<repo>hf://(?:(?:datasets|spaces)/)?[^/@]+/[^/@]+)(?:@(?P<revision>[^/]*))?(?P<rest>/.*)?$",
    re.IGNORECASE,
)
_COMMIT_RE = re.compile(r"^[0-9a-f]{40}$")

logger = logging.getLogger("runai_model_streamer")


class HubConfigError(BackendConfigError):
    """A bad environment value; the message says which."""


def library_path() -> str:
    """Absolute path of libstreamerhf inside this package ($STREAMER_HF_LIBRARY overrides it)."""
    return backend_support.library_path(
        __name__, "streamerhf", LIBRARY_ENV_VAR, "runai-model-streamer-hf"
    )


def hf_home() -> Path:
    """huggingface_hub's home: ``HF_HOME``, else ``$XDG_CACHE_HOME/huggingface``."""
    home = os.environ.get("HF_HOME", "").strip()
    if home:
        return Path(home).expanduser()
    cache = os.environ.get("XDG_CACHE_HOME", "").strip() or os.path.join("~", ".cache")
    return Path(cache).expanduser() / "huggingface"


def token() -> str:
    """The token huggingface_hub would send ("" for none)."""
    found = backend_support.first_env(*TOKEN_ENV_VARS)
    if found is not None:
        return found[1]
    named = os.environ.get("HF_TOKEN_PATH", "").strip()
    path = Path(named).expanduser() if named else hf_home() / "token"
    try:
        return path.read_text().strip()
    except FileNotFoundError:
        if named:
            raise HubConfigError(f"HF_TOKEN_PATH={named} names no file") from None
        return ""
    except OSError as error:
        raise HubConfigError(f"cannot read the Hub token in {path}: {error.strerror}") from None


def _endpoint() -> str:
    value = os.environ.get("HF_ENDPOINT", "").strip().rstrip("/") or DEFAULT_ENDPOINT
    if not value.startswith(("http://", "https://")):
        raise HubConfigError(f"HF_ENDPOINT={value!r} is not an http:// or https:// URL")
    return value


def backend_options(credentials: Any = None) -> dict[str, str]:
    """Options for libstreamerhf (see cpp/hf/hf_backend.cc). ``credentials`` (the core's
    ``S3Credentials``) does not apply to hf:// and is ignored."""
    del credentials
    if os.environ.get("HF_HUB_OFFLINE", "").strip().lower() in _TRUE:
        raise HubConfigError(
            "HF_HUB_OFFLINE is set: hf:// reads from the Hub; unset it, or stream the local "
            "snapshot directory huggingface_hub downloaded"
        )
    endpoint = _endpoint()
    options = {"endpoint": endpoint, "token": token()}
    # the storage the Hub redirects to speaks HTTPS even when a local mirror does not
    options["ca_file"] = backend_support.ca_bundle((), HubConfigError)
    options.update(backend_support.http_options(settings.HF_HTTP, HubConfigError))
    return options


def pin_uris(uris: Sequence[str], object_info: Callable[[str], Any]) -> list[str]:
    """``uris`` with each revision that is not a commit replaced by the commit it names now
    (the HEAD of its first file says it): one state of each repository per stream. A Hub that
    does not say (a mirror without X-Repo-Commit) leaves them as they are."""
    commits: dict[tuple[str, str], str] = {}
    pinned = []
    for uri in uris:
        match = _URI_RE.match(uri)
        if match is None:  # the library says what is wrong with it
            pinned.append(uri)
            continue
        repo, revision, rest = match["repo"], match["revision"] or "main", match["rest"] or ""
        if _COMMIT_RE.match(revision.lower()):
            pinned.append(uri)
            continue
        key = (repo.lower(), revision)
        if key not in commits:
            commit = object_info(uri).version.get("commit", "")
            commits[key] = commit if _COMMIT_RE.match(commit) else ""
            if commits[key]:
                logger.debug("%s@%s is commit %s", repo, revision, commit)
        commit = commits[key]
        pinned.append(f"{repo}@{commit}{rest}" if commit else uri)
    return pinned
