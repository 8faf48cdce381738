"""What a reader sees: stories gathered for a digest or an alert.

This module turns stored matches into reader-facing story lines (headline in
the reader's language, sources, languages, why it matched) ordered by
importance; :mod:`bot.render` turns those into Telegram HTML.
"""

from __future__ import annotations

from collections import defaultdict
from dataclasses import dataclass, field
from datetime import datetime, timedelta
from typing import Callable

from .config import Config
from .models import from_iso

TranslateFn = Callable[[str, str, str], "str | None"]  # cached translation lookup (text, src, dst)


@dataclass
class Reader:
    """Who a digest is for: a subscriber, or the config's default reader."""

    chat_id: int | None
    lang: str
    topics: list[str]
    watch: dict[int, str] = field(default_factory=dict)  # watchword id -> word
    last_digest_at: datetime | None = None
    skip_empty: bool = False


@dataclass
class Story:
    """One story as a reader sees it."""

    story_id: int
    headline: str
    headline_lang: str  # language of the headline text shown
    original_lang: str  # language of the report the headline came from
    translated: bool
    url: str | None
    sources: list[str]
    langs: list[str]
    topic: str  # the topic id (or watch:<id>) it is listed under
    topics: list[str]
    why: list[str]  # the matched terms as they appeared
    reports: int
    growth: int  # reports in the last hour
    first_seen: datetime
    last_seen: datetime

    @property
    def importance(self) -> tuple:
        return (len(self.sources) + 2 * len(self.langs) + self.growth, self.reports, self.last_seen)


def default_reader(cfg: Config) -> Reader:
    return Reader(chat_id=None, lang=cfg.translation.target, topics=[t.id for t in cfg.topics])


def gather_stories(store, reader: Reader, since: datetime | None, now: datetime,
                   translate: TranslateFn | None = None, story_ids: set[int] | None = None) -> list[Story]:
    """The reader's stories with a matching report first seen in (since, now], most important first."""
    keys = list(reader.topics) + [f"watch:{wid}" for wid in reader.watch]
    rows = store.matched_rows(keys, since, now)
    per_story: dict[int, list[dict]] = defaultdict(list)
    for row in rows:
        if row["story_id"] is None:
            continue
        if story_ids is not None and row["story_id"] not in story_ids:
            continue
        per_story[row["story_id"]].append(row)
    members = store.story_members(per_story)
    stories = []
    hour_ago = now - timedelta(hours=1)
    for story_id, matched in per_story.items():
        items = members.get(story_id) or matched
        best = max(matched, key=lambda r: r["score"])
        topics = sorted({r["topic"] for r in matched}, key=keys.index)
        why: list[str] = []
        for r in sorted(matched, key=lambda r: -r["score"]):
            for term in r["terms"]:
                label = reader.watch.get(int(r["topic"][6:])) if r["topic"].startswith("watch:") else None
                term = f"{term} ({label})" if label and label.lower() != term.lower() else term
                if term not in why:
                    why.append(term)
        headline, headline_lang, original, translated, url = _headline(items, reader.lang, translate)
        sources = list(dict.fromkeys(r["feed_name"] for r in items))
        langs = list(dict.fromkeys(r["lang"] for r in items))
        fetched = [from_iso(r["fetched"]) for r in items]
        stories.append(Story(
            story_id=story_id, headline=headline, headline_lang=headline_lang, original_lang=original,
            translated=translated, url=url, sources=sources, langs=langs, topic=best["topic"],
            topics=topics, why=why[:6], reports=len(items), growth=sum(1 for f in fetched if f > hour_ago),
            first_seen=min(fetched), last_seen=max(fetched),
        ))
    stories.sort(key=lambda s: s.importance, reverse=True)
    return stories


def _headline(items: list[dict], lang: str, translate: TranslateFn | None):
    """(text, text language, original language, translated?, url) for the reader's language."""
    for r in items:
        if r["lang"] == lang:
            return r["title"], lang, lang, False, r["url"]
    first = items[0]
    if translate is not None:
        for r in items:
            text = translate(r["title"], r["lang"], lang)
            if text:
                return text, lang, r["lang"], True, r["url"]
    return first["title"], first["lang"], first["lang"], False, first["url"]


def group_by_topic(stories: list[Story], order: list[str]) -> list[tuple[str, list[Story]]]:
    """Stories grouped under the topic they are listed under, topics in ``order``."""
    groups: dict[str, list[Story]] = defaultdict(list)
    for s in stories:
        groups["watch" if s.topic.startswith("watch:") else s.topic].append(s)
    rank = {t: i for i, t in enumerate(order)}
    return sorted(groups.items(), key=lambda kv: (rank.get(kv[0], len(rank)), kv[0]))
