"""Inbox's Kafka subscribers and background job: decode, hand to the workflow, no SQL here."""

from __future__ import annotations

import asyncio
import logging
from collections.abc import Sequence
from datetime import UTC, datetime

from services.inbox import repository, workflow
from shared.db import TRANSIENT_DB_ERRORS, Connection
from shared.events import (
    CommentHidden,
    CommentHideFailed,
    MentionDeleted,
    MentionReceived,
    MentionUpdated,
    ReplyFailed,
    ReplyPublished,
)
from shared.runtime import Runtime
from shared.settings import InboxSettings
from shared.topics import MENTIONS, POSTS

log = logging.getLogger("opensmm.inbox")

MentionEvent = MentionReceived | MentionUpdated | MentionDeleted
OutcomeEvent = ReplyPublished | ReplyFailed | CommentHidden | CommentHideFailed


async def apply_mentions(conn: Connection, events: Sequence[MentionEvent]) -> None:
    """New items first, then edits and deletions, so a batch holding an item and its edit (or its
    removal) ends with the item in its latest state."""
    received = [e for e in events if isinstance(e, MentionReceived)]
    if received:
        await workflow.receive(conn, received)
    edits = [e for e in events if isinstance(e, MentionUpdated)]
    if edits:
        await repository.apply_edits(conn, edits)
    deletions = [e for e in events if isinstance(e, MentionDeleted)]
    if deletions:
        await repository.mark_deleted(conn, deletions)


async def apply_outcomes(conn: Connection, events: Sequence[OutcomeEvent]) -> None:
    """What the publisher did with the inbox's replies and hide requests."""
    replies = [e for e in events if isinstance(e, ReplyPublished | ReplyFailed)]
    if replies:
        await workflow.reply_outcomes(conn, replies)
    hides = [e for e in events if isinstance(e, CommentHidden | CommentHideFailed)]
    if hides:
        await workflow.hide_outcomes(conn, hides)


MODELS: dict[str, type[MentionEvent]] = {
    "mention.received": MentionReceived,
    "mention.updated": MentionUpdated,
    "mention.deleted": MentionDeleted,
}

OUTCOME_MODELS: dict[str, type[OutcomeEvent]] = {
    "reply.published": ReplyPublished,
    "reply.failed": ReplyFailed,
    "comment.hidden": CommentHidden,
    "comment.hide_failed": CommentHideFailed,
}


class SlaChanges:
    """The near breaches and breaches one SLA tick made, as (state, sla kind)."""

    def __init__(self) -> None:
        self.changes: list[tuple[str, str]] = []

    def __call__(self, state: str, kind: str) -> None:
        self.changes.append((state, kind))


def subscribe(rt: Runtime, settings: InboxSettings) -> None:
    rt.consume(MENTIONS, name="mentions", models=MODELS, effect=apply_mentions)
    rt.consume(POSTS, name="publisher-outcomes", models=OUTCOME_MODELS, effect=apply_outcomes)

    def count_sla(heard: SlaChanges) -> None:
        for state, kind in heard.changes:
            counter = (
                rt.metrics.sla_breaches if state == "breached" else rt.metrics.sla_near_breaches
            )
            counter.labels(kind).inc()

    async def sla_clock() -> None:
        """Every few seconds: amber and red SLA states, escalations, snoozes that ended, and
        conversations waiting in a team's queue."""
        interval = settings.sla_tick_s
        while True:
            try:
                while True:
                    heard = SlaChanges()
                    async with rt.pool.acquire() as conn, conn.transaction():
                        done = await workflow.sla_tick(conn, datetime.now(UTC), on_sla=heard)
                    count_sla(heard)  # only what committed
                    if done == 0:
                        break
                async with rt.pool.acquire() as conn, conn.transaction():
                    await workflow.assign_waiting(conn)
            except TRANSIENT_DB_ERRORS as exc:
                log.warning("SLA clock: database unavailable, retrying: %s", exc)
            except Exception:
                log.exception("SLA clock: tick failed")
            await asyncio.sleep(interval)

    rt.background.append(sla_clock)
