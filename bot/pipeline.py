"""One poll cycle: fetch -> parse -> dedupe -> detect -> match -> store -> story.

The pipeline is the one place that knows every stage. Stages are passed in (or
built from the config) so tests and benchmarks can swap any of them; the store
is touched only from the event-loop thread, and the blocking parser runs in an
executor.
"""

from __future__ import annotations

import asyncio
import logging
import random
from concurrent.futures import Executor, ThreadPoolExecutor
from dataclasses import dataclass, field
from datetime import datetime
from typing import Callable

from . import fetch as fetch_mod
from . import language, parse
from .config import Config
from .models import Feed, FetchResult, Item, Match, ParseResult, utcnow
from .store import Store, sha1

log = logging.getLogger(__name__)


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


@dataclass
class CycleReport:
    started: datetime
    finished: datetime | None = None
    feeds: list[FeedReport] = field(default_factory=list)
    new_items: list[NewItem] = field(default_factory=list)

    @property
    def errors(self) -> int:
        return sum(1 for f in self.feeds if f.error)

    @property
    def matched(self) -> list[NewItem]:
        return [n for n in self.new_items if n.matches]


ProgressFn = Callable[[int, int, FeedReport], None]


class Pipeline:
    """Runs poll cycles over the store with the given stages."""

    def __init__(self, store: Store, cfg: Config, *, matcher=None, translator=None, stories=None,
                 fetcher: fetch_mod.Fetcher | None = None, executor: Executor | None = None,
                 rng: random.Random | None = None, clock: Callable[[], datetime] = utcnow):
        self.store = store
        self.cfg = cfg
        self.matcher = matcher
        self.translator = translator
        self.stories = stories
        self.fetcher = fetcher
        self.executor = executor
        self.rng = rng or random.Random()
        self.clock = clock

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
                        progress: ProgressFn | None = None) -> CycleReport:
        """Poll the due feeds (every active feed when ``force``) once."""
        now = now or self.clock()
        report = CycleReport(started=now)
        feeds = self.store.feeds() if force else self.store.due_feeds(now)
        cycle_id = self.store.start_cycle(now)
        own_fetcher = self.fetcher is None
        fetcher = self.fetcher or fetch_mod.Fetcher(self.cfg.poll)
        own_executor = self.executor is None
        executor = self.executor or ThreadPoolExecutor(max_workers=1, thread_name_prefix="parse")
        try:
            if own_fetcher:
                await fetcher.__aenter__()
            tasks = [asyncio.create_task(self._fetch(fetcher, feed)) for feed in feeds]
            done = 0
            for next_done in asyncio.as_completed(tasks):
                feed, result = await next_done
                feed_report = await self._process(feed, result, executor, report)
                report.feeds.append(feed_report)
                done += 1
                if progress:
                    progress(done, len(feeds), feed_report)
        finally:
            if own_fetcher:
                await fetcher.__aexit__(None, None, None)
            if own_executor:
                executor.shutdown(wait=False, cancel_futures=True)
        await self._translate_titles(report)
        report.finished = self.clock()
        self.store.finish_cycle(
            cycle_id, report.finished, feeds=len(feeds),
            fetched=sum(1 for f in report.feeds if not f.error and not f.not_modified),
            not_modified=sum(1 for f in report.feeds if f.not_modified),
            errors=report.errors, new_items=len(report.new_items),
            matched=sum(1 for n in report.new_items if n.matches),
        )
        log.info("cycle feeds=%d new=%d matched=%d errors=%d not_modified=%d seconds=%.2f",
                 len(feeds), len(report.new_items), sum(1 for n in report.new_items if n.matches),
                 report.errors, sum(1 for f in report.feeds if f.not_modified),
                 (report.finished - report.started).total_seconds())
        return report

    async def _fetch(self, fetcher, feed: Feed) -> tuple[Feed, FetchResult]:
        return feed, await fetcher.fetch(feed)

    async def _process(self, feed: Feed, result: FetchResult, executor: Executor,
                       report: CycleReport) -> FeedReport:
        now = self.clock()
        fr = FeedReport(feed_id=feed.id, name=feed.name, url=feed.url, status=result.status,
                        not_modified=result.not_modified, error=result.error)
        new_items: list[NewItem] = []
        if result.body is not None and result.error is None:
            loop = asyncio.get_running_loop()
            try:
                parsed: ParseResult = await loop.run_in_executor(
                    executor, parse.parse_feed, result.body, result.headers, result.final_url or feed.url, now)
            except Exception as exc:  # a parser bug must not stop the cycle
                log.exception("parse crashed feed=%s", feed.id)
                parsed = ParseResult(entries=[], error=f"parse: {type(exc).__name__}: {exc}")
            if parsed.error:
                fr.error = parsed.error
                result.error = parsed.error
            else:
                fr.seen = len(parsed.entries)
                new_items = self._store_entries(feed, parsed, now)
        if result.permanent_url and self.store.url_taken(result.permanent_url, feed.id):
            result.permanent_url = None  # another feed already has that address
        state = fetch_mod.schedule(feed, result, len(new_items), now, self.cfg.poll, self.rng)
        retired_reason = None
        if state.retired_at and not feed.retired_at:
            retired_reason = "gone (HTTP 410)"
            fr.retired = True
            log.warning("feed retired feed=%s url=%s reason=%s", feed.id, feed.url, retired_reason)
        self.store.save_feed_state(state, ok_at=now if result.ok else None,
                                   new_at=now if new_items else None, retired_reason=retired_reason)
        fr.next_poll_at = state.next_poll_at
        fr.new = len(new_items)
        report.new_items.extend(new_items)
        if fr.error:
            log.warning("feed failed feed=%s url=%s failures=%d error=%s", feed.id, feed.url,
                        state.failures, fr.error)
        else:
            log.debug("feed polled feed=%s status=%s new=%d", feed.id, result.status, fr.new)
        return fr

    def _store_entries(self, feed: Feed, parsed: ParseResult, now: datetime) -> list[NewItem]:
        """Store the entries not seen before; return them, matched and in stories."""
        candidates = []
        for entry in parsed.entries:
            url = parse.canonical_url(entry.link)
            candidates.append((entry, parse.item_key(entry), url,
                               parse.content_hash(entry.title, entry.summary)))
        if not candidates:
            return []
        keys, urls, contents = self.store.known_items(
            feed.id, [sha1(c[1]) for c in candidates], [sha1(c[2]) for c in candidates if c[2]],
            [c[3] for c in candidates])
        fresh = []
        for entry, key, url, chash in candidates:
            k, u = sha1(key), sha1(url) if url else None
            if k in keys or (u and u in urls) or chash in contents:
                continue  # seen before: costs nothing further
            keys.add(k)
            contents.add(chash)
            if u:
                urls.add(u)
            fresh.append((entry, key, url, chash))
        if not fresh:
            return []
        langs = language.detect_many([(f"{e.title}\n{e.summary}", feed.lang) for e, *_ in fresh])
        out: list[NewItem] = []
        with self.store.conn:
            for (entry, key, url, chash), lang in zip(fresh, langs):
                item = Item(feed_id=feed.id, key=key, url=url, title=entry.title, summary=entry.summary,
                            lang=lang, published=entry.published, fetched=now, content_hash=chash,
                            guid=entry.guid)
                if self.store.insert_item(item) is None:
                    continue
                concepts: set[str] = set()
                if not self.matcher:
                    matches = []
                elif self.stories is not None and hasattr(self.matcher, "match_with_concepts"):
                    # one scan of the text gives both
                    matches, concepts = self.matcher.match_with_concepts(item.title, item.summary, item.lang)
                else:
                    matches = self.matcher.match(item.title, item.summary, item.lang)
                    if self.stories is not None:
                        concepts = self.matcher.concepts(item.title, item.summary, item.lang)
                if matches:
                    self.store.save_matches(item.id, matches)
                new = NewItem(item=item, feed_name=feed.name, matches=matches)
                if self.stories is not None:
                    translation = None
                    if self.translator is not None and item.lang != "en":
                        translation = self.translator.cached(item.title, item.lang, "en")
                    assignment = self.stories.assign(item, concepts, now, translation=translation)
                    new.story_id = assignment.story_id
                    new.story_is_new = assignment.is_new
                    item.story_id = assignment.story_id
                out.append(new)
        return out

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
