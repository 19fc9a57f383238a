"""The publisher's events on `smm.posts.v1`, built for the outbox."""

from __future__ import annotations

import uuid
from datetime import UTC, datetime
from typing import Any

from shared.events import (
    HideOutcomePayload,
    PostEngagementPayload,
    PostLifecyclePayload,
    PostPublishedPayload,
    ReplyOutcomePayload,
    envelope_for,
)
from shared.outbox import OutgoingEvent
from shared.topics import POSTS


def _event(tenant_id: str, key: uuid.UUID, event: dict[str, Any]) -> OutgoingEvent:
    return OutgoingEvent(topic=POSTS.name, key=f"{tenant_id}:{key}", event=event)


def lifecycle(
    event_type: str,
    *,
    tenant_id: str,
    brand_id: str,
    post_id: uuid.UUID,
    actor: str | None = None,
    comment: str | None = None,
    scheduled_at: datetime | None = None,
    channel_id: uuid.UUID | None = None,
    network: str | None = None,
) -> OutgoingEvent:
    payload = PostLifecyclePayload(
        post_id=post_id,
        actor=actor,
        comment=comment,
        scheduled_at=scheduled_at,
        channel_id=channel_id,
        network=network,
    )
    now = datetime.now(UTC)
    return _event(
        tenant_id,
        post_id,
        envelope_for(
            payload, event_type=event_type, tenant_id=tenant_id, brand_id=brand_id, occurred_at=now
        ),
    )


def delivery_done(
    delivery: dict[str, Any],
    status: str,
    remote_id: str | None,
    url: str | None,
    error: str | None,
) -> list[OutgoingEvent]:
    """`post.published` / `post.failed` for a post's channel, `reply.published` /
    `reply.failed` for a reply the inbox asked for, `comment.hidden` / `comment.hide_failed` for
    a comment it asked to hide."""
    now = datetime.now(UTC)
    tenant, brand = delivery["tenant_id"], delivery["brand_id"]
    if delivery["kind"] == "hide":
        hide = HideOutcomePayload(
            request_id=delivery["request_id"],
            channel_id=delivery["channel_id"],
            network=delivery["network"],
            external_id=delivery["target_external_id"],
            error=error,
        )
        event_type = "comment.hidden" if status == "published" else "comment.hide_failed"
        event = envelope_for(
            hide, event_type=event_type, tenant_id=tenant, brand_id=brand, occurred_at=now
        )
        return [_event(tenant, delivery["request_id"], event)]
    if delivery["kind"] == "reply":
        reply = ReplyOutcomePayload(
            request_id=delivery["request_id"],
            channel_id=delivery["channel_id"],
            network=delivery["network"],
            reply_to_external_id=delivery["reply_to"] or "",
            external_id=remote_id,
            url=url,
            error=error,
        )
        event_type = "reply.published" if status == "published" else "reply.failed"
        event = envelope_for(
            reply, event_type=event_type, tenant_id=tenant, brand_id=brand, occurred_at=now
        )
        return [_event(tenant, delivery["request_id"], event)]
    post_id = delivery["post_id"]
    if status == "published":
        assert remote_id is not None
        published = PostPublishedPayload(
            post_id=post_id,
            channel_id=delivery["channel_id"],
            network=delivery["network"],
            external_id=remote_id,
            url=url,
            published_at=now,
            # The due time of this delivery: for a recurring post, this run's.
            scheduled_at=delivery.get("due_at"),
        )
        event = envelope_for(published, tenant_id=tenant, brand_id=brand, occurred_at=now)
    else:
        failed = PostLifecyclePayload(
            post_id=post_id,
            channel_id=delivery["channel_id"],
            network=delivery["network"],
            error=error,
        )
        event = envelope_for(
            failed, event_type="post.failed", tenant_id=tenant, brand_id=brand, occurred_at=now
        )
    return [_event(tenant, post_id, event)]


def scheduled_per_channel(
    *,
    tenant_id: str,
    brand_id: str,
    post_id: uuid.UUID,
    actor: str,
    due: dict[uuid.UUID, datetime],
    networks: dict[uuid.UUID, str],
) -> list[OutgoingEvent]:
    """One `post.scheduled` per channel of a post, with that channel's own due time (the first
    run, for a recurring post)."""
    return [
        lifecycle(
            "post.scheduled",
            tenant_id=tenant_id,
            brand_id=brand_id,
            post_id=post_id,
            actor=actor,
            scheduled_at=at,
            channel_id=channel_id,
            network=networks.get(channel_id),
        )
        for channel_id, at in sorted(due.items(), key=lambda item: (item[1], str(item[0])))
    ]


def engagement_updated(
    measured: dict[str, Any], counters: dict[str, int | None], measured_at: datetime
) -> OutgoingEvent:
    """`post.engagement_updated` for a published post delivery whose counters changed."""
    tenant, post_id = measured["tenant_id"], measured["post_id"]
    payload = PostEngagementPayload(
        post_id=post_id,
        channel_id=measured["channel_id"],
        network=measured["network"],
        external_id=measured["remote_id"],
        measured_at=measured_at,
        **counters,
    )
    event = envelope_for(
        payload, tenant_id=tenant, brand_id=measured["brand_id"], occurred_at=measured_at
    )
    return _event(tenant, post_id, event)
