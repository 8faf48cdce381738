"""A PNG chart of matched stories per topic per day, by language.

Pure rendering: the rows come from :meth:`bot.store.Store.trend_counts`, the
picture goes to a path or a binary buffer. matplotlib is imported inside
:func:`render_trend` (never at module import, so the command line and the
service start fast) and only its object-oriented API with the Agg canvas is
used: no pyplot, no global backend switch, safe to call from a worker thread.

    offset, today = local_day(cfg.digest.timezone)
    rows = store.trend_counts(days=14, utc_offset_minutes=offset)
    render_trend(rows, {t.id: t.name for t in cfg.topics}, 14, "trend.png", end=today)
"""

from __future__ import annotations

import logging
from collections import defaultdict
from datetime import date, datetime, timedelta, timezone
from typing import IO, Iterable, Mapping, Sequence

from .models import LANGS

log = logging.getLogger(__name__)

LANG_LABELS = {"en": "English", "ru": "Russian", "kk": "Kazakh"}
LANG_COLOURS = {"en": "#1f77b4", "ru": "#d62728", "kk": "#2ca02c", "other": "#9467bd"}
WIDTH_IN, DPI = 10.0, 100
MAX_DAYS = 366


def local_day(tz_name: str, now: datetime | None = None) -> tuple[int, date]:
    """(UTC offset in minutes, today's date) in an IANA zone at ``now``: the
    ``utc_offset_minutes`` for ``Store.trend_counts`` and the ``end`` for :func:`render_trend`."""
    from zoneinfo import ZoneInfo, ZoneInfoNotFoundError

    try:
        zone = ZoneInfo(tz_name)
    except (ZoneInfoNotFoundError, ValueError):
        raise ValueError(f"trend: unknown time zone {tz_name!r}") from None
    local = (now or datetime.now(timezone.utc)).astimezone(zone)
    return int(local.utcoffset().total_seconds() // 60), local.date()


def _day(value) -> date:
    if isinstance(value, datetime):
        return value.date()
    if isinstance(value, date):
        return value
    return date.fromisoformat(str(value)[:10])


def render_trend(rows: Iterable[Sequence], topic_names: Mapping[str, str], days: int,
                 out: str | IO[bytes], *, end: date | None = None, title: str | None = None) -> int:
    """Draw the chart and write it as PNG to ``out`` (a path or a binary file object).

    ``rows`` are ``(day, topic, lang, stories)`` as ``Store.trend_counts`` returns
    them (``day`` an ISO date string or a date). ``topic_names`` maps the topic ids
    to show, in order, to their display names; rows of other topics are left out
    (an empty mapping shows every topic present in the rows). One panel per topic,
    stacked bars per day by language, over the ``days`` days ending at ``end``
    (default: the later of today in UTC and the newest row). With nothing to show
    the image says so. Returns the sum of the bars drawn (a story reported in two
    languages counts once in each).
    """
    if not 1 <= days <= MAX_DAYS:
        raise ValueError(f"trend: days must be between 1 and {MAX_DAYS}, not {days}")
    counts: dict[str, dict[str, dict[date, int]]] = defaultdict(lambda: defaultdict(dict))
    newest: date | None = None
    for row in rows:
        try:
            day_raw, topic, lang, n = row
            day, n = _day(day_raw), int(n)
        except (TypeError, ValueError) as exc:
            raise ValueError(f"trend: a row must be (day, topic, lang, stories), not {row!r}") from exc
        if n < 0:
            raise ValueError(f"trend: a negative count in row {row!r}")
        lang = lang if lang in LANGS else "other"
        counts[topic][lang][day] = counts[topic][lang].get(day, 0) + n
        newest = day if newest is None or day > newest else newest

    today = datetime.now(timezone.utc).date()
    end = end or max(today, newest or today)
    axis = [end - timedelta(days=days - 1 - i) for i in range(days)]
    names = dict(topic_names) if topic_names else {t: t for t in sorted(counts)}
    langs = [lang for lang in (*LANGS, "other") if any(lang in counts[t] for t in names)]
    total = sum(n for t in names for per_day in counts[t].values() for d, n in per_day.items() if d in axis)
    log.info("trend: topics=%d days=%d stories=%d", len(names), days, total)

    # Imported here on purpose: matplotlib costs a noticeable fraction of a second.
    from matplotlib.backends.backend_agg import FigureCanvasAgg
    from matplotlib.figure import Figure
    from matplotlib.ticker import MaxNLocator

    panels = max(1, len(names)) if total else 1
    fig = Figure(figsize=(WIDTH_IN, 1.0 + 2.4 * panels), dpi=DPI, layout="constrained")
    FigureCanvasAgg(fig)
    span = f"{days} day{'s' if days > 1 else ''}"
    heading = title or f"Matched stories per day, by language — last {span} to {end}"
    fig.suptitle(heading, fontsize=12)

    if total == 0:
        ax = fig.add_subplot(1, 1, 1)
        ax.set_axis_off()
        shown = ", ".join(names.values()) if names else "any topic"
        ax.text(0.5, 0.5, f"No matched stories for {shown}\nin the last {days} day{'s' if days > 1 else ''}.",
                ha="center", va="center", fontsize=13, color="#555555", wrap=True, transform=ax.transAxes)
    else:
        axes = fig.subplots(panels, 1, sharex=True, squeeze=False)[:, 0]
        x = list(range(days))
        step = max(1, days // 14)
        for ax, (topic, name) in zip(axes, names.items()):
            bottom = [0] * days
            for lang in langs:
                heights = [counts[topic].get(lang, {}).get(d, 0) for d in axis]
                ax.bar(x, heights, bottom=bottom, color=LANG_COLOURS[lang], width=0.8,
                       label=LANG_LABELS.get(lang, "other"))
                bottom = [b + h for b, h in zip(bottom, heights)]
            ax.set_title(name, loc="left", fontsize=11)
            ax.set_ylabel("stories")
            ax.yaxis.set_major_locator(MaxNLocator(integer=True))
            ax.set_ylim(0, max(1, max(bottom)) * 1.15)
            ax.grid(axis="y", alpha=0.3)
            ax.set_xticks(x[::step], [d.strftime("%d %b") for d in axis][::step], rotation=45, ha="right")
        axes[0].legend(loc="upper left", ncols=len(langs), fontsize=9, frameon=False)

    fig.savefig(out, format="png")
    return total
