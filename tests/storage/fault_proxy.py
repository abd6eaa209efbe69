"""A fault-injecting HTTP proxy for the storage tests, between the client and a storage server.

It relays HTTP/1.1 requests (keep-alive) to the server and, for ranged GETs (the data
reads), applies the faults it has been given, each to a bounded number of responses, so
that a client that retries correctly completes and one that trusts a bad response is
caught: connection resets mid-body, 503 SlowDown bursts, stalls past the low-speed limit, a
body cut short under a correct Content-Length, a wrong Content-Range, one bit flipped in a
body under correct headers, and a dead server; and it can drop the checksum headers of every
response, or rewrite the bodies of the responses to requests whose target holds a marker.
It also takes requests as a forward proxy does (an absolute URL in the request line).
Every loop is bounded in time; the proxy binds 127.0.0.1 only.
"""

from __future__ import annotations

import json
import socket
import struct
import threading
import time
from collections import deque
from collections.abc import Callable
from dataclasses import dataclass, field

SLOW_DOWN = (
    b"<?xml version='1.0' encoding='UTF-8'?><Error><Code>SlowDown</Code>"
    b"<Message>Please reduce your request rate.</Message><RequestId>proxy</RequestId></Error>"
)


def _read_until(sock: socket.socket, buffer: bytearray, marker: bytes) -> bytes | None:
    while marker not in buffer:
        data = sock.recv(65536)
        if not data:
            return None
        buffer += data
    index = buffer.index(marker) + len(marker)
    head = bytes(buffer[:index])
    del buffer[:index]
    return head


def _read_exactly(sock: socket.socket, buffer: bytearray, count: int) -> bytes:
    while len(buffer) < count:
        data = sock.recv(65536)
        if not data:
            raise ConnectionError("upstream closed mid-body")
        buffer += data
    body = bytes(buffer[:count])
    del buffer[:count]
    return body


def _headers(head: bytes) -> dict[str, str]:
    lines = head.decode("latin-1").split("\r\n")[1:]
    return {
        k.strip().lower(): v.strip() for k, _, v in (line.partition(":") for line in lines if line)
    }


def _read_response(sock: socket.socket, buffer: bytearray, method: str) -> tuple[bytes, bytes]:
    head = _read_until(sock, buffer, b"\r\n\r\n")
    if head is None:
        raise ConnectionError("upstream closed")
    headers = _headers(head)
    if method == "HEAD" or head.split(b" ", 2)[1] in (b"204", b"304"):
        return head, b""
    if headers.get("transfer-encoding", "").lower() == "chunked":
        body = bytearray()
        while True:
            size_line = _read_until(sock, buffer, b"\r\n") or b"0\r\n"
            size = int(size_line.split(b";")[0], 16)
            chunk = _read_exactly(sock, buffer, size + 2)
            body += size_line + chunk
            if size == 0:
                return head, bytes(body)
    return head, _read_exactly(sock, buffer, int(headers.get("content-length", "0")))


@dataclass
class FaultProxy:
    upstream_port: int
    #: faults still to apply to ranged GETs, in order: "reset", "slowdown", "stall", "truncate",
    #: "wrong_range", "flip_bit" (the middle byte of the body), "pass" (relayed untouched)
    faults: deque[str] = field(default_factory=deque)
    stall_seconds: float = 4.0
    applied: list[str] = field(default_factory=list)
    #: the access key id of every SigV4/GOOG4-signed request relayed, in order
    access_keys: list[str] = field(default_factory=list)
    #: the token of every request with a bearer token, in order
    bearer_tokens: list[str] = field(default_factory=list)
    dead: bool = False
    #: send the upstream's own address as Host (fake-gcs-server routes XML API requests by it)
    rewrite_host: bool = False
    #: the URL of every request that came as to a forward proxy (http_proxy), in order
    proxied: list[str] = field(default_factory=list)
    #: leave out of every response the headers that carry the object's checksums
    drop_checksums: bool = False
    #: the method of every request, "GET range" for a ranged GET (what a body read is)
    requests: list[str] = field(default_factory=list)
    #: (marker, rewrite): the body of each response to a request whose target (path and query)
    #: holds the marker is replaced by rewrite(body) (a hostile store's answer)
    rewrite_body: tuple[bytes, Callable[[bytes], bytes]] | None = None
    #: seconds each answer is held back (a store that far away)
    latency: float = 0.0
    #: "<method> asked" when a request arrives, "<method> answered" when its answer is sent, in
    #: the order they happened (what overlapped what)
    events: list[str] = field(default_factory=list)

    def __post_init__(self) -> None:
        self._listener = socket.socket()
        self._listener.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        self._listener.bind(("127.0.0.1", 0))
        self._listener.listen(128)
        self._listener.settimeout(0.2)
        self.port = int(self._listener.getsockname()[1])
        self._lock = threading.Lock()
        self._stop = threading.Event()
        self._clients: list[socket.socket] = []
        self._thread = threading.Thread(target=self._accept, daemon=True)
        self._thread.start()

    @property
    def endpoint(self) -> str:
        return f"http://127.0.0.1:{self.port}"

    def add(self, *faults: str) -> None:
        with self._lock:
            self.faults.extend(faults)

    def kill(self) -> None:
        """From now on every connection is reset: the server is gone."""
        self.dead = True
        with self._lock:
            for client in self._clients:
                _reset(client)

    def close(self) -> None:
        self._stop.set()
        self.kill()
        self._thread.join(5)
        self._listener.close()

    def _next_fault(self) -> str | None:
        with self._lock:
            if not self.faults:
                return None
            fault = self.faults.popleft()
            self.applied.append(fault)
            return fault

    def _accept(self) -> None:
        while not self._stop.is_set():
            try:
                client, _ = self._listener.accept()
            except TimeoutError:
                continue
            except OSError:
                return
            if self.dead:
                _reset(client)
                continue
            with self._lock:
                self._clients.append(client)
            threading.Thread(target=self._serve, args=(client,), daemon=True).start()

    def _serve(self, client: socket.socket) -> None:
        client.settimeout(60)
        upstream = socket.create_connection(("127.0.0.1", self.upstream_port), timeout=60)
        from_client = bytearray()
        from_upstream = bytearray()
        try:
            while not self._stop.is_set() and not self.dead:
                head = _read_until(client, from_client, b"\r\n\r\n")
                if head is None:
                    return
                head = self._origin_form(head)
                method = head.split(b" ", 1)[0].decode()
                body = _read_exactly(
                    client, from_client, int(_headers(head).get("content-length", "0"))
                )
                authorization = _headers(head).get("authorization", "")
                if "Credential=" in authorization:
                    key = authorization.split("Credential=", 1)[1].split("/", 1)[0]
                    with self._lock:
                        self.access_keys.append(key)
                if authorization.startswith("Bearer "):
                    with self._lock:
                        self.bearer_tokens.append(authorization[len("Bearer ") :])
                headers = _headers(head)
                ranged = method == "GET" and ("range" in headers or "x-ms-range" in headers)
                kind = "GET range" if ranged else method
                with self._lock:
                    self.requests.append(kind)
                    self.events.append(f"{kind} asked")
                fault = self._next_fault() if ranged else None
                if fault == "slowdown":
                    client.sendall(
                        b"HTTP/1.1 503 Slow Down\r\nContent-Type: application/xml\r\n"
                        + f"Content-Length: {len(SLOW_DOWN)}\r\n\r\n".encode()
                        + SLOW_DOWN
                    )
                    continue
                if self.rewrite_host:
                    head = _with_host(head, f"127.0.0.1:{self.upstream_port}")
                upstream.sendall(head + body)
                response_head, response_body = _read_response(upstream, from_upstream, method)
                if self.drop_checksums:
                    response_head, response_body = _without_checksums(response_head, response_body)
                target = head.split(b" ", 2)[1]
                if self.rewrite_body is not None and self.rewrite_body[0] in target:
                    response_head, response_body = _with_body(
                        response_head, self.rewrite_body[1](response_body)
                    )
                if fault == "flip_bit":
                    flipped = bytearray(response_body)
                    flipped[len(flipped) // 2] ^= 0x10
                    response_body = bytes(flipped)
                    fault = None
                if fault is None or fault == "pass":
                    time.sleep(self.latency)
                    client.sendall(response_head + response_body)
                    with self._lock:
                        self.events.append(f"{kind} answered")
                    continue
                half = len(response_body) // 2
                if fault == "wrong_range":
                    text = response_head.decode("latin-1")
                    lines = text.split("\r\n")
                    for i, line in enumerate(lines):
                        if line.lower().startswith("content-range:"):
                            first_last, _, total = line.split(" ", 2)[2].partition("/")
                            first, _, last = first_last.partition("-")
                            lines[i] = (
                                f"Content-Range: bytes {int(first) + 1}-{int(last) + 1}/{total}"
                            )
                    client.sendall("\r\n".join(lines).encode("latin-1") + response_body)
                    continue
                client.sendall(response_head + response_body[:half])
                if fault == "reset":
                    _reset(client)
                    return
                if fault == "stall":
                    time.sleep(self.stall_seconds)
                    return
                if fault == "truncate":  # a clean close under a Content-Length that promised more
                    client.shutdown(socket.SHUT_RDWR)
                    return
        except OSError:
            return
        finally:
            upstream.close()
            client.close()

    def _origin_form(self, head: bytes) -> bytes:
        """A forward proxy's request ("GET http://host/path HTTP/1.1") as a server takes it."""
        line, separator, rest = head.partition(b"\r\n")
        method, target, version = line.split(b" ", 2)
        if not target.startswith(b"http://"):
            return head
        with self._lock:
            self.proxied.append(target.decode("latin-1"))
        path = b"/" + target[len(b"http://") :].partition(b"/")[2]
        return b" ".join((method, path, version)) + separator + rest


CHECKSUM_HEADERS = (b"x-amz-checksum-", b"x-goog-hash:", b"content-md5:")
#: the checksums of GCS's JSON object metadata
CHECKSUM_FIELDS = ("crc32c", "md5Hash")


def _without_checksums(head: bytes, body: bytes) -> tuple[bytes, bytes]:
    """The response without checksum headers, and a JSON object body without checksum fields
    (its Content-Length made to match)."""
    lines = [line for line in head.split(b"\r\n") if not line.lower().startswith(CHECKSUM_HEADERS)]
    if _headers(head).get("content-type", "").startswith("application/json") and body:
        try:
            document = json.loads(body)
        except ValueError:
            return b"\r\n".join(lines), body
        if isinstance(document, dict):
            for name in CHECKSUM_FIELDS:
                document.pop(name, None)
            return _with_body(b"\r\n".join(lines), json.dumps(document).encode())
    return b"\r\n".join(lines), body


def _with_body(head: bytes, body: bytes) -> tuple[bytes, bytes]:
    """The response with another body, sent with a Content-Length."""
    framing = (b"content-length:", b"transfer-encoding:")
    lines = [line for line in head.split(b"\r\n") if line and not line.lower().startswith(framing)]
    return b"\r\n".join([*lines, f"Content-Length: {len(body)}".encode(), b"", b""]), body


def _with_host(head: bytes, host: str) -> bytes:
    lines = head.split(b"\r\n")
    for i, line in enumerate(lines):
        if line.lower().startswith(b"host:"):
            lines[i] = b"Host: " + host.encode()
    return b"\r\n".join(lines)


def _reset(sock: socket.socket) -> None:
    """Closes with RST (SO_LINGER 0), as a crashed peer does."""
    try:
        sock.setsockopt(socket.SOL_SOCKET, socket.SO_LINGER, struct.pack("ii", 1, 0))
        sock.close()
    except OSError:
        pass
