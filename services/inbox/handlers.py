"""Inbox's Kafka subscribers: decode, hand to the idempotent batch consumer, no SQL here."""

from __future__ import annotations

from collections.abc import Sequence

from services.inbox import repository
from services.inbox.triage import Triage, triage
from shared.db import Connection
from shared.events import MentionDeleted, MentionReceived, MentionUpdated
from shared.runtime import Runtime
from shared.topics import MENTIONS

MentionEvent = MentionReceived | MentionUpdated | MentionDeleted


def triage_of(event: MentionReceived) -> Triage:
    p = event.payload
    return triage(
        p.text,
        language=p.language,
        author_followers=p.author.followers,
        author_verified=p.author.verified,
        kind=p.kind,
        author_handle=p.author.handle,
    )


async def apply_mentions(conn: Connection, events: Sequence[MentionEvent]) -> None:
    """New items first, then edits and deletions, so a batch holding an item and its edit (or its
    removal) ends with the item in its latest state."""
    received = [e for e in events if isinstance(e, MentionReceived)]
    if received:
        await repository.insert_items(conn, received, [triage_of(e) for e in received])
    edits = [e for e in events if isinstance(e, MentionUpdated)]
    if edits:
        await repository.apply_edits(conn, edits)
    deletions = [e for e in events if isinstance(e, MentionDeleted)]
    if deletions:
        await repository.mark_deleted(conn, deletions)


MODELS: dict[str, type[MentionEvent]] = {
    "mention.received": MentionReceived,
    "mention.updated": MentionUpdated,
    "mention.deleted": MentionDeleted,
}


def subscribe(rt: Runtime) -> None:
    rt.consume(MENTIONS, name="mentions", models=MODELS, effect=apply_mentions)
