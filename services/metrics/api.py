"""The analytics API: series in the brand's zone with comparison, top-N lists, share of voice,
response times, backlog, publishing, CSV export and the client report, scoped by the token.
(No `from __future__ import annotations`: FastAPI resolves the route-local `Caller` alias.)"""

import csv
import io
import uuid
from datetime import UTC, date, datetime
from typing import Annotated, Any, Literal
from zoneinfo import ZoneInfo

from fastapi import APIRouter, Depends, Path, Query
from fastapi.responses import HTMLResponse, Response

from services.metrics import analytics, repository
from services.metrics.models import (
    SERIES,
    Audience,
    Backlog,
    PostsEngagement,
    Publishing,
    Reporting,
    ReportingOut,
    ResponseStats,
    Series,
    ShareOfVoice,
    TopList,
    TopPosts,
)
from services.metrics.periods import BadZone, Period, Unit, local_start, zone
from shared.auth import Principal
from shared.http import ApiError, require_role
from shared.runtime import Runtime

READERS = ("admin", "manager", "agent", "client-approver", "service")
WRITERS = ("admin", "manager")
BRAND_PATTERN = r"^[A-Za-z0-9][A-Za-z0-9_.-]{0,63}$"
MAX_PERIOD_DAYS = 800

BrandPath = Annotated[str, Path(pattern=BRAND_PATTERN, description="the brand's id")]
From = Annotated[
    str,
    Query(alias="from", description="period start: a date (local midnight) or an ISO time"),
]
To = Annotated[str, Query(alias="to", description="period end (exclusive), same forms as from")]
Zone = Annotated[
    str | None,
    Query(description="IANA zone; default: the brand's reporting zone, else UTC", max_length=64),
]
Format = Literal["json", "csv"]
CSV_RESPONSE: dict[int | str, dict[str, Any]] = {
    200: {"content": {"text/csv": {"schema": {"type": "string"}}}, "description": "?format=csv"}
}


def _bad(field: str, message: str) -> ApiError:
    return ApiError(
        422,
        "invalid_request",
        f"invalid fields: {field}",
        details=[{"field": field, "message": message, "type": "value_error"}],
    )


def _instant(field: str, raw: str, tz: ZoneInfo) -> datetime:
    try:
        value: date | datetime = (
            date.fromisoformat(raw) if len(raw) == 10 else datetime.fromisoformat(raw)
        )
    except ValueError as exc:
        raise _bad(field, "expected a date (YYYY-MM-DD) or an ISO 8601 time") from exc
    return local_start(value, tz).astimezone(UTC)


def _csv(header: list[str], rows: list[list[Any]], name: str) -> Response:
    out = io.StringIO()
    writer = csv.writer(out, lineterminator="\n")
    writer.writerow(header)
    writer.writerows(rows)
    return Response(
        out.getvalue(),
        media_type="text/csv; charset=utf-8",
        headers={"Content-Disposition": f'attachment; filename="{name}.csv"'},
    )


def _cell(value: Any) -> Any:
    if value is None:
        return ""
    if isinstance(value, datetime):
        return value.isoformat()
    return value


def build_api(rt: Runtime) -> APIRouter:
    router = APIRouter(tags=["analytics"])
    Caller = Annotated[Principal, Depends(rt.authenticate)]

    async def resolve_zone(caller: Principal, brand_id: str, requested: str | None) -> ZoneInfo:
        if requested is None:
            async with rt.pool.acquire() as conn:
                requested = await repository.brand_timezone(conn, caller.tenant_id, brand_id)
        try:
            return zone(requested or "UTC")
        except BadZone as exc:
            raise _bad("timezone", str(exc)) from exc

    async def scope(
        caller: Principal, brand_id: str, start: str, end: str, tz_name: str | None
    ) -> tuple[Period, ZoneInfo]:
        require_role(caller, READERS)
        tz = await resolve_zone(caller, brand_id, tz_name)
        period = Period(_instant("from", start, tz), _instant("to", end, tz))
        if period.end <= period.start:
            raise _bad("to", "must be after from")
        if (period.end - period.start).days > MAX_PERIOD_DAYS:
            raise _bad("to", f"a period is at most {MAX_PERIOD_DAYS} days")
        return period, tz

    @router.get("/brands/{brand_id}/reporting", response_model=ReportingOut)
    async def get_reporting(brand_id: BrandPath, caller: Caller) -> ReportingOut:
        require_role(caller, READERS)
        async with rt.pool.acquire() as conn:
            zone_name = await repository.brand_timezone(conn, caller.tenant_id, brand_id)
        return ReportingOut(
            brand_id=brand_id, timezone=zone_name or "UTC", explicit=zone_name is not None
        )

    @router.put("/brands/{brand_id}/reporting", response_model=ReportingOut)
    async def put_reporting(brand_id: BrandPath, body: Reporting, caller: Caller) -> ReportingOut:
        """Set the zone the brand's series, day/week/month buckets and reports use by default."""
        require_role(caller, WRITERS)
        try:
            zone(body.timezone)
        except BadZone as exc:
            raise _bad("timezone", str(exc)) from exc
        async with rt.pool.acquire() as conn:
            await repository.set_brand_timezone(conn, caller.tenant_id, brand_id, body.timezone)
        return ReportingOut(brand_id=brand_id, timezone=body.timezone, explicit=True)

    @router.get("/brands/{brand_id}/series", response_model=Series, responses=CSV_RESPONSE)
    async def get_series(
        brand_id: BrandPath,
        caller: Caller,
        start: From,
        end: To,
        metric: Annotated[str, Query(description=", ".join(SERIES))] = "mentions",
        dimension: Annotated[str, Query(description="see docs/metrics.md")] = "all",
        bucket: Unit = "day",
        timezone: Zone = None,
        network: Annotated[str | None, Query(max_length=64)] = None,
        compare: Annotated[bool, Query(description="add the previous period's totals")] = False,
        format: Format = "json",
    ) -> Any:
        """Counts per bucket (hour, or day/week/month in the zone), split by a dimension."""
        if metric not in SERIES:
            raise _bad("metric", f"one of {', '.join(SERIES)}")
        if dimension not in SERIES[metric]:
            raise _bad("dimension", f"for {metric}: one of {', '.join(SERIES[metric])}")
        period, tz = await scope(caller, brand_id, start, end, timezone)
        try:
            async with rt.pool.acquire() as conn:
                result = await analytics.series(
                    conn,
                    tenant_id=caller.tenant_id,
                    brand_id=brand_id,
                    metric=metric,
                    dimension=dimension,
                    period=period,
                    unit=bucket,
                    tz=tz,
                    network=network,
                    compare=compare,
                )
        except ValueError as exc:
            raise _bad("bucket", str(exc)) from exc
        if format == "csv":
            rows = [
                [p.start.isoformat(), value, n]
                for p in result.points
                for value, n in sorted(p.values.items())
            ]
            return _csv(["bucket_start", dimension, "count"], rows, f"{brand_id}-{metric}")
        return result

    @router.get("/brands/{brand_id}/top", response_model=TopList, responses=CSV_RESPONSE)
    async def get_top(
        brand_id: BrandPath,
        caller: Caller,
        start: From,
        end: To,
        kind: Literal["hashtag", "term", "author"] = "hashtag",
        limit: Annotated[int, Query(ge=1, le=100)] = 10,
        timezone: Zone = None,
        format: Format = "json",
    ) -> Any:
        """The most frequent hashtags, terms or authors in the period (mentions counted)."""
        period, _ = await scope(caller, brand_id, start, end, timezone)
        async with rt.pool.acquire() as conn:
            result = await analytics.top(conn, caller.tenant_id, brand_id, kind, period, limit)
        if format == "csv":
            rows = [[e.key, e.count] for e in result.items]
            return _csv([kind, "count"], rows, f"{brand_id}-top-{kind}")
        return result

    @router.get("/brands/{brand_id}/top-posts", response_model=TopPosts)
    async def get_top_posts(
        brand_id: BrandPath,
        caller: Caller,
        start: From,
        end: To,
        limit: Annotated[int, Query(ge=1, le=100)] = 10,
        timezone: Zone = None,
    ) -> TopPosts:
        """Our published posts by the replies heard in the period."""
        period, _ = await scope(caller, brand_id, start, end, timezone)
        async with rt.pool.acquire() as conn:
            return await analytics.top_posts(conn, caller.tenant_id, brand_id, period, limit)

    @router.get("/brands/{brand_id}/share-of-voice", response_model=ShareOfVoice)
    async def get_share_of_voice(
        brand_id: BrandPath, caller: Caller, start: From, end: To, timezone: Zone = None
    ) -> ShareOfVoice:
        """Mentions of the brand vs each competitor's listening queries, and the previous period."""
        period, _ = await scope(caller, brand_id, start, end, timezone)
        async with rt.pool.acquire() as conn:
            return await analytics.share_of_voice(conn, caller.tenant_id, brand_id, period)

    @router.get("/brands/{brand_id}/responses", response_model=ResponseStats)
    async def get_responses(
        brand_id: BrandPath,
        caller: Caller,
        start: From,
        end: To,
        by: Literal["brand", "team", "member"] = "brand",
        limit: Annotated[int, Query(ge=1, le=500)] = 100,
        after: Annotated[str | None, Query(description="next_cursor of the previous page")] = None,
        timezone: Zone = None,
    ) -> ResponseStats:
        """First and next response times (median, p90, count) and SLA met / breached."""
        period, _ = await scope(caller, brand_id, start, end, timezone)
        async with rt.pool.acquire() as conn:
            return await analytics.responses(
                conn, caller.tenant_id, brand_id, period, by, limit, after
            )

    @router.get("/brands/{brand_id}/backlog", response_model=Backlog)
    async def get_backlog(brand_id: BrandPath, caller: Caller) -> Backlog:
        """Conversations not closed, now, by status and priority level."""
        require_role(caller, READERS)
        async with rt.pool.acquire() as conn:
            return await analytics.backlog(conn, caller.tenant_id, brand_id)

    @router.get("/brands/{brand_id}/publishing", response_model=Publishing, responses=CSV_RESPONSE)
    async def get_publishing(
        brand_id: BrandPath,
        caller: Caller,
        start: From,
        end: To,
        timezone: Zone = None,
        format: Format = "json",
    ) -> Any:
        """Posts scheduled, published and failed per channel; on-time rate and lateness."""
        period, _ = await scope(caller, brand_id, start, end, timezone)
        async with rt.pool.acquire() as conn:
            result = await analytics.publishing(conn, caller.tenant_id, brand_id, period)
        if format == "csv":
            header = [
                "network",
                "channel_id",
                "scheduled",
                "published",
                "failed",
                "on_time",
                "late",
                "on_time_rate",
                "lateness_median_s",
                "lateness_p90_s",
            ]
            rows = [[_cell(getattr(c, h)) for h in header] for c in result.channels]
            return _csv(header, rows, f"{brand_id}-publishing")
        return result

    @router.get(
        "/brands/{brand_id}/engagement", response_model=PostsEngagement, responses=CSV_RESPONSE
    )
    async def get_engagement(
        brand_id: BrandPath,
        caller: Caller,
        start: From,
        end: To,
        sort: Annotated[
            Literal["published", "engagement"],
            Query(description="newest first, or top posts by engagement"),
        ] = "published",
        limit: Annotated[int, Query(ge=1, le=500)] = 100,
        network: Annotated[str | None, Query(max_length=64)] = None,
        timezone: Zone = None,
        format: Format = "json",
    ) -> Any:
        """Our posts published in the period, per channel, with their latest likes, reposts,
        replies, views, engagement and engagement rate (engagement / followers at measurement)."""
        period, _ = await scope(caller, brand_id, start, end, timezone)
        async with rt.pool.acquire() as conn:
            result = await analytics.posts_engagement(
                conn, caller.tenant_id, brand_id, period, sort=sort, limit=limit, network=network
            )
        if format == "csv":
            header = [
                "post_id",
                "channel_id",
                "network",
                "external_id",
                "url",
                "published_at",
                "likes",
                "reposts",
                "replies",
                "views",
                "engagement",
                "followers",
                "engagement_rate",
                "measured_at",
            ]
            rows = [[_cell(getattr(p, h)) for h in header] for p in result.items]
            return _csv(header, rows, f"{brand_id}-engagement")
        return result

    @router.get("/brands/{brand_id}/audience", response_model=Audience, responses=CSV_RESPONSE)
    async def get_audience(
        brand_id: BrandPath,
        caller: Caller,
        start: From,
        end: To,
        bucket: Unit = "day",
        channel_id: Annotated[uuid.UUID | None, Query()] = None,
        timezone: Zone = None,
        format: Format = "json",
    ) -> Any:
        """Each channel's followers over time: the last measurement of each bucket (hour, or
        day/week/month in the zone)."""
        period, tz = await scope(caller, brand_id, start, end, timezone)
        try:
            async with rt.pool.acquire() as conn:
                result = await analytics.audience(
                    conn, caller.tenant_id, brand_id, period, bucket, tz, channel_id
                )
        except ValueError as exc:
            raise _bad("bucket", str(exc)) from exc
        if format == "csv":
            rows = [
                [p.start.isoformat(), c.network, str(c.channel_id), p.followers,
                 p.measured_at.isoformat()]
                for c in result.channels
                for p in c.points
            ]  # fmt: skip
            header = ["bucket_start", "network", "channel_id", "followers", "measured_at"]
            return _csv(header, rows, f"{brand_id}-audience")
        return result

    @router.get(
        "/brands/{brand_id}/report",
        response_class=Response,
        responses={
            200: {
                "content": {"text/html": {}, "application/pdf": {}},
                "description": "the client report",
            }
        },
    )
    async def get_report(
        brand_id: BrandPath,
        caller: Caller,
        start: From,
        end: To,
        format: Literal["html", "pdf"] = "html",
        timezone: Zone = None,
    ) -> Response:
        """A client report for the brand and period: volume, sentiment, share of voice, response
        times, publishing and top posts, with charts; HTML or PDF."""
        # Loaded on the first report, not at start: matplotlib and reportlab are ~45 MB of the
        # process's memory, which the consumers that do the service's steady work never use.
        from services.metrics import report

        period, tz = await scope(caller, brand_id, start, end, timezone)
        async with rt.pool.acquire() as conn:
            figures = await analytics.summary(conn, caller.tenant_id, brand_id, period, tz)
        if format == "pdf":
            return Response(
                await report.render_pdf(figures),
                media_type="application/pdf",
                headers={"Content-Disposition": f'attachment; filename="{brand_id}-report.pdf"'},
            )
        return HTMLResponse(await report.render_html(figures))

    return router
