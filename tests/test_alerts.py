"""Who gets what: alert and digest planning over a real pipeline, store and feed server.

Feeds are served on 127.0.0.1 and polled by the real pipeline into a real
SQLite file; readers are created with the store's own methods; what is
checked is the outbox (what would be sent, to whom, when).
"""

from __future__ import annotations

import asyncio
from datetime import datetime, timedelta, timezone
from email.utils import format_datetime
from pathlib import Path

import pytest

from bot import alerts
from bot.config import load
from bot.pipeline import Pipeline
from tests.conftest import make_config
from tests.feedserver import FeedServer, Route

REPO = Path(__file__).resolve().parent.parent
TOPICS = load(REPO / "config.toml", env={}).topics
UTC = timezone.utc

EN = ("csto-en", "CSTO sends peacekeeping troops to Kazakhstan",
      "The first units of the Collective Security Treaty Organization landed in Almaty.")
RU = ("csto-ru", "ОДКБ направила миротворческие войска в Казахстан",
      "Первые подразделения Организации Договора о коллективной безопасности прибыли в Алматы.")
KK = ("csto-kk", "ҰҚШҰ бітімгершілік күштері Қазақстанға жіберілді",
      "Ұжымдық қауіпсіздік туралы шарт ұйымының алғашқы бөлімшелері Алматыға келді.")
QUIET = ("chess", "Astana hosts a chess festival", "Players from twelve countries met in the capital.")


def rss(items, published: datetime) -> bytes:
    body = "".join(
        f"<item><guid>{g}</guid><title>{t}</title><link>https://news.example.kz/{g}</link>"
        f"<description>{d}</description><pubDate>{format_datetime(published)}</pubDate></item>"
        for g, t, d in items)
    return (f"<?xml version='1.0' encoding='utf-8'?><rss version='2.0'><channel><title>W</title>{body}"
            "</channel></rss>").encode()


@pytest.fixture
def world(tmp_path, store):
    """A feed server with one feed per language, a config, a pipeline."""
    with FeedServer() as server:
        feeds = [{"url": server.url(f"/{lang}.xml"), "lang": lang, "name": f"Wire {lang.upper()}"}
                 for lang in ("en", "ru", "kk")]
        for lang in ("en", "ru", "kk"):
            server.route(f"/{lang}.xml", Route(body=rss([], datetime.now(UTC))))
        cfg = make_config(tmp_path, feeds=feeds, topics=[])
        cfg = cfg.__class__(**{**cfg.__dict__, "topics": TOPICS})
        store.sync_feeds(cfg.feeds)
        pipeline = Pipeline.from_config(store, cfg)

        class World:
            pass

        w = World()
        w.server, w.cfg, w.store, w.pipeline = server, cfg, store, pipeline

        def publish(lang, items, published=None):
            server.route(f"/{lang}.xml", Route(body=rss(items, published or datetime.now(UTC))))

        def poll(now=None):
            report = asyncio.run(pipeline.run_cycle(force=True))
            return alerts.plan_alerts(store, cfg, report.new_items, now or datetime.now(UTC))

        def reader(chat, topics=("csto-deployment",), **settings):
            store.ensure_subscriber(chat, lang="en", digest_time="08:00", timezone="Asia/Almaty",
                                    now=datetime.now(UTC) - timedelta(days=2))
            for t in topics:
                store.subscribe(chat, t)
            if settings:
                store.update_subscriber(chat, **settings)

        w.publish, w.poll, w.reader = publish, poll, reader
        yield w


def outbox(store, chat=None):
    sql = "SELECT chat_id, kind, text, dedup_key, next_attempt_at FROM outbox"
    rows = store.conn.execute(sql + (" WHERE chat_id = ?" if chat else "") + " ORDER BY id",
                              (chat,) if chat else ()).fetchall()
    return [dict(zip(("chat", "kind", "text", "key", "not_before"), r)) for r in rows]


def test_one_alert_per_story_and_one_update_when_it_grows(world):
    world.reader(1)
    world.reader(2, topics=("kz-unrest",))  # a topic this story does not match
    world.reader(3, mode="digest")  # digest only: no alerts
    world.publish("en", [EN, QUIET])
    assert world.poll() == 1
    [alert] = outbox(world.store)
    assert alert["chat"] == 1 and alert["kind"] == "alert" and "peacekeeping troops" in alert["text"]

    world.publish("en", [EN, QUIET])  # polled again: nothing new, nothing queued
    assert world.poll() == 0

    world.publish("ru", [RU])  # the same event in a new language: the one update
    assert world.poll() == 1
    update = outbox(world.store, 1)[-1]
    assert update["key"].endswith(":1") and "RU" in update["text"]

    world.publish("kk", [KK])  # another language again: the story is in the digest, no third alert
    assert world.poll() == 0
    assert len(outbox(world.store, 1)) == 2
    assert outbox(world.store, 2) == [] and outbox(world.store, 3) == []


def test_alerts_and_digests_name_the_topic_in_the_reader_language(world):
    world.reader(1)
    world.reader(2, lang="kk")
    world.publish("en", [EN])
    assert world.poll() == 2
    assert "CSTO troop deployments" in outbox(world.store, 1)[0]["text"]
    assert "ҰҚШҰ әскерлерінің орналастырылуы" in outbox(world.store, 2)[0]["text"]
    reader = alerts.reader_for(world.store, world.store.subscriber(2))
    [digest] = alerts.digest_messages(world.store, world.cfg, reader, None, datetime.now(UTC))
    assert "ҰҚШҰ әскерлерінің орналастырылуы" in digest and "CSTO troop deployments" not in digest


def test_quiet_hours_hold_alerts_until_they_end(world):
    now = datetime.now(UTC)
    local = now.astimezone(__import__("zoneinfo").ZoneInfo("Asia/Almaty"))
    start = (local - timedelta(hours=1)).strftime("%H:%M")
    end = (local + timedelta(hours=2)).strftime("%H:%M")
    world.reader(5, quiet_start=start, quiet_end=end)
    world.publish("en", [EN])
    # planned at the time after the poll, as the service does (a `now` taken before it can fall a
    # second boundary earlier than the stored fetch time, and the story would not be in view yet)
    assert world.poll() == 1
    [alert] = outbox(world.store, 5)
    held = datetime.fromisoformat(alert["not_before"])
    assert timedelta(hours=1, minutes=58) < held - now <= timedelta(hours=2)


def test_stale_reports_are_stored_and_digested_not_alerted(world):
    world.reader(6)
    world.publish("en", [EN], published=datetime.now(UTC) - timedelta(days=5))
    assert world.poll() == 0
    assert outbox(world.store) == []
    sub = world.store.subscriber(6)
    messages = alerts.digest_messages(world.store, world.cfg, alerts.reader_for(world.store, sub),
                                      datetime.now(UTC) - timedelta(hours=1), datetime.now(UTC))
    assert any("peacekeeping troops" in m for m in messages)


def test_paused_readers_get_nothing(world):
    world.reader(7, paused="blocked")
    world.publish("en", [EN])
    assert world.poll() == 0


def test_watch_words_alert_their_owner(world):
    world.reader(8, topics=())
    world.store.add_watchword(8, "Almaty", "en", {"ru": ["Алматы"], "kk": ["Алматы"]})
    world.pipeline.matcher.set_watchwords(world.store.all_watchwords())
    world.publish("ru", [RU])
    assert world.poll() == 1
    [alert] = outbox(world.store, 8)
    assert "Алматы" in alert["text"] or "Almaty" in alert["text"]


def seeded_digest_reader(world, chat, digest_time, **settings):
    world.reader(chat, mode="digest", digest_time=digest_time, **settings)


@pytest.mark.parametrize("minutes_late, expected", [
    (10, 1),          # the service was down at digest time, back 10 minutes later: sent
    (5 * 60, 1),      # five hours late, inside the 6-hour grace window: still sent
    (7 * 60, 0),      # seven hours late: skipped (yesterday's news), not sent
])
def test_a_missed_digest_is_sent_once_within_the_grace_window(world, minutes_late, expected):
    world.publish("en", [EN])
    asyncio.run(world.pipeline.run_cycle(force=True))
    # the items were first seen a day ago
    world.store.conn.execute("UPDATE items SET fetched = ?", ((datetime.now(UTC) - timedelta(days=1)).isoformat(),))
    world.store.conn.commit()
    now = datetime.now(UTC)
    due_local = (now - timedelta(minutes=minutes_late)).astimezone(__import__("zoneinfo").ZoneInfo("Asia/Almaty"))
    seeded_digest_reader(world, 9, due_local.strftime("%H:%M"))
    world.store.mark_digest(9, now - timedelta(days=1, minutes=minutes_late + 1))  # yesterday's was sent
    world.store.conn.commit()
    assert alerts.plan_digests(world.store, world.cfg, now) == expected
    assert alerts.plan_digests(world.store, world.cfg, now + timedelta(seconds=30)) == 0  # never twice
    digests = [m for m in outbox(world.store, 9) if m["kind"] == "digest"]
    assert len(digests) == expected
    if expected:
        assert "peacekeeping troops" in digests[0]["text"]


def test_an_empty_day_says_so_or_is_skipped(world):
    now = datetime.now(UTC)
    due_local = (now - timedelta(minutes=1)).astimezone(__import__("zoneinfo").ZoneInfo("Asia/Almaty"))
    seeded_digest_reader(world, 10, due_local.strftime("%H:%M"))
    seeded_digest_reader(world, 11, due_local.strftime("%H:%M"), skip_empty_digest=True)
    assert alerts.plan_digests(world.store, world.cfg, now) == 1
    [only] = outbox(world.store)
    assert only["chat"] == 10 and only["kind"] == "digest"


def test_alerts_owed_by_a_cycle_that_died_before_planning_them_are_planned_by_the_next(world, tmp_path):
    from bot.service import Service

    world.reader(501)
    service = Service(world.cfg, world.store)
    try:
        asyncio.run(service.poll_once(force=True))  # nothing matches yet
        assert outbox(world.store) == []
        world.publish("en", [EN, QUIET])
        # what a crash leaves: the cycle stored and filed the items, and nothing planned their alerts
        report = asyncio.run(Pipeline.from_config(world.store, world.cfg).run_cycle(force=True))
        assert {n.item.title for n in report.new_items} == {EN[1], QUIET[1]}
        assert outbox(world.store) == []
    finally:
        service.pipeline.close()
    service = Service(world.cfg, world.store)  # the restarted service
    try:
        assert asyncio.run(service.poll_once(force=True)) == 1
        sent = outbox(world.store, 501)
        assert len(sent) == 1 and sent[0]["kind"] == "alert" and "CSTO" in sent[0]["text"]
        assert asyncio.run(service.poll_once(force=True)) == 0  # and never again
        assert len(outbox(world.store, 501)) == 1
    finally:
        service.pipeline.close()


def test_a_matched_item_whose_story_failed_is_alerted_once_a_later_cycle_files_it(world):
    from bot.service import Service

    world.reader(502)
    service = Service(world.cfg, world.store)
    try:
        asyncio.run(service.poll_once(force=True))  # nothing yet: the alert mark is set
        with world.store.conn:  # the story of the CSTO report cannot be written this time
            world.store.conn.execute("CREATE TRIGGER refuse BEFORE INSERT ON stories WHEN NEW.headline LIKE 'CSTO sends%' "
                                     "BEGIN SELECT RAISE(ABORT, 'refused by the test trigger'); END")
        world.publish("en", [EN, QUIET])
        assert asyncio.run(service.poll_once(force=True)) == 0  # stored and matched, in no story: no alert
        stored = {t: s for t, s in world.store.conn.execute("SELECT title, story_id FROM items")}
        assert stored[EN[1]] is None and stored[QUIET[1]] is not None
        with world.store.conn:
            world.store.conn.execute("DROP TRIGGER refuse")
        # nothing new in the feeds: the cycle files the item left over, and its alert goes out
        assert asyncio.run(service.poll_once(force=True)) == 1
        sent = outbox(world.store, 502)
        assert len(sent) == 1 and "peacekeeping troops" in sent[0]["text"]
        assert asyncio.run(service.poll_once(force=True)) == 0
        assert len(outbox(world.store, 502)) == 1
    finally:
        service.pipeline.close()


def test_items_a_dead_cycle_left_in_no_story_are_filed_by_the_next(world):
    world.publish("en", [EN, QUIET])
    world.publish("ru", [RU])
    world.poll()
    # what a crash between storing and filing leaves: items stored in no story
    with world.store.conn:
        world.store.conn.execute("UPDATE items SET story_id = NULL")
        world.store.conn.execute("DELETE FROM story_keys")
        world.store.conn.execute("DELETE FROM story_items")
        world.store.conn.execute("DELETE FROM stories")
    world.pipeline.stories.forget()
    assert len(world.store.unfiled_items(10)) == 3
    world.poll()  # nothing new in the feeds
    rows = dict(world.store.conn.execute("SELECT title, story_id FROM items"))
    assert world.store.unfiled_items(10) == [] and rows[EN[1]] == rows[RU[1]] != rows[QUIET[1]]
