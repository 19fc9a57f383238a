"""Inbox SLA: due times in business hours across weekends, holidays and DST changes."""

from __future__ import annotations

from datetime import UTC, date, datetime, time, timedelta
from zoneinfo import ZoneInfo

import pytest
from hypothesis import given
from hypothesis import strategies as st

from services.inbox.sla import (
    BusinessHours,
    Escalation,
    SlaPolicies,
    SlaPolicy,
    business_time_between,
    due_at,
    escalation,
    sla_state,
)

BERLIN = ZoneInfo("Europe/Berlin")
NEW_YORK = ZoneInfo("America/New_York")
ALL_DAY = [(time(0), time(0))]

OFFICE_BERLIN = BusinessHours.weekdays("Europe/Berlin")
EVERY_DAY_BERLIN = BusinessHours("Europe/Berlin", {d: [(time(9), time(17))] for d in range(7)})


def berlin(*args: int) -> datetime:
    return datetime(*args, tzinfo=BERLIN)  # type: ignore[arg-type,misc]


def new_york(*args: int) -> datetime:
    return datetime(*args, tzinfo=NEW_YORK)  # type: ignore[arg-type,misc]


# --- due times -------------------------------------------------------------------------------


def test_friday_evening_item_is_due_monday_morning() -> None:
    received = berlin(2026, 3, 6, 18, 0)  # Friday, after closing
    due = due_at(received, timedelta(hours=2), OFFICE_BERLIN)
    assert due == berlin(2026, 3, 9, 11, 0)  # Monday, two hours after opening


def test_time_left_on_friday_carries_over_to_monday() -> None:
    due = due_at(berlin(2026, 3, 6, 16, 0), timedelta(hours=3), OFFICE_BERLIN)
    assert due == berlin(2026, 3, 9, 11, 0)


def test_due_time_may_fall_at_closing_time() -> None:
    due = due_at(berlin(2026, 3, 9, 9, 0), timedelta(hours=8), OFFICE_BERLIN)
    assert due == berlin(2026, 3, 9, 17, 0)


def test_holidays_are_skipped() -> None:
    easter = BusinessHours.weekdays(
        "Europe/Berlin", holidays={date(2026, 4, 3), date(2026, 4, 6)}
    )  # Good Friday, Easter Monday
    due = due_at(berlin(2026, 4, 2, 16, 0), timedelta(hours=2), easter)
    assert due == berlin(2026, 4, 7, 10, 0)  # one hour on Thursday, one on Tuesday
    assert due_at(berlin(2026, 4, 2, 16, 0), timedelta(hours=2), OFFICE_BERLIN) == berlin(
        2026, 4, 3, 10, 0
    )


def test_spring_forward_day_opens_at_local_nine() -> None:
    # Berlin moves from CET to CEST on Sunday 2026-03-29: Sunday's 09:00 is 07:00 UTC.
    due = due_at(berlin(2026, 3, 28, 16, 0), timedelta(hours=2), EVERY_DAY_BERLIN)
    assert due == datetime(2026, 3, 29, 8, 0, tzinfo=UTC)
    assert due.astimezone(BERLIN).hour == 10


def test_fall_back_day_opens_at_local_nine() -> None:
    # New York moves from EDT to EST on Sunday 2026-11-01: Sunday's 09:00 is 14:00 UTC.
    every_day = BusinessHours("America/New_York", {d: [(time(9), time(17))] for d in range(7)})
    due = due_at(new_york(2026, 10, 31, 16, 30), timedelta(hours=1), every_day)
    assert due == datetime(2026, 11, 1, 14, 30, tzinfo=UTC)


@pytest.mark.parametrize(
    ("zone", "day", "real_hours"),
    [
        ("Europe/Berlin", date(2026, 3, 29), 23),
        ("Europe/Berlin", date(2026, 10, 25), 25),
        ("America/New_York", date(2026, 3, 8), 23),
        ("America/New_York", date(2026, 11, 1), 25),
        ("Europe/Berlin", date(2026, 6, 14), 24),
    ],
)
def test_an_all_day_window_holds_the_real_length_of_the_day(
    zone: str, day: date, real_hours: int
) -> None:
    hours = BusinessHours(zone, {day.weekday(): ALL_DAY})
    tz = ZoneInfo(zone)
    midnight = datetime.combine(day, time(0), tzinfo=tz)
    next_midnight = datetime.combine(day + timedelta(days=1), time(0), tzinfo=tz)
    assert business_time_between(midnight, next_midnight, hours) == timedelta(hours=real_hours)
    assert due_at(midnight, timedelta(hours=real_hours), hours) == next_midnight


def test_night_shift_across_spring_forward_counts_real_time() -> None:
    # 01:00-04:00 on the night the clock jumps 02:00 -> 03:00 is two real hours.
    nights = BusinessHours("Europe/Berlin", {6: [(time(1), time(4))]})
    assert nights.windows_on(date(2026, 3, 29)) == [
        (datetime(2026, 3, 29, 0, 0, tzinfo=UTC), datetime(2026, 3, 29, 2, 0, tzinfo=UTC))
    ]
    due = due_at(berlin(2026, 3, 29, 0, 0), timedelta(hours=2), nights)
    assert due == berlin(2026, 3, 29, 4, 0)


def test_window_opening_in_the_skipped_hour_opens_when_the_clock_jumps() -> None:
    nights = BusinessHours("America/New_York", {6: [(time(2, 30), time(5))]})
    assert nights.windows_on(date(2026, 3, 8)) == [
        (new_york(2026, 3, 8, 3, 0), new_york(2026, 3, 8, 5, 0))
    ]
    # A window wholly inside the skipped hour is empty.
    gap_only = BusinessHours("America/New_York", {6: [(time(2, 10), time(2, 50))], 0: ALL_DAY})
    assert gap_only.windows_on(date(2026, 3, 8)) == []


def test_night_shift_across_fall_back_counts_the_repeated_hour() -> None:
    nights = BusinessHours("America/New_York", {6: [(time(0), time(6))]})
    start = new_york(2026, 11, 1, 0, 0)
    assert business_time_between(start, new_york(2026, 11, 1, 6, 0), nights) == timedelta(hours=7)
    assert due_at(start, timedelta(hours=6), nights) == new_york(2026, 11, 1, 5, 0)


def test_without_business_hours_the_clock_runs_24_7_in_real_time() -> None:
    # 00:30 EST + 4 h on the spring-forward night is 05:30 EDT, not wall-clock 04:30.
    due = due_at(new_york(2026, 3, 8, 0, 30), timedelta(hours=4), None)
    assert due == new_york(2026, 3, 8, 5, 30)
    policy = SlaPolicy(first_response=timedelta(hours=1), next_response=timedelta(hours=4))
    assert policy.first_response_due(berlin(2026, 3, 7, 23, 30)) == berlin(2026, 3, 8, 0, 30)
    assert business_time_between(
        berlin(2026, 3, 6, 18, 0), berlin(2026, 3, 9, 9, 0), None
    ) == timedelta(hours=63)


def test_business_time_between_skips_the_weekend_and_is_signed() -> None:
    friday, monday = berlin(2026, 3, 6, 16, 0), berlin(2026, 3, 9, 10, 30)
    assert business_time_between(friday, monday, OFFICE_BERLIN) == timedelta(hours=2, minutes=30)
    assert business_time_between(monday, friday, OFFICE_BERLIN) == -timedelta(hours=2, minutes=30)


def test_naive_times_and_bad_calendars_are_refused() -> None:
    with pytest.raises(ValueError, match="timezone-aware"):
        due_at(datetime(2026, 3, 6, 18, 0), timedelta(hours=1), OFFICE_BERLIN)
    with pytest.raises(ValueError, match="overlap"):
        BusinessHours("Europe/Berlin", {0: [(time(9), time(13)), (time(12), time(17))]})
    with pytest.raises(ValueError, match="ends before"):
        BusinessHours("Europe/Berlin", {0: [(time(17), time(9))]})
    with pytest.raises(ValueError, match="at least one"):
        BusinessHours("Europe/Berlin", {})
    with pytest.raises(ValueError, match="negative"):
        due_at(berlin(2026, 3, 6, 18, 0), -timedelta(hours=1), OFFICE_BERLIN)


def test_a_calendar_closed_by_holidays_forever_is_reported_not_looped() -> None:
    class EveryDay:
        def __contains__(self, item: object) -> bool:
            return True

    closed = BusinessHours.weekdays("Europe/Berlin", holidays=EveryDay())
    with pytest.raises(ValueError, match="no open business hours"):
        due_at(berlin(2026, 3, 6, 18, 0), timedelta(hours=1), closed)


# --- state and escalation --------------------------------------------------------------------


def test_state_moves_from_ok_to_near_breach_to_breached() -> None:
    policy = SlaPolicy(
        first_response=timedelta(hours=4),
        next_response=timedelta(hours=8),
        business_hours=OFFICE_BERLIN,
    )
    started = berlin(2026, 3, 9, 9, 0)
    due = policy.first_response_due(started)
    assert due == berlin(2026, 3, 9, 13, 0)
    assert policy.state(due, started, berlin(2026, 3, 9, 12, 11)) == "ok"
    assert policy.state(due, started, berlin(2026, 3, 9, 12, 12)) == "near_breach"  # 80 %
    assert policy.state(due, started, due) == "near_breach"  # answering at the due time is fine
    assert policy.state(due, started, due + timedelta(seconds=1)) == "breached"


def test_near_breach_share_is_measured_in_business_time() -> None:
    started = berlin(2026, 3, 6, 18, 0)
    due = due_at(started, timedelta(hours=2), OFFICE_BERLIN)
    monday_night = berlin(2026, 3, 9, 3, 0)  # 57 of 65 wall-clock hours, no business time
    assert sla_state(due, started, monday_night, 0.8, hours=OFFICE_BERLIN) == "ok"
    assert sla_state(due, started, monday_night, 0.8) == "near_breach"
    assert sla_state(due, started, berlin(2026, 3, 9, 10, 36), 0.8, hours=OFFICE_BERLIN) == (
        "near_breach"
    )


def test_policies_fall_back_for_priorities_without_their_own() -> None:
    urgent = SlaPolicy(first_response=timedelta(minutes=15), next_response=timedelta(minutes=30))
    default = SlaPolicy(
        first_response=timedelta(hours=8),
        next_response=timedelta(hours=8),
        business_hours=OFFICE_BERLIN,
    )
    policies = SlaPolicies(fallback=default, by_priority={"urgent": urgent})
    assert policies.for_priority("urgent") is urgent
    assert policies.for_priority("low") is default
    with pytest.raises(ValueError, match="positive"):
        SlaPolicy(first_response=timedelta(0), next_response=timedelta(hours=1))


def test_breach_raises_priority_one_level_and_flags_reassignment() -> None:
    assert escalation("breached", "low") == Escalation(priority="normal", reassign=True)
    assert escalation("breached", "high") == Escalation(priority="urgent", reassign=True)
    assert escalation("breached", "urgent") == Escalation(priority="urgent", reassign=True)
    assert escalation("breached", "normal", reassign_on_breach=False) == Escalation(
        priority="high", reassign=False
    )
    assert escalation("near_breach", "low") is None
    assert escalation("ok", "urgent") is None


# --- property --------------------------------------------------------------------------------

CALENDARS = [
    None,
    OFFICE_BERLIN,
    BusinessHours.weekdays("Europe/Berlin", holidays={date(2026, 12, 24), date(2026, 12, 25)}),
    BusinessHours(
        "America/New_York",
        {d: [(time(8), time(12)), (time(13), time(17, 30))] for d in range(6)},
    ),
    BusinessHours(
        "Europe/Berlin", {d: [(time(1), time(4)), (time(22), time(0))] for d in range(7)}
    ),
    BusinessHours("America/New_York", {6: [(time(0), time(6))], 5: ALL_DAY}),
    BusinessHours("Australia/Lord_Howe", {d: [(time(1, 15), time(2, 45))] for d in range(7)}),
]


@given(
    start=st.datetimes(
        min_value=datetime(2025, 1, 1),
        max_value=datetime(2027, 12, 31),
        timezones=st.sampled_from([UTC, BERLIN, NEW_YORK]),
    ),
    duration=st.timedeltas(min_value=timedelta(0), max_value=timedelta(hours=120)),
    hours=st.sampled_from(CALENDARS),
)
def test_business_time_from_start_to_due_equals_the_duration(
    start: datetime, duration: timedelta, hours: BusinessHours | None
) -> None:
    due = due_at(start, duration, hours)
    assert due >= start
    assert business_time_between(start, due, hours) == duration
