"""The publisher's Kafka subscribers: reply requests from the inbox become reply deliveries."""

from __future__ import annotations

from collections.abc import Sequence

from services.publisher import repository
from shared.db import Connection
from shared.events import ReplyRequested
from shared.runtime import Runtime
from shared.topics import INBOX


async def queue_replies(conn: Connection, events: Sequence[ReplyRequested]) -> None:
    for e in events:
        p = e.payload
        channel = await repository.get_channel(conn, p.channel_id, e.tenant_id)
        if channel is None:
            # Not this tenant's channel (or gone): raising sends the event to the DLQ with why.
            raise LookupError(f"reply {p.request_id}: no channel {p.channel_id} for {e.tenant_id}")
        await repository.insert_reply(
            conn,
            tenant_id=e.tenant_id,
            channel_id=p.channel_id,
            text=p.text,
            reply_to=p.reply_to_external_id,
            request_id=p.request_id,
        )


def subscribe(rt: Runtime) -> None:
    rt.consume(
        INBOX,
        name="reply-requests",
        models={"reply.requested": ReplyRequested},
        effect=queue_replies,
    )
