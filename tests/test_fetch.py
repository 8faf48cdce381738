"""Fetcher against the local feed server, and the pure schedule() function."""

from __future__ import annotations

import asyncio
import gzip
import random
import socket
import zlib
from datetime import datetime, timedelta, timezone
from email.utils import format_datetime

import httpx
import pytest

from bot.config import PollConfig
from bot.fetch import Fetcher, parse_retry_after, schedule
from bot.models import Feed, FetchResult
from tests.feedserver import Route, feed_server, read_sample  # noqa: F401  (fixture)

FAST = PollConfig(connect_timeout=1.0, read_timeout=1.0, total_timeout=2.0, max_body_bytes=64 * 1024,
                  max_decompressed_bytes=256 * 1024, max_redirects=3)
BODY = read_sample("healthy_en.xml")


def feed_for(url: str, **kw) -> Feed:
    return Feed(id=kw.pop("id", 1), url=url, name="t", lang="en", **kw)


async def fetch(url: str, poll: PollConfig = FAST, **kw) -> FetchResult:
    async with Fetcher(poll) as f:
        return await f.fetch(feed_for(url, **kw))


# -- success ------------------------------------------------------------------------

async def test_plain_200_gives_body_validators_and_headers(feed_server):
    url = feed_server.route("/a.xml", body=BODY, etag='"abc"', last_modified="Mon, 05 Jan 2026 10:00:00 GMT")
    r = await fetch(url)
    assert r.error is None and r.ok
    assert r.status == 200 and r.body == BODY
    assert r.etag == '"abc"' and r.last_modified == "Mon, 05 Jan 2026 10:00:00 GMT"
    assert r.headers["content-type"].startswith("application/rss+xml")
    assert r.final_url == url and r.permanent_url is None
    sent = feed_server.requests_to("/a.xml")[0].headers
    assert sent["user-agent"] == FAST.user_agent and "newsbot" in sent["user-agent"]
    assert "if-none-match" not in sent and "if-modified-since" not in sent


async def test_conditional_get_and_304(feed_server):
    url = feed_server.route("/c.xml", body=BODY, etag='"v7"', last_modified="Mon, 05 Jan 2026 10:00:00 GMT")
    r = await fetch(url, etag='"v7"', last_modified="Mon, 05 Jan 2026 10:00:00 GMT")
    sent = feed_server.requests_to("/c.xml")[0].headers
    assert sent["if-none-match"] == '"v7"'
    assert sent["if-modified-since"] == "Mon, 05 Jan 2026 10:00:00 GMT"
    assert r.status == 304 and r.not_modified and r.body is None and r.error is None and r.ok


async def test_same_body_without_validators_counts_as_not_modified(feed_server):
    url = feed_server.route("/nv.xml", body=BODY)
    first = await fetch(url)
    again = await fetch(url, body_hash=first.body_hash)
    assert first.body == BODY and first.body_hash
    assert again.status == 200 and again.not_modified and again.body is None
    changed = await fetch(url, body_hash="0" * 40)
    assert changed.body == BODY and not changed.not_modified


@pytest.mark.parametrize("encoding", ["gzip", "deflate-zlib", "deflate-raw"])
async def test_compressed_bodies_are_decoded(feed_server, encoding):
    if encoding == "gzip":
        route = Route(body=BODY, gzip=True)
    elif encoding == "deflate-zlib":
        route = Route(body=zlib.compress(BODY), raw_encoding="deflate")
    else:
        c = zlib.compressobj(wbits=-15)
        route = Route(body=c.compress(BODY) + c.flush(), raw_encoding="deflate")
    r = await fetch(feed_server.route("/z.xml", route))
    assert r.error is None and r.body == BODY


async def test_body_without_content_length(feed_server):
    r = await fetch(feed_server.route("/nolen.xml", body=BODY, content_length=False))
    assert r.error is None and r.body == BODY


# -- failures ----------------------------------------------------------------------------

def free_port() -> int:
    s = socket.socket()
    s.bind(("127.0.0.1", 0))
    port = s.getsockname()[1]
    s.close()
    return port


@pytest.mark.parametrize("route, error", [
    (Route(status=500, body=b"oops"), "fetch: HTTP 500"),
    (Route(status=404, body=b"no"), "fetch: HTTP 404"),
    (Route(status=403, body=b"no"), "fetch: HTTP 403"),
    (Route(delay=1.6, body=BODY), "fetch: read timed out after 1s"),
    (Route(body=BODY, drip=0.15, drip_size=64), "fetch: timed out after 2s"),
    (Route(body=b"x" * (100 * 1024)), "fetch: body over 0.0625 MB cap (Content-Length"),
    (Route(body=b"x" * (100 * 1024), content_length=False), "fetch: body over 0.0625 MB cap"),
    (Route(body=b"\0" * (20 * 1024 * 1024), gzip=True), "fetch: decompressed body over 0.25 MB cap"),
    (Route(body=b"not gzip at all", raw_encoding="gzip"), "fetch: bad gzip data"),
    (Route(body=gzip.compress(BODY)[:-40], raw_encoding="gzip"), "fetch: truncated gzip data"),
    (Route(body=BODY, raw_encoding="br"), "fetch: unsupported Content-Encoding 'br'"),
])
async def test_failures_are_results_not_exceptions(feed_server, route, error):
    r = await fetch(feed_server.route("/bad.xml", route))
    assert r.error is not None and r.error.startswith(error), r.error
    assert r.body is None and not r.ok


async def test_connection_refused():
    port = free_port()
    r = await fetch(f"http://127.0.0.1:{port}/feed.xml")
    assert r.error == f"fetch: cannot connect: 127.0.0.1:{port} refused the connection" and r.status is None


def test_a_name_that_does_not_resolve_is_said_so():
    """(No DNS lookup in the tests: the exception is built as httpx raises it, an OSError
    from getaddrinfo underneath httpcore's.)"""
    import httpcore

    from bot.fetch import _connect_failure

    request = httpx.Request("GET", "https://news.example.invalid/rss.xml")
    try:
        try:
            try:
                raise socket.gaierror(socket.EAI_NONAME, "Name or service not known")
            except socket.gaierror as exc:
                raise httpcore.ConnectError(str(exc)) from exc
        except httpcore.ConnectError as exc:
            raise httpx.ConnectError(str(exc), request=request) from exc
    except httpx.ConnectError as exc:
        assert _connect_failure(exc) == "cannot resolve news.example.invalid (Name or service not known)"
    # anything else keeps the library's message
    assert _connect_failure(httpx.ConnectError("boom", request=request)) == "boom"
    assert _connect_failure(httpx.ConnectError("")) == "ConnectError"


def raw_server(payload: bytes) -> tuple[str, socket.socket]:
    """A server on 127.0.0.1 that answers every connection with ``payload`` as it is, then closes:
    HTTP that no well-behaved server library would send."""
    import threading

    sock = socket.socket()
    sock.bind(("127.0.0.1", 0))
    sock.listen(8)

    def serve() -> None:
        while True:
            try:
                conn, _ = sock.accept()
            except OSError:
                return
            with conn:
                try:
                    conn.settimeout(2)
                    conn.recv(65536)
                    conn.sendall(payload)
                except OSError:
                    pass

    threading.Thread(target=serve, daemon=True).start()
    return f"http://127.0.0.1:{sock.getsockname()[1]}/feed.xml", sock


@pytest.mark.parametrize("payload, error", [
    (b"HELLO WORLD\r\n\r\n", "fetch: RemoteProtocolError: illegal status line"),
    (b"", "fetch: RemoteProtocolError: Server disconnected"),
    (b"HTTP/1.1 200 OK\r\nContent-Length: 5000\r\n\r\n" + BODY[:100], "fetch: RemoteProtocolError: peer closed"),
    (b"HTTP/1.1 200 OK\r\nTransfer-Encoding: chunked\r\n\r\nZZ\r\nabc\r\n0\r\n\r\n",
     "fetch: RemoteProtocolError: illegal chunk header"),
    (b"HTTP/1.1 200 OK\r\nContent-Length: 5\r\nContent-Length: 7\r\n\r\n12345",
     "fetch: RemoteProtocolError: conflicting Content-Length"),
    (b"HTTP/1.1 200 OK\r\nX-Big: " + b"a" * 200_000 + b"\r\n\r\n", "fetch: RemoteProtocolError"),
    (b"HTTP/1.1 200 OK\r\nContent-Encoding: gzip, gzip\r\nContent-Length: 4\r\n\r\nabcd",
     "fetch: unsupported Content-Encoding 'gzip, gzip'"),
])
async def test_broken_http_is_an_error_result(payload, error):
    url, sock = raw_server(payload)
    try:
        r = await fetch(url)
    finally:
        sock.close()
    assert r.error.startswith(error) and r.body is None and not r.ok


def test_an_error_without_a_message_reads_well():
    import httpx

    from bot.fetch import _describe

    assert _describe(httpx.ReadError("")) == "ReadError"  # (seen when a server hangs up mid-redirect)
    assert _describe(httpx.ReadError("boom")) == "ReadError: boom"


async def test_http_1_0_without_length_and_a_1xx_first_still_work():
    for payload in (b"HTTP/1.0 200 OK\r\nContent-Type: text/xml\r\n\r\n" + BODY,
                    b"HTTP/1.1 100 Continue\r\n\r\nHTTP/1.1 200 OK\r\nContent-Length: %d\r\n\r\n" % len(BODY) + BODY):
        url, sock = raw_server(payload)
        try:
            r = await fetch(url)
        finally:
            sock.close()
        assert r.error is None and r.body == BODY


async def test_not_http_url():
    r = await fetch("ftp://127.0.0.1/feed.xml")
    assert r.error.startswith("fetch: not an http(s) URL")


async def test_outside_context_manager_is_an_error_not_a_crash():
    r = await Fetcher(FAST).fetch(feed_for("http://127.0.0.1:9/x"))
    assert r.error.startswith("fetch: ")


@pytest.mark.parametrize("status, header, expected", [
    (503, "120", 120.0),
    (429, "7", 7.0),
    (503, None, None),
    (503, "soon", None),
])
async def test_retry_after_seconds(feed_server, status, header, expected):
    headers = {"Retry-After": header} if header else {}
    r = await fetch(feed_server.route("/ra.xml", Route(status=status, headers=headers)))
    assert r.error.startswith(f"fetch: HTTP {status}") and r.retry_after == expected


def test_retry_after_http_date():
    now = datetime(2026, 1, 8, 12, 0, tzinfo=timezone.utc)
    assert parse_retry_after(format_datetime(now + timedelta(minutes=5), usegmt=True), now) == 300.0
    assert parse_retry_after(format_datetime(now - timedelta(minutes=5), usegmt=True), now) == 0.0
    assert parse_retry_after("99999999999", now) == 7 * 24 * 3600


async def test_410_is_gone(feed_server):
    r = await fetch(feed_server.route("/gone.xml", status=410))
    assert r.gone and r.error == "fetch: HTTP 410 Gone"


# -- redirects ------------------------------------------------------------------------------

async def test_permanent_chain_sets_permanent_url(feed_server):
    final = feed_server.route("/final.xml", body=BODY)
    feed_server.route("/hop2", status=308, location="/final.xml")
    start = feed_server.route("/hop1", status=301, location=feed_server.url("/hop2"))
    r = await fetch(start)
    assert r.error is None and r.body == BODY
    assert r.final_url == final and r.permanent_url == final


@pytest.mark.parametrize("second", [302, 303, 307])
async def test_any_temporary_hop_keeps_the_url(feed_server, second):
    final = feed_server.route("/t-final.xml", body=BODY)
    feed_server.route("/t-hop2", status=second, location="/t-final.xml")
    r = await fetch(feed_server.route("/t-hop1", status=301, location="/t-hop2"))
    assert r.body == BODY and r.final_url == final and r.permanent_url is None


async def test_redirect_loop_and_too_many_redirects(feed_server):
    feed_server.route("/loop-a", status=301, location="/loop-b")
    feed_server.route("/loop-b", status=301, location="/loop-a")
    r = await fetch(feed_server.url("/loop-a"))
    assert r.error.startswith("fetch: redirect loop") and r.permanent_url is None
    for i in range(6):
        feed_server.route(f"/chain{i}", status=302, location=f"/chain{i + 1}")
    feed_server.route("/chain6", body=BODY)
    r = await fetch(feed_server.url("/chain0"))
    assert r.error == "fetch: too many redirects (more than 3)"


async def test_redirect_to_other_scheme_is_refused(feed_server):
    r = await fetch(feed_server.route("/to-file", status=302, location="file:///etc/passwd"))
    assert r.error.startswith("fetch: not an http(s) URL") and r.body is None


# -- limits ------------------------------------------------------------------------------------

@pytest.mark.parametrize("concurrency, per_host, limit", [(8, 2, 2), (3, 8, 3)])
async def test_global_and_per_host_limits(feed_server, concurrency, per_host, limit):
    url = feed_server.route("/slow.xml", body=BODY, delay=0.15)
    poll = PollConfig(connect_timeout=2.0, read_timeout=2.0, total_timeout=10.0,
                      concurrency=concurrency, per_host=per_host)
    async with Fetcher(poll) as f:
        results = await asyncio.gather(*(f.fetch(feed_for(url, id=i)) for i in range(8)))
    assert all(r.error is None for r in results)
    assert feed_server.max_in_flight == limit


# -- schedule -------------------------------------------------------------------------------------

POLL = PollConfig(interval_seconds=300, min_interval_seconds=60, max_interval_seconds=3600,
                  backoff_max_seconds=6 * 3600)
NOW = datetime(2026, 1, 8, 12, 0, tzinfo=timezone.utc)


def ok(**kw) -> FetchResult:
    return FetchResult(feed_id=1, url="http://x/", status=kw.pop("status", 200), body=b"<rss/>", **kw)


def failed(**kw) -> FetchResult:
    return FetchResult(feed_id=1, url="http://x/", status=kw.pop("status", 500),
                       error=kw.pop("error", "fetch: HTTP 500"), **kw)


def delay(state: Feed) -> float:
    return (state.next_poll_at - NOW).total_seconds()


def test_success_resets_failures_and_keeps_validators():
    feed = feed_for("http://x/", failures=3, last_error="fetch: HTTP 500", etag='"old"')
    state = schedule(feed, ok(etag='"new"', last_modified="L", body_hash="h"), 5, NOW, POLL, random.Random(1))
    assert state.failures == 0 and state.last_error is None
    assert state.etag == '"new"' and state.last_modified == "L" and state.body_hash == "h"
    assert state.unchanged_polls == 0 and state.last_polled_at == NOW and state.last_status == 200
    assert 0.9 * 300 <= delay(state) <= 1.1 * 300
    assert feed.failures == 3  # the input is not changed


def test_304_keeps_old_validators_when_none_sent():
    feed = feed_for("http://x/", etag='"e"', last_modified="L", body_hash="h")
    r = FetchResult(feed_id=1, url="http://x/", status=304, not_modified=True)
    state = schedule(feed, r, 0, NOW, POLL, random.Random(1))
    assert (state.etag, state.last_modified, state.body_hash) == ('"e"', "L", "h")
    assert state.unchanged_polls == 1


def test_quiet_feeds_are_polled_less_often_within_bounds():
    feed = feed_for("http://x/")
    delays = []
    for _ in range(30):
        feed = schedule(feed, ok(), 0, NOW, POLL, random.Random(7))
        delays.append(delay(feed))
    assert delays[5] > delays[0] * 1.5
    assert max(delays) <= POLL.max_interval_seconds * 1.1
    busy = schedule(feed, ok(), 3, NOW, POLL, random.Random(7))
    assert busy.unchanged_polls == 0 and delay(busy) <= 300 * 1.1


def test_feed_interval_overrides_default():
    feed = feed_for("http://x/", interval_seconds=7200)
    state = schedule(feed, ok(), 1, NOW, POLL, random.Random(3))
    assert 0.9 * 7200 <= delay(state) <= 1.1 * 7200


def test_failures_back_off_exponentially_up_to_the_cap():
    feed = feed_for("http://x/", etag='"keep"')
    caps = []
    for n in range(1, 15):
        feed = schedule(feed, failed(), 0, NOW, POLL, random.Random(n))
        assert feed.failures == n and feed.last_error == "fetch: HTTP 500"
        assert feed.etag == '"keep"'
        cap = min(POLL.backoff_max_seconds, 300 * 2 ** n)
        assert cap / 2 <= delay(feed) <= cap
        caps.append(delay(feed))
    assert caps[3] > caps[0] and max(caps) <= POLL.backoff_max_seconds


def test_backoff_jitter_spreads_feeds():
    feeds = [feed_for("http://x/", id=i, failures=4) for i in range(200)]
    rng = random.Random(11)
    times = {schedule(f, failed(), 0, NOW, POLL, rng).next_poll_at for f in feeds}
    assert len(times) > 190
    ok_times = {schedule(f, ok(), 1, NOW, POLL, rng).next_poll_at for f in feeds}
    assert len(ok_times) > 190


@pytest.mark.parametrize("retry_after", [30.0, 3600.0, 86400.0])
def test_retry_after_is_a_floor(retry_after):
    state = schedule(feed_for("http://x/"), failed(status=503, error="fetch: HTTP 503", retry_after=retry_after),
                     0, NOW, POLL, random.Random(5))
    assert delay(state) >= retry_after


def test_gone_retires():
    r = FetchResult(feed_id=1, url="http://x/", status=410, gone=True, error="fetch: HTTP 410 Gone")
    state = schedule(feed_for("http://x/"), r, 0, NOW, POLL, random.Random(1))
    assert state.retired_at == NOW and state.last_error == "fetch: HTTP 410 Gone" and state.retired


def test_permanent_redirect_moves_url_only_on_success():
    moved = schedule(feed_for("http://old/"), ok(permanent_url="http://new/"), 1, NOW, POLL, random.Random(1))
    assert moved.url == "http://new/"
    kept = schedule(feed_for("http://old/"), failed(permanent_url="http://new/"), 0, NOW, POLL, random.Random(1))
    assert kept.url == "http://old/"


def test_gzip_helper_roundtrip_sanity():
    # the bomb used above really is small on the wire and large decoded
    bomb = gzip.compress(b"\0" * (20 * 1024 * 1024))
    assert len(bomb) < FAST.max_body_bytes < FAST.max_decompressed_bytes < 20 * 1024 * 1024


async def test_waiting_for_a_busy_host_does_not_count_against_the_deadline(feed_server):
    # per_host=1: the second feed waits ~0.8 s for the first, longer than half its 1.2 s deadline
    url = feed_server.route("/busy.xml", body=BODY, delay=0.8)
    poll = PollConfig(connect_timeout=1.0, read_timeout=1.0, total_timeout=1.2, per_host=1)
    async with Fetcher(poll) as f:
        results = await asyncio.gather(*(f.fetch(feed_for(url, id=i)) for i in range(2)))
    assert [r.error for r in results] == [None, None]
    assert feed_server.max_in_flight == 1


@pytest.mark.parametrize("url", ["http://exa mple.example/feed.xml", "http://[::1/feed.xml", "not a url"])
async def test_invalid_urls_are_errors(url):
    r = await fetch(url)
    assert r.error is not None and r.error.startswith("fetch: ")


async def test_pools_of_finished_hosts_are_closed():
    from tests.feedserver import FeedServer
    with FeedServer("127.0.0.1") as a, FeedServer("127.0.0.2") as b:
        urls = [a.route("/a.xml", body=BODY), b.route("/b.xml", body=BODY, delay=0.3)]
        async with Fetcher(FAST) as f:
            task_b = asyncio.create_task(f.fetch(feed_for(urls[1], id=2)))
            ra = await f.fetch(feed_for(urls[0], id=1))
            assert [k[1] for k in f._clients] == ["127.0.0.2"]  # a's pool closed, b's still in use
            rb = await task_b
            assert ra.error is None and rb.error is None and f._clients == {}
            again = await f.fetch(feed_for(urls[0], id=3))  # a closed pool is rebuilt on demand
            assert again.error is None
