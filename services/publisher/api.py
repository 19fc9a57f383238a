"""The publisher's HTTP API: publishing settings, channels and queues, posts with their variants,
approvals, scheduling, the calendar and each post's attempt history."""

import uuid
from collections import defaultdict
from collections.abc import Mapping
from datetime import UTC, date, datetime, time, timedelta
from typing import Annotated, Any, Literal

from fastapi import APIRouter, Depends, Query, Request, Response
from pydantic import AwareDatetime, BaseModel, Field, StringConstraints, ValidationError

from services.publisher import events, repository
from services.publisher.adapters.base import PublishAdapter
from services.publisher.csvio import ImportedPost, export_posts_csv, parse_posts_csv
from services.publisher.ratelimit import DEFAULT_POLICIES
from services.publisher.schedule import (
    SchedulingError,
    Slot,
    load_zone,
    next_free_slot,
    occurrences,
    to_local,
    to_utc,
)
from services.publisher.validation import (
    DEFAULT_LIMITS,
    ChannelOverrides,
    MediaItem,
    PostVariant,
    validate,
)
from shared.auth import Principal
from shared.crypto import SecretBox
from shared.events import BrandId
from shared.http import ApiError, require_role, validated_config
from shared.outbox import add_events
from shared.pagination import BadCursor, decode_cursor, encode_cursor
from shared.runtime import Runtime

WRITERS = ("admin", "manager")
EDITORS = ("admin", "manager", "agent")
READERS = ("admin", "manager", "agent", "client-approver")
Name = Annotated[str, StringConstraints(min_length=1, max_length=200, strip_whitespace=True)]
EDITABLE = ("draft", "rejected", "pending_internal", "pending_client")
# Adapters named for the platform; counting rules named for the network the post lands on.
RULES_FOR = {"meta": "facebook"}

# --- models ------------------------------------------------------------------------------------


class PublishingSettings(BaseModel):
    timezone: str = Field(default="UTC", description="IANA zone the brand's schedule uses.")
    approval: Literal["none", "internal", "internal_client"] = "none"


class ChannelCreate(BaseModel):
    brand_id: BrandId
    network: Annotated[str, StringConstraints(pattern=r"^[a-z][a-z0-9_]{0,31}$")]
    name: Name
    config: dict[str, Any] = Field(default_factory=dict)
    credentials: dict[str, Any] = Field(default_factory=dict, description="Write-only.")
    overrides: ChannelOverrides = ChannelOverrides()


class ChannelUpdate(BaseModel):
    name: Name | None = None
    credentials: dict[str, Any] | None = Field(default=None, description="Reconnects it.")


class ChannelOut(BaseModel):
    id: uuid.UUID
    brand_id: str
    network: str
    name: str
    config: dict[str, Any]
    overrides: dict[str, Any]
    status: str
    last_error: str | None
    created_at: datetime


class ChannelList(BaseModel):
    channels: list[ChannelOut]


class SlotIn(BaseModel):
    weekday: int = Field(ge=0, le=6, description="0 = Monday.")
    time: time


class Slots(BaseModel):
    slots: Annotated[list[SlotIn], Field(max_length=500)]


class VariantIn(BaseModel):
    channel_id: uuid.UUID
    text: Annotated[str, StringConstraints(max_length=70_000)] = ""
    media: Annotated[list[MediaItem], Field(max_length=20)] = Field(default_factory=list)
    link: Annotated[str, StringConstraints(max_length=2048)] | None = None
    reply_to: Annotated[str, StringConstraints(max_length=256)] | None = None


class PostIn(BaseModel):
    brand_id: BrandId
    variants: Annotated[list[VariantIn], Field(min_length=1, max_length=50)]
    tags: Annotated[list[Name], Field(max_length=50)] = Field(default_factory=list)
    notes: Annotated[str, StringConstraints(max_length=10_000)] | None = None


class PostUpdate(BaseModel):
    variants: Annotated[list[VariantIn], Field(min_length=1, max_length=50)] | None = None
    tags: Annotated[list[Name], Field(max_length=50)] | None = None
    notes: Annotated[str, StringConstraints(max_length=10_000)] | None = None


class Decision(BaseModel):
    comment: Annotated[str, StringConstraints(max_length=5000)] | None = None


class ScheduleIn(BaseModel):
    at_local: datetime | None = Field(
        default=None, description="Wall-clock time in the brand's zone (no offset)."
    )
    at: AwareDatetime | None = Field(default=None, description="An instant with its offset.")
    queue: bool = Field(default=False, description="Next free slot of each channel's queue.")
    rrule: Annotated[str, StringConstraints(max_length=500)] | None = Field(
        default=None,
        description="Repeat (RFC 5545 RRULE, expanded in the brand's zone) from `at_local`; "
        "occurrences in the next year are scheduled, at most 500.",
    )


class DeliveryOut(BaseModel):
    id: uuid.UUID
    channel_id: uuid.UUID
    text: str
    link: str | None
    reply_to: str | None
    status: str
    due_at: datetime | None
    due_local: datetime | None
    attempts: int
    remote_id: str | None
    url: str | None
    last_error: str | None
    published_at: datetime | None


class PostOut(BaseModel):
    id: uuid.UUID
    brand_id: str
    status: str
    tags: list[str]
    notes: str | None
    scheduled_at: datetime | None
    scheduled_local: datetime | None
    timezone: str
    created_by: str
    created_at: datetime
    updated_at: datetime
    deliveries: list[DeliveryOut]
    audit: list[dict[str, Any]] | None = None
    attempts: list[dict[str, Any]] | None = None


class PostPage(BaseModel):
    posts: list[PostOut]
    next_cursor: str | None


class CalendarDay(BaseModel):
    date: date
    posts: list[PostOut]


class Calendar(BaseModel):
    timezone: str
    days: list[CalendarDay]


class ValidationReport(BaseModel):
    valid: bool
    violations: list[dict[str, Any]]


# --- helpers -----------------------------------------------------------------------------------


def _zone(name: str) -> str:
    try:
        load_zone(name)
    except SchedulingError as exc:
        raise ApiError(
            422, "invalid_timezone", str(exc), details=[{"field": "timezone", "message": str(exc)}]
        ) from exc
    return name


def _channel_out(c: Mapping[str, Any]) -> ChannelOut:
    return ChannelOut(
        id=c["id"],
        brand_id=c["brand_id"],
        network=c["network"],
        name=c["name"],
        config=c["config"],
        overrides=c["overrides"],
        status=c["status"],
        last_error=c["last_error"],
        created_at=c["created_at"],
    )


def _local(instant: datetime | None, zone: str) -> datetime | None:
    return to_local(instant, zone) if instant is not None else None


def _post_out(
    post: Mapping[str, Any],
    deliveries: list[dict[str, Any]],
    zone: str,
    *,
    audit: list[dict[str, Any]] | None = None,
    attempts: list[dict[str, Any]] | None = None,
) -> PostOut:
    return PostOut(
        id=post["id"],
        brand_id=post["brand_id"],
        status=post["status"],
        tags=list(post["tags"]),
        notes=post["notes"],
        scheduled_at=post["scheduled_at"],
        scheduled_local=_local(post["scheduled_at"], zone),
        timezone=zone,
        created_by=post["created_by"],
        created_at=post["created_at"],
        updated_at=post["updated_at"],
        deliveries=[
            DeliveryOut(
                **{k: d[k] for k in DeliveryOut.model_fields if k in d},
                due_local=_local(d["due_at"], zone),
            )
            for d in deliveries
        ],
        audit=audit,
        attempts=attempts,
    )


def check_variants(
    channels: Mapping[uuid.UUID, Mapping[str, Any]], variants: list[VariantIn]
) -> list[dict[str, Any]]:
    """Every violation of every variant, each naming its channel and rule."""
    problems: list[dict[str, Any]] = []
    for index, v in enumerate(variants):
        channel = channels[v.channel_id]
        try:
            variant = PostVariant(
                network=RULES_FOR.get(channel["network"], channel["network"]),
                text=v.text,
                media=tuple(v.media),
                link=v.link,
                reply_to=v.reply_to,
                overrides=ChannelOverrides.model_validate(channel["overrides"]),
            )
        except ValidationError:
            # A network without counting rules (an outgoing webhook): only emptiness matters.
            if not v.text.strip() and not v.media:
                problems.append(
                    {
                        "channel_id": str(v.channel_id),
                        "field": f"variants.{index}.text",
                        "rule": "text.empty",
                        "message": "a post needs text or media",
                    }
                )
            continue
        for violation in validate(variant):
            problems.append(
                {
                    "channel_id": str(v.channel_id),
                    "channel": channel["name"],
                    "field": f"variants.{index}.{violation.field}",
                    "rule": violation.rule,
                    "message": violation.message,
                    "limit": violation.limit,
                    "actual": violation.actual,
                }
            )
    return problems


async def scheduled_between(
    conn: Any, tenant_id: str, brand_id: str, start: date, end: date
) -> tuple[str, list[dict[str, Any]]]:
    """The brand's zone and its posts scheduled from local date `start` to `end` inclusive (the
    calendar and the CSV export read the same range)."""
    if end < start or (end - start).days > 366:
        raise ApiError(422, "invalid_range", "'to' must be within a year after 'from'")
    zone: str = (await repository.get_brand_settings(conn, tenant_id, brand_id))["timezone"]
    lo = to_utc(datetime.combine(start, time()), zone)
    hi = to_utc(datetime.combine(end + timedelta(days=1), time()), zone)
    return zone, await repository.calendar(conn, tenant_id, brand_id, lo, hi)


# --- routes ------------------------------------------------------------------------------------


def build_api(rt: Runtime, *, box: SecretBox, adapters: Mapping[str, PublishAdapter]) -> APIRouter:
    router = APIRouter()
    Caller = Annotated[Principal, Depends(rt.authenticate)]

    @router.put("/brands/{brand_id}/publishing", response_model=PublishingSettings, tags=["brands"])
    async def put_settings(
        brand_id: BrandId, body: PublishingSettings, caller: Caller
    ) -> PublishingSettings:
        require_role(caller, ("admin",))
        _zone(body.timezone)
        async with rt.pool.acquire() as conn:
            await repository.put_brand_settings(
                conn, caller.tenant_id, brand_id, body.timezone, body.approval
            )
        return body

    @router.get("/brands/{brand_id}/publishing", response_model=PublishingSettings, tags=["brands"])
    async def get_settings(brand_id: BrandId, caller: Caller) -> PublishingSettings:
        require_role(caller, READERS)
        async with rt.pool.acquire() as conn:
            return PublishingSettings(
                **await repository.get_brand_settings(conn, caller.tenant_id, brand_id)
            )

    @router.get("/networks", tags=["channels"])
    async def networks(caller: Caller) -> dict[str, Any]:
        """What each network the publisher can reach accepts: its counting limits and the
        published rate limits the dispatcher paces by."""
        require_role(caller, READERS)
        out: dict[str, Any] = {}
        for name in sorted(adapters):
            network = RULES_FOR.get(name, name)
            rules = next((v for k, v in DEFAULT_LIMITS.items() if k.value == network), None)
            policy = DEFAULT_POLICIES.get(name)
            out[name] = {
                "limits": rules.model_dump(mode="json") if rules is not None else None,
                "rate_limits": (
                    [
                        {"name": w.name, "limit": w.limit, "period_s": w.period_s, "scope": w.scope}
                        for w in policy.windows
                    ]
                    if policy is not None
                    else []
                ),
                "replies": True,
            }
        return {"networks": out}

    # channels

    async def own_channel(conn: Any, caller: Principal, channel_id: uuid.UUID) -> dict[str, Any]:
        channel = await repository.get_channel(conn, channel_id, caller.tenant_id)
        if channel is None:
            raise ApiError(404, "unknown_channel", f"no channel {channel_id}")
        return channel

    @router.post("/channels", status_code=201, response_model=ChannelOut, tags=["channels"])
    async def create_channel(body: ChannelCreate, caller: Caller) -> ChannelOut:
        require_role(caller, ("admin",))
        adapter = adapters.get(body.network)
        if adapter is None:
            raise ApiError(
                422,
                "unknown_network",
                f"cannot publish to {body.network!r}; known: {', '.join(sorted(adapters))}",
                details=[{"field": "network", "message": "no adapter"}],
            )
        config = validated_config(adapter.config_model, body.config, "channel")
        async with rt.pool.acquire() as conn:
            channel = await repository.insert_channel(
                conn,
                tenant_id=caller.tenant_id,
                brand_id=body.brand_id,
                network=body.network,
                name=body.name,
                config=config,
                overrides=body.overrides.model_dump(exclude_none=True),
                credentials_encrypted=box.seal_json(body.credentials) if body.credentials else None,
            )
        return _channel_out(channel)

    @router.get("/channels", response_model=ChannelList, tags=["channels"])
    async def list_channels(
        caller: Caller, brand_id: Annotated[BrandId | None, Query()] = None
    ) -> ChannelList:
        require_role(caller, READERS)
        async with rt.pool.acquire() as conn:
            rows = await repository.list_channels(conn, caller.tenant_id, brand_id)
        return ChannelList(channels=[_channel_out(c) for c in rows])

    @router.patch("/channels/{channel_id}", response_model=ChannelOut, tags=["channels"])
    async def update_channel(
        channel_id: uuid.UUID, body: ChannelUpdate, caller: Caller
    ) -> ChannelOut:
        require_role(caller, ("admin",))
        async with rt.pool.acquire() as conn:
            channel = await own_channel(conn, caller, channel_id)
            reconnect = body.credentials is not None and channel["status"] == "needs_reconnect"
            updated = await repository.update_channel(
                conn,
                channel_id,
                name=body.name,
                credentials_encrypted=box.seal_json(body.credentials) if body.credentials else None,
                status="active" if reconnect else None,
            )
        assert updated is not None
        return _channel_out(updated)

    async def set_channel_status(
        caller: Principal, channel_id: uuid.UUID, status: str
    ) -> ChannelOut:
        require_role(caller, WRITERS)
        async with rt.pool.acquire() as conn:
            await own_channel(conn, caller, channel_id)
            updated = await repository.update_channel(conn, channel_id, status=status)
        assert updated is not None
        return _channel_out(updated)

    @router.post("/channels/{channel_id}/pause", response_model=ChannelOut, tags=["channels"])
    async def pause_channel(channel_id: uuid.UUID, caller: Caller) -> ChannelOut:
        """Nothing publishes on a paused channel; its due posts wait and go out on resume."""
        return await set_channel_status(caller, channel_id, "paused")

    @router.post("/channels/{channel_id}/resume", response_model=ChannelOut, tags=["channels"])
    async def resume_channel(channel_id: uuid.UUID, caller: Caller) -> ChannelOut:
        return await set_channel_status(caller, channel_id, "active")

    @router.put("/channels/{channel_id}/slots", response_model=Slots, tags=["channels"])
    async def put_slots(channel_id: uuid.UUID, body: Slots, caller: Caller) -> Slots:
        """The channel's weekly queue, in its brand's time zone."""
        require_role(caller, WRITERS)
        async with rt.pool.acquire() as conn, conn.transaction():
            await own_channel(conn, caller, channel_id)
            await repository.set_slots(
                conn, channel_id, sorted({(s.weekday, s.time) for s in body.slots})
            )
        return body

    @router.get("/channels/{channel_id}/slots", response_model=Slots, tags=["channels"])
    async def get_slots(channel_id: uuid.UUID, caller: Caller) -> Slots:
        require_role(caller, READERS)
        async with rt.pool.acquire() as conn:
            await own_channel(conn, caller, channel_id)
            slots = await repository.get_slots(conn, channel_id)
        return Slots(slots=[SlotIn(weekday=w, time=t) for w, t in slots])

    # posts

    async def channels_for(
        conn: Any, caller: Principal, brand_id: str, variants: list[VariantIn]
    ) -> dict[uuid.UUID, dict[str, Any]]:
        found: dict[uuid.UUID, dict[str, Any]] = {}
        for index, v in enumerate(variants):
            channel = await repository.get_channel(conn, v.channel_id, caller.tenant_id)
            if channel is None or channel["brand_id"] != brand_id:
                raise ApiError(
                    422,
                    "unknown_channel",
                    f"variants.{index}: no channel {v.channel_id} for brand {brand_id!r}",
                    details=[{"field": f"variants.{index}.channel_id", "message": "unknown"}],
                )
            found[v.channel_id] = channel
        if len(found) != len(variants):
            raise ApiError(422, "duplicate_channel", "one variant per channel")
        return found

    def refuse(problems: list[dict[str, Any]]) -> None:
        if problems:
            first = problems[0]
            raise ApiError(
                422,
                "post_invalid",
                f"channel {first.get('channel', first['channel_id'])}: {first['rule']}: "
                f"{first['message']}",
                details=problems,
            )

    def rows(variants: list[VariantIn]) -> list[dict[str, Any]]:
        return [
            {
                "channel_id": v.channel_id,
                "text": v.text,
                "media": [m.model_dump(mode="json") for m in v.media],
                "link": v.link,
                "reply_to": v.reply_to,
            }
            for v in variants
        ]

    async def view(conn: Any, post: dict[str, Any], *, full: bool = False) -> PostOut:
        settings = await repository.get_brand_settings(conn, post["tenant_id"], post["brand_id"])
        deliveries = await repository.deliveries_of(conn, post["id"])
        return _post_out(
            post,
            deliveries,
            settings["timezone"],
            audit=await repository.audit_trail(conn, post["id"]) if full else None,
            attempts=await repository.attempts_of(conn, post["id"]) if full else None,
        )

    async def own_post(conn: Any, caller: Principal, post_id: uuid.UUID) -> dict[str, Any]:
        post = await repository.get_post(conn, post_id, caller.tenant_id, for_update=True)
        if post is None:
            raise ApiError(404, "unknown_post", f"no post {post_id}")
        return post

    @router.post("/posts", status_code=201, response_model=PostOut, tags=["posts"])
    async def create_post(body: PostIn, caller: Caller) -> PostOut:
        """A draft, validated against every channel's rules (422 names the channel and rule)."""
        require_role(caller, EDITORS)
        async with rt.pool.acquire() as conn, conn.transaction():
            channels = await channels_for(conn, caller, body.brand_id, body.variants)
            refuse(check_variants(channels, body.variants))
            post = await repository.insert_post(
                conn,
                tenant_id=caller.tenant_id,
                brand_id=body.brand_id,
                tags=body.tags,
                notes=body.notes,
                created_by=caller.subject,
            )
            await repository.replace_variants(
                conn, post["id"], caller.tenant_id, rows(body.variants)
            )
            await repository.audit(conn, post["id"], caller.subject, caller.role, "created", None)
            return await view(conn, post)

    @router.post("/posts/validate", response_model=ValidationReport, tags=["posts"])
    async def preview(body: PostIn, caller: Caller) -> ValidationReport:
        """Check variants without saving (what an editor shows while typing)."""
        require_role(caller, READERS)
        async with rt.pool.acquire() as conn:
            channels = await channels_for(conn, caller, body.brand_id, body.variants)
        problems = check_variants(channels, body.variants)
        return ValidationReport(valid=not problems, violations=problems)

    @router.post("/posts/import", status_code=201, tags=["posts"])
    async def import_posts(request: Request, caller: Caller) -> dict[str, Any]:
        """Bulk-create posts from CSV (see `services/publisher/csvio.py` for the columns). Any
        error refuses the whole file with every row's problem, so nothing is half imported.
        Brands without approval get their posts scheduled at once; the others' posts wait in
        approval with the requested time in their notes."""
        require_role(caller, EDITORS)
        body = await request.body()
        if len(body) > rt.settings.max_body_bytes:
            raise ApiError(
                413, "body_too_large", f"body exceeds {rt.settings.max_body_bytes} bytes"
            )
        parsed, problems = parse_posts_csv(body)
        errors = [p for p in problems if p.severity == "error"]
        if errors:
            raise ApiError(
                422,
                "invalid_csv",
                f"{len(errors)} problem(s); first: row {errors[0].row_number}: {errors[0].message}",
                details=[
                    {"row": p.row_number, "field": p.column, "message": p.message}
                    for p in errors[:500]
                ],
            )
        created: list[str] = []
        async with rt.pool.acquire() as conn, conn.transaction():
            now = datetime.now(UTC)
            for index, row in enumerate(parsed):
                try:
                    channel_id = uuid.UUID(row.channel_id)
                except ValueError:
                    channel_id = uuid.UUID(int=0)
                channel = await repository.get_channel(conn, channel_id, caller.tenant_id)
                if channel is None:
                    raise ApiError(
                        422, "unknown_channel", f"row {index + 2}: no channel {row.channel_id}"
                    )
                variant = VariantIn(channel_id=channel_id, text=row.text, link=row.link)
                refuse(check_variants({channel_id: channel}, [variant]))
                settings = await repository.get_brand_settings(
                    conn, caller.tenant_id, channel["brand_id"]
                )
                when = to_utc(row.scheduled_at_local, settings["timezone"])
                if when < now:
                    raise ApiError(
                        422, "in_the_past", f"row {index + 2}: {row.scheduled_at_local} has passed"
                    )
                approved = settings["approval"] == "none"
                notes = (
                    row.notes if approved else f"{row.notes or ''}\nrequested for {when}".strip()
                )
                post = await repository.insert_post(
                    conn,
                    tenant_id=caller.tenant_id,
                    brand_id=channel["brand_id"],
                    tags=list(row.tags),
                    notes=notes,
                    created_by=caller.subject,
                )
                await repository.replace_variants(
                    conn, post["id"], caller.tenant_id, rows([variant])
                )
                await repository.audit(
                    conn, post["id"], caller.subject, caller.role, "imported", None
                )
                if approved:
                    await repository.schedule_deliveries(conn, post["id"], {channel_id: when})
                    await repository.set_post(
                        conn, post["id"], status="scheduled", scheduled_at=when
                    )
                    await add_events(
                        conn,
                        events.scheduled_per_channel(
                            tenant_id=caller.tenant_id,
                            brand_id=channel["brand_id"],
                            post_id=post["id"],
                            actor=caller.subject,
                            due={channel_id: when},
                            networks={channel_id: channel["network"]},
                        ),
                    )
                else:
                    await repository.set_post(conn, post["id"], status="pending_internal")
                created.append(str(post["id"]))
        return {
            "created": created,
            "warnings": [{"row": p.row_number, "message": p.message} for p in problems],
        }

    @router.get("/posts/export", tags=["posts"], response_class=Response)
    async def export_posts(
        caller: Caller,
        brand_id: Annotated[BrandId, Query()],
        start: Annotated[date, Query(alias="from")],
        end: Annotated[date, Query(alias="to")],
    ) -> Response:
        """Scheduled posts between two local dates as CSV (one row per channel), importable."""
        require_role(caller, READERS)
        async with rt.pool.acquire() as conn:
            zone, posts = await scheduled_between(conn, caller.tenant_id, brand_id, start, end)
            exported = []
            for post in posts:
                for d in await repository.deliveries_of(conn, post["id"]):
                    if d["due_at"] is None or d["status"] == "cancelled":
                        continue
                    exported.append(
                        ImportedPost(
                            channel_id=str(d["channel_id"]),
                            scheduled_at_local=to_local(d["due_at"], zone),
                            text=d["text"],
                            link=d["link"],
                            tags=tuple(post["tags"]),
                            notes=post["notes"],
                        )
                    )
        return Response(
            export_posts_csv(exported),
            media_type="text/csv; charset=utf-8",
            headers={"Content-Disposition": f'attachment; filename="{brand_id}-posts.csv"'},
        )

    @router.get("/posts", response_model=PostPage, tags=["posts"])
    async def list_posts(
        caller: Caller,
        brand_id: Annotated[BrandId | None, Query()] = None,
        status: Annotated[str | None, Query(max_length=32)] = None,
        cursor: Annotated[str | None, Query(max_length=512)] = None,
        limit: Annotated[int, Query(ge=1, le=200)] = 50,
    ) -> PostPage:
        """The tenant's posts, newest first."""
        require_role(caller, READERS)
        try:
            after = decode_cursor(cursor) if cursor else None
        except BadCursor as exc:
            raise ApiError(422, "invalid_cursor", str(exc)) from exc
        async with rt.pool.acquire() as conn:
            found = await repository.list_posts(
                conn, caller.tenant_id, brand_id, status, after, limit + 1
            )
            page = [await view(conn, p) for p in found[:limit]]
        last = found[limit - 1] if len(found) > limit else None
        return PostPage(
            posts=page,
            next_cursor=encode_cursor(last["created_at"], last["id"]) if last else None,
        )

    @router.delete("/posts/{post_id}", status_code=204, tags=["posts"])
    async def delete_post(post_id: uuid.UUID, caller: Caller) -> Response:
        """Delete a post that has not been scheduled (it stays in the audit trail)."""
        require_role(caller, EDITORS)
        async with rt.pool.acquire() as conn, conn.transaction():
            post = await own_post(conn, caller, post_id)
            if post["status"] not in (*EDITABLE, "approved"):
                raise ApiError(
                    409, "not_deletable", f"a {post['status']} post cannot be deleted; cancel it"
                )
            await repository.cancel_deliveries(conn, post_id)
            await repository.set_post(conn, post_id, status="deleted")
            await repository.audit(conn, post_id, caller.subject, caller.role, "deleted", None)
        return Response(status_code=204)

    @router.get("/posts/{post_id}", response_model=PostOut, tags=["posts"])
    async def get_post(post_id: uuid.UUID, caller: Caller) -> PostOut:
        """The post with its deliveries, approval audit trail and every publish attempt."""
        require_role(caller, READERS)
        async with rt.pool.acquire() as conn:
            post = await repository.get_post(conn, post_id, caller.tenant_id)
            if post is None:
                raise ApiError(404, "unknown_post", f"no post {post_id}")
            return await view(conn, post, full=True)

    @router.patch("/posts/{post_id}", response_model=PostOut, tags=["posts"])
    async def edit_post(post_id: uuid.UUID, body: PostUpdate, caller: Caller) -> PostOut:
        """Edit a post not yet approved; an edit sends it back to draft (approval starts over)."""
        require_role(caller, EDITORS)
        async with rt.pool.acquire() as conn, conn.transaction():
            post = await own_post(conn, caller, post_id)
            if post["status"] not in EDITABLE:
                raise ApiError(409, "not_editable", f"a {post['status']} post cannot be edited")
            if body.variants is not None:
                channels = await channels_for(conn, caller, post["brand_id"], body.variants)
                refuse(check_variants(channels, body.variants))
                await repository.replace_variants(
                    conn, post_id, caller.tenant_id, rows(body.variants)
                )
            changes: dict[str, Any] = {"status": "draft"}
            if body.tags is not None:
                changes["tags"] = body.tags
            if body.notes is not None:
                changes["notes"] = body.notes
            await repository.set_post(conn, post_id, **changes)
            await repository.audit(conn, post_id, caller.subject, caller.role, "edited", None)
            return await view(conn, await own_post(conn, caller, post_id))

    async def transition(
        post_id: uuid.UUID,
        caller: Principal,
        action: str,
        comment: str | None,
    ) -> PostOut:
        async with rt.pool.acquire() as conn, conn.transaction():
            post = await own_post(conn, caller, post_id)
            settings = await repository.get_brand_settings(conn, caller.tenant_id, post["brand_id"])
            workflow, status = settings["approval"], post["status"]
            new: str | None = None
            if action == "submitted" and status in ("draft", "rejected"):
                require_role(caller, EDITORS)
                new = "approved" if workflow == "none" else "pending_internal"
            elif action == "approved" and status == "pending_internal":
                require_role(caller, WRITERS)
                new = "pending_client" if workflow == "internal_client" else "approved"
            elif action == "approved" and status == "pending_client":
                require_role(caller, ("client-approver", "admin"))
                new = "approved"
            elif action == "rejected" and status in ("pending_internal", "pending_client"):
                allowed = WRITERS if status == "pending_internal" else ("client-approver", "admin")
                require_role(caller, allowed)
                new = "rejected"
            if new is None:
                raise ApiError(409, "invalid_transition", f"cannot {action[:-2]} a {status} post")
            await repository.set_post(conn, post_id, status=new)
            await repository.audit(conn, post_id, caller.subject, caller.role, action, comment)
            if action in ("approved", "rejected"):
                await add_events(
                    conn,
                    [
                        events.lifecycle(
                            f"post.{action}",
                            tenant_id=caller.tenant_id,
                            brand_id=post["brand_id"],
                            post_id=post_id,
                            actor=caller.subject,
                            comment=comment,
                        )
                    ],
                )
            return await view(conn, await own_post(conn, caller, post_id))

    @router.post("/posts/{post_id}/submit", response_model=PostOut, tags=["approvals"])
    async def submit(post_id: uuid.UUID, caller: Caller) -> PostOut:
        """Send a draft into the brand's approval workflow (approved at once if it has none)."""
        return await transition(post_id, caller, "submitted", None)

    @router.post("/posts/{post_id}/approve", response_model=PostOut, tags=["approvals"])
    async def approve(post_id: uuid.UUID, body: Decision, caller: Caller) -> PostOut:
        return await transition(post_id, caller, "approved", body.comment)

    @router.post("/posts/{post_id}/reject", response_model=PostOut, tags=["approvals"])
    async def reject(post_id: uuid.UUID, body: Decision, caller: Caller) -> PostOut:
        return await transition(post_id, caller, "rejected", body.comment)

    async def schedule(post_id: uuid.UUID, body: ScheduleIn, caller: Principal) -> PostOut:
        require_role(caller, EDITORS)
        chosen = [body.at_local is not None, body.at is not None, body.queue]
        if sum(chosen) != 1:
            raise ApiError(422, "invalid_body", "give exactly one of at_local, at or queue")
        if body.rrule is not None and body.at_local is None:
            raise ApiError(422, "invalid_body", "a recurring post starts at an at_local time")
        async with rt.pool.acquire() as conn, conn.transaction():
            post = await own_post(conn, caller, post_id)
            if post["status"] not in ("approved", "scheduled"):
                raise ApiError(
                    409,
                    "not_approved",
                    f"a {post['status']} post cannot be scheduled; it must be approved first",
                )
            settings = await repository.get_brand_settings(conn, caller.tenant_id, post["brand_id"])
            zone = settings["timezone"]
            deliveries = await repository.deliveries_of(conn, post_id)
            open_channels = [
                d["channel_id"] for d in deliveries if d["status"] in ("draft", "scheduled")
            ]
            if len(open_channels) != len(set(open_channels)):
                # Moving a series would stack its occurrences onto one time.
                raise ApiError(
                    409,
                    "recurring",
                    "a recurring post cannot be moved; cancel it and schedule it again",
                )
            now = datetime.now(UTC)
            due: dict[uuid.UUID, datetime] = {}
            if body.queue:
                for channel_id in open_channels:
                    slots = [Slot(w, t) for w, t in await repository.get_slots(conn, channel_id)]
                    taken = await repository.taken_times(conn, channel_id, now)
                    slot = next_free_slot(slots, zone, now, taken) if slots else None
                    if slot is None:
                        raise ApiError(
                            409, "queue_full", f"channel {channel_id} has no free queue slot"
                        )
                    due[channel_id] = slot
            elif body.rrule is not None:
                assert body.at_local is not None
                try:
                    series = occurrences(
                        body.rrule, body.at_local, zone, now, now + timedelta(days=366), limit=500
                    )
                except SchedulingError as exc:
                    raise ApiError(
                        422,
                        "invalid_rrule",
                        str(exc),
                        details=[{"field": "rrule", "message": str(exc)}],
                    ) from exc
                if not series:
                    raise ApiError(422, "invalid_rrule", "the rule has no occurrence in a year")
                due = dict.fromkeys(open_channels, series[0])
            else:
                try:
                    when = to_utc(body.at_local, zone) if body.at_local else body.at
                except SchedulingError as exc:
                    raise ApiError(422, "invalid_time", str(exc)) from exc
                assert when is not None
                if when < now - timedelta(minutes=1):
                    raise ApiError(422, "in_the_past", f"{when.isoformat()} has passed")
                due = dict.fromkeys(open_channels, when)
            # Scheduling re-validates: a channel's rules may have changed since the post was saved.
            channels = {
                c: await repository.get_channel(conn, c, caller.tenant_id) for c in open_channels
            }
            variants = [
                VariantIn(
                    channel_id=d["channel_id"],
                    text=d["text"],
                    media=[MediaItem.model_validate(m) for m in d["media"]],
                    link=d["link"],
                    reply_to=d["reply_to"],
                )
                for d in deliveries
                if d["channel_id"] in due
            ]
            refuse(check_variants({k: v for k, v in channels.items() if v}, variants))
            await repository.schedule_deliveries(conn, post_id, due)
            if body.rrule is not None:
                for channel_id, first_due in due.items():
                    await repository.add_occurrences(
                        conn, post_id, channel_id, first_due, series[1:]
                    )
            first = min(due.values()) if due else None
            await repository.set_post(conn, post_id, status="scheduled", scheduled_at=first)
            await repository.audit(conn, post_id, caller.subject, caller.role, "scheduled", None)
            await add_events(
                conn,
                events.scheduled_per_channel(
                    tenant_id=caller.tenant_id,
                    brand_id=post["brand_id"],
                    post_id=post_id,
                    actor=caller.subject,
                    due=due,
                    networks={c: row["network"] for c, row in channels.items() if row},
                ),
            )
            return await view(conn, await own_post(conn, caller, post_id))

    @router.post("/posts/{post_id}/schedule", response_model=PostOut, tags=["scheduling"])
    async def schedule_post(post_id: uuid.UUID, body: ScheduleIn, caller: Caller) -> PostOut:
        """At a local time in the brand's zone, at an instant, or into each channel's next free
        queue slot. Only approved posts can be scheduled; rescheduling moves unpublished ones."""
        return await schedule(post_id, body, caller)

    @router.post("/posts/{post_id}/publish-now", response_model=PostOut, tags=["scheduling"])
    async def publish_now(post_id: uuid.UUID, caller: Caller) -> PostOut:
        return await schedule(post_id, ScheduleIn(at=datetime.now(UTC)), caller)

    @router.post("/posts/{post_id}/cancel", response_model=PostOut, tags=["scheduling"])
    async def cancel(post_id: uuid.UUID, caller: Caller) -> PostOut:
        """Cancel what has not gone out yet; what was published stays published."""
        require_role(caller, EDITORS)
        async with rt.pool.acquire() as conn, conn.transaction():
            post = await own_post(conn, caller, post_id)
            if post["status"] in ("published", "failed", "partially_published", "cancelled"):
                raise ApiError(409, "not_cancellable", f"a {post['status']} post is done")
            await repository.cancel_deliveries(conn, post_id)
            await repository.set_post(conn, post_id, status="cancelled")
            await repository.audit(conn, post_id, caller.subject, caller.role, "cancelled", None)
            await add_events(
                conn,
                [
                    events.lifecycle(
                        "post.cancelled",
                        tenant_id=caller.tenant_id,
                        brand_id=post["brand_id"],
                        post_id=post_id,
                        actor=caller.subject,
                    )
                ],
            )
            return await view(conn, await own_post(conn, caller, post_id))

    @router.get("/calendar", response_model=Calendar, tags=["scheduling"])
    async def calendar(
        caller: Caller,
        brand_id: Annotated[BrandId, Query()],
        start: Annotated[date, Query(alias="from")],
        end: Annotated[date, Query(alias="to")],
    ) -> Calendar:
        """Scheduled posts between two local dates (inclusive) in the brand's zone, by day."""
        require_role(caller, READERS)
        async with rt.pool.acquire() as conn:
            zone, posts = await scheduled_between(conn, caller.tenant_id, brand_id, start, end)
            days: dict[date, list[PostOut]] = defaultdict(list)
            for post in posts:
                out = await view(conn, post)
                assert out.scheduled_local is not None
                days[out.scheduled_local.date()].append(out)
        return Calendar(
            timezone=zone, days=[CalendarDay(date=d, posts=p) for d, p in sorted(days.items())]
        )

    return router
