"""Calendar windows (pure): an instant's window contains it, and the keys of one period sort in
time order as text (the data plane's leases rely on that to tell a later window)."""

from __future__ import annotations

from hypothesis import given
from hypothesis import strategies as st

from shared import windows

ZONES = ("UTC", "Europe/Paris", "America/New_York", "Asia/Kolkata", "Australia/Lord_Howe")
CALENDAR = (windows.MINUTE, windows.DAY, windows.WEEK, windows.MONTH)


@given(
    period=st.sampled_from(CALENDAR),
    time_zone=st.sampled_from(ZONES),
    unix_ms=st.integers(946_684_800_000, 4_102_444_800_000),  # 2000 to 2100
)
def test_a_window_contains_its_instant_and_keys_sort_in_time_order(
    period: str, time_zone: str, unix_ms: int
) -> None:
    """Instants in milliseconds, as usage records carry them (datetime rounds an instant to
    the microsecond, so one within half a microsecond of a turn falls in the next window)."""
    unix = unix_ms / 1000
    tz = windows.zone(period, time_zone)
    key, start, end = windows.window_in(period, tz, unix)
    assert start <= unix < end
    assert windows.window_in(period, tz, start)[0] == key
    before, after = (
        windows.window_in(period, tz, start - 0.001)[0],
        windows.window_in(period, tz, end)[0],
    )
    assert before < key < after
    assert windows.window_of(period, time_zone, unix) == (key, end)


def test_the_window_that_never_ends() -> None:
    assert windows.window_in(windows.NONE, windows.zone(windows.NONE, "UTC"), 1e9) == ("all", 0, 0)
