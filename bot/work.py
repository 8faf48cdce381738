"""What a pipeline worker process does: parse feed bodies and analyse new entries.

Pure functions (no store, no event loop, no network), run by :class:`bot.pipeline.Pipeline`
in its worker processes, or in the main process when there are none. This module imports
only what that work needs (parse, language, match, stories): a spawned worker imports it,
and the store, HTTP and Telegram libraries stay out of the workers' memory (about 17 MB
each, measured with psutil after the imports).
"""

from __future__ import annotations

import pickle
import signal
from datetime import datetime
from typing import Any, Sequence

from . import language, parse
from .models import ParseResult

Identities = list[tuple[str, "str | None", str]]  # (item key, canonical url, content hash) per entry
Analysis = tuple[str, list, set, Any]  # (language, matches, concepts, story fingerprint or None)


def _worker_start() -> None:
    # Ctrl-C reaches the whole process group: the parent decides when workers stop
    signal.signal(signal.SIGINT, signal.SIG_IGN)


def parse_job(body: bytes, headers: dict[str, str], url: str, now: datetime,
              max_items: int = parse.MAX_ITEMS) -> tuple[ParseResult, Identities]:
    """Parse a feed body and compute each entry's identities (for deduplication)."""
    parsed = parse.parse_feed(body, headers, url, now, max_items)
    ids = []
    for e in parsed.entries:
        url = parse.canonical_url(e.link)
        ids.append((parse.item_key(e), url, parse.content_hash(e.title, e.summary, url)))
    return parsed, ids


def analyse(matcher, rows: Sequence[tuple[str, str, str | None]], *, concepts: bool = False,
            fingerprints: bool = False) -> list[Analysis]:
    """Language, matches, concepts and story fingerprint of (title, summary, feed language) rows."""
    langs = language.detect_many([(f"{title}\n{summary}", hint) for title, summary, hint in rows])
    if fingerprints:
        from .stories import fingerprint
    out: list[Analysis] = []
    for (title, summary, _hint), lang in zip(rows, langs):
        found: set[str] = set()
        if matcher is None:
            matches = []
        elif concepts and hasattr(matcher, "match_with_concepts"):
            matches, found = matcher.match_with_concepts(title, summary, lang)  # one scan gives both
        else:
            matches = matcher.match(title, summary, lang)
            if concepts:
                found = matcher.concepts(title, summary, lang)
        fp = fingerprint(title, summary, lang, found) if fingerprints else None
        out.append((lang, matches, found, fp))
    return out


_worker_matcher: tuple[str, Any] | None = None  # (spec digest, Matcher) in a worker process


def analyse_job(digest: str | None, spec: bytes | None, rows, concepts: bool, fingerprints: bool) -> list[Analysis]:
    """:func:`analyse` in a worker, with a matcher rebuilt only when its topics or watch words change."""
    global _worker_matcher
    matcher = None
    if spec is not None:
        if _worker_matcher is None or _worker_matcher[0] != digest:
            from .match import Matcher
            topics, watchwords = pickle.loads(spec)
            _worker_matcher = (digest, Matcher(topics, watchwords))
        matcher = _worker_matcher[1]
    return analyse(matcher, rows, concepts=concepts, fingerprints=fingerprints)
