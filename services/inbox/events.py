"""The inbox's events on `smm.inbox.v1`, built for the outbox and keyed by conversation so each
conversation's events stay in order."""

from __future__ import annotations

import uuid
from datetime import UTC, datetime
from typing import Any

from services.inbox.conversations import Conversation
from shared.events import (
    EventModel,
    HideRequestedPayload,
    InboxItemEventPayload,
    ReplyRequestedPayload,
    envelope_for,
)
from shared.outbox import OutgoingEvent
from shared.topics import INBOX


def _outgoing(
    conv: Conversation, payload: EventModel, event_type: str | None = None
) -> OutgoingEvent:
    """The payload in its envelope, on smm.inbox.v1, keyed by the conversation."""
    envelope = envelope_for(
        payload,
        event_type=event_type,
        tenant_id=conv.tenant_id,
        brand_id=conv.brand_id,
        occurred_at=datetime.now(UTC),
    )
    return OutgoingEvent(topic=INBOX.name, key=f"{conv.tenant_id}:{conv.id}", event=envelope)


def item_event(
    event_type: str,
    conv: Conversation,
    item: dict[str, Any],
    **extra: Any,
) -> OutgoingEvent:
    """An `item.*` event: the item's triage and its conversation's state as they are now."""
    payload = InboxItemEventPayload(
        item_id=item["id"],
        conversation_id=conv.id,
        network=conv.network,
        status=conv.status,
        priority=item["priority"],
        level=item["level"],
        sentiment=item.get("sentiment"),
        intent=item.get("intent"),
        spam=bool(item.get("spam")),
        assignee_id=conv.assignee_id,
        team_id=conv.team_id,
        due_at=conv.due_at,
        sla_state=conv.sla_state,
        **extra,
    )
    return _outgoing(conv, payload, event_type)


def reply_requested(
    conv: Conversation,
    *,
    request_id: uuid.UUID,
    channel_id: uuid.UUID,
    reply_to: str,
    text: str,
    requested_by: str,
) -> OutgoingEvent:
    payload = ReplyRequestedPayload(
        request_id=request_id,
        channel_id=channel_id,
        reply_to_external_id=reply_to,
        text=text,
        requested_by=requested_by,
    )
    return _outgoing(conv, payload)


def hide_requested(
    conv: Conversation,
    *,
    request_id: uuid.UUID,
    channel_id: uuid.UUID,
    external_id: str,
    requested_by: str,
) -> OutgoingEvent:
    payload = HideRequestedPayload(
        request_id=request_id,
        channel_id=channel_id,
        network=conv.network,
        external_id=external_id,
        requested_by=requested_by,
    )
    return _outgoing(conv, payload)
