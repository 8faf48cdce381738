"""The trend query on a real SQLite file, and the PNG it turns into."""

from __future__ import annotations

import io
import struct
from collections import defaultdict
from datetime import datetime, timedelta, timezone

import numpy as np
import pytest
from PIL import Image

from bot.models import Item, Match
from bot.trend import LANG_COLOURS, local_day, render_trend

NOW = datetime(2026, 3, 18, 12, 0, tzinfo=timezone.utc)
TOPICS = {"kz-unrest": "Unrest in Kazakhstan", "csto-deployment": "CSTO troop deployments",
          "internet-shutdown": "Internet shutdowns"}

# (hours before NOW, lang, story key or None, topics matched)
REPORTS = [
    (2, "en", "s1", ["kz-unrest"]),
    (3, "ru", "s1", ["kz-unrest"]),
    (4, "kk", "s1", ["kz-unrest"]),
    (5, "ru", "s1", ["kz-unrest"]),               # a second Russian report of the same story
    (6, "en", "s2", ["kz-unrest", "internet-shutdown"]),
    (30, "ru", "s3", ["csto-deployment"]),
    (31, "kk", "s3", ["csto-deployment"]),
    (33, "en", None, ["csto-deployment"]),        # not yet in a story: counts on its own
    (34, "en", None, ["csto-deployment"]),
    (80, "ru", "s4", ["internet-shutdown"]),
    (82, "kk", "s5", ["watch:7"]),                # a reader's watch word: not a topic
    (84, "en", "s6", []),                         # matched nothing
    (24 * 20, "en", "s7", ["kz-unrest"]),         # outside a 14-day window
    (-48, "en", "s8", ["kz-unrest"]),             # dated in the future
]


def fill(store, reports=REPORTS, now=NOW):
    feed = store.add_feed("https://feed.example.org/rss", "en", "Example", now=now)
    story_ids: dict[str, int] = {}
    for n, (hours, lang, story, topics) in enumerate(reports):
        when = now - timedelta(hours=hours)
        if story is not None and story not in story_ids:
            cur = store.conn.execute(
                "INSERT INTO stories(first_seen, last_seen, headline, headline_lang) VALUES (?, ?, ?, ?)",
                (when.isoformat(), when.isoformat(), f"story {story}", lang))
            story_ids[story] = cur.lastrowid
        item = Item(feed_id=feed.id, key=f"k{n}", url=f"https://feed.example.org/{n}", title=f"title {n}",
                    summary="", lang=lang, published=when, fetched=now, content_hash=f"h{n}",
                    story_id=story_ids.get(story))
        with store.conn:
            item_id = store.insert_item(item)
            store.save_matches(item_id, [Match(topic=t, score=1.0, terms=["x"]) for t in topics])
    return story_ids


def expected_counts(reports, days, offset_hours=0, now=NOW):
    """The same question answered by hand from the list above."""
    local_today = (now + timedelta(hours=offset_hours)).date()
    first = local_today - timedelta(days=days - 1)
    seen = defaultdict(set)
    for n, (hours, lang, story, topics) in enumerate(reports):
        day = (now - timedelta(hours=hours) + timedelta(hours=offset_hours)).date()
        if not first <= day <= local_today:
            continue
        for t in topics:
            if not t.startswith("watch:"):
                seen[(day.isoformat(), t, lang)].add(story or f"item{n}")
    return sorted((d, t, lang, len(s)) for (d, t, lang), s in seen.items())


@pytest.mark.parametrize("days,offset_hours", [(14, 0), (14, 5), (2, 0), (1, 5), (30, 0)])
def test_trend_counts_distinct_stories_per_day_topic_language(store, days, offset_hours):
    fill(store)
    rows = store.trend_counts(days, now=NOW, utc_offset_minutes=offset_hours * 60)
    assert rows == expected_counts(REPORTS, days, offset_hours)
    assert all(not topic.startswith("watch:") for _, topic, _, _ in rows)


def test_local_day_boundary_moves_items_across_midnight(store):
    late = [(NOW.hour - 20 + 24, "en", "late", ["kz-unrest"])]  # 20:00 UTC the day before NOW
    fill(store, late)
    (utc_day, *_), = store.trend_counts(3, now=NOW)
    (almaty_day, *_), = store.trend_counts(3, now=NOW, utc_offset_minutes=300)
    assert utc_day == "2026-03-17" and almaty_day == "2026-03-18"


def test_trend_counts_filters_topics_and_validates_days(store):
    fill(store)
    rows = store.trend_counts(14, now=NOW, topics=["csto-deployment"])
    assert rows and {r[1] for r in rows} == {"csto-deployment"}
    assert store.trend_counts(14, now=NOW, topics=[]) == []
    with pytest.raises(ValueError, match="days must be at least 1"):
        store.trend_counts(0, now=NOW)


def png_info(data: bytes) -> tuple[int, int]:
    assert data[:8] == b"\x89PNG\r\n\x1a\n"
    assert data[12:16] == b"IHDR"
    return struct.unpack(">II", data[16:24])


def colour_pixels(data: bytes, hex_colour: str) -> int:
    """How many pixels are (almost exactly) this colour."""
    target = np.array([int(hex_colour[i:i + 2], 16) for i in (1, 3, 5)], dtype=np.int16)
    pixels = np.asarray(Image.open(io.BytesIO(data)).convert("RGB"), dtype=np.int16)
    return int((np.abs(pixels - target) <= 2).all(axis=2).sum())


def test_png_from_real_data_is_sane_and_shows_each_language(store, tmp_path):
    fill(store)
    rows = store.trend_counts(14, now=NOW)
    out = tmp_path / "trend.png"
    drawn = render_trend(rows, TOPICS, 14, out, end=NOW.date())
    data = out.read_bytes()
    width, height = png_info(data)
    assert (width, height) == (1000, round((1.0 + 2.4 * len(TOPICS)) * 100))
    assert len(data) > 20_000  # axes, bars, labels: far more than a blank canvas
    assert drawn == sum(n for _, _, _, n in rows)
    for lang in ("en", "ru", "kk"):
        assert colour_pixels(data, LANG_COLOURS[lang]) > 50, lang


def test_a_language_with_no_stories_has_no_bars(store):
    fill(store, [r for r in REPORTS if r[1] != "kk"])
    buf = io.BytesIO()
    render_trend(store.trend_counts(14, now=NOW), TOPICS, 14, buf, end=NOW.date())
    data = buf.getvalue()
    png_info(data)
    assert colour_pixels(data, LANG_COLOURS["kk"]) == 0
    assert colour_pixels(data, LANG_COLOURS["en"]) > 50


def test_one_topic_chart_is_one_panel(store):
    fill(store)
    buf = io.BytesIO()
    drawn = render_trend(store.trend_counts(14, now=NOW, topics=["kz-unrest"]),
                         {"kz-unrest": TOPICS["kz-unrest"]}, 14, buf, end=NOW.date())
    assert png_info(buf.getvalue()) == (1000, 340)
    assert drawn == sum(n for _, t, _, n in expected_counts(REPORTS, 14) if t == "kz-unrest")


def test_empty_database_gives_a_valid_no_data_chart(store, tmp_path):
    rows = store.trend_counts(7, now=NOW)
    assert rows == []
    out = tmp_path / "empty.png"
    assert render_trend(rows, TOPICS, 7, out, end=NOW.date()) == 0
    data = out.read_bytes()
    assert png_info(data) == (1000, 340)  # one panel's height, whatever the number of topics
    img = Image.open(io.BytesIO(data))
    img.verify()
    for colour in LANG_COLOURS.values():
        assert colour_pixels(data, colour) == 0
    # some dark text was drawn on the white canvas
    grey = np.asarray(Image.open(io.BytesIO(data)).convert("L"))
    assert grey.min() < 128


def test_rows_outside_the_window_and_unknown_topics_are_not_drawn():
    rows = [("2026-01-01", "kz-unrest", "en", 5), ("2026-03-17", "other-topic", "ru", 3)]
    buf = io.BytesIO()
    assert render_trend(rows, TOPICS, 14, buf, end=NOW.date()) == 0
    png_info(buf.getvalue())


@pytest.mark.parametrize("rows,days,message", [
    ([("2026-03-17", "kz-unrest", "en")], 7, "a row must be"),
    ([("not a date", "kz-unrest", "en", 1)], 7, "a row must be"),
    ([("2026-03-17", "kz-unrest", "en", -1)], 7, "negative count"),
    ([], 0, "days must be between"),
    ([], 1000, "days must be between"),
])
def test_bad_input_is_a_clear_error(rows, days, message):
    with pytest.raises(ValueError, match=message):
        render_trend(rows, TOPICS, days, io.BytesIO())


def test_matplotlib_is_not_imported_by_importing_the_module():
    import subprocess
    import sys

    code = "import sys, bot.trend; print('matplotlib' in sys.modules)"
    result = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True)
    assert result.stdout.strip() == "False"


@pytest.mark.parametrize("tz,now,expected", [
    ("Asia/Almaty", datetime(2026, 3, 18, 20, 0, tzinfo=timezone.utc), (300, "2026-03-19")),
    ("UTC", datetime(2026, 3, 18, 20, 0, tzinfo=timezone.utc), (0, "2026-03-18")),
    ("Europe/Moscow", datetime(2026, 3, 18, 22, 30, tzinfo=timezone.utc), (180, "2026-03-19")),
    ("America/New_York", datetime(2026, 7, 1, 2, 0, tzinfo=timezone.utc), (-240, "2026-06-30")),
])
def test_local_day_gives_the_offset_and_date_for_the_query_and_the_chart(tz, now, expected):
    offset, day = local_day(tz, now)
    assert (offset, day.isoformat()) == expected


def test_local_day_rejects_an_unknown_zone():
    with pytest.raises(ValueError, match="unknown time zone"):
        local_day("Mars/Olympus")


def test_trend_rows_is_trend_counts_for_one_topic_or_all(store):
    fill(store)
    assert store.trend_rows(14, now=NOW) == store.trend_counts(14, now=NOW)
    assert store.trend_rows(14, topic="kz-unrest", now=NOW, utc_offset_minutes=300) == \
        store.trend_counts(14, now=NOW, topics=["kz-unrest"], utc_offset_minutes=300)
