"""Translation: cache, failure modes, circuit breaker, splitting, the pending queue.

Every test talks to a real server on 127.0.0.1 (tests/translate_server.py) through
deep-translator, and to a real SQLite file.
"""

from __future__ import annotations

import asyncio
import re
import time
from datetime import datetime, timedelta, timezone

import pytest

from bot.store import Store
from bot.translate import _PENDING_MAX_ATTEMPTS, SIZE_LIMITS, CircuitBreaker, Translator, split_text
from tests.conftest import make_config
from tests.translate_server import TranslateServer, fake_translation, translate_server  # noqa: F401

RU = ["Протесты в Алматы продолжаются второй день", "В Астане отключили мобильный интернет",
      "Миротворцы ОДКБ прибыли в аэропорт", "Правительство ушло в отставку"]
KK = "Алматыда наразылық акциясы өтті"


class FakeClock:
    def __init__(self) -> None:
        self.t = 1000.0

    def __call__(self) -> float:
        return self.t


class FakeNow:
    def __init__(self) -> None:
        self.t = datetime(2026, 1, 5, 10, 0, tzinfo=timezone.utc)

    def __call__(self) -> datetime:
        return self.t


def make_translator(tmp_path, store, server=None, clock=None, now=None, **translation):
    section = {"provider": "google", "target": "en", "timeout_seconds": 2.0, "budget_seconds": 5.0,
               "breaker_failures": 3, "breaker_reset_seconds": 30.0, "concurrency": 2, "attempts": 2}
    if server is not None:
        section["url"] = server.url
    section.update(translation)
    cfg = make_config(tmp_path, **{"translation": section})
    return Translator(cfg.translation, store, clock=clock or FakeClock(), now=now or FakeNow(),
                      backoff_seconds=0.01)


# -- splitting -------------------------------------------------------------


@pytest.mark.parametrize("text,limit", [
    ("Короткий текст.", 100),
    ("Первое предложение. Второе предложение! Третье предложение? Четвёртое.", 30),
    ("Строка один\nСтрока два\nСтрока три", 15),
    ("Одно очень длинное предложение без точек которое придётся резать по пробелам", 20),
    ("Словобезпробеловдлиннеелимитаиещёдлиннее", 8),
    ("First sentence here. «Quoted end.» Next one follows… And the last one", 25),
])
def test_split_text_keeps_pieces_within_limit_and_loses_nothing(text, limit):
    pieces = split_text(text, limit)
    assert all(0 < len(piece) <= limit for piece, _ in pieces)
    assert "".join(piece + sep for piece, sep in pieces) == text


def test_split_text_prefers_sentence_ends():
    sentences = [f"Предложение номер {i} о событиях дня." for i in range(20)]
    text = " ".join(sentences)
    pieces = split_text(text, 120)
    assert len(pieces) > 1
    for piece, _ in pieces:
        assert piece.endswith("."), piece  # no sentence is cut in the middle


def test_split_text_rejects_a_useless_limit():
    with pytest.raises(ValueError, match="size limit"):
        split_text("text", 0)


# -- cache -----------------------------------------------------------------


async def test_cache_hit_makes_no_request(tmp_path, store, translate_server):
    t = make_translator(tmp_path, store, translate_server)
    first = await t.translate(RU[0], "ru", "en")
    assert first == fake_translation(RU[0], "ru", "en")
    assert translate_server.count("/m") == 1

    assert await t.translate(RU[0], "ru", "en") == first
    assert t.cached(RU[0], "ru", "en") == first
    assert translate_server.count() == 1

    # a new process (new Translator, same database) still has it
    t2 = make_translator(tmp_path, Store(store.path), translate_server)
    assert await t2.translate(RU[0], "ru", "en") == first
    assert translate_server.count() == 1


async def test_each_distinct_text_is_requested_once_per_target(tmp_path, store, translate_server):
    t = make_translator(tmp_path, store, translate_server)
    texts = [(RU[i % 3], "ru") for i in range(12)] + [(KK, "kk"), (KK, "kk"), ("Already English", "en")]
    out = await t.translate_many(texts, "en")
    assert out[:12] == [fake_translation(RU[i % 3], "ru", "en") for i in range(12)]
    assert out[12] == out[13] == fake_translation(KK, "kk", "en")
    assert out[14] == "Already English"
    assert translate_server.count() == 4  # 3 Russian texts, 1 Kazakh

    out_ru = await t.translate_many([(RU[0], "ru")], "kk")  # another target: another request
    assert out_ru == [fake_translation(RU[0], "ru", "kk")]
    assert translate_server.count() == 5

    translate_server.reset()
    again = await t.translate_many(texts, "en")
    assert again == out
    assert translate_server.count() == 0


@pytest.mark.parametrize("text,src,dst", [
    ("Та же самая строка", "ru", "ru"),
    ("12:30 — 14:45", "ru", "en"),   # digits are words: translated
    ("— … !!!", "ru", "en"),         # nothing to translate
    ("   ", "kk", "en"),
])
async def test_no_request_when_nothing_to_translate(tmp_path, store, translate_server, text, src, dst):
    t = make_translator(tmp_path, store, translate_server)
    out = await t.translate(text, src, dst)
    if src == dst or not re.search(r"\w", text):
        assert out == text
        assert translate_server.count() == 0
    else:
        assert out == fake_translation(text, src, dst)


# -- providers and language support ------------------------------------------


async def test_libre_rejects_kazakh_at_startup_and_never_asks(tmp_path, store, translate_server):
    t = make_translator(tmp_path, store, translate_server, provider="libre")
    warnings = t.startup_warnings()
    assert len(warnings) == 1 and "kk->en" in warnings[0] and "ru->en" not in warnings[0]
    assert not t.supports("kk", "en") and t.supports("ru", "en")

    assert await t.translate(KK, "kk", "en") is None
    assert translate_server.count() == 0
    assert t.pending() == 0  # nothing would ever fill it: not queued

    assert await t.translate(RU[1], "ru", "en") == fake_translation(RU[1], "ru", "en")
    assert translate_server.count("/translate") == 1


async def test_libre_sends_the_key_when_configured(tmp_path, store):
    with TranslateServer(api_key="s3cret") as server:
        cfg = make_config(tmp_path, env={"LIBRE_KEY": "s3cret"},
                          translation={"provider": "libre", "url": server.url, "api_key_env": "LIBRE_KEY"})
        t = Translator(cfg.translation, store, clock=FakeClock(), now=FakeNow())
        assert await t.translate(RU[0], "ru", "en") == fake_translation(RU[0], "ru", "en")

        wrong = make_config(tmp_path, env={"LIBRE_KEY": "wrong"},
                            translation={"provider": "libre", "url": server.url, "api_key_env": "LIBRE_KEY"})
        t2 = Translator(wrong.translation, Store(tmp_path / "other.db"), clock=FakeClock(), now=FakeNow())
        assert await t2.translate(RU[1], "ru", "en") is None
        assert t2.breaker.state == "open"  # a refused key is not retried
        assert server.count() == 2


def test_google_endpoint_follows_url(tmp_path, store):
    from bot.translate import GOOGLE_DEFAULT_URL

    cases = {"": GOOGLE_DEFAULT_URL, "http://127.0.0.1:8080": "http://127.0.0.1:8080/m",
             "http://proxy.local/google/m": "http://proxy.local/google/m"}
    for url, expected in cases.items():
        t = make_translator(tmp_path, store, url=url) if url else make_translator(tmp_path, store)
        assert t.google_url() == expected


@pytest.mark.parametrize("provider", ["deepl", "yandex", "microsoft"])
async def test_keyed_provider_without_key_says_so_and_queues(tmp_path, store, provider):
    t = make_translator(tmp_path, store, provider=provider, api_key_env="NO_SUCH_KEY_SET")
    assert not t.enabled
    assert any("NO_SUCH_KEY_SET" in w for w in t.startup_warnings())
    assert await t.translate(RU[0], "ru", "en") is None
    assert t.stats.requests == 0
    assert t.pending() == 1


def test_startup_warnings_name_what_each_provider_cannot_do(tmp_path, store):
    assert make_translator(tmp_path, store, provider="google").startup_warnings() == []
    deepl = make_translator(tmp_path, store, provider="deepl", api_key_env="K")
    assert any("kk->en" in w for w in deepl.startup_warnings())
    mymemory = make_translator(tmp_path, store, provider="mymemory")
    assert all(mymemory.supports(s, d) for s in ("en", "ru", "kk") for d in ("en", "ru", "kk"))


async def test_provider_none_translates_nothing(tmp_path, store):
    t = make_translator(tmp_path, store, provider="none")
    assert await t.translate(RU[0], "ru", "en") is None
    assert await t.translate("Same", "en", "en") == "Same"
    assert t.cached(RU[0], "ru", "en") is None
    assert t.pending() == 0


# -- failure modes and recovery ----------------------------------------------


@pytest.mark.parametrize("mode", ["down", "flood"])
async def test_failing_provider_gives_none_queues_and_recovery_fills(tmp_path, store, translate_server, mode):
    clock, now = FakeClock(), FakeNow()
    t = make_translator(tmp_path, store, translate_server, clock=clock, now=now)
    translate_server.mode = mode
    texts = [(f"{RU[i % 4]} ({i})", "ru") for i in range(40)]

    out = await t.translate_many(texts, "en")
    assert out == [None] * 40
    assert t.breaker.state == "open"
    # the breaker stops the flood of requests: at most threshold + requests already in flight
    assert translate_server.count() <= t.cfg.breaker_failures + t.cfg.concurrency
    if mode == "flood":  # 429 opens the circuit at once
        assert translate_server.count() <= t.cfg.concurrency
    assert t.pending() == 40

    # while open: no request at all, callers still get None at once
    before = translate_server.count()
    assert await t.translate(texts[0][0], "ru", "en") is None
    assert await t.fill_pending() == 0
    assert translate_server.count() == before

    # the provider is back; after the pause, fill_pending fills every gap
    translate_server.mode = "ok"
    clock.t += t.cfg.breaker_reset_seconds + 1
    filled = 0
    for _ in range(5):
        filled += await t.fill_pending(limit=100)
        if t.pending() == 0:
            break
    assert filled == 40 and t.pending() == 0
    assert t.breaker.state == "closed"
    for text, src in texts:
        assert t.cached(text, src, "en") == fake_translation(text, src, "en")


async def test_slow_provider_misses_deadline_and_late_answer_is_kept(tmp_path, store, translate_server):
    translate_server.mode = "slow"
    translate_server.delay = 0.8
    t = make_translator(tmp_path, store, translate_server, timeout_seconds=0.2, budget_seconds=0.3,
                        breaker_failures=10)
    started = time.monotonic()
    assert await t.translate(RU[2], "ru", "en") is None
    assert time.monotonic() - started < translate_server.delay  # did not wait for the answer
    assert t.pending() == 1 and t.stats.timeouts >= 1

    # the answer arrives after the deadline: it is cached and the queue entry goes
    for _ in range(100):
        if t.cached(RU[2], "ru", "en") is not None:
            break
        await asyncio.sleep(0.05)
    assert t.cached(RU[2], "ru", "en") == fake_translation(RU[2], "ru", "en")
    assert t.pending() == 0
    translate_server.mode = "ok"


async def test_many_texts_against_a_slow_provider_return_within_budget(tmp_path, store, translate_server):
    translate_server.mode = "slow"
    translate_server.delay = 1.5
    t = make_translator(tmp_path, store, translate_server, timeout_seconds=1.0, budget_seconds=0.3,
                        breaker_failures=50, concurrency=2)
    texts = [(f"{RU[0]} {i}", "ru") for i in range(30)]
    started = time.monotonic()
    out = await t.translate_many(texts, "en")
    assert time.monotonic() - started < translate_server.delay
    assert out == [None] * 30
    assert t.pending() == 30
    # only the requests that fit in the workers went out; the rest waited for nothing
    assert translate_server.count() <= t.cfg.concurrency
    translate_server.mode = "ok"


async def test_hung_workers_make_later_calls_fail_fast(tmp_path, store, translate_server):
    translate_server.mode = "slow"
    translate_server.delay = 1.5
    t = make_translator(tmp_path, store, translate_server, timeout_seconds=0.1, budget_seconds=0.2,
                        breaker_failures=1000, concurrency=1, attempts=1)
    for i in range(t.max_threads):
        assert await t.translate(f"{RU[1]} {i}", "ru", "en") is None
    sent = translate_server.count()
    assert await t.translate(RU[3], "ru", "en") is None  # every worker still hangs: no new request
    assert translate_server.count() == sent == t.max_threads
    translate_server.mode = "ok"


async def test_transient_error_is_retried_within_the_call(tmp_path, store, translate_server):
    t = make_translator(tmp_path, store, translate_server, attempts=3, breaker_failures=10)
    translate_server.mode = "down"
    task = asyncio.create_task(t.translate(RU[0], "ru", "en"))
    for _ in range(200):  # let the first attempt fail, then bring the server back
        if translate_server.count() >= 1:
            break
        await asyncio.sleep(0.005)
    translate_server.mode = "ok"
    result = await task
    codes = [r.status for r in translate_server.requests]
    assert codes[0] == 503
    if result is not None:  # the retry reached the recovered server
        assert result == fake_translation(RU[0], "ru", "en")
        assert codes[-1] == 200 and len(codes) >= 2


async def test_pending_retry_backs_off_when_provider_keeps_failing(tmp_path, store, translate_server):
    clock, now = FakeClock(), FakeNow()
    t = make_translator(tmp_path, store, translate_server, clock=clock, now=now, breaker_failures=100)
    translate_server.mode = "down"
    assert await t.translate(RU[0], "ru", "en") is None
    assert t.pending() == 1
    assert await t.fill_pending() == 0  # due now, fails again: pushed back
    sent = translate_server.count()
    assert await t.fill_pending() == 0  # not due yet: no request
    assert translate_server.count() == sent
    translate_server.mode = "ok"
    now.t += timedelta(hours=1)
    assert await t.fill_pending() == 1
    assert t.pending() == 0


# -- size limits -------------------------------------------------------------


async def test_long_text_is_split_on_sentences(tmp_path, store, translate_server):
    t = make_translator(tmp_path, store, translate_server)
    limit = SIZE_LIMITS["google"]
    sentences = [f"Сообщение {i}: власти заявили о новых мерах в регионе." for i in range(80)]
    text = " ".join(sentences)
    assert len(text) > 2 * limit
    out = await t.translate(text, "ru", "en")
    seen = translate_server.texts()
    assert len(seen) >= 3
    assert all(len(piece) <= limit for piece in seen)
    assert all(piece.endswith(".") for piece in seen)  # cut between sentences
    assert " ".join(seen) == text  # every word sent, once, in order
    assert out == " ".join(fake_translation(piece, "ru", "en") for piece in seen)


# -- circuit breaker -----------------------------------------------------------


def test_breaker_opens_half_opens_and_closes():
    clock = FakeClock()
    b = CircuitBreaker(threshold=3, reset_seconds=10, clock=clock)
    for _ in range(2):
        assert b.allow()
        b.failure()
    assert b.state == "closed"
    assert b.allow()
    b.failure()
    assert b.state == "open" and not b.allow()

    clock.t += 10
    assert b.allow() and b.state == "half-open"  # one trial
    assert not b.allow()  # and only one
    b.failure()  # trial failed: open again, twice as long
    assert b.state == "open"
    clock.t += 10
    assert not b.allow()
    clock.t += 10
    assert b.allow()
    b.success()
    assert b.state == "closed" and b.allow() and b.reset_seconds == 10


def test_breaker_opens_at_once_when_rate_limited():
    b = CircuitBreaker(threshold=5, reset_seconds=10, clock=FakeClock())
    assert b.allow()
    b.failure("rate")
    assert b.state == "open"


async def test_breaker_half_open_sends_one_trial_to_the_server(tmp_path, store, translate_server):
    clock = FakeClock()
    t = make_translator(tmp_path, store, translate_server, clock=clock, breaker_failures=2, concurrency=1,
                        attempts=1)
    translate_server.mode = "down"
    for text in RU[:2]:
        assert await t.translate(text, "ru", "en") is None
    assert t.breaker.state == "open"
    sent = translate_server.count()

    clock.t += t.cfg.breaker_reset_seconds + 1
    out = await t.translate_many([(text, "ru") for text in RU], "en")  # still down
    assert out == [None] * 4
    assert translate_server.count() == sent + 1  # exactly one trial
    assert t.breaker.state == "open"
    assert t.breaker.reset_seconds == 2 * t.cfg.breaker_reset_seconds

    translate_server.mode = "ok"
    clock.t += t.breaker.reset_seconds + 1
    out = await t.translate_many([(text, "ru") for text in RU], "en")
    assert out == [fake_translation(text, "ru", "en") for text in RU]
    assert t.breaker.state == "closed"


async def test_mymemory_through_url_override(tmp_path, store, translate_server):
    t = make_translator(tmp_path, store, provider="mymemory", url=translate_server.url + "/get")
    assert await t.translate(KK, "kk", "ru") == fake_translation(KK, "kk", "ru")
    assert translate_server.count("/get") == 1


# -- through the pipeline: only what a reader will see -------------------------

TOPIC = {
    "id": "kz-unrest", "name": "Unrest in Kazakhstan", "match": "protest",
    "groups": {"protest": {"ru": ["протест", "митинг"], "en": ["protest", "rally"], "kk": ["наразылық"]}},
}


def _rss(titles: list[str]) -> bytes:
    items = "".join(
        f"<item><title>{t}</title><link>https://news.example/{i}</link><guid>g-{i}</guid>"
        f"<description>{t}. Подробности позже.</description></item>"
        for i, t in enumerate(titles))
    return (f'<?xml version="1.0" encoding="utf-8"?><rss version="2.0"><channel><title>Лента</title>'
            f"<link>https://news.example/</link>{items}</channel></rss>").encode("utf-8")


async def test_pipeline_translates_matched_items_only(tmp_path, translate_server):
    from bot.match import Matcher
    from bot.pipeline import Pipeline
    from tests.feedserver import FeedServer

    matched = ["Протест у здания акимата в Алматы", "Митинг водителей на трассе"]
    unmatched = ["Курс тенге укрепился к доллару", "В Астане открыли новый парк",
                 "Погода на выходные: снег и ветер", "Результаты футбольного матча"]
    with FeedServer() as feeds:
        url = feeds.route("/ru.xml", body=_rss(matched[:1] + unmatched + matched[1:]))
        cfg = make_config(tmp_path, feeds=[{"url": url, "lang": "ru", "name": "Лента"}], topics=[TOPIC],
                          translation={"provider": "google", "url": translate_server.url, "target": "en"})
        store = Store(cfg.storage.path)
        store.sync_feeds(cfg.feeds)
        translator = Translator(cfg.translation, store)
        pipeline = Pipeline(store, cfg, matcher=Matcher(cfg.topics), translator=translator)
        report = await pipeline.run_cycle(force=True)

        by_title = {n.item.title: n for n in report.new_items}
        assert set(by_title) == set(matched + unmatched)
        for title in matched:
            assert by_title[title].matches, title
            assert by_title[title].title_target == fake_translation(title, by_title[title].item.lang, "en")
        for title in unmatched:
            assert not by_title[title].matches, title
            assert by_title[title].title_target is None
        assert sorted(translate_server.texts()) == sorted(matched)  # nothing else was sent
        store.close()


async def test_pipeline_cycle_with_provider_down_loses_nothing(tmp_path, translate_server):
    from bot.match import Matcher
    from bot.pipeline import Pipeline
    from tests.feedserver import FeedServer

    matched = [f"Митинг номер {i} прошёл в городе" for i in range(12)]
    with FeedServer() as feeds:
        url = feeds.route("/ru.xml", body=_rss(matched))
        cfg = make_config(tmp_path, feeds=[{"url": url, "lang": "ru", "name": "Лента"}], topics=[TOPIC],
                          translation={"provider": "google", "url": translate_server.url, "target": "en",
                                       "breaker_failures": 2})
        store = Store(cfg.storage.path)
        store.sync_feeds(cfg.feeds)
        clock = FakeClock()
        translator = Translator(cfg.translation, store, clock=clock)
        translate_server.mode = "down"
        report = await Pipeline(store, cfg, matcher=Matcher(cfg.topics), translator=translator).run_cycle(
            force=True)
        assert len(report.matched) == 12
        assert all(n.title_target is None for n in report.matched)  # shown in Russian, marked [RU]
        assert translator.pending() == 12

        translate_server.mode = "ok"
        clock.t += cfg.translation.breaker_reset_seconds + 1
        assert await translator.fill_pending() == 12
        for n in report.matched:
            assert translator.cached(n.item.title, n.item.lang, "en") == fake_translation(
                n.item.title, n.item.lang, "en")
        store.close()


async def test_warm_fills_every_reader_language_once(tmp_path, store, translate_server):
    t = make_translator(tmp_path, store, translate_server)
    texts = [(RU[0], "ru"), (KK, "kk"), ("Rally in Almaty", "en"), (RU[0], "ru")]
    available = await t.warm(texts, ["en", "ru", "kk", "en"])
    assert available == 12  # 4 texts x 3 languages (same-language ones need no request)
    distinct_pairs = {(text, src, dst) for text, src in texts for dst in ("en", "ru", "kk") if src != dst}
    assert translate_server.count() == len(distinct_pairs)
    for text, src, dst in distinct_pairs:
        assert t.cached(text, src, dst) == fake_translation(text, src, dst)


async def test_pending_text_is_given_up_after_many_failures_but_kept(tmp_path, store, translate_server):
    now = FakeNow()
    t = make_translator(tmp_path, store, translate_server, now=now, breaker_failures=1000, attempts=1)
    translate_server.mode = "down"
    assert await t.translate(RU[3], "ru", "en") is None
    rounds = 0
    while t.pending() and rounds < 50:
        await t.fill_pending()
        now.t += timedelta(hours=7)
        rounds += 1
    assert t.pending() == 0 and rounds > 3
    row = store.conn.execute(
        "SELECT attempts, last_error, next_attempt_at FROM translation_pending").fetchone()
    assert row[0] == _PENDING_MAX_ATTEMPTS  # tried that often, then kept with its last error
    assert row[1].startswith("translate: ")
    assert row[2] is None
    translate_server.mode = "ok"


async def test_translator_never_raises_even_when_the_store_fails(tmp_path, db_path, translate_server):
    s = Store(db_path)
    t = make_translator(tmp_path, s, translate_server)
    s.close()
    assert await t.translate(RU[0], "ru", "en") is None
    assert await t.translate_many([(RU[1], "ru"), ("x y", "kk")], "en") == [None, None]
    assert await t.fill_pending() == 0


async def test_a_given_up_text_wanted_again_is_revived(tmp_path, store, translate_server):
    now = FakeNow()
    t = make_translator(tmp_path, store, translate_server, now=now, breaker_failures=1000, attempts=1)
    translate_server.mode = "down"
    assert await t.translate(RU[2], "ru", "en") is None
    for _ in range(50):
        if not t.pending():
            break
        await t.fill_pending()
        now.t += timedelta(hours=7)
    assert t.pending() == 0  # given up
    assert await t.translate(RU[2], "ru", "en") is None  # shown again, still down
    assert t.pending() == 1
    translate_server.mode = "ok"
    assert await t.fill_pending() == 1
    assert t.cached(RU[2], "ru", "en") == fake_translation(RU[2], "ru", "en")


def test_one_translator_serves_several_event_loops(tmp_path, store, translate_server):
    # as a CLI verb running asyncio.run twice; one worker, so texts queue for it in both loops
    t = make_translator(tmp_path, store, translate_server, concurrency=1)
    first = asyncio.run(t.translate_many([(text, "ru") for text in RU[:2]], "en"))
    assert first == [fake_translation(text, "ru", "en") for text in RU[:2]]
    second = asyncio.run(t.translate_many([(text, "ru") for text in RU[2:]], "en"))
    assert second == [fake_translation(text, "ru", "en") for text in RU[2:]]
    assert translate_server.count() == len(RU)


async def test_slow_provider_cut_short_by_the_budget_still_opens_the_circuit(tmp_path, store, translate_server):
    translate_server.mode = "slow"
    translate_server.delay = 0.8
    t = make_translator(tmp_path, store, translate_server, timeout_seconds=0.5, budget_seconds=0.2,
                        breaker_failures=2, concurrency=2)
    out = await t.translate_many([(text, "ru") for text in RU], "en")
    assert out == [None] * 4
    assert t.stats.timeouts == 0 and t.breaker.state == "closed"  # the budget cut both waits short
    sent = translate_server.count()

    def kept() -> int:
        return sum(t.cached(text, "ru", "en") is not None for text in RU)

    for _ in range(100):  # no answer within timeout_seconds: two failures; the answers come later
        if t.breaker.state == "open" and kept() == sent:
            break
        await asyncio.sleep(0.05)
    assert t.breaker.state == "open"
    assert kept() == sent  # the late answers were kept
    assert await t.translate(RU[3] + " (next cycle)", "ru", "en") is None
    assert translate_server.count() == sent
    translate_server.mode = "ok"


async def test_hanging_provider_opens_the_circuit_without_ever_answering(tmp_path, store, translate_server):
    translate_server.mode = "slow"
    translate_server.delay = 5.0  # longer than the test waits: as good as never
    t = make_translator(tmp_path, store, translate_server, timeout_seconds=0.4, budget_seconds=0.1,
                        breaker_failures=2, concurrency=2)
    assert await t.translate_many([(text, "ru") for text in RU], "en") == [None] * 4
    assert t.breaker.state == "closed"
    for _ in range(100):
        if t.breaker.state == "open":
            break
        await asyncio.sleep(0.05)
    assert t.breaker.state == "open"  # judged overdue at timeout_seconds, with no answer at all
    translate_server.mode = "ok"


def _errors():
    from deep_translator import exceptions as e
    return [
        (e.TooManyRequests(), "rate"),
        (e.ServerException(429), "rate"),
        (e.ServerException(503), "transient"),
        (e.ServerException(500), "transient"),
        (e.ServerException(456), "transient"),  # unknown code: "API server error"
        (e.ServerException(401), "provider"),
        (e.ServerException(403), "provider"),
        (e.ServerException(413), "text"),
        (e.ServerException(400), "text"),
        (e.AuthorizationException("k"), "provider"),
        (e.ApiKeyException("K"), "provider"),
        (e.RequestError(), "transient"),
        (e.TranslationNotFound("x"), "transient"),
        (e.NotValidLength("x", 0, 5), "text"),
        (e.LanguageNotSupportedException("xx"), "text"),
        (e.MicrosoftAPIerror({"code": 429001}), "rate"),
        (e.MicrosoftAPIerror({"code": 401000}), "provider"),
        (ConnectionRefusedError(), "transient"),
        (KeyError("translatedText"), "transient"),
    ]


@pytest.mark.parametrize("exc,kind", _errors(), ids=lambda v: type(v).__name__ if isinstance(v, Exception) else v)
def test_errors_are_classified(exc, kind):
    from bot.translate import classify
    failed = classify(exc)
    assert failed.kind == kind
    assert str(failed).startswith("translate: ")
