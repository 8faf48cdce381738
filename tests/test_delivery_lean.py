"""bot.delivery.LeanRequest against raw HTTP answers, and which client make_bot picks.

A tiny asyncio server on 127.0.0.1 answers each request with bytes the test
chooses, so the shapes the local Bot API server never produces (chunked
bodies, ``Connection: close``, no Content-Length, a garbled status line, a 200
that is not Telegram's envelope) are covered too.
"""

from __future__ import annotations

import asyncio
import json

import pytest
from telegram.error import BadRequest, NetworkError, RetryAfter
from telegram.request import HTTPXRequest

from bot.delivery import LeanRequest, Sender, make_bot
from tests.conftest import make_config

pytestmark = pytest.mark.filterwarnings("ignore:.*retry_after.*:telegram.warnings.PTBDeprecationWarning")


class RawServer:
    """Answers the n-th request with ``answers[n]`` (bytes, sent as they are); records requests."""

    def __init__(self, answers: list[bytes]):
        self.answers = list(answers)
        self.requests: list[tuple[bytes, bytes]] = []  # (head, body)
        self.connections = 0

    async def __aenter__(self) -> RawServer:
        self.server = await asyncio.start_server(self._serve, "127.0.0.1", 0)
        self.url = f"http://127.0.0.1:{self.server.sockets[0].getsockname()[1]}/botTOKEN/sendMessage"
        return self

    async def __aexit__(self, *exc) -> None:
        self.server.close()
        await self.server.wait_closed()

    async def _serve(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        self.connections += 1
        try:
            while self.answers:
                head = await reader.readuntil(b"\r\n\r\n")
                length = next(int(line.split(b":")[1]) for line in head.lower().split(b"\r\n")
                              if line.startswith(b"content-length:"))
                self.requests.append((head, await reader.readexactly(length)))
                answer = self.answers.pop(0)
                writer.write(answer)
                await writer.drain()
                if b"connection: close" in answer.lower() or answer.startswith(b"HTTP/1.1 200 OK\r\n\r\n"):
                    break  # as it said, or the end of the connection marks the end of the body
        except (asyncio.IncompleteReadError, ConnectionError):
            pass
        finally:
            writer.close()


def response(body: bytes, status: str = "200 OK", headers: str = "") -> bytes:
    return (f"HTTP/1.1 {status}\r\nContent-Type: application/json\r\nContent-Length: {len(body)}\r\n"
            f"{headers}\r\n").encode() + body


def chunked(body: bytes) -> bytes:
    half = len(body) // 2
    parts = b"".join(b"%x\r\n%s\r\n" % (len(p), p) for p in (body[:half], body[half:]))
    return b"HTTP/1.1 200 OK\r\nTransfer-Encoding: chunked\r\n\r\n" + parts + b"0\r\n\r\n"


OK = b'{"ok":true,"result":{"message_id":41,"chat":{"id":5},"text":"x"}}'
REORDERED = b'{"result": {"text": "x", "reply_to_message": {"message_id": 3}, "message_id": 42}, "ok": true}'


@pytest.mark.parametrize("answer, message_id", [
    (response(OK), 41),
    (response(REORDERED), 42),  # not Telegram's order: decoded in full, the top-level id
    (chunked(OK), 41),
    (response(OK, headers="Connection: close\r\n"), 41),
    (b"HTTP/1.1 200 OK\r\n\r\n" + OK, 41),  # no length: the body runs to the end of the connection
])
async def test_a_sent_message_gives_its_id_whatever_the_framing(answer, message_id):
    async with RawServer([answer, response(OK)]) as server:
        request = LeanRequest(pool_size=2)
        assert await request.post_message(server.url, b'{"chat_id":5,"text":"x"}') == message_id
        assert await request.post_message(server.url, b'{"chat_id":5,"text":"y"}') == 41  # after it
        await request.shutdown()
    head, body = server.requests[0]
    assert head.startswith(b"POST /botTOKEN/sendMessage HTTP/1.1\r\n")
    assert b"content-type: application/json" in head.lower() and json.loads(body) == {"chat_id": 5, "text": "x"}
    closes = b"connection: close" in answer.lower() or answer.startswith(b"HTTP/1.1 200 OK\r\n\r\n")
    assert server.connections == (2 if closes else 1)  # kept alive unless the server closed it


@pytest.mark.parametrize("answer, error, text", [
    (response(b'{"ok":false,"error_code":429,"description":"Too Many Requests: retry after 3",'
              b'"parameters":{"retry_after":3}}', "429 Too Many Requests", "Retry-After: 3\r\n"),
     RetryAfter, "Retry in 3 seconds"),
    (response(b'{"ok":false,"error_code":400,"description":"Bad Request: message text is empty"}',
              "400 Bad Request"), BadRequest, "(?i)message text is empty"),
    (response(b"<html>proxy login</html>"), NetworkError, "unexpected answer"),  # a 200 that is not the Bot API
    (response(b'{"ok":true,"result":true}'), NetworkError, "unexpected answer"),
    (b"SPDY/9 200 OK\r\n\r\n", NetworkError, "not an HTTP response"),
])
async def test_refusals_and_strange_answers_raise_ptbs_errors(answer, error, text):
    async with RawServer([answer]) as server:
        request = LeanRequest(pool_size=1)
        with pytest.raises(error, match=text):
            await request.post_message(server.url, b'{"chat_id":5,"text":"x"}')
        await request.shutdown()


async def test_a_server_that_hangs_up_is_a_network_error():
    async with RawServer([b"HTTP/1.1 200 OK\r\nContent-Length: 500\r\n\r\n{\"ok\":"]) as server:
        request = LeanRequest(pool_size=1)
        with pytest.raises(NetworkError):
            await request.post_message(server.url, b'{"chat_id":5,"text":"x"}')
        await request.shutdown()


@pytest.mark.parametrize("row, fields", [
    ({"text": "<b>Дайджест</b> · KK", "parse_mode": "HTML", "disable_preview": 1, "reply_markup": None},
     {"parse_mode": "HTML", "link_preview_options": {"is_disabled": True}}),
    ({"text": "plain \"quoted\" \\ text", "parse_mode": None, "disable_preview": 0,
      "reply_markup": '{"inline_keyboard": [[{"text": "Ω", "callback_data": "t|x"}]]}'},
     {"reply_markup": '{"inline_keyboard": [[{"text": "Ω", "callback_data": "t|x"}]]}'}),
    ({"text": "a lone surrogate \ud800 survives", "parse_mode": "HTML", "disable_preview": 0,
      "reply_markup": None}, {"parse_mode": "HTML"}),
])
def test_a_rows_body_carries_exactly_its_fields(row, fields):
    body = Sender._body(row, -100123)
    assert json.loads(body) == {"chat_id": -100123, "text": row["text"], **fields}


def test_make_bot_uses_the_lean_client_unless_a_proxy_is_set(tmp_path, monkeypatch):
    for name in ("HTTPS_PROXY", "https_proxy", "ALL_PROXY", "all_proxy", "NO_PROXY", "no_proxy"):
        monkeypatch.delenv(name, raising=False)
    cfg = make_config(tmp_path, env={"TELEGRAM_BOT_TOKEN": "123:abc"},
                      telegram={"base_url": "https://botapi.invalid/bot"})  # never contacted
    assert isinstance(make_bot(cfg, lean=True).request, LeanRequest)
    assert isinstance(make_bot(cfg).request, HTTPXRequest)
    monkeypatch.setenv("HTTPS_PROXY", "http://proxy.invalid:3128")
    assert isinstance(make_bot(cfg, lean=True).request, HTTPXRequest)  # httpx honours the proxy
    monkeypatch.setenv("NO_PROXY", "botapi.invalid")
    assert isinstance(make_bot(cfg, lean=True).request, LeanRequest)

