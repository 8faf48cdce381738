"""Alerts and digests as Telegram HTML, split to Telegram's limits.

Pure functions over small dataclasses: no I/O, no config, no clock. Every piece
of text that came from a feed (titles, summaries, source names, matched words)
goes through :func:`escape`, which also removes control and bidi-override
characters; links are kept only when they are plain http(s) URLs.

Telegram counts the 4096-character limit on the text *after* entity parsing
(tags removed, ``&lt;`` counted as one character). This module measures that
visible length in UTF-16 code units, which is never less than the character
count, so a message it produces is within the limit however Telegram counts.
Digests are split only between stories, never inside a tag.
"""

from __future__ import annotations

import re
import unicodedata
from dataclasses import dataclass, field
from datetime import date
from urllib.parse import urlsplit

from . import i18n
from .i18n import Html, escape

MAX_MESSAGE = 4096  # Telegram: message text, after entity parsing
MAX_ENTITIES = 90  # Telegram keeps about 100 entities per message; stay under it
MAX_HEADLINE = 300  # characters of a headline shown
MAX_SUMMARY = 700  # characters of an alert's summary
MAX_SOURCES = 4  # source names listed before "+N"
MAX_TERMS = 6  # matched words listed per story
MAX_NAME = 60  # characters of one source or topic name
MAX_URL = 2048

# Characters dropped from feed text: C0/C1 controls (newline and tab are
# handled separately), bidi embeddings/overrides/isolates that could reorder
# what the reader sees, BOM and non-characters, and lone surrogates (which
# cannot be encoded as UTF-8 at all).
_DROP = re.compile(
    "[\x00-\x08\x0b\x0c\x0e-\x1f\x7f-\x9f\u202a-\u202e\u2066-\u2069\u200e\u200f\u061c"
    "\ufeff\ufff9-\ufffb\ufffe\uffff\ud800-\udfff]"
)
_SPACE = re.compile(r"\s+")
_TAG = re.compile(r"<[^>]*>")


@dataclass
class StoryLine:
    """One story as a reader sees it.

    ``headline`` is in ``headline_lang``: the reader's language when it was
    translated (``translated=True``) or already written in it, else the
    original (``headline_lang == original_lang``). ``topics`` are topic *names*
    to show, ``why`` the matched words as they appeared, ``watchwords`` the
    reader's own watch words that matched.
    """

    headline: str
    headline_lang: str
    original_lang: str
    url: str | None = None
    sources: list[str] = field(default_factory=list)
    langs: list[str] = field(default_factory=list)
    topics: list[str] = field(default_factory=list)
    why: list[str] = field(default_factory=list)
    translated: bool = False
    summary: str = ""
    watchwords: list[str] = field(default_factory=list)
    importance: float = 0.0
    story_id: int | None = None


@dataclass(frozen=True)
class Message:
    """One Telegram message: HTML text plus whether to show a link preview."""

    text: str
    disable_preview: bool = False


# -- escaping and measuring --------------------------------------------------


def clean(text: str | None, *, single_line: bool = True) -> str:
    """Feed text made safe to show: controls and bidi overrides removed, NFC."""
    if not text:
        return ""
    text = _DROP.sub("", str(text))
    text = unicodedata.normalize("NFC", text)
    if single_line:
        return _SPACE.sub(" ", text).strip()
    lines = [_SPACE.sub(" ", line).strip() for line in text.replace("\r", "\n").split("\n")]
    return "\n".join(line for line in lines if line)


def escape_attr(text: str) -> str:
    return escape(text).replace('"', "&quot;")


def truncate(text: str, limit: int) -> str:
    """At most ``limit`` characters, cut at a word boundary when one is near, with an ellipsis."""
    if len(text) <= limit:
        return text
    cut = text[: max(1, limit - 1)]
    space = cut.rfind(" ")
    if space >= limit * 2 // 3:
        cut = cut[:space]
    return cut.rstrip() + "…"


def safe_url(url: str | None) -> str | None:
    """The URL when it is an absolute http(s) URL with a host and no controls, else None."""
    if not url or not isinstance(url, str):
        return None
    url = url.strip()
    if len(url) > MAX_URL or _DROP.search(url) or any(c.isspace() for c in url):
        return None
    try:
        parts = urlsplit(url)
        host = parts.hostname
    except ValueError:
        return None
    if parts.scheme.lower() not in ("http", "https") or not host:
        return None
    return url


def visible_text(html: str) -> str:
    """The text Telegram shows for HTML this module produced (tags dropped, entities decoded)."""
    text = _TAG.sub("", html)
    return text.replace("&lt;", "<").replace("&gt;", ">").replace("&quot;", '"').replace("&amp;", "&")


def visible_length(html: str) -> int:
    """Visible length in UTF-16 code units (an upper bound of Telegram's count)."""
    text = visible_text(html)
    return len(text) + sum(1 for c in text if ord(c) > 0xFFFF)


def entity_count(html: str) -> int:
    return sum(1 for m in _TAG.finditer(html) if not m.group(0).startswith("</"))


def link(text: str, url: str | None) -> str:
    """``text`` (plain) as a link when ``url`` is safe, else just escaped text."""
    href = safe_url(url)
    if href is None:
        return escape(text)
    return f'<a href="{escape_attr(href)}">{escape(text)}</a>'


def lang_code(lang: str | None) -> str:
    code = clean(lang or "")[:8]
    return code.upper() if code else "?"


# -- story pieces -------------------------------------------------------------


def _names(names: list[str], limit: int, lang: str) -> str:
    shown = []
    for name in names:
        name = truncate(clean(name), MAX_NAME)
        if name and name not in shown:
            shown.append(name)
    extra = len(shown) - limit
    text = ", ".join(shown[:limit])
    if extra > 0:
        text += " " + i18n.t(lang, "more_sources", n=extra)
    return text


def sources_line(story: StoryLine, lang: str) -> str:
    """``Reuters, Tengrinews · EN KK`` (escaped HTML)."""
    names = escape(_names(story.sources, MAX_SOURCES, lang))
    codes = []
    for code in story.langs or [story.original_lang]:
        code = lang_code(code)
        if code not in codes:
            codes.append(code)
    langs = escape(" ".join(codes[:6]))
    return f"{names} · {langs}" if names else langs


def lang_mark(story: StoryLine, reader_lang: str) -> str:
    """How the headline's language is marked: ``[RU]``, ``(translated from RU)`` or nothing."""
    if story.translated:
        return "(" + i18n.t(reader_lang, "translated_from", lang=lang_code(story.original_lang)) + ")"
    if story.headline_lang and story.headline_lang != reader_lang:
        return "[" + escape(lang_code(story.headline_lang)) + "]"
    return ""


def why_line(story: StoryLine, reader_lang: str) -> str:
    """Why it matched: topic names and the matched words (escaped HTML), or ''."""
    parts = []
    topics = [truncate(clean(t), MAX_NAME) for t in story.topics]
    topics = [t for t in dict.fromkeys(topics) if t]
    terms = [truncate(clean(w), 40) for w in story.why]
    terms = [w for w in dict.fromkeys(terms) if w][:MAX_TERMS]
    if topics:
        text = escape(" / ".join(topics[:3]))
        if terms:
            text += ": " + escape(", ".join(terms))
        parts.append(text)
    elif terms:
        parts.append(escape(", ".join(terms)))
    words = [truncate(clean(w), 40) for w in story.watchwords]
    words = [w for w in dict.fromkeys(words) if w][:MAX_TERMS]
    if words:
        parts.append(i18n.t(reader_lang, "your_words", words=", ".join(words)))
    if not parts:
        return ""
    return i18n.t(reader_lang, "why", reason=Html("; ".join(parts)))


def story_block(story: StoryLine, reader_lang: str) -> str:
    """One story as one line: headline (linked, language marked), sources and languages, the reason."""
    headline = truncate(clean(story.headline), MAX_HEADLINE) or i18n.t(reader_lang, "no_title")
    line = "• " + link(headline, story.url)
    mark = lang_mark(story, reader_lang)
    if mark:
        line += f" <i>{mark}</i>"
    meta = sources_line(story, reader_lang)
    why = why_line(story, reader_lang)
    if why:
        meta += " · " + why
    return line + " — <i>" + meta + "</i>"


# -- alerts -------------------------------------------------------------------


def render_alert(story: StoryLine, reader_lang: str) -> Message:
    """The alert for one story (link preview left on)."""
    lang = i18n.lang_or_default(reader_lang)
    headline = truncate(clean(story.headline), MAX_HEADLINE) or i18n.t(lang, "no_title")
    lines = ["🔔 <b>" + link(headline, story.url) + "</b>"]
    mark = lang_mark(story, lang)
    if mark:
        lines.append(f"<i>{mark}</i>")
    summary = truncate(clean(story.summary, single_line=False), MAX_SUMMARY)
    if summary:
        lines.append(escape(summary))
    lines.append(sources_line(story, lang))
    why = why_line(story, lang)
    if why:
        lines.append("<i>" + why + "</i>")
    return Message("\n".join(lines), disable_preview=False)


def update_prefix(reader_lang: str) -> str:
    """The line put before an alert that updates an earlier one (the story grew)."""
    return i18n.t(i18n.lang_or_default(reader_lang), "update_prefix") + "\n"


# -- digests ------------------------------------------------------------------


@dataclass
class DigestSection:
    title: str  # plain text: a topic name, or the "your watch words" label
    stories: list[StoryLine]

    @property
    def importance(self) -> float:
        return max((s.importance for s in self.stories), default=0.0)


def group_by_topic(stories: list[StoryLine], reader_lang: str) -> list[DigestSection]:
    """Each story once, under its first topic; sections and stories most important first."""
    sections: dict[str, DigestSection] = {}
    for story in stories:
        title = clean(story.topics[0]) if story.topics and clean(story.topics[0]) else None
        title = title or i18n.t_plain(reader_lang, "watch_section")
        sections.setdefault(title, DigestSection(title, [])).stories.append(story)
    for section in sections.values():
        section.stories.sort(key=lambda s: -s.importance)
    return sorted(sections.values(), key=lambda s: (-s.importance, -len(s.stories)))


def render_digest(stories: list[StoryLine], reader_lang: str, day: date | None = None,
                  limit: int = MAX_MESSAGE) -> list[Message]:
    """The digest as one or more messages, previews off, each under ``limit``.

    Grouped by topic (most important first); split only between stories; a
    topic that continues in the next message repeats its heading. No stories:
    the empty-day message.
    """
    lang = i18n.lang_or_default(reader_lang)
    if not stories:
        return [render_empty_digest(lang, day)]
    count = i18n.t(lang, "digest_count", n=len(stories), stories=i18n.plural(lang, len(stories), "story"))
    header = _title(lang, day) + " · " + count
    blocks: list[tuple[str, str]] = []  # (section heading HTML, story HTML)
    for section in group_by_topic(stories, lang):
        heading = "<b>" + escape(truncate(section.title, MAX_NAME)) + "</b>"
        for story in section.stories:
            blocks.append((heading, story_block(story, lang)))
    return [Message(text, disable_preview=True) for text in _pack(header, blocks, lang, limit)]


def _pack(header: str, blocks: list[tuple[str, str]], lang: str, limit: int) -> list[str]:
    messages: list[str] = []
    current = header
    current_heading: str | None = None
    cont = " " + i18n.t(lang, "continued")

    def fits(text: str) -> bool:
        return visible_length(text) <= limit and entity_count(text) <= MAX_ENTITIES

    for heading, block in blocks:
        if heading != current_heading:
            piece = "\n\n" + heading + "\n" + block
        else:
            piece = "\n" + block
        if fits(current + piece):
            current += piece
            current_heading = heading
            continue
        if current:
            messages.append(current)
        current = heading + (cont if heading == current_heading else "") + "\n" + block
        current_heading = heading
        if not fits(current):  # a single story bigger than a message: cannot happen with the caps
            current = truncate(visible_text(current), limit - 1)
            current = escape(current)
    if current:
        messages.append(current)
    return messages


def render_empty_digest(reader_lang: str, day: date | None = None) -> Message:
    """The digest on a day when nothing matched."""
    lang = i18n.lang_or_default(reader_lang)
    return Message(_title(lang, day) + "\n" + i18n.t(lang, "digest_empty"), disable_preview=True)


def _title(lang: str, day: date | None) -> str:
    if day is None:
        return i18n.t(lang, "digest_title_nodate")
    return i18n.t(lang, "digest_title", day=day.isoformat())


def split_text(html_lines: list[str], limit: int = MAX_MESSAGE) -> list[str]:
    """Join complete HTML lines into messages under ``limit`` (for long command replies)."""
    out: list[str] = []
    current = ""
    for line in html_lines:
        candidate = current + ("\n" if current else "") + line
        if current and (visible_length(candidate) > limit or entity_count(candidate) > MAX_ENTITIES):
            out.append(current)
            candidate = line
        current = candidate
    if current:
        out.append(current)
    return out
