"""Our posts' engagement and the channels' audience: the newest measurement wins, the rate is
engagement per follower, and audience buckets take each local day's last value across DST."""

from __future__ import annotations

import uuid
from datetime import UTC, datetime, timedelta
from zoneinfo import ZoneInfo

from services.metrics import rollups
from services.metrics.rollups import AudiencePoint, last_per_bucket
from shared.events import PostEngagementPayload

POST, CHANNEL = uuid.uuid4(), uuid.uuid4()
BERLIN = ZoneInfo("Europe/Berlin")
T0 = datetime(2026, 11, 2, 9, 0, tzinfo=UTC)


def measured(
    minutes: int, likes: int | None = 1, followers: int | None = 100, **extra: int | None
) -> PostEngagementPayload:
    return PostEngagementPayload(
        post_id=POST,
        channel_id=CHANNEL,
        network="mastodon",
        external_id="109",
        measured_at=T0 + timedelta(minutes=minutes),
        likes=likes,
        followers=followers,
        **extra,
    )


def latest(*items: PostEngagementPayload) -> list[PostEngagementPayload]:
    return rollups.newest(
        items, key=lambda p: (p.post_id, p.channel_id), at=lambda p: p.measured_at
    )


def test_the_newest_measurement_wins_in_any_arrival_order() -> None:
    old, new = measured(0, likes=3), measured(30, likes=7)
    assert latest(old, new) == [new]
    assert latest(new, old) == [new]  # a late or redelivered older count never overwrites
    assert latest(new, old, new) == [new]


def test_a_tie_keeps_the_first_measurement_and_other_posts_stay_apart() -> None:
    first, same_time = measured(10, likes=1), measured(10, likes=2)
    assert latest(first, same_time) == [first]
    other = measured(0, likes=9).model_copy(update={"post_id": uuid.uuid4()})
    assert {p.likes for p in latest(first, other)} == {1, 9}


def test_engagement_is_likes_reposts_replies_and_the_rate_is_per_follower() -> None:
    p = measured(0, likes=12, followers=400, reposts=3, replies=5, views=9000)
    assert rollups.engagement(p) == 20  # views are reach, not engagement
    assert rollups.engagement_rate(20, 400) == 0.05
    # A counter the network does not report counts 0; no audience, no rate.
    assert rollups.engagement(measured(0, likes=None, followers=None, replies=2)) == 2
    assert rollups.engagement_rate(2, None) is None
    assert rollups.engagement_rate(2, 0) is None
    assert rollups.engagement_rate(None, 10) is None


def utc(year: int, month: int, day: int, hour: int, minute: int) -> datetime:
    return datetime(year, month, day, hour, minute, tzinfo=UTC)


def elapsed(a: datetime, b: datetime) -> timedelta:
    """Real time between two bucket starts (Python subtracts same-zone times as wall times)."""
    return b.astimezone(UTC) - a.astimezone(UTC)


def test_day_buckets_take_each_local_days_last_value_across_the_autumn_change() -> None:
    # Berlin leaves summer time on 25 Oct 2026 at 03:00 CEST: that day has 25 hours.
    points = [
        (utc(2026, 10, 24, 21, 30), 100),  # 23:30 CEST on the 24th
        (utc(2026, 10, 24, 22, 30), 101),  # 00:30 CEST on the 25th
        (utc(2026, 10, 25, 1, 30), 102),  # 02:30 CET on the 25th, the repeated hour
        (utc(2026, 10, 25, 22, 30), 104),  # 23:30 CET, the 25th's last hour
        (utc(2026, 10, 25, 23, 10), 105),  # 00:10 CET on the 26th
    ]
    got = last_per_bucket(reversed(points), "day", BERLIN)  # arrival order does not matter
    assert [(p.start.isoformat(), p.followers) for p in got] == [
        ("2026-10-24T00:00:00+02:00", 100),
        ("2026-10-25T00:00:00+02:00", 104),
        ("2026-10-26T00:00:00+01:00", 105),
    ]
    assert got[1].measured_at == utc(2026, 10, 25, 22, 30)
    assert elapsed(got[1].start, got[2].start) == timedelta(hours=25)


def test_day_buckets_across_the_spring_change_and_hour_week_month_buckets() -> None:
    # 29 Mar 2026 has 23 hours in Berlin.
    points = [
        (utc(2026, 3, 28, 22, 59), 10),  # 23:59 CET on the 28th
        (utc(2026, 3, 28, 23, 0), 11),  # 00:00 CET on the 29th
        (utc(2026, 3, 29, 21, 59), 12),  # 23:59 CEST on the 29th
        (utc(2026, 3, 29, 22, 0), 13),  # 00:00 CEST on the 30th
    ]
    days = last_per_bucket(points, "day", BERLIN)
    assert [(p.start.isoformat(), p.followers) for p in days] == [
        ("2026-03-28T00:00:00+01:00", 10),
        ("2026-03-29T00:00:00+01:00", 12),
        ("2026-03-30T00:00:00+02:00", 13),
    ]
    assert elapsed(days[1].start, days[2].start) == timedelta(hours=23)
    hours = last_per_bucket(points, "hour", BERLIN)
    assert [p.followers for p in hours] == [10, 11, 12, 13]  # UTC hours, one value each
    weeks = last_per_bucket(points, "week", BERLIN)  # Monday 23 Mar and Monday 30 Mar
    assert [(p.start.isoformat(), p.followers) for p in weeks] == [
        ("2026-03-23T00:00:00+01:00", 12),
        ("2026-03-30T00:00:00+02:00", 13),
    ]
    assert last_per_bucket(points, "month", BERLIN) == [
        AudiencePoint(datetime(2026, 3, 1, tzinfo=BERLIN), 13, utc(2026, 3, 29, 22, 0))
    ]


def test_a_half_hour_zone_splits_the_day_at_local_midnight() -> None:
    kolkata = ZoneInfo("Asia/Kolkata")
    points = [(utc(2026, 11, 1, 18, 20), 7), (utc(2026, 11, 1, 18, 40), 8)]  # 23:50, 00:10 IST
    got = last_per_bucket(points, "day", kolkata)
    assert [(p.start.isoformat(), p.followers) for p in got] == [
        ("2026-11-01T00:00:00+05:30", 7),
        ("2026-11-02T00:00:00+05:30", 8),
    ]
