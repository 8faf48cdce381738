"""Retention keeps the database bounded and never drops what is still to be sent."""

from __future__ import annotations

import asyncio
from datetime import datetime, timedelta, timezone

from bot.models import Item, Match, iso
from bot.stories import StoryIndex

UTC = timezone.utc


def add_items(store, n, fetched, prefix):
    feed = store.add_feed(f"https://example.org/{prefix}.xml", "en", prefix)
    index = StoryIndex(store, 72)
    ids = []
    for i in range(n):
        item = Item(feed_id=feed.id, key=f"{prefix}-{i}", url=f"https://example.org/{prefix}/{i}",
                    title=f"{prefix} report number {i} about event {i} in town {i}", summary="x " * 200,
                    lang="en", published=fetched, fetched=fetched, content_hash=f"{prefix}-{i}")
        with store.conn:
            store.insert_item(item)
            store.save_matches(item.id, [Match("kz-unrest", 1.0, ["protest"])])
        index.assign(item, set(), fetched)
        ids.append(item.id)
    return ids


def test_purge_deletes_old_data_keeps_recent_and_pending(store):
    now = datetime(2026, 6, 1, tzinfo=UTC)
    old = add_items(store, 50, now - timedelta(days=40), "old")
    new = add_items(store, 5, now - timedelta(days=1), "new")
    store.ensure_subscriber(1, lang="en", digest_time="08:00", timezone="UTC", now=now - timedelta(days=60))
    store.enqueue(1, "alert", "sent long ago", dedup_key="a", now=now - timedelta(days=40))
    store.conn.execute("UPDATE outbox SET status = 'sent' WHERE dedup_key = 'a'")
    store.enqueue(1, "alert", "still pending", dedup_key="b", now=now - timedelta(days=40))
    store.conn.commit()

    counts = store.purge_older_than(now - timedelta(days=30))

    assert counts["items"] == 50 and counts["outbox"] == 1
    assert store.count("items") == 5
    assert all(store.item(i) is None for i in old) and all(store.item(i) for i in new)
    assert store.count("matches") == 5  # matches went with their items
    assert store.count("stories", "WHERE id NOT IN (SELECT story_id FROM items)") == 0
    assert [r[0] for r in store.conn.execute("SELECT text FROM outbox")] == ["still pending"]


def test_file_size_stays_bounded_under_a_steady_load(store, db_path):
    """Ten 'days' of the same load with a three-day retention: the file stops growing."""
    start = datetime(2026, 6, 1, tzinfo=UTC)
    sizes = []
    for day in range(10):
        now = start + timedelta(days=day)
        add_items(store, 200, now, f"day{day}")
        store.purge_older_than(now - timedelta(days=3))
        sizes.append(db_path.stat().st_size)
    assert store.count("items") == 4 * 200  # days 6-9: the cutoff day itself is kept
    # after the window fills (day 4), the file may not keep growing with each day
    assert max(sizes[5:]) <= sizes[4] * 1.25, sizes


def test_alert_records_live_as_long_as_their_story(store):
    """A story still reported after the retention age keeps its alert records, so its next
    report does not alert its readers again; the records of a story that is gone go."""
    now = datetime(2026, 6, 1, tzinfo=UTC)
    [old_item] = add_items(store, 1, now - timedelta(days=40), "gone")
    [alive_item] = add_items(store, 1, now - timedelta(days=1), "alive")
    gone_story, alive_story = store.item(old_item).story_id, store.item(alive_item).story_id
    with store.conn:
        store.record_alert(1, gone_story, sources=1, langs="en", updates=0, now=now - timedelta(days=40))
        store.record_alert(1, alive_story, sources=1, langs="en", updates=0, now=now - timedelta(days=40))
    store.purge_older_than(now - timedelta(days=30))
    assert store.alert_record(1, alive_story) is not None
    assert store.alert_record(1, gone_story) is None


async def test_items_a_feed_still_lists_outlive_retention_and_are_never_stored_twice(tmp_path):
    """A slow feed keeps an undated item listed for longer than the retention age. Purging it
    would store it again at the feed's next change, as new: a second alert for an old report."""
    import random

    from bot.pipeline import Pipeline
    from bot.store import Store
    from tests.conftest import make_config
    from tests.feedserver import FeedServer, Route

    def body(*items: str) -> bytes:
        entries = "".join(f"<item><guid>{g}</guid><title>Akimat notice {g}</title>"
                          f"<description>Notice {g} for residents.</description></item>" for g in items)
        return f"<rss version='2.0'><channel><title>Akimat</title>{entries}</channel></rss>".encode()

    with FeedServer() as server:
        url = server.route("/slow.xml", Route(body=body("a", "b")))
        cfg = make_config(tmp_path, feeds=[{"url": url, "lang": "en", "name": "Akimat"}])
        with Store(cfg.storage.path) as store:
            store.sync_feeds(cfg.feeds)

            async def cycle() -> list[str]:
                report = await Pipeline(store, cfg, rng=random.Random(1)).run_cycle(force=True)
                return sorted(n.item.title for n in report.new_items)

            assert await cycle() == ["Akimat notice a", "Akimat notice b"]
            later = datetime.now(UTC) + timedelta(days=40)  # both are past the retention age then
            server.route("/slow.xml", Route(body=body("b", "c")))  # "a" is no longer listed
            assert await cycle() == ["Akimat notice c"]
            counts = store.purge_older_than(later - timedelta(days=30))
            assert counts["items"] == 1  # "a"; "b" and "c" are still listed
            titles = [r[0] for r in store.conn.execute("SELECT title FROM items ORDER BY id")]
            assert titles == ["Akimat notice b", "Akimat notice c"]
            server.route("/slow.xml", Route(body=body("b", "c", "d")))
            assert await cycle() == ["Akimat notice d"]  # "b" is not new again
            store.conn.execute("UPDATE feeds SET retired_at = ?", (iso(later),))  # a retired feed keeps nothing
            store.conn.commit()
            assert store.purge_older_than(later + timedelta(days=31))["items"] == 3


def test_the_allocator_is_asked_to_give_freed_memory_back_where_it_can():
    import platform

    from bot.service import give_back_memory

    # glibc has malloc_trim (the service calls it after each retention run); musl and macOS do not
    assert give_back_memory() is (platform.libc_ver()[0] == "glibc")
    assert give_back_memory() is (platform.libc_ver()[0] == "glibc")  # (the second call uses the looked-up one)
