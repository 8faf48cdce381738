"""Outbox delivery: rate limits, retries and Telegram's errors, exactly once as far as it can be.

A message is written to the ``outbox`` table before it is sent
(:meth:`bot.store.Store.enqueue`, idempotent by ``dedup_key``); the
:class:`Sender` reads due rows and sends them with python-telegram-bot's
``Bot`` (not ``Application``, so the service and the CLI use it alike)::

    bot = make_bot(cfg)                      # or telegram.Bot(token, base_url=...)
    async with bot:
        sender = Sender(bot, store, cfg.delivery)
        report = await sender.run_once()     # everything due now, until idle
        # or: await sender.run_forever(stop_event); sender.wake() after enqueueing

``Sender(..., clock=...)`` takes the wall clock (a callable returning an aware
UTC ``datetime``, default the real one): it decides which rows are due
(``not_before`` holds for quiet hours, retry times) and stamps claims and
sends, so a simulated clock (``bot.service.Service(clock=...)``, bench.soak)
drives it. Pacing uses ``time.monotonic`` (``monotonic=``).

The state of a row: ``pending`` -> ``sending`` (committed before the HTTP
call; rows started together share one commit) -> ``sent`` (committed right
after Telegram's answer, with its ``message_id``; answers parsed in the same
event-loop step share one commit at the end of that step), or back to ``pending`` with a ``next_attempt_at`` (a retry),
or ``failed`` with the ``error`` (never retried).

Pacing (token buckets, our own scheduling): at most ``global_per_second``
messages per second overall, one request in flight per chat (so a chat's
messages arrive in order), at least ``1 / chat_per_second`` seconds between the
end of one message to a chat and the start of the next, and at most
``group_per_minute`` per rolling minute to a group (negative chat id). Up to
``max_in_flight`` requests run at once, to different chats, so one slow chat
never holds up the others.

Telegram's answers:

- ``RetryAfter`` (429): the chat waits ``retry_after``; when two or more chats
  are told to wait at the same time the flood is global and every chat waits.
  A 429 is not counted as an attempt: the message is sent when Telegram allows.
- ``Forbidden`` (403: blocked, deactivated, kicked) and ``BadRequest`` "chat not
  found": the subscriber is paused (``subscribers.paused`` holds the reason) and
  the chat's pending messages are failed; messages queued for a paused chat
  later are failed as they come up.
- ``ChatMigrated``: the subscriber, its topics, watch words, alert records and
  unsent messages move to the new chat id, and the message is sent there.
- Any other ``BadRequest`` (bad HTML, too long, empty): a permanent failure of
  that message, logged at ERROR; the chat's next messages go on.
- ``TimedOut``/``NetworkError``/5xx: retried with exponential backoff
  (``backoff_base_seconds * 2**(n-1)``, jittered, capped) up to
  ``max_attempts`` attempts, then failed.
- ``InvalidToken``: nothing can be sent; rows stay pending, ``run_once`` raises
  :class:`DeliveryError`, ``run_forever`` logs and retries each minute.

Crash safety. After a crash or ``kill -9`` the next sender resumes the outbox:
pending rows are sent, sent rows are not. Rows left ``sending`` by a sender
that is no longer running (its process is gone, or the claim is older than
``stale_sending_seconds``) are resent. **The one window where a duplicate is
unavoidable**: Telegram accepted the message but the process died (or the
connection broke, or the answer timed out) before ``sent`` was committed. The
Bot API has no idempotency key and no way to ask whether a message arrived, so
we resend (at least once) rather than risk losing it. The window is as small
as it can be: ``sent`` is committed as soon as the answer is parsed, in the
same event-loop step, with no I/O awaited in between, so it lasts one response
transit plus one SQLite commit (about a millisecond locally) per message in flight; a
crash can therefore repeat at most the messages that were in flight at that
instant (at most ``max_in_flight``, one per chat, and in practice zero or one).
"""

from __future__ import annotations

import asyncio
import collections
import heapq
import itertools
import json
import logging
import os
import random
import re
import socket
import time
import warnings
from dataclasses import dataclass, field
from datetime import datetime, timedelta
from typing import Any, Callable
from urllib.parse import urlsplit

import telegram
from telegram.error import (BadRequest, ChatMigrated, EndPointNotFound, Forbidden, InvalidToken, NetworkError,
                            RetryAfter, TelegramError, TimedOut)
from telegram._utils.defaultvalue import DefaultValue
from telegram.request import BaseRequest, HTTPXRequest, RequestData
from telegram.warnings import PTBDeprecationWarning, PTBUserWarning

from .config import Config, DeliveryConfig
from .errors import NewsBotError
from .models import utcnow
from .store import Store

log = logging.getLogger(__name__)

REFILL_SECONDS = 1.0  # how often the outbox table is read for new rows while busy
MAX_LOADED = 2000  # rows held in memory at once (the rest wait in SQLite)
PER_CHAT_LOADED = 20  # of them, at most this many for one chat (a backlog never crowds out other chats)
_LIVE_RUNS: set[str] = set()  # claim owners of senders running in this process
_HOST = socket.gethostname()
_RUN_IDS = itertools.count(1)


class DeliveryError(NewsBotError):
    """delivery: nothing can be sent (the token is refused)."""


@dataclass
class DeliveryReport:
    """What one run did (counts of outbox rows)."""

    sent: int = 0
    failed: int = 0
    retried: int = 0  # network errors that will be tried again
    flood_waits: int = 0  # 429s received
    paused: list[int] = field(default_factory=list)  # chats paused (blocked, gone)
    migrated: dict[int, int] = field(default_factory=dict)  # old chat id -> new
    resumed: int = 0  # rows left 'sending' by a dead sender, resent


def make_bot(cfg: Config, connection_pool_size: int | None = None, lean: bool = False) -> telegram.Bot:
    """A PTB ``Bot`` for ``[telegram] base_url`` and ``TELEGRAM_BOT_TOKEN`` (not yet initialised).

    ``lean=True`` uses :class:`LeanRequest` (several times less CPU per call than
    httpx; for bulk sending) instead of PTB's default httpx client, unless the
    environment names a proxy for the Bot API's host (``HTTPS_PROXY``,
    ``ALL_PROXY``..., not bypassed by ``NO_PROXY``): LeanRequest connects
    directly, httpx honours those variables.
    """
    if not cfg.telegram.token:
        raise DeliveryError("delivery: TELEGRAM_BOT_TOKEN is not set")
    pool = connection_pool_size or max(8, cfg.delivery.max_in_flight + 4)
    if lean and _env_proxy_for(cfg.telegram.base_url):
        log.info("delivery: a proxy is set in the environment for the Bot API; sending through httpx, which uses it")
        lean = False
    if lean:
        request: BaseRequest = LeanRequest(pool_size=pool)
    else:
        request = HTTPXRequest(connection_pool_size=pool, read_timeout=15.0, write_timeout=15.0,
                               connect_timeout=10.0, pool_timeout=10.0)
    return telegram.Bot(cfg.telegram.token, base_url=cfg.telegram.base_url, request=request)


# LeanRequest's answer parsing: Telegram's success envelope up to the message id, and the
# status line and the three header fields it needs
_MESSAGE_ID = re.compile(rb'\{\s*"ok"\s*:\s*true\s*,\s*"result"\s*:\s*\{\s*"message_id"\s*:\s*(\d+)\s*[,}]')
_STATUS_LINE = re.compile(rb"HTTP/1\.([01]) (\d{3})")
_CONTENT_LENGTH = re.compile(rb"\r\ncontent-length:[ \t]*(\d+)[ \t]*\r\n")
_CHUNKED = re.compile(rb"\r\ntransfer-encoding:[^\r\n]*chunked")
_CONNECTION_CLOSE = re.compile(rb"\r\nconnection:[^\r\n]*close")


class _JSONBody:
    """The two fields of PTB's ``RequestData`` that :class:`LeanRequest` reads, for a ready JSON body."""

    __slots__ = ("json_payload",)
    contains_files = False

    def __init__(self, body: bytes):
        self.json_payload = body


def _env_proxy_for(url: str) -> bool:
    """Whether the environment's proxy variables apply to ``url`` (as httpx reads them)."""
    import urllib.request

    parts = urlsplit(url)
    proxies = urllib.request.getproxies_environment()
    if not (proxies.get(parts.scheme) or proxies.get("all")):
        return False
    return not urllib.request.proxy_bypass_environment(parts.hostname or "", proxies)


class LeanRequest(BaseRequest):
    """A small HTTP/1.1 keep-alive client on asyncio streams for PTB's ``Bot``.

    httpx costs about 2 ms of CPU per Bot API call on a small machine, which caps a
    single-process sender near 300 messages/s; this client POSTs the same
    parameters as a JSON body (which the Bot API accepts) for a fraction of that. It speaks http and https
    (certificate-checked), keeps up to ``pool_size`` connections, answers
    timeouts with PTB's ``TimedOut`` and broken connections with
    ``NetworkError``. Uploads (multipart) are passed to an ``HTTPXRequest``.
    It connects directly (no proxy support; :func:`make_bot` picks httpx when the
    environment names a proxy). :meth:`post_message` posts a ready JSON body
    (the outbox sender's path).
    """

    def __init__(self, pool_size: int = 32, connect_timeout: float = 10.0, read_timeout: float = 15.0,
                 write_timeout: float = 15.0, pool_timeout: float = 10.0):
        self.pool_size = pool_size
        self._timeouts = {"connect": connect_timeout, "read": read_timeout, "write": write_timeout,
                          "pool": pool_timeout}
        self._idle: dict[tuple[str, str, int], list[tuple[asyncio.StreamReader, asyncio.StreamWriter]]] = {}
        self._slots: asyncio.Semaphore | None = None
        self._fallback = HTTPXRequest(connection_pool_size=4, read_timeout=read_timeout,
                                      write_timeout=write_timeout, connect_timeout=connect_timeout,
                                      pool_timeout=pool_timeout)
        self._ssl = None
        self._routes: dict[tuple[str, str], tuple[tuple[str, str, int], bytes]] = {}

    @property
    def read_timeout(self) -> float | None:
        return self._timeouts["read"]

    async def initialize(self) -> None:
        await self._fallback.initialize()

    async def shutdown(self) -> None:
        for conns in self._idle.values():
            for _, writer in conns:
                writer.close()
        self._idle.clear()
        await self._fallback.shutdown()

    def _timeout(self, value: Any, name: str) -> float | None:
        return self._timeouts[name] if isinstance(value, DefaultValue) else value

    async def post_message(self, url: str, body: bytes) -> int | None:
        """POST a body already rendered as JSON to a method that answers with a Message
        (``sendMessage``); return the message's ``message_id``.

        Telegram's answers become PTB's exceptions exactly as for ``Bot`` calls
        (``RetryAfter``, ``Forbidden``, ``BadRequest``, ``ChatMigrated``,
        ``NetworkError``, ...: ``BaseRequest``'s own answer handling), without PTB's
        per-parameter request objects, and the ``message_id`` is read from the
        head of Telegram's answer (``{"ok":true,"result":{"message_id":N,...``)
        rather than by decoding the whole message (any other shape is decoded).
        """
        payload = await self._request_wrapper(url=url, method="POST", request_data=_JSONBody(body))
        head = _MESSAGE_ID.match(payload)
        if head is not None:
            return int(head.group(1))
        try:
            answer = json.loads(payload.decode("utf-8", "replace"))
        except ValueError:
            answer = None
        result = answer.get("result") if isinstance(answer, dict) else None
        if not isinstance(result, dict) or answer.get("ok") is not True:
            raise NetworkError(f"LeanRequest: unexpected answer to a message: {payload[:200]!r}")
        return result.get("message_id")

    def _route(self, url: str, method: str) -> tuple[tuple[str, str, int], bytes]:
        """Connection key and request head (up to Content-Length) for a URL, cached."""
        route = self._routes.get((url, method))
        if route is None:
            parts = urlsplit(url)
            if parts.scheme not in ("http", "https") or not parts.hostname:
                raise NetworkError(f"LeanRequest: unsupported URL {url!r}")
            key = (parts.scheme, parts.hostname, parts.port or (443 if parts.scheme == "https" else 80))
            target = (parts.path or "/") + (f"?{parts.query}" if parts.query else "")
            host = parts.hostname if parts.port is None else f"{parts.hostname}:{parts.port}"
            head = (f"{method} {target} HTTP/1.1\r\nHost: {host}\r\nUser-Agent: newsbot\r\n"
                    "Accept: application/json\r\nConnection: keep-alive\r\n"
                    + ("Content-Type: application/json\r\n" if method == "POST" else "")).encode("latin-1")
            if len(self._routes) >= 256:  # a few Bot API methods in practice; never grows without bound
                self._routes.clear()
            route = self._routes[(url, method)] = (key, head)
        return route

    async def do_request(self, url: str, method: str, request_data: RequestData | None = None,
                         read_timeout: Any = BaseRequest.DEFAULT_NONE, write_timeout: Any = BaseRequest.DEFAULT_NONE,
                         connect_timeout: Any = BaseRequest.DEFAULT_NONE,
                         pool_timeout: Any = BaseRequest.DEFAULT_NONE) -> tuple[int, bytes]:
        if request_data is not None and request_data.contains_files:
            return await self._fallback.do_request(url, method, request_data, read_timeout, write_timeout,
                                                   connect_timeout, pool_timeout)
        key, head = self._route(url, method)
        # JSON (which the Bot API accepts) instead of form encoding: json.dumps is C, urlencode is not
        body = request_data.json_payload if request_data is not None else b""
        if self._slots is None:
            self._slots = asyncio.Semaphore(self.pool_size)
        if self._slots.locked():
            try:
                await asyncio.wait_for(self._slots.acquire(), self._timeout(pool_timeout, "pool"))
            except asyncio.TimeoutError:
                raise TimedOut("Pool timeout: all connections are in use") from None
        else:
            await self._slots.acquire()
        conn = None
        try:
            conn = await self._connection(key, self._timeout(connect_timeout, "connect"))
            reader, writer = conn
            writer.write(b"%sContent-Length: %d\r\n\r\n%s" % (head, len(body), body))
            try:  # asyncio.timeout: no extra task per request, unlike wait_for
                if writer.transport.get_write_buffer_size():  # the kernel did not take it all at once
                    async with asyncio.timeout(self._timeout(write_timeout, "write")):
                        await writer.drain()
                async with asyncio.timeout(self._timeout(read_timeout, "read")):
                    status, keep, payload = await self._response(reader)
            except TimeoutError:
                raise TimedOut() from None
            if keep:
                self._idle.setdefault(key, []).append(conn)
            else:
                writer.close()
            conn = None
            return status, payload
        except (OSError, asyncio.IncompleteReadError, ValueError) as exc:
            raise NetworkError(f"LeanRequest: {type(exc).__name__}: {exc}") from exc
        finally:
            if conn is not None:
                conn[1].close()
            self._slots.release()

    async def _connection(self, key: tuple[str, str, int], timeout: float | None):
        idle = self._idle.get(key)
        while idle:
            reader, writer = idle.pop()
            if not reader.at_eof() and not writer.is_closing():
                return reader, writer
            writer.close()
        ssl_ctx = None
        if key[0] == "https":
            if self._ssl is None:
                import ssl

                self._ssl = ssl.create_default_context()
            ssl_ctx = self._ssl
        try:
            reader, writer = await asyncio.wait_for(
                asyncio.open_connection(key[1], key[2], ssl=ssl_ctx, limit=2 ** 20), timeout)
        except asyncio.TimeoutError:
            raise TimedOut("Connect timeout") from None
        sock = writer.get_extra_info("socket")
        if sock is not None:
            sock.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
        return reader, writer

    @staticmethod
    async def _response(reader: asyncio.StreamReader) -> tuple[int, bool, bytes]:
        head = await reader.readuntil(b"\r\n\r\n")
        status_line = _STATUS_LINE.match(head)
        if status_line is None:
            raise ValueError(f"not an HTTP response: {head[:80]!r}")
        fields = head.lower()  # only three header fields matter here
        keep = status_line.group(1) == b"1" and _CONNECTION_CLOSE.search(fields) is None
        if _CHUNKED.search(fields) is not None:
            chunks = []
            while True:
                size = int((await reader.readline()).split(b";")[0].strip() or b"0", 16)
                if size == 0:
                    while (await reader.readline()) not in (b"\r\n", b""):
                        pass
                    break
                chunks.append(await reader.readexactly(size))
                await reader.readline()
            payload = b"".join(chunks)
        elif (length := _CONTENT_LENGTH.search(fields)) is not None:
            payload = await reader.readexactly(int(length.group(1)))
        else:
            payload = await reader.read()
            keep = False
        return int(status_line.group(2)), keep, payload


def retry_after_seconds(exc: RetryAfter) -> float:
    """``exc.retry_after`` as seconds, whichever type this PTB version returns."""
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", PTBDeprecationWarning)
        value = exc.retry_after
    if isinstance(value, timedelta):
        return value.total_seconds()
    return float(value)


def _owner_alive(owner: str | None) -> bool:
    """Whether the sender named in a row's ``claimed_by`` (host:pid:run) still runs."""
    if not owner:
        return False
    try:
        host, pid_text, run = owner.rsplit(":", 2)
        pid = int(pid_text)
    except ValueError:
        return False
    if host != _HOST:
        return True  # another machine: only the age rule can resume it
    if pid == os.getpid():
        return run in _LIVE_RUNS
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:
        return True
    return True


DONE, REQUEUE, MOVED = "done", "requeue", "moved"  # what became of a row after one attempt


def _quiet_raw_call_warning() -> None:
    """PTB suggests ``Bot.send_message`` when ``do_api_request("sendMessage")`` is used; we mean it.

    (Re-adding the same filter replaces it, so calling this often does not grow the list.)
    """
    warnings.filterwarnings("ignore", message=r"Please use 'Bot\.sendMessage' instead", category=PTBUserWarning)


class _Chat:
    __slots__ = ("chat_id", "queue", "busy", "ready_at", "window", "queued", "last_done")

    def __init__(self, chat_id: int):
        self.chat_id = chat_id
        self.queue: collections.deque[dict] = collections.deque()
        self.busy = False
        self.ready_at = 0.0  # monotonic time before which nothing is sent to this chat
        self.window: collections.deque[float] = collections.deque()  # group: recent completion times
        self.queued = False  # in the ready heap
        self.last_done = -1e9


class Sender:
    """Sends the outbox; see the module docstring for the rules it follows."""

    def __init__(self, bot: telegram.Bot, store: Store, cfg: DeliveryConfig | None = None, *,
                 clock: Callable[[], datetime] = utcnow, monotonic: Callable[[], float] = time.monotonic):
        """``clock``: the wall clock (aware UTC ``datetime``) that decides which rows are due
        (``not_before`` holds, retry times) and stamps claims and sends; inject a simulated one
        to test quiet hours. ``monotonic``: seconds, for pacing (rate limits, waits)."""
        self.bot = bot
        self.store = store
        self.cfg = cfg or DeliveryConfig()
        self.clock = clock
        self.monotonic = monotonic
        self.run_id = f"{_HOST}:{os.getpid()}:{next(_RUN_IDS)}{random.getrandbits(32):08x}"
        self.report = DeliveryReport()
        self._chats: dict[int, _Chat] = {}
        self._heap: list[tuple[float, int, int]] = []
        self._seq = itertools.count()
        self._loaded: set[int] = set()
        self._tasks: set[asyncio.Task] = set()
        self._kick: asyncio.Event | None = None
        self._loop: asyncio.AbstractEventLoop | None = None
        self._refill_wanted = True
        self._tokens = 1.0
        self._token_stamp = monotonic()
        self._global_until = 0.0
        self._flooded: dict[int, float] = {}  # chats told to wait, and until when
        self._sent_batch: list[tuple[int, int | None]] = []  # accepted, to commit at the end of this loop step
        self._fatal: BaseException | None = None
        self._recovered = False
        # with LeanRequest each message's JSON body is rendered straight from its row and posted
        # (PTB's per-parameter request objects cost more CPU than the HTTP exchange); other
        # request classes go through Bot.do_api_request
        request = getattr(bot, "request", None)
        self._post_message = request.post_message if isinstance(request, LeanRequest) else None
        self._send_url = f"{bot.base_url}/sendMessage" if self._post_message is not None else ""

    # -- public ------------------------------------------------------------------

    def wake(self) -> None:
        """Something was queued: look at the outbox now (safe from any thread)."""
        self._refill_wanted = True
        if self._kick is None or self._loop is None:
            return
        try:
            running = asyncio.get_running_loop()
        except RuntimeError:
            running = None
        if running is self._loop:
            self._kick.set()
        elif not self._loop.is_closed():
            self._loop.call_soon_threadsafe(self._kick.set)

    async def run_once(self) -> DeliveryReport:
        """Send every row due now, waiting out rate limits, 429s and backoffs, until idle.

        Rows held for later (``not_before``) are left for a later run. Raises
        :class:`DeliveryError` when the token is refused (nothing is lost).
        """
        await self._run(None, until_idle=True)
        return self.report

    async def drain(self) -> int:
        """``run_once`` for the CLI: returns how many messages were sent."""
        before = self.report.sent
        await self.run_once()
        return self.report.sent - before

    async def run_forever(self, stop: asyncio.Event) -> None:
        """Send as rows become due until ``stop`` is set, then finish what is in flight."""
        while not stop.is_set():
            try:
                await self._run(stop, until_idle=False)
            except DeliveryError as exc:
                log.error("%s; retrying in 60 s", exc)
                try:
                    await asyncio.wait_for(stop.wait(), 60)
                except asyncio.TimeoutError:
                    pass
            except Exception:  # the sender must outlive a bug in one round; rows stay in SQLite
                log.exception("sender round failed; restarting it in 5 s")
                self._reset_memory()
                try:
                    await asyncio.wait_for(stop.wait(), 5)
                except asyncio.TimeoutError:
                    pass

    # -- the loop -------------------------------------------------------------------

    def _reset_memory(self) -> None:
        # rows stay pending in SQLite; per-chat timing is kept so a next run keeps the limits
        for chat in self._chats.values():
            chat.queue.clear()
            chat.busy = False
            chat.queued = False
        self._heap.clear()
        self._loaded.clear()
        self._refill_wanted = True

    async def _run(self, stop: asyncio.Event | None, until_idle: bool) -> None:
        _quiet_raw_call_warning()
        self._loop = asyncio.get_running_loop()
        self._kick = asyncio.Event()
        self._fatal = None
        _LIVE_RUNS.add(self.run_id)
        stop_waiter = None
        if stop is not None:
            stop_waiter = asyncio.ensure_future(self._relay(stop))
        try:
            self._recover()
            last_refill = -1e9
            while True:
                if stop is not None and stop.is_set():
                    break
                if self._fatal is not None:
                    break
                now = self.monotonic()
                if self._refill_wanted or now - last_refill >= REFILL_SECONDS:
                    self._refill_wanted = False
                    last_refill = now
                    self._refill()
                wait = self._dispatch()
                if until_idle and not self._tasks and not self._loaded:
                    self._refill()
                    if not self._loaded:
                        break
                    continue
                timeout = REFILL_SECONDS if wait is None else max(0.0, min(wait, REFILL_SECONDS))
                if not self._kick.is_set():
                    try:
                        async with asyncio.timeout(timeout):
                            await self._kick.wait()
                    except TimeoutError:
                        pass
                self._kick.clear()
            if self._tasks:
                await asyncio.gather(*list(self._tasks), return_exceptions=True)
        finally:
            if stop_waiter is not None:
                stop_waiter.cancel()
            if self._tasks:
                await asyncio.gather(*list(self._tasks), return_exceptions=True)
            if self._sent_batch:
                self._commit_sent()
            _LIVE_RUNS.discard(self.run_id)
            self._reset_memory()
        if self._fatal is not None:
            raise self._fatal

    async def _relay(self, stop: asyncio.Event) -> None:
        await stop.wait()
        self._kick.set()

    def _recover(self) -> None:
        if self._recovered:
            return
        self._recovered = True
        stale = self.clock() - timedelta(seconds=self.cfg.stale_sending_seconds)
        ids = self.store.outbox_recover(_owner_alive, stale)
        if ids:
            self.report.resumed += len(ids)
            log.warning("resending %d message(s) left 'sending' by a stopped sender (each may arrive twice) "
                        "outbox=%s", len(ids), ",".join(map(str, ids[:20])))

    def _chat(self, chat_id: int) -> _Chat:
        chat = self._chats.get(chat_id)
        if chat is None:
            chat = self._chats[chat_id] = _Chat(chat_id)
        return chat

    def _schedule(self, chat: _Chat) -> None:
        if chat.queue and not chat.busy and not chat.queued:
            chat.queued = True
            heapq.heappush(self._heap, (chat.ready_at, next(self._seq), chat.chat_id))

    def _refill(self) -> None:
        """Load due rows that are not in memory yet (at most MAX_LOADED in memory)."""
        room = MAX_LOADED - len(self._loaded)
        if room <= 0:
            return
        rows = self.store.outbox_due(self.clock(), limit=len(self._loaded) + room, per_chat=PER_CHAT_LOADED,
                                     exclude=self._loaded)
        for row in rows:
            if row["paused"]:
                error = f"chat paused: {row['paused']}"
                self.store.outbox_fail(row["id"], error)
                self.report.failed += 1
                log.info("not sent chat=%s outbox=%s reason=%s", row["chat_id"], row["id"], error)
                continue
            self._loaded.add(row["id"])
            chat = self._chat(row["chat_id"])
            chat.queue.append(row)
            self._schedule(chat)

    def _global_wait(self, now: float) -> float:
        rate = self.cfg.global_per_second
        if self._global_until > now:
            return self._global_until - now
        capacity = max(1.0, rate / 10)
        self._tokens = min(capacity, self._tokens + (now - self._token_stamp) * rate)
        self._token_stamp = now
        if self._tokens >= 1:
            return 0.0
        return (1 - self._tokens) / rate

    def _dispatch(self) -> float | None:
        """Start every send that may start now; return seconds until the next one may (None: nothing waits)."""
        starting: list[tuple[_Chat, dict]] = []
        while self._heap:
            ready_at, _, chat_id = self._heap[0]
            chat = self._chats.get(chat_id)
            if chat is None or chat.busy or not chat.queue:
                heapq.heappop(self._heap)
                if chat is not None:
                    chat.queued = False
                continue
            if chat.ready_at > ready_at:  # it was pushed back (429, backoff) after being queued
                heapq.heapreplace(self._heap, (chat.ready_at, next(self._seq), chat_id))
                continue
            now = self.monotonic()
            if ready_at > now:
                self._start(starting)
                return ready_at - now
            if len(self._tasks) + len(starting) >= self.cfg.max_in_flight:
                self._start(starting)
                return None  # a finishing task kicks the loop
            wait = self._global_wait(now)
            if wait > 0:
                self._start(starting)
                return wait
            self._tokens -= 1
            heapq.heappop(self._heap)
            chat.queued = False
            chat.busy = True
            starting.append((chat, chat.queue.popleft()))
        self._start(starting)
        return None

    def _start(self, starting: list[tuple[_Chat, dict]]) -> None:
        """Claim the rows (one commit for the batch, before any request) and start their sends."""
        if not starting:
            return
        claimed = self.store.outbox_claim_many([row["id"] for _, row in starting], self.run_id, self.clock())
        for chat, row in starting:
            if row["id"] in claimed:
                task = asyncio.ensure_future(self._send(chat, row))
                self._tasks.add(task)
                task.add_done_callback(self._task_done)
            else:  # another sender took it, or it was failed meanwhile
                chat.busy = False
                self._loaded.discard(row["id"])
                self._schedule(chat)
        starting.clear()

    def _task_done(self, task: asyncio.Task) -> None:
        self._tasks.discard(task)
        if not task.cancelled() and task.exception() is not None:
            log.error("send task failed", exc_info=task.exception())
        if self._kick is not None:
            self._kick.set()

    # -- one message -------------------------------------------------------------------

    async def _send(self, chat: _Chat, row: dict) -> None:
        outcome = REQUEUE
        try:
            outcome = await self._attempt(chat, row)
        finally:
            now = self.monotonic()
            chat.last_done = now
            spacing = 1.0 / self.cfg.chat_per_second
            chat.ready_at = max(chat.ready_at, now + spacing)
            if chat.chat_id < 0 and self.cfg.group_per_minute:
                chat.window.append(now)
                while chat.window and chat.window[0] <= now - 60:
                    chat.window.popleft()
                if len(chat.window) >= self.cfg.group_per_minute:
                    chat.ready_at = max(chat.ready_at, chat.window[0] + 60.0)
            chat.busy = False
            if outcome == REQUEUE:
                chat.queue.appendleft(row)
            elif outcome == DONE:
                self._loaded.discard(row["id"])
            self._schedule(chat)

    @staticmethod
    def _params(row: dict) -> dict[str, Any]:
        params: dict[str, Any] = {"chat_id": row["chat_id"], "text": row["text"]}
        if row["parse_mode"]:
            params["parse_mode"] = row["parse_mode"]
        if row["disable_preview"]:
            params["link_preview_options"] = {"is_disabled": True}
        if row["reply_markup"]:
            params["reply_markup"] = row["reply_markup"]  # JSON text, sent as is
        return params

    @staticmethod
    def _body(row: dict, chat_id: int) -> bytes:
        """The sendMessage JSON body for a row (the same fields as :meth:`_params`)."""
        for ascii_only in (False, True):  # UTF-8 is shorter; a lone surrogate is sent escaped
            parts = ['{"chat_id":', str(int(chat_id)), ',"text":', json.dumps(row["text"], ensure_ascii=ascii_only)]
            if row["parse_mode"]:
                parts += [',"parse_mode":', json.dumps(row["parse_mode"])]
            if row["disable_preview"]:
                parts.append(',"link_preview_options":{"is_disabled":true}')
            if row["reply_markup"]:
                parts += [',"reply_markup":', json.dumps(row["reply_markup"], ensure_ascii=ascii_only)]
            parts.append("}")
            try:
                return "".join(parts).encode("utf-8")
            except UnicodeEncodeError:
                continue
        raise AssertionError("unreachable: ASCII-only JSON always encodes")

    async def _attempt(self, chat: _Chat, row: dict) -> str:
        """Send one row: DONE (sent or failed), REQUEUE (back to the head of its chat's queue)
        or MOVED (now queued under a migrated chat id)."""
        row_id, chat_id = row["id"], chat.chat_id  # already claimed ('sending', committed) by _start
        try:
            # only message_id is kept: no telegram.Message is built (its entities would cost more
            # CPU than the whole HTTP exchange); LeanRequest does not even decode the answer's JSON
            if self._post_message is not None:
                message_id = await self._post_message(self._send_url, self._body(row, chat_id))
            else:
                result = await self.bot.do_api_request("sendMessage",
                                                       api_kwargs=self._params({**row, "chat_id": chat_id}))
                message_id = result.get("message_id") if isinstance(result, dict) else None
        except RetryAfter as exc:
            wait = max(retry_after_seconds(exc), 0.0)
            now = self.monotonic()
            chat.ready_at = max(chat.ready_at, now + wait)
            # one chat flooded: that chat waits; two or more at once: the limit is global, all wait
            self._flooded = {c: t for c, t in self._flooded.items() if t > now}
            self._flooded[chat_id] = now + wait
            own_limit = len(self._flooded) < 2
            if not own_limit:
                self._global_until = max(self._global_until, *self._flooded.values())
            self.report.flood_waits += 1
            self.store.outbox_retry(row_id, self.clock() + timedelta(seconds=wait),
                                    f"flood control: retry after {wait:g}s", count_attempt=False)
            log.warning("flood control chat=%s outbox=%s retry_after=%g scope=%s", chat_id, row_id, wait,
                        "chat" if own_limit else "all")
            return REQUEUE
        except ChatMigrated as exc:
            new_id = int(exc.new_chat_id)
            moved = self.store.migrate_chat(chat_id, new_id)
            self.store.outbox_retry(row_id, None, f"chat migrated to {new_id}", count_attempt=False)
            self.report.migrated[chat_id] = new_id
            log.warning("chat migrated chat=%s new_chat=%s moved=%s", chat_id, new_id, moved)
            target = self._chat(new_id)
            for r in [row, *chat.queue]:
                r["chat_id"] = new_id
            target.queue.extendleft(reversed([row, *chat.queue]))
            chat.queue.clear()
            self._schedule(target)
            return MOVED
        except Forbidden as exc:
            self._pause(chat, row, exc.message)
            return DONE
        except BadRequest as exc:
            if "chat not found" in exc.message.lower():
                self._pause(chat, row, exc.message)
                return DONE
            self.store.outbox_fail(row_id, f"rejected: {exc.message}")
            self.report.failed += 1
            log.error("message rejected chat=%s outbox=%s kind=%s error=%s", chat_id, row_id, row["kind"],
                      exc.message)
            return DONE
        except (InvalidToken, EndPointNotFound) as exc:
            self.store.outbox_retry(row_id, None, f"token refused: {exc.message}", count_attempt=False)
            self._fatal = DeliveryError(f"delivery: the Bot API refused the token ({exc.message})")
            return REQUEUE
        except (TimedOut, NetworkError, TelegramError) as exc:
            return self._retry_later(chat, row, exc)
        except asyncio.CancelledError:
            self.store.outbox_retry(row_id, None, "cancelled while sending (may have arrived)", count_attempt=False)
            raise
        except Exception as exc:  # noqa: BLE001 - an HTTP library surprise is treated like a network error
            return self._retry_later(chat, row, exc)
        # Telegram accepted it: commit before anything else is awaited. Answers parsed in the same
        # event-loop step are committed together, at the end of that step (call_soon, no I/O between).
        self._sent_batch.append((row_id, message_id))
        if len(self._sent_batch) == 1:
            asyncio.get_running_loop().call_soon(self._commit_sent)
        self.report.sent += 1
        log.debug("sent chat=%s outbox=%s kind=%s", chat_id, row_id, row["kind"])
        return DONE

    def _commit_sent(self) -> None:
        batch, self._sent_batch = self._sent_batch, []
        try:
            self.store.outbox_sent_many(batch, self.clock())
        except Exception:  # they stay 'sending' and are resent after a restart: log loudly
            log.exception("could not record %d sent message(s) outbox=%s", len(batch),
                          ",".join(str(i) for i, _ in batch[:20]))

    def _retry_later(self, chat: _Chat, row: dict, exc: BaseException) -> str:
        attempts = row["attempts"] + 1
        row["attempts"] = attempts
        error = f"{type(exc).__name__}: {exc}"
        if attempts >= self.cfg.max_attempts:
            self.store.outbox_fail(row["id"], f"gave up after {attempts} attempts: {error}")
            self.report.failed += 1
            log.error("message failed chat=%s outbox=%s attempts=%d error=%s", chat.chat_id, row["id"],
                      attempts, error)
            return DONE
        delay = min(self.cfg.backoff_max_seconds, self.cfg.backoff_base_seconds * 2 ** (attempts - 1))
        delay *= random.uniform(0.8, 1.2)
        chat.ready_at = max(chat.ready_at, self.monotonic() + delay)
        self.store.outbox_retry(row["id"], self.clock() + timedelta(seconds=delay), error)
        self.report.retried += 1
        log.warning("send failed, retrying chat=%s outbox=%s attempt=%d in=%.1fs error=%s", chat.chat_id,
                    row["id"], attempts, delay, error)
        return REQUEUE

    def _pause(self, chat: _Chat, row: dict, reason: str) -> None:
        self.store.outbox_fail(row["id"], f"undeliverable: {reason}")
        self.store.pause_subscriber(chat.chat_id, reason)
        dropped = self.store.outbox_fail_chat(chat.chat_id, f"chat paused: {reason}")
        for r in chat.queue:
            self._loaded.discard(r["id"])
        chat.queue.clear()
        self.report.failed += 1 + dropped
        self.report.paused.append(chat.chat_id)
        log.warning("chat paused chat=%s reason=%s dropped=%d", chat.chat_id, reason, dropped)

