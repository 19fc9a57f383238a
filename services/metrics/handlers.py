"""Metrics' Kafka subscribers on all three topics: decode, update the rollups. SQL lives in the
repository; what a mention counts for lives in rollups.py."""

from __future__ import annotations

import uuid
from collections import Counter
from collections.abc import Sequence
from datetime import UTC, datetime
from typing import Any, Literal

from services.metrics import repository, rollups
from services.metrics.rollups import CounterKey, hour
from shared.db import Connection
from shared.events import (
    Envelope,
    InboxItemEvent,
    MentionDeleted,
    MentionReceived,
    MentionUpdated,
    PostEngagementUpdated,
    PostLifecyclePayload,
    PostPublished,
)
from shared.runtime import Runtime
from shared.topics import INBOX, MENTIONS, POSTS

MentionEvent = MentionReceived | MentionUpdated | MentionDeleted


class PostLifecycle(Envelope[PostLifecyclePayload]):
    """`post.scheduled`, `post.failed`, `post.cancelled` (shared/events.py has no envelope class
    for them: the payload is shared)."""

    type: Literal["post.scheduled", "post.failed", "post.cancelled"]
    schema_version: Literal[1] = 1


PostEvent = PostPublished | PostLifecycle | PostEngagementUpdated


async def apply_mentions(conn: Connection, events: Sequence[MentionEvent]) -> None:
    """Each touched mention's old contribution out of the counters, its new one in."""
    facts = await repository.lock_mention_facts(
        conn, [(e.tenant_id, e.payload.mention_id) for e in events]
    )
    before = {k: f.copy() for k, f in facts.items()}
    for e in events:
        fact = facts[(e.tenant_id, e.payload.mention_id)]
        if isinstance(e, MentionDeleted):
            fact.deleted = True
        else:
            rollups.receive(fact, e.brand_id, e.payload)
    await repository.save_mention_facts(conn, list(facts.values()))
    await repository.add_counts(conn, rollups.change(before, facts))


async def apply_inbox(conn: Connection, events: Sequence[InboxItemEvent]) -> None:
    """Triage onto the mentions, each conversation's latest state, responses and SLA outcomes."""
    # A new item's triage comes with `item.created`; `item.triaged` (a re-triage, or an older
    # inbox's second event) sets the same fields, and an unchanged value changes no counter.
    triaged = [e for e in events if e.type in ("item.created", "item.triaged")]
    if triaged:
        facts = await repository.lock_mention_facts(
            conn, [(e.tenant_id, e.payload.item_id) for e in triaged]
        )
        before = {k: f.copy() for k, f in facts.items()}
        for e in triaged:
            fact = facts[(e.tenant_id, e.payload.item_id)]
            fact.sentiment, fact.intent = e.payload.sentiment, e.payload.intent
        await repository.save_mention_facts(conn, list(facts.values()))
        await repository.add_counts(conn, rollups.change(before, facts))

    latest: dict[tuple[str, uuid.UUID], dict[str, Any]] = {}
    responses: list[dict[str, Any]] = []
    breaches: list[dict[str, Any]] = []
    counts: Counter[CounterKey] = Counter()
    for e in events:
        p, brand = e.payload, e.brand_id or ""
        key = (e.tenant_id, p.conversation_id)
        if key not in latest or latest[key]["at"] <= e.occurred_at:
            latest[key] = {
                "at": e.occurred_at,
                "tenant_id": e.tenant_id,
                "conversation_id": str(p.conversation_id),
                "brand_id": brand,
                "network": p.network,
                "status": p.status,
                "level": p.level,
                "priority": p.priority,
                "assignee_id": p.assignee_id,
                "team_id": p.team_id,
                "occurred_at": e.occurred_at.isoformat(),
            }

        at = hour(e.occurred_at)
        counted = {
            "item.created": ["created"],
            "item.replied": ["replies"] + (["sla_met"] if p.sla_state == "met" else []),
            "item.sla_breached": ["sla_breached"],
        }.get(e.type, [])
        for dimension in counted:
            counts[(rollups.HOURLY, e.tenant_id, brand, "inbox", dimension, at, p.network, "")] += 1
        if e.type == "item.replied":
            responses.append(
                {
                    "event_id": str(e.event_id),
                    "tenant_id": e.tenant_id,
                    "brand_id": brand,
                    "network": p.network,
                    "conversation_id": str(p.conversation_id),
                    "replied_at": e.occurred_at.isoformat(),
                    "response_kind": p.response_kind,
                    "response_s": p.response_s,
                    "first_response_s": p.first_response_s,
                    "member_id": p.actor or p.assignee_id,
                    "team_id": p.team_id,
                    "sla_state": p.sla_state,
                }
            )
        elif e.type == "item.sla_breached":
            breaches.append(
                {
                    "event_id": str(e.event_id),
                    "tenant_id": e.tenant_id,
                    "brand_id": brand,
                    "network": p.network,
                    "conversation_id": str(p.conversation_id),
                    "breached_at": e.occurred_at.isoformat(),
                    "member_id": p.assignee_id,
                    "team_id": p.team_id,
                }
            )
    await repository.upsert_conversations(
        conn, [{k: v for k, v in row.items() if k != "at"} for row in latest.values()]
    )
    if responses:
        await repository.insert_responses(conn, responses)
    if breaches:
        await repository.insert_breaches(conn, breaches)
    await repository.add_counts(conn, counts)


async def apply_engagement(conn: Connection, events: Sequence[PostEngagementUpdated]) -> None:
    """Each post's latest counters per channel, and each channel's last audience of the hour;
    older measurements (late, or redelivered under a new id) never overwrite newer ones."""
    latest = rollups.newest(
        events,
        key=lambda e: (e.tenant_id, e.payload.post_id, e.payload.channel_id),
        at=lambda e: e.payload.measured_at,
    )
    if latest:
        await repository.upsert_engagement(
            conn,
            [
                {
                    "tenant_id": e.tenant_id,
                    "post_id": str(e.payload.post_id),
                    "channel_id": str(e.payload.channel_id),
                    "brand_id": e.brand_id or "",
                    "network": e.payload.network,
                    "external_id": e.payload.external_id,
                    "likes": e.payload.likes,
                    "reposts": e.payload.reposts,
                    "replies": e.payload.replies,
                    "views": e.payload.views,
                    "followers": e.payload.followers,
                    "measured_at": e.payload.measured_at.isoformat(),
                }
                for e in latest
            ],
        )
    audience = rollups.newest(
        [e for e in events if e.payload.followers is not None],
        key=lambda e: (e.tenant_id, e.brand_id, e.payload.channel_id, _utc_hour(e)),
        at=lambda e: e.payload.measured_at,
    )
    if audience:
        await repository.upsert_audience(
            conn,
            [
                {
                    "tenant_id": e.tenant_id,
                    "brand_id": e.brand_id or "",
                    "channel_id": str(e.payload.channel_id),
                    "bucket": _utc_hour(e).isoformat(),
                    "network": e.payload.network,
                    "followers": e.payload.followers,
                    "measured_at": e.payload.measured_at.isoformat(),
                }
                for e in audience
            ],
        )


def _utc_hour(e: PostEngagementUpdated) -> datetime:
    return hour(e.payload.measured_at.astimezone(UTC))


async def apply_posts(conn: Connection, events: Sequence[PostEvent]) -> None:
    """Schedules remembered per post (and per channel when the event names one); each channel
    outcome stored with its lateness; engagement measurements kept latest-wins."""
    measured = [e for e in events if isinstance(e, PostEngagementUpdated)]
    if measured:
        await apply_engagement(conn, measured)
    lifecycle = [e for e in events if not isinstance(e, PostEngagementUpdated)]
    schedules: dict[tuple[str, uuid.UUID], dict[str, Any]] = {}
    channel_schedules: dict[tuple[str, uuid.UUID, uuid.UUID], dict[str, Any]] = {}
    for e in lifecycle:
        if e.type != "post.scheduled" or e.payload.scheduled_at is None:
            continue
        planned: dict[str, Any] = {
            "tenant_id": e.tenant_id,
            "post_id": str(e.payload.post_id),
            "brand_id": e.brand_id or "",
            "scheduled_at": e.payload.scheduled_at.isoformat(),
            "cancelled": False,
            "occurred_at": e.occurred_at.isoformat(),
        }
        if e.payload.channel_id is not None:
            per_channel = (e.tenant_id, e.payload.post_id, e.payload.channel_id)
            planned |= {"channel_id": str(e.payload.channel_id), "network": e.payload.network or ""}
            seen = channel_schedules.get(per_channel)
            if seen is None or seen["at"] <= e.occurred_at:
                channel_schedules[per_channel] = planned | {"at": e.occurred_at}
        else:
            per_post = (e.tenant_id, e.payload.post_id)
            if per_post not in schedules or schedules[per_post]["at"] <= e.occurred_at:
                schedules[per_post] = planned | {"at": e.occurred_at}
    if schedules:
        await repository.remember_schedules(conn, [_no_at(r) for r in schedules.values()])
    if channel_schedules:
        await repository.remember_channel_schedules(
            conn, [_no_at(r) for r in channel_schedules.values()]
        )
    cancelled = [
        (e.tenant_id, e.payload.post_id, e.payload.channel_id)
        for e in lifecycle
        if e.type == "post.cancelled"
    ]
    if cancelled:
        await repository.cancel_schedules(conn, cancelled)

    outcomes = [e for e in lifecycle if e.type in ("post.published", "post.failed")]
    if not outcomes:
        return
    # The delivery's own due time when the event carries it; else the channel's remembered
    # schedule; else the post's (older publishers: the earliest channel's, a series' first run).
    remembered = await repository.scheduled_times(
        conn,
        [(e.tenant_id, e.payload.post_id, e.payload.channel_id) for e in outcomes],
    )
    rows: list[dict[str, Any]] = []
    counts: Counter[CounterKey] = Counter()
    for e in outcomes:
        brand = e.brand_id or ""
        due = e.payload.scheduled_at or remembered.get(
            (e.tenant_id, e.payload.post_id, e.payload.channel_id)
        )
        channel = str(e.payload.channel_id) if e.payload.channel_id else ""
        network = e.payload.network or ""
        row: dict[str, Any] = {
            "event_id": str(e.event_id),
            "tenant_id": e.tenant_id,
            "brand_id": brand,
            "post_id": str(e.payload.post_id),
            "channel_id": channel or None,
            "network": network,
            "scheduled_at": due.isoformat() if due else None,
        }
        if isinstance(e, PostPublished):
            at = e.payload.published_at
            late = rollups.lateness(at, due)
            row |= {
                "outcome": "published",
                "at": at.isoformat(),
                "external_id": e.payload.external_id,
                "url": e.payload.url,
                "lateness_s": late,
            }
            outcome = ["published"]
            punctual = rollups.on_time(late)
            if punctual is not None:
                outcome.append("on_time" if punctual else "late")
        else:
            at = e.occurred_at
            row |= {"outcome": "failed", "at": at.isoformat(), "error": e.payload.error}
            outcome = ["failed"]
        rows.append(row)
        for dimension in outcome:
            counts[
                (rollups.HOURLY, e.tenant_id, brand, "posts", dimension, hour(at), network, channel)
            ] += 1
    await repository.insert_outcomes(conn, rows)
    await repository.add_counts(conn, counts)


def _no_at(row: dict[str, Any]) -> dict[str, Any]:
    return {k: v for k, v in row.items() if k != "at"}


MENTION_MODELS: dict[str, type[MentionEvent]] = {
    "mention.received": MentionReceived,
    "mention.updated": MentionUpdated,
    "mention.deleted": MentionDeleted,
}
INBOX_MODELS: dict[str, type[InboxItemEvent]] = {
    t: InboxItemEvent
    for t in (
        "item.created",
        "item.triaged",
        "item.assigned",
        "item.status_changed",
        "item.replied",
        "item.sla_near_breach",
        "item.sla_breached",
    )
}
POST_MODELS: dict[str, type[PostEvent]] = {
    "post.published": PostPublished,
    "post.scheduled": PostLifecycle,
    "post.failed": PostLifecycle,
    "post.cancelled": PostLifecycle,
    "post.engagement_updated": PostEngagementUpdated,
}


def subscribe(rt: Runtime) -> None:
    rt.consume(MENTIONS, name="mentions", models=MENTION_MODELS, effect=apply_mentions)
    rt.consume(INBOX, name="inbox", models=INBOX_MODELS, effect=apply_inbox)
    rt.consume(POSTS, name="posts", models=POST_MODELS, effect=apply_posts)
