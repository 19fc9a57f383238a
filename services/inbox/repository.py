"""Every SQL statement of the inbox service. Callers own the transaction."""

from __future__ import annotations

import json
import uuid
from collections.abc import Sequence
from dataclasses import dataclass
from datetime import datetime
from typing import Any, NamedTuple

from services.inbox.assignment import ClaimState
from services.inbox.conversations import Conversation
from shared.db import Connection, WriteConflict
from shared.events import MentionDeleted, MentionUpdated

_ITEM_COLUMNS = """
    id, tenant_id, brand_id, source_id, network, external_id, kind, text, url, language,
    author_id, author_handle, author_display_name, author_followers, thread_root_id,
    parent_external_id, created_at, received_at, edited_at, deleted_at, sentiment,
    sentiment_score, intent, spam, priority, level, signals, conversation_id, status,
    assignee_id, team_id, due_at, sla_state, tags, rule_ids, hidden_at, claimed_by,
    claimed_at, claim_expires_at
"""


class ConversationKey(NamedTuple):
    tenant_id: str
    brand_id: str
    network: str
    thread_root_id: str


class Activity(NamedTuple):
    tenant_id: str
    conversation_id: uuid.UUID
    item_id: uuid.UUID | None
    actor: str
    kind: str
    detail: dict[str, Any]


def _signals_json(signals: Sequence[Any]) -> str:
    return json.dumps(
        [
            s if isinstance(s, dict) else {"name": s.name, "weight": s.weight, "detail": s.detail}
            for s in signals
        ]
    )


async def existing_item_ids(conn: Connection, ids: Sequence[uuid.UUID]) -> set[uuid.UUID]:
    rows = await conn.fetch("SELECT id FROM items WHERE id = ANY($1::uuid[])", list(ids))
    return {r["id"] for r in rows}


async def thread_roots(
    conn: Connection, tenant_id: str, parents: set[tuple[str, str, str]]
) -> dict[tuple[str, str, str], str]:
    """The thread root of each known (brand, network, external id)."""
    if not parents:
        return {}
    keys = sorted(parents)
    rows = await conn.fetch(
        """
        SELECT i.brand_id, i.network, i.external_id, i.thread_root_id
        FROM unnest($2::text[], $3::text[], $4::text[]) AS k(brand_id, network, external_id)
        JOIN items i ON i.tenant_id = $1 AND i.brand_id = k.brand_id AND i.network = k.network
                    AND i.external_id = k.external_id
        """,
        tenant_id,
        [k[0] for k in keys],
        [k[1] for k in keys],
        [k[2] for k in keys],
    )
    return {(r["brand_id"], r["network"], r["external_id"]): r["thread_root_id"] for r in rows}


async def insert_items(conn: Connection, items: Sequence[dict[str, Any]]) -> set[uuid.UUID]:
    """Store new items with their triage and rule results and their conversation's status,
    assignment and SLA as they stand (so a new row is not rewritten by `sync_items` at once);
    returns the ids actually stored (an item already stored is left as it is)."""
    rows = await conn.fetch(
        """
        INSERT INTO items (id, tenant_id, brand_id, source_id, network, external_id, kind, text,
                           url, language, author_id, author_handle, author_display_name,
                           author_followers, thread_root_id, parent_external_id, created_at,
                           event_id, sentiment, sentiment_score, intent, spam, priority, level,
                           signals, conversation_id, tags, rule_ids, status, assignee_id, team_id,
                           due_at, sla_state)
        SELECT u.id, u.tenant_id, u.brand_id, u.source_id, u.network, u.external_id, u.kind,
               u.text, u.url, u.language, u.author_id, u.author_handle, u.author_display_name,
               u.author_followers, u.thread_root_id, u.parent_external_id, u.created_at,
               u.event_id, u.sentiment, u.sentiment_score, u.intent, u.spam, u.priority,
               u.level, u.signals::jsonb, u.conversation_id,
               ARRAY(SELECT jsonb_array_elements_text(u.tags::jsonb)),
               ARRAY(SELECT jsonb_array_elements_text(u.rule_ids::jsonb)),
               u.status, u.assignee_id, u.team_id, u.due_at, u.sla_state
        FROM unnest($1::uuid[], $2::text[], $3::text[], $4::uuid[], $5::text[],
                    $6::text[], $7::text[], $8::text[], $9::text[], $10::text[],
                    $11::text[], $12::text[], $13::text[], $14::integer[], $15::text[],
                    $16::text[], $17::timestamptz[], $18::uuid[], $19::text[], $20::real[],
                    $21::text[], $22::boolean[], $23::smallint[], $24::text[], $25::text[],
                    $26::uuid[], $27::text[], $28::text[], $29::text[], $30::text[],
                    $31::text[], $32::timestamptz[], $33::text[])
             AS u(id, tenant_id, brand_id, source_id, network, external_id, kind, text, url,
                  language, author_id, author_handle, author_display_name, author_followers,
                  thread_root_id, parent_external_id, created_at, event_id, sentiment,
                  sentiment_score, intent, spam, priority, level, signals, conversation_id,
                  tags, rule_ids, status, assignee_id, team_id, due_at, sla_state)
        ON CONFLICT DO NOTHING
        RETURNING id
        """,
        *(
            [i[column] for i in items]
            for column in (
                "id",
                "tenant_id",
                "brand_id",
                "source_id",
                "network",
                "external_id",
                "kind",
                "text",
                "url",
                "language",
                "author_id",
                "author_handle",
                "author_display_name",
                "author_followers",
                "thread_root_id",
                "parent_external_id",
                "created_at",
                "event_id",
                "sentiment",
                "sentiment_score",
                "intent",
                "spam",
                "priority",
                "level",
            )
        ),
        [_signals_json(i["signals"]) for i in items],
        [i["conversation_id"] for i in items],
        [json.dumps(i["tags"]) for i in items],
        [json.dumps(i["rule_ids"]) for i in items],
        *(
            [i[column] for i in items]
            for column in ("status", "assignee_id", "team_id", "due_at", "sla_state")
        ),
    )
    return {r["id"] for r in rows}


async def apply_edits(conn: Connection, events: Sequence[MentionUpdated]) -> None:
    """The newest state of updated items (an older edit redelivered late never wins).

    An update is an edit only when the text changed or the network gave an edit time; an update
    that only links a reply to our post (ingest learned of the post later) changes the kind and
    leaves `edited_at` alone.
    """
    await conn.execute(
        """
        UPDATE items
        SET kind = u.kind,
            edited_at = CASE WHEN items.text IS DISTINCT FROM u.text OR u.network_edit
                             THEN u.edited_at ELSE items.edited_at END,
            text = u.text
        FROM unnest($1::uuid[], $2::text[], $3::timestamptz[], $4::text[], $5::boolean[])
             AS u(id, text, edited_at, kind, network_edit)
        WHERE items.id = u.id
          AND (items.edited_at IS NULL OR items.edited_at <= u.edited_at)
        """,
        [e.payload.mention_id for e in events],
        [e.payload.text for e in events],
        [e.payload.edited_at or e.occurred_at for e in events],
        [e.payload.kind for e in events],
        [e.payload.edited_at is not None for e in events],
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


@dataclass(frozen=True)
class ItemFilter:
    """The agent list's filters; each one set narrows the list (lists match any of their values)."""

    brand_ids: Sequence[str] = ()
    statuses: Sequence[str] = ()
    levels: Sequence[str] = ()
    sentiments: Sequence[str] = ()
    intents: Sequence[str] = ()
    networks: Sequence[str] = ()
    languages: Sequence[str] = ()
    sla_states: Sequence[str] = ()
    assignee_id: str | None = None
    unassigned: bool = False
    team_id: str | None = None
    tag: str | None = None
    spam: bool | None = None
    text: str | None = None
    min_priority: int | None = None


# Each sort: its ORDER BY and the key the next page resumes after (compared as one row value,
# which matches the index order so the page is an index range scan).
SORTS: dict[str, tuple[str, str, str]] = {
    "newest": ("created_at DESC, id DESC", "(created_at, id)", "<"),
    "priority": ("priority DESC, created_at DESC, id DESC", "(priority, created_at, id)", "<"),
    "due": (
        "COALESCE(due_at, 'infinity'::timestamptz), id",
        "(COALESCE(due_at, 'infinity'::timestamptz), id)",
        ">",
    ),
}


def sort_key(sort: str, row: dict[str, Any]) -> list[Any]:
    if sort == "priority":
        return [row["priority"], row["created_at"], row["id"]]
    if sort == "due":
        return [row["due_at"], row["id"]]
    return [row["created_at"], row["id"]]


async def list_items(
    conn: Connection,
    *,
    tenant_id: str,
    filters: ItemFilter,
    sort: str,
    after: Sequence[Any] | None,
    limit: int,
) -> list[dict[str, Any]]:
    # Conditions are added only when used, so each shape gets a plan that walks its own index
    # (a catch-all `$2 IS NULL OR …` would leave the generic plan unable to pick one).
    conditions = ["tenant_id = $1"]
    args: list[Any] = [tenant_id]

    def arg(value: Any) -> str:
        args.append(value)
        return f"${len(args)}"

    f = filters
    for column, values in (
        ("brand_id", f.brand_ids),
        ("status", f.statuses),
        ("level", f.levels),
        ("sentiment", f.sentiments),
        ("intent", f.intents),
        ("network", f.networks),
        ("language", f.languages),
        ("sla_state", f.sla_states),
    ):
        if len(values) == 1:
            conditions.append(f"{column} = {arg(values[0])}")
        elif values:
            conditions.append(f"{column} = ANY({arg(list(values))}::text[])")
    if f.assignee_id is not None:
        conditions.append(f"assignee_id = {arg(f.assignee_id)}")
    if f.unassigned:
        conditions.append("assignee_id IS NULL")
    if f.team_id is not None:
        conditions.append(f"team_id = {arg(f.team_id)}")
    if f.tag is not None:
        conditions.append(f"tags @> ARRAY[{arg(f.tag)}]::text[]")
    if f.spam is not None:
        conditions.append(f"spam = {arg(f.spam)}")
    if f.text:
        conditions.append(f"search @@ plainto_tsquery('simple', {arg(f.text)})")
    if f.min_priority is not None:
        conditions.append(f"priority >= {arg(f.min_priority)}")
    order, key, op = SORTS[sort]
    if after is not None:
        if sort == "due":
            due = f"COALESCE({arg(after[0])}::timestamptz, 'infinity'::timestamptz)"
            placeholders = f"({due}, {arg(after[1])}::uuid)"
        else:
            placeholders = "(" + ", ".join(arg(v) for v in after) + ")"
        conditions.append(f"{key} {op} {placeholders}")
    rows = await conn.fetch(
        f"""
        SELECT {_ITEM_COLUMNS} FROM items
        WHERE {" AND ".join(conditions)}
        ORDER BY {order}
        LIMIT {arg(limit)}
        """,
        *args,
    )
    return [dict(r) for r in rows]


# --- conversations -----------------------------------------------------------------------------

_CONVERSATION_COLUMNS = (
    "id, tenant_id, brand_id, network, thread_root_id, status, snoozed_until, assignee_id, "
    "team_id, priority, level, sla_kind, sla_started_at, near_due_at, due_at, sla_state, "
    "first_response_at, first_response_s, last_author_at, last_reply_at, item_count, created_at"
)


def _conversation(row: Any, *, is_new: bool = False) -> Conversation:
    return Conversation.from_row(row, is_new=is_new)


async def lock_conversations(
    conn: Connection, keys: Sequence[ConversationKey], now: datetime
) -> dict[ConversationKey, Conversation]:
    """The conversations of these threads, locked for this transaction; a thread without one
    gets a new conversation in memory (`stored=False`), which `save_conversations` inserts.

    Keys are taken in one sorted order so two consumers never wait on each other in a cycle. Two
    transactions creating the same thread's conversation at once: the second one's insert fails
    on the unique thread key and its batch is applied again, finding the first one's row.
    """
    distinct = sorted(set(keys))
    rows = await conn.fetch(
        f"""
        SELECT {_CONVERSATION_COLUMNS} FROM conversations c
        WHERE (c.tenant_id, c.brand_id, c.network, c.thread_root_id) IN (
            SELECT * FROM unnest($1::text[], $2::text[], $3::text[], $4::text[]))
        ORDER BY c.tenant_id, c.brand_id, c.network, c.thread_root_id
        FOR UPDATE
        """,
        [k.tenant_id for k in distinct],
        [k.brand_id for k in distinct],
        [k.network for k in distinct],
        [k.thread_root_id for k in distinct],
    )
    found = {
        ConversationKey(r["tenant_id"], r["brand_id"], r["network"], r["thread_root_id"]): (
            _conversation(r)
        )
        for r in rows
    }
    return {
        k: found.get(k)
        or Conversation(
            id=uuid.uuid4(),
            tenant_id=k.tenant_id,
            brand_id=k.brand_id,
            network=k.network,
            thread_root_id=k.thread_root_id,
            created_at=now,
            is_new=True,
            stored=False,
        )
        for k in distinct
    }


async def lock_conversation(
    conn: Connection, conversation_id: uuid.UUID, tenant_id: str | None = None
) -> Conversation:
    row = await conn.fetchrow(
        f"SELECT {_CONVERSATION_COLUMNS} FROM conversations WHERE id = $1"
        " AND ($2::text IS NULL OR tenant_id = $2) FOR UPDATE",
        conversation_id,
        tenant_id,
    )
    if row is None:
        raise LookupError(f"no conversation {conversation_id}")
    return _conversation(row)


async def get_conversation(
    conn: Connection, tenant_id: str, conversation_id: uuid.UUID
) -> dict[str, Any] | None:
    row = await conn.fetchrow(
        f"SELECT {_CONVERSATION_COLUMNS}, updated_at FROM conversations"
        " WHERE id = $1 AND tenant_id = $2",
        conversation_id,
        tenant_id,
    )
    return dict(row) if row else None


_MUTABLE = (
    ("status", "text"),
    ("snoozed_until", "timestamptz"),
    ("assignee_id", "text"),
    ("team_id", "text"),
    ("priority", "smallint"),
    ("level", "text"),
    ("sla_kind", "text"),
    ("sla_started_at", "timestamptz"),
    ("near_due_at", "timestamptz"),
    ("due_at", "timestamptz"),
    ("sla_state", "text"),
    ("first_response_at", "timestamptz"),
    ("first_response_s", "float8"),
    ("last_author_at", "timestamptz"),
    ("last_reply_at", "timestamptz"),
    ("item_count", "integer"),
)


_IDENTITY = (
    ("id", "uuid"),
    ("tenant_id", "text"),
    ("brand_id", "text"),
    ("network", "text"),
    ("thread_root_id", "text"),
    ("created_at", "timestamptz"),
)


async def save_conversations(conn: Connection, convs: Sequence[Conversation]) -> None:
    """Write the working copies back: new conversations are inserted (in key order, like the
    locks), the others updated."""
    new = sorted(
        (c for c in convs if not c.stored),
        key=lambda c: (c.tenant_id, c.brand_id, c.network, c.thread_root_id),
    )
    old = [c for c in convs if c.stored]
    columns = ", ".join(name for name, _ in _MUTABLE)
    if new:
        every = _IDENTITY + _MUTABLE
        names = ", ".join(name for name, _ in every)
        arrays = ", ".join(f"${i + 1}::{kind}[]" for i, (_, kind) in enumerate(every))
        inserted = await conn.fetch(
            f"INSERT INTO conversations ({names}) SELECT * FROM unnest({arrays})"
            " ON CONFLICT (tenant_id, brand_id, network, thread_root_id) DO NOTHING RETURNING id",
            *([getattr(c, name) for c in new] for name, _ in every),
        )
        if len(inserted) < len(new):
            raise WriteConflict("a conversation of this batch was created by another transaction")
        for c in new:
            c.stored = True
    if old:
        arrays = ", ".join(f"${i + 2}::{kind}[]" for i, (_, kind) in enumerate(_MUTABLE))
        assignments = ", ".join(f"{name} = u.{name}" for name, _ in _MUTABLE)
        await conn.execute(
            f"""
            UPDATE conversations c SET {assignments}, updated_at = now()
            FROM unnest($1::uuid[], {arrays}) AS u(id, {columns})
            WHERE c.id = u.id
            """,
            [c.id for c in old],
            *([getattr(c, name) for c in old] for name, _ in _MUTABLE),
        )


async def sync_items(conn: Connection, conversation_ids: Sequence[uuid.UUID]) -> None:
    """Copy each conversation's status, assignment and SLA onto its items (only rows that
    differ are written)."""
    await conn.execute(
        """
        UPDATE items i
        SET status = c.status, assignee_id = c.assignee_id, team_id = c.team_id,
            due_at = c.due_at, sla_state = c.sla_state
        FROM conversations c
        WHERE c.id = ANY($1::uuid[]) AND i.conversation_id = c.id
          AND (i.status, i.assignee_id, i.team_id, i.due_at, i.sla_state)
              IS DISTINCT FROM (c.status, c.assignee_id, c.team_id, c.due_at, c.sla_state)
        """,
        list(set(conversation_ids)),
    )


async def raise_items(conn: Connection, conversation_id: uuid.UUID, level: str, floor: int) -> None:
    """An escalated conversation's messages move up the priority list with it."""
    await conn.execute(
        """
        UPDATE items SET level = $2, priority = greatest(priority, $3)
        WHERE conversation_id = $1 AND NOT spam
        """,
        conversation_id,
        level,
        floor,
    )


async def lock_due(conn: Connection, now: datetime, limit: int) -> list[Conversation]:
    """Conversations whose SLA turns amber or red, or whose snooze ends, by `now`; claimed with
    SKIP LOCKED so each is handled by one replica."""
    rows = await conn.fetch(
        f"""
        SELECT {_CONVERSATION_COLUMNS} FROM conversations
        WHERE id IN (
            (SELECT id FROM conversations
             WHERE sla_state IN ('ok', 'near_breach') AND due_at <= $1 LIMIT $2)
            UNION
            (SELECT id FROM conversations WHERE sla_state = 'ok' AND near_due_at <= $1 LIMIT $2)
            UNION
            (SELECT id FROM conversations
             WHERE status = 'snoozed' AND snoozed_until <= $1 LIMIT $2))
        ORDER BY id
        LIMIT $2
        FOR UPDATE SKIP LOCKED
        """,
        now,
        limit,
    )
    return [_conversation(r) for r in rows]


async def lock_waiting(conn: Connection, limit: int) -> list[Conversation]:
    """Active conversations in a team's queue with nobody on them, oldest first per tenant."""
    rows = await conn.fetch(
        f"""
        SELECT {_CONVERSATION_COLUMNS} FROM conversations
        WHERE assignee_id IS NULL AND team_id IS NOT NULL AND status IN ('new', 'open')
        ORDER BY tenant_id, created_at
        LIMIT $1
        FOR UPDATE SKIP LOCKED
        """,
        limit,
    )
    return [_conversation(r) for r in rows]


async def set_last_assigned(
    conn: Connection, tenant_id: str, team_id: str, member_id: str | None
) -> None:
    await conn.execute(
        "UPDATE teams SET last_assigned = $3 WHERE tenant_id = $1 AND id = $2"
        " AND last_assigned IS DISTINCT FROM $3",
        tenant_id,
        team_id,
        member_id,
    )


async def insert_activity(conn: Connection, activity: Sequence[Activity]) -> None:
    if not activity:
        return
    await conn.execute(
        """
        INSERT INTO activity (tenant_id, conversation_id, item_id, actor, kind, detail)
        SELECT * FROM unnest($1::text[], $2::uuid[], $3::uuid[], $4::text[], $5::text[],
                             $6::jsonb[])
        """,
        [a.tenant_id for a in activity],
        [a.conversation_id for a in activity],
        [a.item_id for a in activity],
        [a.actor for a in activity],
        [a.kind for a in activity],
        [{k: v for k, v in a.detail.items() if v is not None} for a in activity],
    )


# --- items -------------------------------------------------------------------------------------


async def get_item(conn: Connection, tenant_id: str, item_id: uuid.UUID) -> dict[str, Any] | None:
    row = await conn.fetchrow(
        f"SELECT {_ITEM_COLUMNS} FROM items WHERE id = $1 AND tenant_id = $2", item_id, tenant_id
    )
    return dict(row) if row else None


async def latest_item(conn: Connection, conversation_id: uuid.UUID) -> dict[str, Any] | None:
    row = await conn.fetchrow(
        f"SELECT {_ITEM_COLUMNS} FROM items WHERE conversation_id = $1"
        " ORDER BY NOT spam DESC, created_at DESC LIMIT 1",
        conversation_id,
    )
    return dict(row) if row else None


async def conversation_items(conn: Connection, conversation_id: uuid.UUID) -> list[dict[str, Any]]:
    rows = await conn.fetch(
        f"SELECT {_ITEM_COLUMNS} FROM items WHERE conversation_id = $1"
        " ORDER BY created_at, id LIMIT 1000",
        conversation_id,
    )
    return [dict(r) for r in rows]


async def lock_items(
    conn: Connection, tenant_id: str, item_ids: Sequence[uuid.UUID]
) -> list[dict[str, Any]]:
    rows = await conn.fetch(
        f"SELECT {_ITEM_COLUMNS} FROM items WHERE tenant_id = $1 AND id = ANY($2::uuid[])"
        " ORDER BY id FOR UPDATE",
        tenant_id,
        list(item_ids),
    )
    return [dict(r) for r in rows]


async def set_tags(conn: Connection, item_id: uuid.UUID, tags: Sequence[str]) -> None:
    await conn.execute("UPDATE items SET tags = $2 WHERE id = $1", item_id, list(tags))


async def set_claim(conn: Connection, item_id: uuid.UUID, held: ClaimState | None) -> None:
    await conn.execute(
        "UPDATE items SET claimed_by = $2, claimed_at = $3, claim_expires_at = $4 WHERE id = $1",
        item_id,
        held.member_id if held else None,
        held.claimed_at if held else None,
        held.expires_at if held else None,
    )


# --- notes, replies, hiding --------------------------------------------------------------------


async def insert_note(
    conn: Connection,
    *,
    tenant_id: str,
    conversation_id: uuid.UUID,
    item_id: uuid.UUID | None,
    author_id: str,
    text: str,
) -> dict[str, Any]:
    row = await conn.fetchrow(
        """
        INSERT INTO notes (id, tenant_id, conversation_id, item_id, author_id, text)
        VALUES (gen_random_uuid(), $1, $2, $3, $4, $5)
        RETURNING id, item_id, author_id, text, created_at
        """,
        tenant_id,
        conversation_id,
        item_id,
        author_id,
        text,
    )
    assert row is not None
    return dict(row)


async def notes(conn: Connection, conversation_id: uuid.UUID) -> list[dict[str, Any]]:
    rows = await conn.fetch(
        "SELECT id, item_id, author_id, text, created_at FROM notes"
        " WHERE conversation_id = $1 ORDER BY created_at, id",
        conversation_id,
    )
    return [dict(r) for r in rows]


async def insert_reply(
    conn: Connection,
    *,
    request_id: uuid.UUID,
    tenant_id: str,
    item_id: uuid.UUID,
    conversation_id: uuid.UUID,
    channel_id: uuid.UUID,
    text: str,
    requested_by: str,
    saved_reply_id: str | None,
) -> None:
    await conn.execute(
        """
        INSERT INTO replies (id, tenant_id, item_id, conversation_id, channel_id, text,
                             requested_by, saved_reply_id)
        VALUES ($1, $2, $3, $4, $5, $6, $7, $8)
        """,
        request_id,
        tenant_id,
        item_id,
        conversation_id,
        channel_id,
        text,
        requested_by,
        saved_reply_id,
    )


_REPLY_COLUMNS = (
    "id, item_id, conversation_id, channel_id, text, requested_by, saved_reply_id, status,"
    " external_id, url, error, requested_at, completed_at"
)


async def replies(
    conn: Connection, *, conversation_id: uuid.UUID | None = None, item_id: uuid.UUID | None = None
) -> list[dict[str, Any]]:
    rows = await conn.fetch(
        f"SELECT {_REPLY_COLUMNS} FROM replies"
        " WHERE ($1::uuid IS NULL OR conversation_id = $1) AND ($2::uuid IS NULL OR item_id = $2)"
        " ORDER BY requested_at, id",
        conversation_id,
        item_id,
    )
    return [dict(r) for r in rows]


async def complete_reply(
    conn: Connection,
    *,
    request_id: uuid.UUID,
    tenant_id: str,
    published: bool,
    external_id: str | None,
    url: str | None,
    error: str | None,
    at: datetime,
) -> dict[str, Any] | None:
    row = await conn.fetchrow(
        f"""
        UPDATE replies SET status = $3, external_id = $4, url = $5, error = $6, completed_at = $7
        WHERE id = $1 AND tenant_id = $2 AND status = 'requested'
        RETURNING {_REPLY_COLUMNS}
        """,
        request_id,
        tenant_id,
        "published" if published else "failed",
        external_id,
        url,
        error,
        at,
    )
    return dict(row) if row else None


async def insert_hide_request(
    conn: Connection,
    *,
    request_id: uuid.UUID,
    tenant_id: str,
    item_id: uuid.UUID,
    channel_id: uuid.UUID | None,
    requested_by: str,
    error: str | None,
) -> None:
    await conn.execute(
        """
        INSERT INTO hide_requests (id, tenant_id, item_id, channel_id, requested_by, status,
                                   error, completed_at)
        VALUES ($1, $2, $3, $4, $5, $6, $7, CASE WHEN $7::text IS NULL THEN NULL ELSE now() END)
        """,
        request_id,
        tenant_id,
        item_id,
        channel_id,
        requested_by,
        "requested" if error is None else "failed",
        error,
    )


async def hide_requests(conn: Connection, item_id: uuid.UUID) -> list[dict[str, Any]]:
    rows = await conn.fetch(
        "SELECT id, channel_id, requested_by, status, error, requested_at, completed_at"
        " FROM hide_requests WHERE item_id = $1 ORDER BY requested_at, id",
        item_id,
    )
    return [dict(r) for r in rows]


async def complete_hide(
    conn: Connection,
    *,
    request_id: uuid.UUID,
    tenant_id: str,
    hidden: bool,
    error: str | None,
    at: datetime,
) -> dict[str, Any] | None:
    row = await conn.fetchrow(
        """
        UPDATE hide_requests h SET status = $3, error = $4, completed_at = $5
        FROM items i
        WHERE h.id = $1 AND h.tenant_id = $2 AND h.status = 'requested' AND i.id = h.item_id
        RETURNING h.item_id, i.conversation_id
        """,
        request_id,
        tenant_id,
        "hidden" if hidden else "failed",
        error,
        at,
    )
    if row is None:
        return None
    if hidden:
        await conn.execute("UPDATE items SET hidden_at = $2 WHERE id = $1", row["item_id"], at)
    return dict(row)


async def saved_reply(conn: Connection, tenant_id: str, reply_id: str) -> dict[str, Any] | None:
    row = await conn.fetchrow(
        "SELECT id, brand_id, name, text FROM saved_replies WHERE tenant_id = $1 AND id = $2",
        tenant_id,
        reply_id,
    )
    return dict(row) if row else None


async def activity(conn: Connection, conversation_id: uuid.UUID) -> list[dict[str, Any]]:
    rows = await conn.fetch(
        "SELECT id, item_id, at, actor, kind, detail FROM activity"
        " WHERE conversation_id = $1 ORDER BY id DESC LIMIT 200",
        conversation_id,
    )
    return [dict(r) for r in rows]
