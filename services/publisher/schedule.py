"""When scheduled posts go out: brand-time-zone conversion, weekly queue slots and RRULE recurrence,
all DST-safe. Instants are stored in UTC; wall-clock times are in the brand's IANA zone."""

from __future__ import annotations

import re
from collections.abc import Iterable, Iterator
from dataclasses import dataclass
from datetime import UTC, date, datetime, time, timedelta
from enum import Enum
from zoneinfo import ZoneInfo, ZoneInfoNotFoundError

from dateutil.rrule import rrule, rrulestr

__all__ = [
    "InvalidRecurrenceError",
    "LocalTimeKind",
    "SchedulingError",
    "Slot",
    "TooManyOccurrencesError",
    "UnknownTimeZoneError",
    "classify_local",
    "group_by_local_date",
    "load_zone",
    "next_free_slot",
    "occurrences",
    "to_local",
    "to_utc",
]


class SchedulingError(ValueError):
    """A schedule a user entered cannot be honoured; the message says why."""


class UnknownTimeZoneError(SchedulingError):
    """The brand's time zone is not an IANA zone known to this host."""


class InvalidRecurrenceError(SchedulingError):
    """The RRULE text is not a recurrence the publisher accepts."""


class TooManyOccurrencesError(SchedulingError):
    """A recurrence expands to more posts in the asked range than the caller allows."""


class LocalTimeKind(Enum):
    """How a wall-clock time maps onto real instants in a zone."""

    NORMAL = "normal"
    NONEXISTENT = "nonexistent"  # skipped by a spring-forward change
    AMBIGUOUS = "ambiguous"  # happens twice because of a fall-back change


def load_zone(zone: str) -> ZoneInfo:
    """The IANA zone named `zone`, or UnknownTimeZoneError."""
    try:
        return ZoneInfo(zone)
    except (ZoneInfoNotFoundError, ValueError) as exc:
        # ZoneInfo raises ValueError for keys that are not relative paths ("", "/etc/x", "../x").
        raise UnknownTimeZoneError(f"unknown time zone {zone!r}: not an IANA zone name") from exc


def _require_naive(value: datetime, what: str) -> None:
    if value.tzinfo is not None:
        raise ValueError(f"{what} must be a naive wall-clock time, got {value.isoformat()}")


def _require_aware(value: datetime, what: str) -> None:
    if value.tzinfo is None or value.utcoffset() is None:
        raise ValueError(f"{what} must be timezone-aware, got naive {value.isoformat()}")


def classify_local(local: datetime, zone: str) -> LocalTimeKind:
    """Whether a naive wall-clock time exists once, never or twice in `zone` (for UI warnings)."""
    _require_naive(local, "local time")
    tz = load_zone(zone)
    first = local.replace(tzinfo=tz, fold=0)
    second = local.replace(tzinfo=tz, fold=1)
    if first.utcoffset() == second.utcoffset():
        return LocalTimeKind.NORMAL
    # In a gap the round trip through UTC lands on a different wall-clock time; in an overlap
    # both folds are real and round-trip to themselves.
    if first.astimezone(UTC).astimezone(tz).replace(tzinfo=None) != local:
        return LocalTimeKind.NONEXISTENT
    return LocalTimeKind.AMBIGUOUS


def to_utc(local: datetime, zone: str) -> datetime:
    """The UTC instant of a naive wall-clock time in `zone`.

    A nonexistent time (spring-forward gap) moves forward by the gap: 02:30 on the night Berlin
    skips 02:00-03:00 becomes 03:30 CEST. An ambiguous time (fall-back) is its first occurrence,
    the earlier instant. Both are what PEP 495's fold=0 gives: the offset in force before the
    change.
    """
    _require_naive(local, "local time")
    return local.replace(tzinfo=load_zone(zone), fold=0).astimezone(UTC)


def to_local(instant: datetime, zone: str) -> datetime:
    """An aware instant as an aware wall-clock time in `zone` (fold set for the repeated hour)."""
    _require_aware(instant, "instant")
    return instant.astimezone(load_zone(zone))


@dataclass(frozen=True, slots=True)
class Slot:
    """A weekly queue slot of a channel: a weekday (0 = Monday) and a wall-clock time in the
    brand's zone. It keeps its wall-clock time across DST changes."""

    weekday: int
    time: time

    def __post_init__(self) -> None:
        if not 0 <= self.weekday <= 6:
            raise ValueError(f"slot weekday must be 0 (Monday) to 6 (Sunday), got {self.weekday}")
        if self.time.tzinfo is not None:
            raise ValueError("slot time is a wall-clock time in the brand's zone; give it naive")


def next_free_slot(
    slots: Iterable[Slot],
    zone: str,
    after: datetime,
    taken: set[datetime],
    horizon_days: int = 60,
) -> datetime | None:
    """The earliest slot instant (UTC) strictly after `after`, not in `taken`, and no more than
    `horizon_days` days after `after`; None if every slot in that horizon is taken."""
    _require_aware(after, "after")
    if horizon_days < 0:
        raise ValueError(f"horizon_days must not be negative, got {horizon_days}")
    for instant in taken:
        _require_aware(instant, "taken slot")
    taken_utc = {instant.astimezone(UTC) for instant in taken}
    by_weekday: dict[int, list[time]] = {}
    for slot in slots:
        by_weekday.setdefault(slot.weekday, []).append(slot.time)
    tz = load_zone(zone)
    after_utc = after.astimezone(UTC)
    last = after_utc + timedelta(days=horizon_days)
    first_day = after_utc.astimezone(tz).date()
    candidates: set[datetime] = set()
    # Start a day early: a slot late on the previous local day can be pushed past midnight by a
    # gap (zones that change at 00:00), and so still fall after `after`.
    for offset in range(-1, horizon_days + 2):
        day = first_day + timedelta(days=offset)
        for wall in by_weekday.get(day.weekday(), ()):
            instant = to_utc(datetime.combine(day, wall), zone)
            if after_utc < instant <= last and instant not in taken_utc:
                candidates.add(instant)
    # Sorting, not day order, decides: a slot moved forward by a gap can overtake a later slot.
    return min(candidates, default=None)


# --- Recurrence -----------------------------------------------------------------------------------

_FREQUENCIES = ("HOURLY", "DAILY", "WEEKLY", "MONTHLY", "YEARLY")
_WEEKDAYS = ("MO", "TU", "WE", "TH", "FR", "SA", "SU")
_BYDAY = re.compile(r"^(?P<ordinal>[+-]?\d{1,2})?(?P<day>[A-Z]{2})$")
# Integer list parts: (lowest, highest, negatives allowed), as RFC 5545 section 3.3.10 states.
_INT_LISTS: dict[str, tuple[int, int, bool]] = {
    "BYSECOND": (0, 59, False),  # RFC allows 60 for leap seconds; instants here have none
    "BYMINUTE": (0, 59, False),
    "BYHOUR": (0, 23, False),
    "BYMONTHDAY": (1, 31, True),
    "BYYEARDAY": (1, 366, True),
    "BYWEEKNO": (1, 53, True),
    "BYMONTH": (1, 12, False),
    "BYSETPOS": (1, 366, True),
}
_PARTS = frozenset({"FREQ", "INTERVAL", "COUNT", "UNTIL", "BYDAY", "WKST", *_INT_LISTS})


@dataclass(frozen=True, slots=True)
class _Until:
    """UNTIL, normalised: a local wall-clock bound, plus the exact instant when given in UTC."""

    local: datetime
    utc: datetime | None


@dataclass(frozen=True, slots=True)
class _ParsedRule:
    """What `_parse_rrule` hands to the expansion: the text dateutil expands, minus COUNT and
    UNTIL, which the expansion applies itself so that it can stop at the end of the range."""

    source: str
    text: str
    count: int | None
    until: _Until | None


def _invalid(text: str, reason: str) -> InvalidRecurrenceError:
    return InvalidRecurrenceError(f"invalid RRULE {text!r}: {reason}")


def _positive_int(text: str, name: str, value: str) -> int:
    if not value.isdigit() or int(value) < 1:
        raise _invalid(text, f"{name} must be a positive integer, got {value!r}")
    return int(value)


def _check_int_list(text: str, name: str, value: str) -> None:
    low, high, negatives = _INT_LISTS[name]
    for item in value.split(","):
        if not re.fullmatch(r"[+-]?\d+", item):
            raise _invalid(text, f"{name} value {item!r} is not an integer")
        number = int(item)
        if not (low <= abs(number) <= high and (number >= 0 or negatives)):
            allowed = f"{low}..{high}" + (f" or -{high}..-{low}" if negatives else "")
            raise _invalid(text, f"{name} value {item!r} is out of range ({allowed})")


def _check_byday(text: str, value: str, freq: str, parts: dict[str, str]) -> None:
    for item in value.split(","):
        match = _BYDAY.match(item)
        if match is None or match["day"] not in _WEEKDAYS:
            raise _invalid(
                text, f"BYDAY value {item!r} is not a weekday (MO..SU, optionally like 1MO, -1FR)"
            )
        ordinal = match["ordinal"]
        if ordinal is None:
            continue
        if not 1 <= abs(int(ordinal)) <= 53:
            raise _invalid(text, f"BYDAY ordinal in {item!r} must be 1..53 or -53..-1")
        if freq not in ("MONTHLY", "YEARLY") or (freq == "YEARLY" and "BYWEEKNO" in parts):
            raise _invalid(
                text, f"BYDAY {item!r} has an ordinal, allowed only with FREQ=MONTHLY or YEARLY"
            )


def _parse_until(text: str, value: str, zone: str) -> _Until:
    try:
        if value.endswith("Z"):
            instant = datetime.strptime(value, "%Y%m%dT%H%M%SZ").replace(tzinfo=UTC)
            # Bound the local expansion a day late and cut exactly in UTC: near a fall-back change
            # the naive local bound alone would cut the repeated hour wrongly.
            local_bound = to_local(instant, zone).replace(tzinfo=None) + timedelta(days=1)
            return _Until(local=local_bound, utc=instant)
        if "T" in value:
            return _Until(local=datetime.strptime(value, "%Y%m%dT%H%M%S"), utc=None)
        # A date-only UNTIL includes the whole local day: what a user writing a date expects.
        day = datetime.strptime(value, "%Y%m%d").date()
        return _Until(local=datetime.combine(day, time.max), utc=None)
    except ValueError as exc:
        raise _invalid(
            text, f"UNTIL {value!r} is not YYYYMMDD, YYYYMMDDTHHMMSS or YYYYMMDDTHHMMSSZ"
        ) from exc


def _parse_rrule(rrule_text: str, zone: str) -> _ParsedRule:
    text = rrule_text.strip()
    body = text.removeprefix("RRULE:")
    if not body:
        raise _invalid(text, "it is empty")
    if "\n" in body or "\r" in body:
        raise _invalid(text, "give a single RRULE line (DTSTART, RDATE and EXDATE are not taken)")
    parts: dict[str, str] = {}
    for part in body.split(";"):
        name, sep, value = part.partition("=")
        name = name.strip().upper()
        value = value.strip().upper()
        if not sep or not name or not value:
            raise _invalid(text, f"part {part!r} is not NAME=VALUE")
        if name not in _PARTS:
            raise _invalid(text, f"unknown part {name!r}")
        if name in parts:
            raise _invalid(text, f"{name} is given twice")
        parts[name] = value
    freq = parts.get("FREQ")
    if freq is None:
        raise _invalid(text, "FREQ is required")
    if freq in ("SECONDLY", "MINUTELY"):
        # Expansion walks from DTSTART, so sub-hourly rules cost too much for a posting schedule.
        raise _invalid(text, f"FREQ={freq} is too frequent for posts; use HOURLY at most")
    if freq not in _FREQUENCIES:
        raise _invalid(text, f"FREQ {freq!r} is not one of {', '.join(_FREQUENCIES)}")
    if "COUNT" in parts and "UNTIL" in parts:
        raise _invalid(text, "COUNT and UNTIL cannot both be given")
    if "INTERVAL" in parts:
        _positive_int(text, "INTERVAL", parts["INTERVAL"])
    count = _positive_int(text, "COUNT", parts["COUNT"]) if "COUNT" in parts else None
    until = _parse_until(text, parts["UNTIL"], zone) if "UNTIL" in parts else None
    if "WKST" in parts and parts["WKST"] not in _WEEKDAYS:
        raise _invalid(text, f"WKST {parts['WKST']!r} is not a weekday (MO..SU)")
    for name in _INT_LISTS.keys() & parts.keys():
        _check_int_list(text, name, parts[name])
    if "BYDAY" in parts:
        _check_byday(text, parts["BYDAY"], freq, parts)
    # Combinations RFC 5545 forbids; dateutil would silently expand them.
    if "BYWEEKNO" in parts and freq != "YEARLY":
        raise _invalid(text, "BYWEEKNO is allowed only with FREQ=YEARLY")
    if "BYYEARDAY" in parts and freq in ("DAILY", "WEEKLY", "MONTHLY"):
        raise _invalid(text, f"BYYEARDAY is not allowed with FREQ={freq}")
    if "BYMONTHDAY" in parts and freq == "WEEKLY":
        raise _invalid(text, "BYMONTHDAY is not allowed with FREQ=WEEKLY")
    if "BYSETPOS" in parts and not any(n.startswith("BY") and n != "BYSETPOS" for n in parts):
        raise _invalid(text, "BYSETPOS needs another BYxxx part to select from")
    expanded = ";".join(f"{n}={v}" for n, v in parts.items() if n not in ("COUNT", "UNTIL"))
    return _ParsedRule(source=text, text=expanded, count=count, until=until)


def _local_instances(
    parsed: _ParsedRule, dtstart_local: datetime, bound: datetime
) -> Iterator[datetime]:
    """The rule's wall-clock instances from DTSTART up to `bound`, COUNT applied."""
    stop = bound if parsed.until is None else min(bound, parsed.until.local)
    if stop < dtstart_local:
        return
    try:
        rule = rrulestr(parsed.text, dtstart=dtstart_local)
    except ValueError as exc:
        raise _invalid(parsed.source, str(exc)) from exc
    assert isinstance(rule, rrule)  # one RRULE line without forceset yields an rrule
    # dateutil stops at UNTIL; giving it the range end keeps rules that rarely or never match
    # (BYMONTH=2;BYMONTHDAY=31) from being searched up to the year 9999.
    for index, instance in enumerate(rule.replace(until=stop)):
        if parsed.count is not None and index >= parsed.count:
            return
        yield instance


def occurrences(
    rrule_text: str,
    dtstart_local: datetime,
    zone: str,
    start: datetime,
    end: datetime,
    limit: int = 1000,
) -> list[datetime]:
    """The UTC instants in [start, end) of an RFC 5545 RRULE expanded in `zone`'s wall-clock time,
    so a 09:00 rule stays 09:00 local across DST; each instant follows `to_utc`'s gap and overlap
    rules, and two instances that land on one instant are posted once.

    Raises InvalidRecurrenceError naming what is wrong, UnknownTimeZoneError, or
    TooManyOccurrencesError when the range holds more than `limit` occurrences.
    """
    _require_naive(dtstart_local, "dtstart_local")
    _require_aware(start, "start")
    _require_aware(end, "end")
    load_zone(zone)
    parsed = _parse_rrule(rrule_text, zone)
    start_utc, end_utc = start.astimezone(UTC), end.astimezone(UTC)
    if end_utc <= start_utc:
        return []
    # A day either side covers any UTC offset change between wall-clock and real time.
    bound = to_local(end_utc, zone).replace(tzinfo=None) + timedelta(days=1)
    until_utc = parsed.until.utc if parsed.until is not None else None
    found: set[datetime] = set()
    for local in _local_instances(parsed, dtstart_local, bound):
        instant = to_utc(local, zone)
        if not start_utc <= instant < end_utc or (until_utc is not None and instant > until_utc):
            continue
        found.add(instant)
        if len(found) > limit:
            raise TooManyOccurrencesError(
                f"RRULE {rrule_text!r} gives more than {limit} occurrences between "
                f"{start_utc.isoformat()} and {end_utc.isoformat()}; narrow the range or the rule"
            )
    return sorted(found)


def group_by_local_date(instants: Iterable[datetime], zone: str) -> dict[date, list[datetime]]:
    """UTC instants grouped by their date in `zone`, for a calendar view: days ascending, each
    day's instants ascending and still in UTC."""
    tz = load_zone(zone)
    days: dict[date, list[datetime]] = {}
    for instant in sorted(_checked_aware(i) for i in instants):
        days.setdefault(instant.astimezone(tz).date(), []).append(instant.astimezone(UTC))
    return days


def _checked_aware(instant: datetime) -> datetime:
    _require_aware(instant, "instant")
    return instant
