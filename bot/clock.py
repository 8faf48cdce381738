"""Local-time arithmetic for readers: digest times and quiet hours.

Readers give wall-clock times ("08:00") in their own IANA time zone. These
functions turn them into UTC instants correctly across DST changes:

- a time that does not exist on a spring-forward day (02:30 when clocks jump
  from 02:00 to 03:00) happens at the equivalent instant after the jump (03:30);
- a time that happens twice on a fall-back day happens once, the first time.

Pure functions; the clock is always passed in.
"""

from __future__ import annotations

from datetime import datetime, time, timedelta, timezone
from zoneinfo import ZoneInfo


def parse_hhmm(text: str) -> time:
    hours, minutes = text.split(":")
    return time(int(hours), int(minutes))


def local_instant(day, at: time, tz: ZoneInfo) -> datetime:
    """The UTC instant of wall-clock ``at`` on ``day`` in ``tz`` (first one when ambiguous)."""
    return datetime(day.year, day.month, day.day, at.hour, at.minute, tzinfo=tz, fold=0).astimezone(timezone.utc)


def next_daily(hhmm: str, tz_name: str, after: datetime) -> datetime:
    """The first instant strictly after ``after`` when the local clock shows ``hhmm``."""
    tz = ZoneInfo(tz_name)
    at = parse_hhmm(hhmm)
    day = after.astimezone(tz).date() - timedelta(days=1)
    for _ in range(4):
        candidate = local_instant(day, at, tz)
        if candidate > after:
            return candidate
        day += timedelta(days=1)
    raise AssertionError("unreachable: a daily time always occurs within two days")


def previous_daily(hhmm: str, tz_name: str, at_or_before: datetime) -> datetime:
    """The last instant at or before ``at_or_before`` when the local clock showed ``hhmm``."""
    tz = ZoneInfo(tz_name)
    at = parse_hhmm(hhmm)
    day = at_or_before.astimezone(tz).date() + timedelta(days=1)
    for _ in range(4):
        candidate = local_instant(day, at, tz)
        if candidate <= at_or_before:
            return candidate
        day -= timedelta(days=1)
    raise AssertionError("unreachable: a daily time always occurs within two days")


def quiet_until(start: str | None, end: str | None, tz_name: str, now: datetime) -> datetime | None:
    """When quiet hours covering ``now`` end (UTC), or None when ``now`` is not quiet.

    ``start``/``end`` are local HH:MM; a window may wrap midnight (23:00-07:00).
    Equal start and end mean no quiet hours.
    """
    if not start or not end or start == end:
        return None
    tz = ZoneInfo(tz_name)
    local_now = now.astimezone(tz)
    s, e = parse_hhmm(start), parse_hhmm(end)
    t = local_now.time().replace(second=0, microsecond=0, tzinfo=None)
    quiet = (s <= t < e) if s < e else (t >= s or t < e)
    if not quiet:
        return None
    return next_daily(end, tz_name, now)
