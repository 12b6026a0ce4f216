"""Limit windows: which calendar window an instant falls in, for both planes (pure).

Budgets are aligned to the calendar of their time zone (a day starts at local midnight, a week
on Monday, a month on the 1st); rate limits use UTC minutes. A window is named by a stable key
("2026-11-25", "2026-W48", "2026-11", "2026-11-25T07:38", "all"); the keys of one period sort
in time order as text.
"""

from __future__ import annotations

from datetime import UTC, datetime, timedelta, tzinfo
from zoneinfo import ZoneInfo

MINUTE, DAY, WEEK, MONTH, NONE = "minute", "day", "week", "month", "none"
PERIODS = (MINUTE, DAY, WEEK, MONTH, NONE)


def zone(period: str, time_zone: str) -> tzinfo:
    """The time zone a window of ``period`` follows. A calendar period's zone is read from the
    time-zone database the first time it is named (a file read: a server resolves its zones
    once, off the request path, and passes them to ``window_in``). Raises
    ``zoneinfo.ZoneInfoNotFoundError`` or ``ValueError`` for a name it does not know."""
    return UTC if period in (MINUTE, NONE) else ZoneInfo(time_zone or "UTC")


def window_of(period: str, time_zone: str, now_unix: float) -> tuple[str, float]:
    """(window key, end of the window in Unix seconds; 0 for a window that never ends)."""
    key, _, end = window_in(period, zone(period, time_zone), now_unix)
    return key, end


def window_in(period: str, tz: tzinfo, now_unix: float) -> tuple[str, float, float]:
    """(window key, start, end), with the time zone already resolved by ``zone`` (no I/O);
    0, 0 for a window that never ends."""
    if period == NONE:
        return "all", 0.0, 0.0
    if period == MINUTE:
        tz = UTC  # rate limits count UTC minutes, whatever zone they were given
    now = datetime.fromtimestamp(now_unix, tz)
    if period == MINUTE:
        start = now.replace(second=0, microsecond=0)
        return (
            start.strftime("%Y-%m-%dT%H:%M"),
            start.timestamp(),
            (start + timedelta(minutes=1)).timestamp(),
        )
    day = now.replace(hour=0, minute=0, second=0, microsecond=0, tzinfo=None)
    if period == DAY:
        start, end = day, day + timedelta(days=1)
        key = start.strftime("%Y-%m-%d")
    elif period == WEEK:
        start = day - timedelta(days=day.weekday())
        end = start + timedelta(days=7)
        year, week, _ = start.isocalendar()
        key = f"{year}-W{week:02d}"
    elif period == MONTH:
        start = day.replace(day=1)
        end = (start + timedelta(days=32)).replace(day=1)
        key = start.strftime("%Y-%m")
    else:
        raise ValueError(f"unknown period {period!r}")
    # Local wall-clock midnight to an instant (handles daylight-saving changes).
    return key, start.replace(tzinfo=tz).timestamp(), end.replace(tzinfo=tz).timestamp()
