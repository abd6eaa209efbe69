"""huggingface_hub's own cache, read as huggingface_hub writes it (its documented layout):

    <HF_HUB_CACHE or HF_HOME/hub>/<kind>s--<owner>--<name>/
        refs/<revision>                  the commit a branch or tag named when last fetched
        snapshots/<commit>/<path>        a link to ../../blobs/<etag>, made once it is complete
        blobs/<etag>                     the bytes (<etag>.incomplete while downloading)

A file found under ``snapshots/<commit>/`` is complete (huggingface_hub links it only after
the download finished) and is the file of that commit. What a stream verified and committed to
the write-through cache is put there too (:func:`store`), so huggingface_hub and transformers
reuse it."""

from __future__ import annotations

import os
import re
import shutil
import threading
from pathlib import Path

#: hf://[datasets/|spaces/]owner/name[@revision][/path]
URI_RE = re.compile(
    r"^(?P<repo>hf://(?:(?P<kind>datasets|spaces)/)?(?P<owner>[^/@]+)/(?P<name>[^/@]+))"
    r"(?:@(?P<revision>[^/]*))?(?P<rest>/.*)?$",
    re.IGNORECASE,
)
COMMIT_RE = re.compile(r"^[0-9a-f]{40}$")


def hf_home() -> Path:
    """huggingface_hub's home: ``HF_HOME``, else ``$XDG_CACHE_HOME/huggingface``."""
    home = os.environ.get("HF_HOME", "").strip()
    if home:
        return Path(home).expanduser()
    cache = os.environ.get("XDG_CACHE_HOME", "").strip() or os.path.join("~", ".cache")
    return Path(cache).expanduser() / "huggingface"


def hub_cache() -> Path:
    """Where huggingface_hub keeps repositories: ``HF_HUB_CACHE``, else ``HF_HOME/hub``."""
    cache = os.environ.get("HF_HUB_CACHE", "").strip()
    return Path(cache).expanduser() if cache else hf_home() / "hub"


def _safe(relative: str) -> bool:
    """Whether a path from a URI stays inside the folder it is joined to."""
    parts = relative.split("/")
    return "" not in parts and "." not in parts and ".." not in parts


def repo_folder(match: re.Match[str]) -> Path:
    kind = (match["kind"] or "models").lower()
    return hub_cache() / f"{kind}--{match['owner']}--{match['name']}"


def cached_commit(match: re.Match[str], revision: str) -> str | None:
    """The commit ``refs/<revision>`` holds (None: the revision was never fetched here)."""
    if not _safe(revision):
        return None
    try:
        commit = (repo_folder(match) / "refs" / revision).read_text().strip()
    except OSError:
        return None
    return commit if COMMIT_RE.match(commit) else None


def cached_file(match: re.Match[str], commit: str, path: str) -> Path | None:
    """The complete file ``path`` of ``commit`` in the cache, or None."""
    if not _safe(path) or not COMMIT_RE.match(commit):
        return None
    found = repo_folder(match) / "snapshots" / commit / path
    return found if found.is_file() else None  # a link whose blob went away is not a file


def store(match: re.Match[str], commit: str, path: str, etag: str, data: Path) -> None:
    """Puts a verified file where huggingface_hub looks for it: ``blobs/<etag>`` (a hard link
    to ``data``, else a copy) and ``snapshots/<commit>/<path>`` linking to it, each made under
    a temporary name and renamed, so no reader sees half of either."""
    if not _safe(path) or not COMMIT_RE.match(commit) or not re.fullmatch(r"[0-9a-f]{40,64}", etag):
        return
    folder = repo_folder(match)
    link = folder / "snapshots" / commit / path
    if link.is_file():
        return
    blob = folder / "blobs" / etag
    unique = f"{os.getpid()}.{threading.get_ident()}"
    blob.parent.mkdir(parents=True, exist_ok=True)
    if not blob.is_file():
        temporary = blob.with_name(f"{etag}.{unique}.incomplete")
        try:
            os.link(data, temporary)
        except OSError:  # another file system: a copy
            shutil.copyfile(data, temporary)
        os.replace(temporary, blob)
    link.parent.mkdir(parents=True, exist_ok=True)
    temporary = link.with_name(f"{link.name}.{unique}.link")
    os.symlink(os.path.relpath(blob, link.parent), temporary)
    os.replace(temporary, link)


def record_ref(match: re.Match[str], revision: str, commit: str) -> None:
    """``refs/<revision>`` = ``commit``, as huggingface_hub records what a revision named."""
    if not _safe(revision) or not COMMIT_RE.match(commit):
        return
    ref = repo_folder(match) / "refs" / revision
    ref.parent.mkdir(parents=True, exist_ok=True)
    temporary = ref.with_name(f"{ref.name}.{os.getpid()}.{threading.get_ident()}.tmp")
    temporary.write_text(commit)
    os.replace(temporary, ref)
