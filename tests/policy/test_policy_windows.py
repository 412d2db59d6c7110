"""Reboot windows: days, across midnight, time zones, DST; checked against the wall clock."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta
from zoneinfo import ZoneInfo

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from vaquero.policy.windows import is_open, next_span
from vaquero.sot.models import ALL_DAYS, Window


def at(text: str) -> datetime:
    return datetime.fromisoformat(text).astimezone(UTC)


def win(start: str, end: str, days: tuple[str, ...] = ALL_DAYS, tz: str = "UTC") -> Window:
    return Window(days=list(days), start=start, end=end, timezone=tz)


def wall_open(w: Window, t: datetime) -> bool:
    """The definition, on the wall clock of the window's zone (the oracle)."""
    local = t.astimezone(ZoneInfo(w.timezone))
    minute = local.hour * 60 + local.minute
    s, e = Window.minutes(w.start), Window.minutes(w.end)
    days = {ALL_DAYS.index(d) for d in w.days}
    if s < e:
        return local.weekday() in days and s <= minute < e
    return (local.weekday() in days and minute >= s) or ((local.weekday() - 1) % 7 in days and minute < e)


def repeated(t: datetime, tz: str) -> bool:
    """True when the wall clock shows this local time twice (the hour clocks go back)."""
    naive = t.astimezone(ZoneInfo(tz)).replace(tzinfo=None)
    z = ZoneInfo(tz)
    return naive.replace(tzinfo=z, fold=0).utcoffset() != naive.replace(tzinfo=z, fold=1).utcoffset()


def test_no_windows_means_any_time():
    assert next_span([], at("2026-11-29T03:00:00+00:00")) is None
    assert is_open([], at("2026-11-29T03:00:00+00:00"))


def test_closed_day_waits_for_the_next_listed_day():
    w = win("02:00", "05:00", ("tue", "thu"))
    span = next_span([w], at("2026-11-29T02:43:00+00:00"))  # a Sunday
    assert span is not None and span.start == at("2026-12-01T02:00:00+00:00") and span.end == at("2026-12-01T05:00:00+00:00")
    assert span.describe_start() == "Tue 2026-12-01 02:00 UTC"
    assert not is_open([w], at("2026-12-01T05:00:00+00:00"))  # end is exclusive
    assert is_open([w], at("2026-12-01T04:59:00+00:00"))
    assert next_span([w], at("2026-12-01T05:00:00+00:00")).start == at("2026-12-03T02:00:00+00:00")  # type: ignore[union-attr]


def test_window_across_midnight_belongs_to_the_day_it_opens():
    w = win("22:00", "02:00", ("fri",), "Europe/Berlin")  # Fri 22:00 - Sat 02:00 CET (UTC+1)
    assert is_open([w], at("2026-11-28T00:30:00+01:00"))  # Saturday 00:30: opened on Friday
    assert not is_open([w], at("2026-11-28T02:00:00+01:00"))
    assert not is_open([w], at("2026-11-27T21:59:00+01:00"))
    assert not is_open([w], at("2026-11-29T00:30:00+01:00"))  # Sunday 00:30: no window opened on Saturday
    span = next_span([w], at("2026-11-27T21:59:00+01:00"))
    assert span is not None and span.start == at("2026-11-27T22:00:00+01:00") and span.end == at("2026-11-28T02:00:00+01:00")


def test_time_zone_of_the_window_is_used():
    w = win("02:00", "04:00", ("mon",), "Asia/Tokyo")  # Mon 02:00 JST = Sun 17:00 UTC
    span = next_span([w], at("2026-11-29T12:00:00+00:00"))
    assert span is not None and span.start == at("2026-11-29T17:00:00+00:00")
    assert span.describe_start() == "Mon 2026-11-30 02:00 Asia/Tokyo"


def test_overlapping_windows_merge():
    a, b = win("01:00", "03:00"), win("02:30", "04:00")
    span = next_span([a, b], at("2026-11-29T00:00:00+00:00"))
    assert span is not None and (span.start, span.end) == (at("2026-11-29T01:00:00+00:00"), at("2026-11-29T04:00:00+00:00"))


def test_naive_now_is_refused():
    with pytest.raises(ValueError, match="no time zone"):
        next_span([win("01:00", "02:00")], datetime(2026, 11, 29, 1, 30))


# --- DST: America/New_York springs forward 2026-03-08 02:00 EST, falls back 2026-11-01 02:00 EDT ---


def test_spring_forward_start_in_the_gap_opens_at_the_jump():
    w = win("02:00", "04:00", ("sun",), "America/New_York")
    span = next_span([w], at("2026-03-08T00:00:00-05:00"))
    assert span is not None
    assert span.start == at("2026-03-08T03:00:00-04:00")  # the jump: 02:00 EST does not exist
    assert span.end == at("2026-03-08T04:00:00-04:00")  # one real hour


def test_spring_forward_window_inside_the_gap_does_not_open_that_night():
    w = win("02:00", "02:30", ("sun",), "America/New_York")
    span = next_span([w], at("2026-03-08T00:00:00-05:00"))
    assert span is not None and span.start == at("2026-03-15T02:00:00-04:00")


def test_spring_forward_end_in_the_gap_closes_at_the_jump():
    w = win("01:00", "02:30", ("sun",), "America/New_York")
    span = next_span([w], at("2026-03-08T00:00:00-05:00"))
    assert span is not None and (span.start, span.end) == (at("2026-03-08T01:00:00-05:00"), at("2026-03-08T03:00:00-04:00"))


def test_fall_back_repeated_hour_never_opens_outside_the_wall_clock():
    # 00:30-03:00 covers both passes of 01:00-02:00: 3.5 real hours.
    w = win("00:30", "03:00", ("sun",), "America/New_York")
    span = next_span([w], at("2026-10-31T23:00:00-04:00"))
    assert span is not None and (span.start, span.end) == (at("2026-11-01T00:30:00-04:00"), at("2026-11-01T03:00:00-05:00"))
    # 01:30-03:00 opens at the second 01:30: at the second 01:00-01:29 the wall clock is outside it.
    w = win("01:30", "03:00", ("sun",), "America/New_York")
    span = next_span([w], at("2026-10-31T23:00:00-04:00"))
    assert span is not None and span.start == at("2026-11-01T01:30:00-05:00")
    assert not is_open([w], at("2026-11-01T01:10:00-05:00"))


def test_berlin_spring_forward_hour_is_empty():
    w = win("02:00", "03:00", ("sun",), "Europe/Berlin")  # 2026-03-29 02:00 CET -> 03:00 CEST
    span = next_span([w], at("2026-03-28T12:00:00+01:00"))
    assert span is not None and span.start == at("2026-04-05T02:00:00+02:00")


ZONES = ["UTC", "Europe/Berlin", "America/New_York", "Asia/Kolkata", "Australia/Lord_Howe", "America/Sao_Paulo", "Pacific/Chatham"]
clocks = st.builds(lambda h, m: f"{h:02d}:{m:02d}", st.integers(0, 23), st.sampled_from([0, 15, 30, 45]))
windows = st.builds(
    lambda days, span, tz: win(span[0], span[1], tuple(d for d in ALL_DAYS if d in days), tz),
    st.sets(st.sampled_from(ALL_DAYS), min_size=1),
    st.tuples(clocks, clocks).filter(lambda p: p[0] != p[1]),
    st.sampled_from(ZONES),
)
# Times in 2026, biased towards the DST nights of the zones above.
nights = [at(x) for x in ("2026-03-08T07:00:00+00:00", "2026-11-01T06:00:00+00:00", "2026-03-29T01:00:00+00:00", "2026-10-25T01:00:00+00:00")]
instants = st.one_of(
    st.integers(0, 365 * 24 * 60).map(lambda m: at("2026-01-01T00:00:00+00:00") + timedelta(minutes=m)),
    st.tuples(st.sampled_from(nights), st.integers(-36 * 60, 36 * 60)).map(lambda p: p[0] + timedelta(minutes=p[1])),
)


@settings(max_examples=150, deadline=None)
@given(st.lists(windows, min_size=1, max_size=3), instants)
def test_next_span_agrees_with_the_wall_clock(ws, now):
    span = next_span(ws, now)
    assert span is not None and span.end > now and span.start < span.end
    open_now = span.contains(now)
    # Never open while the wall clock is outside every window; open whenever it is inside one,
    # except in an hour the clock repeats (counted once, see windows.py).
    assert not open_now or any(wall_open(w, now) for w in ws)
    if not any(repeated(now, w.timezone) for w in ws):
        assert open_now == any(wall_open(w, now) for w in ws)
    if not open_now:
        assert span.start > now
        assert any(wall_open(w, span.start) for w in ws)
        t = now
        while t < span.start:  # nothing opens in between (up to the conservative repeated hour)
            assert not any(wall_open(w, t) for w in ws) or any(repeated(t, w.timezone) for w in ws)
            t += timedelta(minutes=15)
    assert any(wall_open(w, span.end - timedelta(seconds=1)) for w in ws)
