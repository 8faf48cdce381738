"""Sample feeds bundled with the package, for ``python -m bot demo`` and the tests.

Five small feeds written by the team (fictional outlets on reserved example
domains, March 2026): English RSS and Atom, Russian RSS in UTF-8 and in
windows-1251, and Kazakh RSS. They cover the three watch topics (unrest in
Kazakhstan, CSTO troop deployments, internet shutdowns), with the same events
reported in several languages, hard negatives (a CSTO summit, exercises,
floods, faster internet) and unrelated news (weather, sport, economy).

``index.json`` lists them (file, url, lang, name, content type); read them with
:func:`sample_feeds`. Nothing is read at import time.
"""

from __future__ import annotations

import json
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


def catalogue() -> tuple[SampleFeed, ...]:
    """The bundled feeds as listed in ``index.json`` (the one list of them)."""
    raw = json.loads(resources.files(__name__).joinpath("index.json").read_text(encoding="utf-8"))
    return tuple(SampleFeed(**entry) for entry in raw)


def read_bytes(file: str) -> bytes:
    """The raw bytes of one bundled feed file (exactly as a server would send them)."""
    known = [s.file for s in catalogue()]
    if file not in known:
        raise ValueError(f"samples: no bundled feed named {file!r} (have: " + ", ".join(known) + ")")
    return resources.files(__name__).joinpath(file).read_bytes()


def sample_feeds() -> list[tuple[SampleFeed, bytes]]:
    """Every bundled feed with its bytes, in a fixed order."""
    return [(s, read_bytes(s.file)) for s in catalogue()]
