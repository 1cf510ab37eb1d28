"""A real fault-injecting proxy on a loopback port, for the fault tests (no stubbing).

Two modes:
- `HttpFaultProxy`: an HTTP/1.1 proxy in front of the moto server. Each request is read
  whole, forwarded upstream (one upstream connection per request) and the response relayed
  back on the client's kept-alive connection. Rules, matched by method and a path
  substring, can answer with an S3 XML error instead (`SlowDown`, `InternalError`,
  `AccessDenied`, `NoSuchKey`, ...), delay the response, reset the client connection after
  part of the response (the request itself did reach the server), or stall: hold the
  request `delay_s` and then drop it unsent. Every rule records its hits and sets an event
  on the first one, so a test can act (kill a process) while a matching request is held.
- `TcpFaultProxy`: a byte relay (for MySQL) that can cut every open connection now, or as
  soon as the client has sent a given byte pattern (a statement) plus some bytes more: both
  sockets shut down and closed, the server keeps running.
"""

from __future__ import annotations

import contextlib
import http.client
import socket
import struct
import threading
import time
from dataclasses import dataclass, field
from html import escape
from typing import Literal
from urllib.parse import unquote

Action = Literal["error", "delay", "reset", "stall"]
_REASONS = {403: "Forbidden", 404: "Not Found", 500: "Internal Server Error", 503: "Slow Down"}


@dataclass
class Rule:
    """What to do with the next `times` requests whose method and path match."""

    method: str
    path_contains: str
    action: Action
    times: int = 1
    status: int = 503
    code: str = "SlowDown"
    delay_s: float = 0.0
    reset_after_body_bytes: int | None = 0  # reset: body bytes relayed first; None: none at all
    hits: list[str] = field(default_factory=list)  # paths this rule acted on
    seen: threading.Event = field(default_factory=threading.Event)

    def matches(self, method: str, path: str) -> bool:
        return (
            len(self.hits) < self.times
            and self.method in ("*", method)
            and self.path_contains in path
        )


def _listener() -> socket.socket:
    server = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
    server.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
    server.bind(("127.0.0.1", 0))
    server.listen(128)
    return server


def _reset(sock: socket.socket) -> None:
    """Close with RST (SO_LINGER 0): the peer sees 'connection reset', not a clean end."""
    with contextlib.suppress(OSError):
        sock.setsockopt(socket.SOL_SOCKET, socket.SO_LINGER, struct.pack("ii", 1, 0))
    sock.close()


def _cut(sock: socket.socket) -> None:
    with contextlib.suppress(OSError):
        sock.shutdown(socket.SHUT_RDWR)
    sock.close()


class _Proxy:
    def __init__(self, target_host: str, target_port: int) -> None:
        self.target = (target_host, target_port)
        self._server = _listener()
        self.port: int = self._server.getsockname()[1]
        self._lock = threading.Lock()
        self._closed = False
        self._thread = threading.Thread(target=self._accept, daemon=True, name="fault-proxy")

    def start(self):
        self._thread.start()
        return self

    def __enter__(self):
        return self.start()

    def __exit__(self, *exc: object) -> None:
        self.close()

    def close(self) -> None:
        self._closed = True
        _cut(self._server)

    def _accept(self) -> None:
        while not self._closed:
            try:
                client, _ = self._server.accept()
            except OSError:
                return
            threading.Thread(target=self._serve, args=(client,), daemon=True).start()

    def _serve(self, client: socket.socket) -> None:  # pragma: no cover - overridden
        raise NotImplementedError


class TcpFaultProxy(_Proxy):
    """Relays bytes both ways; `cut_all()` ends every open connection at once."""

    def __init__(self, target_host: str, target_port: int) -> None:
        super().__init__(target_host, target_port)
        self._pairs: list[tuple[socket.socket, socket.socket]] = []
        self.cuts = 0  # connections cut so far
        self._trigger: tuple[bytes, int, int] | None = None  # pattern, occurrence, extra bytes
        self._seen_count = 0
        self._armed_on: socket.socket | None = None  # the connection that sent the pattern
        self._bytes_after = 0  # what it sent after the pattern
        self.triggered = threading.Event()  # set when the trigger cut the connections

    def cut_after(self, pattern: bytes, *, occurrence: int = 1, extra_bytes: int = 0) -> None:
        """Cut every connection (once) when a client has sent `pattern` for the
        `occurrence`-th time and then at least `extra_bytes` more bytes on the same
        connection (a statement's LOAD DATA file, say)."""
        with self._lock:
            self._trigger = (pattern, occurrence, extra_bytes)
            self._seen_count, self._armed_on, self._bytes_after = 0, None, 0
            self.triggered.clear()

    def _watch(self, source: socket.socket, tail: bytes, chunk: bytes) -> bool:
        """Count the pattern in what a client sent; True when the trigger fires."""
        with self._lock:
            if self._trigger is None:
                return False
            pattern, occurrence, extra = self._trigger
            if self._armed_on is None:
                window = tail + chunk
                found = window.find(pattern)
                while found >= 0 and self._armed_on is None:
                    end = found + len(pattern)
                    if end > len(tail):  # not counted with the previous chunk already
                        self._seen_count += 1
                        if self._seen_count == occurrence:
                            self._armed_on, self._bytes_after = source, len(window) - end
                    found = window.find(pattern, found + 1)
            elif source is self._armed_on:
                self._bytes_after += len(chunk)
            if source is self._armed_on and self._bytes_after >= extra:
                self._trigger = None
                return True
            return False

    def _serve(self, client: socket.socket) -> None:
        try:
            upstream = socket.create_connection(self.target, timeout=10)
        except OSError:
            _cut(client)
            return
        upstream.settimeout(None)
        with self._lock:
            self._pairs.append((client, upstream))
        for source, sink, watch in ((client, upstream, True), (upstream, client, False)):
            threading.Thread(target=self._pump, args=(source, sink, watch), daemon=True).start()

    def _pump(self, source: socket.socket, sink: socket.socket, watch: bool) -> None:
        tail = b""
        try:
            while chunk := source.recv(65536):
                sink.sendall(chunk)
                if watch and self._watch(source, tail, chunk):
                    self.cut_all()
                    self.triggered.set()
                tail = chunk[-256:]
        except OSError:
            pass
        _cut(source)
        _cut(sink)
        with self._lock:
            self._pairs = [p for p in self._pairs if source not in p]

    def cut_all(self) -> int:
        """Close both sockets of every open connection now; returns how many were cut."""
        with self._lock:
            pairs, self._pairs = self._pairs, []
        for client, upstream in pairs:
            _cut(client)
            _cut(upstream)
        self.cuts += len(pairs)
        return len(pairs)


class _ClientGone(Exception):
    pass


class HttpFaultProxy(_Proxy):
    """An HTTP proxy to `target` with fault rules (see the module docstring)."""

    def __init__(self, target_host: str, target_port: int) -> None:
        super().__init__(target_host, target_port)
        self.rules: list[Rule] = []
        self.requests: list[tuple[str, str]] = []  # (method, unquoted path) of every request

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self.port}"

    def add(self, method: str, path_contains: str, action: Action, **options) -> Rule:
        rule = Rule(method, path_contains, action, **options)
        with self._lock:
            self.rules.append(rule)
        return rule

    def clear(self) -> None:
        with self._lock:
            self.rules.clear()

    def _take_rule(self, method: str, path: str) -> Rule | None:
        path = unquote(path)  # match keys as written: botocore sends `dt=` as `dt%3D`
        with self._lock:
            self.requests.append((method, path))
            for rule in self.rules:
                if rule.matches(method, path):
                    rule.hits.append(path)
                    rule.seen.set()
                    return rule
        return None

    def _serve(self, client: socket.socket) -> None:
        reader = client.makefile("rb")
        try:
            while not self._closed:
                if not self._exchange(client, reader):
                    break
        except (_ClientGone, OSError):
            pass
        finally:
            reader.close()
            with contextlib.suppress(OSError):
                client.close()

    def _exchange(self, client: socket.socket, reader) -> bool:
        """One request and its response; False when the connection must end."""
        line = reader.readline(65537)
        if not line:
            return False
        method, path, _ = line.decode("latin-1").split(" ", 2)
        headers: list[tuple[str, str]] = []
        while (header := reader.readline(65537)) not in (b"\r\n", b"\n", b""):
            name, _, value = header.decode("latin-1").partition(":")
            headers.append((name.strip(), value.strip()))
        lower = {name.lower(): value for name, value in headers}
        rule = self._take_rule(method, path)
        expects = lower.get("expect", "").lower() == "100-continue"
        if rule is not None and rule.action == "error":
            if not expects:  # the client sends the body anyway: take it before answering
                self._read_body(reader, lower)
            client.sendall(self._error(rule, path))  # a client that expected 100 sends none
            return False
        if expects:
            client.sendall(b"HTTP/1.1 100 Continue\r\n\r\n")
        body = self._read_body(reader, lower)
        if rule is not None and rule.action in ("delay", "stall"):
            time.sleep(rule.delay_s)
            if rule.action == "stall":  # the request never reaches the server
                _reset(client)
                raise _ClientGone
        status, reason, response_headers, response_body = self._forward(method, path, headers, body)
        head = f"HTTP/1.1 {status} {reason}\r\n"
        dropped = ("transfer-encoding", "connection") + (
            () if method == "HEAD" else ("content-length",)
        )
        for name, value in response_headers:
            if name.lower() not in dropped:
                head += f"{name}: {value}\r\n"
        if method != "HEAD":  # a HEAD's Content-Length is the object's, as upstream said
            head += f"Content-Length: {len(response_body)}\r\n"
        head += "\r\n"
        payload = head.encode("latin-1") + (b"" if method == "HEAD" else response_body)
        if rule is not None and rule.action == "reset":
            if rule.reset_after_body_bytes is not None:
                client.sendall(payload[: len(head) + rule.reset_after_body_bytes])
            _reset(client)
            raise _ClientGone
        client.sendall(payload)
        return True

    @staticmethod
    def _read_body(reader, headers: dict[str, str]) -> bytes:
        if headers.get("transfer-encoding", "").lower() == "chunked":
            parts = []
            while size := int(reader.readline().split(b";")[0], 16):
                parts.append(reader.read(size))
                reader.readline()
            while reader.readline() not in (b"\r\n", b"\n", b""):  # trailers
                pass
            return b"".join(parts)
        length = int(headers.get("content-length", "0"))
        body = reader.read(length) if length else b""
        if len(body) < length:
            raise _ClientGone
        return body

    def _forward(
        self, method: str, path: str, headers: list[tuple[str, str]], body: bytes
    ) -> tuple[int, str, list[tuple[str, str]], bytes]:
        upstream = http.client.HTTPConnection(*self.target, timeout=120)
        try:
            upstream.putrequest(method, path, skip_host=True, skip_accept_encoding=True)
            for name, value in headers:
                if name.lower() not in ("expect", "transfer-encoding", "content-length"):
                    upstream.putheader(name, value)
            upstream.putheader("Content-Length", str(len(body)))
            upstream.endheaders(body)
            response = upstream.getresponse()
            return response.status, response.reason, response.getheaders(), response.read()
        finally:
            upstream.close()

    @staticmethod
    def _error(rule: Rule, path: str) -> bytes:
        resource = escape(path.split("?", 1)[0])
        body = (
            '<?xml version="1.0" encoding="UTF-8"?>\n<Error>'
            f"<Code>{rule.code}</Code><Message>injected by the fault proxy</Message>"
            f"<Resource>{resource}</Resource><RequestId>FAULTPROXY</RequestId></Error>"
        ).encode()
        reason = _REASONS.get(rule.status, "Error")
        return (
            f"HTTP/1.1 {rule.status} {reason}\r\nContent-Type: application/xml\r\n"
            f"Content-Length: {len(body)}\r\nConnection: close\r\n\r\n"
        ).encode() + body
