"""Scheduling in brand time zones: wall-clock times survive DST changes, gaps and overlaps follow
the documented rules, queues skip taken slots, and bad RRULEs and zones are refused clearly."""

from __future__ import annotations

from datetime import UTC, date, datetime, time, timedelta

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from services.publisher.schedule import (
    InvalidRecurrenceError,
    LocalTimeKind,
    Slot,
    TooManyOccurrencesError,
    UnknownTimeZoneError,
    classify_local,
    group_by_local_date,
    next_free_slot,
    occurrences,
    to_local,
    to_utc,
)

BERLIN = "Europe/Berlin"  # 2024: 02:00 -> 03:00 on 31 March, 03:00 -> 02:00 on 27 October
NEW_YORK = "America/New_York"  # 2024: 02:00 -> 03:00 on 10 March, 02:00 -> 01:00 on 3 November
ADELAIDE = "Australia/Adelaide"  # +09:30 / +10:30; 2024: 02:00 -> 03:00 on 6 October
LORD_HOWE = "Australia/Lord_Howe"  # a 30-minute change; 2024: 02:00 -> 02:30 on 6 October
TOKYO = "Asia/Tokyo"  # +09:00, no DST
KOLKATA = "Asia/Kolkata"  # +05:30, no DST

MONDAY, WEDNESDAY, SUNDAY = 0, 2, 6


def utc(year: int, month: int, day: int, hour: int = 0, minute: int = 0) -> datetime:
    return datetime(year, month, day, hour, minute, tzinfo=UTC)


def offset(local: datetime, zone: str) -> timedelta:
    """The zone's UTC offset in force at an existing wall-clock time."""
    found = to_local(to_utc(local, zone), zone).utcoffset()
    assert found is not None
    return found


def wall(instant: datetime, zone: str) -> tuple[int, time]:
    """The weekday and wall-clock time a reader in `zone` sees for an instant."""
    local = to_local(instant, zone)
    return local.weekday(), local.time()


# --- Conversions ----------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("local", "zone", "expected"),
    [
        (datetime(2024, 1, 15, 9, 0), BERLIN, utc(2024, 1, 15, 8, 0)),
        (datetime(2024, 7, 15, 9, 0), BERLIN, utc(2024, 7, 15, 7, 0)),
        (datetime(2024, 1, 15, 9, 0), NEW_YORK, utc(2024, 1, 15, 14, 0)),
        (datetime(2024, 7, 15, 9, 0), NEW_YORK, utc(2024, 7, 15, 13, 0)),
        (datetime(2024, 7, 15, 9, 0), TOKYO, utc(2024, 7, 15, 0, 0)),
        (datetime(2024, 7, 15, 9, 0), KOLKATA, utc(2024, 7, 15, 3, 30)),
        (datetime(2024, 1, 15, 9, 0), ADELAIDE, utc(2024, 1, 14, 22, 30)),
        (datetime(2024, 7, 15, 9, 0), ADELAIDE, utc(2024, 7, 14, 23, 30)),
    ],
)
def test_a_wall_clock_time_maps_to_its_utc_instant_and_back(
    local: datetime, zone: str, expected: datetime
) -> None:
    assert to_utc(local, zone) == expected
    assert to_local(expected, zone).replace(tzinfo=None) == local


@pytest.mark.parametrize(
    ("local", "zone", "shown"),
    [
        (datetime(2024, 3, 31, 2, 30), BERLIN, datetime(2024, 3, 31, 3, 30)),
        (datetime(2024, 3, 10, 2, 0), NEW_YORK, datetime(2024, 3, 10, 3, 0)),
        (datetime(2024, 10, 6, 2, 45), ADELAIDE, datetime(2024, 10, 6, 3, 45)),
        (datetime(2024, 10, 6, 2, 15), LORD_HOWE, datetime(2024, 10, 6, 2, 45)),
    ],
)
def test_a_time_skipped_by_spring_forward_moves_forward_by_the_gap(
    local: datetime, zone: str, shown: datetime
) -> None:
    assert classify_local(local, zone) is LocalTimeKind.NONEXISTENT
    assert to_local(to_utc(local, zone), zone).replace(tzinfo=None) == shown


@pytest.mark.parametrize(
    ("local", "zone", "first"),
    [
        (datetime(2024, 10, 27, 2, 30), BERLIN, utc(2024, 10, 27, 0, 30)),
        (datetime(2024, 11, 3, 1, 30), NEW_YORK, utc(2024, 11, 3, 5, 30)),
        (datetime(2024, 4, 7, 2, 30), ADELAIDE, utc(2024, 4, 6, 16, 0)),
    ],
)
def test_a_time_repeated_by_fall_back_is_its_first_occurrence(
    local: datetime, zone: str, first: datetime
) -> None:
    assert classify_local(local, zone) is LocalTimeKind.AMBIGUOUS
    assert to_utc(local, zone) == first
    assert to_local(first, zone).fold == 0  # the earlier of the two passes


def test_an_ordinary_time_is_classified_normal() -> None:
    assert classify_local(datetime(2024, 3, 31, 3, 30), BERLIN) is LocalTimeKind.NORMAL
    assert classify_local(datetime(2024, 3, 31, 2, 30), TOKYO) is LocalTimeKind.NORMAL


@pytest.mark.parametrize("zone", ["Mars/Olympus_Mons", "europe/berlin", "", "../etc/passwd", "/x"])
def test_an_unknown_zone_is_refused_with_its_name(zone: str) -> None:
    with pytest.raises(UnknownTimeZoneError, match="unknown time zone"):
        to_utc(datetime(2024, 1, 1, 9, 0), zone)
    with pytest.raises(UnknownTimeZoneError):
        next_free_slot([Slot(MONDAY, time(9))], zone, utc(2024, 1, 1), set())
    with pytest.raises(UnknownTimeZoneError):
        occurrences("FREQ=DAILY", datetime(2024, 1, 1, 9), zone, utc(2024, 1, 1), utc(2024, 2, 1))


def test_naive_and_aware_times_are_not_confused() -> None:
    with pytest.raises(ValueError, match="naive wall-clock"):
        to_utc(utc(2024, 1, 1, 9), BERLIN)
    with pytest.raises(ValueError, match="timezone-aware"):
        to_local(datetime(2024, 1, 1, 9), BERLIN)
    with pytest.raises(ValueError, match="timezone-aware"):
        next_free_slot([Slot(MONDAY, time(9))], BERLIN, datetime(2024, 1, 1), set())


# --- Weekly queue slots ---------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("zone", "before_change", "after_change"),
    [
        (BERLIN, utc(2024, 3, 25, 8, 0), utc(2024, 4, 1, 7, 0)),  # spring: CET -> CEST
        (BERLIN, utc(2024, 10, 21, 7, 0), utc(2024, 10, 28, 8, 0)),  # autumn: CEST -> CET
        (NEW_YORK, utc(2024, 3, 4, 14, 0), utc(2024, 3, 11, 13, 0)),
        (NEW_YORK, utc(2024, 10, 28, 13, 0), utc(2024, 11, 4, 14, 0)),
        (ADELAIDE, utc(2024, 9, 29, 23, 30), utc(2024, 10, 6, 22, 30)),  # Monday 09:00 local
    ],
)
def test_a_monday_0900_slot_stays_0900_local_across_the_dst_change(
    zone: str, before_change: datetime, after_change: datetime
) -> None:
    slots = [Slot(MONDAY, time(9, 0))]
    first = next_free_slot(slots, zone, before_change - timedelta(days=3), set())
    assert first == before_change
    second = next_free_slot(slots, zone, first, set())
    assert second == after_change
    assert wall(second, zone) == (MONDAY, time(9, 0))
    # The UTC gap between the two posts is a week plus or minus the change, not a plain week.
    assert second - first != timedelta(days=7)


def test_slots_in_zones_without_dst_are_a_plain_week_apart() -> None:
    for zone in (TOKYO, KOLKATA):
        first = next_free_slot([Slot(SUNDAY, time(2, 30))], zone, utc(2024, 3, 28), set())
        assert first is not None
        second = next_free_slot([Slot(SUNDAY, time(2, 30))], zone, first, set())
        assert second == first + timedelta(days=7)
        assert wall(first, zone) == (SUNDAY, time(2, 30))


def test_a_slot_inside_the_spring_gap_moves_forward_by_the_gap() -> None:
    # Berlin skips 02:00-03:00 on Sunday 31 March 2024: the 02:30 slot goes out at 03:30 CEST.
    slot = next_free_slot([Slot(SUNDAY, time(2, 30))], BERLIN, utc(2024, 3, 30), set())
    assert slot == utc(2024, 3, 31, 1, 30)
    assert wall(slot, BERLIN) == (SUNDAY, time(3, 30))


def test_a_slot_moved_by_the_gap_still_comes_out_in_time_order() -> None:
    # 02:30 moves to 03:30, after the 03:15 slot: the queue hands out 03:15 first.
    slots = [Slot(SUNDAY, time(2, 30)), Slot(SUNDAY, time(3, 15))]
    first = next_free_slot(slots, BERLIN, utc(2024, 3, 30), set())
    assert first is not None
    assert wall(first, BERLIN) == (SUNDAY, time(3, 15))
    second = next_free_slot(slots, BERLIN, first, set())
    assert second is not None
    assert wall(second, BERLIN) == (SUNDAY, time(3, 30))


def test_a_slot_in_the_repeated_hour_goes_out_once_at_the_first_occurrence() -> None:
    slots = [Slot(SUNDAY, time(2, 30))]
    first = next_free_slot(slots, BERLIN, utc(2024, 10, 26), set())
    assert first == utc(2024, 10, 27, 0, 30)  # 02:30 CEST, not 02:30 CET an hour later
    following = next_free_slot(slots, BERLIN, first, set())
    assert following == utc(2024, 11, 3, 1, 30)  # next Sunday, 02:30 CET


def test_taken_slots_are_skipped_whatever_zone_they_are_given_in() -> None:
    slots = [Slot(MONDAY, time(9, 0)), Slot(WEDNESDAY, time(9, 0))]
    after = utc(2024, 1, 14)  # a Sunday
    monday = utc(2024, 1, 15, 8, 0)
    wednesday = utc(2024, 1, 17, 8, 0)
    assert next_free_slot(slots, BERLIN, after, set()) == monday
    taken = {to_local(monday, NEW_YORK)}  # the same instant, written in another zone
    assert next_free_slot(slots, BERLIN, after, taken) == wednesday
    assert next_free_slot(slots, BERLIN, after, {monday, wednesday}) == utc(2024, 1, 22, 8, 0)


def test_the_slot_at_exactly_after_is_not_returned() -> None:
    slots = [Slot(MONDAY, time(9, 0))]
    monday = utc(2024, 1, 15, 8, 0)
    assert next_free_slot(slots, BERLIN, monday, set()) == monday + timedelta(days=7)
    assert next_free_slot(slots, BERLIN, monday - timedelta(seconds=1), set()) == monday


def test_a_full_queue_within_the_horizon_gives_none() -> None:
    slots = [Slot(MONDAY, time(9, 0))]
    after = utc(2024, 1, 14)
    mondays = {utc(2024, 1, 15, 8, 0) + timedelta(days=7 * week) for week in range(3)}
    assert next_free_slot(slots, BERLIN, after, mondays, horizon_days=22) is None
    assert next_free_slot(slots, BERLIN, after, mondays, horizon_days=23) == utc(2024, 2, 5, 8, 0)
    assert next_free_slot([], BERLIN, after, set()) is None


def test_a_slot_must_name_a_real_weekday() -> None:
    with pytest.raises(ValueError, match="weekday"):
        Slot(7, time(9, 0))


ZONES = [BERLIN, NEW_YORK, ADELAIDE, LORD_HOWE, TOKYO, KOLKATA]
# The 2024 changes (UTC instants): half the examples put a slot within hours of one and `after`
# in the week before, so gaps and overlaps are hit often rather than almost never.
CHANGES = [
    (BERLIN, utc(2024, 3, 31, 1, 0)),
    (BERLIN, utc(2024, 10, 27, 1, 0)),
    (NEW_YORK, utc(2024, 3, 10, 7, 0)),
    (NEW_YORK, utc(2024, 11, 3, 6, 0)),
    (ADELAIDE, utc(2024, 4, 6, 16, 30)),
    (ADELAIDE, utc(2024, 10, 5, 16, 30)),
    (LORD_HOWE, utc(2024, 4, 6, 15, 0)),
    (LORD_HOWE, utc(2024, 10, 5, 15, 30)),
]


@st.composite
def any_case(draw: st.DrawFn) -> tuple[str, Slot, datetime]:
    zone = draw(st.sampled_from(ZONES))
    slot = Slot(draw(st.integers(0, 6)), draw(st.times()))
    after = draw(st.datetimes(datetime(2020, 1, 1), datetime(2030, 1, 1), timezones=st.just(UTC)))
    return zone, slot, after


@st.composite
def case_near_a_change(draw: st.DrawFn) -> tuple[str, Slot, datetime]:
    zone, change = draw(st.sampled_from(CHANGES))
    last_wall_before = to_local(change - timedelta(microseconds=1), zone).replace(tzinfo=None)
    slot_wall = last_wall_before + draw(st.timedeltas(timedelta(hours=-1), timedelta(hours=2)))
    after = change - draw(st.timedeltas(timedelta(hours=3), timedelta(days=8)))
    return zone, Slot(slot_wall.weekday(), slot_wall.time()), after


@settings(max_examples=400, deadline=None)
@given(case=st.one_of(any_case(), case_near_a_change()))
def test_property_the_next_slot_is_the_slot_wall_clock_time_or_the_gap_rule(
    case: tuple[str, Slot, datetime],
) -> None:
    zone, slot, after = case
    weekday, slot_time = slot.weekday, slot.time
    instant = next_free_slot([slot], zone, after, set())
    assert instant is not None
    # Consecutive instances of a weekly slot are a week apart, give or take one DST change.
    assert after < instant <= after + timedelta(days=7, hours=1)
    local = to_local(instant, zone)
    if local.weekday() == weekday and local.time() == slot_time:
        assert local.fold == 0  # a repeated time is its first occurrence
    else:
        # Only a time skipped by a change may move, and then forward by exactly the change.
        shifted = local.replace(tzinfo=None)
        day = shifted.date()
        while datetime.combine(day, slot_time) > shifted:
            day -= timedelta(days=1)
        slot_wall = datetime.combine(day, slot_time)
        assert day.weekday() == weekday
        assert classify_local(slot_wall, zone) is LocalTimeKind.NONEXISTENT
        change = offset(slot_wall + timedelta(days=1), zone) - offset(
            slot_wall - timedelta(days=1), zone
        )
        assert shifted - slot_wall == change
    # Taking that slot hands out a later one: nothing is posted twice into one slot.
    later = next_free_slot([slot], zone, after, {instant})
    assert later is not None
    assert later > instant


# --- Recurrence -----------------------------------------------------------------------------------


def test_a_weekly_rrule_keeps_0900_local_across_the_berlin_spring_change() -> None:
    found = occurrences(
        "FREQ=WEEKLY;BYDAY=MO,WE;BYHOUR=9;BYMINUTE=0",
        datetime(2024, 3, 1, 9, 0),
        BERLIN,
        utc(2024, 3, 20),
        utc(2024, 4, 5),
    )
    assert found == [
        utc(2024, 3, 20, 8, 0),
        utc(2024, 3, 25, 8, 0),
        utc(2024, 3, 27, 8, 0),
        utc(2024, 4, 1, 7, 0),
        utc(2024, 4, 3, 7, 0),
    ]
    assert {wall(instant, BERLIN)[1] for instant in found} == {time(9, 0)}


def test_a_daily_rrule_keeps_0900_local_across_the_new_york_autumn_change() -> None:
    found = occurrences(
        "RRULE:FREQ=DAILY",
        datetime(2024, 11, 1, 9, 0),
        NEW_YORK,
        utc(2024, 11, 1),
        utc(2024, 11, 6),
    )
    assert found == [
        utc(2024, 11, 1, 13, 0),
        utc(2024, 11, 2, 13, 0),
        utc(2024, 11, 3, 14, 0),
        utc(2024, 11, 4, 14, 0),
        utc(2024, 11, 5, 14, 0),
    ]


def test_a_monthly_rrule_in_adelaide_keeps_its_half_hour_offset_time() -> None:
    found = occurrences(
        "FREQ=MONTHLY;BYDAY=1MO;BYHOUR=9;BYMINUTE=30",
        datetime(2024, 9, 1, 0, 0),
        ADELAIDE,
        utc(2024, 9, 1),
        utc(2024, 12, 1),
    )
    assert [to_local(instant, ADELAIDE).replace(tzinfo=None) for instant in found] == [
        datetime(2024, 9, 2, 9, 30),
        datetime(2024, 10, 7, 9, 30),
        datetime(2024, 11, 4, 9, 30),
    ]
    assert found[0] == utc(2024, 9, 2, 0, 0)  # +09:30
    assert found[1] == utc(2024, 10, 6, 23, 0)  # +10:30 after the change


def test_a_tokyo_rrule_is_a_fixed_offset_expansion() -> None:
    found = occurrences(
        "FREQ=DAILY;INTERVAL=2;COUNT=3",
        datetime(2024, 3, 30, 9, 0),
        TOKYO,
        utc(2024, 1, 1),
        utc(2025, 1, 1),
    )
    assert found == [utc(2024, 3, 30, 0, 0), utc(2024, 4, 1, 0, 0), utc(2024, 4, 3, 0, 0)]


def test_hourly_occurrences_through_the_gap_and_overlap_follow_the_dst_rules() -> None:
    spring = occurrences(
        "FREQ=HOURLY;BYMINUTE=30",
        datetime(2024, 3, 31, 0, 30),
        BERLIN,
        utc(2024, 3, 30),
        utc(2024, 3, 31, 3),
    )
    # 02:30 does not exist; it moves to 03:30, where the 03:30 occurrence is: posted once.
    assert [to_local(i, BERLIN).strftime("%H:%M") for i in spring] == [
        "00:30",
        "01:30",
        "03:30",
        "04:30",
    ]
    autumn = occurrences(
        "FREQ=HOURLY;BYMINUTE=30",
        datetime(2024, 10, 27, 0, 30),
        BERLIN,
        utc(2024, 10, 26),
        utc(2024, 10, 27, 4),
    )
    # 02:30 happens twice; only the first (CEST) is used.
    assert [to_local(i, BERLIN).isoformat() for i in autumn] == [
        "2024-10-27T00:30:00+02:00",
        "2024-10-27T01:30:00+02:00",
        "2024-10-27T02:30:00+02:00",
        "2024-10-27T03:30:00+01:00",
        "2024-10-27T04:30:00+01:00",
    ]


def test_occurrences_are_cut_to_the_half_open_range() -> None:
    found = occurrences(
        "FREQ=DAILY", datetime(2024, 1, 1, 9, 0), TOKYO, utc(2024, 1, 2, 0), utc(2024, 1, 4, 0)
    )
    assert found == [utc(2024, 1, 2, 0), utc(2024, 1, 3, 0)]
    assert (
        occurrences("FREQ=DAILY", datetime(2024, 1, 1, 9), TOKYO, utc(2024, 2, 1), utc(2024, 1, 1))
        == []
    )


def test_count_is_counted_from_dtstart_not_from_the_range() -> None:
    found = occurrences(
        "FREQ=WEEKLY;COUNT=4",
        datetime(2024, 1, 1, 9, 0),
        BERLIN,
        utc(2024, 1, 10),
        utc(2024, 12, 31),
    )
    assert found == [utc(2024, 1, 15, 8, 0), utc(2024, 1, 22, 8, 0)]


def test_until_in_utc_stops_at_that_instant_even_in_the_repeated_hour() -> None:
    # UNTIL is 02:15 CET, the second pass through 02:xx; 02:45 CEST (first pass) is earlier.
    found = occurrences(
        "FREQ=DAILY;BYHOUR=2;BYMINUTE=45;UNTIL=20241027T011500Z",
        datetime(2024, 10, 25, 2, 45),
        BERLIN,
        utc(2024, 10, 1),
        utc(2024, 11, 1),
    )
    assert found == [utc(2024, 10, 25, 0, 45), utc(2024, 10, 26, 0, 45), utc(2024, 10, 27, 0, 45)]


def test_a_date_only_until_includes_that_whole_local_day() -> None:
    found = occurrences(
        "FREQ=DAILY;UNTIL=20240103",
        datetime(2024, 1, 1, 18, 0),
        NEW_YORK,
        utc(2024, 1, 1),
        utc(2024, 2, 1),
    )
    assert [to_local(i, NEW_YORK).date() for i in found] == [
        date(2024, 1, 1),
        date(2024, 1, 2),
        date(2024, 1, 3),
    ]


def test_a_rule_with_more_occurrences_than_the_limit_is_refused() -> None:
    with pytest.raises(TooManyOccurrencesError, match="more than 10 occurrences"):
        occurrences(
            "FREQ=DAILY",
            datetime(2024, 1, 1, 9),
            BERLIN,
            utc(2024, 1, 1),
            utc(2024, 2, 1),
            limit=10,
        )
    exactly = occurrences(
        "FREQ=DAILY", datetime(2024, 1, 1, 9), BERLIN, utc(2024, 1, 1), utc(2024, 1, 11), limit=10
    )
    assert len(exactly) == 10


def test_a_rule_that_never_matches_gives_no_occurrences() -> None:
    # 31 February: dateutil alone would search up to the year 9999 for it.
    found = occurrences(
        "FREQ=DAILY;BYMONTH=2;BYMONTHDAY=31",
        datetime(2024, 1, 1, 9),
        BERLIN,
        utc(2024, 1, 1),
        utc(2025, 1, 1),
    )
    assert found == []


@pytest.mark.parametrize(
    ("text", "reason"),
    [
        ("", "it is empty"),
        ("BYDAY=MO", "FREQ is required"),
        ("FREQ=FORTNIGHTLY", "FREQ 'FORTNIGHTLY' is not one of"),
        ("FREQ=MINUTELY", "too frequent"),
        ("FREQ=WEEKLY;BYDAY=MX", "BYDAY value 'MX' is not a weekday"),
        ("FREQ=WEEKLY;BYDAY=1MO", "allowed only with FREQ=MONTHLY or YEARLY"),
        ("FREQ=MONTHLY;BYDAY=60MO", "ordinal in '60MO' must be 1..53"),
        ("FREQ=DAILY;BYHOUR=24", "BYHOUR value '24' is out of range"),
        ("FREQ=DAILY;BYMINUTE=-5", "BYMINUTE value '-5' is out of range"),
        ("FREQ=YEARLY;BYMONTH=13", "BYMONTH value '13' is out of range"),
        ("FREQ=MONTHLY;BYMONTHDAY=0", "BYMONTHDAY value '0' is out of range"),
        ("FREQ=DAILY;BYHOUR=nine", "BYHOUR value 'NINE' is not an integer"),
        ("FREQ=DAILY;INTERVAL=0", "INTERVAL must be a positive integer"),
        ("FREQ=DAILY;COUNT=-1", "COUNT must be a positive integer"),
        ("FREQ=DAILY;COUNT=3;UNTIL=20240101", "COUNT and UNTIL cannot both be given"),
        ("FREQ=DAILY;UNTIL=tomorrow", "UNTIL 'TOMORROW' is not YYYYMMDD"),
        ("FREQ=DAILY;FREQX=WEEKLY", "unknown part 'FREQX'"),
        ("FREQ=DAILY;FREQ=WEEKLY", "FREQ is given twice"),
        ("FREQ=DAILY;;BYHOUR=9", "part '' is not NAME=VALUE"),
        ("FREQ=DAILY;WKST=XX", "WKST 'XX' is not a weekday"),
        ("FREQ=MONTHLY;BYWEEKNO=1", "BYWEEKNO is allowed only with FREQ=YEARLY"),
        ("FREQ=WEEKLY;BYMONTHDAY=1", "BYMONTHDAY is not allowed with FREQ=WEEKLY"),
        ("FREQ=DAILY;BYSETPOS=1", "BYSETPOS needs another BYxxx part"),
        ("FREQ=DAILY\nRRULE:FREQ=WEEKLY", "single RRULE line"),
    ],
)
def test_an_invalid_rrule_is_refused_naming_what_is_wrong(text: str, reason: str) -> None:
    with pytest.raises(InvalidRecurrenceError) as raised:
        occurrences(text, datetime(2024, 1, 1, 9), BERLIN, utc(2024, 1, 1), utc(2024, 2, 1))
    assert reason in str(raised.value)


# --- Calendar -------------------------------------------------------------------------------------


def test_instants_are_grouped_by_the_brand_local_date() -> None:
    late_monday_new_york = utc(2024, 1, 16, 3, 0)  # 22:00 Monday in New York, Tuesday in UTC
    tuesday = utc(2024, 1, 16, 10, 0)
    monday = utc(2024, 1, 15, 14, 0)
    days = group_by_local_date([tuesday, late_monday_new_york, monday], NEW_YORK)
    assert days == {
        date(2024, 1, 15): [monday, late_monday_new_york],
        date(2024, 1, 16): [tuesday],
    }
    assert list(group_by_local_date([tuesday, late_monday_new_york], TOKYO)) == [date(2024, 1, 16)]
    assert all(i.tzinfo is UTC for instants in days.values() for i in instants)
