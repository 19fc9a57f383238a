"""Our posts' engagement: the newest measurement wins and the rate is engagement per follower.
(Audience buckets are reduced in SQL: tests/e2e/test_metrics_engagement.py.)"""

from __future__ import annotations

import uuid
from datetime import UTC, datetime, timedelta
from zoneinfo import ZoneInfo

from services.metrics import rollups
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
