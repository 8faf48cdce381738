"""A local feed server on 127.0.0.1 with configurable, misbehaving routes.

``FeedServer`` runs a stdlib ``ThreadingHTTPServer`` (HTTP/1.1, keep-alive) in
a daemon thread. Each path maps to a :class:`Route` describing what to send:
status, headers, body, a delay before answering, a slow drip of the body,
ETag / Last-Modified validators with 304 handling, a redirect, gzip. Every
request is recorded (path and headers) so tests can check what was sent.

Used as a pytest fixture (``feed_server`` in the tests) and, in a child
process, by ``bench/poll.py``.
"""

from __future__ import annotations

import gzip
import socket
import threading
import time
from dataclasses import dataclass, field
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path

import pytest

SAMPLES = Path(__file__).parent / "data" / "feeds"


@dataclass
class Route:
    status: int = 200
    body: bytes = b""
    headers: dict[str, str] = field(default_factory=dict)
    content_type: str | None = "application/rss+xml; charset=utf-8"
    delay: float = 0.0  # seconds before the status line
    drip: float = 0.0  # seconds between body chunks (slow drip)
    drip_size: int = 16  # bytes per drip chunk
    etag: str | None = None  # send it, and answer 304 to a matching If-None-Match
    last_modified: str | None = None  # same with If-Modified-Since (exact match)
    location: str | None = None  # Location header (with a 3xx status)
    gzip: bool = False  # gzip the body and say Content-Encoding: gzip
    raw_encoding: str | None = None  # send body as-is with this Content-Encoding
    content_length: bool = True  # send Content-Length (else close-delimited)


@dataclass
class Request:
    path: str
    headers: dict[str, str]


class FeedServer:
    """``with FeedServer() as srv: srv.route("/a.xml", Route(body=...)); srv.url("/a.xml")``."""

    def __init__(self, host: str = "127.0.0.1") -> None:
        self.host = host
        self.routes: dict[str, Route] = {}
        self.requests: list[Request] = []
        self.in_flight = 0
        self.max_in_flight = 0  # most requests being answered at once
        self._lock = threading.Lock()
        server = self

        class Handler(BaseHTTPRequestHandler):
            protocol_version = "HTTP/1.1"
            disable_nagle_algorithm = True  # no 40 ms delayed-ACK stalls between header and body writes

            def log_message(self, *args) -> None:  # quiet
                pass

            def do_GET(self) -> None:  # noqa: N802
                path = self.path.split("?", 1)[0]
                with server._lock:
                    server.requests.append(Request(self.path, {k.lower(): v for k, v in self.headers.items()}))
                    route = server.routes.get(path)
                    server.in_flight += 1
                    server.max_in_flight = max(server.max_in_flight, server.in_flight)
                try:
                    server._answer(self, route)
                except (BrokenPipeError, ConnectionResetError, socket.timeout):
                    self.close_connection = True
                finally:
                    with server._lock:
                        server.in_flight -= 1

        class Server(ThreadingHTTPServer):
            daemon_threads = True
            allow_reuse_address = True
            request_queue_size = 1024

        self._httpd = Server((host, 0), Handler)
        self.port = self._httpd.server_address[1]
        self._thread: threading.Thread | None = None

    # -- set-up -------------------------------------------------------------

    def route(self, path: str, route: Route | None = None, **kw) -> str:
        """Serve ``route`` (or ``Route(**kw)``) at ``path``; return its full URL."""
        with self._lock:
            self.routes[path] = route or Route(**kw)
        return self.url(path)

    def url(self, path: str) -> str:
        return f"http://{self.host}:{self.port}{path}"

    def requests_to(self, path: str) -> list[Request]:
        with self._lock:
            return [r for r in self.requests if r.path.split("?", 1)[0] == path]

    def start(self) -> FeedServer:
        self._thread = threading.Thread(target=self._httpd.serve_forever, kwargs={"poll_interval": 0.05},
                                        daemon=True, name="feedserver")
        self._thread.start()
        return self

    def reset_stats(self) -> None:
        with self._lock:
            self.requests.clear()
            self.max_in_flight = 0

    def stop(self) -> None:
        self._httpd.shutdown()
        self._httpd.server_close()

    def __enter__(self) -> FeedServer:
        return self.start()

    def __exit__(self, *exc) -> None:
        self.stop()

    # -- answering ----------------------------------------------------------

    def _answer(self, h: BaseHTTPRequestHandler, route: Route | None) -> None:
        if route is None:
            body = b"not found"
            h.send_response(404)
            h.send_header("Content-Type", "text/plain")
            h.send_header("Content-Length", str(len(body)))
            h.end_headers()
            h.wfile.write(body)
            return
        if route.delay:
            time.sleep(route.delay)
        validators_match = (
            (route.etag is not None and h.headers.get("If-None-Match") == route.etag)
            or (route.etag is None and route.last_modified is not None
                and h.headers.get("If-Modified-Since") == route.last_modified)
        )
        if validators_match and route.status == 200:
            h.send_response(304)
            if route.etag:
                h.send_header("ETag", route.etag)
            if route.last_modified:
                h.send_header("Last-Modified", route.last_modified)
            h.send_header("Content-Length", "0")
            h.end_headers()
            return
        body = route.body
        h.send_response(route.status)
        if route.content_type:
            h.send_header("Content-Type", route.content_type)
        if route.etag:
            h.send_header("ETag", route.etag)
        if route.last_modified:
            h.send_header("Last-Modified", route.last_modified)
        if route.location:
            h.send_header("Location", route.location)
        if route.gzip:
            body = gzip.compress(body)
            h.send_header("Content-Encoding", "gzip")
        elif route.raw_encoding:
            h.send_header("Content-Encoding", route.raw_encoding)
        for k, v in route.headers.items():
            h.send_header(k, v)
        if route.content_length:
            h.send_header("Content-Length", str(len(body)))
        else:
            h.send_header("Connection", "close")
            h.close_connection = True
        h.end_headers()
        if not route.drip:
            h.wfile.write(body)
            return
        for i in range(0, len(body), route.drip_size):
            h.wfile.write(body[i:i + route.drip_size])
            h.wfile.flush()
            time.sleep(route.drip)


@pytest.fixture
def feed_server():
    """A running :class:`FeedServer`, stopped after the test."""
    with FeedServer() as srv:
        yield srv


def read_sample(name: str) -> bytes:
    """A sample feed from tests/data/feeds as bytes."""
    return (SAMPLES / name).read_bytes()
