"""Every SQL statement of the ingest service. Callers own the transaction."""

from __future__ import annotations

import uuid
from collections.abc import Sequence
from dataclasses import dataclass
from datetime import datetime

from services.ingest.webhooks import NormalisedMention
from shared.db import Connection


@dataclass(frozen=True)
class SourceRow:
    id: uuid.UUID
    tenant_id: str
    brand_id: str
    kind: str
    network: str
    name: str
    secret_encrypted: bytes
    created_by: str
    created_at: datetime


_SOURCE_COLUMNS = (
    "id, tenant_id, brand_id, kind, network, name, secret_encrypted, created_by, created_at"
)


async def insert_source(
    conn: Connection,
    *,
    tenant_id: str,
    brand_id: str,
    kind: str,
    network: str,
    name: str,
    secret_encrypted: bytes,
    created_by: str,
) -> SourceRow:
    row = await conn.fetchrow(
        f"""
        INSERT INTO sources (id, tenant_id, brand_id, kind, network, name, secret_encrypted,
                             created_by)
        VALUES ($1, $2, $3, $4, $5, $6, $7, $8)
        RETURNING {_SOURCE_COLUMNS}
        """,
        uuid.uuid4(),
        tenant_id,
        brand_id,
        kind,
        network,
        name,
        secret_encrypted,
        created_by,
    )
    assert row is not None
    return SourceRow(**dict(row))


async def get_source(conn: Connection, source_id: uuid.UUID) -> SourceRow | None:
    row = await conn.fetchrow(f"SELECT {_SOURCE_COLUMNS} FROM sources WHERE id = $1", source_id)
    return SourceRow(**dict(row)) if row else None


async def list_sources(conn: Connection, tenant_id: str, brand_id: str | None) -> list[SourceRow]:
    rows = await conn.fetch(
        f"""
        SELECT {_SOURCE_COLUMNS} FROM sources
        WHERE tenant_id = $1 AND ($2::text IS NULL OR brand_id = $2)
        ORDER BY created_at DESC
        LIMIT 1000
        """,
        tenant_id,
        brand_id,
    )
    return [SourceRow(**dict(r)) for r in rows]


async def store_new_mentions(
    conn: Connection,
    tenant_id: str,
    brand_id: str,
    mentions: Sequence[NormalisedMention],
) -> set[uuid.UUID]:
    """Insert the mentions not seen before; return the ids of those actually inserted."""
    if not mentions:
        return set()
    rows = await conn.fetch(
        """
        INSERT INTO mentions (id, tenant_id, brand_id, source_id, network, external_id,
                              created_at, raw)
        SELECT m.id, $1, $2, m.source_id, m.network, m.external_id, m.created_at, m.raw
        FROM unnest($3::uuid[], $4::uuid[], $5::text[], $6::text[], $7::timestamptz[],
                    $8::jsonb[]) AS m(id, source_id, network, external_id, created_at, raw)
        ON CONFLICT (tenant_id, brand_id, network, external_id) DO NOTHING
        RETURNING id
        """,
        tenant_id,
        brand_id,
        [m.payload.mention_id for m in mentions],
        [m.payload.source_id for m in mentions],
        [m.payload.network for m in mentions],
        [m.payload.external_id for m in mentions],
        [m.payload.created_at for m in mentions],
        [m.raw for m in mentions],
    )
    return {r["id"] for r in rows}
