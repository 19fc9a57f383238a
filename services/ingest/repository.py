"""Every SQL statement of the ingest service. Callers own the transaction."""

from __future__ import annotations

import uuid
from collections.abc import Sequence
from dataclasses import dataclass
from datetime import datetime
from typing import Any

import orjson

from shared.db import Connection

# --- brands ------------------------------------------------------------------------------------


@dataclass(frozen=True)
class BrandRow:
    tenant_id: str
    id: str
    name: str
    timezone: str
    created_at: datetime
    updated_at: datetime


_BRAND = "tenant_id, id, name, timezone, created_at, updated_at"


async def insert_brand(
    conn: Connection, tenant_id: str, brand_id: str, name: str, timezone: str
) -> BrandRow | None:
    """None if the brand exists (or existed: ids are never reused)."""
    row = await conn.fetchrow(
        f"""
        INSERT INTO brands (tenant_id, id, name, timezone) VALUES ($1, $2, $3, $4)
        ON CONFLICT DO NOTHING RETURNING {_BRAND}
        """,
        tenant_id,
        brand_id,
        name,
        timezone,
    )
    return BrandRow(**dict(row)) if row else None


async def get_brand(conn: Connection, tenant_id: str, brand_id: str) -> BrandRow | None:
    row = await conn.fetchrow(
        f"SELECT {_BRAND} FROM brands WHERE tenant_id = $1 AND id = $2 AND deleted_at IS NULL",
        tenant_id,
        brand_id,
    )
    return BrandRow(**dict(row)) if row else None


async def list_brands(conn: Connection, tenant_id: str) -> list[BrandRow]:
    rows = await conn.fetch(
        f"""
        SELECT {_BRAND} FROM brands WHERE tenant_id = $1 AND deleted_at IS NULL
        ORDER BY id LIMIT 10000
        """,
        tenant_id,
    )
    return [BrandRow(**dict(r)) for r in rows]


async def update_brand(
    conn: Connection, tenant_id: str, brand_id: str, name: str | None, timezone: str | None
) -> BrandRow | None:
    row = await conn.fetchrow(
        f"""
        UPDATE brands SET name = coalesce($3, name), timezone = coalesce($4, timezone),
                          updated_at = now()
        WHERE tenant_id = $1 AND id = $2 AND deleted_at IS NULL
        RETURNING {_BRAND}
        """,
        tenant_id,
        brand_id,
        name,
        timezone,
    )
    return BrandRow(**dict(row)) if row else None


async def delete_brand(conn: Connection, tenant_id: str, brand_id: str) -> bool:
    """Soft-delete the brand, its queries and its sources (history stays explainable)."""
    deleted = await conn.fetchval(
        """
        UPDATE brands SET deleted_at = now(), updated_at = now()
        WHERE tenant_id = $1 AND id = $2 AND deleted_at IS NULL RETURNING true
        """,
        tenant_id,
        brand_id,
    )
    if not deleted:
        return False
    await conn.execute(
        """
        UPDATE queries SET deleted_at = now(), active = false, updated_at = now()
        WHERE tenant_id = $1 AND brand_id = $2 AND deleted_at IS NULL
        """,
        tenant_id,
        brand_id,
    )
    await conn.execute(
        """
        UPDATE sources SET deleted_at = now(), updated_at = now()
        WHERE tenant_id = $1 AND brand_id = $2 AND deleted_at IS NULL
        """,
        tenant_id,
        brand_id,
    )
    return True


# --- listening queries ---------------------------------------------------------------------------


@dataclass(frozen=True)
class QueryRow:
    id: uuid.UUID
    tenant_id: str
    brand_id: str
    name: str
    role: str
    competitor: str | None
    expression: str
    version: int
    active: bool
    created_at: datetime
    updated_at: datetime


_QUERY = (
    "id, tenant_id, brand_id, name, role, competitor, expression, version, active, created_at,"
    " updated_at"
)


async def insert_query(
    conn: Connection,
    *,
    tenant_id: str,
    brand_id: str,
    name: str,
    role: str,
    competitor: str | None,
    expression: str,
    active: bool,
    created_by: str,
) -> QueryRow:
    row = await conn.fetchrow(
        f"""
        INSERT INTO queries (id, tenant_id, brand_id, name, role, competitor, expression, active)
        VALUES ($1, $2, $3, $4, $5, $6, $7, $8)
        RETURNING {_QUERY}
        """,
        uuid.uuid4(),
        tenant_id,
        brand_id,
        name,
        role,
        competitor,
        expression,
        active,
    )
    assert row is not None
    query = QueryRow(**dict(row))
    await _record_version(conn, query, created_by)
    return query


async def _record_version(conn: Connection, q: QueryRow, created_by: str) -> None:
    await conn.execute(
        """
        INSERT INTO query_versions (query_id, version, name, role, competitor, expression,
                                    created_by)
        VALUES ($1, $2, $3, $4, $5, $6, $7)
        """,
        q.id,
        q.version,
        q.name,
        q.role,
        q.competitor,
        q.expression,
        created_by,
    )


async def update_query(
    conn: Connection,
    *,
    tenant_id: str,
    query_id: uuid.UUID,
    name: str,
    role: str,
    competitor: str | None,
    expression: str,
    active: bool,
    updated_by: str,
) -> QueryRow | None:
    row = await conn.fetchrow(
        f"""
        UPDATE queries SET name = $3, role = $4, competitor = $5, expression = $6, active = $7,
                           version = version + 1, updated_at = now()
        WHERE tenant_id = $1 AND id = $2 AND deleted_at IS NULL
        RETURNING {_QUERY}
        """,
        tenant_id,
        query_id,
        name,
        role,
        competitor,
        expression,
        active,
    )
    if row is None:
        return None
    query = QueryRow(**dict(row))
    await _record_version(conn, query, updated_by)
    return query


async def get_query(conn: Connection, tenant_id: str, query_id: uuid.UUID) -> QueryRow | None:
    row = await conn.fetchrow(
        f"SELECT {_QUERY} FROM queries WHERE tenant_id = $1 AND id = $2 AND deleted_at IS NULL",
        tenant_id,
        query_id,
    )
    return QueryRow(**dict(row)) if row else None


async def query_versions(conn: Connection, query_id: uuid.UUID) -> list[dict[str, Any]]:
    rows = await conn.fetch(
        """
        SELECT version, name, role, competitor, expression, created_by, created_at
        FROM query_versions WHERE query_id = $1 ORDER BY version DESC
        """,
        query_id,
    )
    return [dict(r) for r in rows]


async def list_queries(conn: Connection, tenant_id: str, brand_id: str | None) -> list[QueryRow]:
    if brand_id is None:
        rows = await conn.fetch(
            f"""
            SELECT {_QUERY} FROM queries WHERE tenant_id = $1 AND deleted_at IS NULL
            ORDER BY brand_id, created_at LIMIT 10000
            """,
            tenant_id,
        )
    else:
        rows = await conn.fetch(
            f"""
            SELECT {_QUERY} FROM queries
            WHERE tenant_id = $1 AND brand_id = $2 AND deleted_at IS NULL
            ORDER BY created_at LIMIT 10000
            """,
            tenant_id,
            brand_id,
        )
    return [QueryRow(**dict(r)) for r in rows]


async def delete_query(conn: Connection, tenant_id: str, query_id: uuid.UUID) -> bool:
    done = await conn.fetchval(
        """
        UPDATE queries SET deleted_at = now(), active = false, updated_at = now()
        WHERE tenant_id = $1 AND id = $2 AND deleted_at IS NULL RETURNING true
        """,
        tenant_id,
        query_id,
    )
    return bool(done)


async def active_queries(conn: Connection) -> list[QueryRow]:
    """Every tenant's active queries: what the matcher is built from."""
    rows = await conn.fetch(
        f"SELECT {_QUERY} FROM queries WHERE active AND deleted_at IS NULL ORDER BY id"
    )
    return [QueryRow(**dict(r)) for r in rows]


async def queries_fingerprint(conn: Connection) -> tuple[datetime | None, int]:
    """Changes whenever a query is created, edited or deleted (cheap to poll)."""
    row = await conn.fetchrow("SELECT max(updated_at) AS changed, count(*) AS n FROM queries")
    assert row is not None
    return row["changed"], int(row["n"])


# --- sources -------------------------------------------------------------------------------------


@dataclass(frozen=True)
class SourceRow:
    id: uuid.UUID
    tenant_id: str
    brand_id: str | None
    kind: str
    network: str
    name: str
    match_mode: str
    config: dict[str, Any]
    secret_encrypted: bytes | None
    credentials_encrypted: bytes | None
    cursor: dict[str, Any]
    interval_s: int
    status: str
    next_run_at: datetime
    consecutive_failures: int
    last_run_at: datetime | None
    last_success_at: datetime | None
    last_error: str | None
    last_error_at: datetime | None
    newest_item_at: datetime | None
    items_total: int
    quota_used: int
    created_by: str
    created_at: datetime
    updated_at: datetime


_SOURCE = (
    "id, tenant_id, brand_id, kind, network, name, match_mode, config, secret_encrypted,"
    " credentials_encrypted, cursor, interval_s, status, next_run_at, consecutive_failures,"
    " last_run_at, last_success_at, last_error, last_error_at, newest_item_at, items_total,"
    " quota_used, created_by, created_at, updated_at"
)


async def insert_source(
    conn: Connection,
    *,
    tenant_id: str,
    brand_id: str | None,
    kind: str,
    network: str,
    name: str,
    match_mode: str,
    config: dict[str, Any],
    secret_encrypted: bytes | None,
    credentials_encrypted: bytes | None,
    interval_s: int,
    created_by: str,
) -> SourceRow:
    row = await conn.fetchrow(
        f"""
        INSERT INTO sources (id, tenant_id, brand_id, kind, network, name, match_mode, config,
                             secret_encrypted, credentials_encrypted, interval_s, created_by)
        VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9, $10, $11, $12)
        RETURNING {_SOURCE}
        """,
        uuid.uuid4(),
        tenant_id,
        brand_id,
        kind,
        network,
        name,
        match_mode,
        config,
        secret_encrypted,
        credentials_encrypted,
        interval_s,
        created_by,
    )
    assert row is not None
    return SourceRow(**dict(row))


async def get_source(
    conn: Connection, source_id: uuid.UUID, tenant_id: str | None = None
) -> SourceRow | None:
    """A live source; with `tenant_id`, only if it belongs to that tenant."""
    row = await conn.fetchrow(
        f"""
        SELECT {_SOURCE} FROM sources
        WHERE id = $1 AND deleted_at IS NULL AND ($2::text IS NULL OR tenant_id = $2)
        """,
        source_id,
        tenant_id,
    )
    return SourceRow(**dict(row)) if row else None


async def list_sources(conn: Connection, tenant_id: str, brand_id: str | None) -> list[SourceRow]:
    if brand_id is None:
        rows = await conn.fetch(
            f"""
            SELECT {_SOURCE} FROM sources WHERE tenant_id = $1 AND deleted_at IS NULL
            ORDER BY created_at DESC LIMIT 10000
            """,
            tenant_id,
        )
    else:
        rows = await conn.fetch(
            f"""
            SELECT {_SOURCE} FROM sources
            WHERE tenant_id = $1 AND brand_id = $2 AND deleted_at IS NULL
            ORDER BY created_at DESC LIMIT 10000
            """,
            tenant_id,
            brand_id,
        )
    return [SourceRow(**dict(r)) for r in rows]


async def update_source(
    conn: Connection,
    source_id: uuid.UUID,
    *,
    name: str | None = None,
    config: dict[str, Any] | None = None,
    credentials_encrypted: bytes | None = None,
    secret_encrypted: bytes | None = None,
    interval_s: int | None = None,
    status: str | None = None,
    run_now: bool = False,
    cursor: dict[str, Any] | None = None,
) -> SourceRow | None:
    row = await conn.fetchrow(
        f"""
        UPDATE sources SET
            name = coalesce($2, name),
            config = coalesce($3, config),
            credentials_encrypted = coalesce($4, credentials_encrypted),
            secret_encrypted = coalesce($5, secret_encrypted),
            interval_s = coalesce($6, interval_s),
            status = coalesce($7, status),
            consecutive_failures = CASE WHEN $7 = 'active' THEN 0 ELSE consecutive_failures END,
            next_run_at = CASE WHEN $8 THEN now() ELSE next_run_at END,
            cursor = coalesce($9, cursor),
            updated_at = now()
        WHERE id = $1 AND deleted_at IS NULL
        RETURNING {_SOURCE}
        """,
        source_id,
        name,
        config,
        credentials_encrypted,
        secret_encrypted,
        interval_s,
        status,
        run_now,
        cursor,
    )
    return SourceRow(**dict(row)) if row else None


async def delete_source(conn: Connection, tenant_id: str, source_id: uuid.UUID) -> bool:
    done = await conn.fetchval(
        """
        UPDATE sources SET deleted_at = now(), updated_at = now(), lease_owner = NULL
        WHERE tenant_id = $1 AND id = $2 AND deleted_at IS NULL RETURNING true
        """,
        tenant_id,
        source_id,
    )
    return bool(done)


async def claim_due_sources(
    conn: Connection, owner: str, lease_s: float, limit: int
) -> list[SourceRow]:
    """Lease due pull sources to `owner`; replicas skip each other's rows (SKIP LOCKED), and a
    lease that expired (its holder died) is taken over."""
    rows = await conn.fetch(
        f"""
        UPDATE sources SET lease_owner = $1, lease_until = now() + make_interval(secs => $2)
        WHERE id IN (
            SELECT id FROM sources
            WHERE kind = 'pull' AND status IN ('active', 'failing') AND deleted_at IS NULL
              AND next_run_at <= now()
              AND (lease_until IS NULL OR lease_until < now())
            ORDER BY next_run_at
            LIMIT $3
            FOR UPDATE SKIP LOCKED
        )
        RETURNING {_SOURCE}
        """,
        owner,
        lease_s,
        limit,
    )
    return [SourceRow(**dict(r)) for r in rows]


async def finish_run(
    conn: Connection,
    source_id: uuid.UUID,
    owner: str,
    *,
    cursor: dict[str, Any] | None,
    credentials_encrypted: bytes | None,
    next_run_in_s: float,
    status: str,
    error: str | None,
    succeeded: bool,
    stored: int,
    newest_item_at: datetime | None,
    quota_used: int,
) -> bool:
    """Record a run's outcome if `owner` still holds the lease; False means it lost the lease
    (another replica took over), and the caller must roll back everything it wrote."""
    done = await conn.fetchval(
        """
        UPDATE sources SET
            cursor = coalesce($3, cursor),
            credentials_encrypted = coalesce($4, credentials_encrypted),
            next_run_at = now() + make_interval(secs => $5),
            status = CASE WHEN status = 'paused' THEN status ELSE $6 END,
            last_error = CASE WHEN $7::text IS NULL THEN last_error ELSE $7 END,
            last_error_at = CASE WHEN $7::text IS NULL THEN last_error_at ELSE now() END,
            consecutive_failures = CASE WHEN $8 THEN 0 ELSE consecutive_failures + 1 END,
            last_run_at = now(),
            last_success_at = CASE WHEN $8 THEN now() ELSE last_success_at END,
            items_total = items_total + $9,
            newest_item_at = greatest(newest_item_at, $10),
            quota_used = quota_used + $11,
            lease_owner = NULL, lease_until = NULL
        WHERE id = $1 AND lease_owner = $2 AND lease_until > now()
        RETURNING true
        """,
        source_id,
        owner,
        cursor,
        credentials_encrypted,
        next_run_in_s,
        status,
        error,
        succeeded,
        stored,
        newest_item_at,
        quota_used,
    )
    return bool(done)


async def record_run(
    conn: Connection,
    source_id: uuid.UUID,
    started_at: datetime,
    fetched: int,
    stored: int,
    skipped: int,
    error: str | None,
) -> None:
    await conn.execute(
        """
        INSERT INTO source_runs (source_id, started_at, fetched, stored, skipped, error)
        VALUES ($1, $2, $3, $4, $5, $6)
        """,
        source_id,
        started_at,
        fetched,
        stored,
        skipped,
        error,
    )


async def record_push(
    conn: Connection, source_id: uuid.UUID, stored: int, newest: datetime | None
) -> None:
    """A webhook delivery counts as a successful run of its source."""
    await conn.execute(
        """
        UPDATE sources SET last_run_at = now(), last_success_at = now(),
                           items_total = items_total + $2,
                           newest_item_at = greatest(newest_item_at, $3)
        WHERE id = $1
        """,
        source_id,
        stored,
        newest,
    )


async def items_last_hour(
    conn: Connection, source_ids: Sequence[uuid.UUID]
) -> dict[uuid.UUID, int]:
    rows = await conn.fetch(
        """
        SELECT source_id, sum(stored)::bigint AS n FROM source_runs
        WHERE source_id = ANY($1::uuid[]) AND finished_at > now() - interval '1 hour'
        GROUP BY source_id
        """,
        list(source_ids),
    )
    return {r["source_id"]: int(r["n"]) for r in rows}


# --- items and matches ---------------------------------------------------------------------------


@dataclass(frozen=True)
class StoredItem:
    id: uuid.UUID
    network: str
    external_id: str
    content_hash: str
    kind: str
    root_external_id: str
    parent_external_id: str | None


async def existing_items(
    conn: Connection, keys: Sequence[tuple[str, str]]
) -> dict[tuple[str, str], StoredItem]:
    rows = await conn.fetch(
        """
        SELECT i.id, i.network, i.external_id, i.content_hash, i.kind, i.root_external_id,
               i.parent_external_id
        FROM items i
        JOIN unnest($1::text[], $2::text[]) AS k(network, external_id)
          ON (i.network, i.external_id) = (k.network, k.external_id)
        """,
        [k[0] for k in keys],
        [k[1] for k in keys],
    )
    return {(r["network"], r["external_id"]): StoredItem(**dict(r)) for r in rows}


async def insert_items(conn: Connection, rows: Sequence[dict[str, Any]]) -> set[uuid.UUID]:
    """Insert items not stored yet; return the ids actually inserted (a concurrent replica may
    have stored the same item first)."""
    if not rows:
        return set()
    inserted = await conn.fetch(
        f"""
        INSERT INTO items (id, network, external_id, kind, text, url, language, created_at,
                           edited_at, deleted_at, author, root_external_id, parent_external_id,
                           media, engagement, content_hash, first_source_id, raw, raw_expires_at)
        SELECT u.id, u.network, u.external_id, u.kind, u.text, u.url, u.language, u.created_at,
               u.edited_at, u.deleted_at, u.author::jsonb, u.root_external_id,
               u.parent_external_id, u.media::jsonb, u.engagement::jsonb, u.content_hash,
               u.first_source_id, u.raw::jsonb, u.raw_expires_at
        FROM unnest($1::uuid[], $2::text[], $3::text[], $4::text[], $5::text[], $6::text[],
                    $7::text[], $8::timestamptz[], $9::timestamptz[], $10::timestamptz[],
                    $11::text[], $12::text[], $13::text[], $14::text[], $15::text[], $16::text[],
                    $17::uuid[], $18::text[], $19::timestamptz[]) AS u({_ITEM_COLUMN_LIST})
        ON CONFLICT (network, external_id) DO NOTHING
        RETURNING id
        """,
        *_item_columns(rows),
    )
    return {r["id"] for r in inserted}


async def update_items(conn: Connection, rows: Sequence[dict[str, Any]]) -> None:
    """Overwrite items whose content changed (an edit, a deletion) with the new state."""
    if not rows:
        return
    await conn.execute(
        f"""
        UPDATE items SET kind = u.kind, text = u.text, url = u.url, language = u.language,
               edited_at = u.edited_at, deleted_at = u.deleted_at, author = u.author::jsonb,
               media = u.media::jsonb, engagement = u.engagement::jsonb,
               content_hash = u.content_hash, raw = u.raw::jsonb,
               raw_expires_at = u.raw_expires_at, updated_at = now()
        FROM unnest($1::uuid[], $2::text[], $3::text[], $4::text[], $5::text[], $6::text[],
                    $7::text[], $8::timestamptz[], $9::timestamptz[], $10::timestamptz[],
                    $11::text[], $12::text[], $13::text[], $14::text[], $15::text[], $16::text[],
                    $17::uuid[], $18::text[], $19::timestamptz[]) AS u({_ITEM_COLUMN_LIST})
        WHERE items.id = u.id
        """,
        *_item_columns(rows),
    )


# An item's columns that its mention events carry.
_PAYLOAD_FIELDS = (
    "id",
    "network",
    "external_id",
    "kind",
    "text",
    "url",
    "language",
    "created_at",
    "edited_at",
    "deleted_at",
    "author",
    "root_external_id",
    "parent_external_id",
    "media",
    "engagement",
)

_ITEM_FIELDS = (
    *_PAYLOAD_FIELDS,
    "content_hash",
    "first_source_id",
    "raw",
    "raw_expires_at",
)


_ITEM_COLUMN_LIST = ", ".join(_ITEM_FIELDS)
# JSON columns travel as text: asyncpg would read a list value (media) as an array dimension.
_JSON_FIELDS = frozenset({"author", "media", "engagement", "raw"})


def _json_text(value: Any) -> str | None:
    # orjson: an item's raw payload is the largest thing ingest writes, once per item.
    return None if value is None else orjson.dumps(value, option=orjson.OPT_NON_STR_KEYS).decode()


def _item_columns(rows: Sequence[dict[str, Any]]) -> list[list[Any]]:
    return [[_json_text(r[f]) if f in _JSON_FIELDS else r[f] for r in rows] for f in _ITEM_FIELDS]


async def insert_matches(conn: Connection, rows: Sequence[dict[str, Any]]) -> set[uuid.UUID]:
    """Insert (item, tenant, brand) matches not made before; return the new mention ids."""
    if not rows:
        return set()
    inserted = await conn.fetch(
        """
        INSERT INTO item_matches (item_id, tenant_id, brand_id, mention_id, source_id, matches,
                                  created_at, replies_to_post_id)
        SELECT u.item_id, u.tenant_id, u.brand_id, u.mention_id, u.source_id, u.matches::jsonb,
               u.created_at, u.replies_to_post_id
        FROM unnest($1::uuid[], $2::text[], $3::text[], $4::uuid[], $5::uuid[], $6::text[],
                    $7::timestamptz[], $8::uuid[])
             AS u(item_id, tenant_id, brand_id, mention_id, source_id, matches, created_at,
                  replies_to_post_id)
        ON CONFLICT (item_id, tenant_id, brand_id) DO NOTHING
        RETURNING mention_id
        """,
        [r["item_id"] for r in rows],
        [r["tenant_id"] for r in rows],
        [r["brand_id"] for r in rows],
        [r["mention_id"] for r in rows],
        [r["source_id"] for r in rows],
        [_json_text(r["matches"]) for r in rows],
        [r["created_at"] for r in rows],
        [r["replies_to_post_id"] for r in rows],
    )
    return {r["mention_id"] for r in inserted}


async def matches_of_items(conn: Connection, item_ids: Sequence[uuid.UUID]) -> list[dict[str, Any]]:
    rows = await conn.fetch(
        """
        SELECT item_id, tenant_id, brand_id, mention_id, source_id, matches, replies_to_post_id
        FROM item_matches WHERE item_id = ANY($1::uuid[])
        """,
        list(item_ids),
    )
    return [dict(r) for r in rows]


async def link_matches(
    conn: Connection, links: Sequence[tuple[uuid.UUID, str, str, uuid.UUID]]
) -> list[dict[str, Any]]:
    """Link (item, tenant, brand) matches made before their post was known to it (post id last in
    each tuple); return the matches this call linked, none that already were."""
    if not links:
        return []
    rows = await conn.fetch(
        """
        UPDATE item_matches m SET replies_to_post_id = u.post_id
        FROM unnest($1::uuid[], $2::text[], $3::text[], $4::uuid[])
             AS u(item_id, tenant_id, brand_id, post_id)
        WHERE (m.item_id, m.tenant_id, m.brand_id) = (u.item_id, u.tenant_id, u.brand_id)
          AND m.replies_to_post_id IS NULL
        RETURNING m.item_id, m.tenant_id, m.brand_id, m.mention_id, m.source_id, m.matches,
                  m.replies_to_post_id
        """,
        [x[0] for x in links],
        [x[1] for x in links],
        [x[2] for x in links],
        [x[3] for x in links],
    )
    return [dict(r) for r in rows]


async def link_stored_replies(
    conn: Connection, posts: Sequence[dict[str, Any]]
) -> list[dict[str, Any]]:
    """Link the live items already stored whose thread root or parent is one of `posts` (tenant_id,
    network, external_id, brand_id, post_id) to it, for the post's brand in its tenant; return
    each newly linked match with its item's columns (`id` is the item's id)."""
    if not posts:
        return []
    rows = await conn.fetch(
        f"""
        WITH posts AS (
            SELECT * FROM unnest($1::text[], $2::text[], $3::text[], $4::text[], $5::uuid[])
                AS p(tenant_id, network, external_id, brand_id, post_id)
        ), found AS (
            -- An item in the threads of two of our posts goes to its root's post (as ingest does).
            SELECT DISTINCT ON (m.item_id, m.tenant_id, m.brand_id)
                   m.item_id, m.tenant_id, m.brand_id, p.post_id
            FROM posts p
            JOIN items i ON i.network = p.network
                        AND (i.root_external_id = p.external_id
                             OR i.parent_external_id = p.external_id)
            JOIN item_matches m ON m.item_id = i.id AND m.tenant_id = p.tenant_id
                               AND m.brand_id = p.brand_id
            WHERE m.replies_to_post_id IS NULL AND i.deleted_at IS NULL
            ORDER BY m.item_id, m.tenant_id, m.brand_id, (i.root_external_id = p.external_id) DESC
        )
        UPDATE item_matches m SET replies_to_post_id = f.post_id
        FROM found f, items i
        WHERE (m.item_id, m.tenant_id, m.brand_id) = (f.item_id, f.tenant_id, f.brand_id)
          AND i.id = m.item_id AND m.replies_to_post_id IS NULL
        RETURNING m.tenant_id, m.brand_id, m.mention_id, m.source_id, m.matches,
                  m.replies_to_post_id, {", ".join(f"i.{c}" for c in _PAYLOAD_FIELDS)}
        """,
        [p["tenant_id"] for p in posts],
        [p["network"] for p in posts],
        [p["external_id"] for p in posts],
        [p["brand_id"] for p in posts],
        [p["post_id"] for p in posts],
    )
    return [dict(r) for r in rows]


async def lock_reply_threads(
    conn: Connection, keys: Sequence[tuple[str, str]], *, exclusive: bool
) -> None:
    """Serialise, per (tenant, network), storing items (shared) with tracking our new posts
    (exclusive) until the transaction ends: either the items see the tracked post or the post's
    linking sees the committed items, never neither. Taken in one order, so never deadlocking."""
    if not keys:
        return
    lock = "pg_advisory_xact_lock" if exclusive else "pg_advisory_xact_lock_shared"
    await conn.execute(
        f"""
        SELECT {lock}(k) FROM (
            SELECT DISTINCT hashtextextended('opensmm.ingest.replies:' || t || ':' || n, 0) AS k
            FROM unnest($1::text[], $2::text[]) AS u(t, n)
            ORDER BY k
        ) ordered
        """,
        [k[0] for k in keys],
        [k[1] for k in keys],
    )


async def tracked_posts_for(
    conn: Connection, tenant_id: str, network: str, external_ids: Sequence[str]
) -> dict[str, dict[str, Any]]:
    """Our published posts among `external_ids` (thread roots or parents), by external id."""
    if not external_ids:
        return {}
    rows = await conn.fetch(
        """
        SELECT external_id, brand_id, post_id FROM tracked_posts
        WHERE tenant_id = $1 AND network = $2 AND external_id = ANY($3::text[])
        """,
        tenant_id,
        network,
        list(set(external_ids)),
    )
    return {r["external_id"]: dict(r) for r in rows}


async def track_post(conn: Connection, row: dict[str, Any]) -> None:
    await conn.execute(
        """
        INSERT INTO tracked_posts (network, external_id, tenant_id, brand_id, post_id, channel_id,
                                   url, published_at, track_until)
        VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9)
        ON CONFLICT (network, external_id, tenant_id) DO UPDATE
            SET track_until = greatest(tracked_posts.track_until, EXCLUDED.track_until)
        """,
        row["network"],
        row["external_id"],
        row["tenant_id"],
        row["brand_id"],
        row["post_id"],
        row["channel_id"],
        row["url"],
        row["published_at"],
        row["track_until"],
    )


async def claim_due_tracked_posts(
    conn: Connection, lease_s: float, limit: int
) -> list[dict[str, Any]]:
    """Posts whose replies are due for a poll; pushing `next_poll_at` forward is the lease."""
    rows = await conn.fetch(
        """
        UPDATE tracked_posts t SET next_poll_at = now() + make_interval(secs => $1)
        FROM (
            SELECT network, external_id, tenant_id FROM tracked_posts
            WHERE next_poll_at <= now() AND track_until > now()
            ORDER BY next_poll_at LIMIT $2
            FOR UPDATE SKIP LOCKED
        ) due
        WHERE (t.network, t.external_id, t.tenant_id)
            = (due.network, due.external_id, due.tenant_id)
        RETURNING t.network, t.external_id, t.tenant_id, t.brand_id, t.post_id,
                  t.replies_cursor
        """,
        lease_s,
        limit,
    )
    return [dict(r) for r in rows]


async def finish_replies_poll(
    conn: Connection,
    post: dict[str, Any],
    cursor: dict[str, Any] | None,
    next_poll_in_s: float,
) -> None:
    await conn.execute(
        """
        UPDATE tracked_posts
        SET replies_cursor = coalesce($4, replies_cursor),
            next_poll_at = now() + make_interval(secs => $5)
        WHERE network = $1 AND external_id = $2 AND tenant_id = $3
        """,
        post["network"],
        post["external_id"],
        post["tenant_id"],
        cursor,
        next_poll_in_s,
    )


async def source_for_replies(
    conn: Connection, tenant_id: str, brand_id: str, network: str
) -> SourceRow | None:
    """A working pull source of the tenant on that network, the brand's own first, whose
    credentials can read the replies."""
    row = await conn.fetchrow(
        f"""
        SELECT {_SOURCE} FROM sources
        WHERE tenant_id = $1 AND network = $3 AND kind = 'pull' AND status = 'active'
          AND deleted_at IS NULL
        ORDER BY (brand_id = $2) DESC NULLS LAST, created_at
        LIMIT 1
        """,
        tenant_id,
        brand_id,
        network,
    )
    return SourceRow(**dict(row)) if row else None


async def purge_expired_raw(conn: Connection, limit: int = 10_000) -> int:
    """Drop audit copies past their retention (in bounded chunks)."""
    result: str = await conn.execute(
        """
        UPDATE items SET raw = NULL WHERE id IN (
            SELECT id FROM items WHERE raw IS NOT NULL AND raw_expires_at < now() LIMIT $1
        )
        """,
        limit,
    )
    return int(result.rsplit(" ", 1)[-1])


# --- mention search ------------------------------------------------------------------------------


async def search_mentions(
    conn: Connection,
    *,
    tenant_id: str,
    brand_id: str | None,
    since: datetime | None,
    until: datetime | None,
    network: str | None,
    language: str | None,
    text: str | None,
    after: tuple[datetime, uuid.UUID] | None,
    limit: int,
) -> list[dict[str, Any]]:
    conditions = ["m.tenant_id = $1"]
    args: list[Any] = [tenant_id]

    def add(sql: str, value: Any) -> None:
        args.append(value)
        conditions.append(sql.replace("?", f"${len(args)}"))

    if brand_id is not None:
        add("m.brand_id = ?", brand_id)
    if since is not None:
        add("m.created_at >= ?", since)
    if until is not None:
        add("m.created_at < ?", until)
    if network is not None:
        add("i.network = ?", network)
    if language is not None:
        add("i.language = ?", language)
    if text is not None:
        add("to_tsvector('simple', i.text) @@ websearch_to_tsquery('simple', ?)", text)
    if after is not None:
        args += [after[0], after[1]]
        conditions.append(f"(m.created_at, m.mention_id) < (${len(args) - 1}, ${len(args)})")
    args.append(limit)
    rows = await conn.fetch(
        f"""
        SELECT m.mention_id, m.tenant_id, m.brand_id, m.source_id, m.matches, m.created_at,
               m.matched_at, m.replies_to_post_id, i.id AS item_id, i.network, i.external_id,
               i.kind, i.text, i.url, i.language, i.edited_at, i.deleted_at, i.author,
               i.root_external_id, i.parent_external_id, i.media, i.engagement
        FROM item_matches m JOIN items i ON i.id = m.item_id
        WHERE {" AND ".join(conditions)}
        ORDER BY m.created_at DESC, m.mention_id DESC
        LIMIT ${len(args)}
        """,
        *args,
    )
    return [dict(r) for r in rows]
