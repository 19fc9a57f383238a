"""The analytics API's request and response shapes (the OpenAPI is generated from them)."""

from __future__ import annotations

import uuid
from datetime import datetime

from pydantic import BaseModel, Field

# metric -> the dimensions a series of it can be split by
SERIES: dict[str, tuple[str, ...]] = {
    "mentions": ("all", "sentiment", "intent", "language", "kind", "sov"),
    "authors": ("unique",),
    "engagement": ("likes", "reposts", "replies", "views"),
    "inbox": ("created", "replies", "sla_met", "sla_breached"),
    "posts": ("published", "failed", "on_time", "late"),
}


class Reporting(BaseModel):
    """The zone a brand's reports use when a request names none."""

    timezone: str = Field(examples=["Europe/Berlin"], max_length=64)


class ReportingOut(Reporting):
    brand_id: str
    explicit: bool = Field(description="false: nothing was set and UTC applies")


class PeriodTotals(BaseModel):
    start: datetime
    end: datetime
    totals: dict[str, int]
    total: int


class Comparison(BaseModel):
    previous: PeriodTotals
    change: int = Field(description="total minus the previous period's total")
    change_pct: float | None = Field(description="null when the previous total is 0")


class SeriesPoint(BaseModel):
    start: datetime = Field(description="bucket start in the requested zone")
    values: dict[str, int] = Field(description="count per dimension value ('all' if unsplit)")
    total: int


class Series(BaseModel):
    brand_id: str
    metric: str
    dimension: str
    bucket: str
    timezone: str
    start: datetime
    end: datetime
    points: list[SeriesPoint]
    totals: dict[str, int]
    total: int
    comparison: Comparison | None = None


class TopEntry(BaseModel):
    key: str
    count: int


class TopList(BaseModel):
    brand_id: str
    kind: str
    start: datetime
    end: datetime
    items: list[TopEntry]


class TopPost(BaseModel):
    post_id: uuid.UUID
    replies: int
    network: str | None
    url: str | None
    external_id: str | None
    published_at: datetime | None


class TopPosts(BaseModel):
    brand_id: str
    start: datetime
    end: datetime
    items: list[TopPost]


class Voice(BaseModel):
    voice: str = Field(description="'brand' or 'competitor:<name>'")
    mentions: int
    share: float = Field(description="mentions / all voices' mentions, 0..1")


class ShareOfVoice(BaseModel):
    brand_id: str
    start: datetime
    end: datetime
    voices: list[Voice]
    previous: list[Voice]


class Durations(BaseModel):
    count: int
    median_s: float | None
    p90_s: float | None


class ResponseRow(BaseModel):
    key: str = Field(description="team or member id ('' for the brand or for nobody)")
    first_response: Durations
    next_response: Durations
    replies: int
    sla_met: int
    sla_breached: int


class ResponseStats(BaseModel):
    brand_id: str
    by: str
    start: datetime
    end: datetime
    rows: list[ResponseRow]
    next_cursor: str | None = Field(description="pass as `after` for the next page")


class BacklogRow(BaseModel):
    status: str
    level: str
    count: int


class Backlog(BaseModel):
    brand_id: str
    total: int
    by_status: dict[str, int]
    by_level: dict[str, int]
    rows: list[BacklogRow]


class ChannelPublishing(BaseModel):
    network: str
    channel_id: uuid.UUID | None
    scheduled: int = Field(
        description="this channel's schedules due in the period (per-channel post.scheduled)"
    )
    published: int
    failed: int
    on_time: int
    late: int
    on_time_rate: float | None
    lateness_median_s: float | None
    lateness_p90_s: float | None


class Publishing(BaseModel):
    brand_id: str
    start: datetime
    end: datetime
    scheduled: int = Field(description="posts whose latest scheduled time is in the period")
    published: int
    failed: int
    on_time: int
    late: int
    on_time_rate: float | None
    channels: list[ChannelPublishing]


class PostEngagement(BaseModel):
    """A post of ours on one channel and its latest counters as the network reported them."""

    post_id: uuid.UUID
    channel_id: uuid.UUID
    network: str
    external_id: str | None
    url: str | None
    published_at: datetime
    likes: int | None
    reposts: int | None
    replies: int | None
    views: int | None
    engagement: int | None = Field(description="likes + reposts + replies; null: not measured")
    followers: int | None = Field(description="the channel's audience at the measurement")
    engagement_rate: float | None = Field(description="engagement / followers")
    measured_at: datetime | None


class EngagementTotals(BaseModel):
    posts: int = Field(description="posts published in the period (per channel)")
    measured: int = Field(description="of which have a measurement")
    likes: int
    reposts: int
    replies: int
    views: int
    engagement: int
    engagement_rate_mean: float | None = Field(
        description="mean of the posts' engagement rates (posts with a known audience)"
    )


class PostsEngagement(BaseModel):
    brand_id: str
    start: datetime
    end: datetime
    sort: str
    totals: EngagementTotals
    items: list[PostEngagement]


class AudiencePointOut(BaseModel):
    start: datetime = Field(description="bucket start in the requested zone")
    followers: int = Field(description="the bucket's last measurement")
    measured_at: datetime


class ChannelAudience(BaseModel):
    channel_id: uuid.UUID
    network: str
    first: int = Field(description="followers at the period's first measurement")
    last: int = Field(description="followers at the period's last measurement")
    change: int
    points: list[AudiencePointOut] = Field(description="buckets with a measurement, in order")


class Audience(BaseModel):
    brand_id: str
    bucket: str
    timezone: str
    start: datetime
    end: datetime
    channels: list[ChannelAudience]


class Summary(BaseModel):
    """The figures of a client report."""

    brand_id: str
    timezone: str
    start: datetime
    end: datetime
    mentions: Series
    sentiment: Series
    unique_authors: int
    unique_authors_previous: int
    share_of_voice: ShareOfVoice
    responses: ResponseStats
    publishing: Publishing
    top_posts: TopPosts
    engagement: PostsEngagement
    audience: Audience
    top_hashtags: TopList
    top_terms: TopList
    top_authors: TopList
