"""The publisher's Kafka subscribers: the inbox's reply and hide requests become deliveries."""

from __future__ import annotations

from collections.abc import Mapping, Sequence

from services.publisher import repository
from shared.db import Connection
from shared.events import HideRequested, ReplyRequested
from shared.runtime import Runtime
from shared.topics import INBOX

InboxRequest = ReplyRequested | HideRequested

INBOX_REQUESTS: Mapping[str, type[InboxRequest]] = {
    "reply.requested": ReplyRequested,
    "comment.hide_requested": HideRequested,
}


async def queue_requests(conn: Connection, events: Sequence[InboxRequest]) -> None:
    """Queue one delivery per request, on the event's tenant's channel; a request seen before
    (same `request_id`) queues nothing."""
    for e in events:
        p = e.payload
        channel = await repository.get_channel(conn, p.channel_id, e.tenant_id)
        if channel is None:
            # Not this tenant's channel (or gone): raising sends the event to the DLQ with why.
            raise LookupError(
                f"{e.type} {p.request_id}: no channel {p.channel_id} for {e.tenant_id}"
            )
        if isinstance(e, HideRequested):
            # The channel's network decides how to hide, not the payload's `network` label.
            await repository.insert_hide(
                conn,
                tenant_id=e.tenant_id,
                channel_id=e.payload.channel_id,
                comment_external_id=e.payload.external_id,
                request_id=e.payload.request_id,
            )
        else:
            await repository.insert_reply(
                conn,
                tenant_id=e.tenant_id,
                channel_id=e.payload.channel_id,
                text=e.payload.text,
                reply_to=e.payload.reply_to_external_id,
                request_id=e.payload.request_id,
            )


def subscribe(rt: Runtime) -> None:
    # The group keeps its first name: a new one would be a new group, reading the topic anew.
    rt.consume(INBOX, name="reply-requests", models=INBOX_REQUESTS, effect=queue_requests)
