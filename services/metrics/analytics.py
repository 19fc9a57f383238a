"""The analytics read side: the rollups turned into series, comparisons, top-N lists and stats.
The API and the client report both call these; SQL is in the repository."""

from __future__ import annotations

import uuid
from collections import defaultdict
from datetime import UTC, datetime
from typing import Any
from zoneinfo import ZoneInfo

from services.metrics import repository
from services.metrics.models import (
    Audience,
    AudiencePointOut,
    Backlog,
    BacklogRow,
    ChannelAudience,
    ChannelPublishing,
    Comparison,
    Durations,
    EngagementTotals,
    PeriodTotals,
    PostEngagement,
    PostsEngagement,
    Publishing,
    ResponseRow,
    ResponseStats,
    Series,
    SeriesPoint,
    ShareOfVoice,
    Summary,
    TopEntry,
    TopList,
    TopPost,
    TopPosts,
    Voice,
)
from services.metrics.periods import Period, Unit, buckets
from services.metrics.rollups import ON_TIME_S, engagement_rate
from shared.db import Connection


def _label(value: str) -> str:
    return value or "all"


async def _totals(
    conn: Connection, tenant_id: str, brand_id: str, metric: str, dimension: str, period: Period
) -> dict[str, int]:
    if metric == "authors":
        n = await repository.unique_authors(conn, tenant_id, brand_id, period.start, period.end)
        return {"all": n}
    raw = await repository.totals(
        conn,
        tenant_id=tenant_id,
        brand_id=brand_id,
        metric=metric,
        dimension=dimension,
        start=period.start,
        end=period.end,
    )
    return {_label(k): v for k, v in raw.items()}


async def series(
    conn: Connection,
    *,
    tenant_id: str,
    brand_id: str,
    metric: str,
    dimension: str,
    period: Period,
    unit: Unit,
    tz: ZoneInfo,
    network: str | None = None,
    compare: bool = False,
) -> Series:
    starts = buckets(period.start, period.end, unit, tz)
    if metric == "authors":
        rows = await repository.unique_author_series(
            conn,
            tenant_id=tenant_id,
            brand_id=brand_id,
            start=period.start,
            end=period.end,
            unit=unit,
            tz=tz.key,
        )
    else:
        rows = await repository.series(
            conn,
            tenant_id=tenant_id,
            brand_id=brand_id,
            metric=metric,
            dimension=dimension,
            start=period.start,
            end=period.end,
            unit=unit,
            tz=tz.key,
            network=network,
        )
    per_bucket: dict[datetime, dict[str, int]] = defaultdict(dict)
    for at, value, n in rows:
        per_bucket[at.astimezone(UTC)][_label(value)] = n
    points = []
    for start in starts:
        values = per_bucket.get(start.astimezone(UTC), {})
        points.append(
            SeriesPoint(start=start.astimezone(tz), values=values, total=sum(values.values()))
        )
    if metric == "authors":
        totals = await _totals(conn, tenant_id, brand_id, metric, dimension, period)
    else:
        totals = defaultdict(int)
        for p in points:
            for k, v in p.values.items():
                totals[k] += v
    comparison = None
    if compare:
        prev = period.previous()
        before = await _totals(conn, tenant_id, brand_id, metric, dimension, prev)
        now_total, prev_total = sum(totals.values()), sum(before.values())
        comparison = Comparison(
            previous=PeriodTotals(
                start=prev.start.astimezone(tz),
                end=prev.end.astimezone(tz),
                totals=before,
                total=prev_total,
            ),
            change=now_total - prev_total,
            change_pct=round(100.0 * (now_total - prev_total) / prev_total, 2)
            if prev_total
            else None,
        )
    return Series(
        brand_id=brand_id,
        metric=metric,
        dimension=dimension,
        bucket=unit,
        timezone=tz.key,
        start=period.start.astimezone(tz),
        end=period.end.astimezone(tz),
        points=points,
        totals=dict(totals),
        total=sum(totals.values()),
        comparison=comparison,
    )


async def top(
    conn: Connection, tenant_id: str, brand_id: str, kind: str, period: Period, limit: int
) -> TopList:
    rows = await repository.top_tokens(
        conn,
        tenant_id=tenant_id,
        brand_id=brand_id,
        kind=kind,
        start=period.start,
        end=period.end,
        limit=limit,
    )
    return TopList(
        brand_id=brand_id,
        kind=kind,
        start=period.start,
        end=period.end,
        items=[TopEntry(key=k, count=n) for k, n in rows],
    )


async def top_posts(
    conn: Connection, tenant_id: str, brand_id: str, period: Period, limit: int
) -> TopPosts:
    rows = await repository.top_posts(
        conn,
        tenant_id=tenant_id,
        brand_id=brand_id,
        start=period.start,
        end=period.end,
        limit=limit,
    )
    return TopPosts(
        brand_id=brand_id,
        start=period.start,
        end=period.end,
        items=[TopPost(**r) for r in rows],
    )


def _voices(totals: dict[str, int]) -> list[Voice]:
    everyone = sum(totals.values())
    return [
        Voice(voice=k, mentions=n, share=round(n / everyone, 4) if everyone else 0.0)
        for k, n in sorted(totals.items(), key=lambda kv: (-kv[1], kv[0]))
    ]


async def share_of_voice(
    conn: Connection, tenant_id: str, brand_id: str, period: Period
) -> ShareOfVoice:
    now = await _totals(conn, tenant_id, brand_id, "mentions", "sov", period)
    before = await _totals(conn, tenant_id, brand_id, "mentions", "sov", period.previous())
    return ShareOfVoice(
        brand_id=brand_id,
        start=period.start,
        end=period.end,
        voices=_voices(now),
        previous=_voices(before),
    )


def _durations(count: Any, median: Any, p90: Any) -> Durations:
    return Durations(
        count=int(count),
        median_s=None if median is None else float(median),
        p90_s=None if p90 is None else float(p90),
    )


async def responses(
    conn: Connection,
    tenant_id: str,
    brand_id: str,
    period: Period,
    by: str,
    limit: int,
    after: str | None,
) -> ResponseStats:
    rows = await repository.response_stats(
        conn,
        tenant_id=tenant_id,
        brand_id=brand_id,
        start=period.start,
        end=period.end,
        by=by,
        limit=limit + 1,
        after=after,
    )
    page = rows[:limit]
    return ResponseStats(
        brand_id=brand_id,
        by=by,
        start=period.start,
        end=period.end,
        rows=[
            ResponseRow(
                key=r["key"],
                first_response=_durations(r["first_count"], r["first_median"], r["first_p90"]),
                next_response=_durations(r["next_count"], r["next_median"], r["next_p90"]),
                replies=int(r["replies"]),
                sla_met=int(r["met"]),
                sla_breached=int(r["breached"]),
            )
            for r in page
        ],
        next_cursor=page[-1]["key"] if len(rows) > limit else None,
    )


async def backlog(conn: Connection, tenant_id: str, brand_id: str) -> Backlog:
    rows = [
        BacklogRow(status=r["status"], level=r["level"], count=int(r["n"]))
        for r in await repository.backlog(conn, tenant_id, brand_id)
    ]
    by_status: dict[str, int] = defaultdict(int)
    by_level: dict[str, int] = defaultdict(int)
    for r in rows:
        by_status[r.status] += r.count
        by_level[r.level] += r.count
    return Backlog(
        brand_id=brand_id,
        total=sum(r.count for r in rows),
        by_status=dict(by_status),
        by_level=dict(by_level),
        rows=rows,
    )


def _rate(on_time: int, late: int) -> float | None:
    return round(on_time / (on_time + late), 4) if on_time + late else None


async def publishing(conn: Connection, tenant_id: str, brand_id: str, period: Period) -> Publishing:
    rows = await repository.publishing_stats(
        conn, tenant_id, brand_id, period.start, period.end, ON_TIME_S
    )
    channels = [
        ChannelPublishing(
            network=r["network"],
            channel_id=r["channel_id"],
            scheduled=int(r["scheduled"]),
            published=int(r["published"]),
            failed=int(r["failed"]),
            on_time=int(r["on_time"]),
            late=int(r["late"]),
            on_time_rate=_rate(int(r["on_time"]), int(r["late"])),
            lateness_median_s=r["lateness_median_s"],
            lateness_p90_s=r["lateness_p90_s"],
        )
        for r in rows
    ]
    on_time, late = sum(c.on_time for c in channels), sum(c.late for c in channels)
    return Publishing(
        brand_id=brand_id,
        start=period.start,
        end=period.end,
        scheduled=await repository.scheduled_count(
            conn, tenant_id, brand_id, period.start, period.end
        ),
        published=sum(c.published for c in channels),
        failed=sum(c.failed for c in channels),
        on_time=on_time,
        late=late,
        on_time_rate=_rate(on_time, late),
        channels=channels,
    )


async def posts_engagement(
    conn: Connection,
    tenant_id: str,
    brand_id: str,
    period: Period,
    *,
    sort: str = "published",
    limit: int = 100,
    network: str | None = None,
) -> PostsEngagement:
    args: dict[str, Any] = {
        "tenant_id": tenant_id,
        "brand_id": brand_id,
        "start": period.start,
        "end": period.end,
        "network": network,
    }
    rows = await repository.post_engagement(conn, order=sort, limit=limit, **args)
    t = await repository.engagement_totals(conn, **args)
    return PostsEngagement(
        brand_id=brand_id,
        start=period.start,
        end=period.end,
        sort=sort,
        totals=EngagementTotals(
            posts=int(t.get("posts") or 0),
            measured=int(t.get("measured") or 0),
            likes=int(t.get("likes") or 0),
            reposts=int(t.get("reposts") or 0),
            replies=int(t.get("replies") or 0),
            views=int(t.get("views") or 0),
            engagement=int(t.get("engagement") or 0),
            engagement_rate_mean=None if t.get("rate") is None else float(t["rate"]),
        ),
        items=[
            PostEngagement(**r, engagement_rate=engagement_rate(r["engagement"], r["followers"]))
            for r in rows
        ],
    )


async def audience(
    conn: Connection,
    tenant_id: str,
    brand_id: str,
    period: Period,
    unit: Unit,
    tz: ZoneInfo,
    channel_id: uuid.UUID | None = None,
) -> Audience:
    """Each channel's followers, the last measurement of each bucket in the zone."""
    buckets(period.start, period.end, unit, tz)  # refuses a period of too many buckets
    rows = await repository.audience(
        conn,
        tenant_id=tenant_id,
        brand_id=brand_id,
        start=period.start,
        end=period.end,
        unit=unit,
        tz=tz.key,
        channel_id=channel_id,
    )
    channels = []
    for r in rows:
        first, last = int(r["first"]), int(r["followers"][-1])
        channels.append(
            ChannelAudience(
                channel_id=r["channel_id"],
                network=r["network"],
                first=first,
                last=last,
                change=last - first,
                points=[
                    AudiencePointOut(start=start.astimezone(tz), followers=n, measured_at=at)
                    for start, n, at in zip(r["starts"], r["followers"], r["measured"], strict=True)
                ],
            )
        )
    return Audience(
        brand_id=brand_id,
        bucket=unit,
        timezone=tz.key,
        start=period.start.astimezone(tz),
        end=period.end.astimezone(tz),
        channels=sorted(channels, key=lambda c: (c.network, str(c.channel_id))),
    )


def report_unit(period: Period) -> Unit:
    days = (period.end - period.start).total_seconds() / 86400
    return "hour" if days <= 2 else "day" if days <= 62 else "week" if days <= 366 else "month"


async def summary(
    conn: Connection, tenant_id: str, brand_id: str, period: Period, tz: ZoneInfo
) -> Summary:
    unit = report_unit(period)
    args: dict[str, Any] = {"tenant_id": tenant_id, "brand_id": brand_id, "period": period}
    return Summary(
        brand_id=brand_id,
        timezone=tz.key,
        start=period.start.astimezone(tz),
        end=period.end.astimezone(tz),
        mentions=await series(
            conn, metric="mentions", dimension="all", unit=unit, tz=tz, compare=True, **args
        ),
        sentiment=await series(
            conn, metric="mentions", dimension="sentiment", unit=unit, tz=tz, **args
        ),
        unique_authors=await repository.unique_authors(
            conn, tenant_id, brand_id, period.start, period.end
        ),
        unique_authors_previous=await repository.unique_authors(
            conn, tenant_id, brand_id, period.previous().start, period.start
        ),
        share_of_voice=await share_of_voice(conn, tenant_id, brand_id, period),
        responses=await responses(conn, tenant_id, brand_id, period, "brand", 1, None),
        publishing=await publishing(conn, tenant_id, brand_id, period),
        top_posts=await top_posts(conn, tenant_id, brand_id, period, 10),
        engagement=await posts_engagement(
            conn, tenant_id, brand_id, period, sort="engagement", limit=10
        ),
        audience=await audience(conn, tenant_id, brand_id, period, unit, tz),
        top_hashtags=await top(conn, tenant_id, brand_id, "hashtag", period, 10),
        top_terms=await top(conn, tenant_id, brand_id, "term", period, 10),
        top_authors=await top(conn, tenant_id, brand_id, "author", period, 10),
    )
