"""One poll cycle: fetch -> parse -> dedupe -> detect -> match -> store -> story.

The pipeline is the one place that knows every stage. Stages are passed in (or
built from the config) so tests and benchmarks can swap any of them.

Where the work runs: fetching is asynchronous on the event loop; the store is
touched only from the event-loop thread, between two awaits, so one feed's
writes never interleave with another's. The CPU-bound, store-free work runs
in ``[poll] workers`` child processes: parsing a body, and for the entries not
seen before, language detection, topic and watch-word matching and the story
fingerprint. That keeps the event loop (and the Telegram bot on it) responsive
during a large cycle, and puts a second core to work. Starting the processes
costs about a second, so a cycle of fewer than :data:`POOL_MIN_FEEDS` feeds is
parsed and analysed in this process until the pool exists; ``workers = 0``
never starts it. A worker that dies costs its jobs one more try in a rebuilt
pool; a job that kills that one too fails its feed (it never runs here).

Stories last: each feed's new items are stored with their matches as the feed
arrives, and filed into stories oldest first across the cycle's feeds, in
batches (:meth:`Pipeline._file_stories`), since filing is order-dependent and
feeds answer in any order.
"""

from __future__ import annotations

import asyncio
import hashlib
import logging
import multiprocessing
import pickle
import random
import sqlite3
from concurrent.futures import Executor, ProcessPoolExecutor, ThreadPoolExecutor
from concurrent.futures.process import BrokenProcessPool
from dataclasses import dataclass, field
from datetime import datetime, timedelta
from typing import Any, Callable

from . import fetch as fetch_mod
from .config import Config
from .models import Feed, FetchResult, Item, Match, ParseResult, iso, utcnow
from .store import Store, sha1, url_hash
from .work import Analysis, Identities, _worker_start, analyse, analyse_job, parse_job

log = logging.getLogger(__name__)


def _failure(exc: Exception) -> str:
    """A feed's error for an exception of our own stages: the store's, or a bug's."""
    stage = "store" if isinstance(exc, sqlite3.Error) else "internal"
    return f"{stage}: {type(exc).__name__}: {exc}"


@dataclass
class FeedReport:
    feed_id: int
    name: str
    url: str
    new: int = 0
    seen: int = 0  # entries in the body (0 when not modified or failed)
    status: int | None = None
    not_modified: bool = False
    error: str | None = None
    retired: bool = False
    next_poll_at: datetime | None = None


@dataclass
class NewItem:
    item: Item
    feed_name: str
    matches: list[Match]
    story_id: int | None = None
    story_is_new: bool = False
    title_target: str | None = None  # the title in the configured reader language


@dataclass(repr=False)
class CycleReport:
    started: datetime
    finished: datetime | None = None
    feeds: list[FeedReport] = field(default_factory=list)
    # every new item; or, when the cycle handed its items out as it went (run_cycle(on_item=...)),
    # the matched ones only
    new_items: list[NewItem] = field(default_factory=list)
    new_count: int = 0  # new items stored
    matched_count: int = 0  # of which matched a topic or a watch word

    def __repr__(self) -> str:
        # short on purpose: asyncio.run() formats the finished task (result included) when it
        # restores the SIGINT handler, and a full repr of 50,000 items costs seconds and megabytes
        return (f"CycleReport(started={self.started.isoformat()}, feeds={len(self.feeds)}, "
                f"new={self.new_count}, matched={self.matched_count}, errors={self.errors})")

    @property
    def errors(self) -> int:
        return sum(1 for f in self.feeds if f.error)

    @property
    def matched(self) -> list[NewItem]:
        return [n for n in self.new_items if n.matches]


ProgressFn = Callable[[int, int, FeedReport], None]

POOL_MIN_FEEDS = 16  # a cycle this large starts the worker processes (when [poll] workers > 0)
# New items are filed into stories oldest first across the cycle's feeds, not feed by feed as
# they arrive: they wait (stored, in no story yet) until this many have, or the cycle ends.
FILE_BATCH = 2000
FILE_HOLD = 2 * FILE_BATCH  # with this many waiting, feeds wait for the filing (which bounds the memory held)
FILE_CHUNK = 100  # items filed in one transaction; the event loop runs between chunks
BACKLOG_MAX = 5000  # items left in no story by an earlier cycle, filed at most per cycle
# An item whose filing fails is tried again by the next cycle; when that fails too, it waits
# FILE_RETRY_FIRST, then twice as long after each further failure, up to FILE_RETRY_MAX (each
# failure rolls back a transaction and reloads the story index: not something to repeat every cycle).
FILE_RETRY_FIRST = timedelta(minutes=5)
FILE_RETRY_MAX = timedelta(hours=6)
FILE_FAILURES_KEPT = 10_000


class Pipeline:
    """Runs poll cycles over the store with the given stages."""

    def __init__(self, store: Store, cfg: Config, *, matcher=None, translator=None, stories=None,
                 fetcher: fetch_mod.Fetcher | None = None, executor: Executor | None = None,
                 rng: random.Random | None = None, clock: Callable[[], datetime] = utcnow,
                 workers: int | None = None):
        self.store = store
        self.cfg = cfg
        self.matcher = matcher
        self.translator = translator
        self.stories = stories
        self.fetcher = fetcher
        self.executor = executor  # parses in this process's threads when given (no worker pool)
        self.rng = rng or random.Random()
        self.clock = clock
        self.workers = cfg.poll.workers if workers is None else workers
        self._pool: ProcessPoolExecutor | None = None
        self._pool_wanted = False
        self._spec: tuple[Any, str, bytes] | None = None  # (watch words it was made from, digest, pickle)
        self._fp_ok = stories is not None  # workers compute the story fingerprints (assign(..., fp=))
        self._unfiled: list[tuple[NewItem, set, Any]] = []  # (new item, concepts, fingerprint) to file
        self._filing: asyncio.Lock | None = None  # one filing at a time, so batches go in order
        self._started = utcnow()  # of the cycle
        self._on_item: Callable[[NewItem], None] | None = None
        self._file_failures: dict[int, tuple[int, datetime]] = {}  # item id -> (failed filings, not before)
        from .match import Matcher
        self._matcher_portable = type(matcher) is Matcher  # a real Matcher can be rebuilt in a worker

    def close(self) -> None:
        """Stop the worker processes (a later cycle starts them again when needed)."""
        pool, self._pool = self._pool, None
        if pool is not None:
            pool.shutdown(wait=True, cancel_futures=True)

    def worker_pids(self) -> list[int]:
        """Process ids of the running worker processes (for health and memory figures)."""
        pool = self._pool
        return sorted(getattr(pool, "_processes", None) or ()) if pool is not None else []

    def __enter__(self) -> Pipeline:
        return self

    def __exit__(self, *exc) -> None:
        self.close()

    @classmethod
    def from_config(cls, store: Store, cfg: Config, **overrides) -> Pipeline:
        """The production stages, built from the config and the store."""
        from .match import Matcher
        from .stories import StoryIndex
        from .translate import Translator

        stages = {
            "matcher": Matcher(cfg.topics, store.all_watchwords()),
            "stories": StoryIndex(store, cfg.stories.window_hours),
            "translator": Translator(cfg.translation, store) if cfg.translation.provider != "none" else None,
        }
        stages.update(overrides)
        return cls(store, cfg, **stages)

    async def run_cycle(self, *, force: bool = False, now: datetime | None = None,
                        progress: ProgressFn | None = None,
                        on_item: Callable[[NewItem], None] | None = None) -> CycleReport:
        """Poll the due feeds (every active feed when ``force``) once.

        ``on_item``: called once for each new item when it is complete (in its story, its title
        in the reader language where there is one): an unmatched item as soon as it is filed,
        the matched ones at the end, once their titles are translated. The report then keeps
        only the matched items, so a cycle of 50,000 new items does not hold them all."""
        now = now or self.clock()
        report = CycleReport(started=now)
        feeds = self.store.feeds() if force else self.store.due_feeds(now)
        if not feeds:  # the service's tick when nothing is due: no cycle row, no log line
            report.finished = now
            return report
        cycle_id = self.store.start_cycle(now)
        self._on_item = on_item
        self._unfiled = []
        self._filing = asyncio.Lock()
        self._started = now
        if self.stories is not None:
            self._file_backlog(now)
        own_fetcher = self.fetcher is None
        fetcher = self.fetcher or fetch_mod.Fetcher(self.cfg.poll)
        threads = None
        # the worker processes start with the first body to parse in a large cycle (an all-304 cycle needs none)
        self._pool_wanted = self.executor is None and self.workers > 0 and len(feeds) >= POOL_MIN_FEEDS
        if self.executor is None and self._pool is None and not self._pool_wanted:
            threads = ThreadPoolExecutor(max_workers=1, thread_name_prefix="parse")
        # at most this many feeds between fetched and stored: bounds the memory held at once
        slots = asyncio.Semaphore(max(4, 2 * max(1, self.workers)))
        tasks: list[asyncio.Task] = []
        try:
            if own_fetcher:
                await fetcher.__aenter__()
            tasks = [asyncio.create_task(self._poll_feed(fetcher, feed, slots, threads, report)) for feed in feeds]
            done = 0
            for next_done in asyncio.as_completed(tasks):
                feed_report = await next_done
                report.feeds.append(feed_report)
                done += 1
                if progress:
                    progress(done, len(feeds), feed_report)
        finally:
            for task in tasks:  # after a failure, nothing of this cycle runs on unobserved
                task.cancel()
            if own_fetcher:
                await fetcher.__aexit__(None, None, None)
            if threads is not None:
                threads.shutdown(wait=False, cancel_futures=True)
        await self._file_stories(self.clock(), everything=True)
        await self._translate_titles(report)
        if on_item is not None:
            for new in report.new_items:  # the matched ones, now translated
                self._hand_out(new)
        self._on_item = None
        report.finished = self.clock()
        self.store.finish_cycle(
            cycle_id, report.finished, feeds=len(feeds),
            fetched=sum(1 for f in report.feeds if not f.error and not f.not_modified),
            not_modified=sum(1 for f in report.feeds if f.not_modified),
            errors=report.errors, new_items=report.new_count, matched=report.matched_count,
        )
        log.info("cycle feeds=%d new=%d matched=%d errors=%d not_modified=%d seconds=%.2f",
                 len(feeds), report.new_count, report.matched_count,
                 report.errors, sum(1 for f in report.feeds if f.not_modified),
                 (report.finished - report.started).total_seconds())
        return report

    def _hand_out(self, new: NewItem) -> None:
        """Give a finished new item to the cycle's ``on_item`` (a failing consumer does not stop
        the cycle: the item is stored and filed all the same)."""
        if new.title_target is None and new.item.lang == self.cfg.translation.target:
            new.title_target = new.item.title
        try:
            self._on_item(new)
        except Exception:
            log.exception("on_item failed item=%s", new.item.id)

    async def _poll_feed(self, fetcher, feed: Feed, slots: asyncio.Semaphore, threads: Executor | None,
                         report: CycleReport) -> FeedReport:
        result = await fetcher.fetch(feed)
        async with slots:
            fr = FeedReport(feed_id=feed.id, name=feed.name, url=feed.url, status=result.status,
                            not_modified=result.not_modified, error=result.error)
            try:
                await self._process(feed, result, threads, report, fr)
            except Exception as exc:  # one feed's failure (the store refusing its state, say) ends only that feed
                log.exception("feed processing failed feed=%s", feed.id)
                fr.error = _failure(exc)
            if len(self._unfiled) >= FILE_HOLD:
                # back pressure: this feed keeps its slot (fetched bodies wait) until filing catches up
                await self._file_stories(self.clock())
        if not (self._filing and self._filing.locked()):  # (outside the slot: the worker goes on meanwhile)
            await self._file_stories(self.clock())
        return fr

    # -- where the CPU-bound work runs ------------------------------------------------

    def _start_pool(self) -> None:
        try:
            self._pool = ProcessPoolExecutor(max_workers=self.workers, initializer=_worker_start,
                                             mp_context=multiprocessing.get_context("spawn"))
        except (OSError, ValueError) as exc:  # no processes here: do the work in this one
            log.error("pipeline workers unavailable, working in the main process error=%s", exc)
            self._pool_wanted = False
            self.workers = 0
            return
        log.info("pipeline workers started processes=%d", self.workers)

    async def _offload(self, fn, *args, threads: Executor | None = None):
        """Run ``fn(*args)`` in the worker pool (or a thread, or here).

        A dead worker (the OOM killer, a crash in native code) costs the jobs it had one more
        try in a new pool. A job that kills that one too raises BrokenProcessPool, and its feed
        records the error: it never runs in this process, which it could take down with it."""
        loop = asyncio.get_running_loop()
        if self._pool is None and self._pool_wanted:
            self._start_pool()
        pool = self._pool
        if pool is not None:
            try:
                return await loop.run_in_executor(pool, fn, *args)
            except BrokenProcessPool:
                log.error("pipeline worker died; rebuilding the pool and trying the job once more there")
                if self._pool is pool:
                    self._pool = None
                    pool.shutdown(wait=False, cancel_futures=True)
                    self._start_pool()
                if self._pool is None:  # no processes to be had: here, then
                    return fn(*args)
                return await loop.run_in_executor(self._pool, fn, *args)
        executor = self.executor or threads
        if executor is not None:
            return await loop.run_in_executor(executor, fn, *args)
        return fn(*args)

    def _matcher_spec(self) -> tuple[str, bytes]:
        """The matcher's topics and watch words, pickled once per change, for the workers."""
        watchwords = self.matcher.watchwords
        if self._spec is None or self._spec[0] is not watchwords:  # set_watchwords makes a new tuple
            spec = pickle.dumps((self.matcher.topics, watchwords), protocol=pickle.HIGHEST_PROTOCOL)
            self._spec = (watchwords, hashlib.blake2b(spec, digest_size=16).hexdigest(), spec)
        return self._spec[1], self._spec[2]

    async def _analyse(self, rows: list[tuple[str, str, str | None]]) -> list[Analysis]:
        concepts = self.stories is not None
        if self._pool is not None and (self.matcher is None or self._matcher_portable):
            digest, spec = self._matcher_spec() if self.matcher is not None else (None, None)
            return await self._offload(analyse_job, digest, spec, rows, concepts, self._fp_ok)
        return analyse(self.matcher, rows, concepts=concepts, fingerprints=False)

    # -- one feed -----------------------------------------------------------------------

    async def _process(self, feed: Feed, result: FetchResult, threads: Executor | None,
                       report: CycleReport, fr: FeedReport) -> None:
        """Parse, analyse and store one feed's fetch result, then save its polling state; ``fr``
        (and ``report``, once items are stored) says how it went."""
        now = self.clock()
        new_items: list[NewItem] = []
        listed = None  # the key hashes of the entries of a body parsed now (retention keeps their items)
        if result.body is not None and result.error is None:
            try:
                parsed, ids = await self._offload(parse_job, result.body, result.headers, result.final_url or feed.url,
                                                  now, self.cfg.poll.max_items_per_feed, threads=threads)
            except Exception as exc:  # a parser bug must not stop the cycle
                log.exception("parse crashed feed=%s", feed.id)
                parsed, ids = ParseResult(entries=[], error=f"parse: {type(exc).__name__}: {exc}"), []
            result.body = None  # the body is no longer needed: do not hold it
            if parsed.error:
                fr.error = parsed.error
                result.error = parsed.error
            else:
                fr.seen = len(parsed.entries)
                listed = [sha1(key) for key, _url, _chash in ids]  # for retention (on the feed) and the lookup below
                if parsed.dropped:
                    log.warning("feed over the item cap feed=%s entries=%d kept=%d (the newest)", feed.id,
                                len(parsed.entries) + parsed.dropped, len(parsed.entries))
                fresh = self._fresh_entries(feed, parsed, ids, listed)
                if fresh:
                    try:
                        analysed = await self._analyse([(e.title, e.summary, feed.lang) for e, *_ in fresh])
                    except Exception as exc:  # keep the cycle going; the entries stay unseen for next time
                        log.exception("analysis crashed feed=%s", feed.id)
                        fr.error = result.error = f"analysis: {type(exc).__name__}: {exc}"
                    else:
                        try:
                            new_items = self._store_entries(feed, fresh, analysed, now)
                        except Exception as exc:  # rolled back whole: the entries stay unseen for next time
                            log.exception("storing failed feed=%s", feed.id)
                            fr.error = result.error = _failure(exc)
                        # committed: from here on the cycle reports them (and the service alerts them),
                        # whatever happens to the rest of this feed
                        fr.new = len(new_items)
                        report.new_count += len(new_items)
                        report.matched_count += sum(1 for n in new_items if n.matches)
                        if self._on_item is None:
                            report.new_items.extend(new_items)
                        else:
                            report.new_items.extend(n for n in new_items if n.matches)
                            if self.stories is None:  # nothing more to wait for
                                for n in new_items:
                                    if not n.matches:
                                        self._hand_out(n)
        if result.permanent_url and self.store.url_taken(result.permanent_url, feed.id):
            result.permanent_url = None  # another feed already has that address
        state = fetch_mod.schedule(feed, result, len(new_items), now, self.cfg.poll, self.rng)
        retired_reason = None
        if state.retired_at and not feed.retired_at:
            retired_reason = "gone (HTTP 410)"
            fr.retired = True
            log.warning("feed retired feed=%s url=%s reason=%s", feed.id, feed.url, retired_reason)
        self.store.save_feed_state(state, ok_at=now if result.ok else None,
                                   new_at=now if new_items else None, retired_reason=retired_reason,
                                   listed=listed)
        fr.next_poll_at = state.next_poll_at
        if fr.error:
            log.warning("feed failed feed=%s url=%s failures=%d error=%s", feed.id, feed.url,
                        state.failures, fr.error)
        else:
            log.debug("feed polled feed=%s status=%s new=%d", feed.id, result.status, fr.new)

    def _fresh_entries(self, feed: Feed, parsed: ParseResult, ids: Identities,
                       key_hashes: list[str]) -> list[tuple]:
        """The entries not stored before (nor twice in this body), with their identities;
        ``key_hashes``: sha1 of each entry's key, in the same order."""
        candidates = [(entry, key, url, chash, k, url_hash(url))
                      for entry, (key, url, chash), k in zip(parsed.entries, ids, key_hashes)]
        if not candidates:
            return []
        keys, urls, contents = self.store.known_items(
            feed.id, key_hashes, [c[5] for c in candidates if c[5]], [c[3] for c in candidates])
        fresh = []
        for entry, key, url, chash, k, u in candidates:
            if k in keys or (u and u in urls) or chash in contents:
                continue  # seen before: costs nothing further
            keys.add(k)
            contents.add(chash)
            if u:
                urls.add(u)
            fresh.append((entry, key, url, chash))
        return fresh

    def _store_entries(self, feed: Feed, fresh: list[tuple], analysed: list[Analysis],
                       now: datetime) -> list[NewItem]:
        """Store the fresh entries (an identity stored meanwhile wins) and their matches; return them.
        They join the items waiting to be filed into stories (:meth:`_file_stories`)."""
        out: list[NewItem] = []
        unfiled = []
        with self.store.conn:
            items = [Item(feed_id=feed.id, key=key, url=url, title=entry.title, summary=entry.summary, lang=lang,
                          published=entry.published, fetched=now, content_hash=chash, guid=entry.guid)
                     for (entry, key, url, chash), (lang, *_rest) in zip(fresh, analysed)]
            by_item = {id(item): a for item, a in zip(items, analysed)}
            # oldest first (feeds list the newest first): ids follow time within a feed
            from .stories import item_time
            items.sort(key=item_time)
            for item in self.store.insert_items(items):  # an identity stored meanwhile is left out
                _lang, matches, concepts, fp = by_item[id(item)]
                if matches:
                    self.store.save_matches(item.id, matches)
                new = NewItem(item=item, feed_name=feed.name, matches=matches)
                unfiled.append((new, concepts, fp))
                out.append(new)
        if self.stories is not None:  # (committed: a rollback above leaves nothing to file)
            self._unfiled += unfiled
        return out

    # -- stories ----------------------------------------------------------------------

    async def _file_stories(self, now: datetime, *, everything: bool = False) -> None:
        """File the waiting items into stories, oldest first (by :func:`bot.stories.item_time`), once
        :data:`FILE_BATCH` wait, or all of them when ``everything``.

        Filing is order-dependent and tuned on items in the order the events happened; feeds answer
        in any order, and a cycle may bring items of any age. Sorting the cycle's items (in batches,
        which bound the fingerprints held) files them as if they had come one by one, in time."""
        if self.stories is None or self._filing is None:
            return
        async with self._filing:
            while self._unfiled and (everything or len(self._unfiled) >= FILE_BATCH):
                batch, self._unfiled = self._unfiled, []
                order = self._filing_order()
                batch.sort(key=lambda e: order(e[0].item))
                for start in range(0, len(batch), FILE_CHUNK):
                    self._file_chunk(batch[start:start + FILE_CHUNK], now, hand_out=True)
                    await asyncio.sleep(0)  # (the bot and the fetches go on between chunks)

    def _filing_order(self) -> Callable[[Item], tuple]:
        """The sort key of filing: oldest first; items without a date of their own (their time is
        when their feed answered) and items of the last moments count as of the cycle's start, in
        feed order: the same order whichever feed answered first."""
        from .stories import item_time

        started = self._started
        return lambda item: (min(item_time(item), started), item.feed_id, item.id)

    def _file_chunk(self, chunk: list[tuple[NewItem, set, Any]], now: datetime, *,
                    hand_out: bool = False) -> None:
        """File items in one transaction; when that fails, each in its own (one bad item does not hold
        back the rest). An item that fails stays in no story: the next cycle's backlog files it.
        ``hand_out``: the items are this cycle's; the unmatched ones go to ``on_item`` once filed."""
        conn = self.store.conn
        try:
            with conn:
                if not conn.in_transaction:
                    conn.execute("BEGIN")
                for new, concepts, fp in chunk:
                    self._file_one(new, concepts, fp, now)
        except Exception:
            log.exception("filing stories failed; filing the %d items one by one", len(chunk))
            self._unfile(chunk)
            for entry in chunk:
                try:
                    with conn:
                        self._file_one(*entry, now)
                except Exception:
                    self._filing_failed(entry[0].item.id, now)
                    self._unfile([entry])
        if hand_out and self._on_item is not None:
            for new, *_rest in chunk:
                if not new.matches:
                    self._hand_out(new)

    def _filing_failed(self, item_id: int, now: datetime) -> None:
        """Log a failed filing and say when the backlog may try the item again."""
        failures = self._file_failures.get(item_id, (0, now))[0] + 1
        wait = min(FILE_RETRY_FIRST * 2 ** (failures - 2), FILE_RETRY_MAX) if failures > 1 else timedelta(0)
        self._file_failures.pop(item_id, None)  # (re-inserted: the dict stays in order of last failure)
        self._file_failures[item_id] = (failures, now + wait)
        if len(self._file_failures) > FILE_FAILURES_KEPT:  # items gone meanwhile (retention) are never filed
            del self._file_failures[next(iter(self._file_failures))]
        if failures == 1:
            log.exception("filing an item failed item=%s (left for the next cycle)", item_id)
        else:
            log.exception("filing an item failed again item=%s failures=%d (tried again from %s)",
                          item_id, failures, iso(now + wait))

    def _unfile(self, entries) -> None:
        """After a rollback: the items are in no story, and the index forgets what it held."""
        self.stories.forget()
        for new, *_rest in entries:
            new.story_id = new.item.story_id = None
            new.story_is_new = False

    def _file_one(self, new: NewItem, concepts, fp, now: datetime) -> None:
        item = new.item
        translation = None
        if self.translator is not None and item.lang != "en":
            translation = self.translator.cached(item.title, item.lang, "en")
        if fp is not None and translation is None:
            assignment = self.stories.assign(item, concepts, now, fp=fp)
        else:  # computed here: a translation changes the fingerprint (or no worker computed it)
            assignment = self.stories.assign(item, concepts, now, translation=translation)
        new.story_id = item.story_id = assignment.story_id
        new.story_is_new = assignment.is_new
        if self._file_failures:
            self._file_failures.pop(item.id, None)

    def _file_backlog(self, now: datetime) -> None:
        """File the items an earlier cycle stored and left in no story (it died first, or its
        filing failed), oldest first; their fingerprints are computed here."""
        held = {i for i, (_n, not_before) in self._file_failures.items() if not_before > now}
        items = [i for i in self.store.unfiled_items(BACKLOG_MAX + len(held)) if i.id not in held][:BACKLOG_MAX]
        if held:
            log.debug("items whose filing failed wait before another try items=%d", len(held))
        if not items:
            return
        log.info("filing items left in no story by an earlier cycle items=%d first=%d", len(items), items[0].id)
        items.sort(key=self._filing_order())
        concepts_of = getattr(self.matcher, "concepts", None)
        entries = [(NewItem(item=i, feed_name="", matches=[]),
                    concepts_of(i.title, i.summary, i.lang) if concepts_of else set(), None) for i in items]
        for start in range(0, len(entries), FILE_CHUNK):
            self._file_chunk(entries[start:start + FILE_CHUNK], now)

    async def _translate_titles(self, report: CycleReport) -> None:
        """Fill ``title_target`` for the cycle's new items.

        Items already in the reader language need nothing; matched items in
        another language are translated (once, cached); unmatched items are
        never sent to the translator.
        """
        target = self.cfg.translation.target
        wanted = []
        for n in report.new_items:
            if n.item.lang == target:
                n.title_target = n.item.title
            elif n.matches and self.translator is not None:
                wanted.append(n)
        if not wanted:
            return
        texts = [(n.item.title, n.item.lang) for n in wanted]
        translated = await self.translator.translate_many(texts, target)
        for n, text in zip(wanted, translated):
            n.title_target = text
