"""Every SQL statement of the inbox configuration API: members, teams, the rule set, saved
replies and brand settings. Callers own the transaction."""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

from shared.db import Connection

_MEMBER = """
    SELECT m.id, m.name, m.languages, m.capacity, m.available, m.created_at,
           (SELECT count(*) FROM conversations c
            WHERE c.tenant_id = m.tenant_id AND c.assignee_id = m.id
              AND c.status IN ('new', 'open', 'pending'))::int AS open_items,
           ARRAY(SELECT tm.team_id FROM team_members tm
                 WHERE tm.tenant_id = m.tenant_id AND tm.member_id = m.id
                 ORDER BY tm.team_id) AS teams
    FROM members m
"""

_TEAM = """
    SELECT t.id, t.name, t.strategy, t.brands, t.last_assigned, t.created_at,
           ARRAY(SELECT tm.member_id FROM team_members tm
                 WHERE tm.tenant_id = t.tenant_id AND tm.team_id = t.id
                 ORDER BY tm.position) AS members
    FROM teams t
"""

_SAVED_REPLY = "SELECT id, brand_id, name, text, created_at, updated_at FROM saved_replies"

# The columns services.inbox.workflow.rule_item reads.
_RULE_ITEM_COLUMNS = """
    id, brand_id, network, kind, text, created_at, author_handle, language, author_followers,
    sentiment, sentiment_score, intent, spam, priority, level
"""


def _dict(row: Any) -> dict[str, Any] | None:
    return dict(row) if row is not None else None


async def lock_config(conn: Connection, tenant_id: str) -> None:
    """Serialise a tenant's configuration writes until the transaction ends, so a rule can never
    be saved naming a team (member, saved reply) that a concurrent request is deleting."""
    await conn.execute(
        "SELECT pg_advisory_xact_lock(hashtextextended('inbox-config:' || $1, 0))", tenant_id
    )


# --- members -----------------------------------------------------------------------------------


async def list_members(conn: Connection, tenant_id: str) -> list[dict[str, Any]]:
    rows = await conn.fetch(_MEMBER + " WHERE m.tenant_id = $1 ORDER BY m.id", tenant_id)
    return [dict(r) for r in rows]


async def get_member(conn: Connection, tenant_id: str, member_id: str) -> dict[str, Any] | None:
    row = await conn.fetchrow(
        _MEMBER + " WHERE m.tenant_id = $1 AND m.id = $2", tenant_id, member_id
    )
    return _dict(row)


async def upsert_member(
    conn: Connection,
    tenant_id: str,
    member_id: str,
    *,
    name: str,
    languages: Sequence[str],
    capacity: int,
    available: bool,
) -> None:
    await conn.execute(
        """
        INSERT INTO members (tenant_id, id, name, languages, capacity, available)
        VALUES ($1, $2, $3, $4, $5, $6)
        ON CONFLICT (tenant_id, id) DO UPDATE
        SET name = EXCLUDED.name, languages = EXCLUDED.languages,
            capacity = EXCLUDED.capacity, available = EXCLUDED.available
        """,
        tenant_id,
        member_id,
        name,
        list(languages),
        capacity,
        available,
    )


async def update_member(
    conn: Connection,
    tenant_id: str,
    member_id: str,
    *,
    available: bool | None,
    capacity: int | None,
) -> bool:
    """Set availability and/or capacity; False when there is no such member."""
    status = await conn.execute(
        """
        UPDATE members SET available = COALESCE($3, available), capacity = COALESCE($4, capacity)
        WHERE tenant_id = $1 AND id = $2
        """,
        tenant_id,
        member_id,
        available,
        capacity,
    )
    return bool(status == "UPDATE 1")


async def delete_member(conn: Connection, tenant_id: str, member_id: str) -> bool:
    """Remove a member (and with it their places in teams). Their active conversations go back to
    their team's queue, where the clock job hands them to someone else."""
    status = await conn.execute(
        "DELETE FROM members WHERE tenant_id = $1 AND id = $2", tenant_id, member_id
    )
    if status != "DELETE 1":
        return False
    await conn.execute(
        """
        WITH freed AS (
            UPDATE conversations SET assignee_id = NULL, updated_at = now()
            WHERE tenant_id = $1 AND assignee_id = $2 AND status IN ('new', 'open', 'pending')
            RETURNING id)
        UPDATE items SET assignee_id = NULL FROM freed WHERE items.conversation_id = freed.id
        """,
        tenant_id,
        member_id,
    )
    return True


async def existing_members(conn: Connection, tenant_id: str, ids: Sequence[str]) -> set[str]:
    rows = await conn.fetch(
        "SELECT id FROM members WHERE tenant_id = $1 AND id = ANY($2::text[])", tenant_id, list(ids)
    )
    return {r["id"] for r in rows}


# --- teams -------------------------------------------------------------------------------------


async def list_teams(conn: Connection, tenant_id: str) -> list[dict[str, Any]]:
    # Creation order: the oldest team answering for a brand is the one that routes its items.
    rows = await conn.fetch(
        _TEAM + " WHERE t.tenant_id = $1 ORDER BY t.created_at, t.id", tenant_id
    )
    return [dict(r) for r in rows]


async def get_team(conn: Connection, tenant_id: str, team_id: str) -> dict[str, Any] | None:
    row = await conn.fetchrow(_TEAM + " WHERE t.tenant_id = $1 AND t.id = $2", tenant_id, team_id)
    return _dict(row)


async def upsert_team(
    conn: Connection,
    tenant_id: str,
    team_id: str,
    *,
    name: str,
    strategy: str,
    brands: Sequence[str] | None,
    members: Sequence[str],
) -> None:
    """Create or replace a team and its ordered membership; the round-robin pointer
    (last_assigned) survives an edit."""
    await conn.execute(
        """
        INSERT INTO teams (tenant_id, id, name, strategy, brands) VALUES ($1, $2, $3, $4, $5)
        ON CONFLICT (tenant_id, id) DO UPDATE
        SET name = EXCLUDED.name, strategy = EXCLUDED.strategy, brands = EXCLUDED.brands
        """,
        tenant_id,
        team_id,
        name,
        strategy,
        list(brands) if brands is not None else None,
    )
    await conn.execute(
        "DELETE FROM team_members WHERE tenant_id = $1 AND team_id = $2", tenant_id, team_id
    )
    await conn.execute(
        """
        INSERT INTO team_members (tenant_id, team_id, member_id, position)
        SELECT $1, $2, member_id, position::int - 1
        FROM unnest($3::text[]) WITH ORDINALITY AS m(member_id, position)
        """,
        tenant_id,
        team_id,
        list(members),
    )


async def delete_team(conn: Connection, tenant_id: str, team_id: str) -> bool:
    status = await conn.execute(
        "DELETE FROM teams WHERE tenant_id = $1 AND id = $2", tenant_id, team_id
    )
    return bool(status == "DELETE 1")


async def existing_teams(conn: Connection, tenant_id: str, ids: Sequence[str]) -> set[str]:
    rows = await conn.fetch(
        "SELECT id FROM teams WHERE tenant_id = $1 AND id = ANY($2::text[])", tenant_id, list(ids)
    )
    return {r["id"] for r in rows}


# --- the rule set ------------------------------------------------------------------------------


async def rule_set_meta(conn: Connection, tenant_id: str) -> dict[str, Any] | None:
    """The stored rule set's version, updated_at and updated_by (the rules come from the
    compiled cache, config.RULES)."""
    row = await conn.fetchrow(
        "SELECT version, updated_at, updated_by FROM rule_sets WHERE tenant_id = $1",
        tenant_id,
    )
    return _dict(row)


async def rule_set_version(conn: Connection, tenant_id: str) -> int:
    """The stored version, locked until the transaction ends; 0 when nothing was ever saved."""
    version = await conn.fetchval(
        "SELECT version FROM rule_sets WHERE tenant_id = $1 FOR UPDATE", tenant_id
    )
    return int(version) if version is not None else 0


async def save_rule_set(
    conn: Connection,
    tenant_id: str,
    rules: list[dict[str, Any]],
    *,
    updated_by: str,
    expected_version: int | None,
) -> dict[str, Any] | None:
    """Replace the tenant's rules and bump the version; None when `expected_version` is given
    and the stored version moved on (a first save expects version 0)."""
    row = await conn.fetchrow(
        """
        INSERT INTO rule_sets (tenant_id, rules, version, updated_by, updated_at)
        VALUES ($1, $2, 1, $3, now())
        ON CONFLICT (tenant_id) DO UPDATE
        SET rules = EXCLUDED.rules, version = rule_sets.version + 1,
            updated_by = EXCLUDED.updated_by, updated_at = now()
        WHERE $4::bigint IS NULL OR rule_sets.version = $4::bigint
        RETURNING version, updated_at, updated_by
        """,
        tenant_id,
        rules,
        updated_by,
        expected_version,
    )
    return _dict(row)


async def rules_naming(
    conn: Connection, tenant_id: str, action_type: str, field: str, value: str
) -> list[str]:
    """Ids of the stored rules with an action of `action_type` whose `field` is `value`."""
    rows = await conn.fetch(
        """
        SELECT DISTINCT r.rule ->> 'id' AS id
        FROM rule_sets s,
             jsonb_array_elements(s.rules) AS r(rule),
             jsonb_array_elements(r.rule -> 'actions') AS a(action)
        WHERE s.tenant_id = $1 AND a.action ->> 'type' = $2 AND a.action ->> $3 = $4
        ORDER BY 1
        """,
        tenant_id,
        action_type,
        field,
        value,
    )
    return [r["id"] for r in rows]


async def recent_items(
    conn: Connection, tenant_id: str, *, brand_id: str | None, limit: int
) -> list[dict[str, Any]]:
    """The tenant's newest items (optionally one brand's) with what rules look at."""
    if brand_id is None:
        rows = await conn.fetch(
            f"SELECT {_RULE_ITEM_COLUMNS} FROM items WHERE tenant_id = $1"
            " ORDER BY created_at DESC, id DESC LIMIT $2",
            tenant_id,
            limit,
        )
    else:
        rows = await conn.fetch(
            f"SELECT {_RULE_ITEM_COLUMNS} FROM items WHERE tenant_id = $1 AND brand_id = $2"
            " ORDER BY created_at DESC, id DESC LIMIT $3",
            tenant_id,
            brand_id,
            limit,
        )
    return [dict(r) for r in rows]


# --- saved replies -----------------------------------------------------------------------------


async def list_saved_replies(
    conn: Connection, tenant_id: str, brand_id: str | None
) -> list[dict[str, Any]]:
    """Every saved reply; for a brand, its own and those shared by every brand."""
    if brand_id is None:
        rows = await conn.fetch(_SAVED_REPLY + " WHERE tenant_id = $1 ORDER BY id", tenant_id)
    else:
        rows = await conn.fetch(
            _SAVED_REPLY + " WHERE tenant_id = $1 AND (brand_id = $2 OR brand_id IS NULL)"
            " ORDER BY id",
            tenant_id,
            brand_id,
        )
    return [dict(r) for r in rows]


async def get_saved_reply(conn: Connection, tenant_id: str, reply_id: str) -> dict[str, Any] | None:
    row = await conn.fetchrow(
        _SAVED_REPLY + " WHERE tenant_id = $1 AND id = $2", tenant_id, reply_id
    )
    return _dict(row)


async def upsert_saved_reply(
    conn: Connection, tenant_id: str, reply_id: str, *, name: str, text: str, brand_id: str | None
) -> dict[str, Any]:
    row = await conn.fetchrow(
        """
        INSERT INTO saved_replies (tenant_id, id, brand_id, name, text) VALUES ($1, $2, $3, $4, $5)
        ON CONFLICT (tenant_id, id) DO UPDATE
        SET brand_id = EXCLUDED.brand_id, name = EXCLUDED.name, text = EXCLUDED.text,
            updated_at = now()
        RETURNING id, brand_id, name, text, created_at, updated_at
        """,
        tenant_id,
        reply_id,
        brand_id,
        name,
        text,
    )
    assert row is not None
    return dict(row)


async def delete_saved_reply(conn: Connection, tenant_id: str, reply_id: str) -> bool:
    status = await conn.execute(
        "DELETE FROM saved_replies WHERE tenant_id = $1 AND id = $2", tenant_id, reply_id
    )
    return bool(status == "DELETE 1")


async def existing_saved_replies(conn: Connection, tenant_id: str, ids: Sequence[str]) -> set[str]:
    rows = await conn.fetch(
        "SELECT id FROM saved_replies WHERE tenant_id = $1 AND id = ANY($2::text[])",
        tenant_id,
        list(ids),
    )
    return {r["id"] for r in rows}


# --- brand settings ----------------------------------------------------------------------------


async def get_brand_settings(
    conn: Connection, tenant_id: str, brand_id: str
) -> dict[str, Any] | None:
    row = await conn.fetchrow(
        "SELECT settings, updated_at FROM brand_settings WHERE tenant_id = $1 AND brand_id = $2",
        tenant_id,
        brand_id,
    )
    return _dict(row)


async def put_brand_settings(
    conn: Connection, tenant_id: str, brand_id: str, settings: dict[str, Any]
) -> dict[str, Any]:
    row = await conn.fetchrow(
        """
        INSERT INTO brand_settings (tenant_id, brand_id, settings) VALUES ($1, $2, $3)
        ON CONFLICT (tenant_id, brand_id) DO UPDATE
        SET settings = EXCLUDED.settings, updated_at = now()
        RETURNING settings, updated_at
        """,
        tenant_id,
        brand_id,
        settings,
    )
    assert row is not None
    return dict(row)


async def delete_brand_settings(conn: Connection, tenant_id: str, brand_id: str) -> bool:
    status = await conn.execute(
        "DELETE FROM brand_settings WHERE tenant_id = $1 AND brand_id = $2", tenant_id, brand_id
    )
    return bool(status == "DELETE 1")
