"""Translation benchmark: what translating costs a poll cycle, against baselines from the same run.

Run: ``.venv/bin/python -m bench.translate [--items 1000] [--repeat 3]``

Ten feeds on 127.0.0.1 (4 Russian, 3 Kazakh, 3 English) carry ``--items``
items in all, about 5% of them about a protest (the topic matches them), some
of those carried by several feeds with the same title, as wire stories are.
Each cycle is ``Pipeline.run_cycle`` into a fresh SQLite file, with the
translator pointed (through ``[translation] url``) at the local translation
server (tests/translate_server.py) speaking Google's mobile page.

Figures:

1. provider requests per 1,000 polled items, against the distinct texts shown
   (matched titles not in the reader language: the target is no more than
   those) and against a baseline that translates every polled title
   (dedup and cache included, no matching filter);
2. cache hit rate when the shown texts are asked for again (as alerts and the
   digest do), against the first pass;
3. time a poll cycle gains when the provider is down (503; and a closed port),
   against the same cycle with no translator, at 1x and 5x the items; the
   target is under one second however many items. A slow provider (answers
   after the deadline) is shown too: it is bounded by ``budget_seconds``. For
   the failing modes, the service's next cycle (same translator, new items,
   circuit now open) is measured as well. The 5x size runs once per mode.
"""

from __future__ import annotations

import argparse
import asyncio
import logging
import random
import socket
import statistics
import sys
import tempfile
import time
from pathlib import Path
from xml.sax.saxutils import escape

ROOT = Path(__file__).resolve().parent.parent
if str(ROOT) not in sys.path:
    sys.path.insert(0, str(ROOT))

from bot.match import Matcher  # noqa: E402
from bot.pipeline import Pipeline  # noqa: E402
from bot.store import Store  # noqa: E402
from bot.translate import Translator  # noqa: E402
from tests.conftest import make_config  # noqa: E402
from tests.feedserver import FeedServer  # noqa: E402
from tests.translate_server import TranslateServer  # noqa: E402

FEEDS = [("ru", 4), ("kk", 3), ("en", 3)]
MATCH_SHARE = 0.05
WIRE_COPIES = 3  # a matched wire story appears in up to this many feeds with the same title

TOPIC = {
    "id": "kz-unrest", "name": "Unrest in Kazakhstan", "match": "protest",
    "groups": {"protest": {"en": ["protest", "rally"], "ru": ["митинг", "протест"], "kk": ["наразылық"]}},
}

# Vocabulary written for this benchmark (not real headlines).
WORDS = {
    "ru": {
        "who": ["Акимат", "Министерство транспорта", "Нацбанк", "Городской совет", "Фермеры", "Энергетики",
                "Строители", "Учителя", "Врачи", "Железнодорожники"],
        "did": ["обсудил", "утвердил", "представил", "перенёс", "завершил", "начал"],
        "what": ["новый бюджет", "ремонт дорог", "план отопления", "тарифы на воду", "запуск автобусов",
                 "строительство школы", "сбор урожая", "реформу налогов"],
        "where": ["в Астане", "в Шымкенте", "в Караганде", "в Актобе", "в Павлодаре", "в Костанае"],
        "hot": "Митинг у здания акимата {where}: собравшиеся требуют {what}",
    },
    "kk": {
        "who": ["Әкімдік", "Көлік министрлігі", "Ұлттық банк", "Қалалық мәслихат", "Фермерлер",
                "Құрылысшылар",
                "Мұғалімдер", "Дәрігерлер"],
        "did": ["талқылады", "бекітті", "ұсынды", "аяқтады", "бастады"],
        "what": ["жаңа бюджетті", "жол жөндеуді", "жылу жоспарын", "су тарифін", "мектеп құрылысын",
                 "егін жинауды"],
        "where": ["Астанада", "Шымкентте", "Қарағандыда", "Ақтөбеде", "Павлодарда"],
        "hot": "{where} наразылық акциясы өтті: тұрғындар {what} талап етті",
    },
    "en": {
        "who": ["The city council", "The transport ministry", "The central bank", "Farmers", "Builders",
                "Teachers", "Doctors", "Rail workers"],
        "did": ["discussed", "approved", "presented", "postponed", "completed", "started"],
        "what": ["a new budget", "road repairs", "the heating plan", "water tariffs", "a school project",
                 "the harvest"],
        "where": ["in Astana", "in Shymkent", "in Karaganda", "in Aktobe", "in Pavlodar"],
        "hot": "Protest outside the city hall {where} over {what}",
    },
}


def make_feeds(total: int, rng: random.Random) -> dict[str, tuple[str, list[tuple[str, str]]]]:
    """path -> (lang, [(title, summary)]) with about MATCH_SHARE of the items matching."""
    n_feeds = sum(n for _, n in FEEDS)
    per_feed = total // n_feeds
    feeds: dict[str, tuple[str, list[tuple[str, str]]]] = {}
    k = 0
    for lang, n in FEEDS:
        for j in range(n):
            feeds[f"/{lang}{j}.xml"] = (lang, [])
    paths = list(feeds)
    # matched stories, some carried by several feeds of the same language
    hot_left = round(total * MATCH_SHARE)
    serial = 0
    while hot_left > 0:
        lang = rng.choice([lang for lang, _ in FEEDS])
        w = WORDS[lang]
        serial += 1
        title = w["hot"].format(where=rng.choice(w["where"]), what=rng.choice(w["what"])) + f" ({serial})"
        same_lang = [p for p in paths if feeds[p][0] == lang]
        copies = min(hot_left, rng.randint(1, WIRE_COPIES), len(same_lang))
        for p in rng.sample(same_lang, copies):
            feeds[p][1].append((title, f"{title}. {p} {serial}"))
            hot_left -= 1
    for p in paths:
        lang, items = feeds[p]
        w = WORDS[lang]
        while len(items) < per_feed:
            k += 1
            title = " ".join(rng.choice(w[part]) for part in ("who", "did", "what", "where"))
            items.append((f"{title} #{k}", f"{title}. {k}"))
        rng.shuffle(items)
    return feeds


def rss(items: list[tuple[str, str]], path: str) -> bytes:
    body = "".join(
        f"<item><title>{escape(t)}</title><link>https://news.example{path}/{i}</link>"
        f"<guid>{path}-{i}</guid><description>{escape(s)}</description></item>"
        for i, (t, s) in enumerate(items))
    return (f'<?xml version="1.0" encoding="utf-8"?><rss version="2.0"><channel><title>{path}</title>'
            f"<link>https://news.example{path}</link>{body}</channel></rss>").encode("utf-8")


class Timed:
    """The translator as the pipeline sees it, timing every call the cycle makes to it."""

    def __init__(self, inner: Translator):
        self.inner = inner
        self.seconds = 0.0

    async def translate_many(self, texts, dst):
        started = time.perf_counter()
        try:
            return await self.inner.translate_many(texts, dst)
        finally:
            self.seconds += time.perf_counter() - started

    def cached(self, text, src, dst):
        started = time.perf_counter()
        try:
            return self.inner.cached(text, src, dst)
        finally:
            self.seconds += time.perf_counter() - started

    def __getattr__(self, name):
        return getattr(self.inner, name)


class Run:
    def __init__(self, tmp: Path, feed_urls: list[tuple[str, str]], translation: dict | None):
        self.tmp = tmp
        self.feed_urls = feed_urls
        self.translation = translation

    async def cycle(self, name: str, feed_urls: list[tuple[str, str]] | None = None, reuse=None):
        """One cycle with every feed new: (seconds, report, translator, store).

        A fresh database, unless ``reuse`` is a (store, translator) pair from an
        earlier cycle: then ``feed_urls`` replace that cycle's feeds, and the
        translator keeps its cache and circuit state (the next cycle of a service).
        """
        db = self.tmp / f"{name}.db"
        section = {"provider": "none", "target": "en"}
        if self.translation:
            section = {"target": "en", **self.translation}
        cfg = make_config(self.tmp, storage={"path": str(db)}, topics=[TOPIC],
                          feeds=[{"url": u, "lang": lang, "name": u.rsplit("/", 1)[-1]}
                                 for u, lang in (feed_urls or self.feed_urls)],
                          translation=section)
        if reuse is not None:
            store, translator = reuse
            translator.seconds = 0.0
        else:
            store = Store(db)
            translator = Timed(Translator(cfg.translation, store)) if self.translation else None
        store.sync_feeds(cfg.feeds)
        pipeline = Pipeline(store, cfg, matcher=Matcher(cfg.topics), translator=translator)
        started = time.perf_counter()
        report = await pipeline.run_cycle(force=True)
        return time.perf_counter() - started, report, translator, store


def closed_port() -> int:
    s = socket.socket()
    s.bind(("127.0.0.1", 0))
    port = s.getsockname()[1]
    s.close()
    return port


async def main(items: int, repeat: int) -> None:
    logging.basicConfig(level=logging.ERROR)
    rng = random.Random(4)
    with tempfile.TemporaryDirectory() as tmpdir, FeedServer() as fs, TranslateServer() as ts:
        tmp = Path(tmpdir)

        def serve(total: int, tag: str) -> list[tuple[str, str]]:
            urls = []
            for path, (lang, its) in make_feeds(total, rng).items():
                urls.append((fs.route(f"/{tag}{path}", body=rss(its, f"/{tag}{path}")), lang))
            return urls

        urls = serve(items, "a")
        google = {"provider": "google", "url": ts.url, "timeout_seconds": 2.0, "budget_seconds": 5.0}

        # -- 1. requests per 1,000 polled items ------------------------------
        ts.reset()
        _, report, tr, store = await Run(tmp, urls, google).cycle("requests")
        polled = len(report.new_items)
        shown = [(n.item.title, n.item.lang) for n in report.matched if n.item.lang != "en"]
        distinct_shown = len(set(shown))
        requests = ts.count()
        per_1000 = requests * 1000 / polled
        ok_titles = sum(1 for n in report.matched if n.item.lang != "en" and n.title_target)
        # baseline: translate every polled title not in English (dedup and cache still on)
        base_store = Store(tmp / "baseline-all.db")
        base_tr = Translator(tr.inner.cfg, base_store)
        ts.reset()
        await base_tr.translate_many([(n.item.title, n.item.lang) for n in report.new_items
                                      if n.item.lang != "en"], "en")
        base_requests = ts.count()
        base_store.close()
        print(f"polled items: {polled}, matched: {len(report.matched)}, "
              f"matched not in English: {len(shown)}, "
              f"distinct texts shown: {distinct_shown}, translated: {ok_titles}")
        print(f"1. translator requests per 1,000 polled items: {per_1000:.1f} "
              f"(target <= distinct texts shown per 1,000: {distinct_shown * 1000 / polled:.1f}) "
              f"{'OK' if requests <= distinct_shown else 'OVER'}")
        print(f"   baseline, translate every polled title: {base_requests * 1000 / polled:.1f} per 1,000 "
              f"-> ratio {requests / max(base_requests, 1):.3f} "
              f"({base_requests / max(requests, 1):.1f}x fewer)")

        # -- 2. cache hit rate on a second pass --------------------------------
        hits_before = tr.stats.cache_hits
        lookups_first = tr.stats.cache_hits + tr.stats.cache_misses
        first_rate = hits_before / lookups_first if lookups_first else 0.0
        ts.reset()
        misses_before = tr.stats.cache_misses
        again = await tr.translate_many(shown, "en")
        hits = tr.stats.cache_hits - hits_before
        misses = tr.stats.cache_misses - misses_before
        second_rate = hits / (hits + misses) if hits + misses else 0.0
        cached_ok = sum(1 for text, lang in shown if tr.cached(text, lang, "en") is not None)
        print(f"2. cache hit rate, second pass over the {len(shown)} shown texts: {second_rate:.1%} "
              f"(requests: {ts.count()}, answered: {sum(1 for a in again if a)}, cached() finds {cached_ok}) "
              f"{'OK' if second_rate == 1.0 and ts.count() == 0 else 'MISSED'}")
        print(f"   baseline, first pass: {first_rate:.1%}")
        store.close()

        # -- 3. time added to a poll cycle -----------------------------------
        big = serve(items * 5, "b")
        modes = [("no translator (baseline)", None, None),
                 ("provider ok", "ok", google),
                 ("provider down (503)", "down", google),
                 ("provider down (closed port)", "ok",
                  {**google, "url": f"http://127.0.0.1:{closed_port()}"}),
                 ("provider slow (answers after the deadline)", "slow",
                  {**google, "timeout_seconds": 1.0, "budget_seconds": 2.0})]
        ts.delay = 3.0
        sizes = ((items, urls, serve(items, "c"), repeat), (items * 5, big, serve(items * 5, "d"), 1))
        for label_items, feed_urls, next_urls, reps in sizes:
            cycle: dict[str, list[float]] = {}
            spent: dict[str, list[float]] = {}
            detail: dict[str, str] = {}

            def record(label, seconds, rep, t):
                cycle.setdefault(label, []).append(seconds)
                spent.setdefault(label, []).append(t.seconds if t is not None else 0.0)
                if t is not None:
                    detail[label] = (f"matched {len(rep.matched)}, requests {t.stats.requests}, "
                                     f"untranslated and queued {t.pending()}")

            for r in range(reps):  # modes interleaved, so machine load hits them alike
                for m, (label, mode, section) in enumerate(modes):
                    ts.mode = mode or "ok"
                    run = Run(tmp, feed_urls, section)
                    seconds, rep, t, st = await run.cycle(f"t{label_items}-{m}-{r}")
                    record(label, seconds, rep, t)
                    if mode in ("down", "slow"):  # the service's next cycle: the circuit is open now
                        seconds, rep, t, st = await run.cycle("", next_urls, reuse=(st, t))
                        record(f"{label}, next cycle", seconds, rep, t)
                    st.close()
            ts.mode = "ok"
            base_cycle = statistics.median(cycle["no translator (baseline)"])
            ok_spent = statistics.median(spent["provider ok"])
            print(f"3. poll cycle, {label_items} items, median of {reps}; time inside the translator "
                  f"(what translation adds) and the whole cycle:")
            for label in cycle:
                whole = statistics.median(cycle[label])
                inside = statistics.median(spent[label])
                if label == "no translator (baseline)":
                    print(f"   {label}: adds 0 s; whole cycle {whole:.3f} s")
                    continue
                line = f"   {label}: adds {inside:.3f} s"
                if label != "provider ok":
                    line += f" (vs provider ok {ok_spent:.3f} s: ratio {inside / ok_spent:.2f})"
                if "down" in label:
                    line += " OK (< 1 s)" if inside < 1.0 else " OVER (>= 1 s)"
                line += (f"; whole cycle {whole:.3f} s vs {base_cycle:.3f} s without translator "
                         f"({whole - base_cycle:+.3f} s, includes run-to-run noise) [{detail[label]}]")
                print(line)


def cli() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--items", type=int, default=1000, help="items polled per cycle (default 1000)")
    parser.add_argument("--repeat", type=int, default=3, help="cycles per mode for the timings (default 3)")
    args = parser.parse_args()
    asyncio.run(main(args.items, args.repeat))


if __name__ == "__main__":
    cli()
