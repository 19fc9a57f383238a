"""Ingest's HTTP API: brands, listening queries, sources and their status, webhooks, mentions."""

import math
import uuid
from collections.abc import Mapping
from datetime import UTC, datetime, timedelta
from typing import Annotated, Any, Literal
from zoneinfo import ZoneInfo, ZoneInfoNotFoundError

from fastapi import APIRouter, Depends, Query, Request, Response
from pydantic import AwareDatetime, BaseModel, Field, StringConstraints, ValidationError

from services.ingest import repository, secrets
from services.ingest.connectors.base import (
    BadConfig,
    PullConnector,
    SignatureInvalid,
    WebhookConnector,
    WebhookRequest,
)
from services.ingest.connectors.generic import new_signing_secret
from services.ingest.listening import MatchInput, QueryParseError, evaluate, parse
from services.ingest.matching import QueryIndex
from services.ingest.pipeline import LanguageDetector, SourceContext, ingest_items, mention_kind
from services.ingest.webhook_guard import RateLimiter, check_fresh
from shared.auth import Principal
from shared.crypto import SecretBox
from shared.events import BrandId
from shared.http import ApiError, ErrorBody, require_role, unprocessable, validated_config
from shared.pagination import BadCursor, decode_cursor, encode_cursor
from shared.runtime import Runtime
from shared.settings import IngestSettings

WRITERS = ("admin", "manager")
READERS = ("admin", "manager", "agent", "client-approver")

Name = Annotated[str, StringConstraints(min_length=1, max_length=200, strip_whitespace=True)]
Expression = Annotated[str, StringConstraints(min_length=1, max_length=4000)]


# --- models -------------------------------------------------------------------------------------


class BrandCreate(BaseModel):
    id: BrandId
    name: Name
    timezone: str = Field(default="UTC", description="IANA time zone, e.g. Europe/Berlin.")


class BrandUpdate(BaseModel):
    name: Name | None = None
    timezone: str | None = None


class BrandOut(BaseModel):
    id: str
    name: str
    timezone: str
    created_at: datetime
    updated_at: datetime


class BrandList(BaseModel):
    brands: list[BrandOut]


class QueryIn(BaseModel):
    brand_id: BrandId
    name: Name
    expression: Expression
    role: Literal["brand", "competitor"] = "brand"
    competitor: Name | None = Field(
        default=None, description="Required for role=competitor: whose voice this query hears."
    )
    active: bool = True


class QueryUpdate(BaseModel):
    name: Name
    expression: Expression
    role: Literal["brand", "competitor"] = "brand"
    competitor: Name | None = None
    active: bool = True


class QueryVersion(BaseModel):
    version: int
    name: str
    role: str
    competitor: str | None
    expression: str
    created_by: str
    created_at: datetime


class QueryOut(BaseModel):
    id: uuid.UUID
    brand_id: str
    name: str
    expression: str
    role: str
    competitor: str | None
    version: int
    active: bool
    created_at: datetime
    updated_at: datetime
    versions: list[QueryVersion] | None = None


class QueryList(BaseModel):
    queries: list[QueryOut]


class Sample(BaseModel):
    text: Annotated[str, StringConstraints(max_length=65_536)]
    language: str | None = None
    network: str = "generic"
    author: str | None = None
    url: str | None = None


class QueryTest(BaseModel):
    expression: Expression
    samples: Annotated[list[Sample], Field(min_length=1, max_length=200)]


class SampleResult(BaseModel):
    text: str
    matched: bool


class QueryTestResult(BaseModel):
    expression: str
    results: list[SampleResult]


class SourceCreate(BaseModel):
    kind: Literal["generic_webhook", "webhook", "pull"] = "generic_webhook"
    network: Annotated[str, StringConstraints(pattern=r"^[a-z][a-z0-9_]{0,31}$")] = "generic"
    brand_id: BrandId | None = None
    name: Name | None = Field(default=None, description="Default: network and kind.")
    match_mode: Literal["brand", "queries"] = Field(
        default="brand",
        description="'brand': every item belongs to brand_id (the brand's own account or "
        "webhook); 'queries': only items matching the tenant's listening queries.",
    )
    config: dict[str, Any] = Field(default_factory=dict)
    credentials: dict[str, Any] = Field(default_factory=dict, description="Write-only.")
    secrets: dict[str, Any] = Field(default_factory=dict, description="Write-only (webhooks).")
    interval_s: int = Field(default=300, ge=10, le=86_400)


class SourceUpdate(BaseModel):
    name: Name | None = None
    config: dict[str, Any] | None = None
    credentials: dict[str, Any] | None = Field(
        default=None, description="New credentials reconnect a source that needed it."
    )
    interval_s: int | None = Field(default=None, ge=10, le=86_400)


class Backfill(BaseModel):
    since: AwareDatetime = Field(description="Re-read the source from this time on.")


class SourceOut(BaseModel):
    id: uuid.UUID
    tenant_id: str
    brand_id: str | None
    kind: str
    network: str
    name: str
    match_mode: str
    config: dict[str, Any]
    interval_s: int
    webhook_path: str | None
    status: str
    next_run_at: datetime | None
    last_run_at: datetime | None
    last_success_at: datetime | None
    last_error: str | None
    last_error_at: datetime | None
    consecutive_failures: int
    items_total: int
    items_last_hour: int
    lag_seconds: float | None = Field(description="Time since the newest item this source heard.")
    quota_used: int
    created_at: datetime


class SourceCreated(SourceOut):
    signing_secret: str | None = Field(
        default=None, description="Generic webhooks: shown once; sign bodies with it."
    )


class SourceList(BaseModel):
    sources: list[SourceOut]


class WebhookAccepted(BaseModel):
    received: int
    accepted: int
    duplicates: int


class MentionAuthor(BaseModel):
    id: str
    handle: str
    display_name: str | None = None
    followers: int | None = None
    verified: bool | None = None


class MentionOut(BaseModel):
    mention_id: uuid.UUID
    item_id: uuid.UUID
    brand_id: str
    source_id: uuid.UUID
    network: str
    external_id: str
    kind: str
    text: str
    url: str | None
    language: str | None
    author: MentionAuthor
    root_external_id: str
    parent_external_id: str | None
    created_at: datetime
    edited_at: datetime | None
    deleted_at: datetime | None
    matches: list[dict[str, Any]]
    engagement: dict[str, Any] | None
    replies_to_post_id: uuid.UUID | None = Field(
        default=None, description="Our published post this replies to (then kind is comment)."
    )


class MentionPage(BaseModel):
    mentions: list[MentionOut]
    next_cursor: str | None


# --- helpers ------------------------------------------------------------------------------------


def _check_timezone(name: str) -> str:
    try:
        ZoneInfo(name)
    except (ZoneInfoNotFoundError, ValueError) as exc:
        raise ApiError(
            422,
            "invalid_timezone",
            f"unknown time zone {name!r}; use an IANA name like Europe/Berlin",
            details=[{"field": "timezone", "message": "unknown IANA time zone"}],
        ) from exc
    return name


def _check_expression(expression: str, field: str = "expression") -> None:
    try:
        parse(expression)
    except QueryParseError as exc:
        raise ApiError(
            422,
            "invalid_query",
            str(exc),
            details=[
                {
                    "field": field,
                    "message": str(exc),
                    "position": exc.position,
                    "expected": exc.expected,
                }
            ],
        ) from exc


def _check_competitor(role: str, competitor: str | None) -> None:
    if (role == "competitor") != (competitor is not None):
        raise ApiError(
            422,
            "invalid_body",
            "competitor is required for role=competitor and only for it",
            details=[{"field": "competitor", "message": "set exactly when role is competitor"}],
        )


def _brand_out(b: repository.BrandRow) -> BrandOut:
    return BrandOut(
        id=b.id, name=b.name, timezone=b.timezone, created_at=b.created_at, updated_at=b.updated_at
    )


def _query_out(q: repository.QueryRow, versions: list[dict[str, Any]] | None = None) -> QueryOut:
    return QueryOut(
        id=q.id,
        brand_id=q.brand_id,
        name=q.name,
        expression=q.expression,
        role=q.role,
        competitor=q.competitor,
        version=q.version,
        active=q.active,
        created_at=q.created_at,
        updated_at=q.updated_at,
        versions=[QueryVersion(**v) for v in versions] if versions is not None else None,
    )


def _webhook_connector_name(row: repository.SourceRow) -> str | None:
    if row.kind == "generic_webhook":
        return "generic"
    return row.network if row.kind == "webhook" else None


def _source_out(
    row: repository.SourceRow, last_hour: Mapping[uuid.UUID, int], now: datetime
) -> SourceOut:
    connector = _webhook_connector_name(row)
    return SourceOut(
        id=row.id,
        tenant_id=row.tenant_id,
        brand_id=row.brand_id,
        kind=row.kind,
        network=row.network,
        name=row.name,
        match_mode=row.match_mode,
        config=row.config,
        interval_s=row.interval_s,
        webhook_path=f"/api/v1/webhooks/{connector}/{row.id}" if connector else None,
        status=row.status,
        next_run_at=row.next_run_at if row.kind == "pull" else None,
        last_run_at=row.last_run_at,
        last_success_at=row.last_success_at,
        last_error=row.last_error,
        last_error_at=row.last_error_at,
        consecutive_failures=row.consecutive_failures,
        items_total=row.items_total,
        items_last_hour=last_hour.get(row.id, 0),
        lag_seconds=(now - row.newest_item_at).total_seconds() if row.newest_item_at else None,
        quota_used=row.quota_used,
        created_at=row.created_at,
    )


def _mention_out(r: dict[str, Any]) -> MentionOut:
    return MentionOut(
        mention_id=r["mention_id"],
        item_id=r["item_id"],
        brand_id=r["brand_id"],
        source_id=r["source_id"],
        network=r["network"],
        external_id=r["external_id"],
        kind=mention_kind(r["kind"], r["replies_to_post_id"]),
        text=r["text"],
        url=r["url"],
        language=r["language"],
        author=MentionAuthor(**r["author"]),
        root_external_id=r["root_external_id"],
        parent_external_id=r["parent_external_id"],
        created_at=r["created_at"],
        edited_at=r["edited_at"],
        deleted_at=r["deleted_at"],
        matches=r["matches"],
        engagement=r["engagement"],
        replies_to_post_id=r["replies_to_post_id"],
    )


async def read_limited_body(request: Request, limit: int) -> bytes:
    """The raw body (signatures cover these exact bytes), refused past `limit` bytes."""
    declared = request.headers.get("content-length")
    if declared is not None and declared.isdigit() and int(declared) > limit:
        raise ApiError(413, "body_too_large", f"body exceeds {limit} bytes")
    chunks: list[bytes] = []
    size = 0
    async for chunk in request.stream():
        size += len(chunk)
        if size > limit:
            raise ApiError(413, "body_too_large", f"body exceeds {limit} bytes")
        chunks.append(chunk)
    return b"".join(chunks)


# --- routes -------------------------------------------------------------------------------------


def build_api(
    rt: Runtime,
    *,
    box: SecretBox,
    queries: QueryIndex,
    detect_language: LanguageDetector,
    pull_connectors: Mapping[str, PullConnector],
    webhook_connectors: Mapping[str, WebhookConnector],
    raw_retention: timedelta,
) -> APIRouter:
    router = APIRouter()
    Caller = Annotated[Principal, Depends(rt.authenticate)]
    settings = rt.settings
    assert isinstance(settings, IngestSettings)
    source_limit = RateLimiter(settings.webhook_rate_per_s, settings.webhook_burst)
    unknown_limit = RateLimiter(settings.webhook_unknown_rate_per_s, settings.webhook_unknown_burst)

    async def require_brand(conn: Any, tenant_id: str, brand_id: str) -> None:
        if await repository.get_brand(conn, tenant_id, brand_id) is None:
            raise ApiError(404, "unknown_brand", f"no brand {brand_id!r}; create it first")

    # brands

    @router.post("/brands", status_code=201, response_model=BrandOut, tags=["brands"])
    async def create_brand(body: BrandCreate, caller: Caller) -> BrandOut:
        require_role(caller, WRITERS)
        _check_timezone(body.timezone)
        async with rt.pool.acquire() as conn:
            row = await repository.insert_brand(
                conn, caller.tenant_id, body.id, body.name, body.timezone
            )
        if row is None:
            raise ApiError(409, "brand_exists", f"brand {body.id!r} exists (or existed)")
        return _brand_out(row)

    @router.get("/brands", response_model=BrandList, tags=["brands"])
    async def list_brands(caller: Caller) -> BrandList:
        require_role(caller, READERS)
        async with rt.pool.acquire() as conn:
            rows = await repository.list_brands(conn, caller.tenant_id)
        return BrandList(brands=[_brand_out(r) for r in rows])

    @router.get("/brands/{brand_id}", response_model=BrandOut, tags=["brands"])
    async def get_brand(brand_id: BrandId, caller: Caller) -> BrandOut:
        require_role(caller, READERS)
        async with rt.pool.acquire() as conn:
            row = await repository.get_brand(conn, caller.tenant_id, brand_id)
        if row is None:
            raise ApiError(404, "unknown_brand", f"no brand {brand_id!r}")
        return _brand_out(row)

    @router.patch("/brands/{brand_id}", response_model=BrandOut, tags=["brands"])
    async def update_brand(brand_id: BrandId, body: BrandUpdate, caller: Caller) -> BrandOut:
        require_role(caller, WRITERS)
        if body.timezone is not None:
            _check_timezone(body.timezone)
        async with rt.pool.acquire() as conn:
            row = await repository.update_brand(
                conn, caller.tenant_id, brand_id, body.name, body.timezone
            )
        if row is None:
            raise ApiError(404, "unknown_brand", f"no brand {brand_id!r}")
        return _brand_out(row)

    @router.delete("/brands/{brand_id}", status_code=204, tags=["brands"])
    async def delete_brand(brand_id: BrandId, caller: Caller) -> Response:
        require_role(caller, ("admin",))
        async with rt.pool.acquire() as conn, conn.transaction():
            done = await repository.delete_brand(conn, caller.tenant_id, brand_id)
        if not done:
            raise ApiError(404, "unknown_brand", f"no brand {brand_id!r}")
        queries.invalidate()
        return Response(status_code=204)

    # listening queries

    @router.post("/queries/test", response_model=QueryTestResult, tags=["queries"])
    async def test_query(body: QueryTest, caller: Caller) -> QueryTestResult:
        require_role(caller, READERS)
        _check_expression(body.expression)
        query = parse(body.expression)
        results = [
            SampleResult(
                text=s.text,
                matched=evaluate(
                    query,
                    MatchInput(
                        text=s.text,
                        language=s.language,
                        network=s.network,
                        author_handle=s.author,
                        url=s.url,
                    ),
                ),
            )
            for s in body.samples
        ]
        return QueryTestResult(expression=body.expression, results=results)

    @router.post("/queries", status_code=201, response_model=QueryOut, tags=["queries"])
    async def create_query(body: QueryIn, caller: Caller) -> QueryOut:
        require_role(caller, WRITERS)
        _check_expression(body.expression)
        _check_competitor(body.role, body.competitor)
        async with rt.pool.acquire() as conn, conn.transaction():
            await require_brand(conn, caller.tenant_id, body.brand_id)
            row = await repository.insert_query(
                conn,
                tenant_id=caller.tenant_id,
                brand_id=body.brand_id,
                name=body.name,
                role=body.role,
                competitor=body.competitor,
                expression=body.expression,
                active=body.active,
                created_by=caller.subject,
            )
        queries.invalidate()
        return _query_out(row)

    @router.get("/queries", response_model=QueryList, tags=["queries"])
    async def list_queries(
        caller: Caller, brand_id: Annotated[BrandId | None, Query()] = None
    ) -> QueryList:
        require_role(caller, READERS)
        async with rt.pool.acquire() as conn:
            rows = await repository.list_queries(conn, caller.tenant_id, brand_id)
        return QueryList(queries=[_query_out(r) for r in rows])

    @router.get("/queries/{query_id}", response_model=QueryOut, tags=["queries"])
    async def get_query(query_id: uuid.UUID, caller: Caller) -> QueryOut:
        require_role(caller, READERS)
        async with rt.pool.acquire() as conn:
            row = await repository.get_query(conn, caller.tenant_id, query_id)
            if row is None:
                raise ApiError(404, "unknown_query", f"no query {query_id}")
            versions = await repository.query_versions(conn, query_id)
        return _query_out(row, versions)

    @router.put("/queries/{query_id}", response_model=QueryOut, tags=["queries"])
    async def update_query(query_id: uuid.UUID, body: QueryUpdate, caller: Caller) -> QueryOut:
        """Replace the query; the previous text stays in its version history."""
        require_role(caller, WRITERS)
        _check_expression(body.expression)
        _check_competitor(body.role, body.competitor)
        async with rt.pool.acquire() as conn, conn.transaction():
            row = await repository.update_query(
                conn,
                tenant_id=caller.tenant_id,
                query_id=query_id,
                name=body.name,
                role=body.role,
                competitor=body.competitor,
                expression=body.expression,
                active=body.active,
                updated_by=caller.subject,
            )
            if row is None:
                raise ApiError(404, "unknown_query", f"no query {query_id}")
            versions = await repository.query_versions(conn, query_id)
        queries.invalidate()
        return _query_out(row, versions)

    @router.delete("/queries/{query_id}", status_code=204, tags=["queries"])
    async def delete_query(query_id: uuid.UUID, caller: Caller) -> Response:
        require_role(caller, WRITERS)
        async with rt.pool.acquire() as conn:
            done = await repository.delete_query(conn, caller.tenant_id, query_id)
        if not done:
            raise ApiError(404, "unknown_query", f"no query {query_id}")
        queries.invalidate()
        return Response(status_code=204)

    # sources

    async def source_view(conn: Any, rows: list[repository.SourceRow]) -> list[SourceOut]:
        last_hour = await repository.items_last_hour(conn, [r.id for r in rows])
        now = datetime.now(UTC)
        return [_source_out(r, last_hour, now) for r in rows]

    @router.post("/sources", status_code=201, response_model=SourceCreated, tags=["sources"])
    async def create_source(body: SourceCreate, caller: Caller) -> SourceCreated:
        require_role(caller, ("admin",))
        if body.match_mode == "brand" and body.brand_id is None:
            raise ApiError(
                422,
                "invalid_body",
                "brand_id is required when match_mode is 'brand'",
                details=[{"field": "brand_id", "message": "required for match_mode=brand"}],
            )
        source_secrets = dict(body.secrets)
        signing_secret: str | None = None
        network = body.network
        if body.kind == "generic_webhook":
            config = validated_config(
                webhook_connectors["generic"].config_model,
                {"network": network, **body.config},
                "source",
            )
            signing_secret = new_signing_secret()
            source_secrets["signing_secret"] = signing_secret
        elif body.kind == "webhook":
            connector = webhook_connectors.get(network)
            if connector is None or network == "generic":
                raise ApiError(
                    422,
                    "unknown_network",
                    f"no webhook connector for {network!r}; "
                    f"known: {', '.join(sorted(n for n in webhook_connectors if n != 'generic'))}",
                    details=[{"field": "network", "message": "no webhook connector"}],
                )
            config = validated_config(connector.config_model, body.config, "source")
        else:
            pull = pull_connectors.get(network)
            if pull is None:
                raise ApiError(
                    422,
                    "unknown_network",
                    f"no pull connector for {network!r}; "
                    f"known: {', '.join(sorted(pull_connectors))}",
                    details=[{"field": "network", "message": "no pull connector"}],
                )
            config = validated_config(pull.config_model, body.config, "source")
        async with rt.pool.acquire() as conn, conn.transaction():
            if body.brand_id is not None:
                await require_brand(conn, caller.tenant_id, body.brand_id)
            row = await repository.insert_source(
                conn,
                tenant_id=caller.tenant_id,
                brand_id=body.brand_id,
                kind=body.kind,
                network=config.get("network", network)
                if body.kind == "generic_webhook"
                else network,
                name=body.name or f"{network} {body.kind.replace('_', ' ')}",
                match_mode=body.match_mode,
                config=config,
                secret_encrypted=secrets.seal_dict(box, source_secrets) if source_secrets else None,
                credentials_encrypted=(
                    secrets.seal_dict(box, body.credentials) if body.credentials else None
                ),
                interval_s=body.interval_s,
                created_by=caller.subject,
            )
            (view,) = await source_view(conn, [row])
        return SourceCreated(**view.model_dump(), signing_secret=signing_secret)

    @router.get("/sources", response_model=SourceList, tags=["sources"])
    async def list_sources(
        caller: Caller, brand_id: Annotated[BrandId | None, Query()] = None
    ) -> SourceList:
        require_role(caller, WRITERS)
        async with rt.pool.acquire() as conn:
            rows = await repository.list_sources(conn, caller.tenant_id, brand_id)
            return SourceList(sources=await source_view(conn, rows))

    async def own_source(
        conn: Any, caller: Principal, source_id: uuid.UUID
    ) -> repository.SourceRow:
        row = await repository.get_source(conn, source_id, caller.tenant_id)
        if row is None:
            raise ApiError(404, "unknown_source", f"no source {source_id}")
        return row

    @router.get("/sources/{source_id}", response_model=SourceOut, tags=["sources"])
    async def get_source(source_id: uuid.UUID, caller: Caller) -> SourceOut:
        require_role(caller, WRITERS)
        async with rt.pool.acquire() as conn:
            (view,) = await source_view(conn, [await own_source(conn, caller, source_id)])
        return view

    @router.patch("/sources/{source_id}", response_model=SourceOut, tags=["sources"])
    async def update_source(source_id: uuid.UUID, body: SourceUpdate, caller: Caller) -> SourceOut:
        require_role(caller, ("admin",))
        async with rt.pool.acquire() as conn, conn.transaction():
            row = await own_source(conn, caller, source_id)
            config = None
            if body.config is not None:
                model = (
                    pull_connectors[row.network].config_model
                    if row.kind == "pull" and row.network in pull_connectors
                    else webhook_connectors[_webhook_connector_name(row) or "generic"].config_model
                )
                config = validated_config(model, body.config, "source")
            reconnect = body.credentials is not None and row.status == "needs_reconnect"
            updated = await repository.update_source(
                conn,
                source_id,
                name=body.name,
                config=config,
                credentials_encrypted=(
                    secrets.seal_dict(box, body.credentials) if body.credentials else None
                ),
                interval_s=body.interval_s,
                status="active" if reconnect else None,
                run_now=reconnect,
            )
            assert updated is not None
            (view,) = await source_view(conn, [updated])
        return view

    async def set_state(
        caller: Principal, source_id: uuid.UUID, status: str | None, run_now: bool
    ) -> SourceOut:
        require_role(caller, WRITERS)
        async with rt.pool.acquire() as conn, conn.transaction():
            await own_source(conn, caller, source_id)
            updated = await repository.update_source(
                conn, source_id, status=status, run_now=run_now
            )
            assert updated is not None
            (view,) = await source_view(conn, [updated])
        return view

    @router.post("/sources/{source_id}/pause", response_model=SourceOut, tags=["sources"])
    async def pause_source(source_id: uuid.UUID, caller: Caller) -> SourceOut:
        return await set_state(caller, source_id, "paused", False)

    @router.post("/sources/{source_id}/resume", response_model=SourceOut, tags=["sources"])
    async def resume_source(source_id: uuid.UUID, caller: Caller) -> SourceOut:
        return await set_state(caller, source_id, "active", True)

    @router.post("/sources/{source_id}/run", response_model=SourceOut, tags=["sources"])
    async def run_source_now(source_id: uuid.UUID, caller: Caller) -> SourceOut:
        """Poll a pull source as soon as a scheduler is free."""
        return await set_state(caller, source_id, None, True)

    @router.post("/sources/{source_id}/backfill", response_model=SourceOut, tags=["sources"])
    async def backfill_source(source_id: uuid.UUID, body: Backfill, caller: Caller) -> SourceOut:
        """Re-read a pull source from a past time. Items already stored are not emitted again
        (one item per network id), so overlapping what was heard is safe."""
        require_role(caller, WRITERS)
        if body.since > datetime.now(UTC):
            raise ApiError(
                422,
                "invalid_body",
                "since is in the future",
                details=[{"field": "since", "message": "must be in the past"}],
            )
        async with rt.pool.acquire() as conn, conn.transaction():
            row = await own_source(conn, caller, source_id)
            connector = pull_connectors.get(row.network) if row.kind == "pull" else None
            make_cursor = getattr(connector, "backfill_cursor", None)
            if make_cursor is None:
                raise ApiError(
                    422,
                    "backfill_unsupported",
                    f"{row.network} {row.kind} sources cannot be backfilled",
                )
            cursor = make_cursor(body.since)
            if "quota" in row.cursor:
                # Units already spent today stay spent (YouTube keeps its count in the cursor).
                cursor.setdefault("quota", row.cursor["quota"])
            updated = await repository.update_source(conn, source_id, cursor=cursor, run_now=True)
            assert updated is not None
            (view,) = await source_view(conn, [updated])
        return view

    @router.delete("/sources/{source_id}", status_code=204, tags=["sources"])
    async def delete_source(source_id: uuid.UUID, caller: Caller) -> Response:
        require_role(caller, ("admin",))
        async with rt.pool.acquire() as conn:
            if not await repository.delete_source(conn, caller.tenant_id, source_id):
                raise ApiError(404, "unknown_source", f"no source {source_id}")
        return Response(status_code=204)

    # webhooks

    async def webhook(network: str, source_id: uuid.UUID, request: Request) -> Response:
        try:
            return await deliver(network, source_id, request)
        except ApiError as exc:
            # The network from the path is anyone's string: only known ones become labels.
            known = network if network in webhook_connectors else "unknown"
            rt.metrics.webhook_rejections.labels(known, exc.code).inc()
            raise

    def throttle(retry_after_s: float | None) -> None:
        if retry_after_s is not None:
            raise ApiError(
                429,
                "rate_limited",
                "too many webhook deliveries; retry later",
                headers={"Retry-After": str(max(1, math.ceil(retry_after_s)))},
            )

    async def deliver(network: str, source_id: uuid.UUID, request: Request) -> Response:
        async with rt.pool.acquire() as conn:
            row = await repository.get_source(conn, source_id)
        if row is None or _webhook_connector_name(row) != network:
            # Guessing source ids costs the caller's IP, so a scan cannot reach the database fast.
            client = request.client.host if request.client else "unknown"
            throttle(unknown_limit.take(client))
            raise ApiError(404, "unknown_source", f"no {network} webhook source {source_id}")
        throttle(source_limit.take(str(source_id)))
        raw = await read_limited_body(request, rt.settings.max_body_bytes)
        connector = webhook_connectors[network]
        config = connector.config_model.model_validate(row.config)
        source_secrets = secrets.open_dict(box, row.secret_encrypted)
        delivery = WebhookRequest(
            method=request.method,
            headers={k.lower(): v for k, v in request.headers.items()},
            query=dict(request.query_params),
            body=raw,
        )
        try:
            reply = connector.handshake(delivery, config, source_secrets)
            if reply is not None:
                return Response(reply.body, reply.status, media_type=reply.content_type)
            if request.method != "POST":
                raise ApiError(405, "method_not_allowed", "deliveries are POSTed")
            connector.verify(delivery, config, source_secrets)
            check_fresh(
                network,
                delivery.headers,
                required=bool(getattr(config, "require_timestamp", False)),
                tolerance_s=settings.webhook_timestamp_tolerance_s,
            )
        except SignatureInvalid as exc:
            raise ApiError(401, "bad_signature", str(exc)) from exc
        except BadConfig as exc:
            # E.g. a VK confirmation for a source set up without its confirmation code.
            raise ApiError(409, "source_misconfigured", str(exc)) from exc
        try:
            result = connector.parse(delivery, config)
        except ValidationError as exc:
            raise unprocessable(exc) from exc
        if row.status == "paused":
            raise ApiError(409, "source_paused", f"source {source_id} is paused")
        async with rt.pool.acquire() as conn, conn.transaction():
            outcome = await ingest_items(
                conn,
                SourceContext(row.id, row.tenant_id, row.brand_id, row.match_mode),
                result.mentions,
                queries=queries,
                detect_language=detect_language,
                raw_retention=raw_retention,
            )
            await repository.record_push(
                conn, row.id, outcome.new_matches, outcome.newest_created_at
            )
        if network == "generic":
            received = len(result.mentions)
            accepted = WebhookAccepted(
                received=received,
                accepted=outcome.new_matches,
                duplicates=received - outcome.new_matches,
            )
            return Response(accepted.model_dump_json(), 202, media_type="application/json")
        return Response(
            result.reply.body, result.reply.status, media_type=result.reply.content_type
        )

    throttled: dict[int | str, dict[str, Any]] = {
        429: {"model": ErrorBody, "description": "Too many deliveries; see Retry-After."}
    }
    body_schema = {
        "requestBody": {"required": True, "content": {"application/json": {"schema": {}}}}
    }
    router.add_api_route(
        "/webhooks/{network}/{source_id}",
        webhook,
        methods=["POST"],
        tags=["webhooks"],
        summary="Deliver items to a webhook source (signed per its network's rules)",
        openapi_extra=body_schema,
        responses={202: {"model": WebhookAccepted}, **throttled},
    )
    router.add_api_route(
        "/webhooks/{network}/{source_id}",
        webhook,
        methods=["GET"],
        tags=["webhooks"],
        summary="A network's verification handshake (Meta's hub.challenge)",
        responses={
            405: {"model": ErrorBody, "description": "Not a handshake: deliveries are POSTed."},
            **throttled,
        },
    )

    # mentions

    @router.get("/mentions", response_model=MentionPage, tags=["mentions"])
    async def search_mentions(
        caller: Caller,
        brand_id: Annotated[BrandId | None, Query()] = None,
        since: Annotated[AwareDatetime | None, Query()] = None,
        until: Annotated[AwareDatetime | None, Query()] = None,
        network: Annotated[str | None, Query(max_length=32)] = None,
        language: Annotated[str | None, Query(max_length=16)] = None,
        q: Annotated[str | None, Query(max_length=500, description="Words to find.")] = None,
        cursor: Annotated[str | None, Query(max_length=512)] = None,
        limit: Annotated[int, Query(ge=1, le=200)] = 50,
    ) -> MentionPage:
        require_role(caller, READERS)
        try:
            after = decode_cursor(cursor) if cursor else None
        except BadCursor as exc:
            raise ApiError(422, "invalid_cursor", str(exc)) from exc
        async with rt.pool.acquire() as conn:
            rows = await repository.search_mentions(
                conn,
                tenant_id=caller.tenant_id,
                brand_id=brand_id,
                since=since,
                until=until,
                network=network,
                language=language,
                text=q,
                after=after,
                limit=limit + 1,
            )
        page, more = rows[:limit], len(rows) > limit
        last = page[-1] if page else None
        return MentionPage(
            mentions=[_mention_out(r) for r in page],
            next_cursor=encode_cursor(last["created_at"], last["mention_id"])
            if more and last
            else None,
        )

    return router
