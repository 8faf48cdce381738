"""Sample feeds bundled with the package, for ``python -m bot demo`` and the tests.

Five small feeds written by the team (fictional outlets on reserved example
domains, March 2026): English RSS and Atom, Russian RSS in UTF-8 and in
windows-1251, and Kazakh RSS. They cover the three watch topics (unrest in
Kazakhstan, CSTO troop deployments, internet shutdowns), with the same events
reported in several languages, hard negatives (a CSTO summit, exercises,
floods, faster internet) and unrelated news (weather, sport, economy).

Read them with :func:`sample_feeds`; nothing is read at import time.
"""

from __future__ import annotations

from dataclasses import dataclass
from importlib import resources


@dataclass(frozen=True)
class SampleFeed:
    """One bundled feed: what a config ``[[feeds]]`` entry would say, plus its file."""

    file: str
    url: str  # a stable, fictional address (never fetched)
    lang: str
    name: str
    content_type: str  # as a server would send it; no charset where the XML prolog should decide


SAMPLES: tuple[SampleFeed, ...] = (
    SampleFeed("en_steppe_wire.xml", "https://steppewire.example.org/rss.xml", "en", "Steppe Wire",
               "application/rss+xml; charset=utf-8"),
    SampleFeed("en_camonitor_atom.xml", "https://camonitor.example.org/atom.xml", "en", "Central Asia Monitor",
               "application/atom+xml; charset=utf-8"),
    SampleFeed("ru_vestnik_cp1251.xml", "https://vestnik.example.kz/rss.xml", "ru", "Степной вестник",
               "application/rss+xml"),
    SampleFeed("ru_region_info.xml", "https://region.example.net/rss.xml", "ru", "Регион.Инфо",
               "application/rss+xml; charset=utf-8"),
    SampleFeed("kk_dala_zharshysy.xml", "https://zharshy.example.kz/rss.xml", "kk", "Дала жаршысы",
               "application/rss+xml; charset=utf-8"),
)


def read_bytes(file: str) -> bytes:
    """The raw bytes of one bundled feed file (exactly as a server would send them)."""
    if file not in {s.file for s in SAMPLES}:
        raise ValueError(f"samples: no bundled feed named {file!r} (have: "
                         + ", ".join(s.file for s in SAMPLES) + ")")
    return resources.files(__name__).joinpath(file).read_bytes()


def sample_feeds() -> list[tuple[SampleFeed, bytes]]:
    """Every bundled feed with its bytes, in a fixed order."""
    return [(s, read_bytes(s.file)) for s in SAMPLES]
