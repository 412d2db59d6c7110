"""Reboot windows: when is a cluster's window open, and when does it open next.

A window (``Window`` in the SoT) is ``days``, ``start``, ``end`` and ``timezone``; ``days`` are
the days on which the window *opens*, in its own time zone. When ``end <= start`` the window
crosses midnight and closes on the next day (``days: [fri], start: "22:00", end: "02:00"`` is
open from Friday 22:00 to Saturday 02:00).

The rule is the wall clock of the window's time zone, and it never errs on the open side:
- on the night clocks go forward, a start or end that does not exist moves to the instant the
  clocks jump (a 02:00-04:00 window on that night is open 03:00-04:00 local, one real hour; a
  02:00-02:30 window does not open that night);
- on the night clocks go back, a start that occurs twice means its last occurrence and an end its
  first, so a window is never open while the wall clock reads outside it (00:30-03:00 is open
  through both passes of the repeated hour; 01:00-03:00 opens at the second 01:00; 01:00-01:30,
  inside the repeated hour, does not open that night).

All instants are timezone-aware datetimes; results are in UTC.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from datetime import UTC, date, datetime, time, timedelta
from functools import cache
from zoneinfo import ZoneInfo

from ..sot.models import ALL_DAYS, Window


@dataclass(frozen=True)
class Span:
    """One opening of a window: open from ``start`` (inclusive) to ``end`` (exclusive), in UTC.

    Overlapping or touching openings of several windows are merged into one span; ``window`` is
    the one whose opening starts the span.
    """

    start: datetime
    end: datetime
    window: Window

    def contains(self, now: datetime) -> bool:
        return self.start <= now < self.end

    def describe_start(self) -> str:
        """'Tue 02:00 UTC': when the span opens, on the window's own clock."""
        return _describe(self.start, self.window.timezone)

    def describe_end(self) -> str:
        return _describe(self.end, self.window.timezone)


def _describe(at: datetime, tz: str) -> str:
    local = at.astimezone(_zone(tz))
    return f"{local:%a} {local:%Y-%m-%d %H:%M} {tz}"


@cache
def _zone(name: str) -> ZoneInfo:
    return ZoneInfo(name)


def _aware(now: datetime) -> datetime:
    if now.tzinfo is None or now.utcoffset() is None:
        raise ValueError(f"{now!r} has no time zone: give an aware datetime (e.g. 2026-11-29T02:00:00+00:00)")
    return now.astimezone(UTC)


def local_to_utc(day: date, clock: time, tz: ZoneInfo, last: bool = False) -> datetime:
    """The instant the wall clock of `tz` shows `day clock`.

    A time in a gap (clocks go forward) maps to the jump; a time that occurs twice (clocks go
    back) maps to its first occurrence, or its last with `last=True`.
    """
    naive = datetime.combine(day, clock)
    u0 = naive.replace(tzinfo=tz, fold=0).astimezone(UTC)
    u1 = naive.replace(tzinfo=tz, fold=1).astimezone(UTC)
    if u0 <= u1:  # exists: once (equal) or twice (u0 < u1)
        return u1 if last else u0
    # In a gap: fold=1 maps before the jump, fold=0 after it. Find the jump: the first instant
    # whose wall clock reads `naive` or later. Wall time is monotone inside [u1, u0].
    lo, hi = int(u1.timestamp()), int(u0.timestamp())
    while hi - lo > 1:  # zone transitions fall on whole seconds
        mid = (lo + hi) // 2
        if datetime.fromtimestamp(mid, tz).replace(tzinfo=None) >= naive:
            hi = mid
        else:
            lo = mid
    return datetime.fromtimestamp(hi, UTC)


def _clock(value: str) -> time:
    hours, minutes = value.split(":")
    return time(int(hours), int(minutes))


def openings(window: Window, since: datetime, days: int = 9) -> list[tuple[datetime, datetime]]:
    """The window's non-empty openings [start, end) in UTC for local dates from the day before `since` on."""
    tz = _zone(window.timezone)
    first_day = _aware(since).astimezone(tz).date() - timedelta(days=1)
    start, end = _clock(window.start), _clock(window.end)
    crosses = window.end <= window.start
    wanted = {ALL_DAYS.index(d) for d in window.days}
    spans = []
    for i in range(days + 1):
        day = first_day + timedelta(days=i)
        if day.weekday() not in wanted:
            continue
        a = local_to_utc(day, start, tz, last=True)
        b = local_to_utc(day + timedelta(days=1) if crosses else day, end, tz)
        if a < b:
            spans.append((a, b))
    return spans


def next_span(windows: Sequence[Window], now: datetime) -> Span | None:
    """The span open at `now`, or else the next one to open. None when `windows` is empty (any time).

    A window opens at least once a week, so with windows given there is always an answer.
    """
    if not windows:
        return None
    now = _aware(now)
    found: list[tuple[datetime, datetime, int]] = []
    for i, window in enumerate(windows):
        found.extend((a, b, i) for a, b in openings(window, now))
    found.sort()
    merged: list[tuple[datetime, datetime, int]] = []
    for a, b, i in found:
        if merged and a <= merged[-1][1]:
            if b > merged[-1][1]:
                merged[-1] = (merged[-1][0], b, merged[-1][2])
        else:
            merged.append((a, b, i))
    for a, b, i in merged:
        if b > now:
            return Span(a, b, windows[i])
    raise AssertionError("a window opens at least once a week")  # pragma: no cover


def is_open(windows: Sequence[Window], now: datetime) -> bool:
    span = next_span(windows, now)
    return span is None or span.contains(_aware(now))


def describe(window: Window) -> str:
    """'tue,thu 02:00-05:00 UTC' as written in the SoT."""
    days = "every day" if list(window.days) == list(ALL_DAYS) else ",".join(window.days)
    return f"{days} {window.start}-{window.end} {window.timezone}"
