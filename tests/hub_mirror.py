"""A Hugging Face-style mirror for tests: a real HTTP server on 127.0.0.1 whose behaviour
is chosen per test (healthy, no X-Repo-Commit, API 404, large files redirected to an
unreachable host, never answering). Also serves byte ranges of files it is given."""

from __future__ import annotations

import json
import socket
import threading
import time
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer

SHA = "607a30d783dfa663caf39e06633721c8d4cfcd7e"


def closed_port() -> int:
    """A port on 127.0.0.1 where nothing listens."""
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


class Mirror:
    def __init__(self, mode: str = "healthy") -> None:
        self.mode = mode
        self.requests: list = []
        self.dead_port = closed_port()
        mirror = self

        class Handler(BaseHTTPRequestHandler):
            def log_message(self, *args):
                pass

            def do_GET(self):
                mirror.answer(self, body=True)

            def do_HEAD(self):
                mirror.answer(self, body=False)

        self.server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        self.server.daemon_threads = True
        self.url = f"http://127.0.0.1:{self.server.server_address[1]}"
        self.thread = threading.Thread(target=self.server.serve_forever, daemon=True)
        self.thread.start()

    def close(self) -> None:
        self.server.shutdown()
        self.server.server_close()

    def answer(self, handler, body: bool) -> None:
        self.requests.append((handler.command, handler.path))
        if self.mode == "hang":
            time.sleep(30)  # never answers within any test's timeout
            return
        path = handler.path
        if path.startswith("/api/models/"):
            if self.mode == "api-404":
                return self._send(handler, 404, b'{"error": "not found"}', {}, body)
            payload = json.dumps({"id": path[len("/api/models/"):], "sha": SHA}).encode()
            return self._send(handler, 200, payload, {"Content-Type": "application/json"}, body)
        if "/resolve/main/" in path:
            headers = {} if self.mode == "no-commit" else {"X-Repo-Commit": SHA}
            if path.endswith(".safetensors"):
                target = (f"http://127.0.0.1:{self.dead_port}/xet/blob" if self.mode == "unreachable-storage"
                          else f"{self.url}/storage/blob")
                headers.update({"Location": target, "X-Linked-Size": "548105171",
                                "X-Linked-Etag": '"248dfc39"', "Link": f'<{target}>; rel="xet-reconstruction-info"'})
                return self._send(handler, 302, b"", headers, body)
            headers["ETag"] = '"10c66461e4c109f55b1de0c3d1ba6e1c"'
            return self._send(handler, 200, b'{"model_type": "gpt2"}', headers, body)
        if path.startswith("/storage/"):
            return self._send(handler, 200, b"blob", {}, body)
        self._send(handler, 404, b"", {}, body)

    @staticmethod
    def _send(handler, status, payload, headers, body):
        handler.send_response(status)
        for key, value in headers.items():
            handler.send_header(key, value)
        handler.send_header("Content-Length", str(len(payload)))
        handler.end_headers()
        if body:
            handler.wfile.write(payload)
