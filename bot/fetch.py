"""Asynchronous feed fetching and the per-feed polling schedule.

:class:`Fetcher` does one conditional GET per feed with httpx, under a global
and a per-host concurrency limit, connect/read timeouts and a total deadline,
a cap on the bytes read from the wire and on the bytes after decompression
(gzip bombs), and a redirect limit (redirects are followed here, hop by hop,
so that a chain of only permanent redirects can move the stored URL).
:meth:`Fetcher.fetch` never raises: every failure is a
:class:`~bot.models.FetchResult` whose ``error`` starts with ``"fetch: "``.

:func:`schedule` is pure: feed + fetch result -> the feed's next polling
state (conditional-GET validators, failures, adaptive interval with jitter,
exponential backoff with jitter, Retry-After, permanent redirects, 410 Gone).
"""

from __future__ import annotations

import asyncio
import contextlib
import dataclasses
import hashlib
import logging
import random
import socket
import ssl
import time
import zlib
from datetime import datetime, timedelta, timezone
from email.utils import parsedate_to_datetime
from urllib.parse import urljoin, urlsplit

import httpx

from .config import PollConfig
from .models import Feed, FetchResult

log = logging.getLogger(__name__)

REDIRECTS = (301, 302, 303, 307, 308)
PERMANENT = (301, 308)
RETRY_AFTER_MAX = 7 * 24 * 3600  # a Retry-After beyond a week is read as a week
ADAPTIVE_GROWTH = 1.25  # interval multiplier per consecutive poll with nothing new
ADAPTIVE_STEPS = 16
JITTER = 0.1  # +-10% on the success interval
ACCEPT = ("application/rss+xml, application/atom+xml, application/rdf+xml, application/xml;q=0.9, "
          "text/xml;q=0.9, */*;q=0.5")


class _FetchError(Exception):
    """Internal: a failure with its message (without the ``fetch: `` prefix)."""


def _mb(n: int) -> str:
    return f"{n / (1024 * 1024):g} MB"


def _secs(x: float) -> str:
    return f"{x:g}s"


def _describe(exc: Exception) -> str:
    """``Name: message``, or the name alone when there is no message (a bare ReadError)."""
    text = str(exc).strip()
    return f"{type(exc).__name__}: {text}" if text else type(exc).__name__


def _connect_failure(exc: httpx.ConnectError) -> str:
    """Why a connection failed, in words an operator can act on: a name that does not
    resolve, a port that refuses, or the library's own message."""
    try:
        url = exc.request.url
        where = f"{url.host}:{url.port}" if url.port else url.host
    except RuntimeError:  # (no request attached)
        url, where = None, "the server"
    cause: BaseException | None = exc
    for _ in range(8):  # httpx -> httpcore -> the OSError underneath
        cause = cause.__cause__ or cause.__context__
        if cause is None:
            break
        if isinstance(cause, socket.gaierror):
            host = url.host if url is not None else "the host"
            return f"cannot resolve {host} ({cause.strerror or cause})"
        if isinstance(cause, ConnectionRefusedError):
            return f"{where} refused the connection"
    return str(exc) or type(exc).__name__


def parse_retry_after(value: str | None, now: datetime | None = None) -> float | None:
    """Retry-After as seconds from now (delta-seconds or an HTTP-date); None if unusable."""
    if not value:
        return None
    value = value.strip()
    if value.isdigit():
        return float(min(int(value), RETRY_AFTER_MAX))
    try:
        when = parsedate_to_datetime(value)
    except (TypeError, ValueError, IndexError, OverflowError):
        return None
    if when is None:
        return None
    if when.tzinfo is None:
        when = when.replace(tzinfo=timezone.utc)
    now = now or datetime.now(timezone.utc)
    return float(min(max(0.0, (when - now).total_seconds()), RETRY_AFTER_MAX))


class _Decoder:
    """Incremental Content-Encoding decoder that stops at a size cap."""

    def __init__(self, encoding: str, cap: int):
        self.encoding = encoding
        self.cap = cap
        self.total = 0
        self._d = None

    def _new(self, head: bytes):
        if self.encoding in ("gzip", "x-gzip"):
            return zlib.decompressobj(16 + zlib.MAX_WBITS)
        # "deflate" is zlib-wrapped by the spec, raw by many servers.
        if len(head) >= 2 and head[0] & 0x0F == 8 and (head[0] << 8 | head[1]) % 31 == 0:
            return zlib.decompressobj(zlib.MAX_WBITS)
        return zlib.decompressobj(-zlib.MAX_WBITS)

    def feed(self, data: bytes) -> bytes:
        if self.encoding in ("", "identity"):
            self.total += len(data)
            if self.total > self.cap:
                raise _FetchError(f"decompressed body over {_mb(self.cap)} cap")
            return data
        out = []
        while data:
            if self._d is None:
                self._d = self._new(data)
            try:
                chunk = self._d.decompress(data, self.cap - self.total + 1)
            except zlib.error as exc:
                raise _FetchError(f"bad {self.encoding} data: {exc}") from None
            self.total += len(chunk)
            if self.total > self.cap:
                raise _FetchError(f"decompressed body over {_mb(self.cap)} cap")
            out.append(chunk)
            if self._d.unconsumed_tail:
                data = self._d.unconsumed_tail
            elif self._d.eof and self._d.unused_data:
                data = self._d.unused_data  # another gzip member follows
                self._d = None
                if not data.strip(b"\x00"):
                    break
            else:
                data = b""
        return b"".join(out)

    def finish(self) -> bytes:
        if self._d is None:
            return b""
        try:
            rest = self._d.flush()
        except zlib.error as exc:
            raise _FetchError(f"bad {self.encoding} data: {exc}") from None
        if not self._d.eof:
            raise _FetchError(f"truncated {self.encoding} data")
        self.total += len(rest)
        if self.total > self.cap:
            raise _FetchError(f"decompressed body over {_mb(self.cap)} cap")
        return rest


_TLS: ssl.SSLContext | None = None


def _tls_context() -> ssl.SSLContext:
    """httpx's default verifying TLS context, built once per process (loading the
    CA bundle costs ~100 ms) and shared by every client."""
    global _TLS
    if _TLS is None:
        _TLS = httpx.create_ssl_context()
    return _TLS


DRAIN_MAX = 64 * 1024


def _host(url: str) -> str:
    try:
        return (urlsplit(url).hostname or "").lower()
    except ValueError:
        return ""


async def _drain(response: httpx.Response) -> None:
    """Read the rest of a small unread body (304, redirect, error page) so the
    connection goes back to the pool instead of being closed."""
    if response.is_stream_consumed:
        return
    length = response.headers.get("content-length", "")
    if length.isdigit() and int(length) > DRAIN_MAX:
        return
    seen = 0
    async for chunk in response.aiter_raw():
        seen += len(chunk)
        if seen > DRAIN_MAX:
            return


class Fetcher:
    """``async with Fetcher(cfg) as f: result = await f.fetch(feed)``.

    One small httpx connection pool per host (scheme, host, port), each with at
    most ``per_host`` connections: httpcore's pool scans every connection for
    every queued request, which costs more than the fetch itself when one pool
    holds hundreds of connections. The TLS context is built once and shared.
    Redirect hops to another host use that host's pool and limit.
    """

    def __init__(self, poll: PollConfig, *, transport: httpx.AsyncBaseTransport | None = None):
        self.poll = poll
        self._transport = transport  # tests: one shared transport for every host
        self._clients: dict[tuple[str, str, int | None], httpx.AsyncClient] = {}
        self._open = False
        self._global = asyncio.Semaphore(max(1, poll.concurrency))
        self._hosts: dict[str, asyncio.Semaphore] = {}
        self._users: dict[str, int] = {}  # fetches waiting for or using each host

    async def __aenter__(self) -> Fetcher:
        self._open = True
        return self

    async def __aexit__(self, *exc) -> None:
        self._open = False
        clients, self._clients = list(self._clients.values()), {}
        for client in clients:
            await client.aclose()

    def _client(self, parts) -> httpx.AsyncClient:
        key = ("", "", None)
        if self._transport is None:
            key = (parts.scheme, (parts.hostname or "").lower(), parts.port)
        client = self._clients.get(key)
        if client is None:
            p = self.poll
            limit = max(1, min(p.per_host, p.concurrency))
            client = httpx.AsyncClient(
                timeout=httpx.Timeout(connect=p.connect_timeout, read=p.read_timeout, write=p.read_timeout,
                                      pool=p.total_timeout),
                limits=httpx.Limits(max_connections=limit, max_keepalive_connections=limit),
                follow_redirects=False,
                headers={"User-Agent": p.user_agent, "Accept": ACCEPT, "Accept-Encoding": "gzip, deflate"},
                transport=self._transport,
                verify=_tls_context(),
                trust_env=False,
            )
            self._clients[key] = client
        return client

    def _host_limit(self, host: str) -> asyncio.Semaphore:
        sem = self._hosts.get(host)
        if sem is None:
            sem = self._hosts[host] = asyncio.Semaphore(max(1, self.poll.per_host))
        return sem

    async def fetch(self, feed: Feed) -> FetchResult:
        """One conditional GET of ``feed.url``; failures are in ``result.error``."""
        result = FetchResult(feed_id=feed.id, url=feed.url)
        started = time.monotonic()
        touched: list[str] = []
        try:
            if not self._open:
                raise _FetchError("Fetcher used outside 'async with'")
            first_host = _host(feed.url)
            self._use(first_host, touched)
            # Wait for the host's turn, then for a global slot; the total
            # deadline starts only when the request does.
            async with self._host_limit(first_host):
                async with self._global:
                    async with asyncio.timeout(self.poll.total_timeout):
                        await self._fetch(feed, result, first_host, touched)
        except TimeoutError:
            result.error = f"fetch: timed out after {_secs(self.poll.total_timeout)}"
        except _FetchError as exc:
            result.error = f"fetch: {exc}"
        except httpx.ConnectTimeout:
            result.error = f"fetch: connect timed out after {_secs(self.poll.connect_timeout)}"
        except httpx.ReadTimeout:
            result.error = f"fetch: read timed out after {_secs(self.poll.read_timeout)}"
        except httpx.TimeoutException as exc:
            result.error = f"fetch: timed out ({type(exc).__name__})"
        except httpx.ConnectError as exc:
            result.error = f"fetch: cannot connect: {_connect_failure(exc)}"
        except httpx.HTTPError as exc:
            result.error = f"fetch: {_describe(exc)}"
        except httpx.InvalidURL as exc:
            result.error = f"fetch: invalid URL: {exc}"
        except Exception as exc:  # never raise: a bug here must not stop the cycle
            log.exception("fetch crashed feed=%s", feed.id)
            result.error = f"fetch: {_describe(exc)}"
        finally:
            idle = self._release(touched)
        if idle:
            await self._close_clients(idle)
        if result.error:
            result.body = None
        result.elapsed = time.monotonic() - started
        return result

    def _use(self, host: str, touched: list[str]) -> None:
        self._users[host] = self._users.get(host, 0) + 1
        touched.append(host)

    def _release(self, touched: list[str]) -> list[str]:
        idle = []
        for host in touched:
            self._users[host] -= 1
            if self._users[host] == 0:
                del self._users[host]
                idle.append(host)
        return idle

    async def _close_clients(self, hosts: list[str]) -> None:
        """Close the pools of hosts no fetch is waiting for or using, so open
        sockets stay bounded by the concurrency, not by the number of hosts."""
        if self._transport is not None:
            return
        for key in [k for k in self._clients if k[1] in hosts]:
            client = self._clients.pop(key)
            try:
                await client.aclose()
            except Exception:  # closing a broken connection must not fail the fetch
                log.debug("closing the pool failed host=%s", key[1], exc_info=True)

    async def _fetch(self, feed: Feed, result: FetchResult, held_host: str, touched: list[str]) -> None:
        p = self.poll
        url = feed.url
        seen = {url}
        permanent = True
        hops = 0
        while True:
            parts = urlsplit(url)
            if parts.scheme not in ("http", "https") or not parts.hostname:
                raise _FetchError(f"not an http(s) URL: {url}")
            headers = {}
            if feed.etag:
                headers["If-None-Match"] = feed.etag
            if feed.last_modified:
                headers["If-Modified-Since"] = feed.last_modified
            host = _host(url)
            if host not in touched:
                self._use(host, touched)
            async with contextlib.nullcontext() if host == held_host else self._host_limit(host):
                client = self._client(parts)
                request = client.build_request("GET", url, headers=headers)
                response = await client.send(request, stream=True)
                try:
                    status = response.status_code
                    if status in REDIRECTS and response.headers.get("location"):
                        location = response.headers["location"].strip()
                    else:
                        location = None
                        await self._finish(response, result, feed)
                    await _drain(response)
                finally:
                    await response.aclose()
            if location is None:
                result.final_url = url
                if hops and permanent and url != feed.url and result.error is None and not result.gone:
                    result.permanent_url = url
                return
            hops += 1
            permanent = permanent and status in PERMANENT
            url = urljoin(url, location)
            if hops > p.max_redirects:
                raise _FetchError(f"too many redirects (more than {p.max_redirects})")
            if url in seen:
                raise _FetchError(f"redirect loop at {url}")
            seen.add(url)

    async def _finish(self, response: httpx.Response, result: FetchResult, feed: Feed) -> None:
        """Fill ``result`` from the final (non-redirect) response."""
        p = self.poll
        status = response.status_code
        result.status = status
        result.headers = {k.lower(): v for k, v in response.headers.items()}
        result.etag = response.headers.get("etag")
        result.last_modified = response.headers.get("last-modified")
        if status == 304:
            result.not_modified = True
            return
        if status == 410:
            result.gone = True
            result.error = "fetch: HTTP 410 Gone"
            return
        if status in (429, 503):
            result.retry_after = parse_retry_after(response.headers.get("retry-after"))
            result.error = f"fetch: HTTP {status}" + (
                f" (retry after {result.retry_after:g}s)" if result.retry_after is not None else "")
            return
        if not 200 <= status < 300:
            result.error = f"fetch: HTTP {status}"
            return
        length = response.headers.get("content-length", "")
        if length.isdigit() and int(length) > p.max_body_bytes:
            raise _FetchError(f"body over {_mb(p.max_body_bytes)} cap (Content-Length {length})")
        encoding = response.headers.get("content-encoding", "").strip().lower()
        if encoding not in ("", "identity", "gzip", "x-gzip", "deflate"):
            raise _FetchError(f"unsupported Content-Encoding {encoding!r}")
        decoder = _Decoder(encoding, p.max_decompressed_bytes)
        wire = 0
        parts: list[bytes] = []
        async for chunk in response.aiter_raw():
            wire += len(chunk)
            if wire > p.max_body_bytes:
                raise _FetchError(f"body over {_mb(p.max_body_bytes)} cap")
            parts.append(decoder.feed(chunk))
        parts.append(decoder.finish())
        body = b"".join(parts)
        result.body_hash = hashlib.sha1(body).hexdigest()
        if feed.body_hash and result.body_hash == feed.body_hash:
            # The server ignored the validators but sent the same bytes as the
            # last good poll: nothing to parse.
            result.not_modified = True
            return
        result.body = body


# -- scheduling --------------------------------------------------------------


def _base_interval(feed: Feed, poll: PollConfig) -> float:
    return float(feed.interval_seconds or poll.interval_seconds)


def schedule(feed: Feed, result: FetchResult, new_items: int, now: datetime, poll: PollConfig,
             rng: random.Random) -> Feed:
    """The feed's next polling state after ``result`` (pure; ``feed`` is not changed).

    Success (200 or 304): failures reset, validators kept for the next
    conditional GET, next poll after the feed's interval grown by
    ``ADAPTIVE_GROWTH`` per consecutive poll with nothing new (bounded by
    ``[min, max]_interval_seconds``, or the feed's own interval when that lies
    outside), +-10% jitter. Failure: validators kept from the last good poll,
    ``failures`` + 1, next poll after an exponential backoff with "equal
    jitter" (uniform in [cap/2, cap], cap = base * 2**failures, at most
    ``backoff_max_seconds``), and never before Retry-After. 410: retired.
    A chain of permanent redirects moves ``url`` (the caller clears
    ``result.permanent_url`` when another feed already has that URL).
    """
    state = dataclasses.replace(feed)
    state.last_polled_at = now
    state.last_status = result.status
    base = _base_interval(feed, poll)
    if result.gone:
        state.retired_at = now
        state.last_error = result.error or "fetch: HTTP 410 Gone"
        state.failures = feed.failures + 1
        state.next_poll_at = None
        return state
    if result.error is None:
        state.failures = 0
        state.last_error = None
        if result.not_modified:
            state.etag = result.etag or feed.etag
            state.last_modified = result.last_modified or feed.last_modified
        else:
            state.etag = result.etag
            state.last_modified = result.last_modified
            if result.body_hash:
                state.body_hash = result.body_hash
        state.unchanged_polls = 0 if new_items > 0 else min(feed.unchanged_polls + 1, 1000)
        if result.permanent_url:
            state.url = result.permanent_url
        lo = min(float(poll.min_interval_seconds), base)
        hi = max(float(poll.max_interval_seconds), base)
        interval = base * ADAPTIVE_GROWTH ** min(state.unchanged_polls, ADAPTIVE_STEPS)
        interval = min(hi, max(lo, interval))
        interval *= rng.uniform(1 - JITTER, 1 + JITTER)
        state.next_poll_at = now + timedelta(seconds=interval)
        return state
    # failure: keep the validators of the last good body so a broken body is
    # fetched (and reported) again rather than answered with 304.
    state.failures = feed.failures + 1
    state.last_error = result.error
    cap = min(float(poll.backoff_max_seconds), base * 2 ** min(state.failures, 30))
    delay = rng.uniform(cap / 2, cap)
    if result.retry_after is not None:
        delay = max(delay, result.retry_after)
    state.next_poll_at = now + timedelta(seconds=delay)
    return state
