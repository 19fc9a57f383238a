"""Inbox's Kafka subscribers: decode, hand to the idempotent batch consumer, no SQL here."""

from __future__ import annotations

from collections.abc import Sequence

from services.inbox import repository
from shared.db import Connection
from shared.events import MentionReceived
from shared.runtime import Runtime
from shared.topics import MENTIONS


async def store_mentions(conn: Connection, events: Sequence[MentionReceived]) -> None:
    await repository.insert_items(conn, events)


def subscribe(rt: Runtime) -> None:
    rt.consume(
        MENTIONS,
        name="mentions",
        models={"mention.received": MentionReceived},
        effect=store_mentions,
    )
