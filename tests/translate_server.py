"""A translation server on 127.0.0.1 for tests and benchmarks.

It speaks two dialects, as deep-translator uses them:

* LibreTranslate: ``POST /translate`` (``q``, ``source``, ``target``, ``api_key``
  in the query string, a form body or JSON) answering ``{"translatedText": ...}``,
  and ``GET /languages``;
* Google's mobile page: ``GET /m?sl=..&tl=..&q=..`` answering HTML with the
  translation in ``<div class="result-container">``;
* MyMemory: ``GET /get?q=..&langpair=ru-RU|en-GB`` answering JSON.

Modes (``server.mode``, switchable while running): ``ok``; ``down`` (503);
``flood`` (429); ``slow`` (answers correctly after ``server.delay`` seconds).
Every request is recorded (``server.requests``, ``server.count()``).

The "translation" is a marked-up copy of the text (:func:`fake_translation`),
so a test can tell which text was translated into which language.
"""

from __future__ import annotations

import html
import json
import threading
import time
from dataclasses import dataclass
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from urllib.parse import parse_qs, urlsplit

import pytest

MODES = ("ok", "down", "flood", "slow")
LANGUAGE_NAMES = {"en": "English", "ru": "Russian", "kk": "Kazakh"}


def fake_translation(text: str, src: str, dst: str) -> str:
    """What the server answers for ``text``: recognisable, and different from the input."""
    return f"<{src}>{dst.upper()}: {text.strip()}"


@dataclass
class Seen:
    path: str
    text: str | None
    src: str | None
    dst: str | None
    status: int


class TranslateServer:
    def __init__(self, mode: str = "ok", delay: float = 1.0, api_key: str | None = None,
                 languages: tuple[str, ...] = ("en", "ru", "kk")):
        self.mode = mode
        self.delay = delay
        self.api_key = api_key
        self.languages = languages
        self.requests: list[Seen] = []
        self._lock = threading.Lock()
        self._httpd: ThreadingHTTPServer | None = None
        self._thread: threading.Thread | None = None

    # -- lifecycle ----------------------------------------------------------

    def start(self) -> TranslateServer:
        server = self

        class Handler(BaseHTTPRequestHandler):
            protocol_version = "HTTP/1.1"

            def log_message(self, *args) -> None:  # quiet
                pass

            def do_GET(self) -> None:
                server._handle(self, "GET")

            def do_POST(self) -> None:
                server._handle(self, "POST")

        self._httpd = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        self._httpd.daemon_threads = True
        self._thread = threading.Thread(target=self._httpd.serve_forever, kwargs={"poll_interval": 0.05},
                                        name="translate-server", daemon=True)
        self._thread.start()
        return self

    def stop(self) -> None:
        if self._httpd is not None:
            self._httpd.shutdown()
            self._httpd.server_close()
            self._httpd = None

    def __enter__(self) -> TranslateServer:
        return self.start()

    def __exit__(self, *exc) -> None:
        self.stop()

    @property
    def url(self) -> str:
        assert self._httpd is not None, "server not started"
        return f"http://127.0.0.1:{self._httpd.server_address[1]}"

    # -- what happened ------------------------------------------------------

    def count(self, path: str | None = None) -> int:
        """Requests received (for one path, e.g. ``/m`` or ``/translate``)."""
        with self._lock:
            return sum(1 for r in self.requests if path is None or r.path == path)

    def texts(self) -> list[str]:
        with self._lock:
            return [r.text for r in self.requests if r.text is not None]

    def reset(self) -> None:
        with self._lock:
            self.requests.clear()

    # -- the handler ----------------------------------------------------------

    def _handle(self, h: BaseHTTPRequestHandler, method: str) -> None:
        parts = urlsplit(h.path)
        params = {k: v[-1] for k, v in parse_qs(parts.query, keep_blank_values=True).items()}
        length = int(h.headers.get("Content-Length") or 0)
        body = h.rfile.read(length) if length else b""
        if body:
            ctype = h.headers.get("Content-Type", "")
            if "json" in ctype:
                try:
                    params.update({k: str(v) for k, v in json.loads(body).items()})
                except (ValueError, AttributeError):
                    pass
            else:
                params.update({k: v[-1] for k, v in parse_qs(body.decode("utf-8", "replace")).items()})
        path = parts.path.rstrip("/") or "/"
        mode = self.mode
        if path == "/m":
            text, src, dst = params.get("q"), params.get("sl"), params.get("tl")
        elif path == "/get":  # MyMemory: langpair=ru-RU|en-GB
            text = params.get("q")
            src, _, dst = params.get("langpair", "|").partition("|")
            src, dst = src.split("-")[0] or None, dst.split("-")[0] or None
        else:
            text, src, dst = params.get("q"), params.get("source"), params.get("target")

        status, ctype, payload = self._answer(path, method, mode, text, src, dst, params)
        with self._lock:
            self.requests.append(Seen(path=path, text=text, src=src, dst=dst, status=status))
        if mode == "slow":
            time.sleep(self.delay)
        data = payload.encode("utf-8")
        try:
            h.send_response(status)
            h.send_header("Content-Type", ctype)
            h.send_header("Content-Length", str(len(data)))
            if status == 429:
                h.send_header("Retry-After", "30")
            h.end_headers()
            h.wfile.write(data)
        except OSError:  # the client gave up (deadline) before we answered
            pass

    def _answer(self, path, method, mode, text, src, dst, params) -> tuple[int, str, str]:
        if mode == "down":
            return 503, "text/plain", "service unavailable"
        if mode == "flood":
            return 429, "application/json", json.dumps({"error": "Slowdown: too many requests"})
        if path == "/languages" and method == "GET":
            langs = [{"code": c, "name": LANGUAGE_NAMES.get(c, c), "targets": [t for t in self.languages]}
                     for c in self.languages]
            return 200, "application/json", json.dumps(langs)
        if path == "/translate" and method == "POST":
            if self.api_key is not None and params.get("api_key") != self.api_key:
                return 403, "application/json", json.dumps({"error": "Invalid API key"})
            if not text or src not in self.languages or dst not in self.languages:
                return 400, "application/json", json.dumps({"error": "bad request"})
            return 200, "application/json", json.dumps({"translatedText": fake_translation(text, src, dst)},
                                                       ensure_ascii=False)
        if path == "/get" and method == "GET":
            if not text or src not in self.languages or dst not in self.languages:
                return 400, "application/json", json.dumps({"responseStatus": 400})
            answer = {"responseData": {"translatedText": fake_translation(text, src, dst), "match": 1},
                      "responseStatus": 200, "matches": []}
            return 200, "application/json", json.dumps(answer, ensure_ascii=False)
        if path == "/m" and method == "GET":
            if not text:
                return 400, "text/html", "<html><body>no text</body></html>"
            page = ("<!DOCTYPE html><html><head><meta charset='utf-8'><title>Translate</title></head><body>"
                    "<div class='header'>Translate</div>"
                    f"<div class=\"result-container\">{html.escape(fake_translation(text, src, dst))}</div>"
                    "</body></html>")
            return 200, "text/html; charset=utf-8", page
        return 404, "text/plain", "not found"


@pytest.fixture
def translate_server():
    with TranslateServer() as server:
        yield server
