"""The Telegram bot end to end: a real PTB Application polling the local Bot API server.

Every test drives the application for real (initialize, post_init, start,
updater.start_polling against tests/botapi.py, then stop) and speaks to it only
through updates pushed into the server; what the bot answered is read back from
the server, what it remembered from the SQLite store.
"""

from __future__ import annotations

import functools
import logging
import ssl
from datetime import timedelta

import pytest

from bot import i18n
from bot.models import Item, Match, utcnow
from bot.telegram import build_application, post_init
from tests import htmlcheck
from tests.botapi import BotAPIServer
from tests.conftest import make_config
from tests.feedserver import FeedServer, Route, read_sample

pytestmark = pytest.mark.timeout(60)

TOPICS = [{"id": "kz-unrest", "name": "Unrest in Kazakhstan"},
          {"id": "csto-deployment", "name": "CSTO troop deployments"},
          {"id": "internet-shutdown", "name": "Internet shutdowns"}]
ADMIN = 7001
USER = 4242
GROUP = -1001234567


class Harness:
    """The running bot with helpers to talk to it."""

    def __init__(self, server: BotAPIServer, store, cfg, app, calls):
        self.server, self.store, self.cfg, self.app, self.calls = server, store, cfg, app, calls

    async def say(self, chat_id: int, text: str, user_id: int | None = None, count: int = 1) -> list[dict]:
        """Send ``text`` as a user and return the bot's next ``count`` messages in that chat."""
        before = len(self.server.sent(chat_id))
        self.server.push_message(chat_id, text, user_id=user_id)
        await self.server.wait_for_async(lambda: len(self.server.sent(chat_id)) >= before + count, 10)
        replies = self.server.sent(chat_id)[before:]
        for reply in replies:
            htmlcheck.check(reply["text"])
        return replies

    async def tap(self, chat_id: int, data: str, message_id: int, user_id: int | None = None,
                  edit: bool = False) -> dict:
        """Press a button; return the answerCallbackQuery the bot made (``edit``: and wait for the redraw)."""
        before = len(self.server.answers())
        edits = len(self.server.edits(chat_id))
        update = self.server.push_callback(chat_id, data, message_id=message_id, user_id=user_id)
        query_id = update["callback_query"]["id"]
        await self.server.wait_for_async(lambda: len(self.server.answers()) > before, 10)
        if edit:
            await self.server.wait_for_async(lambda: len(self.server.edits(chat_id)) > edits, 10)
        [answer] = [a for a in self.server.answers() if a["callback_query_id"] == query_id]
        return answer


def buttons(message: dict) -> list[dict]:
    markup = message.get("reply_markup") or {}
    return [b for row in markup.get("inline_keyboard", []) for b in row]


@functools.lru_cache(maxsize=1)
def _ssl_context() -> ssl.SSLContext:
    """One CA bundle load for the whole module (the bot only talks plain HTTP to 127.0.0.1 here)."""
    return ssl.create_default_context()


async def start_bot(tmp_path, server: BotAPIServer, hooks=None, **sections):
    telegram = {"base_url": server.base_url, "admins": [ADMIN]}
    telegram.update(sections.pop("telegram", {}))
    sections.setdefault("topics", TOPICS)
    cfg = make_config(tmp_path, env={"TELEGRAM_BOT_TOKEN": server.token}, telegram=telegram, **sections)
    from bot.store import Store

    store = Store(cfg.storage.path)
    calls: list = []

    def digest_now(chat_id: int) -> int:
        calls.append(("digest_now", chat_id))
        return 2

    app = build_application(cfg, store, {"digest_now": digest_now, **(hooks or {})}, ssl_context=_ssl_context())
    await app.initialize()
    await post_init(app)  # run_polling would call it; we drive the application by hand
    await app.start()
    await app.updater.start_polling(poll_interval=0.0, timeout=1)
    return Harness(server, store, cfg, app, calls)


async def stop_bot(h: Harness) -> None:
    await h.app.updater.stop()
    await h.app.stop()
    await h.app.shutdown()
    h.store.close()


@pytest.fixture
async def bot_factory(tmp_path):
    """``await bot_factory(**config_sections)``: a running bot over a fresh database."""
    running: list[tuple[BotAPIServer, Harness]] = []

    async def make(**sections) -> Harness:
        # flood limits belong to the delivery tests; command replies here come in quick succession
        server = BotAPIServer(chat_rate=None, group_per_minute=None).start()
        h = await start_bot(tmp_path, server, **sections)
        running.append((server, h))
        return h

    yield make
    for server, h in running:
        try:
            await stop_bot(h)
        finally:
            server.close()


@pytest.fixture
async def bot_env(bot_factory):
    return await bot_factory()


# -- start, menu, topics --------------------------------------------------------------------


async def test_start_welcomes_with_topic_buttons_and_creates_the_subscriber(bot_factory):
    h = await bot_factory(translation={"provider": "none", "target": "ru"},
                          digest={"time": "07:15", "timezone": "Europe/Moscow"})
    menu = h.server.commands()
    assert [c["command"] for c in menu] == ["start", "help", "topics", "subscribe", "unsubscribe", "watch",
                                            "unwatch", "watchlist", "digest", "settings", "trend", "stop"]
    assert h.server.commands(language_code="kk")[0]["description"] == i18n.t_plain("kk", "cmd_start")

    [reply] = await h.say(USER, "/start")
    assert reply["plain"].startswith(htmlcheck.check(i18n.t("ru", "welcome"))[:40])  # [translation] target
    names = [b["text"] for b in buttons(reply)]
    assert names == ["▫️ Unrest in Kazakhstan", "▫️ CSTO troop deployments", "▫️ Internet shutdowns"]
    assert all(len(b["callback_data"].encode()) <= 64 for b in buttons(reply))
    sub = h.store.subscriber(USER)
    assert (sub.lang, sub.mode, sub.digest_time, sub.timezone) == ("ru", "both", "07:15", "Europe/Moscow")


async def test_topic_button_subscribes_and_redraws_then_unsubscribes(bot_env):
    h = bot_env
    [welcome] = await h.say(USER, "/start")
    first = buttons(welcome)[0]
    answer = await h.tap(USER, first["callback_data"], welcome["message_id"], edit=True)
    assert "Unrest in Kazakhstan" in answer["text"]
    assert h.store.subscribed_topics(USER) == ["kz-unrest"]
    edit = h.server.edits(USER)[-1]
    assert edit["message_id"] == welcome["message_id"]
    htmlcheck.check(edit["text"])
    redrawn = [b for row in edit["reply_markup"]["inline_keyboard"] for b in row]
    assert redrawn[0]["text"] == "✅ Unrest in Kazakhstan" and redrawn[1]["text"].startswith("▫️")

    await h.tap(USER, redrawn[0]["callback_data"], welcome["message_id"], edit=True)
    assert h.store.subscribed_topics(USER) == []
    again = [b for row in h.server.edits(USER)[-1]["reply_markup"]["inline_keyboard"] for b in row]
    assert again[0]["text"] == "▫️ Unrest in Kazakhstan"


async def test_stale_or_forged_button_is_answered_and_changes_nothing(bot_env):
    h = bot_env
    [welcome] = await h.say(USER, "/start")
    for data in ("t|w|+|no-such-topic", "s|lang|de", "garbage"):
        answer = await h.tap(USER, data, welcome["message_id"])
        assert answer["text"]
    assert h.store.subscribed_topics(USER) == []
    assert h.store.subscriber(USER).lang == "en"


async def test_subscribe_and_unsubscribe_commands(bot_env):
    h = bot_env
    [r] = await h.say(USER, "/subscribe kz-unrest")
    assert "Unrest in Kazakhstan" in r["plain"] and h.store.subscribed_topics(USER) == ["kz-unrest"]
    [r] = await h.say(USER, "/subscribe Internet shutdowns")  # by name too
    assert h.store.subscribed_topics(USER) == ["internet-shutdown", "kz-unrest"]
    [r] = await h.say(USER, "/unsubscribe kz-unrest")
    assert h.store.subscribed_topics(USER) == ["internet-shutdown"]
    [r] = await h.say(USER, "/topics")
    assert [b["text"].startswith("✅") for b in buttons(r)] == [False, False, True]


async def test_a_reader_sees_topic_names_in_their_language(bot_factory):
    h = await bot_factory(topics=[{"id": "kz-unrest"}, {"id": "csto-deployment"},
                                  {"id": "floods", "name": "Floods"}])  # the last has no other names
    await h.say(USER, "/start")
    await h.say(USER, "/settings lang ru")
    [r] = await h.say(USER, "/topics")
    assert [b["text"][2:].strip() for b in buttons(r)] == ["Беспорядки в Казахстане", "Переброска войск ОДКБ",
                                                            "Floods"]
    [r] = await h.say(USER, "/subscribe переброска войск ОДКБ")  # by any of its names
    assert "Переброска войск ОДКБ" in r["plain"] and h.store.subscribed_topics(USER) == ["csto-deployment"]
    await h.say(USER, "/settings lang kk")
    [r] = await h.say(USER, "/unsubscribe csto-deployment")
    assert "ҰҚШҰ әскерлерінің орналастырылуы" in r["plain"] and h.store.subscribed_topics(USER) == []


# -- bad arguments ----------------------------------------------------------------------------


BAD_ARGUMENTS = [  # (command, the i18n key of the reply)
    ("/subscribe", "usage_subscribe"),
    ("/unsubscribe", "usage_unsubscribe"),
    ("/watch", "usage_watch"),
    ("/watch ,,, ", "usage_watch"),
    ("/unwatch", "usage_unwatch"),
    ("/settings time 25:61", "bad_time"),
    ("/settings tz Mars/Olympus", "bad_tz"),
    ("/settings tz ../../etc/passwd", "bad_tz"),
    ("/settings lang de", "bad_lang"),
    ("/settings mode sometimes", "bad_mode"),
    ("/settings quiet 23:00", "bad_quiet"),
    ("/settings quiet 10:00-10:00", "bad_quiet"),
    ("/settings empty maybe", "bad_empty"),
    ("/settings colour blue", "usage_settings"),
]


async def test_bad_arguments_get_a_usage_reply_and_change_nothing(bot_env):
    h = bot_env
    for command, key in BAD_ARGUMENTS:
        [r] = await h.say(USER, command)
        words = command.split(maxsplit=2)
        expected = htmlcheck.check(i18n.t("en", key, ids=", ".join(t["id"] for t in TOPICS),
                                          value=words[2].strip() if len(words) > 2 else ""))
        assert r["plain"].startswith(expected), (command, r["plain"])
        sub = h.store.subscriber(USER)
        assert sub is None or (sub.digest_time, sub.timezone, sub.lang, sub.mode, sub.quiet_start) == (
            "08:00", "Asia/Almaty", "en", "both", None), command
    assert h.store.subscribed_topics(USER) == [] and h.store.watchwords(USER) == []


async def test_unknown_topic_lists_the_topics(bot_env):
    [r] = await bot_env.say(USER, "/subscribe <b>nope</b>")
    assert "<b>nope</b>" in r["plain"] and "kz-unrest, csto-deployment, internet-shutdown" in r["plain"]


# -- settings -----------------------------------------------------------------------------------


async def test_settings_by_arguments_and_buttons(bot_env):
    h = bot_env
    [r] = await h.say(USER, "/settings")
    assert "08:00" in r["plain"] and "Asia/Almaty" in r["plain"]
    await h.say(USER, "/settings time 7:30")
    await h.say(USER, "/settings tz europe/moscow")
    await h.say(USER, "/settings quiet 23:00-07:00")
    await h.say(USER, "/settings mode digest")
    await h.say(USER, "/settings empty skip")
    sub = h.store.subscriber(USER)
    assert (sub.digest_time, sub.timezone, sub.quiet_start, sub.quiet_end, sub.mode, sub.skip_empty_digest) == (
        "07:30", "Europe/Moscow", "23:00", "07:00", "digest", True)

    [r] = await h.say(USER, "/settings lang kk")
    assert h.store.subscriber(USER).lang == "kk"
    assert htmlcheck.check(i18n.t("kk", "saved")) in r["plain"]  # answered in the new language
    [r] = await h.say(USER, "/help")
    assert r["plain"] == htmlcheck.check(i18n.t("kk", "help"))

    [shown] = await h.say(USER, "/settings")
    data = [b["callback_data"] for b in buttons(shown)]
    assert "s|lang|ru" in data and "s|mode|instant" in data
    await h.tap(USER, "s|mode|instant", shown["message_id"], edit=True)
    await h.tap(USER, "s|lang|ru", shown["message_id"], edit=True)
    sub = h.store.subscriber(USER)
    assert (sub.mode, sub.lang) == ("instant", "ru")
    assert "Русский" in h.server.edits(USER)[-1]["plain"]
    await h.say(USER, "/settings quiet off")
    assert h.store.subscriber(USER).quiet_start is None


# -- watch words ----------------------------------------------------------------------------------


def _seed_items(store, now):
    """Three stories of the last days (two mention Zhanaozen) and one too old to count."""
    feed_ru = store.add_feed("https://ru.example/rss", "ru", "Лента Ру")
    feed_en = store.add_feed("https://en.example/rss", "en", "Steppe Times")
    rows = [
        (feed_ru, "В Жанаозене прошёл митинг нефтяников", "ru", now - timedelta(hours=5), 1),
        (feed_en, "Oil workers rally in Zhanaozen", "en", now - timedelta(hours=4), 1),
        (feed_ru, "Жанаозен: забастовка продолжается", "ru", now - timedelta(days=2), 2),
        (feed_en, "Astana hosts a chess festival", "en", now - timedelta(hours=3), 3),
        (feed_en, "Zhanaozen remembers 2011", "en", now - timedelta(days=5), 4),
    ]
    with store.conn:
        for i, (feed, title, lang, fetched, story_id) in enumerate(rows):
            store.insert_item(Item(feed_id=feed.id, key=f"k{i}", url=f"https://news.example/{i}", title=title,
                                   summary="", lang=lang, published=fetched, fetched=fetched,
                                   content_hash=f"h{i}", story_id=story_id))


async def test_watch_stores_expansions_and_previews_the_last_three_days(bot_env):
    h = bot_env
    _seed_items(h.store, utcnow())
    replies = await h.say(USER, "/watch Zhanaozen")
    text = "\n".join(r["plain"] for r in replies)
    [word] = h.store.watchwords(USER)
    assert word.word == "Zhanaozen" and word.expansions.get("ru")  # a Cyrillic form was added
    assert any(form in text for form in word.expansions["ru"])
    assert "2 stories" in text  # story 1 (two reports) and story 2; story 4 is five days old
    assert "Oil workers rally in Zhanaozen" in text or "Жанаозене" in text
    assert "Steppe Times, Лента Ру" in text or "Лента Ру, Steppe Times" in text

    [r] = await h.say(USER, "/watch zhanaozen")
    assert "Already watching: Zhanaozen" in r["plain"]
    [r] = await h.say(USER, "/watchlist")
    assert "Zhanaozen →" in r["plain"]
    [r] = await h.say(USER, "/unwatch Zhanaozen, nothing-here")
    assert "Stopped watching: Zhanaozen" in r["plain"] and "nothing-here" in r["plain"]
    assert h.store.watchwords(USER) == []
    [r] = await h.say(USER, "/watchlist")
    assert r["plain"] == htmlcheck.check(i18n.t("en", "watchlist_empty"))


async def test_watch_refuses_bad_words_and_stops_at_the_limit(bot_env):
    h = bot_env
    [r] = await h.say(USER, "/watch x, " + "y" * 65 + ", ok word")
    assert r["plain"].count("Skipped") == 2
    assert [w.word for w in h.store.watchwords(USER)] == ["ok word"]
    words = ", ".join(f"word{i:02d}" for i in range(60))
    [r] = await h.say(USER, f"/watch {words}")
    assert "at most 50" in r["plain"]
    assert len(h.store.watchwords(USER)) == 50


async def test_a_flood_controlled_reply_is_sent_after_the_pause(bot_env):
    h = bot_env
    h.server.fail_next(1, status=429, retry_after=1, methods=("sendMessage",))
    [r] = await h.say(USER, "/help")
    assert r["plain"] == htmlcheck.check(i18n.t("en", "help"))
    assert h.server.counters["429_injected"] == 1


async def test_watch_with_nothing_recent_says_so(bot_env):
    [r] = await bot_env.say(USER, "/watch Baikonur")
    assert htmlcheck.check(i18n.t("en", "watch_preview_none")) in r["plain"]


# -- digest, stop ------------------------------------------------------------------------------------


async def test_digest_calls_the_hook(bot_env):
    h = bot_env
    [r] = await h.say(USER, "/digest")
    assert h.calls == []  # not subscribed yet
    await h.say(USER, "/start")
    [r] = await h.say(USER, "/digest")
    assert r["plain"] == htmlcheck.check(i18n.t("en", "digest_queued"))  # said first, then queued
    await h.server.wait_for_async(lambda: h.calls, 5)
    assert h.calls == [("digest_now", USER)]


async def test_trend_sends_a_png_chart_and_refuses_bad_arguments(bot_env):
    h = bot_env
    now = utcnow()
    _seed_items(h.store, now)
    with h.store.conn:
        for item_id in (1, 2, 3):
            h.store.save_matches(item_id, [Match("kz-unrest", 1.0, ["митинг"])])
    before = len(h.server.sent(USER))
    h.server.push_message(USER, "/trend kz-unrest 7")
    await h.server.wait_for_async(lambda: len(h.server.sent(USER)) > before, 30)
    [photo] = h.server.sent(USER)[before:]
    assert photo["method"] == "sendPhoto"
    assert photo["photo_bytes"][:8] == b"\x89PNG\r\n\x1a\n" and len(photo["photo_bytes"]) > 5000
    assert "7" in photo["caption"]
    for bad in ("/trend nosuchtopic", "/trend 0", "/trend 365"):
        [r] = await h.say(USER, bad)
        assert "/trend" in r["plain"]


async def test_stop_forgets_everything(bot_env):
    h = bot_env
    await h.say(USER, "/start")
    await h.say(USER, "/subscribe kz-unrest")
    await h.say(USER, "/watch Zhanaozen")
    await h.say(USER, "/settings lang ru")
    with h.store.conn:
        h.store.conn.execute("INSERT INTO outbox(chat_id, kind, text, created_at) VALUES (?, 'alert', 'x', ?)",
                             (USER, "2026-01-01T00:00:00+00:00"))
    [r] = await h.say(USER, "/stop")
    assert r["plain"] == htmlcheck.check(i18n.t("ru", "stop_done"))
    assert h.store.subscriber(USER) is None
    assert h.store.subscribed_topics(USER) == [] and h.store.watchwords(USER) == []
    assert h.store.count("outbox", "WHERE chat_id = ?", (USER,)) == 0
    [r] = await h.say(USER, "/stop")
    assert r["plain"] == htmlcheck.check(i18n.t("en", "stop_nothing"))


# -- groups and access ------------------------------------------------------------------------------


async def test_in_a_group_only_admins_change_settings(bot_env):
    h = bot_env
    h.server.add_chat(GROUP, "supergroup", title="Newsroom")
    h.server.set_admin(GROUP, 900, "administrator")
    h.server.set_admin(GROUP, 901, "creator")
    [r] = await h.say(GROUP, "/subscribe kz-unrest", user_id=555)
    assert r["plain"] == htmlcheck.check(i18n.t("en", "admins_only_group"))
    [r] = await h.say(GROUP, "/settings lang ru", user_id=555)
    assert h.store.subscriber(GROUP) is None

    [welcome] = await h.say(GROUP, "/start", user_id=555)  # anyone may look
    answer = await h.tap(GROUP, buttons(welcome)[0]["callback_data"], welcome["message_id"], user_id=555)
    assert answer["show_alert"] and h.store.subscribed_topics(GROUP) == []

    await h.say(GROUP, f"/subscribe@{h.server.bot_user['username']} kz-unrest", user_id=900)
    assert h.store.subscribed_topics(GROUP) == ["kz-unrest"]
    assert h.store.subscriber(GROUP).chat_type == "supergroup"
    await h.say(GROUP, "/settings mode digest", user_id=901)
    assert h.store.subscriber(GROUP).mode == "digest"
    [r] = await h.say(GROUP, "/stop", user_id=555)
    assert h.store.subscriber(GROUP) is not None


async def test_text_that_is_no_command_points_to_help_in_private_and_is_ignored_in_groups(bot_env):
    h = bot_env
    for text in ("hello, what can you do?", "/nosuchcommand", "Жанаозен"):
        [r] = await h.say(USER, text)
        assert r["plain"] == htmlcheck.check(i18n.t("en", "unknown_input"))
    await h.say(USER, "/settings lang kk")
    [r] = await h.say(USER, "сәлем")
    assert r["plain"] == htmlcheck.check(i18n.t("kk", "unknown_input"))
    h.server.add_chat(GROUP, "supergroup", title="Newsroom")
    h.server.push_message(GROUP, "members talking among themselves", user_id=555)
    [r] = await h.say(GROUP, "/help", user_id=555)  # the next thing the bot says there is the help
    assert r["plain"] == htmlcheck.check(i18n.t("en", "help"))
    assert len(h.server.sent(GROUP)) == 1


async def test_allowed_chats_restricts_who_may_subscribe(bot_factory):
    h = await bot_factory(telegram={"allowed_chats": [USER]})
    [r] = await h.say(1234, "/start")
    assert r["plain"] == htmlcheck.check(i18n.t("en", "not_allowed"))
    await h.say(1234, "/subscribe kz-unrest")
    assert h.store.subscriber(1234) is None
    await h.say(USER, "/subscribe kz-unrest")
    assert h.store.subscribed_topics(USER) == ["kz-unrest"]


# -- admin commands ----------------------------------------------------------------------------------


async def test_admin_commands_are_refused_to_others(bot_env):
    h = bot_env
    for command in ("/stats", "/feeds", "/addfeed https://example.org/rss en", "/removefeed 1"):
        [r] = await h.say(USER, command)
        assert r["plain"] == htmlcheck.check(i18n.t("en", "admin_only"))
    assert h.store.feeds() == []


PRIVATE_URLS = ["http://127.0.0.1:9/feed.xml", "http://localhost/feed.xml", "http://10.1.2.3/rss",
                "http://[::1]/rss", "http://169.254.169.254/latest", "http://192.168.0.1/rss"]


async def test_addfeed_refuses_private_addresses(bot_env):
    h = bot_env
    refused = htmlcheck.check(i18n.t("en", "addfeed_refused", reason="")).strip()
    for url in PRIVATE_URLS:
        [r] = await h.say(ADMIN, f"/addfeed {url} en")
        assert r["plain"].startswith(refused), (url, r["plain"])
    assert h.store.feeds(include_retired=True) == []


ADMIN_BAD_ARGUMENTS = [
    ("/addfeed", "usage_addfeed"),
    ("/addfeed https://example.org/rss", "usage_addfeed"),
    ("/addfeed https://example.org/rss de", "usage_addfeed"),
    ("/addfeed javascript:alert(1) en", "addfeed_bad_url"),
    ("/addfeed file:///etc/passwd en", "addfeed_bad_url"),
    ("/removefeed", "usage_removefeed"),
]


async def test_admin_bad_arguments(bot_env):
    for command, key in ADMIN_BAD_ARGUMENTS:
        [r] = await bot_env.say(ADMIN, command)
        assert r["plain"] == htmlcheck.check(i18n.t("en", key)), command
    assert bot_env.store.feeds(include_retired=True) == []


async def test_addfeed_fetches_and_parses_before_saving_then_removefeed(bot_factory):
    h = await bot_factory(telegram={"allow_private_feed_urls": True})
    with FeedServer() as feeds:
        good = feeds.route("/good.xml", Route(body=read_sample("healthy_en.xml")))
        bad = feeds.route("/page.html", Route(body=read_sample("page.html"), content_type="text/html"))
        [r] = await h.say(ADMIN, f"/addfeed {bad} en")
        assert "Not added" in r["plain"] and h.store.feeds() == []
        [r] = await h.say(ADMIN, f"/addfeed {good} en")
    [feed] = h.store.feeds()
    assert feed.url == good and feed.lang == "en"
    assert f"#{feed.id}" in r["plain"]
    [r] = await h.say(ADMIN, "/feeds")
    assert good in r["plain"]
    [r] = await h.say(ADMIN, "/stats")
    assert "Feeds: 1 active, 0 failing" in r["plain"]
    feed.failures, feed.last_error = 3, "fetch: HTTP 503 <Service Unavailable>"
    h.store.save_feed_state(feed)
    [r] = await h.say(ADMIN, "/stats")
    assert "1 failing" in r["plain"] and f"#{feed.id}" in r["plain"] and "<Service Unavailable>" in r["plain"]
    [r] = await h.say(ADMIN, f"/removefeed {feed.id}")
    assert h.store.feeds() == []
    [r] = await h.say(ADMIN, "/removefeed 999")
    assert "999" in r["plain"]


# -- errors ---------------------------------------------------------------------------------------


async def test_a_failing_handler_is_logged_with_traceback_and_the_user_told(bot_env, caplog, monkeypatch):
    h = bot_env

    def broken(chat_id):
        raise RuntimeError("database on fire")

    monkeypatch.setattr(h.store, "subscribed_topics", broken)
    with caplog.at_level(logging.ERROR, logger="bot.telegram"):
        [r] = await h.say(USER, "/topics")
    assert r["plain"] == htmlcheck.check(i18n.t("en", "error"))
    [record] = [rec for rec in caplog.records if rec.name == "bot.telegram" and rec.levelno == logging.ERROR]
    assert record.exc_info and "database on fire" in str(record.exc_info[1])


# -- docs ---------------------------------------------------------------------------------------


def test_every_command_is_documented_in_the_readme_with_an_example():
    from pathlib import Path

    from bot.telegram import ADMIN_COMMANDS, USER_COMMANDS

    readme = Path(__file__).parent.parent.joinpath("README.md").read_text(encoding="utf-8")
    section = readme.split("## Telegram commands", 1)[1].split("\n## ", 1)[0]
    for name in USER_COMMANDS + ADMIN_COMMANDS:
        rows = [line for line in section.splitlines() if line.startswith(f"| `/{name}")]
        assert rows, f"/{name} is not in the README's Telegram commands table"
        assert all(row.rstrip().rstrip("|").rstrip().endswith("`") for row in rows), f"/{name}: no example"


# -- argument parsing ----------------------------------------------------------------------------


@pytest.mark.parametrize("text, expected", [("07:30", "07:30"), ("7:30", "07:30"), (" 23:59 ", "23:59"),
                                            ("00:00", "00:00"), ("24:00", None), ("12:60", None), ("1230", None),
                                            ("", None), ("7.30", None), ("-1:00", None)])
def test_parse_hhmm(text, expected):
    from bot.telegram import parse_hhmm

    assert parse_hhmm(text) == expected


@pytest.mark.parametrize("text, expected", [("Europe/Moscow", "Europe/Moscow"), ("asia/almaty", "Asia/Almaty"),
                                            ("UTC", "UTC"), ("Mars/Base", None), ("../../etc/passwd", None),
                                            ("", None), ("Europe/", None)])
def test_parse_timezone(text, expected):
    from bot.telegram import parse_timezone

    assert parse_timezone(text) == expected


@pytest.mark.parametrize("text, expected", [("23:00-07:00", ("23:00", "07:00")), ("9:00 – 17:30", ("09:00", "17:30")),
                                            ("off", (None, None)), ("OFF", (None, None)), ("23:00", None),
                                            ("23:00-23:00", None), ("a-b", None), ("23:00-07:00-08:00", None)])
def test_parse_quiet(text, expected):
    from bot.telegram import parse_quiet

    assert parse_quiet(text) == expected


@pytest.mark.parametrize("text, expected", [
    ("Zhanaozen", ["Zhanaozen"]),
    ("oil strike", ["oil", "strike"]),
    ("oil strike, Mangystau", ["oil strike", "Mangystau"]),
    ("«Жаңаөзен», zhanaozen, Zhanaozen", ["Жаңаөзен", "zhanaozen"]),
    ("a\u202eb,\x00c", ["ab", "c"]),
    (" , , ", []),
])
def test_split_words(text, expected):
    from bot.telegram import split_words

    assert split_words(text) == expected
