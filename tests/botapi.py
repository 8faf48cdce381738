"""A local Telegram Bot API server for tests and benchmarks (127.0.0.1 only).

It answers like the real Bot API as described in ``/work/shared/TELEGRAM.md``:
the ``{"ok": ..., "result"/"error_code"/"description"/"parameters"}`` envelope,
HTTP status = ``error_code``, the real error descriptions, HTML parse-mode
checking with UTF-8 byte offsets, the 4096-character limit after entity
parsing, and flood limits answered with 429 + ``retry_after`` + ``Retry-After``.

The server is a small HTTP/1.1 server (keep-alive, form-urlencoded, JSON and
multipart bodies) on its own asyncio loop in a daemon thread, so it works with
synchronous tests and with async tests whose event loop runs a PTB
``Application`` or ``Bot``.

Usage::

    from tests.botapi import BotAPIServer, botapi_server   # the fixture too

    with BotAPIServer(token=BotAPIServer.DEFAULT_TOKEN, global_rate=30) as server:
        bot = telegram.Bot(server.token, base_url=server.base_url)   # "http://127.0.0.1:PORT/bot"
        # or ApplicationBuilder().token(server.token).base_url(server.base_url)
        server.push_message(42, "/start")               # a user writes to the bot
        server.push_callback(42, "topic:kz-unrest", message_id=1)   # a button press
        ...
        server.wait_for(lambda: server.sent(42), timeout=5)          # from a sync test
        await server.wait_for_async(lambda: server.sent(42), 5)      # from an async test
        server.sent(42)   # -> [{"message_id", "chat_id", "text", "plain", "entities",
                          #      "parse_mode", "reply_markup", "link_preview_options",
                          #      "disable_web_page_preview", "method", "date", "time", ...}]

Constructor: ``BotAPIServer(token=DEFAULT_TOKEN, *, global_rate=30.0, chat_rate=1.0,
chat_burst=3, group_per_minute=20, strict_chats=False, bot_username="newsbot_test_bot",
host="127.0.0.1", port=0)``. A rate of ``None`` (or 0) switches that limit off.
With ``strict_chats=False`` any chat id is accepted (positive: private,
``-100...``: supergroup, other negative: group); with ``True`` only chats made
known by ``add_chat``/``push_message`` exist, others answer "chat not found".

Attributes and methods (thread-safe; call them from any thread):

- ``base_url`` (``http://127.0.0.1:PORT/bot``), ``url`` (``http://127.0.0.1:PORT``),
  ``token``, ``bot_id``, ``bot_user`` (the getMe result).
- ``add_chat(chat_id, chat_type=None, title=None, first_name=None, username=None)``.
- ``push_message(chat_id, text, user_id=None, chat_type=None, first_name="A",
  username=None) -> dict`` (the queued update; ``/command`` gets a ``bot_command``
  entity). ``push_callback(chat_id, data, message_id=None, user_id=None) -> dict``
  (its ``callback_query.id`` is what ``answerCallbackQuery`` must name).
  ``push_update(dict)`` queues any raw update (``update_id`` is assigned).
- ``updates_pending()``: updates not yet confirmed by a higher offset.
- ``sent(chat_id=None)`` accepted sendMessage/sendPhoto calls in order;
  ``edits(chat_id=None)``; ``answers()`` (answerCallbackQuery calls);
  ``commands(scope_type="default", language_code="")`` (the setMyCommands list);
  ``requests(method=None)`` every request seen (method, params, status).
- ``block(chat_id)`` (403 "bot was blocked by the user"), ``unblock(chat_id)``,
  ``deactivate(chat_id)`` (403 "user is deactivated"), ``forget(chat_id)``
  (400 "chat not found"), ``migrate(chat_id, new_id)`` (400 "group chat was
  upgraded..." with ``migrate_to_chat_id``), ``set_admin(chat_id, user_id,
  status="administrator")`` (getChatMember/getChatAdministrators).
- ``set_rate(global_rate=..., chat_rate=..., chat_burst=..., group_per_minute=...)``
  changes flood limits (only the ones given); ``None``/0 switches one off.
- ``fail_next(n=1, status=None, description=None, *, retry_after=None,
  migrate_to_chat_id=None, methods=("sendMessage", "sendPhoto", "editMessageText"),
  chat_id=None, scope="chat", drop=None, delay=0.0, hold=0.0)``: the next ``n`` matching
  requests fail. ``status`` 429 (needs ``retry_after``; ``scope`` "chat" or
  "global" says what the penalty covers), 403, 400, 500... with the table's
  description by default; ``drop="before"`` closes the connection without
  processing the request (a network error), ``drop="after"`` processes and
  accepts it, then closes without answering (the ambiguous case);
  ``delay`` seconds before processing, ``hold`` seconds after processing
  (accepted, answer not yet sent: client timeouts, or a kill in that window).
- ``counters`` (a dict copy): ``requests``, ``accepted``, ``429``,
  ``429_global``, ``429_chat``, ``429_group``, ``429_injected``,
  ``early_retries`` (requests to a chat during its ``retry_after`` penalty),
  ``early_global`` (any send during a global penalty), ``4xx``, ``dropped``.
- ``wait_for(predicate, timeout=5.0)`` blocks until ``predicate()`` is truthy
  and returns its value (raises ``TimeoutError``); ``await wait_for_async(...)``
  is the same for code running on an event loop.
- ``close()``/context manager stops it.

Also importable: ``parse_html(text) -> (plain, entities)`` (raises ``ParseError``
whose ``str()`` is the description suffix after "can't parse entities: "), the
checker the server applies to ``parse_mode=HTML``.

The module also runs stand-alone (for the benchmark, in its own process)::

    python -m tests.botapi --port 0 --global-rate 30     # prints "PORT <n>" then serves
    GET /_test/stats  -> {"counters": {...}, "sent_per_chat": {chat_id: n}, "duplicates": n}
    POST /_test/rate  (JSON {"global_rate": 1000, ...}); POST /_test/reset

Not emulated: Markdown/MarkdownV2 parsing (accepted unchecked), inline mode,
webhooks (setWebhook answers true), files other than photos.
"""

from __future__ import annotations

import argparse
import asyncio
import collections
import email.parser
import email.policy
import functools
import itertools
import json
import math
import re
import struct
import sys
import threading
import time
import urllib.parse
from typing import Any, Callable

import pytest

DESCRIPTIONS = {
    400: "Bad Request",
    401: "Unauthorized",
    403: "Forbidden: bot was blocked by the user",
    404: "Not Found",
    409: "Conflict: terminated by other getUpdates request; make sure that only one bot instance is running",
    429: "Too Many Requests: retry after {retry_after}",
    500: "Internal Server Error",
    502: "Bad Gateway",
}
BLOCKED = "Forbidden: bot was blocked by the user"
DEACTIVATED = "Forbidden: user is deactivated"
CHAT_NOT_FOUND = "Bad Request: chat not found"
TOO_LONG = "Bad Request: message is too long"
CAPTION_TOO_LONG = "Bad Request: message caption is too long"
EMPTY = "Bad Request: message text is empty"
UPGRADED = "Bad Request: group chat was upgraded to a supergroup chat"
NOT_MODIFIED = ("Bad Request: message is not modified: specified new message content and reply markup "
                "are exactly the same as a current content and reply markup of the message")

SEND_METHODS = ("sendmessage", "sendphoto")
MAX_TEXT = 4096
MAX_CAPTION = 1024
ALLOWED_TAGS = {"a", "b", "strong", "i", "em", "s", "strike", "del", "u", "ins", "tg-spoiler",
                "tg-emoji", "span", "pre", "code", "blockquote"}
ENTITY_TYPES = {"b": "bold", "strong": "bold", "i": "italic", "em": "italic", "u": "underline",
                "ins": "underline", "s": "strikethrough", "strike": "strikethrough",
                "del": "strikethrough", "tg-spoiler": "spoiler", "span": "spoiler", "code": "code",
                "pre": "pre", "blockquote": "blockquote", "a": "text_link", "tg-emoji": "custom_emoji"}
_SPACE = " \t\r\n\v\0"
_SPECIAL = re.compile(rb"[<&]")
_TAG_NAME = re.compile(rb"[^ \t\r\n\v\0>]*")
_ATTR_NAME = re.compile(rb"[^ \t\r\n\v\0=>]*")
_SPACES = re.compile(rb"[ \t\r\n\v]*")
_NAME_TOKEN = re.compile(rb"[A-Za-z0-9.\-]*")
_COMMAND_RE = re.compile(r"^[a-z0-9_]{1,32}$")


class _Drop(Exception):
    """Close the connection without an answer."""


class ParseError(ValueError):
    """HTML parse-mode failure; ``str()`` is the suffix after "can't parse entities: "."""


def _u16(text: str) -> int:
    return len(text.encode("utf-16-le")) // 2


def _decode_entity(raw: bytes, i: int) -> tuple[str, int] | None:
    """Decode ``&...;`` at byte ``i``: (character, index after) or None (kept literally)."""
    end = raw.find(b";", i + 1, i + 12)
    if end < 0:
        return None
    name = raw[i + 1:end]
    named = {b"lt": "<", b"gt": ">", b"amp": "&", b"quot": '"'}
    if name in named:
        return named[name], end + 1
    try:
        if name[:2] in (b"#x", b"#X") and len(name) > 2:
            code = int(name[2:], 16)
        elif name[:1] == b"#" and name[1:].isdigit():
            code = int(name[1:])
        else:
            return None
        if code == 0 or code > 0x10FFFF or 0xD800 <= code <= 0xDFFF:
            return None
        return chr(code), end + 1
    except ValueError:
        return None


@functools.lru_cache(maxsize=256)
def _parse_html_cached(text: str) -> tuple[str, str] | ParseError:
    try:
        plain, entities = parse_html(text)
    except ParseError as exc:
        return exc
    return plain, json.dumps(entities)


def parse_html_cached(text: str) -> tuple[str, list[dict]]:
    """:func:`parse_html` with the last results remembered (one digest fanned out to many chats)."""
    result = _parse_html_cached(text)
    if isinstance(result, ParseError):
        raise ParseError(str(result))
    return result[0], json.loads(result[1])


def parse_html(text: str) -> tuple[str, list[dict]]:
    """Parse Telegram HTML the way the Bot API does; return (plain text, entities).

    Raises :class:`ParseError` with the real description suffix (byte offsets are
    UTF-8 offsets into ``text``).
    """
    raw = text.encode("utf-8", "surrogatepass") + b"\0"
    n = len(raw) - 1
    out: list[str] = []
    out_u16 = 0
    entities: list[dict] = []
    stack: list[tuple[str, str, int, int]] = []  # tag, argument, utf16 offset, begin byte
    i = 0
    literal_start = 0

    def flush(upto: int) -> None:
        nonlocal out_u16
        if upto > literal_start:
            chunk = raw[literal_start:upto].decode("utf-8", "surrogatepass")
            out.append(chunk)
            out_u16 += _u16(chunk)

    while i < n:
        special = _SPECIAL.search(raw, i, n)
        if special is None:
            break
        i = special.start()
        if raw[i] == 0x26:  # &
            decoded = _decode_entity(raw, i)
            if decoded is not None:
                flush(i)
                out.append(decoded[0])
                out_u16 += _u16(decoded[0])
                i = decoded[1]
                literal_start = i
                continue
            i += 1
            continue
        flush(i)
        begin = i
        i += 1
        if raw[i] != 0x2F:  # start tag
            i = _TAG_NAME.match(raw, i).end()
            if raw[i] == 0:
                raise ParseError(f"Unclosed start tag at byte offset {begin}")
            tag = raw[begin + 1:i].decode("utf-8", "replace").lower()
            if tag not in ALLOWED_TAGS:
                raise ParseError(f'Unsupported start tag "{tag}" at byte offset {begin}')
            argument = ""
            while raw[i] != 0x3E:
                i = _SPACES.match(raw, i).end()
                if raw[i] == 0x3E:
                    break
                if raw[i] == 0:
                    raise ParseError(f"Unclosed start tag at byte offset {begin}")
                attr_begin = i
                i = _ATTR_NAME.match(raw, i).end()
                attr = raw[attr_begin:i].decode("utf-8", "replace").lower()
                if not attr:
                    raise ParseError(f'Empty attribute name in the tag "{tag}" at byte offset {begin}')
                i = _SPACES.match(raw, i).end()
                if raw[i] != 0x3D:  # '='
                    if tag == "blockquote" and attr == "expandable" and raw[i] != 0:
                        argument = "1"
                        continue
                    if raw[i] == 0:
                        raise ParseError(f"Unclosed start tag at byte offset {begin}")
                    raise ParseError(f'Expected equal sign in declaration of an attribute of the tag "{tag}" '
                                     f"at byte offset {begin}")
                i = _SPACES.match(raw, i + 1).end()
                if raw[i] == 0:
                    raise ParseError(f'Unclosed start tag "{tag}" at byte offset {begin}')
                value_parts: list[str] = []
                if raw[i] not in (0x22, 0x27):
                    token_begin = i
                    i = _NAME_TOKEN.match(raw, i).end()
                    value = raw[token_begin:i].decode("ascii").lower()
                    if raw[i] == 0 or (chr(raw[i]) not in _SPACE and raw[i] != 0x3E):
                        raise ParseError(f"Unexpected end of name token at byte offset {token_begin}")
                else:
                    quote = raw[i]
                    i += 1
                    start = i
                    end = raw.find(quote, i)
                    stop = min(end if end >= 0 else n, raw.find(0, i) if raw.find(0, i) >= 0 else n)
                    while True:
                        amp = raw.find(b"&", i, stop)
                        if amp < 0:
                            i = stop
                            break
                        decoded = _decode_entity(raw, amp)
                        if decoded is not None and decoded[1] <= stop:
                            value_parts.append(raw[start:amp].decode("utf-8", "surrogatepass"))
                            value_parts.append(decoded[0])
                            i = start = decoded[1]
                        else:
                            i = amp + 1
                    value_parts.append(raw[start:i].decode("utf-8", "surrogatepass"))
                    if raw[i] == quote:
                        i += 1
                    value = "".join(value_parts)
                if raw[i] == 0:
                    raise ParseError(f"Unclosed start tag at byte offset {begin}")
                if tag == "a" and attr == "href":
                    argument = value
                elif tag == "code" and attr == "class" and value.startswith("language-"):
                    argument = value[9:]
                elif tag == "span" and attr == "class" and value.startswith("tg-"):
                    argument = value[3:]
                elif tag == "tg-emoji" and attr == "emoji-id":
                    argument = value
                elif tag == "blockquote" and attr == "expandable":
                    argument = "1"
            if tag == "span" and argument != "spoiler":
                raise ParseError(f'Tag "span" must have class "tg-spoiler" at byte offset {begin}')
            stack.append((tag, argument, out_u16, begin))
            i += 1
        else:  # end tag
            if not stack:
                raise ParseError(f"Unexpected end tag at byte offset {begin}")
            i = _TAG_NAME.match(raw, i + 1).end()
            end_name = raw[begin + 2:i].decode("utf-8", "replace").lower()
            i = _SPACES.match(raw, i).end()
            if raw[i] != 0x3E:
                raise ParseError(f"Unclosed end tag at byte offset {begin}")
            tag, argument, offset, _ = stack.pop()
            if end_name and end_name != tag:
                raise ParseError(f'Unmatched end tag at byte offset {begin}, expected "</{tag}>", '
                                 f'found "</{end_name}>"')
            i += 1
            length = out_u16 - offset
            if length > 0:
                entity: dict[str, Any] = {"type": ENTITY_TYPES[tag], "offset": offset, "length": length}
                if tag == "a":
                    if urllib.parse.urlsplit(argument).scheme.lower() not in ("http", "https", "tg", "ftp",
                                                                              "mailto", "tonsite"):
                        entity = {}
                    else:
                        entity["url"] = argument
                elif tag == "pre" and argument:
                    entity["language"] = argument
                elif tag == "code" and stack and stack[-1][0] == "pre" and argument:
                    entity = {}  # <pre><code class="language-x">: the language goes to the pre entity
                    stack[-1] = (stack[-1][0], argument, stack[-1][2], stack[-1][3])
                elif tag == "blockquote" and argument:
                    entity["type"] = "expandable_blockquote"
                elif tag == "tg-emoji":
                    entity["custom_emoji_id"] = argument
                if entity:
                    entities.append(entity)
        literal_start = i
    flush(n)
    if stack:
        raise ParseError(f'Can\'t find end tag corresponding to start tag "{stack[-1][0]}"')
    entities.sort(key=lambda e: (e["offset"], -e["length"]))
    return "".join(out), entities


class _Bucket:
    """Token bucket: ``rate`` per second, ``capacity`` tokens."""

    def __init__(self, rate: float, capacity: float, now: float):
        self.rate = rate
        self.capacity = capacity
        self.tokens = capacity
        self.stamp = now

    def take(self, now: float) -> float:
        """Take a token; return 0 when taken, else the seconds until one is there."""
        self.tokens = min(self.capacity, self.tokens + (now - self.stamp) * self.rate)
        self.stamp = now
        if self.tokens >= 1:
            self.tokens -= 1
            return 0.0
        return (1 - self.tokens) / self.rate


class BotAPIServer:
    """A local Bot API server; see the module docstring."""

    DEFAULT_TOKEN = "123456789:TEST-token_for-local-server"

    def __init__(self, token: str = DEFAULT_TOKEN, *, global_rate: float | None = 30.0,
                 chat_rate: float | None = 1.0, chat_burst: int = 3, group_per_minute: int | None = 20,
                 strict_chats: bool = False, bot_username: str = "newsbot_test_bot",
                 host: str = "127.0.0.1", port: int = 0):
        if host not in ("127.0.0.1", "localhost", "::1"):
            raise ValueError("the test Bot API server listens on loopback only")
        self.token = token
        self.bot_id = int(token.split(":", 1)[0]) if token.split(":", 1)[0].isdigit() else 1
        self.bot_user = {"id": self.bot_id, "is_bot": True, "first_name": "NewsBot Test",
                         "username": bot_username, "can_join_groups": True,
                         "can_read_all_group_messages": False, "supports_inline_queries": False,
                         "can_connect_to_business": False, "has_main_web_app": False}
        self.strict_chats = strict_chats
        self._host, self._want_port = host, port
        self._lock = threading.RLock()
        self._changed = threading.Condition(self._lock)
        self._rates = {"global_rate": global_rate, "chat_rate": chat_rate, "chat_burst": chat_burst,
                       "group_per_minute": group_per_minute}
        self._reset_state()
        self._loop: asyncio.AbstractEventLoop | None = None
        self._thread: threading.Thread | None = None
        self._server: asyncio.base_events.Server | None = None
        self._async_waiters: list[tuple[asyncio.AbstractEventLoop, asyncio.Event]] = []
        self.port = 0

    # -- state -----------------------------------------------------------------

    def _reset_state(self) -> None:
        self._chats: dict[int, dict] = {}
        self._state: dict[int, tuple[int, str, dict]] = {}  # chat -> (status, description, parameters)
        self._messages: dict[tuple[int, int], dict] = {}
        self._next_message_id: dict[int, int] = collections.defaultdict(int)
        self._sent: list[dict] = []
        self._edits: list[dict] = []
        self._answers: list[dict] = []
        self._requests: list[dict] = []
        self._commands: dict[tuple[str, str], list[dict]] = {}
        self._admins: dict[int, dict[int, str]] = collections.defaultdict(dict)
        self._updates: list[dict] = []
        self._update_ids = itertools.count(1)
        self._callback_ids = itertools.count(1)
        self._callbacks: dict[str, dict] = {}
        self._poll_waiter: asyncio.Future | None = None
        self._failures: list[dict] = []
        self._counters: collections.Counter = collections.Counter()
        self._global_bucket: _Bucket | None = None
        self._chat_buckets: dict[int, _Bucket] = {}
        self._group_windows: dict[int, collections.deque] = collections.defaultdict(collections.deque)
        self._global_penalty = 0.0
        self._chat_penalty: dict[int, float] = {}
        self._make_buckets()

    def _make_buckets(self) -> None:
        rate = self._rates["global_rate"]
        self._global_bucket = _Bucket(rate, max(1.0, rate), time.monotonic()) if rate else None
        self._chat_buckets = {}

    # -- lifecycle -------------------------------------------------------------

    def start(self) -> BotAPIServer:
        ready = threading.Event()
        error: list[BaseException] = []

        def run() -> None:
            loop = asyncio.new_event_loop()
            self._loop = loop
            asyncio.set_event_loop(loop)
            try:
                self._server = loop.run_until_complete(
                    asyncio.start_server(self._connection, self._host, self._want_port, backlog=1024))
                self.port = self._server.sockets[0].getsockname()[1]
            except BaseException as exc:  # noqa: BLE001 - reported to the starting thread
                error.append(exc)
                ready.set()
                return
            ready.set()
            try:
                loop.run_forever()
            finally:
                self._server.close()
                loop.run_until_complete(self._server.wait_closed())
                tasks = list(asyncio.all_tasks(loop))
                for task in tasks:
                    task.cancel()
                loop.run_until_complete(asyncio.gather(*tasks, return_exceptions=True))
                loop.close()

        self._thread = threading.Thread(target=run, name="botapi-server", daemon=True)
        self._thread.start()
        ready.wait(10)
        if error:
            raise error[0]
        return self

    def close(self) -> None:
        if self._loop is not None and self._thread is not None and self._thread.is_alive():
            self._loop.call_soon_threadsafe(self._loop.stop)
            self._thread.join(10)
        self._thread = None

    def __enter__(self) -> BotAPIServer:
        return self.start()

    def __exit__(self, *exc) -> None:
        self.close()

    @property
    def url(self) -> str:
        return f"http://{self._host}:{self.port}"

    @property
    def base_url(self) -> str:
        return f"{self.url}/bot"

    # -- the test API -------------------------------------------------------------

    @staticmethod
    def _default_type(chat_id: int) -> str:
        if chat_id > 0:
            return "private"
        return "supergroup" if str(chat_id).startswith("-100") else "group"

    def add_chat(self, chat_id: int, chat_type: str | None = None, title: str | None = None,
                 first_name: str | None = None, username: str | None = None) -> dict:
        """Make a chat known (``strict_chats``) and set how it is described."""
        chat_type = chat_type or self._default_type(chat_id)
        chat: dict[str, Any] = {"id": chat_id, "type": chat_type}
        if chat_type == "private":
            chat["first_name"] = first_name or "A"
            if username:
                chat["username"] = username
        else:
            chat["title"] = title or f"Group {chat_id}"
        with self._lock:
            self._chats[chat_id] = chat
            self._state.pop(chat_id, None)
        return chat

    def _chat(self, chat_id: int) -> dict | None:
        chat = self._chats.get(chat_id)
        if chat is None and not self.strict_chats:
            chat = self.add_chat(chat_id)
        return chat

    def _notify(self) -> None:
        self._changed.notify_all()
        for loop, event in list(self._async_waiters):
            loop.call_soon_threadsafe(event.set)

    def push_update(self, update: dict) -> dict:
        with self._lock:
            update = dict(update, update_id=next(self._update_ids))
            self._updates.append(update)
            self._notify()
        if self._loop is not None:
            self._loop.call_soon_threadsafe(self._wake_poller)
        return update

    def push_message(self, chat_id: int, text: str, user_id: int | None = None, chat_type: str | None = None,
                     first_name: str = "A", username: str | None = None) -> dict:
        """Queue a message update as if a user wrote ``text`` in ``chat_id``."""
        with self._lock:
            chat = self._chats.get(chat_id)
            if chat is None or (chat_type and chat["type"] != chat_type):
                chat = self.add_chat(chat_id, chat_type, first_name=first_name, username=username)
            user_id = user_id if user_id is not None else (chat_id if chat_id > 0 else 42)
            self._next_message_id[chat_id] += 1
            message: dict[str, Any] = {
                "message_id": self._next_message_id[chat_id],
                "from": {"id": user_id, "is_bot": False, "first_name": first_name},
                "chat": dict(chat), "date": int(time.time()), "text": text,
            }
            if username:
                message["from"]["username"] = username
            if text.startswith("/"):
                command = text.split()[0] if text.split() else text
                message["entities"] = [{"offset": 0, "length": _u16(command), "type": "bot_command"}]
            self._messages[(chat_id, message["message_id"])] = message
        return self.push_update({"message": message})

    def push_callback(self, chat_id: int, data: str, message_id: int | None = None,
                      user_id: int | None = None, first_name: str = "A") -> dict:
        """Queue a button press on the bot's message ``message_id`` (default: its last one)."""
        with self._lock:
            chat = self._chat(chat_id) or self.add_chat(chat_id)
            if message_id is None:
                mine = [m for m in self._sent if m["chat_id"] == chat_id]
                message_id = mine[-1]["message_id"] if mine else 1
            message = self._messages.get((chat_id, message_id)) or {
                "message_id": message_id, "from": dict(self.bot_user), "chat": dict(chat),
                "date": int(time.time()), "text": "..."}
            user_id = user_id if user_id is not None else (chat_id if chat_id > 0 else 42)
            query_id = str(next(self._callback_ids) * 1000003)
            query = {"id": query_id, "from": {"id": user_id, "is_bot": False, "first_name": first_name},
                     "message": message, "chat_instance": f"ci{chat_id}", "data": data}
            self._callbacks[query_id] = query
        return self.push_update({"callback_query": query})

    def updates_pending(self) -> list[dict]:
        with self._lock:
            return list(self._updates)

    def sent(self, chat_id: int | None = None) -> list[dict]:
        with self._lock:
            return [dict(m) for m in self._sent if chat_id is None or m["chat_id"] == chat_id]

    def edits(self, chat_id: int | None = None) -> list[dict]:
        with self._lock:
            return [dict(m) for m in self._edits if chat_id is None or m["chat_id"] == chat_id]

    def answers(self) -> list[dict]:
        with self._lock:
            return [dict(a) for a in self._answers]

    def commands(self, scope_type: str = "default", language_code: str = "") -> list[dict]:
        with self._lock:
            return list(self._commands.get((scope_type, language_code), []))

    def requests(self, method: str | None = None) -> list[dict]:
        with self._lock:
            return [dict(r) for r in self._requests if method is None or r["method"] == method.lower()]

    @property
    def counters(self) -> dict[str, int]:
        with self._lock:
            return dict(self._counters)

    def block(self, chat_id: int) -> None:
        with self._lock:
            self._state[chat_id] = (403, BLOCKED, {})

    def unblock(self, chat_id: int) -> None:
        with self._lock:
            self._state.pop(chat_id, None)

    def deactivate(self, chat_id: int) -> None:
        with self._lock:
            self._state[chat_id] = (403, DEACTIVATED, {})

    def forget(self, chat_id: int) -> None:
        """From now on the chat does not exist: 400 "chat not found"."""
        with self._lock:
            self._chats.pop(chat_id, None)
            self._state[chat_id] = (400, CHAT_NOT_FOUND, {})

    def migrate(self, chat_id: int, new_id: int) -> None:
        """The group ``chat_id`` became the supergroup ``new_id``."""
        with self._lock:
            old = self._chats.get(chat_id) or {}
            self.add_chat(new_id, "supergroup", title=old.get("title"))
            self._state[chat_id] = (400, UPGRADED, {"migrate_to_chat_id": new_id})

    def set_admin(self, chat_id: int, user_id: int, status: str = "administrator") -> None:
        if status not in ("creator", "administrator", "member", "restricted", "left", "kicked"):
            raise ValueError(f"unknown chat member status {status!r}")
        with self._lock:
            self._admins[chat_id][user_id] = status

    def set_rate(self, **rates: float | int | None) -> None:
        """Change flood limits: global_rate, chat_rate, chat_burst, group_per_minute."""
        unknown = set(rates) - set(self._rates)
        if unknown:
            raise ValueError(f"unknown rate setting(s): {', '.join(sorted(unknown))}")
        with self._lock:
            self._rates.update(rates)
            self._make_buckets()
            self._group_windows.clear()

    def fail_next(self, n: int = 1, status: int | None = None, description: str | None = None, *,
                  retry_after: int | None = None, migrate_to_chat_id: int | None = None,
                  methods: tuple[str, ...] = ("sendMessage", "sendPhoto", "editMessageText"),
                  chat_id: int | None = None, scope: str = "chat", drop: str | None = None,
                  delay: float = 0.0, hold: float = 0.0) -> None:
        """Make the next ``n`` matching requests fail (see the module docstring)."""
        if drop not in (None, "before", "after"):
            raise ValueError("drop must be None, 'before' or 'after'")
        if status is None and drop is None and not delay and not hold:
            raise ValueError("fail_next needs a status, a drop mode, a delay or a hold")
        if status == 429 and not retry_after:
            raise ValueError("a 429 needs retry_after (seconds)")
        if scope not in ("chat", "global"):
            raise ValueError("scope must be 'chat' or 'global'")
        parameters: dict[str, Any] = {}
        if retry_after:
            parameters["retry_after"] = int(retry_after)
        if migrate_to_chat_id:
            parameters["migrate_to_chat_id"] = migrate_to_chat_id
        if status is not None and description is None:
            description = DESCRIPTIONS.get(status, "Internal Server Error").format(retry_after=retry_after)
        with self._lock:
            self._failures.append({"n": n, "status": status, "description": description,
                                   "parameters": parameters, "methods": {m.lower() for m in methods},
                                   "chat_id": chat_id, "scope": scope, "drop": drop, "delay": delay,
                                   "hold": hold})

    def wait_for(self, predicate: Callable[[], Any], timeout: float = 5.0) -> Any:
        """Block until ``predicate()`` is truthy; return its value or raise TimeoutError."""
        deadline = time.monotonic() + timeout
        with self._changed:
            while True:
                value = predicate()
                if value:
                    return value
                left = deadline - time.monotonic()
                if left <= 0:
                    raise TimeoutError(f"condition not met within {timeout}s")
                self._changed.wait(min(left, 0.05))

    async def wait_for_async(self, predicate: Callable[[], Any], timeout: float = 5.0) -> Any:
        """``wait_for`` for code on an event loop (lets that loop keep running)."""
        loop = asyncio.get_running_loop()
        event = asyncio.Event()
        entry = (loop, event)
        with self._lock:
            self._async_waiters.append(entry)
        try:
            deadline = loop.time() + timeout
            while True:
                event.clear()
                value = predicate()
                if value:
                    return value
                left = deadline - loop.time()
                if left <= 0:
                    raise TimeoutError(f"condition not met within {timeout}s")
                try:
                    await asyncio.wait_for(event.wait(), min(left, 0.05))
                except asyncio.TimeoutError:
                    pass
        finally:
            with self._lock:
                self._async_waiters.remove(entry)

    # -- HTTP --------------------------------------------------------------------

    async def _connection(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        try:
            while True:
                try:
                    head = await reader.readuntil(b"\r\n\r\n")
                except (asyncio.IncompleteReadError, ConnectionError):
                    return
                except asyncio.LimitOverrunError:
                    await self._write(writer, 431, {"ok": False, "error_code": 431,
                                                    "description": "Request Header Fields Too Large"}, close=True)
                    return
                lines = head.decode("latin-1").split("\r\n")
                try:
                    verb, target, version = lines[0].split(" ", 2)
                except ValueError:
                    await self._write(writer, 400, {"ok": False, "error_code": 400,
                                                    "description": "Bad Request"}, close=True)
                    return
                headers: dict[str, str] = {}
                for line in lines[1:]:
                    if ":" in line:
                        k, v = line.split(":", 1)
                        headers[k.strip().lower()] = v.strip()
                if headers.get("transfer-encoding", "").lower() == "chunked":
                    body = b""
                    while True:
                        size = int((await reader.readline()).split(b";")[0].strip() or b"0", 16)
                        if size == 0:
                            await reader.readline()
                            break
                        body += await reader.readexactly(size)
                        await reader.readline()
                else:
                    body = await reader.readexactly(int(headers.get("content-length", "0") or 0))
                close = headers.get("connection", "").lower() == "close" or version == "HTTP/1.0"
                try:
                    status, payload, extra = await self._dispatch(verb, target, headers, body)
                except _Drop:
                    with self._lock:
                        self._counters["dropped"] += 1
                    writer.transport.abort()
                    return
                await self._write(writer, status, payload, close=close, extra=extra)
                if close:
                    writer.close()
                    return
        except (ConnectionError, asyncio.IncompleteReadError, asyncio.CancelledError):
            return  # the client went away, or the server is closing
        except Exception:  # noqa: BLE001 - a server bug must be visible in the test output
            import traceback

            traceback.print_exc()
            writer.transport.abort()

    @staticmethod
    async def _write(writer: asyncio.StreamWriter, status: int, payload: Any, close: bool = False,
                     extra: dict | None = None) -> None:
        body = json.dumps(payload, ensure_ascii=False).encode("utf-8")
        reason = {200: "OK", 400: "Bad Request", 401: "Unauthorized", 403: "Forbidden", 404: "Not Found",
                  409: "Conflict", 429: "Too Many Requests", 500: "Internal Server Error"}.get(status, "Error")
        head = [f"HTTP/1.1 {status} {reason}", "Content-Type: application/json",
                f"Content-Length: {len(body)}", "Connection: " + ("close" if close else "keep-alive")]
        for k, v in (extra or {}).items():
            head.append(f"{k}: {v}")
        writer.write(("\r\n".join(head) + "\r\n\r\n").encode("latin-1") + body)
        await writer.drain()

    @staticmethod
    def _params(target: str, headers: dict, body: bytes) -> dict[str, Any]:
        params: dict[str, Any] = {}
        query = urllib.parse.urlsplit(target).query
        for k, v in urllib.parse.parse_qsl(query, keep_blank_values=True):
            params[k] = v
        ctype = headers.get("content-type", "")
        if ctype.startswith("application/json") and body:
            data = json.loads(body.decode("utf-8"))
            if not isinstance(data, dict):
                raise ValueError("JSON body must be an object")
            params.update(data)
        elif ctype.startswith("application/x-www-form-urlencoded"):
            for k, v in urllib.parse.parse_qsl(body.decode("utf-8", "surrogateescape"), keep_blank_values=True):
                params[k] = v
        elif ctype.startswith("multipart/form-data"):
            msg = email.parser.BytesParser(policy=email.policy.HTTP).parsebytes(
                b"Content-Type: " + ctype.encode("latin-1") + b"\r\n\r\n" + body)
            for part in msg.iter_parts():
                name = part.get_param("name", header="content-disposition")
                data = part.get_payload(decode=True) or b""
                if part.get_filename() is not None:
                    params[name] = {"filename": part.get_filename(), "data": data}
                else:
                    params[name] = data.decode("utf-8")
        return params

    async def _dispatch(self, verb: str, target: str, headers: dict, body: bytes) -> tuple[int, Any, dict]:
        path = urllib.parse.urlsplit(target).path
        if path.startswith("/_test/"):
            return self._control(path, body)
        m = re.fullmatch(r"/bot([^/]*)/([A-Za-z]+)", path)
        if not m:
            return 404, {"ok": False, "error_code": 404, "description": "Not Found"}, {}
        token, method = m.group(1), m.group(2).lower()
        if token != self.token:
            with self._lock:
                self._counters["401"] += 1
            return 401, {"ok": False, "error_code": 401, "description": "Unauthorized"}, {}
        try:
            params = self._params(target, headers, body)
        except (ValueError, UnicodeDecodeError) as exc:
            return 400, {"ok": False, "error_code": 400, "description": f"Bad Request: {exc}"}, {}
        with self._lock:
            self._counters["requests"] += 1
            record = {"method": method, "params": {k: v for k, v in params.items() if not isinstance(v, dict)},
                      "time": time.monotonic(), "status": None}
            self._requests.append(record)
            failure = self._take_failure(method, params)
        if failure and failure["delay"]:
            await asyncio.sleep(failure["delay"])
        if failure and failure["drop"] == "before":
            raise _Drop()
        if method == "getupdates":
            status, payload = await self._get_updates(params)
            extra = {}
        elif failure and failure["status"] is not None:
            status, payload, extra = self._injected(failure, params)
        else:
            with self._lock:
                status, payload, extra = self._call(method, params)
        with self._lock:
            record["status"] = status
            if status == 200:
                pass
            elif status == 429:
                self._counters["429"] += 1
            elif 400 <= status < 500:
                self._counters["4xx"] += 1
            self._notify()
        if failure and failure["hold"]:
            await asyncio.sleep(failure["hold"])
        if failure and failure["drop"] == "after":
            raise _Drop()
        return status, payload, extra

    def _take_failure(self, method: str, params: dict) -> dict | None:
        for f in self._failures:
            if method not in f["methods"]:
                continue
            if f["chat_id"] is not None and _int(params.get("chat_id")) != f["chat_id"]:
                continue
            f["n"] -= 1
            if f["n"] <= 0:
                self._failures.remove(f)
            return f
        return None

    def _injected(self, f: dict, params: dict) -> tuple[int, Any, dict]:
        payload = {"ok": False, "error_code": f["status"], "description": f["description"]}
        if f["parameters"]:
            payload["parameters"] = dict(f["parameters"])
        extra = {}
        if f["status"] == 429:
            retry = f["parameters"]["retry_after"]
            extra["Retry-After"] = str(retry)
            with self._lock:
                self._counters["429_injected"] += 1
                until = time.monotonic() + retry
                chat_id = _int(params.get("chat_id"))
                if f["scope"] == "global" or chat_id is None:
                    self._global_penalty = max(self._global_penalty, until)
                else:
                    self._chat_penalty[chat_id] = max(self._chat_penalty.get(chat_id, 0.0), until)
        return f["status"], payload, extra

    # -- methods -------------------------------------------------------------------

    @staticmethod
    def _error(status: int, description: str, parameters: dict | None = None) -> tuple[int, Any, dict]:
        payload: dict[str, Any] = {"ok": False, "error_code": status, "description": description}
        extra = {}
        if parameters:
            payload["parameters"] = parameters
            if "retry_after" in parameters:
                extra["Retry-After"] = str(parameters["retry_after"])
        return status, payload, extra

    @staticmethod
    def _ok(result: Any) -> tuple[int, Any, dict]:
        return 200, {"ok": True, "result": result}, {}

    def _call(self, method: str, p: dict) -> tuple[int, Any, dict]:
        handler = getattr(self, f"_m_{method}", None)
        if handler is None:
            return self._error(404, "Not Found")
        try:
            return handler(p)
        except _BadRequest as exc:
            return self._error(400, f"Bad Request: {exc}")

    def _m_getme(self, p: dict):
        return self._ok(dict(self.bot_user))

    def _m_deletewebhook(self, p: dict):
        if _bool(p.get("drop_pending_updates")):
            self._updates.clear()
        return self._ok(True)

    def _m_setwebhook(self, p: dict):
        return self._ok(True)

    def _m_getwebhookinfo(self, p: dict):
        return self._ok({"url": "", "has_custom_certificate": False, "pending_update_count": len(self._updates)})

    def _m_close(self, p: dict):
        return self._ok(True)

    def _m_logout(self, p: dict):
        return self._ok(True)

    def _m_setmycommands(self, p: dict):
        commands = _json(p.get("commands"))
        if not isinstance(commands, list):
            raise _BadRequest("parameter \"commands\" is required")
        if len(commands) > 100:
            raise _BadRequest("too many commands specified")
        clean = []
        for c in commands:
            if not isinstance(c, dict) or not _COMMAND_RE.match(str(c.get("command", "")).lstrip("/")):
                raise _BadRequest("BOT_COMMAND_INVALID")
            desc = str(c.get("description", ""))
            if not 1 <= len(desc) <= 256:
                raise _BadRequest("BOT_COMMAND_DESCRIPTION_INVALID")
            clean.append({"command": str(c["command"]).lstrip("/"), "description": desc})
        self._commands[self._scope_key(p)] = clean
        return self._ok(True)

    def _m_getmycommands(self, p: dict):
        return self._ok(list(self._commands.get(self._scope_key(p), [])))

    def _m_deletemycommands(self, p: dict):
        self._commands.pop(self._scope_key(p), None)
        return self._ok(True)

    @staticmethod
    def _scope_key(p: dict) -> tuple[str, str]:
        scope = _json(p.get("scope")) or {}
        return (scope.get("type", "default") if isinstance(scope, dict) else "default",
                str(p.get("language_code") or ""))

    def _chat_check(self, chat_id: Any) -> tuple[int, dict] | tuple[int, Any, dict]:
        """(chat_id, chat) or an error triple."""
        cid = _int(chat_id)
        if cid is None:
            return self._error(400, CHAT_NOT_FOUND if chat_id else "Bad Request: chat_id is empty")
        if cid in self._state:
            status, desc, params = self._state[cid]
            return self._error(status, desc, dict(params) or None)
        chat = self._chat(cid)
        if chat is None:
            return self._error(400, CHAT_NOT_FOUND)
        return cid, chat

    def _flood(self, chat_id: int, chat_type: str) -> tuple[int, Any, dict] | None:
        now = time.monotonic()
        if self._global_penalty > now:
            self._counters["early_global"] += 1
            return self._too_many(max(1, math.ceil(self._global_penalty - now)))
        if self._chat_penalty.get(chat_id, 0.0) > now:
            self._counters["early_retries"] += 1
            return self._too_many(max(1, math.ceil(self._chat_penalty[chat_id] - now)))
        rates = self._rates
        if self._global_bucket is not None:
            wait = self._global_bucket.take(now)
            if wait:
                retry = max(1, math.ceil(wait))
                self._global_penalty = now + retry
                self._counters["429_global"] += 1
                return self._too_many(retry)
        if rates["chat_rate"]:
            bucket = self._chat_buckets.get(chat_id)
            if bucket is None:
                bucket = self._chat_buckets[chat_id] = _Bucket(rates["chat_rate"],
                                                                max(1, rates["chat_burst"] or 1), now)
            wait = bucket.take(now)
            if wait:
                self._refund_global()
                retry = max(1, math.ceil(wait))
                self._chat_penalty[chat_id] = now + retry
                self._counters["429_chat"] += 1
                return self._too_many(retry)
        if rates["group_per_minute"] and chat_type in ("group", "supergroup"):
            window = self._group_windows[chat_id]
            while window and window[0] <= now - 60:
                window.popleft()
            if len(window) >= rates["group_per_minute"]:
                self._refund_global()
                if chat_id in self._chat_buckets:
                    self._chat_buckets[chat_id].tokens += 1
                retry = max(1, math.ceil(60 - (now - window[0])))
                self._chat_penalty[chat_id] = now + retry
                self._counters["429_group"] += 1
                return self._too_many(retry)
            window.append(now)
        return None

    def _refund_global(self) -> None:
        if self._global_bucket is not None:
            self._global_bucket.tokens = min(self._global_bucket.capacity, self._global_bucket.tokens + 1)

    def _too_many(self, retry: int) -> tuple[int, Any, dict]:
        return self._error(429, f"Too Many Requests: retry after {retry}", {"retry_after": retry})

    def _parse_text(self, text: str, parse_mode: Any, limit: int, too_long: str,
                    allow_empty: bool = False) -> tuple[str, list[dict]] | tuple[int, Any, dict]:
        mode = (parse_mode or "").lower() if isinstance(parse_mode, str) else ""
        if mode == "html":
            try:
                plain, entities = parse_html_cached(text)
            except ParseError as exc:
                return self._error(400, f"Bad Request: can't parse entities: {exc}")
        elif mode in ("", "markdown", "markdownv2"):
            plain, entities = text, []
        else:
            return self._error(400, "Bad Request: unsupported parse_mode")
        if not plain.strip() and not allow_empty:
            return self._error(400, EMPTY)
        if len(plain) > limit:
            return self._error(400, too_long)
        return plain, entities

    def _new_message(self, chat_id: int, chat: dict, fields: dict) -> dict:
        self._next_message_id[chat_id] += 1
        message = {"message_id": self._next_message_id[chat_id], "from": dict(self.bot_user),
                   "chat": dict(chat), "date": int(time.time()), **fields}
        self._messages[(chat_id, message["message_id"])] = message
        return message

    def _m_sendmessage(self, p: dict):
        checked = self._chat_check(p.get("chat_id"))
        if len(checked) == 3:
            return checked
        chat_id, chat = checked
        text = p.get("text")
        if text is None or text == "":
            return self._error(400, EMPTY)
        parsed = self._parse_text(str(text), p.get("parse_mode"), MAX_TEXT, TOO_LONG)
        if len(parsed) == 3:
            return parsed
        plain, entities = parsed
        markup = _json(p.get("reply_markup"))
        if markup is not None and not _valid_markup(markup):
            return self._error(400, "Bad Request: can't parse reply keyboard markup JSON object")
        flood = self._flood(chat_id, chat["type"])
        if flood:
            return flood
        fields: dict[str, Any] = {"text": plain}
        if entities:
            fields["entities"] = entities
        if markup and "inline_keyboard" in markup:
            fields["reply_markup"] = markup
        preview = _json(p.get("link_preview_options"))
        if preview:
            fields["link_preview_options"] = preview
        message = self._new_message(chat_id, chat, fields)
        self._record_sent("sendMessage", chat_id, message, p, text=str(text), plain=plain, entities=entities,
                          reply_markup=markup, link_preview_options=preview)
        return self._ok(message)

    def _record_sent(self, method: str, chat_id: int, message: dict, p: dict, **fields: Any) -> None:
        self._counters["accepted"] += 1
        self._sent.append({"method": method, "chat_id": chat_id, "message_id": message["message_id"],
                           "parse_mode": p.get("parse_mode"), "date": message["date"], "time": time.monotonic(),
                           "disable_web_page_preview": _bool(p.get("disable_web_page_preview")),
                           "disable_notification": _bool(p.get("disable_notification")), **fields})

    def _m_sendphoto(self, p: dict):
        checked = self._chat_check(p.get("chat_id"))
        if len(checked) == 3:
            return checked
        chat_id, chat = checked
        photo = p.get("photo")
        if isinstance(photo, dict):
            data = photo["data"]
            if not data:
                return self._error(400, "Bad Request: file must be non-empty")
            width, height = _png_size(data)
        elif isinstance(photo, str) and photo:
            data, (width, height) = b"", (1, 1)
        else:
            return self._error(400, "Bad Request: there is no photo in the request")
        caption = p.get("caption")
        plain, entities = "", []
        if caption:
            parsed = self._parse_text(str(caption), p.get("parse_mode"), MAX_CAPTION, CAPTION_TOO_LONG,
                                      allow_empty=True)
            if len(parsed) == 3:
                return parsed
            plain, entities = parsed
        markup = _json(p.get("reply_markup"))
        flood = self._flood(chat_id, chat["type"])
        if flood:
            return flood
        uid = f"photo{len(self._sent) + 1}"
        fields: dict[str, Any] = {"photo": [{"file_id": uid, "file_unique_id": uid, "width": width,
                                             "height": height, "file_size": len(data)}]}
        if plain:
            fields["caption"] = plain
        if entities:
            fields["caption_entities"] = entities
        if markup and "inline_keyboard" in markup:
            fields["reply_markup"] = markup
        message = self._new_message(chat_id, chat, fields)
        self._record_sent("sendPhoto", chat_id, message, p, text=None, caption=caption, plain=plain,
                          entities=entities, reply_markup=markup, photo_bytes=data,
                          link_preview_options=None)
        return self._ok(message)

    def _m_editmessagetext(self, p: dict):
        if p.get("inline_message_id"):
            return self._ok(True)
        checked = self._chat_check(p.get("chat_id"))
        if len(checked) == 3:
            return checked
        chat_id, chat = checked
        message = self._messages.get((chat_id, _int(p.get("message_id")) or 0))
        if message is None or message.get("from", {}).get("id") != self.bot_id:
            return self._error(400, "Bad Request: message to edit not found")
        text = p.get("text")
        if not text:
            return self._error(400, EMPTY)
        parsed = self._parse_text(str(text), p.get("parse_mode"), MAX_TEXT, TOO_LONG)
        if len(parsed) == 3:
            return parsed
        plain, entities = parsed
        markup = _json(p.get("reply_markup"))
        if (plain == message.get("text") and entities == message.get("entities", [])
                and markup == message.get("reply_markup")):
            return self._error(400, NOT_MODIFIED)
        message["text"] = plain
        message["edit_date"] = int(time.time())
        message.pop("entities", None)
        message.pop("reply_markup", None)
        if entities:
            message["entities"] = entities
        if markup and "inline_keyboard" in markup:
            message["reply_markup"] = markup
        self._edits.append({"chat_id": chat_id, "message_id": message["message_id"], "text": str(text),
                            "plain": plain, "entities": entities, "parse_mode": p.get("parse_mode"),
                            "reply_markup": markup, "time": time.monotonic()})
        return self._ok(dict(message))

    def _m_answercallbackquery(self, p: dict):
        query_id = str(p.get("callback_query_id") or "")
        if query_id not in self._callbacks:
            raise _BadRequest("query is too old and response timeout expired or query ID is invalid")
        text = p.get("text")
        if text is not None and len(str(text)) > 200:
            raise _BadRequest("MESSAGE_TOO_LONG")
        self._answers.append({"callback_query_id": query_id, "text": text,
                              "show_alert": _bool(p.get("show_alert")), "data": self._callbacks[query_id]["data"]})
        return self._ok(True)

    def _member(self, chat_id: int, user_id: int) -> dict:
        status = self._admins.get(chat_id, {}).get(user_id, "member")
        member: dict[str, Any] = {"status": status, "user": {"id": user_id, "is_bot": user_id == self.bot_id,
                                                             "first_name": "A"}}
        if status == "administrator":
            member.update({"can_be_edited": False, "is_anonymous": False, "can_manage_chat": True,
                           "can_delete_messages": True, "can_manage_video_chats": True,
                           "can_restrict_members": True, "can_promote_members": False,
                           "can_change_info": True, "can_invite_users": True, "can_post_stories": False,
                           "can_edit_stories": False, "can_delete_stories": False})
        elif status == "creator":
            member["is_anonymous"] = False
        elif status == "restricted":
            member.update({"is_member": True, "until_date": 0, **{k: True for k in (
                "can_send_messages", "can_send_audios", "can_send_documents", "can_send_photos",
                "can_send_videos", "can_send_video_notes", "can_send_voice_notes", "can_send_polls",
                "can_send_other_messages", "can_add_web_page_previews", "can_change_info",
                "can_invite_users", "can_pin_messages", "can_manage_topics")}})
        elif status == "kicked":
            member["until_date"] = 0
        return member

    def _m_getchatmember(self, p: dict):
        checked = self._chat_check(p.get("chat_id"))
        if len(checked) == 3:
            return checked
        chat_id, chat = checked
        user_id = _int(p.get("user_id"))
        if user_id is None:
            raise _BadRequest("user not found")
        if chat["type"] == "private" and user_id == chat_id:
            return self._ok({"status": "member", "user": {"id": user_id, "is_bot": False, "first_name": "A"}})
        return self._ok(self._member(chat_id, user_id))

    def _m_getchatadministrators(self, p: dict):
        checked = self._chat_check(p.get("chat_id"))
        if len(checked) == 3:
            return checked
        chat_id, chat = checked
        if chat["type"] == "private":
            raise _BadRequest("there are no administrators in the private chat")
        return self._ok([self._member(chat_id, uid) for uid, status in self._admins.get(chat_id, {}).items()
                         if status in ("creator", "administrator")])

    def _m_getchat(self, p: dict):
        checked = self._chat_check(p.get("chat_id"))
        if len(checked) == 3:
            return checked
        _, chat = checked
        return self._ok({**chat, "accent_color_id": 0, "max_reaction_count": 11,
                         "accepted_gift_types": {"unlimited_gifts": False, "limited_gifts": False,
                                                 "unique_gifts": False, "premium_subscription": False}})

    async def _get_updates(self, p: dict) -> tuple[int, Any]:
        try:
            offset = int(p.get("offset") or 0)
            limit = int(p.get("limit") or 100)
            timeout = float(p.get("timeout") or 0)
        except (TypeError, ValueError):
            return 400, {"ok": False, "error_code": 400, "description": "Bad Request: wrong parameter value"}
        limit = max(1, min(100, limit))
        timeout = max(0.0, min(50.0, timeout))
        loop = asyncio.get_running_loop()
        with self._lock:
            if self._poll_waiter is not None and not self._poll_waiter.done():
                self._poll_waiter.set_result("conflict")
            self._confirm(offset)
            batch = self._batch(offset, limit)
            if batch or timeout == 0:
                return 200, {"ok": True, "result": batch}
            waiter = self._poll_waiter = loop.create_future()
        try:
            outcome = await asyncio.wait_for(asyncio.shield(waiter), timeout)
        except asyncio.TimeoutError:
            outcome = "timeout"
        with self._lock:
            if self._poll_waiter is waiter:
                self._poll_waiter = None
            if outcome == "conflict":
                self._counters["409"] += 1
                return 409, {"ok": False, "error_code": 409, "description": DESCRIPTIONS[409]}
            return 200, {"ok": True, "result": self._batch(offset, limit)}

    def _confirm(self, offset: int) -> None:
        if offset > 0:
            self._updates = [u for u in self._updates if u["update_id"] >= offset]
        elif offset < 0:
            self._updates = self._updates[offset:]

    def _batch(self, offset: int, limit: int) -> list[dict]:
        if offset < 0:
            return json.loads(json.dumps(self._updates[offset:][:limit]))
        return json.loads(json.dumps([u for u in self._updates if u["update_id"] >= offset][:limit]))

    def _wake_poller(self) -> None:
        with self._lock:
            if self._poll_waiter is not None and not self._poll_waiter.done():
                self._poll_waiter.set_result("update")

    # -- control endpoints (for a server in another process) --------------------

    def _control(self, path: str, body: bytes) -> tuple[int, Any, dict]:
        with self._lock:
            if path == "/_test/stats":
                per_chat = collections.Counter(m["chat_id"] for m in self._sent)
                keys = collections.Counter((m["chat_id"], m.get("text")) for m in self._sent)
                return self._ok({"counters": dict(self._counters),
                                 "sent_per_chat": {str(k): v for k, v in per_chat.items()},
                                 "duplicates": sum(v - 1 for v in keys.values() if v > 1)})
            if path == "/_test/rate":
                rates = json.loads(body or b"{}")
            elif path == "/_test/reset":
                rates = None
            else:
                return 404, {"ok": False, "error_code": 404, "description": "Not Found"}, {}
        if rates is None:
            with self._lock:
                self._reset_state()
        else:
            self.set_rate(**rates)
        return self._ok(True)


class _BadRequest(Exception):
    pass


def _int(value: Any) -> int | None:
    if isinstance(value, bool):
        return None
    if isinstance(value, int):
        return value
    try:
        return int(str(value))
    except (TypeError, ValueError):
        return None


def _bool(value: Any) -> bool:
    return value is True or str(value).lower() in ("true", "1")


def _json(value: Any) -> Any:
    if value is None or isinstance(value, (dict, list)):
        return value
    try:
        return json.loads(value)
    except (TypeError, ValueError):
        return value


def _valid_markup(markup: Any) -> bool:
    if not isinstance(markup, dict):
        return False
    rows = markup.get("inline_keyboard")
    if rows is None:
        return True
    if not isinstance(rows, list):
        return False
    for row in rows:
        if not isinstance(row, list):
            return False
        for button in row:
            if not isinstance(button, dict) or not button.get("text"):
                return False
            data = button.get("callback_data")
            if data is not None and not 1 <= len(str(data).encode("utf-8")) <= 64:
                return False
    return True


def _png_size(data: bytes) -> tuple[int, int]:
    if data[:8] == b"\x89PNG\r\n\x1a\n" and len(data) >= 24:
        return struct.unpack(">II", data[16:24])
    return 1, 1


@pytest.fixture
def botapi_server():
    """A started :class:`BotAPIServer` with default limits; closed after the test."""
    with BotAPIServer() as server:
        yield server


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(description="Local Telegram Bot API test server (127.0.0.1).")
    parser.add_argument("--port", type=int, default=0)
    parser.add_argument("--token", default=BotAPIServer.DEFAULT_TOKEN)
    parser.add_argument("--global-rate", type=float, default=30.0)
    parser.add_argument("--chat-rate", type=float, default=1.0)
    parser.add_argument("--group-per-minute", type=int, default=20)
    args = parser.parse_args(argv)
    server = BotAPIServer(args.token, global_rate=args.global_rate or None, chat_rate=args.chat_rate or None,
                          group_per_minute=args.group_per_minute or None, port=args.port).start()
    print(f"PORT {server.port}", flush=True)
    try:
        sys.stdin.read()  # serve until stdin closes
    except KeyboardInterrupt:
        pass
    server.close()


if __name__ == "__main__":
    main()
