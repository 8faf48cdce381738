from datetime import datetime, timezone

import pytest

from bot.clock import next_daily, previous_daily, quiet_until

UTC = timezone.utc


def u(*args):
    return datetime(*args, tzinfo=UTC)


@pytest.mark.parametrize("hhmm, tz, after, expected", [
    # Almaty is UTC+5 all year
    ("08:00", "Asia/Almaty", u(2026, 5, 1, 2, 59), u(2026, 5, 1, 3, 0)),
    ("08:00", "Asia/Almaty", u(2026, 5, 1, 3, 0), u(2026, 5, 2, 3, 0)),   # strictly after
    ("00:00", "Asia/Almaty", u(2026, 12, 31, 18, 59), u(2026, 12, 31, 19, 0)),
    # New York, spring forward 2026-03-08 02:00 -> 03:00: 02:30 does not exist, happens at 03:30 EDT
    ("02:30", "America/New_York", u(2026, 3, 8, 0, 0), u(2026, 3, 8, 7, 30)),
    ("08:00", "America/New_York", u(2026, 3, 7, 14, 0), u(2026, 3, 8, 12, 0)),  # EDT after the change
    ("08:00", "America/New_York", u(2026, 3, 6, 14, 0), u(2026, 3, 7, 13, 0)),  # EST before it
    # fall back 2026-11-01 02:00 -> 01:00: 01:30 happens twice, the digest goes once (the first)
    ("01:30", "America/New_York", u(2026, 11, 1, 4, 0), u(2026, 11, 1, 5, 30)),
    ("01:30", "America/New_York", u(2026, 11, 1, 5, 30), u(2026, 11, 2, 6, 30)),
    # Europe/London, 2026-03-29 01:00 -> 02:00
    ("01:30", "Europe/London", u(2026, 3, 28, 23, 0), u(2026, 3, 29, 1, 30)),  # 01:30 missing: 02:30 BST
])
def test_next_daily(hhmm, tz, after, expected):
    assert next_daily(hhmm, tz, after) == expected


def test_next_daily_is_once_a_day_across_a_year():
    t = u(2026, 1, 1)
    seen = []
    for _ in range(365):
        t = next_daily("01:30", "America/New_York", t)
        seen.append(t)
    from zoneinfo import ZoneInfo
    local_days = [s.astimezone(ZoneInfo("America/New_York")).date() for s in seen]
    assert len(set(local_days)) == 365  # one a day, never two on the same local day
    gaps = {(b - a).total_seconds() / 3600 for a, b in zip(seen, seen[1:])}
    assert gaps == {23.0, 24.0, 25.0}


@pytest.mark.parametrize("now, expected", [
    (u(2026, 5, 1, 2, 59), u(2026, 4, 30, 3, 0)),
    (u(2026, 5, 1, 3, 0), u(2026, 5, 1, 3, 0)),
])
def test_previous_daily(now, expected):
    assert previous_daily("08:00", "Asia/Almaty", now) == expected


@pytest.mark.parametrize("start, end, now, expected", [
    ("23:00", "07:00", u(2026, 5, 1, 18, 30), u(2026, 5, 2, 2, 0)),   # 23:30 Almaty: quiet until 07:00
    ("23:00", "07:00", u(2026, 5, 1, 1, 0), u(2026, 5, 1, 2, 0)),     # 06:00 Almaty
    ("23:00", "07:00", u(2026, 5, 1, 2, 0), None),                    # 07:00 exactly: over
    ("12:00", "13:00", u(2026, 5, 1, 7, 15), u(2026, 5, 1, 8, 0)),
    ("12:00", "13:00", u(2026, 5, 1, 6, 59), None),
    (None, None, u(2026, 5, 1, 7, 15), None),
    ("10:00", "10:00", u(2026, 5, 1, 5, 0), None),
])
def test_quiet_until(start, end, now, expected):
    assert quiet_until(start, end, "Asia/Almaty", now) == expected
