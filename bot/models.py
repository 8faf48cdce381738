"""Plain data passed between the pipeline stages.

Nothing here does I/O. Times are timezone-aware UTC ``datetime`` objects in
memory and ISO-8601 strings (``2026-01-05T10:00:00+00:00``) in SQLite.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from datetime import datetime, timezone
from urllib.parse import urlsplit

LANGS = ("en", "ru", "kk")


def identifies(url: str | None) -> bool:
    """Whether an item's canonical URL tells it apart from other items. A site's front page
    (no path, no query) does not: some feeds link every item there."""
    if not url:
        return False
    parts = urlsplit(url)
    return parts.path not in ("", "/") or bool(parts.query)


def utcnow() -> datetime:
    return datetime.now(timezone.utc)


def iso(dt: datetime | None) -> str | None:
    """A UTC datetime as the ISO string stored in SQLite (None stays None)."""
    if dt is None:
        return None
    return dt.astimezone(timezone.utc).isoformat(timespec="seconds")


def from_iso(text: str | None) -> datetime | None:
    if not text:
        return None
    dt = datetime.fromisoformat(text)
    if dt.tzinfo is None:
        dt = dt.replace(tzinfo=timezone.utc)
    return dt


@dataclass
class Feed:
    """A feed as stored, with its polling state."""

    id: int
    url: str
    name: str
    lang: str
    interval_seconds: int | None = None  # None: the [poll] default
    etag: str | None = None
    last_modified: str | None = None
    last_status: int | None = None
    last_error: str | None = None
    failures: int = 0
    next_poll_at: datetime | None = None
    last_polled_at: datetime | None = None
    retired_at: datetime | None = None
    unchanged_polls: int = 0  # consecutive polls with nothing new (adaptive interval)
    body_hash: str | None = None  # sha1 of the last body parsed without error (skip unchanged bodies)

    @property
    def retired(self) -> bool:
        return self.retired_at is not None


@dataclass
class FetchResult:
    """What one HTTP fetch of a feed produced. Errors are carried, never raised."""

    feed_id: int
    url: str  # the URL requested
    status: int | None = None  # HTTP status of the final response; None if no response
    body: bytes | None = None  # decoded from Content-Encoding, None on error or 304
    headers: dict[str, str] = field(default_factory=dict)  # lower-case names
    final_url: str | None = None  # after redirects
    permanent_url: str | None = None  # set when every redirect hop was permanent (301/308)
    etag: str | None = None
    last_modified: str | None = None
    not_modified: bool = False  # 304
    gone: bool = False  # 410: retire the feed
    retry_after: float | None = None  # seconds, from Retry-After on 429/503
    error: str | None = None  # "fetch: ..." when the fetch failed
    elapsed: float = 0.0
    body_hash: str | None = None  # sha1 of the decoded body (200 only)

    @property
    def ok(self) -> bool:
        return self.error is None and (self.not_modified or self.body is not None)


@dataclass
class Entry:
    """One feed entry after parsing, before language detection and storage."""

    guid: str | None
    link: str | None  # absolute http(s) URL or None
    title: str  # plain text
    summary: str  # plain text, bounded
    published: datetime | None  # UTC; None when missing or unusable
    author: str | None = None


@dataclass
class ParseResult:
    entries: list[Entry]
    feed_title: str | None = None
    error: str | None = None  # "parse: ..." when nothing usable came out
    bozo: str | None = None  # feedparser's complaint when it still recovered entries
    dropped: int = 0  # entries left out over the per-feed cap (the oldest)


@dataclass
class Item:
    """A stored news item."""

    feed_id: int
    key: str  # stable per-feed key: GUID, else canonical link, else content hash
    url: str | None  # canonical URL (tracking parameters and fragment removed)
    title: str
    summary: str
    lang: str
    published: datetime | None
    fetched: datetime
    content_hash: str
    guid: str | None = None
    id: int | None = None
    story_id: int | None = None


@dataclass
class Match:
    """Why an item matched a topic or a reader's watch word."""

    topic: str  # topic id, or "watch:<word id>" for a reader watch word
    score: float
    terms: list[str]  # the matched words as they appeared in the text


@dataclass
class WatchWord:
    """A reader's own watch word, with its stored expansions per language."""

    id: int
    chat_id: int
    word: str  # as the reader typed it
    expansions: dict[str, list[str]] = field(default_factory=dict)  # lang -> terms
    lang: str | None = None  # the word's own language, as detected when added


@dataclass
class Subscriber:
    chat_id: int
    chat_type: str = "private"  # private | group | supergroup | channel
    lang: str = "en"  # reader language
    mode: str = "both"  # instant | digest | both
    digest_time: str = "08:00"  # HH:MM, local
    timezone: str = "Asia/Almaty"
    quiet_start: str | None = None  # HH:MM local, alerts held between start and end
    quiet_end: str | None = None
    skip_empty_digest: bool = False
    paused: str | None = None  # why delivery stopped (blocked, chat not found), or None
    last_digest_at: datetime | None = None
