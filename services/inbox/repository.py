"""Every SQL statement of the inbox service. Callers own the transaction."""

from __future__ import annotations

import json
import uuid
from collections.abc import Sequence
from datetime import datetime
from typing import Any

from services.inbox.triage import Triage
from shared.db import Connection
from shared.events import MentionDeleted, MentionReceived, MentionUpdated

_ITEM_COLUMNS = """
    id, tenant_id, brand_id, source_id, network, external_id, kind, text, url, language,
    author_id, author_handle, author_display_name, author_followers, thread_root_id,
    parent_external_id, created_at, received_at, edited_at, deleted_at, sentiment,
    sentiment_score, intent, spam, priority, level, signals
"""


async def insert_items(
    conn: Connection, events: Sequence[MentionReceived], triaged: Sequence[Triage]
) -> int:
    """Store one item per mention event with its triage; an item already stored is left as it
    is."""
    p = [e.payload for e in events]
    result: str = await conn.execute(
        """
        INSERT INTO items (id, tenant_id, brand_id, source_id, network, external_id, kind, text,
                           url, language, author_id, author_handle, author_display_name,
                           author_followers, thread_root_id, parent_external_id, created_at,
                           event_id, sentiment, sentiment_score, intent, spam, priority, level,
                           signals)
        SELECT u.id, u.tenant_id, u.brand_id, u.source_id, u.network, u.external_id, u.kind,
               u.text, u.url, u.language, u.author_id, u.author_handle, u.author_display_name,
               u.author_followers, u.thread_root_id, u.parent_external_id, u.created_at,
               u.event_id, u.sentiment, u.sentiment_score, u.intent, u.spam, u.priority,
               u.level, u.signals::jsonb
        FROM unnest($1::uuid[], $2::text[], $3::text[], $4::uuid[], $5::text[],
                    $6::text[], $7::text[], $8::text[], $9::text[], $10::text[],
                    $11::text[], $12::text[], $13::text[], $14::integer[], $15::text[],
                    $16::text[], $17::timestamptz[], $18::uuid[], $19::text[], $20::real[],
                    $21::text[], $22::boolean[], $23::smallint[], $24::text[], $25::text[])
             AS u(id, tenant_id, brand_id, source_id, network, external_id, kind, text, url,
                  language, author_id, author_handle, author_display_name, author_followers,
                  thread_root_id, parent_external_id, created_at, event_id, sentiment,
                  sentiment_score, intent, spam, priority, level, signals)
        ON CONFLICT DO NOTHING
        """,
        [x.mention_id for x in p],
        [e.tenant_id for e in events],
        [e.brand_id or "" for e in events],
        [x.source_id for x in p],
        [x.network for x in p],
        [x.external_id for x in p],
        [x.kind for x in p],
        [x.text for x in p],
        [x.url for x in p],
        [x.language for x in p],
        [x.author.id for x in p],
        [x.author.handle for x in p],
        [x.author.display_name for x in p],
        [x.author.followers for x in p],
        [x.thread.root_external_id for x in p],
        [x.thread.parent_external_id for x in p],
        [x.created_at for x in p],
        [e.event_id for e in events],
        [t.sentiment.label for t in triaged],
        [t.sentiment.score for t in triaged],
        [t.intent for t in triaged],
        [t.spam.is_spam for t in triaged],
        [t.priority for t in triaged],
        [t.level for t in triaged],
        [
            json.dumps(
                [{"name": x.name, "weight": x.weight, "detail": x.detail} for x in t.signals]
            )
            for t in triaged
        ],
    )
    return int(result.rsplit(" ", 1)[-1])


async def apply_edits(conn: Connection, events: Sequence[MentionUpdated]) -> None:
    """The newest state of edited items (an older edit redelivered late never wins)."""
    await conn.execute(
        """
        UPDATE items SET text = u.text, edited_at = u.edited_at
        FROM unnest($1::uuid[], $2::text[], $3::timestamptz[]) AS u(id, text, edited_at)
        WHERE items.id = u.id
          AND (items.edited_at IS NULL OR items.edited_at <= u.edited_at)
        """,
        [e.payload.mention_id for e in events],
        [e.payload.text for e in events],
        [e.payload.edited_at or e.occurred_at for e in events],
    )


async def mark_deleted(conn: Connection, events: Sequence[MentionDeleted]) -> None:
    await conn.execute(
        """
        UPDATE items SET deleted_at = u.deleted_at
        FROM unnest($1::uuid[], $2::timestamptz[]) AS u(id, deleted_at)
        WHERE items.id = u.id AND items.deleted_at IS NULL
        """,
        [e.payload.mention_id for e in events],
        [e.payload.deleted_at for e in events],
    )


async def list_items(
    conn: Connection,
    *,
    tenant_id: str,
    brand_id: str | None,
    after: tuple[datetime, uuid.UUID] | None,
    limit: int,
    by_priority: bool = False,
    after_priority: int | None = None,
    sentiment: str | None = None,
    level: str | None = None,
    spam: bool | None = None,
) -> list[dict[str, Any]]:
    # Conditions are added only when used, so each shape gets a plan that walks its own index
    # (a catch-all `$2 IS NULL OR …` would leave the generic plan unable to pick one).
    conditions = ["tenant_id = $1"]
    args: list[Any] = [tenant_id]
    for column, value in (
        ("brand_id", brand_id),
        ("sentiment", sentiment),
        ("level", level),
        ("spam", spam),
    ):
        if value is not None:
            args.append(value)
            conditions.append(f"{column} = ${len(args)}")
    if after is not None:
        if by_priority:
            args += [after_priority, after[0], after[1]]
            n = len(args)
            conditions.append(f"(priority, created_at, id) < (${n - 2}, ${n - 1}, ${n})")
        else:
            args += [after[0], after[1]]
            conditions.append(f"(created_at, id) < (${len(args) - 1}, ${len(args)})")
    args.append(limit)
    order = "priority DESC, created_at DESC, id DESC" if by_priority else "created_at DESC, id DESC"
    rows = await conn.fetch(
        f"""
        SELECT {_ITEM_COLUMNS} FROM items
        WHERE {" AND ".join(conditions)}
        ORDER BY {order}
        LIMIT ${len(args)}
        """,
        *args,
    )
    return [dict(r) for r in rows]
