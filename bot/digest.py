"""What a reader sees: stories gathered for a digest or an alert.

This module turns stored matches into reader-facing story lines
(:class:`bot.render.StoryLine`: headline in the reader's language, sources,
languages, why it matched) ordered by importance; :mod:`bot.render` turns
those into Telegram HTML.
"""

from __future__ import annotations

from collections import defaultdict
from dataclasses import dataclass, field
from datetime import datetime, timedelta
from typing import Callable

from .config import Config
from .models import from_iso
from .render import StoryLine

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
    timezone: str = "UTC"


def default_reader(cfg: Config) -> Reader:
    return Reader(chat_id=None, lang=cfg.translation.target, topics=[t.id for t in cfg.topics],
                  timezone=cfg.digest.timezone)


def gather_stories(store, reader: Reader, since: datetime | None, now: datetime,
                   translate: TranslateFn | None = None, story_ids: set[int] | None = None,
                   topic_names: dict[str, str] | None = None) -> list[StoryLine]:
    """The reader's stories with a matching report first seen in (since, now], most important first.

    Importance: distinct sources, plus twice the languages (an event reported
    across languages is bigger news), plus the reports of the last hour.
    """
    topic_names = topic_names or {}
    keys = list(reader.topics) + [f"watch:{wid}" for wid in reader.watch]
    rows = store.matched_rows(keys, since, now, story_ids)
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
        ordered = sorted(matched, key=lambda r: (keys.index(r["topic"]) if r["topic"] in keys else 0, -r["score"]))
        topics = [topic_names.get(t, t) for t in dict.fromkeys(r["topic"] for r in ordered)
                  if not t.startswith("watch:")]
        words = [reader.watch[int(t[6:])] for t in dict.fromkeys(r["topic"] for r in ordered)
                 if t.startswith("watch:") and int(t[6:]) in reader.watch]
        why: list[str] = []
        # the words as the reader's own-language reports have them come first
        for r in sorted(ordered, key=lambda r: r["lang"] != reader.lang):
            for term in r["terms"]:
                if term not in why:
                    why.append(term)
        headline, headline_lang, original, translated, url = _headline(items, reader.lang, translate)
        # a summary only when it is in the reader's language (it is not translated)
        summary = next((r["summary"] for r in matched if r["lang"] == reader.lang and r.get("summary")), "")
        sources = list(dict.fromkeys(r["feed_name"] for r in items))
        langs = list(dict.fromkeys(r["lang"] for r in items))
        growth = sum(1 for r in items if from_iso(r["fetched"]) > hour_ago)
        stories.append(StoryLine(
            headline=headline, headline_lang=headline_lang, original_lang=original, url=url,
            sources=sources, langs=langs, topics=topics, why=why, translated=translated,
            summary=summary,
            watchwords=words, importance=float(len(sources) + 2 * len(langs) + growth), story_id=story_id,
        ))
    stories.sort(key=lambda s: (s.importance, len(s.sources)), reverse=True)
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
