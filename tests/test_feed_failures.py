"""One poll cycle with healthy feeds and one feed that goes wrong, for every way a feed goes wrong.

Each case runs the real pipeline (bot.pipeline) against the local feed server
and a real SQLite file, and checks that the cycle completes, the healthy feeds
are fully stored, and the bad feed is recorded with its error and backed off
(or, for feeds that are odd but usable, stored correctly).
"""

from __future__ import annotations

import logging
import random
import re
from datetime import timedelta

import pytest

from bot.models import utcnow
from bot.pipeline import Pipeline
from bot.store import Store
from tests.conftest import make_config
from tests.feedserver import Route, feed_server, read_sample  # noqa: F401  (fixture)
from tests.test_parse import BAD_CHAR, count_items, hostile_feed

HEALTHY = [("/ok/en.xml", "healthy_en.xml", "en"), ("/ok/ru.xml", "healthy_ru.xml", "ru"),
           ("/ok/kk.xml", "atom_kk.xml", "kk")]
POLL = {"interval_seconds": 300, "connect_timeout": 1.0, "read_timeout": 1.0, "total_timeout": 2.0,
        "max_body_bytes": 64 * 1024, "max_decompressed_bytes": 256 * 1024, "max_redirects": 3,
        "max_items_per_feed": 20}


class World:
    """The server routes, the config, the store and a way to run a cycle."""

    def __init__(self, server, tmp_path, bad_url: str, bad_lang: str = "en"):
        self.server = server
        for path, sample, _ in HEALTHY:
            server.route(path, body=read_sample(sample), etag=f'"{sample}"',
                         last_modified="Wed, 07 Jan 2026 09:00:00 GMT")
        feeds = [{"url": server.url(p), "lang": lang, "name": s} for p, s, lang in HEALTHY]
        feeds.append({"url": bad_url, "lang": bad_lang, "name": "the bad one"})
        self.cfg = make_config(tmp_path, poll=POLL, feeds=feeds)
        self.store = Store(self.cfg.storage.path)
        self.store.sync_feeds(self.cfg.feeds)
        self.bad = self.store.find_feed(bad_url)

    async def cycle(self, force: bool = False):
        self.started = utcnow().replace(microsecond=0)  # stored times have whole seconds
        return await Pipeline(self.store, self.cfg, rng=random.Random(42)).run_cycle(force=force)

    def items(self, feed_id: int) -> list[tuple]:
        return self.store.conn.execute(
            "SELECT title, summary, url, guid, published FROM items WHERE feed_id = ? ORDER BY id",
            (feed_id,)).fetchall()

    def assert_healthy_stored(self, report) -> None:
        for path, sample, _ in HEALTHY:
            feed = self.store.find_feed(self.server.url(path))
            fr = next(f for f in report.feeds if f.feed_id == feed.id)
            expected = count_items(read_sample(sample))
            assert fr.error is None and fr.new == expected
            assert len(self.items(feed.id)) == expected
            assert feed.failures == 0 and feed.last_error is None and feed.etag == f'"{sample}"'

    def close(self) -> None:
        self.store.close()


@pytest.fixture
def world(feed_server, tmp_path):
    made = []

    def make(bad_url: str, bad_lang: str = "en") -> World:
        w = World(feed_server, tmp_path, bad_url, bad_lang)
        made.append(w)
        return w

    yield make
    for w in made:
        w.close()


def bomb() -> bytes:
    import gzip
    return gzip.compress(b"<rss>" + b"\0" * (20 * 1024 * 1024))


def redirect_loop(srv) -> str:
    srv.route("/loop/a", status=301, location="/loop/b")
    srv.route("/loop/b", status=302, location="/loop/a")
    return srv.url("/loop/a")


def one(route: Route):
    return lambda srv: srv.route("/bad.xml", route)


ERROR_CASES = [
    ("timeout", one(Route(delay=1.5, body=read_sample("healthy_en.xml"))), "fetch: read timed out"),
    ("slow drip", one(Route(body=b"<rss>" + b" " * 4000 + b"</rss>", drip=0.1, drip_size=32)),
     "fetch: timed out after 2s"),
    ("500", one(Route(status=500, body=b"internal error")), "fetch: HTTP 500"),
    ("503 retry-after", one(Route(status=503, headers={"Retry-After": "7200"})), "fetch: HTTP 503"),
    ("404", one(Route(status=404, body=b"missing")), "fetch: HTTP 404"),
    ("malformed xml", one(Route(body=read_sample("malformed.xml"))), "parse: malformed feed"),
    ("html page", one(Route(body=read_sample("page.html"), content_type="text/html; charset=utf-8")),
     "parse: not a feed (an HTML page)"),
    ("over size cap", one(Route(body=b"<rss>" + b"x" * (100 * 1024))), "fetch: body over"),
    ("over size cap, streamed", one(Route(body=b"<rss>" + b"x" * (100 * 1024), content_length=False)),
     "fetch: body over"),
    ("gzip bomb", one(Route(body=bomb(), raw_encoding="gzip")), "fetch: decompressed body over"),
    ("redirect loop", redirect_loop, "fetch: redirect loop"),
    ("empty body", one(Route(body=b"")), "parse: empty body"),
    ("random bytes", one(Route(body=random.Random(5).randbytes(5000), content_type="application/octet-stream")),
     "parse: not a feed"),
    ("xxe", one(Route(body=read_sample("xxe.xml"))), "parse: refused"),
    ("a flood of items", one(Route(body=b"<rss version='2.0'><channel>"
                                   + b"".join(b"<item><title>n%d</title></item>" % i for i in range(401))
                                   + b"</channel></rss>")), "parse: refused, more than 400 items in one body"),
    ("billion laughs", one(Route(body=read_sample("billion_laughs.xml"))), "parse: refused"),
]


@pytest.mark.parametrize("case, setup, error", ERROR_CASES, ids=[c[0] for c in ERROR_CASES])
async def test_bad_feed_is_recorded_and_backed_off(world, feed_server, case, setup, error):
    w = world(setup(feed_server))
    report = await w.cycle()
    assert len(report.feeds) == 4  # the cycle completed for every feed
    w.assert_healthy_stored(report)
    bad = w.store.feed(w.bad.id)
    fr = next(f for f in report.feeds if f.feed_id == bad.id)
    assert fr.error is not None and fr.error.startswith(error), fr.error
    assert bad.last_error == fr.error and bad.failures == 1
    assert w.items(bad.id) == []
    assert bad.next_poll_at >= w.started + timedelta(seconds=w.cfg.poll.interval_seconds - 1)
    assert bad.id not in {f.id for f in w.store.due_feeds(w.started + timedelta(seconds=60))}
    if case == "503 retry-after":
        assert bad.next_poll_at >= w.started + timedelta(seconds=7200)
    if case == "xxe":
        assert "root:" not in str(w.store.conn.execute("SELECT group_concat(title || summary) FROM items").fetchone())
    # the next cycle tries the bad feed again only when forced, and backs off further
    await w.cycle(force=True)
    again = w.store.feed(w.bad.id)
    assert again.failures == 2 and again.last_error.startswith(error)


async def test_410_retires_the_feed(world, feed_server):
    w = world(feed_server.route("/gone.xml", status=410))
    report = await w.cycle()
    w.assert_healthy_stored(report)
    fr = next(f for f in report.feeds if f.feed_id == w.bad.id)
    assert fr.retired and fr.error == "fetch: HTTP 410 Gone"
    bad = w.store.feed(w.bad.id)
    assert bad.retired and bad.last_error == "fetch: HTTP 410 Gone"
    assert bad.id not in {f.id for f in w.store.feeds()}
    before = len(feed_server.requests_to("/gone.xml"))
    await w.cycle(force=True)
    assert len(feed_server.requests_to("/gone.xml")) == before  # retired feeds are not polled


async def test_connection_refused_is_recorded(world):
    import socket
    s = socket.socket()
    s.bind(("127.0.0.1", 0))
    port = s.getsockname()[1]
    s.close()
    w = world(f"http://127.0.0.1:{port}/feed.xml")
    report = await w.cycle()
    w.assert_healthy_stored(report)
    assert w.store.feed(w.bad.id).last_error.startswith("fetch: cannot connect")


# -- odd but usable feeds ----------------------------------------------------------------

def titles_in(body: bytes, encoding: str) -> list[str]:
    return re.findall(r"<title>([^<]+)</title>", body.decode(encoding))[1:]


@pytest.mark.parametrize("content_type", ["application/rss+xml", "text/xml; charset=utf-8"])
async def test_windows_1251_declared_in_prolog(world, feed_server, content_type):
    body = read_sample("cp1251.xml")
    w = world(feed_server.route("/cp1251.xml", body=body, content_type=content_type), "ru")
    report = await w.cycle()
    w.assert_healthy_stored(report)
    assert [t for t, *_ in w.items(w.bad.id)] == titles_in(body, "cp1251")
    assert w.store.feed(w.bad.id).last_error is None


async def test_wrong_charset_header(world, feed_server):
    # the windows-1251 sample re-encoded as UTF-8 (and declared so), served with a windows-1251 header
    body = read_sample("cp1251.xml").decode("cp1251").replace("windows-1251", "utf-8").encode("utf-8")
    w = world(feed_server.route("/wrong.xml", body=body, content_type="text/xml; charset=windows-1251"), "ru")
    report = await w.cycle()
    w.assert_healthy_stored(report)
    assert [t for t, *_ in w.items(w.bad.id)] == titles_in(body, "utf-8")


async def test_working_permanent_redirect_moves_the_feed(world, feed_server):
    new = feed_server.route("/new-home.xml", body=read_sample("markup_rss.xml"), etag='"m"')
    feed_server.route("/old-home.xml", status=301, location="/new-home.xml")
    w = world(feed_server.url("/old-home.xml"))
    report = await w.cycle()
    w.assert_healthy_stored(report)
    moved = w.store.feed(w.bad.id)
    assert moved.url == new and moved.last_error is None
    assert len(w.items(moved.id)) == count_items(read_sample("markup_rss.xml"))
    feed_server.reset_stats()
    await w.cycle(force=True)
    assert feed_server.requests_to("/old-home.xml") == []
    assert feed_server.requests_to("/new-home.xml")[0].headers["if-none-match"] == '"m"'


async def test_temporary_redirect_keeps_the_url(world, feed_server):
    feed_server.route("/tmp-target.xml", body=read_sample("markup_rss.xml"))
    old = feed_server.route("/tmp-old.xml", status=302, location="/tmp-target.xml")
    w = world(old)
    await w.cycle()
    assert w.store.feed(w.bad.id).url == old and w.items(w.bad.id)


async def test_permanent_redirect_to_a_url_another_feed_has(world, feed_server):
    taken = feed_server.url("/ok/en.xml")
    w = world(feed_server.route("/dup.xml", status=301, location="/ok/en.xml"))
    report = await w.cycle()
    assert len(report.feeds) == 4
    assert w.store.feed(w.bad.id).url == feed_server.url("/dup.xml")
    assert w.store.find_feed(taken).id != w.bad.id


async def test_hostile_text(world, feed_server):
    w = world(feed_server.route("/hostile.xml", body=hostile_feed()))
    report = await w.cycle()
    w.assert_healthy_stored(report)
    rows = w.items(w.bad.id)
    assert len(rows) == count_items(hostile_feed())
    for title, summary, *_ in rows:
        assert len(title) <= 500 and len(summary) <= 1000
        assert not BAD_CHAR.search(title + summary)
        assert "<" not in title + summary and "steal" not in summary and "alert" not in title


async def test_repeated_guids_links_and_contents_are_stored_once(world, feed_server):
    w = world(feed_server.route("/rep.xml", body=read_sample("repeated_guids.xml")))
    report = await w.cycle()
    w.assert_healthy_stored(report)
    assert sorted(t for t, *_ in w.items(w.bad.id)) == ["Different story", "First copy of the story"]


async def test_items_without_guid_or_link(world, feed_server):
    body = read_sample("no_ids.xml")
    w = world(feed_server.route("/noid.xml", body=body))
    await w.cycle()
    first = w.items(w.bad.id)
    assert len(first) == count_items(body) and all(g is None for *_, g, _ in first)
    # a changed body with one more item: only that one is new
    extra = b"<item><title>A late addition</title><description>New text.</description></item></channel>"
    feed_server.route("/noid.xml", body=body.replace(b"</channel>", extra))
    report = await w.cycle(force=True)
    fr = next(f for f in report.feeds if f.feed_id == w.bad.id)
    assert fr.new == 1 and len(w.items(w.bad.id)) == len(first) + 1


async def test_items_with_a_link_and_no_text_are_each_stored_once(world, feed_server):
    # title and description are both optional in RSS: an item of only a link has no content to hash
    items = "".join(f"<item><link>https://wire.example/photo/{i}</link></item>" for i in range(3))
    body = f'<?xml version="1.0" encoding="utf-8"?><rss version="2.0"><channel><title>Photos</title>{items}' \
           '<item><title>With a title</title><link>https://wire.example/story/9</link></item></channel></rss>'
    w = world(feed_server.route("/links.xml", body=body.encode()))
    await w.cycle()
    assert len(w.items(w.bad.id)) == 4
    report = await w.cycle(force=True)
    assert next(f for f in report.feeds if f.feed_id == w.bad.id).new == 0 and len(w.items(w.bad.id)) == 4


async def test_items_that_all_link_to_the_front_page_are_told_apart(world, feed_server):
    # some feeds give every item the site's address: it is no item's identity
    guid = '<guid isPermaLink="false">m-{}</guid>'
    items = "".join(f"<item><title>Council meeting number {i}</title><link>https://akimat.example/</link>"
                    f"{guid.format(i) if i % 2 else ''}</item>" for i in range(4))
    body = f'<?xml version="1.0" encoding="utf-8"?><rss version="2.0"><channel><title>Akimat</title>{items}' \
           '<item><title>An article</title><link>https://akimat.example/news/5?utm_source=rss</link></item>' \
           '<item><title>The article again</title><link>https://akimat.example/news/5</link></item></channel></rss>'
    w = world(feed_server.route("/front.xml", body=body.encode()))
    await w.cycle()
    titles = sorted(t for t, *_ in w.items(w.bad.id))
    assert titles == ["An article"] + [f"Council meeting number {i}" for i in range(4)]
    report = await w.cycle(force=True)
    assert next(f for f in report.feeds if f.feed_id == w.bad.id).new == 0 and len(w.items(w.bad.id)) == 5


async def test_bad_and_future_dates(world, feed_server):
    w = world(feed_server.route("/dates.xml", body=read_sample("dates.xml")))
    await w.cycle()
    published = {t: p for t, _, _, _, p in w.items(w.bad.id)}
    assert published["Good RFC 822 date"] == "2026-01-08T03:30:00+00:00"
    for title in ("Garbage date", "Far future date", "Impossible date", "No date at all", "Epoch date"):
        assert published[title] is None


# -- the second poll ---------------------------------------------------------------------------

async def test_second_poll_is_conditional_and_stores_nothing(world, feed_server):
    w = world(feed_server.route("/plain.xml", body=read_sample("markup_atom.xml")))  # no validators
    await w.cycle()
    stored = w.store.count("items")
    assert stored > 0
    feed_server.reset_stats()
    report = await w.cycle(force=True)
    assert report.new_items == [] and w.store.count("items") == stored
    assert all(f.error is None and f.not_modified for f in report.feeds)
    for path, sample, _ in HEALTHY:
        sent = feed_server.requests_to(path)[0].headers
        assert sent["if-none-match"] == f'"{sample}"'
        assert sent["if-modified-since"] == "Wed, 07 Jan 2026 09:00:00 GMT"
    # the feed without validators sent the same bytes: counted as unchanged, not parsed again
    plain = next(f for f in report.feeds if f.feed_id == w.bad.id)
    assert plain.status == 200 and plain.seen == 0


# -- the store refuses a feed's items ------------------------------------------------------------

async def test_store_failure_on_one_feed_keeps_the_cycle_going_and_loses_nothing(world, feed_server):
    body = read_sample("markup_atom.xml")
    w = world(feed_server.route("/refused.xml", body=body, etag='"refused-v1"'))
    # the database refuses this feed's rows (as a full disk or a corrupt page would)
    with w.store.conn:
        w.store.conn.execute(
            f"CREATE TRIGGER refuse BEFORE INSERT ON items WHEN NEW.feed_id = {w.bad.id} "
            "BEGIN SELECT RAISE(ABORT, 'refused by the test trigger'); END")
    report = await w.cycle()
    assert len(report.feeds) == 4  # the cycle completed for every feed
    w.assert_healthy_stored(report)
    fr = next(f for f in report.feeds if f.feed_id == w.bad.id)
    assert fr.error.startswith("store: ") and "refused by the test trigger" in fr.error
    assert fr.new == 0 and w.items(w.bad.id) == []
    bad = w.store.feed(w.bad.id)
    assert bad.failures == 1 and bad.last_error == fr.error
    assert bad.etag is None  # so the next poll fetches the body again: nothing is lost
    assert bad.id not in {f.id for f in w.store.due_feeds(w.started + timedelta(seconds=60))}
    with w.store.conn:
        w.store.conn.execute("DROP TRIGGER refuse")
    report = await w.cycle(force=True)
    fr = next(f for f in report.feeds if f.feed_id == w.bad.id)
    assert fr.error is None and fr.new == count_items(body) == len(w.items(w.bad.id))
    assert w.store.feed(w.bad.id).failures == 0


async def test_a_story_refused_mid_feed_leaves_its_item_for_the_next_cycle(world, feed_server):
    body = read_sample("markup_rss.xml")
    w = world(feed_server.route("/refused.xml", body=body))
    pipeline = Pipeline.from_config(w.store, w.cfg, translator=None, rng=random.Random(7))
    with w.store.conn:  # one item's story is refused, with items filed before it in the same transaction
        w.store.conn.execute("CREATE TRIGGER refuse BEFORE INSERT ON stories WHEN NEW.headline = 'Lists and tables' "
                             "BEGIN SELECT RAISE(ABORT, 'refused by the test trigger'); END")
    with pipeline:
        report = await pipeline.run_cycle()
        w.assert_healthy_stored(report)
        # the feed's items are stored and reported; every one but the refused item is in a story
        fr = next(f for f in report.feeds if f.feed_id == w.bad.id)
        assert fr.error is None and fr.new == count_items(body) == len(w.items(w.bad.id))
        mine = {n.item.title: n for n in report.new_items if n.item.feed_id == w.bad.id}
        assert mine["Lists and tables"].story_id is None
        assert all(n.story_id is not None for t, n in mine.items() if t != "Lists and tables")
        on_rows = dict(w.store.conn.execute("SELECT title, story_id FROM items WHERE feed_id = ?", (w.bad.id,)))
        assert on_rows == {t: n.story_id for t, n in mine.items()}
        # the next cycle, with nothing new, files the item left over (the store takes it now)
        with w.store.conn:
            w.store.conn.execute("DROP TRIGGER refuse")
        report = await pipeline.run_cycle(force=True)
        assert report.new_items == []
    left = mine["Lists and tables"].item.id
    assert w.store.item(left).story_id is not None and w.store.unfiled_items(10) == []
    # every item the index remembers is filed in the store under the same story, and that story exists
    index = pipeline.stories
    remembered = {item_id: entry[0] for item_id, entry in index._cache.items()}
    filed = {i: s for i, s, _t, _fp in w.store.indexed_items(list(remembered))}
    assert left in remembered and filed == remembered
    on_rows = dict(w.store.conn.execute("SELECT id, story_id FROM items"))
    assert all(on_rows[i] == s for i, s in remembered.items())
    stories = {r[0] for r in w.store.conn.execute("SELECT id FROM stories")}
    assert set(remembered.values()) <= stories


async def test_an_item_whose_filing_keeps_failing_is_tried_again_less_and_less_often(world, feed_server, caplog):
    body = read_sample("markup_rss.xml")
    w = world(feed_server.route("/refused.xml", body=body))
    start = utcnow().replace(microsecond=0)
    clock = [start]
    pipeline = Pipeline.from_config(w.store, w.cfg, translator=None, rng=random.Random(7), clock=lambda: clock[0])
    with w.store.conn:  # this item's story is refused until the trigger goes
        w.store.conn.execute("CREATE TRIGGER refuse BEFORE INSERT ON stories WHEN NEW.headline = 'Lists and tables' "
                             "BEGIN SELECT RAISE(ABORT, 'refused by the test trigger'); END")

    async def cycle_at(minutes: float) -> int:
        """A forced cycle at that time; how many times filing the refused item failed in it."""
        clock[0] = start + timedelta(minutes=minutes)
        caplog.clear()
        with caplog.at_level(logging.ERROR, logger="bot.pipeline"):
            await pipeline.run_cycle(force=True, now=clock[0])
        return sum(1 for r in caplog.records if r.getMessage().startswith("filing an item failed"))

    with pipeline:
        assert await cycle_at(0) == 1  # new: its chunk fails, then the item alone
        (left,) = w.store.unfiled_items(10)
        assert left.title == "Lists and tables"
        assert await cycle_at(1) == 1  # the next cycle tries again at once
        assert await cycle_at(2) == 0  # failed twice: it waits 5 minutes
        assert await cycle_at(5.5) == 0
        assert await cycle_at(6.5) == 1  # then 10 minutes
        assert await cycle_at(16) == 0
        assert await cycle_at(17) == 1  # then 20
        assert await cycle_at(36) == 0
        assert w.store.unfiled_items(10) == [left]  # never lost: stored, waiting
        with w.store.conn:
            w.store.conn.execute("DROP TRIGGER refuse")
        assert await cycle_at(37.5) == 0
        assert w.store.item(left.id).story_id is not None and w.store.unfiled_items(10) == []
        assert pipeline._file_failures == {}
    # every other item of the feed was filed in the first cycle
    assert w.store.count("items", "WHERE story_id IS NULL") == 0 and len(w.items(w.bad.id)) == count_items(body)


async def test_feed_state_refused_after_items_stored_still_reports_them(world, feed_server):
    body = read_sample("markup_atom.xml")
    w = world(feed_server.route("/state.xml", body=body))
    with w.store.conn:  # the feed's polling state cannot be saved (its items can)
        w.store.conn.execute(f"CREATE TRIGGER refuse BEFORE UPDATE ON feeds WHEN NEW.id = {w.bad.id} "
                             "BEGIN SELECT RAISE(ABORT, 'state refused by the test trigger'); END")
    report = await w.cycle()
    assert len(report.feeds) == 4
    w.assert_healthy_stored(report)
    fr = next(f for f in report.feeds if f.feed_id == w.bad.id)
    assert fr.error.startswith("store: ") and "state refused" in fr.error
    # the items were committed before the state failed: the cycle reports them, so they get their alerts
    stored = w.items(w.bad.id)
    assert fr.new == len(stored) == count_items(body)
    reported = [n.item.title for n in report.new_items if n.item.feed_id == w.bad.id]
    assert sorted(reported) == sorted(t for t, *_ in stored)
    # the next cycle finds them known: nothing is reported twice
    with w.store.conn:
        w.store.conn.execute("DROP TRIGGER refuse")
    report = await w.cycle(force=True)
    fr = next(f for f in report.feeds if f.feed_id == w.bad.id)
    assert fr.error is None and fr.new == 0 and report.new_items == []


async def test_a_feed_over_the_item_cap_keeps_its_newest_items(world, feed_server):
    from email.utils import format_datetime

    rng = random.Random(3)
    base = utcnow().replace(microsecond=0) - timedelta(days=2)
    ages = list(range(60))
    rng.shuffle(ages)  # dates in no particular order in the body
    items = "".join(f"<item><guid>cap-{a}</guid><title>Item {a} hours old</title>"
                    f"<pubDate>{format_datetime(base + timedelta(hours=60 - a))}</pubDate></item>" for a in ages)
    body = f"<rss version='2.0'><channel><title>Long</title>{items}</channel></rss>".encode()
    w = world(feed_server.route("/long.xml", body=body, etag='"long"'))
    report = await w.cycle()
    w.assert_healthy_stored(report)
    fr = next(f for f in report.feeds if f.feed_id == w.bad.id)
    assert fr.error is None and fr.seen == fr.new == 20  # max_items_per_feed
    assert sorted(t for t, *_ in w.items(w.bad.id)) == sorted(f"Item {a} hours old" for a in range(20))
    report = await w.cycle(force=True)  # unchanged: nothing more
    assert next(f for f in report.feeds if f.feed_id == w.bad.id).new == 0


async def test_a_feeds_new_items_are_stored_and_filed_oldest_first(world, feed_server):
    """Feeds list the newest first; the items get ids (and stories) in the order things happened,
    undated items (taken as happening at the poll) last, in the feed's order."""
    from email.utils import format_datetime

    base = utcnow().replace(microsecond=0) - timedelta(days=1)
    hours = [5, 9, 1, 7, 3]
    items = "".join(f"<item><guid>at-{h}</guid><title>Event at hour {h}</title>"
                    f"<pubDate>{format_datetime(base + timedelta(hours=h))}</pubDate></item>" for h in hours)
    items = ("<item><guid>undated-1</guid><title>Undated first</title></item>" + items
             + "<item><guid>undated-2</guid><title>Undated second</title></item>")
    body = f"<rss version='2.0'><channel><title>Mixed</title>{items}</channel></rss>".encode()
    w = world(feed_server.route("/mixed.xml", body=body))
    report = await w.cycle()
    assert next(f for f in report.feeds if f.feed_id == w.bad.id).new == 7
    assert [t for t, *_ in w.items(w.bad.id)] == [
        "Event at hour 1", "Event at hour 3", "Event at hour 5", "Event at hour 7", "Event at hour 9",
        "Undated first", "Undated second"]
    reported = [n.item.title for n in report.new_items if n.item.feed_id == w.bad.id]
    assert reported == [t for t, *_ in w.items(w.bad.id)]
