"""Soak benchmark: a simulated week of polls, alerts, digests and retention in minutes.

Run: ``.venv/bin/python -m bench.soak`` (500 feeds, 1,000 readers, 7 days) or
``.venv/bin/python -m bench.soak --quick`` (50 feeds, 100 readers, 3 days);
``--hours N`` stops after N hourly cycles. Time: on the shared 2-core
development machine a cycle of 500 feeds (about 1,000 new items) took a median
of about 10 s when the machine was otherwise idle and about 25 s at a load
average of 7, so the default week takes half an hour to over an hour there;
``--feeds 150`` runs the week in 15-20 minutes.

What runs, in this process: the real :class:`bot.service.Service` (pipeline,
alert and digest planning, retention) with an injected clock that moves one
simulated hour per cycle, against a real SQLite file. Each cycle polls, plans
digests, runs retention (the service runs it hourly) and delivers the outbox
with the service's own :class:`bot.delivery.Sender` over HTTP.

In child processes (so their memory is not counted in this one's RSS):

* a feed generator: ``tests/feedserver.py`` servers on several loopback
  addresses whose bodies are rewritten for every cycle. Each feed carries 1-3
  new items per cycle (plus the previous cycle's, which must be recognised as
  seen). A few percent of items report "matching" events (unrest, CSTO
  deployments, internet shutdowns; headline templates in en/ru/kk written for
  this benchmark) that several feeds report for hours, so stories fold; the
  rest are unrelated news, some of it also repeated across feeds.
* ``tests/botapi.py``, the local Bot API server, flood limits off. Each
  simulated day the messages it received are collected and its memory reset.

Readers are created through the store in several time zones (including one that
changes to DST during the default week), modes instant/digest/both, one to
three topics, some with a watch word; some join on the second day.

Expected figures are computed by this file, not read from the code under test:

* digests: for each digest/both reader, the local digest times (zoneinfo
  wall clock, DST-aware) after the reader was created and up to the last
  cycle; one digest each (a long digest may take several messages; digests
  are counted once per (reader, scheduled time), messages separately);
* alerts: from each cycle's pipeline report (new items, their topics and
  story ids) and the readers table kept here: a reader in instant/both mode
  gets one alert when a story first has a matching report for one of their
  topics or watch words, and one update at most, when the story has since
  gained a language or ``max(2, ceil(sources / 2))`` sources (the growth rule
  as documented in README/bot.alerts). Story sources and languages are
  counted here from the reports themselves.

Delivered figures come from the Bot API server: every message it accepted is
matched to the outbox row it came from (chat, message id, text hash); a
planned row with no message is lost, a message with no row or a second
message for one row is duplicated.
"""

from __future__ import annotations

import argparse
import asyncio
import functools
import hashlib
import math
import multiprocessing
import os
import random
import resource
import shutil
import sys
import tempfile
import time
import tomllib
import urllib.request
from collections import Counter, defaultdict
from dataclasses import dataclass, field
from datetime import datetime, timedelta, timezone
from email.utils import format_datetime
from pathlib import Path
from xml.sax.saxutils import escape
from zoneinfo import ZoneInfo

ROOT = Path(__file__).resolve().parent.parent
LANGS = ("en", "ru", "kk")
# a Thursday; America/New_York moves to summer time on Sunday 2026-03-08, so a
# 7-day run crosses a DST change
START = datetime(2026, 3, 5, 0, 0, tzinfo=timezone.utc)
HOSTS = 8
SEED = 20260305

# -- what the feeds say ----------------------------------------------------------
# Places as (en, ru, kk); all in Kazakhstan so unrest reports qualify.
PLACES = [
    ("Zhanaozen", "Жанаозен", "Жаңаөзен"),
    ("Aktau", "Актау", "Ақтау"),
    ("Almaty", "Алматы", "Алматы"),
    ("Shymkent", "Шымкент", "Шымкент"),
    ("Atyrau", "Атырау", "Атырау"),
    ("Karaganda", "Караганда", "Қарағанды"),
    ("Taraz", "Тараз", "Тараз"),
    ("Pavlodar", "Павлодар", "Павлодар"),
]

# Matching headlines (title, summary) per topic and language; {p} a place, {n} a number
# shared by every report of one event, so that reports of one event look alike.
MATCHING = {
    "kz-unrest": {
        "en": [("Protesters rally in {p} over fuel prices, about {n} people gathered",
                "Demonstrators gathered in the central square of {p}; police watched the protest."),
               ("Oil workers in {p} go on strike demanding higher wages",
                "About {n} workers downed tools in {p} and asked the akimat to raise salaries."),
               ("Police detain activists after an unsanctioned rally in {p}",
                "Around {n} protesters were detained in {p}, activists said.")],
        "ru": [("В городе {p} прошла акция протеста против цен на топливо, собрались около {n} человек",
                "Протестующие собрались на площади в городе {p}, полиция наблюдала за митингом."),
               ("Нефтяники в городе {p} объявили забастовку и требуют повысить зарплату",
                "Около {n} рабочих прекратили работу в городе {p}."),
               ("В городе {p} задержаны активисты после несанкционированного митинга",
                "Около {n} протестующих задержаны в городе {p}, сообщают активисты.")],
        "kk": [("{p} қаласында жанармай бағасына қарсы наразылық акциясы өтті, {n} адам жиналды",
                "Наразылар {p} қаласының орталық алаңына жиналды."),
               ("{p} қаласында мұнайшылар ереуілге шықты, жалақыны көтеруді талап етуде",
                "{n} жұмысшы {p} қаласында жұмысты тоқтатты."),
               ("{p} қаласында рұқсатсыз митингтен кейін белсенділер ұсталды",
                "{p} қаласында {n} наразылық білдіруші ұсталды.")],
    },
    "csto-deployment": {
        "en": [("CSTO sends peacekeeping troops to {p}, {n} servicemen expected",
                "The Collective Security Treaty Organization said its forces would guard sites in {p}."),
               ("CSTO peacekeepers arrive in {p}",
                "A contingent of {n} CSTO troops landed near {p} on military transport planes."),
               ("CSTO begins withdrawal of troops from {p}",
                "The {n}-strong CSTO contingent completed their mission in {p}.")],
        "ru": [("ОДКБ направит миротворцев в город {p}, ожидаются {n} военнослужащих",
                "Миротворческие силы ОДКБ будут охранять объекты в городе {p}."),
               ("Миротворцы ОДКБ прибыли в город {p}",
                "Контингент ОДКБ из {n} военнослужащих прибыл в город {p}."),
               ("Начался вывод войск ОДКБ из города {p}",
                "Контингент ОДКБ численностью {n} человек завершил миссию в городе {p}.")],
        "kk": [("ҰҚШҰ {p} қаласына бітімгерлерді жіберу туралы шешім қабылдады, {n} әскери қызметші",
                "ҰҚШҰ бітімгершілік күштері {p} қаласындағы нысандарды күзетеді."),
               ("ҰҚШҰ бітімгерлері {p} қаласына келді",
                "ҰҚШҰ контингенті {n} әскери қызметшіден тұрады."),
               ("ҰҚШҰ әскерін {p} қаласынан шығару басталды",
                "{n} адамнан тұратын ҰҚШҰ контингенті миссиясын аяқтады.")],
    },
    "internet-shutdown": {
        "en": [("Internet outage reported in {p} as NetBlocks confirms the disruption",
                "Mobile data and home internet in {p} have been down for {n} hours."),
               ("Residents of {p} left without internet for {n} hours",
                "Operators in {p} gave no reason for the internet blackout.")],
        "ru": [("В городе {p} отключили интернет, NetBlocks подтверждает сбой",
                "Мобильный и домашний интернет в городе {p} не работает уже {n} часов."),
               ("Жители города {p} остались без интернета на {n} часов",
                "Операторы в городе {p} не объяснили отключение интернета.")],
        "kk": [("{p} қаласында интернет өшірілді, NetBlocks ақауды растады",
                "{p} қаласында мобильді интернет {n} сағат бойы жоқ."),
               ("{p} тұрғындары {n} сағат бойы интернетсіз қалды",
                "{p} қаласындағы операторлар интернетті өшіру себебін айтпады.")],
    },
}

# Unrelated news: a subject, an action and a detail, drawn at random per item.
UNRELATED = {
    "en": (["The city council of {p}", "A regional hospital", "The national railway", "A grain exporter",
            "The ministry of culture", "A local football club", "The weather service", "A mobile operator",
            "A new museum", "The central bank", "A dairy farm", "The airport of {p}"],
           ["announced plans for", "opened", "reported record figures for", "postponed", "signed a contract for",
            "is hiring staff for", "published a report on", "cut prices of", "launched a pilot of"],
           ["a new bus route", "winter heating repairs", "a school canteen programme", "spring sowing",
            "a children's library", "road works on the ring road", "a solar power plant", "a book festival",
            "cheaper flights to the capital", "a water pipeline", "a farmers' market", "a tram depot"]),
    "ru": (["Маслихат города {p}", "Областная больница", "Национальная железная дорога", "Экспортер зерна",
            "Министерство культуры", "Местный футбольный клуб", "Метеослужба", "Мобильный оператор",
            "Новый музей", "Национальный банк", "Молочная ферма", "Аэропорт города {p}"],
           ["объявил о планах на", "открыл", "сообщил о рекордных показателях за", "отложил",
            "подписал договор на", "набирает сотрудников на", "опубликовал отчет о", "снизил цены на",
            "запустил пилотный проект"],
           ["новый автобусный маршрут", "ремонт теплосетей", "школьное питание", "весенний сев",
            "детскую библиотеку", "ремонт кольцевой дороги", "солнечную электростанцию", "книжный фестиваль",
            "дешевые рейсы в столицу", "водопровод", "фермерскую ярмарку", "трамвайное депо"]),
    "kk": (["{p} қалалық мәслихаты", "Облыстық аурухана", "Ұлттық теміржол", "Астық экспорттаушы",
            "Мәдениет министрлігі", "Жергілікті футбол клубы", "Ауа райы қызметі", "Ұялы байланыс операторы",
            "Жаңа мұражай", "Ұлттық банк", "Сүт фермасы", "{p} әуежайы"],
           ["жоспарын жариялады:", "ашты:", "рекордтық көрсеткіштер туралы хабарлады:", "кейінге қалдырды:",
            "келісімшартқа қол қойды:", "қызметкерлер іздеуде:", "есеп жариялады:", "бағаны төмендетті:",
            "пилоттық жобаны бастады:"],
           ["жаңа автобус бағыты", "жылу желілерін жөндеу", "мектептегі тамақтану", "көктемгі егіс",
            "балалар кітапханасы", "айналма жолды жөндеу", "күн электр станциясы", "кітап фестивалі",
            "астанаға арзан рейстер", "су құбыры", "фермерлер жәрмеңкесі", "трамвай депосы"]),
}


def _rng(*parts) -> random.Random:
    return random.Random(hashlib.sha1(repr((SEED,) + parts).encode()).digest())


@dataclass(frozen=True)
class Event:
    """Something several feeds report over several hours (a story to fold)."""

    id: int
    topic: str | None  # None: unrelated news repeated across feeds
    start: int  # first cycle
    hours: int
    place: int
    number: int
    share: float  # chance that a given feed reports it in a given cycle
    template: int = 0


def events_for(cycle: int, n_feeds: int) -> list[Event]:
    """Events that start at ``cycle`` (deterministic)."""
    rng = _rng("events", cycle)
    out = []
    # matching events: on average about one every three hours, over the three topics
    if rng.random() < 0.33:
        topic = rng.choice(list(MATCHING))
        long = rng.random() < 0.08  # a few last for days (longer than the retention period)
        hours = rng.randint(40, 60) if long else rng.randint(2, 8)
        out.append(Event(id=cycle * 10, topic=topic, start=cycle, hours=hours, place=rng.randrange(len(PLACES)),
                         number=rng.randint(20, 900), share=min(0.5, rng.uniform(4, 10) / n_feeds)))
    # unrelated stories many feeds repeat (weather, prices): one or two per cycle
    for k in range(rng.randint(1, 2)):
        out.append(Event(id=cycle * 10 + 1 + k, topic=None, start=cycle, hours=rng.randint(1, 4),
                         place=rng.randrange(len(PLACES)), number=rng.randint(10, 99),
                         share=min(0.5, rng.uniform(3, 8) / n_feeds), template=rng.randrange(1000)))
    return out


@functools.lru_cache(maxsize=4)
def active_events(cycle: int, n_feeds: int) -> tuple[Event, ...]:
    out: list[Event] = []
    for start in range(max(0, cycle - 60), cycle + 1):
        out.extend(e for e in events_for(start, n_feeds) if start + e.hours > cycle)
    return tuple(out)


def feed_lang(index: int) -> str:
    return LANGS[index % 3]


def _unrelated_text(lang: str, rng: random.Random, place: int, number: int) -> tuple[str, str]:
    subjects, actions, objects = UNRELATED[lang]
    p = PLACES[place][LANGS.index(lang)]
    subject = rng.choice(subjects).format(p=p)
    title = f"{subject} {rng.choice(actions)} {rng.choice(objects)} ({number})"
    summary = f"{subject}: {rng.choice(objects)}, {rng.choice(objects)}. {number * 7 % 100}%."
    return title, summary


def items_for(index: int, cycle: int, n_feeds: int) -> list[tuple[str, str, str, int]]:
    """Feed ``index``'s new items in ``cycle``: (guid, title, summary, minutes after the hour)."""
    lang = feed_lang(index)
    li = LANGS.index(lang)
    rng = _rng("feed", index, cycle)
    out = []
    for event in active_events(cycle, n_feeds):
        if rng.random() >= event.share:
            continue
        if event.topic is None:
            title, summary = _unrelated_text(lang, _rng("unrelated-event", event.id, lang), event.place,
                                             event.number)
        else:
            variants = MATCHING[event.topic][lang]
            phase = min(len(variants) - 1, (cycle - event.start) * len(variants) // max(1, event.hours))
            title, summary = variants[phase if rng.random() < 0.7 else rng.randrange(len(variants))]
            p = PLACES[event.place][li]
            title, summary = title.format(p=p, n=event.number), summary.format(p=p, n=event.number)
        out.append((f"soak-{index}-{cycle}-e{event.id}", title, summary, rng.randrange(60)))
    for k in range(rng.randint(1, 3)):
        title, summary = _unrelated_text(lang, rng, rng.randrange(len(PLACES)), rng.randint(100, 99999))
        out.append((f"soak-{index}-{cycle}-{k}", title, summary, rng.randrange(60)))
    return out


def feed_body(index: int, cycle: int, n_feeds: int) -> bytes:
    """RSS 2.0 for feed ``index`` as it reads after ``cycle``: this cycle's items and the last one's."""
    lang = feed_lang(index)
    parts = ['<?xml version="1.0" encoding="utf-8"?>', '<rss version="2.0"><channel>',
             f"<title>Soak wire {index} ({lang})</title><link>https://wire{index}.soak.example/</link>",
             f"<description>Soak feed {index}</description><language>{lang}</language>"]
    for c in (cycle, cycle - 1):
        if c < 0:
            continue
        for guid, title, summary, minute in items_for(index, c, n_feeds):
            when = START + timedelta(hours=c, minutes=minute)
            parts.append(
                f"<item><title>{escape(title)}</title><link>https://wire{index}.soak.example/{guid}</link>"
                f'<guid isPermaLink="false">{guid}</guid><pubDate>{format_datetime(when)}</pubDate>'
                f"<description>{escape(summary)}</description></item>")
    parts.append("</channel></rss>")
    return "\n".join(parts).encode("utf-8")


# -- child processes -----------------------------------------------------------------


def _rss_of(pid: int, field_name: str = "VmHWM:") -> float:
    with open(f"/proc/{pid}/status") as f:
        for line in f:
            if line.startswith(field_name):
                return int(line.split()[1]) / 1024
    return float("nan")


def _workers_rss(service) -> float:
    """Resident memory of the pipeline's worker processes together, in MB (0 when none run)."""
    total = 0.0
    for pid in service.pipeline.worker_pids():
        try:
            total += _rss_of(pid, "VmRSS:")
        except OSError:  # exited meanwhile
            pass
    return total


def _feed_child(n_feeds: int, hosts: int, conn) -> None:
    """Serve the feeds; on ("cycle", c) rewrite every body for cycle c and answer "ok"."""
    sys.path.insert(0, str(ROOT))
    from tests.feedserver import FeedServer, Route

    servers = [FeedServer(host=f"127.0.0.{1 + h}").start() for h in range(hosts)]
    urls = [servers[i % hosts].url(f"/wire/{i}.xml") for i in range(n_feeds)]
    conn.send(urls)
    try:
        while True:
            msg = conn.recv()
            if msg[0] == "cycle":
                cycle = msg[1]
                for i in range(n_feeds):
                    servers[i % hosts].route(f"/wire/{i}.xml", Route(
                        body=feed_body(i, cycle, n_feeds), etag=f'"c{cycle}-{i}"',
                        last_modified=format_datetime(START + timedelta(hours=cycle + 1), usegmt=True)))
                    servers[i % hosts].requests.clear()
                conn.send("ok")
            elif msg[0] == "stop":
                break
    finally:
        for srv in servers:
            srv.stop()


def _botapi_child(conn) -> None:
    """The local Bot API server, flood limits off; ("collect",) returns and forgets what it received."""
    sys.path.insert(0, str(ROOT))
    from tests.botapi import BotAPIServer

    server = BotAPIServer(global_rate=None, chat_rate=None, group_per_minute=None).start()
    conn.send((server.port, server.token))
    try:
        while True:
            msg = conn.recv()
            if msg[0] == "collect":
                got = [(m["chat_id"], m["message_id"], hashlib.sha1(m["text"].encode()).hexdigest())
                       for m in server.sent() if m["method"] == "sendMessage"]
                req = urllib.request.Request(f"http://127.0.0.1:{server.port}/_test/reset", data=b"{}",
                                             method="POST")
                with urllib.request.urlopen(req, timeout=30) as resp:
                    resp.read()
                conn.send(got)
            elif msg[0] == "stop":
                break
    finally:
        server.close()


# -- readers ---------------------------------------------------------------------------

TIMEZONES = ["Asia/Almaty", "Asia/Almaty", "Asia/Aqtobe", "Europe/Moscow", "UTC", "America/New_York",
             "Europe/Berlin", "Asia/Tokyo"]
DIGEST_TIMES = ["07:00", "08:00", "08:30", "12:15", "18:45", "21:00", "23:50", "00:10"]
WATCH_WORDS = [("Zhanaozen", "en"), ("Шымкент", "ru"), ("теміржол", "kk")]


@dataclass
class Reader:
    chat_id: int
    lang: str
    mode: str
    tz: str
    digest_time: str
    topics: list[str]
    created: datetime
    watch: list[tuple[str, str]] = field(default_factory=list)


def make_readers(n: int, days: int) -> list[Reader]:
    rng = _rng("readers", n)
    topics = list(MATCHING)
    out = []
    for k in range(n):
        late = days > 1 and rng.random() < 0.1  # joins on the second day, mid-morning UTC
        created = START + (timedelta(days=1, hours=7, minutes=13) if late else timedelta(0))
        watch = [rng.choice(WATCH_WORDS)] if rng.random() < 0.05 else []
        out.append(Reader(chat_id=100_000 + k, lang=rng.choice(LANGS),
                          mode=rng.choices(["instant", "digest", "both"], weights=[4, 3, 3])[0],
                          tz=rng.choice(TIMEZONES), digest_time=rng.choice(DIGEST_TIMES),
                          topics=rng.sample(topics, rng.choice([1, 1, 2, 3])), created=created, watch=watch))
    return out


def add_reader(store, r: Reader) -> dict[int, int]:
    """Create the reader through the store; return {watchword id: chat id}."""
    store.ensure_subscriber(r.chat_id, lang=r.lang, digest_time=r.digest_time, timezone=r.tz, mode=r.mode,
                            now=r.created)
    for t in r.topics:
        store.subscribe(r.chat_id, t)
    owners = {}
    for word, lang in r.watch:
        owners[store.add_watchword(r.chat_id, word, lang, now=r.created).id] = r.chat_id
    return owners


# -- expected figures (computed here, independently of bot.alerts / bot.clock) ---------------


def digest_instants(r: Reader, until: datetime) -> list[datetime]:
    """The UTC instants in (created, until] when the reader's local clock shows the digest time."""
    tz = ZoneInfo(r.tz)
    hh, mm = map(int, r.digest_time.split(":"))
    day = r.created.astimezone(tz).date() - timedelta(days=1)
    out = []
    while True:
        local = datetime(day.year, day.month, day.day, hh, mm, tzinfo=tz)
        # our digest times avoid the 02:00-03:00 gap, so every local time exists exactly once
        assert local.astimezone(timezone.utc).astimezone(tz).replace(tzinfo=None) == local.replace(tzinfo=None)
        at = local.astimezone(timezone.utc)
        if at > until:
            return out
        if at > r.created:
            out.append(at)
        day += timedelta(days=1)


def pair_key(chat: int, story: int) -> int:
    """(chat, story) as one int, and ``pair << 1 | update`` an alert. These records live in the
    measured process: for the 47,526 alerts of a 21-day run, keyed by tuples they took 28.4 MB
    (tracemalloc), keyed by ints 18.1 MB."""
    return chat << 40 | story


def alert_of(key: int) -> tuple[int, int, int]:
    """(chat, story, 0 first | 1 update) of an alert key, to print."""
    return key >> 41, (key >> 1) & ((1 << 40) - 1), key & 1


def grew(old_langs: set[str], old_sources: int, new_langs: set[str], new_sources: int) -> bool:
    """The documented growth rule: a new language, or max(2, ceil(old/2)) more sources."""
    return bool(new_langs - old_langs) or new_sources - old_sources >= max(2, math.ceil(old_sources / 2))


class Expectation:
    """Per (chat, story): the alerts the documented rule allows, from the pipeline's reports."""

    def __init__(self, alert_max_age: timedelta):
        self.max_age = alert_max_age
        self.readers: dict[int, Reader] = {}
        self.by_topic: dict[str, set[int]] = defaultdict(set)
        self.watch_owner: dict[int, int] = {}
        self.members: dict[int, list[tuple[datetime, str, str]]] = defaultdict(list)  # story -> (fetched, source, lang)
        self.state: dict[int, tuple[frozenset[str], int, int]] = {}  # pair_key -> langs, sources, updates
        self.alerts: set[int] = set()  # pair_key(chat, story) << 1 | (0 first, 1 update)
        self.matched_items = 0
        self.new_items = 0
        self.topic_items = 0
        self.matched_stories: set[int] = set()
        # (this bookkeeping shares the measured process's RSS: it is kept compact)
        self._langsets: dict[frozenset, frozenset] = {}

    def add_reader(self, r: Reader, owners: dict[int, int]) -> None:
        self.readers[r.chat_id] = r
        for t in r.topics:
            self.by_topic[t].add(r.chat_id)
        self.watch_owner.update(owners)

    def cycle(self, new_items, now: datetime) -> int:
        self.new_items += len(new_items)
        for n in new_items:
            if n.story_id is not None:
                self.members[n.story_id].append((n.item.fetched, n.feed_name, n.item.lang))
        keys: dict[int, set[str]] = defaultdict(set)
        for n in new_items:
            if not n.matches or n.story_id is None:
                continue
            self.matched_items += 1
            if any(not m.topic.startswith("watch:") for m in n.matches):
                self.topic_items += 1
            self.matched_stories.add(n.story_id)
            if (n.item.published or n.item.fetched) < now - self.max_age:
                continue
            keys[n.story_id].update(m.topic for m in n.matches)
        added = 0
        for story, ks in keys.items():
            chats: set[int] = set()
            for k in ks:
                if k.startswith("watch:"):
                    owner = self.watch_owner.get(int(k[6:]))
                    if owner is not None:
                        chats.add(owner)
                else:
                    chats |= self.by_topic.get(k, set())
            members = self.members[story]
            langs = frozenset({m[2] for m in members})
            langs = self._langsets.setdefault(langs, langs)  # one object per set of languages
            sources = len({m[1] for m in members})
            for chat in chats:
                if self.readers[chat].mode not in ("instant", "both"):
                    continue
                pair = pair_key(chat, story)
                prev = self.state.get(pair)
                if prev is None:
                    self.state[pair] = (langs, sources, 0)
                    self.alerts.add(pair << 1)
                    added += 1
                elif prev[2] == 0 and grew(prev[0], prev[1], langs, sources):
                    self.state[pair] = (langs, sources, 1)
                    self.alerts.add(pair << 1 | 1)
                    added += 1
        return added

    def purge(self, cutoff: datetime) -> None:
        """Retention deletes reports first seen before the cutoff: they stop counting as sources."""
        for story in list(self.members):
            kept = [m for m in self.members[story] if m[0] >= cutoff]
            if kept:
                self.members[story] = kept
            else:
                del self.members[story]


# -- the run -------------------------------------------------------------------------------


class SimClock:
    def __init__(self, now: datetime):
        self.now = now

    def __call__(self) -> datetime:
        return self.now


def make_config(db: Path, urls: list[str], base_url: str, token: str):
    from bot import config as config_mod

    raw = tomllib.loads((ROOT / "config.toml").read_text(encoding="utf-8"))
    raw["storage"] = {"path": str(db)}
    raw["telegram"] = {"base_url": base_url, "admins": []}
    raw["translation"] = {"provider": "none", "target": "en"}
    # 3240 s +-10% jitter stays under the 3600 s step: every feed is due at every cycle
    raw["poll"] = {"interval_seconds": 3240, "min_interval_seconds": 3240, "max_interval_seconds": 3240}
    raw["retention"] = {"days": 2}
    raw.pop("stories", None)  # [stories] window_hours: the default
    # simulated time runs ~1000x faster than real time: per-chat pacing would only add waiting
    raw["delivery"] = {"global_per_second": 100000.0, "chat_per_second": 1000.0, "max_in_flight": 32}
    raw["feeds"] = [{"url": u, "lang": feed_lang(i), "name": f"Soak wire {i}"} for i, u in enumerate(urls)]
    return config_mod.from_dict(raw, path=db.parent / "config.toml", env={"TELEGRAM_BOT_TOKEN": token})


def cache_entries() -> tuple[int, int]:
    """Entries held / allowed by the bounded caches (functools.lru_cache) of bot.language and bot.stories."""
    from bot import language, stories

    held = allowed = 0
    for module in (language, stories):
        for obj in vars(module).values():
            info = getattr(obj, "cache_info", None)
            if callable(info):
                ci = info()
                held += ci.currsize
                allowed += ci.maxsize or 0
    return held, allowed


def bookkeeping_mb(*containers) -> float:
    """Rough size of this benchmark's own records (they live in the measured process too)."""
    seen: set[int] = set()
    total = 0
    stack = list(containers)
    while stack:
        obj = stack.pop()
        if id(obj) in seen:
            continue
        seen.add(id(obj))
        total += sys.getsizeof(obj)
        if isinstance(obj, dict):
            stack.extend(obj.keys())
            stack.extend(obj.values())
        elif isinstance(obj, (list, tuple, set, frozenset)):
            stack.extend(obj)
    return total / 2 ** 20


class MemoryTracer:
    """``--trace-memory``: where the live Python heap grows once retention is in force.

    Allocations are traced with tracemalloc (a few frames each) from the start; from day 3
    on, each day's snapshot is compared with day 3's by source line. The figures cover
    Python allocations only (SQLite's page cache and malloc's free lists are not in
    them), and tracing itself slows the run and adds to its RSS.
    """

    FRAMES = 4
    SHOWN = 8

    def __init__(self):
        import tracemalloc

        self.tracemalloc = tracemalloc
        tracemalloc.start(self.FRAMES)
        self.base = None

    def _snapshot(self):
        tm = self.tracemalloc
        return tm.take_snapshot().filter_traces((
            tm.Filter(False, tm.__file__), tm.Filter(False, __file__)))

    def day(self, day: int) -> None:
        if day < 3:
            return
        snap = self._snapshot()
        if self.base is None:
            self.base = snap
            total = sum(s.size for s in snap.statistics("filename"))
            print(f"    traced heap on day 3: {total / 2**20:.1f} MB", flush=True)
            return
        stats = snap.compare_to(self.base, "traceback")
        total = sum(s.size_diff for s in stats)
        print(f"    traced heap growth since day 3: {total / 2**20:+.1f} MB; largest:", flush=True)
        for s in stats[:self.SHOWN]:
            frames = " < ".join(f"{Path(f.filename).name}:{f.lineno}" for f in s.traceback)
            print(f"      {s.size_diff / 2**20:+7.2f} MB {s.count_diff:+8d} blocks  {frames}", flush=True)


def db_bytes(db: Path) -> tuple[int, int]:
    main = db.stat().st_size
    wal = sum(p.stat().st_size for p in (db.with_name(db.name + "-wal"),) if p.exists())
    return main, wal


def pct(values: list[float], q: float) -> float:
    s = sorted(values)
    if not s:
        return float("nan")
    return s[min(len(s) - 1, max(0, math.ceil(q / 100 * len(s)) - 1))]


@dataclass
class Ledger:
    """Delivered messages, matched to the outbox rows they came from."""

    delivered_rows: int = 0
    lost: list[tuple] = field(default_factory=list)  # planned rows with no message (id, chat, kind, status)
    extra: int = 0  # messages with no row, or a second message for one row
    alerts: Counter = field(default_factory=Counter)  # pair_key(chat, story) << 1 | update -> messages
    alert_pairs: Counter = field(default_factory=Counter)  # pair_key(chat, story) -> messages
    digests: Counter = field(default_factory=Counter)  # (chat, scheduled) -> messages
    planned_alerts: int = 0
    planned_digest_msgs: int = 0
    last_row: int = 0

    def settle(self, store, received: list[tuple[int, int, str]]) -> None:
        inbox: dict[tuple[int, int], list[str]] = defaultdict(list)
        for chat, mid, digest in received:
            inbox[(chat, mid)].append(digest)
        rows = store.conn.execute(
            "SELECT id, chat_id, kind, dedup_key, status, message_id, text FROM outbox WHERE id > ? ORDER BY id",
            (self.last_row,)).fetchall()
        for row_id, chat, kind, key, status, mid, text in rows:
            self.last_row = row_id
            if kind == "alert":
                self.planned_alerts += 1
            else:
                self.planned_digest_msgs += 1
            texts = inbox.get((chat, mid)) if status == "sent" else None
            if not texts or hashlib.sha1(text.encode()).hexdigest() not in texts:
                self.lost.append((row_id, chat, kind, status))
                continue
            texts.remove(hashlib.sha1(text.encode()).hexdigest())
            self.delivered_rows += 1
            parts = key.split(":")
            if kind == "alert":
                pair = pair_key(chat, int(parts[2]))
                self.alerts[pair << 1 | int(parts[3])] += 1
                self.alert_pairs[pair] += 1
            else:
                self.digests[(chat, datetime.fromisoformat(":".join(parts[2:-1])))] += 1
        self.extra += sum(len(v) for v in inbox.values())


async def soak(args) -> int:
    import psutil

    from bot.delivery import make_bot
    from bot.service import Service
    from bot.store import Store

    proc = psutil.Process()
    hours = args.hours or args.days * 24
    tracer = MemoryTracer() if args.trace_memory else None
    ctx = multiprocessing.get_context("spawn")
    feed_conn, feed_child_end = ctx.Pipe()
    feeder = ctx.Process(target=_feed_child, args=(args.feeds, min(HOSTS, args.feeds), feed_child_end),
                         daemon=True)
    feeder.start()
    api_conn, api_child_end = ctx.Pipe()
    api = ctx.Process(target=_botapi_child, args=(api_child_end,), daemon=True)
    api.start()
    urls = feed_conn.recv()
    port, token = api_conn.recv()
    tmp = Path(tempfile.mkdtemp(prefix="bench-soak-"))
    db = tmp / "soak.db"
    clock = SimClock(START)
    cfg = make_config(db, urls, f"http://127.0.0.1:{port}/bot", token)
    store = Store(db)
    store.sync_feeds(cfg.feeds, now=START)
    readers = make_readers(args.readers, args.days)
    expect = Expectation(timedelta(hours=cfg.poll.alert_max_age_hours))
    waiting = sorted(readers, key=lambda r: r.created)

    def join_readers(now: datetime, service=None) -> None:
        joined = False
        while waiting and waiting[0].created <= now:
            r = waiting.pop(0)
            expect.add_reader(r, add_reader(store, r))
            joined = joined or bool(r.watch)
        if joined and service is not None:
            service.pipeline.matcher.set_watchwords(store.all_watchwords())

    join_readers(START)
    ledger = Ledger()
    poll_s, digest_s, send_s, cycle_s, rss, workers_rss, total_rss = [], [], [], [], [], [], []
    day_rows = []
    feed_s = 0.0
    purged = 0  # items deleted by retention since the last day's row
    planned_alerts = planned_digests = 0
    wall = time.perf_counter()
    print(f"soak: {args.feeds} feeds on {min(HOSTS, args.feeds)} loopback hosts, {args.readers} readers, "
          f"{args.days} simulated days ({hours} hourly cycles from {START:%Y-%m-%d %H:%M} UTC), "
          f"retention {cfg.retention.days} days, stories window {cfg.stories.window_hours:g} h, "
          f"{os.cpu_count()} cores; database {db}", flush=True)
    async with make_bot(cfg, lean=True) as bot:
        service = Service(cfg, store, bot=bot, clock=clock)
        service.pipeline.matcher.set_watchwords(store.all_watchwords())
        reports = []
        run_cycle = service.pipeline.run_cycle

        async def observed_cycle(**kw):  # the service's own cycle; the report is kept for the bookkeeping
            report = await run_cycle(**kw)
            reports.append(report)
            return report

        service.pipeline.run_cycle = observed_cycle
        for cycle in range(hours):
            clock.now = START + timedelta(hours=cycle + 1)
            t0 = time.perf_counter()
            feed_conn.send(("cycle", cycle))
            feed_conn.recv()
            feed_s += time.perf_counter() - t0
            join_readers(clock.now, service)
            t0 = time.perf_counter()
            planned_alerts += await service.poll_once()
            t1 = time.perf_counter()
            planned_digests += await service.digests_once()
            t2 = time.perf_counter()
            report = reports.pop()
            errors = [f for f in report.feeds if f.error]
            if len(report.feeds) != args.feeds or errors:
                print(f"  cycle {cycle}: {len(report.feeds)} feeds polled, {len(errors)} errors "
                      f"{errors[0].error if errors else ''}", flush=True)
            expect.cycle(report.new_items, clock.now)
            end_of_day = (cycle + 1) % 24 == 0
            # the service's retention job runs hourly (and trims the C heap): so here, every cycle
            purged += (await service.retention_once()).get("items", 0)
            expect.purge(clock.now - timedelta(days=cfg.retention.days))
            t3 = time.perf_counter()
            await service.sender.run_once()
            t4 = time.perf_counter()
            poll_s.append(t1 - t0)
            digest_s.append(t2 - t1)
            send_s.append(t4 - t3)
            cycle_s.append(t4 - t0)
            rss.append(proc.memory_info().rss / 2 ** 20)
            workers_rss.append(_workers_rss(service))
            total_rss.append(rss[-1] + workers_rss[-1])
            if end_of_day or cycle == hours - 1:
                api_conn.send(("collect",))
                ledger.settle(store, api_conn.recv())
                main_b, wal_b = db_bytes(db)
                day_rows.append({
                    "day": (cycle + 1) / 24, "main": main_b, "wal": wal_b, "rss": rss[-1],
                    "items": store.count("items"), "stories": store.count("stories"),
                    "outbox": store.count("outbox"), "alerts_rows": store.count("alerts"),
                    "purged": purged,
                    "elapsed": time.perf_counter() - wall, "caches": cache_entries()[0],
                    "ours": bookkeeping_mb(expect.state, expect.alerts, expect.members, ledger.alerts,
                                           ledger.alert_pairs, ledger.digests, rss, cycle_s),
                    "delivered": ledger.delivered_rows})
                d = day_rows[-1]
                print(f"  day {d['day']:g}: {d['elapsed']:.0f} s wall, db {d['main'] / 2**20:.1f} MB + wal "
                      f"{d['wal'] / 2**20:.1f} MB, items {d['items']}, RSS {d['rss']:.0f} MB, "
                      f"messages delivered so far {d['delivered']}", flush=True)
                purged = 0
                if tracer is not None and end_of_day:
                    tracer.day(len(day_rows))
    wall = time.perf_counter() - wall
    final_now = clock.now
    outbox_left = store.outbox_counts()
    store.close()
    api_rss = _rss_of(api.pid)
    feed_rss = _rss_of(feeder.pid)
    feed_conn.send(("stop",))
    api_conn.send(("stop",))
    feeder.join(10)
    api.join(10)

    # -- expected digests -----------------------------------------------------------------------
    expected_digests = {(r.chat_id, at) for r in readers if r.mode in ("digest", "both")
                        for at in digest_instants(r, final_now)}
    delivered_digests = set(ledger.digests)
    missing_digests = expected_digests - delivered_digests
    extra_digests = delivered_digests - expected_digests
    digest_msgs = sum(ledger.digests.values())
    # -- alerts -------------------------------------------------------------------------------
    delivered_alerts = set(ledger.alerts)
    missing_alerts = expect.alerts - delivered_alerts
    extra_alerts = delivered_alerts - expect.alerts
    repeated_alert_msgs = sum(v - 1 for v in ledger.alerts.values() if v > 1)
    over_two = sum(1 for v in ledger.alert_pairs.values() if v > 2)

    peak = max(rss)
    hwm = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024
    first_day = day_rows[0]
    steady = day_rows[min(2, len(day_rows) - 1)]
    last = day_rows[-1]
    print()
    print(f"simulated {args.days} days ({hours} cycles) in {wall:.0f} s wall "
          f"({hours * 3600 / wall:.0f}x real time); feed bodies rewritten in the feed process: "
          f"{feed_s:.0f} s of that")
    print(f"new items stored {expect.new_items} ({expect.new_items / hours:.0f} per cycle); matching a topic "
          f"{expect.topic_items} ({expect.topic_items / max(1, expect.new_items):.1%}); matching a topic or a "
          f"watch word {expect.matched_items}, in {len(expect.matched_stories)} stories")
    print()
    print("database per simulated day (after that day's retention run; retention keeps "
          f"{cfg.retention.days} days):")
    print(f"  {'day':>4} {'main MB':>8} {'wal MB':>7} {'items':>7} {'stories':>8} {'outbox':>7} "
          f"{'alert rec':>9} {'purged':>7} {'RSS MB':>7} {'lru entries':>11} {'bench MB':>8}")
    for d in day_rows:
        print(f"  {d['day']:>4g} {d['main'] / 2**20:>8.1f} {d['wal'] / 2**20:>7.1f} {d['items']:>7} "
              f"{d['stories']:>8} {d['outbox']:>7} {d['alerts_rows']:>9} {d['purged']:>7} {d['rss']:>7.0f} "
              f"{d['caches']:>11} {d['ours']:>8.1f}")
    print(f"  (lru entries: held by the bounded word/hash caches of bot.language and bot.stories, at most "
          f"{cache_entries()[1]}; bench MB: this file's own bookkeeping, part of the RSS)")
    base = first_day["main"] + first_day["wal"]
    end = last["main"] + last["wal"]
    st = steady["main"] + steady["wal"]
    print(f"database size: end {end / 2**20:.1f} MB vs day 1 {base / 2**20:.1f} MB = {end / base:.2f}x; "
          f"vs day {steady['day']:g} (retention in force) {st / 2**20:.1f} MB = {end / st:.2f}x "
          "(target: bounded, ~1x once retention is in force)")
    print(f"RSS (this process: service, SQLite, sender): peak {peak:.0f} MB (ru_maxrss {hwm:.0f} MB), "
          f"final {rss[-1]:.0f} MB, after day 1 {first_day['rss']:.0f} MB, end/day-1 "
          f"{rss[-1] / first_day['rss']:.2f}x (target: flat, under 300 MB); feed server process peak "
          f"{feed_rss:.0f} MB, Bot API server process peak {api_rss:.0f} MB (not counted)")
    print(f"RSS of the service as a whole (this process + its {cfg.poll.workers} pipeline worker processes, "
          f"which parse and analyse feeds): peak {max(total_rss):.0f} MB, final {total_rss[-1]:.0f} MB "
          f"(workers together: peak {max(workers_rss):.0f} MB, final {workers_rss[-1]:.0f} MB); "
          f"end/day-1 {total_rss[-1] / total_rss[min(23, len(total_rss) - 1)]:.2f}x (target: flat, under 300 MB)")
    if len(day_rows) >= 5:  # growth once retention and the stories window are both in force
        steady = [d["rss"] for d in day_rows[2:]]
        steps = [b - a for a, b in zip(steady, steady[1:])]
        print(f"RSS growth of this process from day 3 on (retention and the 72 h stories window in force): "
              f"{steady[-1] - steady[0]:+.0f} MB over {len(steps)} days, day by day "
              f"{', '.join(f'{x:+.0f}' for x in steps)} MB; of it this file's bookkeeping "
              f"{day_rows[-1]['ours'] - day_rows[2]['ours']:+.1f} MB")
    print()
    print("digests: expected = for each digest/both reader, the local digest times (zoneinfo, DST-aware) "
          "after the reader joined and up to the last cycle, computed in bench/soak.py")
    print(f"  expected {len(expected_digests)}, delivered {len(delivered_digests)} "
          f"({digest_msgs} messages; a long digest is split), missing {len(missing_digests)}, "
          f"unexpected {len(extra_digests)}, planned digest messages {ledger.planned_digest_msgs}")
    print("alerts: expected = from each cycle's pipeline report (new items, topics, story ids) and the "
          "readers kept here: one alert per (reader, story) when a story first matches the reader's topic or "
          "watch word, plus at most one update when it gained a language or max(2, ceil(sources/2)) sources")
    print(f"  expected {len(expect.alerts)} (first {sum(1 for a in expect.alerts if not a & 1)}, updates "
          f"{sum(1 for a in expect.alerts if a & 1)}), delivered {sum(ledger.alerts.values())}, "
          f"missing {len(missing_alerts)}, unexpected {len(extra_alerts)}, "
          f"(reader, story) pairs with more than 2 alerts {over_two}, planned {ledger.planned_alerts}")
    print(f"messages: planned {ledger.planned_alerts + ledger.planned_digest_msgs}, delivered "
          f"{ledger.delivered_rows}, lost {len(ledger.lost)}, duplicated/unplanned {ledger.extra}, "
          f"repeated alert messages {repeated_alert_msgs}; outbox at the end {outbox_left}")
    repeated = [alert_of(k) for k in sorted(k for k, v in ledger.alerts.items() if v > 1)]
    for label, sample in (("missing digest", sorted(missing_digests)[:3]), ("unexpected digest",
                          sorted(extra_digests)[:3]),
                          ("missing alert", [alert_of(k) for k in sorted(missing_alerts)[:3]]),
                          ("unexpected alert", [alert_of(k) for k in sorted(extra_alerts)[:3]]),
                          ("lost row", ledger.lost[:3]),
                          ("(chat, story, update) alerted more than once", repeated[:3])):
        for s in sample:
            print(f"  e.g. {label}: {s}")
    print()
    print("cycle times (s): " + "; ".join(
        f"{name} p50 {pct(v, 50):.2f} p90 {pct(v, 90):.2f} p99 {pct(v, 99):.2f} max {max(v):.2f}"
        for name, v in (("whole cycle", cycle_s), ("poll+alerts", poll_s), ("digests", digest_s),
                        ("delivery", send_s))))
    if not args.keep:
        shutil.rmtree(tmp, ignore_errors=True)
    ok = (not missing_digests and not extra_digests and not missing_alerts and not extra_alerts
          and not repeated_alert_msgs and not over_two and not ledger.lost and not ledger.extra and peak < 300
          and max(total_rss) < 300)
    print("result: " + ("all targets met" if ok else "targets NOT met (see above)"))
    return 0 if ok else 1


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(prog="python -m bench.soak", description=__doc__.split("\n")[0])
    ap.add_argument("--feeds", type=int, default=500)
    ap.add_argument("--readers", type=int, default=1000)
    ap.add_argument("--days", type=int, default=7)
    ap.add_argument("--quick", action="store_true", help="50 feeds, 100 readers, 3 days (retention deletes from the third day)")
    ap.add_argument("--keep", action="store_true", help="keep the database (its path is printed)")
    ap.add_argument("--hours", type=int, default=0, help="stop after this many hourly cycles (a short look)")
    ap.add_argument("--trace-memory", action="store_true",
                    help="diagnostic: trace Python allocations (slower, more memory) and print, after each "
                         "day's retention run, the source lines whose live memory grew most since day 3")
    args = ap.parse_args(argv)
    if args.quick:
        args.feeds, args.readers, args.days = 50, 100, 3
    if args.feeds < 1 or args.readers < 1 or args.days < 1:
        ap.error("--feeds, --readers and --days must be at least 1")
    import logging

    logging.basicConfig(level=logging.WARNING, format="%(levelname)s %(name)s %(message)s")
    return asyncio.run(soak(args))


if __name__ == "__main__":
    raise SystemExit(main())
