"""Every SQL statement of the publisher. Callers own the transaction."""

from __future__ import annotations

import dataclasses
import json
import uuid
from collections.abc import Sequence
from datetime import datetime, time
from typing import Any

from shared.db import Connection

# --- brand settings ------------------------------------------------------------------------------


async def get_brand_settings(conn: Connection, tenant_id: str, brand_id: str) -> dict[str, Any]:
    row = await conn.fetchrow(
        "SELECT timezone, approval FROM brand_settings WHERE tenant_id = $1 AND brand_id = $2",
        tenant_id,
        brand_id,
    )
    return dict(row) if row else {"timezone": "UTC", "approval": "none"}


async def put_brand_settings(
    conn: Connection, tenant_id: str, brand_id: str, timezone: str, approval: str
) -> None:
    await conn.execute(
        """
        INSERT INTO brand_settings (tenant_id, brand_id, timezone, approval)
        VALUES ($1, $2, $3, $4)
        ON CONFLICT (tenant_id, brand_id)
        DO UPDATE SET timezone = $3, approval = $4, updated_at = now()
        """,
        tenant_id,
        brand_id,
        timezone,
        approval,
    )


# --- channels ------------------------------------------------------------------------------------

_CHANNEL = (
    "id, tenant_id, brand_id, network, name, config, overrides, credentials_encrypted, status,"
    " last_error, created_at, updated_at"
)


async def insert_channel(conn: Connection, **values: Any) -> dict[str, Any]:
    row = await conn.fetchrow(
        f"""
        INSERT INTO channels (id, tenant_id, brand_id, network, name, config, overrides,
                              credentials_encrypted)
        VALUES ($1, $2, $3, $4, $5, $6, $7, $8)
        RETURNING {_CHANNEL}
        """,
        uuid.uuid4(),
        values["tenant_id"],
        values["brand_id"],
        values["network"],
        values["name"],
        values["config"],
        values["overrides"],
        values["credentials_encrypted"],
    )
    assert row is not None
    return dict(row)


async def get_channel(
    conn: Connection, channel_id: uuid.UUID, tenant_id: str | None = None
) -> dict[str, Any] | None:
    row = await conn.fetchrow(
        f"""
        SELECT {_CHANNEL} FROM channels
        WHERE id = $1 AND deleted_at IS NULL AND ($2::text IS NULL OR tenant_id = $2)
        """,
        channel_id,
        tenant_id,
    )
    return dict(row) if row else None


async def list_channels(
    conn: Connection, tenant_id: str, brand_id: str | None
) -> list[dict[str, Any]]:
    rows = await conn.fetch(
        f"""
        SELECT {_CHANNEL} FROM channels
        WHERE tenant_id = $1 AND deleted_at IS NULL AND ($2::text IS NULL OR brand_id = $2)
        ORDER BY created_at LIMIT 10000
        """,
        tenant_id,
        brand_id,
    )
    return [dict(r) for r in rows]


async def update_channel(
    conn: Connection,
    channel_id: uuid.UUID,
    *,
    name: str | None = None,
    credentials_encrypted: bytes | None = None,
    status: str | None = None,
    last_error: str | None = None,
) -> dict[str, Any] | None:
    row = await conn.fetchrow(
        f"""
        UPDATE channels SET name = coalesce($2, name),
               credentials_encrypted = coalesce($3, credentials_encrypted),
               status = coalesce($4, status), last_error = coalesce($5, last_error),
               updated_at = now()
        WHERE id = $1 AND deleted_at IS NULL
        RETURNING {_CHANNEL}
        """,
        channel_id,
        name,
        credentials_encrypted,
        status,
        last_error,
    )
    return dict(row) if row else None


async def set_slots(
    conn: Connection, channel_id: uuid.UUID, slots: Sequence[tuple[int, time]]
) -> None:
    """Replace the channel's slots. Two saves of one channel at once take turns on the channel
    row (otherwise both delete, both insert, and the second fails on the primary key)."""
    await conn.execute("SELECT 1 FROM channels WHERE id = $1 FOR UPDATE", channel_id)
    await conn.execute("DELETE FROM channel_slots WHERE channel_id = $1", channel_id)
    await conn.executemany(
        "INSERT INTO channel_slots (channel_id, weekday, local_time) VALUES ($1, $2, $3)",
        [(channel_id, weekday, at) for weekday, at in slots],
    )


async def get_slots(conn: Connection, channel_id: uuid.UUID) -> list[tuple[int, time]]:
    rows = await conn.fetch(
        "SELECT weekday, local_time FROM channel_slots WHERE channel_id = $1 ORDER BY 1, 2",
        channel_id,
    )
    return [(r["weekday"], r["local_time"]) for r in rows]


async def taken_times(conn: Connection, channel_id: uuid.UUID, after: datetime) -> set[datetime]:
    rows = await conn.fetch(
        """
        SELECT due_at FROM deliveries
        WHERE channel_id = $1 AND due_at > $2 AND status NOT IN ('cancelled', 'draft')
        """,
        channel_id,
        after,
    )
    return {r["due_at"] for r in rows}


async def lock_channel_to_refresh(
    conn: Connection, networks: Sequence[str], expiring_before: datetime
) -> dict[str, Any] | None:
    """One active channel whose credentials expire soon (or were never checked, or not for a
    day), locked for the caller's transaction so no other replica refreshes it at once (some
    refresh tokens work only once)."""
    row = await conn.fetchrow(
        f"""
        SELECT {_CHANNEL} FROM channels
        WHERE status = 'active' AND deleted_at IS NULL AND network = ANY($1::text[])
          AND credentials_encrypted IS NOT NULL
          AND (credentials_expire_at < $2
               OR (credentials_expire_at IS NULL
                   AND (credentials_checked_at IS NULL
                        OR credentials_checked_at < now() - interval '1 day')))
        ORDER BY credentials_expire_at NULLS FIRST
        LIMIT 1
        FOR UPDATE SKIP LOCKED
        """,
        list(networks),
        expiring_before,
    )
    return dict(row) if row else None


async def store_refreshed_credentials(
    conn: Connection,
    channel_id: uuid.UUID,
    credentials_encrypted: bytes | None,
    expires_at: datetime | None,
) -> None:
    await conn.execute(
        """
        UPDATE channels SET credentials_encrypted = coalesce($2, credentials_encrypted),
               credentials_expire_at = $3, credentials_checked_at = now(), updated_at = now()
        WHERE id = $1
        """,
        channel_id,
        credentials_encrypted,
        expires_at,
    )


# --- posts and deliveries ------------------------------------------------------------------------

_POST = (
    "id, tenant_id, brand_id, status, tags, notes, scheduled_at, created_by, created_at, updated_at"
)
_DELIVERY = (
    "id, tenant_id, post_id, channel_id, kind, text, media, link, reply_to, target_external_id,"
    " request_id, status, due_at, next_attempt_at, attempts, first_attempt_at, remote_id, url,"
    " last_error, published_at"
)


async def insert_post(
    conn: Connection,
    *,
    tenant_id: str,
    brand_id: str,
    tags: list[str],
    notes: str | None,
    created_by: str,
) -> dict[str, Any]:
    row = await conn.fetchrow(
        f"""
        INSERT INTO posts (id, tenant_id, brand_id, tags, notes, created_by)
        VALUES ($1, $2, $3, $4, $5, $6) RETURNING {_POST}
        """,
        uuid.uuid4(),
        tenant_id,
        brand_id,
        tags,
        notes,
        created_by,
    )
    assert row is not None
    return dict(row)


async def replace_variants(
    conn: Connection, post_id: uuid.UUID, tenant_id: str, variants: Sequence[dict[str, Any]]
) -> None:
    await conn.execute("DELETE FROM deliveries WHERE post_id = $1 AND status = 'draft'", post_id)
    await conn.executemany(
        """
        INSERT INTO deliveries (id, tenant_id, post_id, channel_id, kind, text, media, link,
                                reply_to)
        VALUES ($1, $2, $3, $4, 'post', $5, $6::text::jsonb, $7, $8)
        """,
        [
            (
                uuid.uuid4(),
                tenant_id,
                post_id,
                v["channel_id"],
                v["text"],
                json.dumps(v["media"]),
                v["link"],
                v["reply_to"],
            )
            for v in variants
        ],
    )


async def get_post(
    conn: Connection, post_id: uuid.UUID, tenant_id: str, *, for_update: bool = False
) -> dict[str, Any] | None:
    lock = " FOR UPDATE" if for_update else ""
    row = await conn.fetchrow(
        f"SELECT {_POST} FROM posts WHERE id = $1 AND tenant_id = $2{lock}", post_id, tenant_id
    )
    return dict(row) if row else None


async def deliveries_of(conn: Connection, post_id: uuid.UUID) -> list[dict[str, Any]]:
    rows = await conn.fetch(
        f"SELECT {_DELIVERY} FROM deliveries WHERE post_id = $1 ORDER BY channel_id", post_id
    )
    return [dict(r) for r in rows]


async def set_post(conn: Connection, post_id: uuid.UUID, **values: Any) -> None:
    sets = ", ".join(f"{name} = ${i + 2}" for i, name in enumerate(values))
    await conn.execute(
        f"UPDATE posts SET {sets}, updated_at = now() WHERE id = $1", post_id, *values.values()
    )


async def schedule_deliveries(
    conn: Connection, post_id: uuid.UUID, due: dict[uuid.UUID, datetime]
) -> None:
    await conn.executemany(
        """
        UPDATE deliveries SET status = 'scheduled', due_at = $3, next_attempt_at = $3,
               updated_at = now()
        WHERE post_id = $1 AND channel_id = $2 AND status IN ('draft', 'scheduled')
        """,
        [(post_id, channel_id, at) for channel_id, at in due.items()],
    )


async def add_occurrences(
    conn: Connection,
    post_id: uuid.UUID,
    channel_id: uuid.UUID,
    first_due: datetime,
    dues: Sequence[datetime],
) -> None:
    """More deliveries of the channel's variant (the one scheduled at `first_due`), one per later
    occurrence of a recurring post."""
    await conn.execute(
        """
        INSERT INTO deliveries (id, tenant_id, post_id, channel_id, kind, text, media, link,
                                reply_to, status, due_at, next_attempt_at)
        SELECT gen_random_uuid(), d.tenant_id, d.post_id, d.channel_id, d.kind, d.text, d.media,
               d.link, d.reply_to, 'scheduled', due, due
        FROM deliveries d, unnest($3::timestamptz[]) AS due
        WHERE d.post_id = $1 AND d.channel_id = $2 AND d.status = 'scheduled' AND d.due_at = $4
        """,
        post_id,
        channel_id,
        list(dues),
        first_due,
    )


async def cancel_deliveries(conn: Connection, post_id: uuid.UUID) -> int:
    result: str = await conn.execute(
        """
        UPDATE deliveries SET status = 'cancelled', updated_at = now()
        WHERE post_id = $1 AND status IN ('draft', 'scheduled')
        """,
        post_id,
    )
    return int(result.rsplit(" ", 1)[-1])


async def audit(
    conn: Connection, post_id: uuid.UUID, actor: str, role: str, action: str, comment: str | None
) -> None:
    await conn.execute(
        "INSERT INTO post_audit (post_id, actor, role, action, comment)"
        " VALUES ($1, $2, $3, $4, $5)",
        post_id,
        actor,
        role,
        action,
        comment,
    )


async def audit_trail(conn: Connection, post_id: uuid.UUID) -> list[dict[str, Any]]:
    rows = await conn.fetch(
        "SELECT actor, role, action, comment, at FROM post_audit WHERE post_id = $1 ORDER BY id",
        post_id,
    )
    return [dict(r) for r in rows]


async def attempts_of(conn: Connection, post_id: uuid.UUID) -> list[dict[str, Any]]:
    rows = await conn.fetch(
        """
        SELECT a.delivery_id, d.channel_id, a.number, a.idempotency_key, a.started_at,
               a.finished_at, a.outcome, a.detail, a.remote_id
        FROM attempts a JOIN deliveries d ON d.id = a.delivery_id
        WHERE d.post_id = $1 ORDER BY a.started_at, a.number
        """,
        post_id,
    )
    return [dict(r) for r in rows]


async def list_posts(
    conn: Connection,
    tenant_id: str,
    brand_id: str | None,
    status: str | None,
    after: tuple[datetime, uuid.UUID] | None,
    limit: int,
) -> list[dict[str, Any]]:
    conditions = ["tenant_id = $1", "status <> 'deleted'"]
    args: list[Any] = [tenant_id]
    for column, value in (("brand_id", brand_id), ("status", status)):
        if value is not None:
            args.append(value)
            conditions.append(f"{column} = ${len(args)}")
    if after is not None:
        args += [after[0], after[1]]
        conditions.append(f"(created_at, id) < (${len(args) - 1}, ${len(args)})")
    args.append(limit)
    rows = await conn.fetch(
        f"""
        SELECT {_POST} FROM posts WHERE {" AND ".join(conditions)}
        ORDER BY created_at DESC, id DESC LIMIT ${len(args)}
        """,
        *args,
    )
    return [dict(r) for r in rows]


async def calendar(
    conn: Connection, tenant_id: str, brand_id: str | None, start: datetime, end: datetime
) -> list[dict[str, Any]]:
    rows = await conn.fetch(
        f"""
        SELECT {_POST} FROM posts
        WHERE tenant_id = $1 AND ($2::text IS NULL OR brand_id = $2)
          AND scheduled_at >= $3 AND scheduled_at < $4
        ORDER BY scheduled_at LIMIT 5000
        """,
        tenant_id,
        brand_id,
        start,
        end,
    )
    return [dict(r) for r in rows]


async def insert_reply(conn: Connection, **values: Any) -> bool:
    """A reply delivery for an inbox request; False if that request was seen before."""
    done = await conn.fetchval(
        """
        INSERT INTO deliveries (id, tenant_id, channel_id, kind, text, reply_to, request_id,
                                status, due_at, next_attempt_at)
        VALUES ($1, $2, $3, 'reply', $4, $5, $6, 'scheduled', now(), now())
        ON CONFLICT (request_id) DO NOTHING RETURNING true
        """,
        uuid.uuid4(),
        values["tenant_id"],
        values["channel_id"],
        values["text"],
        values["reply_to"],
        values["request_id"],
    )
    return bool(done)


async def insert_hide(
    conn: Connection,
    *,
    tenant_id: str,
    channel_id: uuid.UUID,
    comment_external_id: str,
    request_id: uuid.UUID,
) -> bool:
    """A delivery hiding a comment for an inbox request; False if that request was seen before."""
    done = await conn.fetchval(
        """
        INSERT INTO deliveries (id, tenant_id, channel_id, kind, text, target_external_id,
                                request_id, status, due_at, next_attempt_at)
        VALUES ($1, $2, $3, 'hide', '', $4, $5, 'scheduled', now(), now())
        ON CONFLICT (request_id) DO NOTHING RETURNING true
        """,
        uuid.uuid4(),
        tenant_id,
        channel_id,
        comment_external_id,
        request_id,
    )
    return bool(done)


# --- dispatch ------------------------------------------------------------------------------------


async def claim_due(
    conn: Connection, owner: str, lease_s: float, limit: int
) -> list[dict[str, Any]]:
    """Lease due deliveries (and ones whose holder died mid-publish) to `owner`."""
    rows = await conn.fetch(
        f"""
        UPDATE deliveries d SET lease_owner = $1, lease_until = now() + make_interval(secs => $2)
        FROM channels c
        WHERE d.id IN (
            SELECT d2.id FROM deliveries d2 JOIN channels c2 ON c2.id = d2.channel_id
            WHERE d2.status IN ('scheduled', 'publishing', 'unknown')
              AND d2.next_attempt_at <= now()
              AND (d2.lease_until IS NULL OR d2.lease_until < now())
              AND c2.status = 'active' AND c2.deleted_at IS NULL
            ORDER BY d2.next_attempt_at
            LIMIT $3
            FOR UPDATE OF d2 SKIP LOCKED
        ) AND c.id = d.channel_id
        RETURNING {", ".join("d." + c.strip() for c in _DELIVERY.split(","))},
                  c.network, c.config, c.credentials_encrypted, c.brand_id
        """,
        owner,
        lease_s,
        limit,
    )
    return [dict(r) for r in rows]


async def next_due(conn: Connection) -> datetime | None:
    """When the next delivery not yet due falls due (None: none is scheduled)."""
    due: datetime | None = await conn.fetchval(
        """
        SELECT min(next_attempt_at) FROM deliveries
        WHERE status IN ('scheduled', 'publishing', 'unknown') AND next_attempt_at > now()
        """
    )
    return due


async def start_attempts(
    conn: Connection, owner: str, keys: Sequence[tuple[uuid.UUID, str]]
) -> dict[uuid.UUID, int]:
    """Record an attempt of each (delivery, idempotency key) before the network calls, in one
    statement (so one round trip and one commit for all of them): the attempt number of each
    delivery `owner` still holds; one missing from the answer has lost its lease."""
    if not keys:
        return {}
    rows = await conn.fetch(
        """
        WITH started AS (
            UPDATE deliveries d SET status = 'publishing', attempts = d.attempts + 1,
                   first_attempt_at = coalesce(d.first_attempt_at, now()), updated_at = now()
            FROM unnest($2::uuid[], $3::text[]) AS s(id, key)
            WHERE d.id = s.id AND d.lease_owner = $1 AND d.lease_until > now()
            RETURNING d.id, d.attempts, s.key
        )
        INSERT INTO attempts (delivery_id, number, idempotency_key)
        SELECT id, attempts, key FROM started
        RETURNING delivery_id, number
        """,
        owner,
        [delivery_id for delivery_id, _ in keys],
        [key for _, key in keys],
    )
    return {r["delivery_id"]: int(r["number"]) for r in rows}


async def postpone(conn: Connection, delivery_id: uuid.UUID, owner: str, wait_s: float) -> None:
    """Hand a claimed delivery back untouched, to be picked up after `wait_s` (pacing)."""
    await conn.execute(
        """
        UPDATE deliveries SET next_attempt_at = now() + make_interval(secs => $3),
               lease_owner = NULL, lease_until = NULL
        WHERE id = $1 AND lease_owner = $2
        """,
        delivery_id,
        owner,
        wait_s,
    )


@dataclasses.dataclass(frozen=True)
class Finish:
    """The outcome of one attempt, as `finish_attempts` records it."""

    delivery_id: uuid.UUID
    outcome: str
    detail: str | None
    status: str
    next_attempt_in_s: float | None
    remote_id: str | None = None
    url: str | None = None


async def finish_attempts(
    conn: Connection, owner: str, finished: Sequence[Finish]
) -> set[uuid.UUID]:
    """Record the outcomes of the deliveries `owner` still holds the lease of (the delivery and
    its attempt, one statement for all); the ids recorded. One missing was taken over by another
    replica: nothing of it was written."""
    if not finished:
        return set()
    rows = await conn.fetch(
        """
        WITH o AS (
            SELECT * FROM unnest($2::uuid[], $3::text[], $4::text[], $5::float8[], $6::text[],
                                 $7::text[], $8::text[])
                   AS o(id, status, detail, wait_s, remote_id, url, outcome)
        ), done AS (
            UPDATE deliveries d SET status = o.status, last_error = o.detail,
                   next_attempt_at = CASE WHEN o.wait_s IS NULL THEN d.next_attempt_at
                                          ELSE now() + make_interval(secs => o.wait_s) END,
                   remote_id = coalesce(o.remote_id, d.remote_id), url = coalesce(o.url, d.url),
                   published_at = CASE WHEN o.status = 'published' THEN now()
                                       ELSE d.published_at END,
                   lease_owner = NULL, lease_until = NULL, updated_at = now()
            FROM o WHERE d.id = o.id AND d.lease_owner = $1
            RETURNING d.id
        ), attempted AS (
            UPDATE attempts a SET finished_at = now(), outcome = o.outcome, detail = o.detail,
                   remote_id = o.remote_id
            FROM o WHERE a.delivery_id = o.id AND a.finished_at IS NULL
              AND a.delivery_id IN (SELECT id FROM done)
        )
        SELECT id FROM done
        """,
        owner,
        [f.delivery_id for f in finished],
        [f.status for f in finished],
        [f.detail for f in finished],
        [f.next_attempt_in_s for f in finished],
        [f.remote_id for f in finished],
        [f.url for f in finished],
        [f.outcome for f in finished],
    )
    return {r["id"] for r in rows}


async def lock_posts(conn: Connection, post_ids: Sequence[uuid.UUID]) -> None:
    """Lock posts whose deliveries are being finished, in id order, for the caller's transaction:
    two replicas finishing the last two deliveries of one post take turns, so the second sees
    the first's and rolls the post up (counting side by side, neither would)."""
    if post_ids:
        await conn.execute(
            "SELECT 1 FROM posts WHERE id = ANY($1::uuid[]) ORDER BY id FOR UPDATE",
            sorted(set(post_ids)),
        )


async def roll_up_posts(conn: Connection, post_ids: Sequence[uuid.UUID]) -> dict[uuid.UUID, str]:
    """Set each post's status from its deliveries once they are all done (one statement for all
    the posts); the posts so rolled up, with their status."""
    if not post_ids:
        return {}
    rows = await conn.fetch(
        """
        WITH counts AS (
            SELECT post_id,
                   count(*) FILTER (WHERE status = 'published') AS published,
                   count(*) FILTER (WHERE status = 'failed') AS failed,
                   count(*) FILTER (WHERE status IN ('scheduled', 'publishing', 'unknown')) AS open
            FROM deliveries WHERE post_id = ANY($1::uuid[]) GROUP BY post_id
        ), rolled AS (
            SELECT post_id,
                   CASE WHEN open > 0 THEN NULL
                        WHEN failed = 0 THEN 'published'
                        WHEN published = 0 THEN 'failed'
                        ELSE 'partially_published' END AS status
            FROM counts
        ), updated AS (
            UPDATE posts SET status = rolled.status, updated_at = now() FROM rolled
            WHERE posts.id = rolled.post_id AND posts.status = 'scheduled'
              AND rolled.status IS NOT NULL
        )
        SELECT post_id, status FROM rolled WHERE status IS NOT NULL
        """,
        sorted(set(post_ids)),
    )
    return {r["post_id"]: str(r["status"]) for r in rows}


# --- engagement ----------------------------------------------------------------------------------


async def track_engagements(
    conn: Connection,
    published: Sequence[tuple[uuid.UUID, str, uuid.UUID]],
    first_check_in_s: float = 0.0,
) -> None:
    """Start measuring each (delivery, tenant, channel) just published, once however often
    called, the first time `first_check_in_s` from now (one statement for all)."""
    if not published:
        return
    await conn.execute(
        """
        INSERT INTO post_engagement (delivery_id, tenant_id, channel_id, published_at,
                                     next_check_at)
        SELECT p.delivery_id, p.tenant_id, p.channel_id, now(),
               now() + make_interval(secs => $4)
        FROM unnest($1::uuid[], $2::text[], $3::uuid[]) AS p(delivery_id, tenant_id, channel_id)
        ON CONFLICT (delivery_id) DO NOTHING
        """,
        [p[0] for p in published],
        [p[1] for p in published],
        [p[2] for p in published],
        first_check_in_s,
    )


async def claim_engagement(
    conn: Connection,
    owner: str,
    *,
    lease_s: float,
    limit: int,
    window_days: float,
    networks: Sequence[str],
) -> list[dict[str, Any]]:
    """Lease published posts due a measurement (published within `window_days`, on an active
    channel of one of `networks`) to `owner`; another replica skips what this one holds."""
    rows = await conn.fetch(
        """
        UPDATE post_engagement e
        SET lease_owner = $1, lease_until = now() + make_interval(secs => $2)
        FROM deliveries d, channels c
        WHERE e.delivery_id IN (
            SELECT e2.delivery_id FROM post_engagement e2
            JOIN channels c2 ON c2.id = e2.channel_id
            WHERE e2.next_check_at <= now()
              AND e2.published_at > now() - make_interval(secs => $4::float8 * 86400)
              AND (e2.lease_until IS NULL OR e2.lease_until < now())
              AND c2.status = 'active' AND c2.deleted_at IS NULL
              AND c2.network = ANY($5::text[])
            ORDER BY e2.next_check_at
            LIMIT $3
            FOR UPDATE OF e2 SKIP LOCKED
        ) AND d.id = e.delivery_id AND c.id = e.channel_id
        RETURNING e.delivery_id, e.tenant_id, e.channel_id, e.likes, e.reposts, e.replies,
                  e.views, e.followers, e.measured_at, e.failures, d.post_id, d.remote_id,
                  c.brand_id, c.network, c.config, c.credentials_encrypted
        """,
        owner,
        lease_s,
        limit,
        window_days,
        list(networks),
    )
    return [dict(r) for r in rows]


async def store_engagement(
    conn: Connection,
    delivery_id: uuid.UUID,
    owner: str,
    counters: dict[str, int | None],
    *,
    next_in_s: float,
) -> bool:
    """Keep a measurement and release the lease; False if `owner` no longer holds it."""
    done = await conn.fetchval(
        """
        UPDATE post_engagement SET likes = $3, reposts = $4, replies = $5, views = $6,
               followers = $7, measured_at = now(),
               next_check_at = now() + make_interval(secs => $8),
               failures = 0, last_error = NULL, lease_owner = NULL, lease_until = NULL
        WHERE delivery_id = $1 AND lease_owner = $2
        RETURNING true
        """,
        delivery_id,
        owner,
        counters["likes"],
        counters["reposts"],
        counters["replies"],
        counters["views"],
        counters["followers"],
        next_in_s,
    )
    return bool(done)


async def defer_engagement(
    conn: Connection,
    delivery_id: uuid.UUID,
    owner: str,
    *,
    wait_s: float | None,
    error: str | None = None,
) -> None:
    """Release a measurement unmade: look again after `wait_s` (None: never, the post is gone).
    With an `error`, it counts as a failure."""
    await conn.execute(
        """
        UPDATE post_engagement
        SET next_check_at = CASE WHEN $3::float8 IS NULL THEN NULL
                                 ELSE now() + make_interval(secs => $3) END,
            failures = failures + CASE WHEN $4::text IS NULL THEN 0 ELSE 1 END,
            last_error = coalesce($4, last_error), lease_owner = NULL, lease_until = NULL
        WHERE delivery_id = $1 AND lease_owner = $2
        """,
        delivery_id,
        owner,
        wait_s,
        error,
    )
