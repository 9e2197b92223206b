"""A small HTTP client for probes and smoke tests: the standard library, a timeout on every
request, redirects never followed (the doctor wants to see them), proxies and CA bundles
taken from the environment the way ``requests`` takes them. Never raises: failures are
returned as data with a plain-words reason.
"""

from __future__ import annotations

import functools
import socket
import ssl
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


def request(url: str, method: str = "GET", timeout: float = 3.0, environ: Optional[dict] = None,
            max_body: int = 2_000_000, headers: Optional[dict] = None) -> Response:
    environ = environ or {}
    response = Response(url=url)
    parts = urlsplit(url)
    if parts.scheme not in ("http", "https") or not parts.hostname:
        response.error, response.error_kind = f"not an http(s) URL: {url!r}", "other"
        return response
    proxies = urllib.request.getproxies()
    if urllib.request.proxy_bypass(parts.hostname or ""):
        proxies = {}
    opener = urllib.request.build_opener(
        _NoRedirects, urllib.request.ProxyHandler(proxies),
        urllib.request.HTTPSHandler(context=ssl_context(environ)))
    started = time.monotonic()
    req = urllib.request.Request(url, method=method, headers={
        "User-Agent": USER_AGENT, "Accept-Encoding": "identity", **(headers or {})})
    try:
        with opener.open(req, timeout=timeout) as answer:
            response.status = answer.status
            response.headers = {k.lower(): v for k, v in answer.headers.items()}
            if method != "HEAD":
                response.body = answer.read(max_body)
    except urllib.error.HTTPError as exc:  # 30x, 4xx, 5xx: still an answer
        response.status = exc.code
        response.headers = {k.lower(): v for k, v in (exc.headers or {}).items()}
        try:
            response.body = exc.read(max_body) if method != "HEAD" else b""
        except Exception:  # noqa: BLE001
            pass
    except Exception as exc:  # noqa: BLE001 - every failure is data
        response.error_kind, response.error = _classify(exc)
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
