"""Store.insert_items: many items of a feed in a few statements, duplicates left out."""

from __future__ import annotations

from datetime import timedelta

from bot.config import FeedConfig
from bot.models import Item, utcnow


def _item(feed_id: int, n: int, *, url: str | None = None, content: str | None = None) -> Item:
    now = utcnow()
    return Item(feed_id=feed_id, key=f"guid-{n}", url=url or f"https://news.example/{n}", title=f"Title {n}",
                summary=f"Summary {n}", lang="en", published=now - timedelta(hours=1), fetched=now,
                content_hash=content or f"hash-{n}", guid=f"guid-{n}")


def test_insert_items_stores_new_ones_in_order_and_skips_every_kind_of_duplicate(store):
    store.sync_feeds([FeedConfig(url="https://a.example/rss", lang="en", name="A"),
                      FeedConfig(url="https://b.example/rss", lang="en", name="B")])
    a, b = (store.find_feed("https://a.example/rss").id, store.find_feed("https://b.example/rss").id)
    first = store.insert_items([_item(a, 1), _item(a, 2)])
    assert [i.key for i in first] == ["guid-1", "guid-2"] and all(i.id for i in first)
    batch = [_item(a, 3),
             _item(a, 1),  # same GUID in the feed
             _item(b, 4, url="https://news.example/2"),  # same canonical URL, other feed
             _item(b, 5, content="hash-1"),  # same content
             _item(b, 6)]
    stored = store.insert_items(batch)
    assert [i.key for i in stored] == ["guid-3", "guid-6"]
    assert [i.id for i in stored] == sorted(i.id for i in stored) and stored[0].id > first[1].id
    assert batch[1].id is None and batch[2].id is None
    rows = store.conn.execute("SELECT id, feed_id, title FROM items ORDER BY id").fetchall()
    assert [(r[1], r[2]) for r in rows] == [(a, "Title 1"), (a, "Title 2"), (a, "Title 3"), (b, "Title 6")]
    assert {i.id for i in stored} == {rows[2][0], rows[3][0]}
    assert store.insert_items([]) == []


def test_insert_items_handles_more_rows_than_one_statement_takes(store):
    store.sync_feeds([FeedConfig(url="https://a.example/rss", lang="en", name="A")])
    a = store.find_feed("https://a.example/rss").id
    stored = store.insert_items([_item(a, n) for n in range(1000)])
    assert len(stored) == 1000 and len({i.id for i in stored}) == 1000
    assert store.count("items") == 1000


def test_the_store_does_not_bring_numpy_into_the_service():
    """sqlite-utils would import numpy (installed for the trend chart) for nothing: about 14 MB
    in a process that runs for months. Hidden for that import only: the chart still gets it."""
    import subprocess
    import sys

    code = ("import sys, bot.service, bot.store, sqlite_utils.db as d; print('numpy' in sys.modules, d.np); "
            "import numpy; print(numpy.zeros(2).sum())")
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True).stdout.split()
    assert out == ["False", "None", "0.0"]
