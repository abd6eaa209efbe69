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
- huggingface_hub's cache (``HF_HUB_CACHE``, else ``HF_HOME/hub``): a file it holds complete
  at the commit a stream reads is read from there, at local speed;
- ``HF_HUB_OFFLINE=1``: no request reaches the Hub; files come from that cache only;
- the CA bundle and the HTTP settings (``RUNAI_STREAMER_HF_CONNECT_TIMEOUT_MS``...).

A stream resolves its URIs first (:func:`resolve_uris`): every file of one load comes from the
same commit, even when the branch moves meanwhile.
"""

from __future__ import annotations

import logging
import os
import re
import urllib.parse
from collections.abc import Callable, Sequence
from pathlib import Path
from typing import Any

from runai_model_streamer import backend_support
from runai_model_streamer.backend_support import BackendConfigError, settings

from runai_model_streamer_hf._hub_cache import (
    COMMIT_RE,
    URI_RE,
    cached_commit,
    cached_file,
    hf_home,
    record_ref,
    repo_folder,
    store,
)

__all__ = [
    "HubConfigError",
    "HubOfflineError",
    "backend_options",
    "library_path",
    "on_cached",
    "resolve_uris",
]

LIBRARY_ENV_VAR = "STREAMER_HF_LIBRARY"
DEFAULT_ENDPOINT = "https://huggingface.co"
TOKEN_ENV_VARS = ("HF_TOKEN", "HUGGING_FACE_HUB_TOKEN")
_TRUE = {"1", "on", "yes", "true"}

logger = logging.getLogger("runai_model_streamer")
#: (repository URI, commit) -> the revisions a stream of this process resolved to it, so that
#: what it caches records them in huggingface_hub's refs/ too
_RESOLVED: dict[tuple[str, str], set[str]] = {}


class HubConfigError(BackendConfigError):
    """A bad environment value; the message says which."""


class HubOfflineError(FileNotFoundError):
    """``HF_HUB_OFFLINE`` is set and huggingface_hub's cache lacks a file a stream needs."""


def offline_mode() -> bool:
    """huggingface_hub's ``HF_HUB_OFFLINE``: no request may reach the Hub."""
    return os.environ.get("HF_HUB_OFFLINE", "").strip().lower() in _TRUE


def library_path() -> str:
    """Absolute path of libstreamerhf inside this package ($STREAMER_HF_LIBRARY overrides it)."""
    return backend_support.library_path(
        __name__, "streamerhf", LIBRARY_ENV_VAR, "runai-model-streamer-hf"
    )


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
    endpoint = _endpoint()
    options = {"endpoint": endpoint, "token": token()}
    # the storage the Hub redirects to speaks HTTPS even when a local mirror does not
    options["ca_file"] = backend_support.ca_bundle((), HubConfigError)
    options.update(backend_support.http_options(settings.HF_HTTP, HubConfigError))
    return options


def resolve_uris(uris: Sequence[str], object_info: Callable[[str], Any]) -> list[str]:
    """The URIs one stream reads, resolved: each revision pinned to the commit it names now
    (the HEAD of its repository's first file says it), so one stream reads one state of each
    repository; and each file that huggingface_hub's cache holds complete at that commit
    replaced by its path there, read from local disk. Offline (``HF_HUB_OFFLINE=1``) the commit
    is the one the cache's ``refs/`` recorded, and every file must be in the cache. A Hub that
    does not say its commit (a mirror without X-Repo-Commit) leaves the URIs as they are."""
    offline = offline_mode()
    commits: dict[tuple[str, str], str] = {}
    resolved = []
    for uri in uris:
        match = URI_RE.match(uri)
        if match is None:  # the library says what is wrong with it
            resolved.append(uri)
            continue
        repo, rest = match["repo"], match["rest"] or ""
        revision = urllib.parse.unquote(match["revision"] or "main")
        key = (repo.lower(), revision)
        if key not in commits:
            commits[key] = _commit(uri, match, revision, object_info, offline)
        commit = commits[key]
        local = cached_file(match, commit, rest.removeprefix("/")) if commit else None
        if local is not None:
            resolved.append(str(local))
        elif offline:
            raise HubOfflineError(
                f"{uri}: HF_HUB_OFFLINE is set and huggingface_hub's cache "
                f"({repo_folder(match)}) holds no complete copy of it at commit {commit}"
            )
        else:
            resolved.append(f"{repo}@{commit}{rest}" if commit else uri)
    return resolved


def _commit(
    uri: str,
    match: re.Match[str],
    revision: str,
    object_info: Callable[[str], Any],
    offline: bool,
) -> str:
    if COMMIT_RE.match(revision.lower()):
        return revision.lower()
    if offline:
        commit = cached_commit(match, revision)
        if commit is None:
            raise HubOfflineError(
                f"{uri}: HF_HUB_OFFLINE is set and huggingface_hub's cache ({repo_folder(match)}) "
                f"does not know revision {revision!r}; fetch it once online, or name a commit"
            )
        return commit
    commit = str(object_info(uri).version.get("commit", ""))
    if not COMMIT_RE.match(commit):
        return ""
    logger.debug("%s@%s is commit %s", match["repo"], revision, commit)
    _RESOLVED.setdefault((match["repo"].lower(), commit), set()).add(revision)
    return commit


def on_cached(uri: str, checksum: tuple[str, str], data: str) -> None:
    """An hf:// file verified and committed to the write-through cache is shared with
    huggingface_hub's cache: its blob (a hard link to the entry, else a copy), its snapshot
    link, and the refs of the revisions this process resolved to its commit. Only files
    whose checksum is their Hub ETag (SHA-256 of LFS files, git blob ids) can be named there."""
    algorithm, value = checksum
    match = URI_RE.match(uri)
    if algorithm not in ("sha256", "git-sha1") or match is None:
        return
    commit = (match["revision"] or "").lower()
    store(match, commit, (match["rest"] or "").removeprefix("/"), value, Path(data))
    for revision in sorted(_RESOLVED.get((match["repo"].lower(), commit), ())):
        record_ref(match, revision, commit)
