"""A small HTTP client for probes and smoke tests: the standard library, a wall-clock
deadline on every whole exchange, redirects never followed (the doctor wants to see them),
proxies and CA bundles taken from the environment the way ``requests`` takes them. Never
raises: failures are returned as data with a plain-words reason.

A socket timeout alone bounds each read, not the exchange: a server that sends one byte a
second never trips it. So every request also arms a timer that shuts its sockets down when
the deadline passes, wherever the exchange is (connecting, the status line, headers, body).
"""

from __future__ import annotations

import functools
import http.client
import socket
import ssl
import threading
import time
import urllib.error
import urllib.request
from dataclasses import dataclass, field
from typing import Optional
from urllib.parse import urlsplit

USER_AGENT = "llmdoctor (+https://pypi.org/project/llmdoctor)"


@dataclass
class Response:
    url: str
    status: Optional[int] = None
    headers: dict = field(default_factory=dict)  # lower-case names
    body: bytes = b""
    error: str = ""
    error_kind: str = ""  # timeout | tls | dns | refused | proxy | other
    elapsed_ms: float = 0.0

    def to_json(self) -> dict:
        return {"url": self.url, "status": self.status, "headers": self.headers, "error": self.error,
                "error_kind": self.error_kind, "elapsed_ms": round(self.elapsed_ms, 1)}


class _NoRedirects(urllib.request.HTTPRedirectHandler):
    def redirect_request(self, *args, **kwargs):
        return None  # a 30x comes back as the response itself


def ssl_context(environ: dict) -> ssl.SSLContext:
    bundle = environ.get("REQUESTS_CA_BUNDLE") or environ.get("SSL_CERT_FILE") or environ.get("CURL_CA_BUNDLE")
    return _context_for(bundle or "")


@functools.lru_cache(maxsize=8)
def _context_for(bundle: str) -> ssl.SSLContext:
    """One context per CA bundle: parsing a system bundle costs ~15 ms a time (contexts are
    safe to share between threads)."""
    try:
        return ssl.create_default_context(cafile=bundle) if bundle else ssl.create_default_context()
    except (OSError, ssl.SSLError):
        return ssl.create_default_context()


def _classify(exc: BaseException) -> tuple:
    reason = getattr(exc, "reason", exc)
    text = str(reason)
    if isinstance(reason, (socket.timeout, TimeoutError)) or "timed out" in text:
        return "timeout", "no answer before the timeout"
    if isinstance(reason, ssl.SSLCertVerificationError) or "CERTIFICATE_VERIFY_FAILED" in text:
        return "tls", f"the TLS certificate was not trusted ({getattr(reason, 'verify_message', text)})"
    if isinstance(reason, ssl.SSLError):
        return "tls", f"TLS failed: {text}"
    if isinstance(reason, socket.gaierror):
        return "dns", "the host name does not resolve"
    if isinstance(reason, ConnectionRefusedError):
        return "refused", "the connection was refused"
    if "Tunnel connection failed" in text or "proxy" in text.lower():
        return "proxy", f"the proxy refused or failed: {text}"
    return "other", text


class _Deadline:
    """Shuts down the sockets of one exchange when its time is up."""

    def __init__(self, seconds: float) -> None:
        self.sockets: list = []
        self.expired = False
        self.lock = threading.Lock()
        self.timer = threading.Timer(seconds, self._expire)
        self.timer.daemon = True

    def add(self, sock) -> None:
        with self.lock:
            self.sockets.append(sock)
            if self.expired:
                self._close(sock)

    def _expire(self) -> None:
        with self.lock:
            self.expired = True
            for sock in self.sockets:
                self._close(sock)

    @staticmethod
    def _close(sock) -> None:
        try:
            sock.shutdown(socket.SHUT_RDWR)
        except OSError:
            pass


def _connection(base, deadline: _Deadline):
    class Connection(base):
        def connect(self):
            super().connect()
            deadline.add(self.sock)
    return Connection


class _HTTPHandler(urllib.request.HTTPHandler):
    def __init__(self, deadline: _Deadline) -> None:
        super().__init__()
        self.deadline = deadline

    def http_open(self, req):
        return self.do_open(_connection(http.client.HTTPConnection, self.deadline), req)


class _HTTPSHandler(urllib.request.HTTPSHandler):
    def __init__(self, deadline: _Deadline, context: ssl.SSLContext) -> None:
        super().__init__(context=context)
        self.deadline = deadline
        self.tls_context = context

    def https_open(self, req):
        return self.do_open(_connection(http.client.HTTPSConnection, self.deadline), req, context=self.tls_context)


def _read(answer, max_body: int, deadline: _Deadline) -> bytes:
    chunks, size = [], 0
    while size < max_body:
        chunk = answer.read(min(65536, max_body - size))
        if not chunk:
            break
        chunks.append(chunk)
        size += len(chunk)
    return b"".join(chunks)


def request(url: str, method: str = "GET", timeout: float = 3.0, environ: Optional[dict] = None,
            max_body: int = 2_000_000, headers: Optional[dict] = None) -> Response:
    """One request; ``timeout`` bounds the whole exchange (and each read)."""
    environ = environ or {}
    response = Response(url=url)
    parts = urlsplit(url)
    if parts.scheme not in ("http", "https") or not parts.hostname:
        response.error, response.error_kind = f"not an http(s) URL: {url!r}", "other"
        return response
    proxies = urllib.request.getproxies()
    if urllib.request.proxy_bypass(parts.hostname or ""):
        proxies = {}
    deadline = _Deadline(timeout)
    opener = urllib.request.build_opener(
        _NoRedirects, urllib.request.ProxyHandler(proxies), _HTTPHandler(deadline),
        _HTTPSHandler(deadline, ssl_context(environ)))
    started = time.monotonic()
    req = urllib.request.Request(url, method=method, headers={
        "User-Agent": USER_AGENT, "Accept-Encoding": "identity", **(headers or {})})
    deadline.timer.start()
    try:
        with opener.open(req, timeout=timeout) as answer:
            response.status = answer.status
            response.headers = {k.lower(): v for k, v in answer.headers.items()}
            if method != "HEAD":
                response.body = _read(answer, max_body, deadline)
    except urllib.error.HTTPError as exc:  # 30x, 4xx, 5xx: still an answer
        response.status = exc.code
        response.headers = {k.lower(): v for k, v in (exc.headers or {}).items()}
        try:
            response.body = _read(exc, max_body, deadline) if method != "HEAD" else b""
        except Exception:  # noqa: BLE001
            pass
    except Exception as exc:  # noqa: BLE001 - every failure is data
        response.error_kind, response.error = _classify(exc)
    finally:
        deadline.timer.cancel()
    if deadline.expired:
        response.status, response.body = None, b""
        response.error_kind = "timeout"
        response.error = f"the exchange did not complete within {timeout:g} s (the server answered too slowly)"
    response.elapsed_ms = (time.monotonic() - started) * 1000
    return response


def connect(host: str, port: int, tls: bool, timeout: float, environ: Optional[dict] = None) -> dict:
    """Can a TCP (and TLS) connection to host:port be made? {reachable, error, elapsed_ms}."""
    started = time.monotonic()
    result = {"host": host, "port": port, "tls": tls, "reachable": False}
    try:
        with socket.create_connection((host, port), timeout=timeout) as sock:
            if tls:
                with ssl_context(environ or {}).wrap_socket(sock, server_hostname=host):
                    pass
        result["reachable"] = True
    except Exception as exc:  # noqa: BLE001
        result["error_kind"], result["error"] = _classify(exc)
    result["elapsed_ms"] = round((time.monotonic() - started) * 1000, 1)
    return result
