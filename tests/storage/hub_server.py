"""A Hugging Face Hub on 127.0.0.1 for the hf:// tests, speaking the Hub's HTTP protocol as
huggingface_hub documents it (written for these tests, sharing no code with ours):

- ``HEAD|GET /[datasets/]<owner>/<name>/resolve/<revision>/<path>``: a branch or tag resolves
  to its commit (``X-Repo-Commit``); an LFS file (``*.safetensors``) answers 302 to a signed,
  expiring URL on a second server (the "CDN"), with ``X-Linked-Size`` and ``X-Linked-Etag``
  (its SHA-256); other files are served by the Hub itself (ETag: their git blob id);
- ``GET /api/<kind>/<owner>/<name>/tree/<revision>[/<path>]``: a folder's entries, ``page_size``
  at a time, the next page in the ``Link`` header (``rel="next"``, a cursor);
- ``GET /api/<kind>/<owner>/<name>/revision/<revision>``: ``{"sha": <commit>}``;
- private repositories (401 ``RepoNotFound`` without the token), gated ones (403
  ``GatedRepo`` for a token not granted), ``X-Error-Code`` / ``X-Error-Message`` on errors,
  and 429s with ``Retry-After`` on demand.

The CDN serves ranges of a blob by its SHA-256 when the URL's signature and expiry hold (403
otherwise), and records the Authorization headers it was sent (none may reach it)."""

from __future__ import annotations

import hashlib
import hmac
import json
import re
import threading
import time
import urllib.parse
from collections.abc import Callable
from dataclasses import dataclass, field
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer

SECRET = b"cdn-signing-key"
_RANGE_RE = re.compile(r"^bytes=(\d+)-(\d*)$")


def git_blob_id(data: bytes) -> str:
    return hashlib.sha1(b"blob %d\0" % len(data) + data).hexdigest()


@dataclass
class Repo:
    branches: dict[str, str] = field(default_factory=dict)  # branch or tag -> commit
    commits: dict[str, dict[str, bytes]] = field(default_factory=dict)  # commit -> files
    private: bool = False
    gated: bool = False


class _Server:
    def __init__(self, handler: type[BaseHTTPRequestHandler]) -> None:
        handler.protocol_version = "HTTP/1.1"
        self.server = ThreadingHTTPServer(("127.0.0.1", 0), handler)
        self.server.daemon_threads = True
        self.url = f"http://127.0.0.1:{self.server.server_address[1]}"
        threading.Thread(target=self.server.serve_forever, daemon=True).start()

    def close(self) -> None:
        self.server.shutdown()
        self.server.server_close()


class _Handler(BaseHTTPRequestHandler):
    def log_message(self, *args: object) -> None:
        del args

    def reply(
        self,
        status: int,
        body: bytes = b"",
        headers: dict[str, str] | None = None,
        head: bool = False,
    ) -> None:
        self.send_response(status)
        for name, value in (headers or {}).items():
            self.send_header(name, value)
        self.send_header("Content-Length", str(len(body)))
        self.end_headers()
        if not head:
            self.wfile.write(body)

    def send_ranged(self, data: bytes, headers: dict[str, str], head: bool = False) -> None:
        """``data`` whole, or the range the Range header asks for."""
        match = _RANGE_RE.match(self.headers.get("Range", ""))
        if match is None:
            self.reply(200, data, headers, head)
            return
        first = int(match[1])
        last = min(int(match[2]) if match[2] else len(data) - 1, len(data) - 1)
        if first >= len(data):
            self.reply(416, b"", {"Content-Range": f"bytes */{len(data)}"}, head)
            return
        ranged = {**headers, "Content-Range": f"bytes {first}-{last}/{len(data)}"}
        self.reply(206, data[first : last + 1], ranged, head)


class HubServer:
    """The Hub and its CDN. ``page_size``: tree entries per page; ``expires_in``: seconds a
    signed URL holds; ``token``: the token that may read private and gated repositories."""

    def __init__(self, token: str = "hf_test_token", page_size: int = 2) -> None:
        self.token = token
        self.page_size = page_size
        self.expires_in = 3600
        self.repos: dict[str, Repo] = {}
        self.blobs: dict[str, bytes] = {}  # sha256 -> bytes (the CDN's)
        self.throttle = 0  # the next so many Hub requests answer 429
        self.refuse_signed = 0  # the next so many CDN requests answer 403 (as if expired)
        self.flip_bit: set[str] = set()  # sha256s of files served with a bit flipped
        self.on_resolve: Callable[[str, str], None] | None = None  # (repo id, path)
        #: where LFS files are served instead of the CDN (sha256 -> URL): the benchmark's
        #: presigned S3 URLs, as the real Hub redirects to signed storage URLs
        self.blob_url: Callable[[str], str] | None = None
        self.cdn_authorizations: list[str] = []
        self.hub_authorizations: list[str] = []
        self.requests: list[str] = []
        self._lock = threading.Lock()
        self._digests: dict[int, tuple[bytes, str, str]] = {}  # id -> (bytes, sha256, blob id)
        hub = self

        class HubHandler(_Handler):
            def do_HEAD(self) -> None:
                hub._serve(self, head=True)

            def do_GET(self) -> None:
                if self.path.startswith("/cdn/"):  # the CDN on the Hub's port too (proxies)
                    hub._serve_blob(self)
                else:
                    hub._serve(self, head=False)

        class CdnHandler(_Handler):
            def do_GET(self) -> None:
                hub._serve_blob(self)

        self._hub = _Server(HubHandler)
        self._cdn = _Server(CdnHandler)
        self.endpoint = self._hub.url
        self.cdn = self._cdn.url  # where Location points (or <a proxy of the Hub>/cdn)

    def close(self) -> None:
        self._hub.close()
        self._cdn.close()

    # ---- what the tests set up ----------------------------------------------------------------

    def commit(
        self, repo_id: str, files: dict[str, bytes], branch: str = "main", **flags: bool
    ) -> str:
        """A new commit of ``files`` (the whole tree) on ``branch``; returns its id."""
        repo = self.repos.setdefault(repo_id, Repo())
        for name, value in flags.items():
            setattr(repo, name, value)
        digest = hashlib.sha1(repr((repo_id, sorted(files.items()))).encode())
        commit = digest.hexdigest()
        repo.commits[commit] = dict(files)
        repo.branches[branch] = commit
        for data in files.values():
            self.blobs[self.sha256(data)] = data
        return commit

    def _digest(self, data: bytes) -> tuple[str, str]:
        """(SHA-256, git blob id) of a file, computed once (a benchmark's are a GiB)."""
        with self._lock:
            known = self._digests.get(id(data))
        if known is None or known[0] is not data:
            known = (data, hashlib.sha256(data).hexdigest(), git_blob_id(data))
            with self._lock:
                self._digests[id(data)] = known
        return known[1], known[2]

    def sha256(self, data: bytes) -> str:
        return self._digest(data)[0]

    # ---- the Hub ------------------------------------------------------------------------------

    def _error(self, handler: _Handler, status: int, code: str, message: str, head: bool) -> None:
        body = json.dumps({"error": message}).encode()
        headers = {"X-Error-Code": code, "X-Error-Message": message}
        handler.reply(status, body, {**headers, "Content-Type": "application/json"}, head)

    def _access(self, handler: _Handler, repo_id: str, head: bool) -> Repo | None:
        repo = self.repos.get(repo_id)
        sent = handler.headers.get("Authorization", "")
        authorized = sent == f"Bearer {self.token}"
        if repo is None or (repo.private and not authorized):
            message = "Repository Not Found for url: " + handler.path.split("?")[0]
            self._error(handler, 401 if not authorized else 404, "RepoNotFound", message, head)
            return None
        if repo.gated and not authorized:
            message = f"Access to model {repo_id} is restricted. You must have access to it."
            self._error(handler, 401 if not sent else 403, "GatedRepo", message, head)
            return None
        return repo

    def _serve(self, handler: _Handler, head: bool) -> None:
        with self._lock:
            self.requests.append(f"{handler.command} {handler.path}")
            self.hub_authorizations.append(handler.headers.get("Authorization", ""))
            throttled = self.throttle > 0
            self.throttle -= throttled
        if throttled:
            handler.reply(429, b"slow down", {"Retry-After": "1"}, head)
            return
        url = urllib.parse.urlsplit(handler.path)
        parts = [urllib.parse.unquote(p) for p in url.path.split("/")[1:]]
        kind = "models"
        if parts and parts[0] == "api":
            parts = parts[1:]
            kind = parts.pop(0) if parts else ""
            if len(parts) >= 4 and parts[2] in ("tree", "revision"):
                self._api(handler, kind, parts, urllib.parse.parse_qs(url.query))
                return
        elif parts and parts[0] in ("datasets", "spaces"):
            kind = parts.pop(0)
        if len(parts) >= 5 and parts[2] == "resolve":
            self._resolve(handler, kind, parts, head)
            return
        self._error(handler, 404, "NotFound", "no such route", head)

    def _revision(self, handler: _Handler, repo: Repo, revision: str, head: bool) -> str | None:
        commit = repo.branches.get(revision, revision)
        if commit not in repo.commits:
            self._error(handler, 404, "RevisionNotFound", f"Invalid rev id: {revision}", head)
            return None
        return commit

    def _resolve(self, handler: _Handler, kind: str, parts: list[str], head: bool) -> None:
        repo_id = ("" if kind == "models" else kind + "/") + "/".join(parts[:2])
        revision, path = parts[3], "/".join(parts[4:])
        repo = self._access(handler, repo_id, head)
        if repo is None:
            return
        commit = self._revision(handler, repo, revision, head)
        if commit is None:
            return
        data = repo.commits[commit].get(path)
        if data is None:
            self._error(handler, 404, "EntryNotFound", f"{path} does not exist", head)
            return
        if self.on_resolve is not None:
            self.on_resolve(repo_id, path)
        headers = {"X-Repo-Commit": commit}
        if path.endswith(".safetensors"):
            sha = self.sha256(data)
            expires = int(time.time()) + self.expires_in
            signature = hmac.new(SECRET, f"{sha}:{expires}".encode(), "sha256").hexdigest()
            location = f"{self.cdn}/{sha}?Expires={expires}&Signature={signature}"
            headers.update(
                {
                    "Location": self.blob_url(sha) if self.blob_url else location,
                    "X-Linked-Size": str(len(data)),
                    "X-Linked-Etag": f'"{sha}"',
                    "ETag": f'"{sha}"',
                }
            )
            handler.reply(302, b"", headers, head)
            return
        sha, blob_id = self._digest(data)
        handler.send_ranged(self._served(sha, data), {**headers, "ETag": f'"{blob_id}"'}, head)

    def _api(
        self, handler: _Handler, kind: str, parts: list[str], query: dict[str, list[str]]
    ) -> None:
        repo_id = ("" if kind == "models" else kind + "/") + "/".join(parts[:2])
        repo = self._access(handler, repo_id, False)
        if repo is None:
            return
        commit = self._revision(handler, repo, parts[3], False)
        if commit is None:
            return
        if parts[2] == "revision":
            handler.reply(200, json.dumps({"id": repo_id, "sha": commit}).encode())
            return
        folder = "/".join(parts[4:])
        recursive = query.get("recursive", ["false"])[0].lower() == "true"
        entries: dict[str, dict[str, object]] = {}
        for name, data in repo.commits[commit].items():
            if folder and not name.startswith(folder + "/"):
                continue
            segments = (name[len(folder) + 1 :] if folder else name).split("/")
            # the folders on the way (all of them when recursive, else the first only)
            for depth in range(1, len(segments) if recursive else min(2, len(segments))):
                child = "/".join([*([folder] if folder else []), *segments[:depth]])
                entries[child] = {"type": "directory", "oid": "0" * 40, "size": 0, "path": child}
            if len(segments) > 1 and not recursive:
                continue
            sha, blob_id = self._digest(data)
            entry: dict[str, object] = {
                "type": "file",
                "oid": blob_id,
                "size": len(data),
                "path": name,
            }
            if name.endswith(".safetensors"):
                entry["lfs"] = {"oid": sha, "size": len(data), "pointerSize": 134}
                entry["size"] = 134
            entries[name] = entry
        if folder and not entries:
            self._error(handler, 404, "EntryNotFound", f"{folder} does not exist", False)
            return
        listed = [entries[name] for name in sorted(entries)]
        cursor = int(query.get("cursor", ["0"])[0])
        page = listed[cursor : cursor + self.page_size]
        headers = {"Content-Type": "application/json"}
        if cursor + self.page_size < len(listed):  # the next page keeps the query's parameters
            following = {k: v[0] for k, v in query.items()} | {"cursor": cursor + self.page_size}
            url = f"{self.endpoint}{handler.path.split('?')[0]}?{urllib.parse.urlencode(following)}"
            headers["Link"] = f'<{url}>; rel="next"'
        handler.reply(200, json.dumps(page).encode(), headers)

    # ---- the CDN ------------------------------------------------------------------------------

    def _serve_blob(self, handler: _Handler) -> None:
        url = urllib.parse.urlsplit(handler.path)
        query = urllib.parse.parse_qs(url.query)
        sha = url.path.removeprefix("/cdn").lstrip("/")
        expires = query.get("Expires", ["0"])[0]
        signature = hmac.new(SECRET, f"{sha}:{expires}".encode(), "sha256").hexdigest()
        with self._lock:
            self.cdn_authorizations.append(handler.headers.get("Authorization", ""))
            refused = self.refuse_signed > 0
            self.refuse_signed -= refused
        valid = hmac.compare_digest(signature, query.get("Signature", [""])[0])
        if refused or not valid or int(expires) < time.time() or sha not in self.blobs:
            body = b"<Error><Code>AccessDenied</Code><Message>Request has expired</Message></Error>"
            handler.reply(403, body, {"Content-Type": "application/xml"})
            return
        handler.send_ranged(self._served(sha, self.blobs[sha]), {"ETag": f'"{sha}"'})

    def _served(self, sha: str, data: bytes) -> bytes:
        """The bytes of a file as served: with a bit flipped when a test asks."""
        if sha not in self.flip_bit:
            return data
        middle = len(data) // 2  # in a safetensors file: in the tensors' bytes, past the header
        return data[:middle] + bytes([data[middle] ^ 0x01]) + data[middle + 1 :]
