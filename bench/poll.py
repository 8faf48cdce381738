"""Poll benchmark: N feeds of 50 items on loopback, the whole pipeline against a plain loop.

Run: ``.venv/bin/python -m bench.poll [--feeds N]`` (default 1000).

A child process serves the feeds (tests/feedserver.py, with ETag and
Last-Modified). In this process, one run measures:

* cold cycle: ``Pipeline.run_cycle`` into a fresh SQLite file (fetch, parse,
  dedupe, language detection, matching against the repository's topics,
  stories, store), every feed new, each new item written out as a JSON line
  (to /dev/null) as ``python -m bot poll --json`` does;
* warm cycle: the same again, every feed answering 304;
* baseline: a plain sequential ``feedparser.parse(url)`` loop over the same N
  URLs (fetch and parse only, nothing stored);
* peak RSS of this process (``ru_maxrss``; the server process is not counted).
"""

from __future__ import annotations

import argparse
import asyncio
import multiprocessing
import os
import random
import re
import resource
import sys
import tempfile
import time
import tomllib
from datetime import datetime, timedelta, timezone
from email.utils import format_datetime
from pathlib import Path
from xml.sax.saxutils import escape

ROOT = Path(__file__).resolve().parent.parent
ITEMS = 50

LANGS = ("en", "ru", "kk")
EPOCH = datetime(2026, 1, 1, tzinfo=timezone.utc)


# Vocabularies written for this benchmark: common news words, so that every
# item is distinct (random draws) yet made of real words in its language.
VOCAB = {
    "en": """government minister parliament election vote budget tax price market bank oil gas grain wheat
        export import railway road bridge airport flight train bus city region village school hospital
        doctor teacher student court judge police border army weather storm snow rain flood fire power
        water heating winter summer report company factory worker salary pension farmer harvest cattle
        river lake mountain festival concert museum library theatre football team match coach player
        medal record internet mobile phone network operator service bill law reform plan project contract
        investment loan currency inflation rate growth decline meeting talks visit delegation summit
        agreement statement spokesman official mayor governor council committee agency ministry""".split(),
    "ru": """правительство министр парламент выборы голосование бюджет налог цена рынок банк нефть газ зерно
        пшеница экспорт импорт железная дорога мост аэропорт рейс поезд автобус город область село школа
        больница врач учитель студент суд судья полиция граница армия погода буря снег дождь паводок
        пожар электричество вода отопление зима лето отчёт компания завод рабочий зарплата пенсия
        фермер урожай скот река озеро горы фестиваль концерт музей библиотека театр футбол команда
        матч тренер игрок медаль рекорд интернет связь телефон оператор услуга закон реформа план
        проект договор инвестиции кредит валюта инфляция ставка рост снижение встреча переговоры визит
        делегация саммит соглашение заявление представитель чиновник аким совет комитет агентство""".split(),
    "kk": """үкімет министр парламент сайлау дауыс бюджет салық баға нарық банк мұнай газ астық бидай экспорт
        импорт теміржол жол көпір әуежай рейс пойыз автобус қала облыс ауыл мектеп аурухана дәрігер
        мұғалім студент сот судья полиция шекара әскер ауа райы боран қар жаңбыр су тасқыны өрт
        электр жылу қыс жаз есеп компания зауыт жұмысшы жалақы зейнетақы фермер егін мал өзен көл тау
        фестиваль концерт мұражай кітапхана театр футбол команда ойын жаттықтырушы ойыншы медаль рекорд
        интернет байланыс телефон оператор қызмет заң реформа жоспар жоба келісімшарт инвестиция несие
        валюта инфляция мөлшерлеме өсім төмендеу кездесу келіссөз сапар делегация саммит келісім
        мәлімдеме өкіл шенеунік әкім кеңес комитет агенттік министрлік""".split(),
}


_VOCAB_CACHE: dict[str, list[str]] = {}


def vocabulary(lang: str) -> list[str]:
    """VOCAB plus every word of the team's bundled sample feeds in that language."""
    if lang not in _VOCAB_CACHE:
        from bot.models import utcnow
        from bot.parse import parse_feed

        words = set(VOCAB[lang])
        for path in sorted((ROOT / "bot" / "samples").glob(f"{lang}_*.xml")):
            for e in parse_feed(path.read_bytes(), {}, "https://samples.example/", utcnow()).entries:
                words.update(w.lower() for w in re.findall(r"[^\W\d_]{3,}", f"{e.title} {e.summary}"))
        _VOCAB_CACHE[lang] = sorted(words)
    return _VOCAB_CACHE[lang]


def make_feed(index: int, items: int = ITEMS) -> bytes:
    """A well-formed UTF-8 RSS 2.0 feed; every item's text is unique to (feed, item).

    Titles and summaries are random draws from a vocabulary of real news words
    in the feed's language (VOCAB and the words of the bundled sample feeds),
    so items are distinct (as real news is) rather than near-duplicates of
    each other."""
    lang = LANGS[index % 3]
    rng = random.Random(index)
    out = ['<?xml version="1.0" encoding="utf-8"?>',
           '<rss version="2.0"><channel>',
           f"<title>Bench feed {index} ({lang})</title><link>https://feed{index}.bench.example/</link>",
           f"<description>Synthetic feed number {index}</description><language>{lang}</language>"]
    for j in range(items):
        vocab = vocabulary(lang)
        title = f"{' '.join(rng.sample(vocab, 8)).capitalize()} {index}-{j}"
        body = " ".join(rng.sample(vocab, 24))
        when = EPOCH + timedelta(minutes=index * 7 + j * 13)
        out.append(
            "<item>"
            f"<title>{escape(title)}</title>"
            f"<link>https://feed{index}.bench.example/news/{j}?utm_source=rss</link>"
            f'<guid isPermaLink="false">bench-{index}-{j}</guid>'
            f"<pubDate>{format_datetime(when)}</pubDate>"
            f"<description>{escape('<p>' + body.capitalize() + f' ({index}/{j}).</p>')}</description>"
            "</item>")
    out.append("</channel></rss>")
    return "\n".join(out).encode("utf-8")


def _serve(n: int, hosts: int, ready, stop) -> None:
    """Child process: serve feed i from loopback address 127.0.0.(1 + i % hosts)."""
    sys.path.insert(0, str(ROOT))
    from tests.feedserver import FeedServer, Route

    servers = [FeedServer(host=f"127.0.0.{1 + h}").start() for h in range(hosts)]
    urls = []
    for i in range(n):
        srv = servers[i % hosts]
        urls.append(srv.route(f"/feed/{i}.xml", Route(body=make_feed(i), etag=f'"v1-{i}"',
                                                      last_modified="Thu, 01 Jan 2026 00:00:00 GMT")))
    ready.send(urls)
    stop.wait()
    for srv in servers:
        srv.stop()


def _config(db: Path, urls: list[str], workers: int | None = None):
    from bot import config as config_mod

    raw = tomllib.loads((ROOT / "config.toml").read_text(encoding="utf-8"))
    raw["storage"] = {"path": str(db)}
    raw["translation"] = {"provider": "none", "target": "en"}
    raw.setdefault("poll", {})
    raw["poll"].update({"connect_timeout": 10.0, "read_timeout": 20.0, "total_timeout": 60.0})
    if workers is not None:
        raw["poll"]["workers"] = workers
    raw["feeds"] = [{"url": u, "lang": LANGS[i % 3], "name": f"bench {i}"} for i, u in enumerate(urls)]
    return config_mod.from_dict(raw, path=db.parent / "config.toml", env={})


async def _cycle(store, cfg, bare: bool = False):
    """One cycle as ``python -m bot poll --json`` runs it, the JSON lines going to /dev/null."""
    from bot.__main__ import _JsonLines
    from bot.pipeline import Pipeline

    pipeline = Pipeline(store, cfg) if bare else Pipeline.from_config(store, cfg)
    with pipeline, open(os.devnull, "w", encoding="utf-8") as sink:
        lines = _JsonLines(sink)
        report = await pipeline.run_cycle(force=True, on_item=lines.write)
        lines.close()
        return report


def _fetch_parse_only(urls: list[str], poll, workers: int) -> tuple[float, int]:
    """The fetch and parse stages alone (no store): concurrent fetches, parse in a
    process pool sized to the cores, pipelined (a feed is parsed as soon as it arrives)."""
    from concurrent.futures import ProcessPoolExecutor

    from bot.fetch import Fetcher
    from bot.models import Feed, utcnow
    from bot.parse import parse_feed

    feeds = [Feed(id=i, url=u, name=f"bench {i}", lang="en") for i, u in enumerate(urls)]
    now = utcnow()

    async def run(pool) -> int:
        loop = asyncio.get_running_loop()
        async with Fetcher(poll) as fetcher:
            async def one(feed: Feed) -> int:
                r = await fetcher.fetch(feed)
                if r.body is None:
                    return 0
                parsed = await loop.run_in_executor(pool, parse_feed, r.body, r.headers, r.final_url, now)
                return len(parsed.entries)
            return sum(await asyncio.gather(*(one(f) for f in feeds)))

    with ProcessPoolExecutor(max_workers=workers) as pool:
        list(pool.map(abs, range(workers)))  # start the workers outside the timing
        started = time.perf_counter()
        entries = asyncio.run(run(pool))
        return time.perf_counter() - started, entries


def _rss_mb() -> float:
    import psutil
    return psutil.Process().memory_info().rss / 2**20


def _plain_loop(urls: list[str]) -> tuple[float, int]:
    import feedparser  # the baseline, as a user would write it

    started = time.perf_counter()
    entries = 0
    for u in urls:
        entries += len(feedparser.parse(u).entries)
    return time.perf_counter() - started, entries


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(prog="python -m bench.poll", description=__doc__.split("\n")[0])
    ap.add_argument("--feeds", type=int, default=1000, help="number of feeds (default 1000)")
    ap.add_argument("--hosts", type=int, default=16,
                    help="spread the feeds over this many loopback addresses 127.0.0.x (default 16)")
    ap.add_argument("--workers", type=int, default=None,
                    help="[poll] workers for the pipeline (default: config.toml's, else 1)")
    ap.add_argument("--no-baseline", action="store_true", help="skip the plain feedparser loop")
    ap.add_argument("--no-breakdown", action="store_true",
                    help="skip the extra cold cycle without matcher and stories")
    args = ap.parse_args(argv)
    n = args.feeds

    ctx = multiprocessing.get_context("spawn")
    parent, child = ctx.Pipe()
    stop = ctx.Event()
    server = ctx.Process(target=_serve, args=(n, args.hosts, child, stop), daemon=True)
    server.start()
    urls = parent.recv()

    from bot import language  # noqa: F401  (import cost outside the timings)
    from bot.store import Store

    try:
        with tempfile.TemporaryDirectory(prefix="bench-poll-") as tmp:
            db = Path(tmp) / "bench.db"
            cfg = _config(db, urls, args.workers)
            with Store(db) as store:
                store.sync_feeds(cfg.feeds)
                t0 = time.perf_counter()
                cold = asyncio.run(_cycle(store, cfg))
                cold_s = time.perf_counter() - t0
                stored = store.count("items")
                rss_cold = _rss_mb()
                t0 = time.perf_counter()
                warm = asyncio.run(_cycle(store, cfg))
                warm_s = time.perf_counter() - t0
            rss_after_cycles = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024
            # the pipeline's worker processes have exited (the pipeline was closed) and been waited for;
            # the feed server child is still running, so it is not in this figure
            worker_peak = resource.getrusage(resource.RUSAGE_CHILDREN).ru_maxrss / 1024
            cold_err = sum(1 for f in cold.feeds if f.error)
            warm_304 = sum(1 for f in warm.feeds if f.not_modified)
            print(f"feeds: {n} x {ITEMS} items on {args.hosts} loopback hosts, {os.cpu_count()} cores")
            print(f"cold cycle: {cold_s:.2f} s, {n / cold_s:.1f} feeds/s "
                  f"({stored} items stored, {cold.new_count} new, {cold_err} feed errors)")
            print(f"warm cycle (all 304): {warm_s:.2f} s, {n / warm_s:.1f} feeds/s "
                  f"({warm_304}/{n} not modified, {warm.new_count} new); "
                  f"{cold_s / warm_s:.1f}x faster than cold (target >= 20x)")
            print(f"RSS after the cold cycle: {rss_cold:.0f} MB; peak RSS over both cycles: "
                  f"{rss_after_cycles:.0f} MB (this process; target < 300 MB)")
            if cfg.poll.workers:
                print(f"pipeline worker processes: {cfg.poll.workers}, the largest peaked at {worker_peak:.0f} MB; "
                      f"this process + workers at most {rss_after_cycles + cfg.poll.workers * worker_peak:.0f} MB")
            workers = os.cpu_count() or 1
            fp_s, fp_entries = _fetch_parse_only(urls, cfg.poll, workers)
            print(f"fetch + parse stages alone (no store; {workers} parse processes): {fp_s:.2f} s, "
                  f"{n / fp_s:.1f} feeds/s ({fp_entries} entries)")
            if not args.no_baseline:
                base_s, base_entries = _plain_loop(urls)
                print(f"plain feedparser.parse(url) loop: {base_s:.2f} s, {n / base_s:.1f} feeds/s "
                      f"({base_entries} entries, nothing stored)")
                print(f"cold cycle vs plain loop: {(n / cold_s) / (n / base_s):.2f}x throughput "
                      "(target >= 5x); "
                      f"fetch + parse alone vs plain loop: {(n / fp_s) / (n / base_s):.2f}x")
            peak = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024
            print(f"peak RSS of the whole run: {peak:.0f} MB (this process, baseline loop included)")
            if not args.no_breakdown:
                bare_db = Path(tmp) / "bare.db"
                bare_cfg = _config(bare_db, urls, args.workers)
                with Store(bare_db) as bare_store:
                    bare_store.sync_feeds(bare_cfg.feeds)
                    t0 = time.perf_counter()
                    asyncio.run(_cycle(bare_store, bare_cfg, bare=True))
                    bare_s = time.perf_counter() - t0
                print(f"breakdown: cold cycle without matcher and stories (fresh db): {bare_s:.2f} s, "
                      f"{n / bare_s:.1f} feeds/s; so matching + stories took {cold_s - bare_s:.2f} s "
                      f"of the {cold_s:.2f} s cold cycle")
    finally:
        stop.set()
        server.join(timeout=5)
        if server.is_alive():
            server.terminate()
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
