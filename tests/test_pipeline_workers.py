"""The pipeline's worker processes: the same results as working in one process, and a dead
worker costs nothing.

A large cycle (at least ``POOL_MIN_FEEDS`` feeds) parses bodies and analyses new
entries in child processes. These tests serve twenty feeds (the bundled
samples, the parser's test feeds, and some that go wrong: malformed XML, an
HTML page, XXE, billion laughs) from the local feed server and poll them twice
into two SQLite files, once with ``[poll] workers = 2`` and once with ``0``.
"""

from __future__ import annotations

import asyncio
import os
import signal
import time
from pathlib import Path

import pytest

from bot.pipeline import POOL_MIN_FEEDS, Pipeline
from bot.store import Store
from tests.conftest import make_config
from tests.feedserver import feed_server, read_sample  # noqa: F401  (fixture)

BUNDLED = Path(__file__).resolve().parent.parent / "bot" / "samples"
TEST_FEEDS = ["healthy_en.xml", "healthy_ru.xml", "atom_kk.xml", "cp1251.xml", "dates.xml", "markup_atom.xml",
              "markup_rss.xml", "no_ids.xml", "repeated_guids.xml", "rss091.xml", "rss10.rdf",
              "malformed.xml", "page.html", "xxe.xml", "billion_laughs.xml"]
POLL = {"connect_timeout": 2.0, "read_timeout": 5.0, "total_timeout": 10.0}
TOPICS = [{"id": "kz-unrest"}, {"id": "csto-deployment"}, {"id": "internet-shutdown"}]  # the shipped rules

LATE_ITEM = """<?xml version="1.0" encoding="utf-8"?>
<rss version="2.0"><channel><title>Late wire</title><link>https://late.example/</link>
<description>one more report</description>
<item><title>Mobile internet cut in Zhanaozen as protesters gather on the square</title>
<link>https://late.example/news/1</link><guid>late-1</guid>
<pubDate>Wed, 07 Jan 2026 10:00:00 GMT</pubDate>
<description>Operators confirmed that mobile data was switched off in the town.</description></item>
</channel></rss>"""


def _feeds(server) -> list[dict]:
    feeds = []
    for path in sorted(BUNDLED.glob("*.xml")):
        lang = path.name[:2]
        feeds.append({"url": server.route(f"/bundled/{path.name}", body=path.read_bytes(), etag=f'"{path.name}"'),
                      "lang": lang, "name": path.stem})
    for name in TEST_FEEDS:
        lang = "ru" if "ru" in name or "1251" in name else "kk" if "kk" in name else "en"
        feeds.append({"url": server.route(f"/test/{name}", body=read_sample(name), etag=f'"{name}"'),
                      "lang": lang, "name": name})
    return feeds


def _outcome(store: Store) -> tuple[dict, dict]:
    items = {}
    for feed_name, title, lang, story, topics in store.conn.execute(
            "SELECT f.name, i.title, i.lang, i.story_id, "
            "(SELECT group_concat(m.topic, ',') FROM (SELECT DISTINCT topic FROM matches WHERE item_id = i.id "
            " ORDER BY topic) m) "
            "FROM items i JOIN feeds f ON f.id = i.feed_id"):
        assert story is not None, f"an item without a story: {title!r}"
        items[(feed_name, title)] = (lang, topics)
    errors = {name: (err or "").split(":")[0] for name, err in store.conn.execute("SELECT name, last_error FROM feeds")}
    return items, errors


@pytest.fixture
def served(feed_server):
    feeds = _feeds(feed_server)
    assert len(feeds) >= POOL_MIN_FEEDS  # large enough to start the workers
    return feed_server, feeds


def _run(cfg, store, pipeline=None):
    pipeline = pipeline or Pipeline.from_config(store, cfg)
    return pipeline, asyncio.run(pipeline.run_cycle(force=True))


def test_workers_give_the_same_items_languages_matches_and_errors(served, tmp_path):
    server, feeds = served
    results = {}
    for workers in (2, 0):
        cfg = make_config(tmp_path / f"w{workers}", poll={**POLL, "workers": workers}, feeds=feeds,
                          topics=TOPICS)
        (tmp_path / f"w{workers}").mkdir()
        with Store(cfg.storage.path) as store:
            store.sync_feeds(cfg.feeds)
            with Pipeline.from_config(store, cfg) as pipeline:
                report = asyncio.run(pipeline.run_cycle(force=True))
                assert (pipeline._pool is not None) == (workers > 0)
                if workers:  # the workers import what their work needs, not the store, HTTP or Telegram
                    loaded = pipeline._pool.submit(eval, "sorted(__import__('sys').modules)").result()
                    assert {"bot.work", "bot.parse", "feedparser"} <= set(loaded)
                    assert not {"bot.store", "sqlite_utils", "httpx", "telegram", "bot.pipeline"} & set(loaded)
            results[workers] = _outcome(store), len(report.new_items), sum(1 for n in report.new_items if n.matches)
    (items2, errors2), new2, matched2 = results[2]
    (items0, errors0), new0, matched0 = results[0]
    assert new2 == new0 == len(items2) > 40
    assert matched2 == matched0 > 5
    assert items2 == items0
    assert errors2 == errors0
    assert {k for k, v in errors2.items() if v} == {"malformed.xml", "page.html", "xxe.xml", "billion_laughs.xml"}


def test_a_killed_worker_loses_nothing(served, tmp_path):
    server, feeds = served
    late = server.route("/late.xml", body=b"<rss version='2.0'><channel><title>Late wire</title></channel></rss>",
                        etag='"empty"')
    feeds = [*feeds, {"url": late, "lang": "en", "name": "late wire"}]
    cfg = make_config(tmp_path, poll={**POLL, "workers": 2}, feeds=feeds, topics=TOPICS)
    with Store(cfg.storage.path) as store:
        store.sync_feeds(cfg.feeds)
        with Pipeline.from_config(store, cfg) as pipeline:
            _, first = _run(cfg, store, pipeline)
            assert first.new_items and pipeline._pool is not None
            for pid in list(pipeline._pool._processes):  # as the OOM killer would
                os.kill(pid, signal.SIGKILL)
            time.sleep(0.2)
            server.route("/late.xml", body=LATE_ITEM.encode(), etag='"late"')
            _, second = _run(cfg, store, pipeline)
            late_items = [n for n in second.new_items if n.feed_name == "late wire"]
            assert len(late_items) == 1 and late_items[0].story_id is not None
            assert "internet-shutdown" in {m.topic for m in late_items[0].matches}
            assert not any(f.error for f in second.feeds if f.name == "late wire")
            # the pool was rebuilt and serves the next cycle
            assert pipeline._pool is not None
            server.route("/late.xml", body=LATE_ITEM.replace("late-1", "late-2").replace(
                "/news/1", "/news/2").replace("square", "main square").encode(), etag='"later"')
            _, third = _run(cfg, store, pipeline)
            assert [n.item.title for n in third.new_items] == [
                "Mobile internet cut in Zhanaozen as protesters gather on the main square"]
        assert store.count("items") == len(first.new_items) + 2


def test_jobs_that_keep_killing_their_workers_fail_their_feeds_not_the_main_process(served, tmp_path):
    import threading

    server, feeds = served
    cfg = make_config(tmp_path, poll={**POLL, "workers": 1}, feeds=feeds, topics=TOPICS)
    main_pid = os.getpid()
    with Store(cfg.storage.path) as store:
        store.sync_feeds(cfg.feeds)
        with Pipeline.from_config(store, cfg) as pipeline:
            stop = threading.Event()

            def killer() -> None:  # every worker dies as soon as it exists, as if each job ran it out of memory
                while not stop.is_set():
                    pool = pipeline._pool
                    for pid in list(getattr(pool, "_processes", None) or ()):
                        if pid != main_pid:
                            try:
                                os.kill(pid, signal.SIGKILL)
                            except ProcessLookupError:
                                pass
                    time.sleep(0.005)

            thread = threading.Thread(target=killer, daemon=True)
            thread.start()
            try:
                _, report = _run(cfg, store, pipeline)
            finally:
                stop.set()
                thread.join()
            # the cycle completed; the jobs were not run here instead: their feeds failed and stored nothing
            assert len(report.feeds) == len(feeds)
            died = [f for f in report.feeds if f.error and "BrokenProcessPool" in f.error]
            assert died and report.new_items == [] and store.count("items") == 0
            # with the workers left alone, the next cycle stores everything
            _, again = _run(cfg, store, pipeline)
            assert again.new_items and not any(f.error and "BrokenProcessPool" in f.error for f in again.feeds)


def test_items_filed_in_small_batches_with_back_pressure_all_land_in_stories(served, tmp_path, monkeypatch):
    """A cycle larger than a filing batch: batches are filed while feeds go on arriving, feeds
    wait when too many items wait, and at the end every item is in a story, as the report says."""
    import bot.pipeline as pipeline_mod

    monkeypatch.setattr(pipeline_mod, "FILE_BATCH", 7)
    monkeypatch.setattr(pipeline_mod, "FILE_HOLD", 14)
    monkeypatch.setattr(pipeline_mod, "FILE_CHUNK", 3)
    server, feeds = served
    cfg = make_config(tmp_path, poll={**POLL, "workers": 1}, feeds=feeds, topics=TOPICS)
    with Store(cfg.storage.path) as store:
        store.sync_feeds(cfg.feeds)
        with Pipeline.from_config(store, cfg) as pipeline:
            _, report = _run(cfg, store, pipeline)
        items, _errors = _outcome(store)  # (asserts that every stored item has a story)
        assert len(report.new_items) == len(items) > 40 and store.unfiled_items(10) == []
        on_rows = dict(store.conn.execute("SELECT id, story_id FROM items"))
        assert {n.item.id: n.story_id for n in report.new_items} == on_rows
        sizes = dict(store.conn.execute("SELECT id, item_count FROM stories"))
        counted: dict[int, int] = {}
        for story in on_rows.values():
            counted[story] = counted.get(story, 0) + 1
        assert counted == sizes


def test_on_item_hands_out_every_new_item_once_finished_and_the_report_keeps_the_matched(served, tmp_path,
                                                                                        monkeypatch):
    """run_cycle(on_item=...) (what `poll --json` uses): each new item is handed out once, in its
    story; the unmatched ones as they are filed, the matched ones at the end; the report holds the
    matched ones only and counts them all. A failing consumer does not stop the cycle."""
    import bot.pipeline as pipeline_mod

    monkeypatch.setattr(pipeline_mod, "FILE_BATCH", 10)  # several filings in the cycle
    monkeypatch.setattr(pipeline_mod, "FILE_HOLD", 20)
    server, feeds = served
    outcomes = {}
    for name, consumer in (("collect", None), ("failing", "fail")):
        cfg = make_config(tmp_path / name, poll={**POLL, "workers": 1}, feeds=feeds, topics=TOPICS)
        (tmp_path / name).mkdir()
        handed = []
        filed_then = []

        def on_item(new, consumer=consumer, handed=handed, filed_then=filed_then,
                    store_path=cfg.storage.path):
            handed.append(new)
            with Store(store_path) as reader:  # what is committed when the item is handed out
                filed_then.append(reader.conn.execute("SELECT story_id FROM items WHERE id = ?",
                                                      (new.item.id,)).fetchone()[0])
            if consumer == "fail":
                raise RuntimeError("the consumer broke")

        with Store(cfg.storage.path) as store:
            store.sync_feeds(cfg.feeds)
            with Pipeline.from_config(store, cfg) as pipeline:
                report = asyncio.run(pipeline.run_cycle(force=True, on_item=on_item))
            items, _errors = _outcome(store)  # (asserts every stored item is in a story)
            on_rows = dict(store.conn.execute("SELECT id, story_id FROM items"))
        ids = [n.item.id for n in handed]
        assert len(ids) == len(set(ids)) == len(on_rows) == report.new_count > 40
        assert {n.item.id: n.story_id for n in handed} == on_rows
        assert filed_then == [n.story_id for n in handed]  # in its story, committed, when handed out
        matched = [n for n in handed if n.matches]
        assert len(matched) == report.matched_count > 5
        assert report.new_items == matched  # only the matched ones are held
        assert handed[-len(matched):] == matched  # ... and handed out last
        assert all(n.title_target == n.item.title for n in handed if n.item.lang == "en")
        outcomes[name] = items
    assert outcomes["collect"] == outcomes["failing"]
