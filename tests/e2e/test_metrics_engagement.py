"""Engagement, audience and per-channel publishing through the metrics consumer on the real
database, read back through the analytics API: the newest measurement wins whatever the arrival
order, a redelivered batch counts once, and lateness uses each delivery's own due time."""

from __future__ import annotations

import csv
import io
import json
import uuid
from collections.abc import Sequence
from datetime import UTC, datetime, timedelta
from typing import Any

import asyncpg
import httpx
import pytest
from faststream.kafka import KafkaBroker

from services.metrics.handlers import POST_MODELS, PostEvent, apply_posts
from shared.consumer import IdempotentBatchConsumer, Record
from shared.events import (
    EventModel,
    PostEngagementPayload,
    PostLifecyclePayload,
    PostPublishedPayload,
    envelope_for,
)
from shared.metrics import ServiceMetrics
from shared.topics import POSTS
from tests.conftest import SessionStack
from tests.support import ServiceProcess, token

Json = dict[str, Any]
BRAND = "brand-e"
DAY = datetime(2026, 11, 2, tzinfo=UTC)
PERIOD = {"from": "2026-11-02", "to": "2026-11-05"}
MASTODON, BLUESKY = uuid.uuid4(), uuid.uuid4()
P1, P2, P3, P4 = (uuid.uuid4() for _ in range(4))


def t(hours: float, day: int = 0) -> datetime:
    return DAY + timedelta(days=day, hours=hours)


def _event(tenant: str, payload: EventModel, event_type: str, at: datetime) -> Json:
    return envelope_for(
        payload, event_type=event_type, tenant_id=tenant, brand_id=BRAND, occurred_at=at
    )


def scheduled(tenant: str, post: uuid.UUID, channel: uuid.UUID | None, due: datetime) -> Json:
    network = None if channel is None else "mastodon" if channel == MASTODON else "bluesky"
    payload = PostLifecyclePayload(
        post_id=post, channel_id=channel, network=network, scheduled_at=due
    )
    return _event(tenant, payload, "post.scheduled", due - timedelta(hours=1))


def cancelled(tenant: str, post: uuid.UUID, channel: uuid.UUID) -> Json:
    payload = PostLifecyclePayload(post_id=post, channel_id=channel, network="bluesky")
    return _event(tenant, payload, "post.cancelled", t(1))


def published(
    tenant: str, post: uuid.UUID, channel: uuid.UUID, at: datetime, due: datetime | None
) -> Json:
    payload = PostPublishedPayload(
        post_id=post,
        channel_id=channel,
        network="mastodon" if channel == MASTODON else "bluesky",
        external_id=f"x-{post.hex[:6]}-{at:%d%H%M}",
        url=f"https://social.example/@brand/{post.hex[:6]}",
        published_at=at,
        scheduled_at=due,
    )
    return _event(tenant, payload, "post.published", at)


def measured(
    tenant: str, post: uuid.UUID, channel: uuid.UUID, at: datetime, **counts: int | None
) -> Json:
    payload = PostEngagementPayload(
        post_id=post,
        channel_id=channel,
        network="mastodon" if channel == MASTODON else "bluesky",
        external_id=f"x-{post.hex[:6]}",
        measured_at=at,
        **counts,
    )
    return _event(tenant, payload, "post.engagement_updated", at)


def _records(stack: SessionStack, tenant: str, events: Sequence[Json], first: int) -> list[Record]:
    return [
        Record(
            topic=stack.topic(POSTS.name),
            partition=0,
            offset=first + n,
            key=f"{tenant}:{e['payload']['post_id']}".encode(),
            value=json.dumps(e).encode(),
            headers=(),
        )
        for n, e in enumerate(events)
    ]


def posts_consumer(stack: SessionStack, pool: asyncpg.Pool) -> IdempotentBatchConsumer[PostEvent]:
    """Metrics' consumer of smm.posts.v1, fed records directly by the tests."""
    return IdempotentBatchConsumer[PostEvent](
        name="metrics.posts",
        pool_provider=lambda: pool,
        broker=KafkaBroker(stack.bootstrap),
        metrics=ServiceMetrics("test"),
        models=POST_MODELS,
        effect=apply_posts,
    )


async def _get(http: httpx.AsyncClient, url: str, headers: dict[str, str], **params: Any) -> Json:
    r = await http.get(url, params=params, headers=headers)
    assert r.status_code == 200, r.text
    return dict(r.json())


async def test_engagement_audience_and_per_channel_publishing_from_the_events(
    stack: SessionStack,
    services: dict[str, ServiceProcess],
    metrics_pool: asyncpg.Pool,
    http: httpx.AsyncClient,
    tenant: str,
) -> None:
    consumer = posts_consumer(stack, metrics_pool)
    lifecycle = [
        # P1 on two channels at their own times (per-channel post.scheduled).
        scheduled(tenant, P1, MASTODON, t(10)),
        scheduled(tenant, P1, BLUESKY, t(10.5)),
        # P2 from an older publisher: one post.scheduled without a channel.
        scheduled(tenant, P2, None, t(12)),
        # P3 recurs daily at 09:00 on mastodon; P4 is cancelled on bluesky.
        scheduled(tenant, P3, MASTODON, t(9)),
        scheduled(tenant, P4, BLUESKY, t(15)),
        cancelled(tenant, P4, BLUESKY),
        published(tenant, P1, MASTODON, t(10, 0) + timedelta(seconds=30), t(10)),  # on time
        published(tenant, P1, BLUESKY, t(10.5) + timedelta(minutes=5), None),  # late: channel's
        published(tenant, P2, MASTODON, t(12) + timedelta(seconds=20), None),  # on time: post's
        published(tenant, P3, MASTODON, t(9) + timedelta(seconds=10), t(9)),  # on time
        published(tenant, P3, MASTODON, t(9, 1) + timedelta(minutes=2), t(9, 1)),  # 2nd run, late
    ]
    engagement = [
        measured(tenant, P1, MASTODON, t(11), likes=4, reposts=0, replies=1, followers=1000),
        measured(
            tenant, P1, MASTODON, t(13.5), likes=10, reposts=2, replies=3, views=500, followers=1010
        ),
        measured(tenant, P1, BLUESKY, t(11), reposts=1, replies=1),  # no likes, no audience
        measured(tenant, P3, MASTODON, t(10, 1), likes=7, replies=0, views=80, followers=1020),
    ]
    # Measured between the two above but arriving after them, under its own event id.
    late = measured(tenant, P1, MASTODON, t(13.2), likes=6, reposts=1, followers=1005)
    batch = _records(stack, tenant, lifecycle + engagement, 70_000)
    await consumer.handle(batch)
    await consumer.handle(batch)  # redelivered
    await consumer.handle(batch[9:] + batch[:2])  # partly redelivered
    await consumer.handle(_records(stack, tenant, [late], 70_100))
    await consumer.handle(_records(stack, tenant, [late], 70_100))

    admin = token(stack.auth_secret, tenant, "admin")
    brand = services["metrics"].url + f"/api/v1/brands/{BRAND}"

    # Per-post engagement: the newest counters, engagement = likes + reposts + replies, rate per
    # follower at that measurement; a post without a measurement is listed with nulls.
    got = await _get(http, f"{brand}/engagement", admin, **PERIOD)
    rows = {(i["post_id"], i["channel_id"]): i for i in got["items"]}
    p1m = rows[(str(P1), str(MASTODON))]
    assert (p1m["likes"], p1m["reposts"], p1m["replies"], p1m["views"]) == (10, 2, 3, 500)
    assert (p1m["engagement"], p1m["followers"]) == (15, 1010)
    assert p1m["engagement_rate"] == 15 / 1010
    assert datetime.fromisoformat(p1m["measured_at"]) == t(13.5)
    p1b = rows[(str(P1), str(BLUESKY))]
    assert (p1b["likes"], p1b["engagement"], p1b["engagement_rate"]) == (None, 2, None)
    p2 = rows[(str(P2), str(MASTODON))]
    assert (p2["engagement"], p2["measured_at"]) == (None, None)
    p3 = rows[(str(P3), str(MASTODON))]  # the series' latest run
    assert datetime.fromisoformat(p3["published_at"]) == t(9, 1) + timedelta(minutes=2)
    assert (p3["engagement"], p3["engagement_rate"]) == (7, 7 / 1020)
    totals = got["totals"]
    assert (totals["posts"], totals["measured"], totals["engagement"]) == (4, 3, 24)
    assert (totals["likes"], totals["reposts"], totals["replies"], totals["views"]) == (
        17,
        3,
        4,
        580,
    )
    assert totals["engagement_rate_mean"] == pytest.approx((15 / 1010 + 7 / 1020) / 2)

    top = await _get(http, f"{brand}/engagement", admin, sort="engagement", limit=2, **PERIOD)
    assert [(i["post_id"], i["engagement"]) for i in top["items"]] == [(str(P1), 15), (str(P3), 7)]
    r = await http.get(
        f"{brand}/engagement",
        params={"format": "csv", "sort": "engagement", **PERIOD},
        headers=admin,
    )
    table = list(csv.DictReader(io.StringIO(r.text)))
    assert r.headers["content-type"].startswith("text/csv")
    assert [row["engagement"] for row in table] == ["15", "7", "2", ""]
    assert table[0]["engagement_rate"] == str(15 / 1010)

    # Audience: the last measurement of each hour, and of each day in the brand's zone.
    hours = await _get(http, f"{brand}/audience", admin, bucket="hour", **PERIOD)
    [mastodon] = hours["channels"]  # bluesky reported no followers
    assert mastodon["channel_id"] == str(MASTODON)
    assert [(datetime.fromisoformat(p["start"]), p["followers"]) for p in mastodon["points"]] == [
        (t(11), 1000),
        (t(13), 1010),  # the 13:12 count arrived late and lost
        (t(10, 1), 1020),
    ]
    assert (mastodon["first"], mastodon["last"], mastodon["change"]) == (1000, 1020, 20)
    r = await http.put(f"{brand}/reporting", json={"timezone": "America/New_York"}, headers=admin)
    assert r.status_code == 200, r.text
    days = await _get(http, f"{brand}/audience", admin, bucket="day", **PERIOD)
    assert [(p["start"], p["followers"]) for p in days["channels"][0]["points"]] == [
        ("2026-11-02T00:00:00-05:00", 1010),
        ("2026-11-03T00:00:00-05:00", 1020),
    ]
    r = await http.get(f"{brand}/audience", params={"format": "csv", **PERIOD}, headers=admin)
    assert list(csv.reader(io.StringIO(r.text)))[1][:4] == [
        "2026-11-02T00:00:00-05:00",
        "mastodon",
        str(MASTODON),
        "1010",
    ]

    # Publishing per channel: schedules from per-channel events, lateness against each
    # delivery's own due time (the recurring post's second run is 120 s late, not a day).
    pub = await _get(http, f"{brand}/publishing", admin, timezone="UTC", **PERIOD)
    assert (pub["scheduled"], pub["published"], pub["on_time"], pub["late"]) == (3, 5, 3, 2)
    channels = {c["channel_id"]: c for c in pub["channels"]}
    m, b = channels[str(MASTODON)], channels[str(BLUESKY)]
    assert (m["scheduled"], m["published"], m["on_time"], m["late"]) == (2, 4, 3, 1)
    assert (b["scheduled"], b["published"], b["on_time"], b["late"]) == (1, 1, 0, 1)
    assert b["lateness_median_s"] == 300.0
    # 10, 20, 30 and 120 s late on mastodon.
    assert (m["lateness_median_s"], m["lateness_p90_s"]) == (25.0, pytest.approx(93.0))
    r = await http.get(f"{brand}/publishing", params={"format": "csv", **PERIOD}, headers=admin)
    published_per_channel = {
        row["channel_id"]: row["published"] for row in csv.DictReader(io.StringIO(r.text))
    }
    assert published_per_channel == {str(MASTODON): "4", str(BLUESKY): "1"}
    posts = await _get(
        http, f"{brand}/series", admin, metric="posts", dimension="published", **PERIOD
    )
    assert posts["total"] == 5  # the redeliveries counted once


async def test_audience_buckets_from_the_stored_hours_across_dst_and_a_half_hour_zone(
    stack: SessionStack,
    services: dict[str, ServiceProcess],
    metrics_pool: asyncpg.Pool,
    http: httpx.AsyncClient,
    tenant: str,
) -> None:
    consumer = posts_consumer(stack, metrics_pool)

    def utc(day: int, hour: int, minute: int) -> datetime:
        return datetime(2026, 10, day, hour, minute, tzinfo=UTC)

    # Berlin leaves summer time on 25 Oct 2026 (a 25-hour day); Kolkata is UTC+05:30, so the
    # 18:40 UTC count is on the next local day while its stored hour (18:00 UTC) is not.
    followers = [
        (utc(24, 21, 30), 100),  # 23:30 CEST on the 24th
        (utc(24, 22, 30), 101),  # 00:30 CEST on the 25th
        (utc(25, 1, 30), 102),  # 02:30 CET, the repeated hour
        (utc(25, 22, 30), 104),  # 23:30 CET, the 25th's last hour
        (utc(25, 23, 10), 105),  # 00:10 CET on the 26th
        (utc(26, 17, 40), 106),  # 23:10 IST on the 26th
        (utc(26, 18, 10), 99),  # replaced by the later count of the same UTC hour
        (utc(26, 18, 40), 107),  # 00:10 IST on the 27th
        # Berlin enters summer time on 29 Mar 2026 (a 23-hour day).
        (datetime(2026, 3, 28, 22, 59, tzinfo=UTC), 10),  # 23:59 CET on the 28th
        (datetime(2026, 3, 28, 23, 0, tzinfo=UTC), 11),  # 00:00 CET on the 29th
        (datetime(2026, 3, 29, 21, 59, tzinfo=UTC), 12),  # 23:59 CEST on the 29th
        (datetime(2026, 3, 29, 22, 0, tzinfo=UTC), 13),  # 00:00 CEST on the 30th
    ]
    events = [measured(tenant, P1, MASTODON, at, followers=n) for at, n in followers]
    await consumer.handle(_records(stack, tenant, events, 80_000))

    admin = token(stack.auth_secret, tenant, "admin")
    url = services["metrics"].url + f"/api/v1/brands/{BRAND}/audience"

    async def points(zone: str, bucket: str, start: str, end: str) -> tuple[list[Any], Json]:
        got = await _get(
            http, url, admin, bucket=bucket, timezone=zone, **{"from": start, "to": end}
        )
        [channel] = got["channels"]
        return [(p["start"], p["followers"]) for p in channel["points"]], channel

    days, channel = await points("Europe/Berlin", "day", "2026-10-24", "2026-10-27")
    assert days == [
        ("2026-10-24T00:00:00+02:00", 100),
        ("2026-10-25T00:00:00+02:00", 104),
        ("2026-10-26T00:00:00+01:00", 107),
    ]
    assert (channel["first"], channel["last"], channel["change"]) == (100, 107, 7)
    hours, _ = await points(
        "Europe/Berlin", "hour", "2026-10-25T00:00:00+02:00", "2026-10-25T03:00:00+01:00"
    )
    assert hours == [("2026-10-25T00:00:00+02:00", 101), ("2026-10-25T02:00:00+01:00", 102)]
    weeks, _ = await points("Europe/Berlin", "week", "2026-10-19", "2026-11-02")
    assert weeks == [("2026-10-19T00:00:00+02:00", 104), ("2026-10-26T00:00:00+01:00", 107)]
    months, _ = await points("Europe/Berlin", "month", "2026-10-01", "2026-11-01")
    assert months == [("2026-10-01T00:00:00+02:00", 107)]

    spring, _ = await points("Europe/Berlin", "day", "2026-03-28", "2026-03-31")
    assert spring == [
        ("2026-03-28T00:00:00+01:00", 10),
        ("2026-03-29T00:00:00+01:00", 12),
        ("2026-03-30T00:00:00+02:00", 13),
    ]

    kolkata, channel = await points("Asia/Kolkata", "day", "2026-10-26", "2026-10-28")
    assert kolkata == [("2026-10-26T00:00:00+05:30", 106), ("2026-10-27T00:00:00+05:30", 107)]
    assert (channel["first"], channel["last"], channel["change"]) == (104, 107, 3)
