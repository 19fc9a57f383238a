"""Reporting periods and buckets in a brand's time zone: hour buckets are UTC hours, day, week
(Monday) and month buckets start at local midnight, DST-safe through zoneinfo."""

from __future__ import annotations

from dataclasses import dataclass
from datetime import UTC, date, datetime, time, timedelta
from typing import Literal
from zoneinfo import ZoneInfo, ZoneInfoNotFoundError

Unit = Literal["hour", "day", "week", "month"]
MAX_BUCKETS = 2000


class BadZone(ValueError):
    pass


def zone(name: str) -> ZoneInfo:
    try:
        return ZoneInfo(name)
    except (ZoneInfoNotFoundError, ValueError) as exc:
        raise BadZone(f"unknown IANA time zone {name!r}") from exc


def local_start(value: date | datetime, tz: ZoneInfo) -> datetime:
    """A date is local midnight in the zone; a naive time is local; an aware one is kept."""
    if isinstance(value, datetime):
        return value if value.tzinfo is not None else value.replace(tzinfo=tz)
    return datetime.combine(value, time(), tzinfo=tz)


def floor(at: datetime, unit: Unit, tz: ZoneInfo) -> datetime:
    if unit == "hour":
        return at.astimezone(UTC).replace(minute=0, second=0, microsecond=0)
    local = at.astimezone(tz)
    day = local.date()
    if unit == "week":
        day -= timedelta(days=day.weekday())
    elif unit == "month":
        day = day.replace(day=1)
    return datetime.combine(day, time(), tzinfo=tz)


def step(start: datetime, unit: Unit, tz: ZoneInfo) -> datetime:
    if unit == "hour":
        return start + timedelta(hours=1)
    day = start.astimezone(tz).date()
    if unit == "day":
        day += timedelta(days=1)
    elif unit == "week":
        day += timedelta(days=7)
    else:
        day = (day.replace(day=28) + timedelta(days=4)).replace(day=1)
    return datetime.combine(day, time(), tzinfo=tz)


def buckets(start: datetime, end: datetime, unit: Unit, tz: ZoneInfo) -> list[datetime]:
    """Every bucket start that overlaps [start, end), in order."""
    out: list[datetime] = []
    at = floor(start, unit, tz)
    while at < end:
        out.append(at)
        if len(out) > MAX_BUCKETS:
            raise ValueError(f"more than {MAX_BUCKETS} buckets; use a larger bucket")
        at = step(at, unit, tz)
    return out


@dataclass(frozen=True)
class Period:
    start: datetime
    end: datetime

    def previous(self) -> Period:
        """The period of the same length immediately before."""
        return Period(self.start - (self.end - self.start), self.start)


def same_instant(a: datetime, b: datetime) -> bool:
    return a.astimezone(UTC) == b.astimezone(UTC)
