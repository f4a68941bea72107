"""A local HTTP server that counts the requests it gets per path (for the `http` op)."""

from __future__ import annotations

import contextlib
import threading
from collections import Counter
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any
from urllib.parse import urlsplit


class CountingServer:
    """Answers every GET with `200 hit <path>` and counts requests per path."""

    def __init__(self) -> None:
        self.counts: Counter[str] = Counter()
        self.lock = threading.Lock()
        self.httpd = ThreadingHTTPServer(("127.0.0.1", 0), _handler(self))
        self.httpd.daemon_threads = True
        self.base = f"http://127.0.0.1:{self.httpd.server_address[1]}"
        self.thread = threading.Thread(target=self.httpd.serve_forever, daemon=True)

    def snapshot(self) -> Counter[str]:
        """The counts so far (a copy)."""
        with self.lock:
            return Counter(self.counts)

    def start(self) -> None:
        self.thread.start()

    def stop(self) -> None:
        self.httpd.shutdown()
        self.httpd.server_close()
        self.thread.join(timeout=5)


def _handler(server: CountingServer) -> type[BaseHTTPRequestHandler]:
    class Handler(BaseHTTPRequestHandler):
        def log_message(self, format: str, *args: Any) -> None:
            pass

        def handle_one_request(self) -> None:
            with contextlib.suppress(OSError):  # a killed client
                super().handle_one_request()

        def do_GET(self) -> None:
            path = urlsplit(self.path).path
            with server.lock:
                server.counts[path] += 1
            body = f"hit {path}".encode()
            self.send_response(200)
            self.send_header("Content-Type", "text/plain")
            self.send_header("Content-Length", str(len(body)))
            self.end_headers()
            self.wfile.write(body)

    return Handler
