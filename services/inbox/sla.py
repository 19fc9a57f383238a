"""Inbox SLA: when a first or next response is due, counted in a brand's business hours.

Pure domain code (no I/O): the service stores the due times it computes and asks for the state.
"""

from __future__ import annotations

from collections.abc import Container, Iterator, Mapping, Sequence
from dataclasses import dataclass, field
from datetime import UTC, date, datetime, time, timedelta
from typing import Literal
from zoneinfo import ZoneInfo

from services.inbox.triage import PriorityLevel

SlaState = Literal["ok", "near_breach", "breached"]

# Lowest to highest: escalation moves an item one step to the right.
PRIORITY_LEVELS: tuple[PriorityLevel, ...] = ("low", "normal", "high", "urgent")

# A calendar without one window in this many consecutive days is treated as closed for good,
# rather than looping forever (e.g. a holiday container that claims every date).
_MAX_CLOSED_DAYS = 3 * 366

Window = tuple[time, time]


@dataclass(frozen=True)
class BusinessHours:
    """A brand's opening hours in one IANA time zone.

    `week` maps a weekday (0 = Monday … 6 = Sunday, as `date.weekday()`) to that day's windows of
    local wall-clock time, each `(start, end)` with `start < end`; an `end` of `time(0)` means
    midnight at the end of the day. Days missing from `week` are closed. `holidays` holds local
    dates that are closed whatever the weekday; any `Container[date]` works (a set, or a
    country-holiday calendar object).
    """

    zone: str
    week: Mapping[int, Sequence[Window]]
    holidays: Container[date] = frozenset()
    _tz: ZoneInfo = field(init=False, repr=False, compare=False)
    _days: tuple[tuple[Window, ...], ...] = field(init=False, repr=False, compare=False)

    def __post_init__(self) -> None:
        tz = ZoneInfo(self.zone)  # raises ZoneInfoNotFoundError for an unknown zone
        days: list[tuple[Window, ...]] = []
        for weekday in self.week:
            if weekday not in range(7):
                raise ValueError(f"weekday must be 0 (Monday) to 6 (Sunday), got {weekday}")
        for weekday in range(7):
            windows = tuple(sorted(self.week.get(weekday, ())))
            for index, (start, end) in enumerate(windows):
                if start.tzinfo is not None or end.tzinfo is not None:
                    raise ValueError("business hours are local wall-clock times, without tzinfo")
                if end != time(0) and end <= start:
                    raise ValueError(f"window {start}-{end} ends before it starts")
                if index > 0:
                    previous_end = windows[index - 1][1]
                    # An end of time(0) is midnight at the close of the day: nothing may follow.
                    if previous_end == time(0) or start < previous_end:
                        raise ValueError(f"windows overlap on weekday {weekday}")
            days.append(windows)
        if not any(days):
            raise ValueError("business hours need at least one open window in the week")
        object.__setattr__(self, "_tz", tz)
        object.__setattr__(self, "_days", tuple(days))

    @classmethod
    def weekdays(
        cls,
        zone: str,
        start: time = time(9),
        end: time = time(17),
        holidays: Container[date] = frozenset(),
    ) -> BusinessHours:
        """Monday to Friday, one window a day: the common office calendar."""
        return cls(zone=zone, week={d: [(start, end)] for d in range(5)}, holidays=holidays)

    @property
    def tz(self) -> ZoneInfo:
        return self._tz

    def windows_on(self, day: date) -> list[tuple[datetime, datetime]]:
        """The open intervals of one local date, as UTC instants (empty on a holiday)."""
        if day in self.holidays:
            return []
        intervals = []
        for start, end in self._days[day.weekday()]:
            start_at = _instant(day, start, self._tz)
            end_day = day + timedelta(days=1) if end == time(0) else day
            end_at = _instant(end_day, end, self._tz)
            # A window lying wholly in a spring-forward gap has no real time in it.
            if end_at > start_at:
                intervals.append((start_at, end_at))
        return intervals

    def open_intervals(self, since: datetime) -> Iterator[tuple[datetime, datetime]]:
        """Open intervals, in order, from the local day holding `since` onward (endless)."""
        day = since.astimezone(self._tz).date()
        closed_days = 0
        while True:
            intervals = self.windows_on(day)
            closed_days = 0 if intervals else closed_days + 1
            if closed_days > _MAX_CLOSED_DAYS:
                raise ValueError(f"no open business hours in {_MAX_CLOSED_DAYS} days after {day}")
            yield from intervals
            day += timedelta(days=1)


def _instant(day: date, wall: time, tz: ZoneInfo) -> datetime:
    """The first instant the local clock reads `wall` on `day`, in UTC.

    A repeated fall-back time resolves to its first occurrence (fold=0), so adjacent windows
    never overlap. A time skipped by spring-forward never shows on the clock: it resolves to the
    transition itself, the first instant whose wall clock is at or past it.
    """
    local = datetime.combine(day, wall, tzinfo=tz)
    at = local.astimezone(UTC)
    if at.astimezone(tz).replace(tzinfo=None) == local.replace(tzinfo=None):
        return at
    # In a gap fold=1 maps with the offset after the transition: an instant before it. zoneinfo
    # does not expose transition instants, so bisect on whole seconds (tzdata's resolution).
    before = int(local.replace(fold=1).astimezone(UTC).timestamp())
    after = int(at.timestamp())
    offset_after = at.astimezone(tz).utcoffset()
    while after - before > 1:
        middle = (before + after) // 2
        if datetime.fromtimestamp(middle, tz).utcoffset() == offset_after:
            after = middle
        else:
            before = middle
    return datetime.fromtimestamp(after, UTC)


def _require_aware(name: str, value: datetime) -> None:
    if value.tzinfo is None or value.utcoffset() is None:
        raise ValueError(f"{name} must be timezone-aware")


def due_at(start: datetime, duration: timedelta, hours: BusinessHours | None) -> datetime:
    """The instant (UTC) when `duration` of business time has passed since `start`.

    With `hours=None` the clock runs around the clock. A due time may fall exactly at the close
    of a window (8 h from Monday 09:00 in a 09:00-17:00 week is Monday 17:00, not Tuesday).
    """
    _require_aware("start", start)
    if duration < timedelta(0):
        raise ValueError("duration must not be negative")
    begin = start.astimezone(UTC)  # aware + timedelta in a ZoneInfo zone is wall-clock arithmetic
    if hours is None or duration == timedelta(0):
        return begin + duration
    remaining = duration
    for opens, closes in hours.open_intervals(begin):
        if closes <= begin:
            continue
        counted_from = max(opens, begin)
        available = closes - counted_from
        if remaining <= available:
            return counted_from + remaining
        remaining -= available
    raise AssertionError("open_intervals is endless")  # pragma: no cover


def business_time_between(a: datetime, b: datetime, hours: BusinessHours | None) -> timedelta:
    """Business time from `a` to `b`; negative when `b` is before `a`."""
    _require_aware("a", a)
    _require_aware("b", b)
    begin, end = a.astimezone(UTC), b.astimezone(UTC)
    if end < begin:
        return -business_time_between(b, a, hours)
    if hours is None:
        return end - begin
    total = timedelta(0)
    for opens, closes in hours.open_intervals(begin):
        if opens >= end:
            break
        overlap = min(closes, end) - max(opens, begin)
        if overlap > timedelta(0):
            total += overlap
    return total


def sla_state(
    due: datetime,
    started: datetime,
    now: datetime,
    near_fraction: float,
    *,
    hours: BusinessHours | None = None,
) -> SlaState:
    """Whether a clock that ran from `started` to `due` is fine, close to running out, or out.

    Answering exactly at `due` meets the SLA. The near-breach share is measured in business time
    when `hours` is given, so an item due Monday morning does not turn amber over the weekend.
    """
    if not 0 < near_fraction <= 1:
        raise ValueError("near_fraction must be in (0, 1]")
    for name, value in (("due", due), ("started", started), ("now", now)):
        _require_aware(name, value)
    if now > due:
        return "breached"
    budget = business_time_between(started, due, hours)
    if budget <= timedelta(0):
        return "near_breach"
    spent = business_time_between(started, now, hours)
    return "near_breach" if spent >= budget * near_fraction else "ok"


@dataclass(frozen=True)
class SlaPolicy:
    """Response targets for one priority: time to the first answer and to each next answer."""

    first_response: timedelta
    next_response: timedelta
    near_breach_fraction: float = 0.8
    business_hours: BusinessHours | None = None  # None: the clock runs 24/7

    def __post_init__(self) -> None:
        if self.first_response <= timedelta(0) or self.next_response <= timedelta(0):
            raise ValueError("response targets must be positive")
        if not 0 < self.near_breach_fraction <= 1:
            raise ValueError("near_breach_fraction must be in (0, 1]")

    def first_response_due(self, received_at: datetime) -> datetime:
        return due_at(received_at, self.first_response, self.business_hours)

    def next_response_due(self, customer_replied_at: datetime) -> datetime:
        return due_at(customer_replied_at, self.next_response, self.business_hours)

    def state(self, due: datetime, started: datetime, now: datetime) -> SlaState:
        return sla_state(due, started, now, self.near_breach_fraction, hours=self.business_hours)


@dataclass(frozen=True)
class SlaPolicies:
    """One brand's SLA policies by priority; a priority without its own policy uses `fallback`."""

    fallback: SlaPolicy
    by_priority: Mapping[PriorityLevel, SlaPolicy] = field(default_factory=dict)

    def for_priority(self, priority: PriorityLevel) -> SlaPolicy:
        return self.by_priority.get(priority, self.fallback)


@dataclass(frozen=True)
class Escalation:
    """What to do with an item whose SLA broke: its new priority, and whether to reassign it."""

    priority: PriorityLevel
    reassign: bool


def raise_priority(priority: PriorityLevel) -> PriorityLevel:
    """One level up; urgent stays urgent."""
    index = PRIORITY_LEVELS.index(priority)
    return PRIORITY_LEVELS[min(index + 1, len(PRIORITY_LEVELS) - 1)]


def escalation(
    state: SlaState, current_priority: PriorityLevel, *, reassign_on_breach: bool = True
) -> Escalation | None:
    """On a breach, raise the item one priority level and (by default) flag it for reassignment.

    An item that is only near breach is not escalated: it still shows as amber to its assignee.
    """
    if state != "breached":
        return None
    return Escalation(priority=raise_priority(current_priority), reassign=reassign_on_breach)
