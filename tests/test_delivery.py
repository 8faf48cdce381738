"""Outbox delivery through the local Bot API server, with real SQLite files.

Every test sends through :class:`bot.delivery.Sender` and PTB's ``Bot`` over
HTTP to :class:`tests.botapi.BotAPIServer`, then checks what the server
accepted and what the outbox table says. The crash tests run the sender in a
real subprocess (``python -m tests.delivery_worker ...``) and SIGKILL it.
"""

from __future__ import annotations

import asyncio
import collections
import logging
import os
import signal
import sqlite3
import subprocess
import sys
import time
from dataclasses import replace
from pathlib import Path

import pytest
import telegram

from bot.config import DeliveryConfig
from bot.delivery import DeliveryError, LeanRequest, Sender
from bot.store import Store
from tests.botapi import BotAPIServer

REPO = Path(__file__).resolve().parent.parent
# PTB itself reads RetryAfter.retry_after as an int when building the exception
pytestmark = pytest.mark.filterwarnings("ignore:.*retry_after.*:telegram.warnings.PTBDeprecationWarning")
FAST = DeliveryConfig(global_per_second=200, chat_per_second=50, group_per_minute=1000, max_attempts=4,
                      backoff_base_seconds=0.05, backoff_max_seconds=0.5)


@pytest.fixture
def server():
    with BotAPIServer(global_rate=None, chat_rate=None, group_per_minute=None) as s:
        yield s


@pytest.fixture
async def bot(server):
    b = telegram.Bot(server.token, base_url=server.base_url)
    async with b:
        yield b


def subscribe(store: Store, chat_id: int, chat_type: str = "private") -> None:
    store.ensure_subscriber(chat_id, lang="en", digest_time="08:00", timezone="Asia/Almaty", chat_type=chat_type)


def texts(server: BotAPIServer, chat_id: int | None = None) -> list[str]:
    return [m["text"] for m in server.sent(chat_id)]


def requests_to(server: BotAPIServer, chat_id: int) -> int:
    return sum(1 for r in server.requests("sendMessage") if str(r["params"].get("chat_id")) == str(chat_id))


# -- exactly once, in order ---------------------------------------------------------


async def test_each_message_arrives_once_in_order_with_its_options(server, bot, store):
    expected = collections.defaultdict(list)
    for i in range(30):
        chat = 100 + i % 5
        text = f"<b>story {i}</b> &amp; more"
        assert store.enqueue(chat, "alert", text, dedup_key=f"alert:{chat}:{i}") is not None
        expected[chat].append(text)
    # the same dedup keys again: nothing new is queued
    assert store.enqueue(100, "alert", "<b>story 0</b> &amp; more", dedup_key="alert:100:0") is None
    assert store.enqueue_many([{"chat_id": 101, "kind": "alert", "text": "x", "dedup_key": "alert:101:1"}]) == 0
    markup = {"inline_keyboard": [[{"text": "Unsubscribe", "callback_data": "unsub:kz-unrest"}]]}
    store.enqueue(200, "digest", "digest <i>one</i>", dedup_key="digest:200", disable_preview=True,
                  reply_markup=markup)

    report = await Sender(bot, store, FAST).run_once()

    assert report.sent == 31 and report.failed == 0
    for chat, want in expected.items():
        assert texts(server, chat) == want  # once each, in the order they were queued
    assert server.sent(100)[0]["plain"] == "story 0 & more"
    digest = server.sent(200)[0]
    assert digest["reply_markup"] == markup
    assert digest["link_preview_options"] == {"is_disabled": True}
    assert server.sent(100)[0]["link_preview_options"] is None
    rows = store.outbox_rows()
    assert {r["status"] for r in rows} == {"sent"}
    by_chat = {(m["chat_id"], m["text"]): m["message_id"] for m in server.sent()}
    assert all(r["message_id"] == by_chat[(r["chat_id"], r["text"])] for r in rows)
    # a second run has nothing left to send
    again = await Sender(bot, store, FAST).run_once()
    assert again.sent == 0 and len(server.sent()) == 31


@pytest.mark.parametrize("kwargs, problem", [
    ({"chat_id": "42", "kind": "alert", "text": "x"}, "chat_id"),
    ({"chat_id": 42, "kind": "spam", "text": "x"}, "kind"),
    ({"chat_id": 42, "kind": "alert", "text": "   "}, "text"),
    ({"chat_id": 42, "kind": "alert", "text": "x", "reply_markup": "{not json"}, "reply_markup"),
    ({"chat_id": 42, "kind": "alert", "text": "x", "parse_mode": "BBCode"}, "parse_mode"),
])
def test_enqueue_refuses_bad_input_and_writes_nothing(store, kwargs, problem):
    with pytest.raises(ValueError, match=problem):
        store.enqueue(**kwargs)
    good = {"chat_id": 1, "kind": "alert", "text": "fine", "dedup_key": "ok"}
    with pytest.raises(ValueError):
        store.enqueue_many([good, {**kwargs, "dedup_key": "bad"}])
    assert store.outbox_rows() == []


async def test_enqueue_joins_an_open_transaction_and_rolls_back_with_it(store):
    with pytest.raises(RuntimeError):
        with store.conn:
            store.conn.execute("INSERT INTO kv(key, value) VALUES ('alerted', '1')")  # the caller's own write
            store.enqueue(5, "alert", "x", dedup_key="k")
            raise RuntimeError("the caller failed after queueing")
    assert store.outbox_rows() == [] and store.get_kv("alerted") is None


def test_a_claim_takes_only_pending_rows_once(store):
    a, b, c = (store.enqueue(1, "alert", t, dedup_key=t) for t in "abc")
    store.outbox_fail(b, "rejected")
    assert store.outbox_claim_many([a, b, c], "me:1:1") == {a, c}
    assert store.outbox_claim_many([a, c], "other:2:1") == set()  # already taken
    rows = {r["id"]: r for r in store.outbox_rows()}
    assert [(rows[i]["status"], rows[i]["claimed_by"], rows[i]["attempts"]) for i in (a, b, c)] == [
        ("sending", "me:1:1", 1), ("failed", None, 0), ("sending", "me:1:1", 1)]
    store.enqueue_many([{"chat_id": 2, "kind": "notice", "text": f"n{i}", "dedup_key": f"n{i}"} for i in range(1201)])
    many = [r["id"] for r in store.outbox_rows(2)]
    assert store.outbox_claim_many(many, "me:1:1") == set(many)  # more ids than one statement takes


async def test_held_message_waits_for_its_time(server, bot, store):
    from datetime import timedelta

    from bot.models import utcnow

    store.enqueue(7, "alert", "later", dedup_key="h", not_before=utcnow() + timedelta(hours=1))
    store.enqueue(7, "alert", "now", dedup_key="n")
    await Sender(bot, store, FAST).run_once()
    assert texts(server, 7) == ["now"]
    assert store.outbox_counts() == {"pending": 1, "sent": 1}


async def test_injected_clock_decides_what_is_due(server, bot, store):
    """A simulated clock (long past, so the real one would send everything at once) holds a row
    until the simulated time reaches its ``not_before``, and stamps the send with that time."""
    from datetime import datetime, timedelta, timezone

    from bot.models import iso

    start = datetime(2001, 3, 1, 22, 0, tzinfo=timezone.utc)
    sim = {"now": start}
    quiet_end = start + timedelta(hours=8)
    store.enqueue(8, "alert", "after quiet hours", dedup_key="q", not_before=quiet_end, now=sim["now"])
    store.enqueue(8, "alert", "at once", dedup_key="a", now=sim["now"])
    sender = Sender(bot, store, FAST, clock=lambda: sim["now"])
    await sender.run_once()
    assert texts(server, 8) == ["at once"]
    sim["now"] = quiet_end - timedelta(seconds=1)
    await sender.run_once()
    assert texts(server, 8) == ["at once"]
    assert store.outbox_counts() == {"pending": 1, "sent": 1}
    sim["now"] = quiet_end
    await sender.run_once()
    assert texts(server, 8) == ["at once", "after quiet hours"]
    assert [r["sent_at"] for r in store.outbox_rows(8)] == [iso(quiet_end), iso(start)]


async def test_one_chats_backlog_does_not_hold_up_other_chats(server, bot, store, monkeypatch):
    import bot.delivery as delivery

    monkeypatch.setattr(delivery, "MAX_LOADED", 30)  # far fewer rows in memory than the backlog
    store.enqueue_many([{"chat_id": 1, "kind": "notice", "text": f"backlog {i}", "dedup_key": f"b{i}"}
                        for i in range(60)])
    store.enqueue(2, "alert", "urgent", dedup_key="u")
    cfg = replace(FAST, chat_per_second=20)  # the backlog takes about 3 s
    await Sender(bot, store, cfg).run_once()
    order = texts(server)
    assert order.index("urgent") < 5  # not after the 60 queued before it for another chat
    assert texts(server, 1) == [f"backlog {i}" for i in range(60)]


# -- flood control ------------------------------------------------------------------------


async def test_sender_keeps_under_the_servers_limits(store):
    """With the server at Telegram's limits and the sender at its defaults: no 429 at all."""
    with BotAPIServer(global_rate=30, chat_rate=1, chat_burst=1, group_per_minute=20) as server:
        store.enqueue_many([{"chat_id": 300 + i, "kind": "digest", "text": f"d{i}", "dedup_key": f"d{i}"}
                            for i in range(45)])
        store.enqueue_many([{"chat_id": 299, "kind": "alert", "text": f"a{i}", "dedup_key": f"a{i}"}
                            for i in range(3)])
        async with telegram.Bot(server.token, base_url=server.base_url) as bot:
            report = await Sender(bot, store, DeliveryConfig()).run_once()
        assert report.sent == 48
        assert server.counters.get("429", 0) == 0
        assert texts(server, 299) == ["a0", "a1", "a2"]
        stamps = [m["time"] for m in server.sent(299)]
        assert all(b - a >= 0.99 for a, b in zip(stamps, stamps[1:]))  # one per second to one chat


async def test_429_storm_is_honoured_nothing_lost_or_repeated(store):
    """The server allows far less than the sender is configured for: 429s come, are obeyed, and
    every message still arrives exactly once."""
    with BotAPIServer(global_rate=10, chat_rate=None, group_per_minute=None) as server:
        store.enqueue_many([{"chat_id": 400 + i % 12, "kind": "alert", "text": f"m{i}", "dedup_key": f"m{i}"}
                            for i in range(24)])
        server.fail_next(2, 429, retry_after=1, chat_id=405)  # and one chat is told to wait twice
        cfg = replace(FAST, global_per_second=100, chat_per_second=20, max_in_flight=8)
        async with telegram.Bot(server.token, base_url=server.base_url) as bot:
            report = await Sender(bot, store, cfg).run_once()
        counters = server.counters
        assert report.sent == 24 and report.flood_waits == counters["429"] >= 3
        assert collections.Counter(texts(server)) == {f"m{i}": 1 for i in range(24)}
        # nobody sent to a chat while it was told to wait; after a global 429 only what was
        # already in flight arrived during the penalty
        assert counters.get("early_retries", 0) == 0
        assert counters.get("early_global", 0) <= cfg.max_in_flight * report.flood_waits
        assert all(r["attempts"] == 1 for r in store.outbox_rows())  # 429s are not counted as attempts


async def test_retry_after_delays_the_chat_by_at_least_that_long(server, bot, store):
    store.enqueue(500, "alert", "first", dedup_key="f")
    server.fail_next(1, 429, retry_after=1, chat_id=500)
    started = time.monotonic()
    await Sender(bot, store, FAST).run_once()
    first_429 = next(r["time"] for r in server.requests("sendMessage") if r["status"] == 429)
    assert server.sent(500)[0]["time"] - first_429 >= 1.0
    assert server.counters.get("early_retries", 0) == 0
    assert time.monotonic() - started >= 1.0


# -- unreachable chats ---------------------------------------------------------------------------


@pytest.mark.parametrize("make_unreachable, reason", [
    (BotAPIServer.block, "blocked"),
    (BotAPIServer.deactivate, "deactivated"),
    (BotAPIServer.forget, "chat not found"),
])
async def test_unreachable_chat_is_paused_and_never_retried(server, bot, store, make_unreachable, reason):
    subscribe(store, 600)
    subscribe(store, 601)
    make_unreachable(server, 600)
    for i in range(3):
        store.enqueue(600, "alert", f"lost {i}", dedup_key=f"x{i}")
        store.enqueue(601, "alert", f"fine {i}", dedup_key=f"y{i}")

    report = await Sender(bot, store, FAST).run_once()

    assert reason in store.subscriber(600).paused.lower()
    assert store.subscriber(601).paused is None
    assert requests_to(server, 600) == 1  # the first answer was enough
    assert texts(server, 601) == ["fine 0", "fine 1", "fine 2"]
    assert {r["status"] for r in store.outbox_rows(600)} == {"failed"}
    assert all(reason in r["error"].lower() for r in store.outbox_rows(600))
    assert report.paused == [600]
    # what is queued for a paused chat later fails without a request
    store.enqueue(600, "alert", "still lost", dedup_key="x9")
    await Sender(bot, store, FAST).run_once()
    assert requests_to(server, 600) == 1
    assert store.outbox_rows(600)[-1]["status"] == "failed"


async def test_group_migration_moves_the_subscriber_and_delivers_to_the_new_id(server, bot, store):
    old, new = -555, -1009990001
    subscribe(store, old, "group")
    store.subscribe(old, "kz-unrest")
    store.conn.execute("INSERT INTO watchwords(chat_id, word, created_at) VALUES (?, 'almaty', 'now')", (old,))
    store.conn.commit()
    server.migrate(old, new)
    store.enqueue(old, "alert", "one", dedup_key="g1")
    store.enqueue(old, "alert", "two", dedup_key="g2")

    report = await Sender(bot, store, FAST).run_once()

    assert report.migrated == {old: new}
    assert texts(server, new) == ["one", "two"]
    assert texts(server, old) == []
    assert store.subscriber(old) is None
    assert store.subscriber(new).chat_type == "supergroup"
    assert store.subscribed_topics(new) == ["kz-unrest"]
    assert store.conn.execute("SELECT chat_id FROM watchwords WHERE word = 'almaty'").fetchone()[0] == new
    assert {r["chat_id"] for r in store.outbox_rows()} == {new}


# -- errors of one message ---------------------------------------------------------------------------


async def test_network_errors_are_retried_with_backoff(server, bot, store):
    store.enqueue(700, "alert", "through", dedup_key="n1")
    server.fail_next(2, drop="before", chat_id=700)  # the connection breaks twice
    report = await Sender(bot, store, FAST).run_once()
    assert texts(server, 700) == ["through"]
    assert report.retried == 2
    assert store.outbox_rows(700)[0]["attempts"] == 3


async def test_server_errors_give_up_after_max_attempts(server, bot, store, caplog):
    store.enqueue(701, "alert", "doomed", dedup_key="n2")
    store.enqueue(702, "alert", "other chat", dedup_key="n3")
    server.fail_next(50, 500, chat_id=701)
    with caplog.at_level(logging.ERROR, logger="bot.delivery"):
        await Sender(bot, store, FAST).run_once()
    row = store.outbox_rows(701)[0]
    assert row["status"] == "failed" and "gave up after 4 attempts" in row["error"]
    assert requests_to(server, 701) == FAST.max_attempts
    assert texts(server, 702) == ["other chat"]
    assert any("chat=701" in r.getMessage() for r in caplog.records if r.levelno == logging.ERROR)


@pytest.mark.parametrize("text, error", [
    ("<p>paragraph</p>", "unsupported start tag \"p\""),
    ("a < b", "unsupported start tag"),
    ("x" * 4097, "message is too long"),
    ("<b></b>", "message text is empty"),
])
async def test_rejected_message_fails_once_and_the_chat_goes_on(server, bot, store, caplog, text, error):
    store.enqueue(800, "alert", text, dedup_key="bad")
    store.enqueue(800, "alert", "after it", dedup_key="good")
    with caplog.at_level(logging.ERROR, logger="bot.delivery"):
        report = await Sender(bot, store, FAST).run_once()
    bad = store.outbox_rows(800)[0]
    assert bad["status"] == "failed" and error in bad["error"].lower()
    assert requests_to(server, 800) == 2  # the bad one once, then the next message
    assert texts(server, 800) == ["after it"]
    assert report.failed == 1
    assert any(r.levelno == logging.ERROR and "outbox=" in r.getMessage() for r in caplog.records)
    assert store.subscriber(800) is None or store.subscriber(800).paused is None


async def test_refused_token_keeps_the_messages(server, store):
    store.enqueue(900, "alert", "kept", dedup_key="t")
    wrong = telegram.Bot("999:wrong", base_url=server.base_url)  # never initialised: getMe would fail too
    with pytest.raises(DeliveryError, match="token"):
        await Sender(wrong, store, FAST).run_once()
    assert store.outbox_rows()[0]["status"] == "pending"
    assert server.counters.get("401", 0) >= 1


async def test_run_forever_sends_what_is_queued_later_and_stops(server, bot, store):
    sender = Sender(bot, store, FAST)
    stop = asyncio.Event()
    task = asyncio.create_task(sender.run_forever(stop))
    await asyncio.sleep(0.1)
    store.enqueue(950, "alert", "woken", dedup_key="w")
    sender.wake()
    await server.wait_for_async(lambda: server.sent(950), timeout=5)
    stop.set()
    await asyncio.wait_for(task, 5)
    assert texts(server, 950) == ["woken"]
    assert store.outbox_counts() == {"sent": 1}


async def test_lean_request_client_behaves_like_httpx(server, store):
    """The same outcomes through bot.delivery.LeanRequest: options, errors, pauses, retries, migration."""
    subscribe(store, 31)
    server.block(31)
    server.migrate(-32, -10032)
    server.fail_next(1, drop="before", chat_id=33)
    server.fail_next(1, 429, retry_after=1, chat_id=34)
    markup = {"inline_keyboard": [[{"text": "More", "callback_data": "more"}]]}
    store.enqueue(30, "digest", "<b>digest</b> Ω", dedup_key="a", disable_preview=True, reply_markup=markup)
    store.enqueue(31, "alert", "blocked", dedup_key="b")
    store.enqueue(-32, "alert", "to the supergroup", dedup_key="c")
    store.enqueue(33, "alert", "after a broken connection", dedup_key="d")
    store.enqueue(34, "alert", "after a 429", dedup_key="e")
    store.enqueue(35, "alert", "<p>bad</p>", dedup_key="f")
    async with telegram.Bot(server.token, base_url=server.base_url, request=LeanRequest(pool_size=4)) as bot:
        report = await Sender(bot, store, FAST).run_once()
    digest = server.sent(30)[0]
    assert (digest["plain"], digest["reply_markup"], digest["link_preview_options"]) == (
        "digest Ω", markup, {"is_disabled": True})
    assert store.subscriber(31).paused and texts(server, 31) == []
    assert texts(server, -10032) == ["to the supergroup"] and report.migrated == {-32: -10032}
    assert texts(server, 33) == ["after a broken connection"] and report.retried == 1
    assert texts(server, 34) == ["after a 429"] and report.flood_waits == 1
    assert store.outbox_rows(35)[0]["status"] == "failed"
    assert report.sent == 4
    assert {r["message_id"] for r in store.outbox_rows() if r["status"] == "sent"} >= {1}


# -- crash recovery ------------------------------------------------------------------------------------


def test_rows_left_sending_by_a_dead_sender_are_resent_live_ones_are_not(db_path, server):
    store = Store(db_path)
    dead = subprocess.run([sys.executable, "-c", "import os; print(os.getpid())"], capture_output=True, text=True)
    import socket

    host = socket.gethostname()
    store.enqueue(1, "alert", "dead", dedup_key="a")
    store.enqueue(2, "alert", "live", dedup_key="b")
    store.conn.execute("UPDATE outbox SET status = 'sending', claimed_by = ?, claimed_at = ? WHERE dedup_key = 'a'",
                       (f"{host}:{int(dead.stdout)}:1", "2026-01-01T00:00:00+00:00"))
    store.conn.execute("UPDATE outbox SET status = 'sending', claimed_by = ?, claimed_at = ? WHERE dedup_key = 'b'",
                       (f"{host}:{os.getppid()}:1", "2999-01-01T00:00:00+00:00"))
    store.conn.commit()

    async def go():
        async with telegram.Bot(server.token, base_url=server.base_url) as bot:
            return await Sender(bot, store, FAST).run_once()

    report = asyncio.run(go())
    assert report.resumed == 1
    assert texts(server) == ["dead"]
    assert store.outbox_rows(2)[0]["status"] == "sending"  # its owner still runs
    store.close()


def run_worker(db: Path, server: BotAPIServer, n: int, rate: float, in_flight: int = 4,
               client: str = "httpx") -> subprocess.Popen:
    env = {**os.environ, "PYTHONPATH": str(REPO)}
    return subprocess.Popen([sys.executable, "-m", "tests.delivery_worker", str(db), server.base_url,
                             server.token, str(n), str(rate), str(in_flight), client], env=env, cwd=REPO,
                            stdout=subprocess.PIPE, stderr=subprocess.STDOUT)


def sending_rows(db: Path) -> list[str]:
    with sqlite3.connect(db) as conn:
        return [r[0] for r in conn.execute("SELECT text FROM outbox WHERE status = 'sending'")]


@pytest.mark.parametrize("client", ["httpx", "lean"])
def test_kill_9_mid_fan_out_then_restart_delivers_each_message_once(tmp_path, server, client):
    """The kill lands the moment the server accepts a message (the worst instant): nothing is
    lost, and only a message that was in flight then (accepted, not yet committed) may repeat.
    (With more requests in flight, each of them may; the next test pins the window down.)"""
    in_flight = 1
    db, n = tmp_path / "fanout.db", 100
    worker = run_worker(db, server, n, rate=60, in_flight=in_flight, client=client)
    server.wait_for(lambda: len(server.sent()) >= 30, timeout=30)
    worker.send_signal(signal.SIGKILL)
    worker.wait(10)
    before = len(server.sent())
    in_window = sending_rows(db)  # accepted-or-not, their fate is unknown to the outbox
    assert before < n, "the worker finished before it was killed"

    again = run_worker(db, server, n, rate=200, client=client)  # enqueues the same N again: dedup keeps it once
    out, _ = again.communicate(timeout=60)
    assert again.returncode == 0, out.decode()

    counts = collections.Counter(texts(server))
    assert set(counts) == {f"fan-out {i}" for i in range(n)}  # nothing lost
    repeated = [t for t, c in counts.items() if c > 1]
    assert all(c <= 2 for c in counts.values())
    assert set(repeated) <= set(in_window)  # every repeat was in the documented window
    assert len(repeated) <= in_flight  # so at most one with one request in flight


@pytest.mark.parametrize("client", ["httpx", "lean"])
def test_the_duplicate_window_is_the_message_in_flight_when_killed(tmp_path, server, client):
    """Killed after the server accepted a message and before the sender committed it:
    exactly that one message arrives twice, every other one once."""
    db, n = tmp_path / "window.db", 30
    server.fail_next(1, hold=30, chat_id=10_010, methods=("sendMessage",))  # accepted, answer held back
    worker = run_worker(db, server, n, rate=100, client=client)
    server.wait_for(lambda: server.sent(10_010), timeout=30)
    time.sleep(0.3)
    worker.send_signal(signal.SIGKILL)
    worker.wait(10)
    assert sending_rows(db) == ["fan-out 10"]

    again = run_worker(db, server, n, rate=100, client=client)
    out, _ = again.communicate(timeout=60)
    assert again.returncode == 0, out.decode()
    counts = collections.Counter(texts(server))
    assert set(counts) == {f"fan-out {i}" for i in range(n)}
    assert {t: c for t, c in counts.items() if c > 1} == {"fan-out 10": 2}
