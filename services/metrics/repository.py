"""Every SQL statement of the metrics service. Callers own the transaction."""

from __future__ import annotations

import uuid
from collections import Counter
from collections.abc import Sequence
from datetime import UTC, date, datetime, timedelta
from typing import Any

from services.metrics.rollups import HOURLY, TOKENS, CounterKey, MentionFact
from shared.db import Connection

FactKey = tuple[str, uuid.UUID]

# --- writing: mention facts and counters ---------------------------------------------------


async def lock_mention_facts(
    conn: Connection, keys: Sequence[FactKey]
) -> dict[FactKey, MentionFact]:
    """The facts of these mentions, locked for this transaction; empty ones for mentions not seen
    yet. Keys are taken in one order so concurrent batches (mentions and triage) never deadlock."""
    ordered = sorted(set(keys), key=lambda k: (k[0], str(k[1])))
    tenants, ids = [k[0] for k in ordered], [k[1] for k in ordered]
    await conn.execute(
        """
        INSERT INTO mention_facts (tenant_id, mention_id)
        SELECT * FROM unnest($1::text[], $2::uuid[])
        ON CONFLICT DO NOTHING
        """,
        tenants,
        ids,
    )
    rows = await conn.fetch(
        """
        SELECT * FROM mention_facts
        WHERE (tenant_id, mention_id) IN (SELECT * FROM unnest($1::text[], $2::uuid[]))
        ORDER BY tenant_id, mention_id::text
        FOR UPDATE
        """,
        tenants,
        ids,
    )
    fields = MentionFact.__dataclass_fields__
    facts: dict[FactKey, MentionFact] = {}
    for r in rows:
        known: dict[str, Any] = {k: v for k, v in r.items() if k in fields}
        facts[(r["tenant_id"], r["mention_id"])] = MentionFact(**known)
    return facts


async def save_mention_facts(conn: Connection, facts: Sequence[MentionFact]) -> None:
    await conn.execute(
        """
        UPDATE mention_facts f SET
            brand_id = x.brand_id, network = x.network, kind = x.kind, language = x.language,
            author_id = x.author_id, bucket = x.bucket, replies_to_post_id = x.replies_to_post_id,
            sov = x.sov, hashtags = x.hashtags, terms = x.terms, engagement = x.engagement,
            sentiment = x.sentiment, intent = x.intent, received = x.received,
            deleted = x.deleted, updated_at = now()
        FROM jsonb_to_recordset($1::jsonb) AS x(
            tenant_id text, mention_id uuid, brand_id text, network text, kind text,
            language text, author_id text, bucket timestamptz, replies_to_post_id uuid,
            sov text[], hashtags text[], terms text[], engagement jsonb, sentiment text,
            intent text, received boolean, deleted boolean)
        WHERE (f.tenant_id, f.mention_id) = (x.tenant_id, x.mention_id)
        """,
        [
            {
                "tenant_id": f.tenant_id,
                "mention_id": str(f.mention_id),
                "brand_id": f.brand_id,
                "network": f.network,
                "kind": f.kind,
                "language": f.language,
                "author_id": f.author_id,
                "bucket": f.bucket.isoformat() if f.bucket else None,
                "replies_to_post_id": str(f.replies_to_post_id) if f.replies_to_post_id else None,
                "sov": f.sov,
                "hashtags": f.hashtags,
                "terms": f.terms,
                "engagement": f.engagement,
                "sentiment": f.sentiment,
                "intent": f.intent,
                "received": f.received,
                "deleted": f.deleted,
            }
            for f in facts
        ],
    )


async def add_counts(conn: Connection, delta: Counter[CounterKey]) -> None:
    """Add (or take away) counts: `n = n + excluded.n`, in key order so batches never deadlock."""
    hourly = sorted((k[1:], n) for k, n in delta.items() if k[0] == HOURLY)
    tokens = sorted((k[1:], n) for k, n in delta.items() if k[0] == TOKENS)
    if hourly:
        cols = list(zip(*(k for k, _ in hourly), strict=True))
        await conn.execute(
            """
            INSERT INTO hourly (tenant_id, brand_id, metric, dimension, bucket, network, value, n)
            SELECT * FROM unnest($1::text[], $2::text[], $3::text[], $4::text[],
                                 $5::timestamptz[], $6::text[], $7::text[], $8::bigint[])
            ON CONFLICT (tenant_id, brand_id, metric, dimension, bucket, network, value)
            DO UPDATE SET n = hourly.n + excluded.n
            """,
            *[list(c) for c in cols],
            [n for _, n in hourly],
        )
    if tokens:
        cols = list(zip(*(k for k, _ in tokens), strict=True))
        await conn.execute(
            """
            INSERT INTO tokens (tenant_id, brand_id, kind, bucket, token, n)
            SELECT * FROM unnest($1::text[], $2::text[], $3::text[], $4::timestamptz[],
                                 $5::text[], $6::bigint[])
            ON CONFLICT (tenant_id, brand_id, kind, bucket, token)
            DO UPDATE SET n = tokens.n + excluded.n
            """,
            *[list(c) for c in cols],
            [n for _, n in tokens],
        )
    if tokens:
        # The same counts by UTC day (see migration 0004): one row per day instead of 24.
        daily: Counter[tuple[str, str, str, date, str]] = Counter()
        for (tenant, brand, kind, bucket, token), n in tokens:
            daily[(tenant, brand, kind, bucket.astimezone(UTC).date(), token)] += n
        days = sorted(daily.items())
        cols = list(zip(*(k for k, _ in days), strict=True))
        await conn.execute(
            """
            INSERT INTO tokens_daily (tenant_id, brand_id, kind, day, token, n)
            SELECT * FROM unnest($1::text[], $2::text[], $3::text[], $4::date[], $5::text[],
                                 $6::bigint[])
            ON CONFLICT (tenant_id, brand_id, kind, day, token)
            DO UPDATE SET n = tokens_daily.n + excluded.n
            """,
            *[list(c) for c in cols],
            [n for _, n in days],
        )
        shrunk_days = [k for k, n in days if n < 0]
        if shrunk_days:
            cols = list(zip(*shrunk_days, strict=True))
            await conn.execute(
                """
                DELETE FROM tokens_daily x
                USING unnest($1::text[], $2::text[], $3::text[], $4::date[], $5::text[])
                      AS k(t, b, kind, day, token)
                WHERE (x.tenant_id, x.brand_id, x.kind, x.day, x.token)
                      = (k.t, k.b, k.kind, k.day, k.token)
                  AND x.n = 0
                """,
                *[list(c) for c in cols],
            )
    shrunk_hourly = [k for k, n in hourly if n < 0]
    if shrunk_hourly:
        # A key back at zero (a deleted mention, an edit) would only slow the range scans.
        cols = list(zip(*shrunk_hourly, strict=True))
        await conn.execute(
            """
            DELETE FROM hourly h
            USING unnest($1::text[], $2::text[], $3::text[], $4::text[], $5::timestamptz[],
                         $6::text[], $7::text[]) AS k(t, b, m, d, at, net, v)
            WHERE (h.tenant_id, h.brand_id, h.metric, h.dimension, h.bucket, h.network, h.value)
                  = (k.t, k.b, k.m, k.d, k.at, k.net, k.v)
              AND h.n = 0
            """,
            *[list(c) for c in cols],
        )
    shrunk_tokens = [k for k, n in tokens if n < 0]
    if shrunk_tokens:
        cols = list(zip(*shrunk_tokens, strict=True))
        await conn.execute(
            """
            DELETE FROM tokens x
            USING unnest($1::text[], $2::text[], $3::text[], $4::timestamptz[], $5::text[])
                  AS k(t, b, kind, at, token)
            WHERE (x.tenant_id, x.brand_id, x.kind, x.bucket, x.token)
                  = (k.t, k.b, k.kind, k.at, k.token)
              AND x.n = 0
            """,
            *[list(c) for c in cols],
        )


# --- writing: inbox ------------------------------------------------------------------------


async def upsert_conversations(conn: Connection, rows: Sequence[dict[str, Any]]) -> None:
    """Each conversation's latest state; an older event never overwrites a newer one."""
    await conn.execute(
        """
        INSERT INTO conversations (tenant_id, conversation_id, brand_id, network, status, level,
                                   priority, assignee_id, team_id, occurred_at)
        SELECT tenant_id, conversation_id, brand_id, network, status, level, priority,
               assignee_id, team_id, occurred_at
        FROM jsonb_to_recordset($1::jsonb) AS x(
            tenant_id text, conversation_id uuid, brand_id text, network text, status text,
            level text, priority integer, assignee_id text, team_id text, occurred_at timestamptz)
        ORDER BY tenant_id, conversation_id, occurred_at
        ON CONFLICT (tenant_id, conversation_id) DO UPDATE SET
            status = excluded.status, level = excluded.level, priority = excluded.priority,
            assignee_id = excluded.assignee_id, team_id = excluded.team_id,
            occurred_at = excluded.occurred_at
        WHERE conversations.occurred_at <= excluded.occurred_at
        """,
        rows,
    )


async def insert_responses(conn: Connection, rows: Sequence[dict[str, Any]]) -> None:
    await conn.execute(
        """
        INSERT INTO responses (event_id, tenant_id, brand_id, network, conversation_id,
                               replied_at, response_kind, response_s, first_response_s,
                               member_id, team_id, sla_state)
        SELECT * FROM jsonb_to_recordset($1::jsonb) AS x(
            event_id uuid, tenant_id text, brand_id text, network text, conversation_id uuid,
            replied_at timestamptz, response_kind text, response_s double precision,
            first_response_s double precision, member_id text, team_id text, sla_state text)
        ON CONFLICT DO NOTHING
        """,
        rows,
    )


async def insert_breaches(conn: Connection, rows: Sequence[dict[str, Any]]) -> None:
    await conn.execute(
        """
        INSERT INTO sla_breaches (event_id, tenant_id, brand_id, network, conversation_id,
                                  breached_at, member_id, team_id)
        SELECT * FROM jsonb_to_recordset($1::jsonb) AS x(
            event_id uuid, tenant_id text, brand_id text, network text, conversation_id uuid,
            breached_at timestamptz, member_id text, team_id text)
        ON CONFLICT DO NOTHING
        """,
        rows,
    )


# --- writing: publishing -------------------------------------------------------------------


async def remember_schedules(conn: Connection, rows: Sequence[dict[str, Any]]) -> None:
    await conn.execute(
        """
        INSERT INTO post_schedules (tenant_id, post_id, brand_id, scheduled_at, cancelled,
                                    occurred_at)
        SELECT * FROM jsonb_to_recordset($1::jsonb) AS x(
            tenant_id text, post_id uuid, brand_id text, scheduled_at timestamptz,
            cancelled boolean, occurred_at timestamptz)
        ON CONFLICT (tenant_id, post_id) DO UPDATE SET
            scheduled_at = excluded.scheduled_at, cancelled = excluded.cancelled,
            occurred_at = excluded.occurred_at
        WHERE post_schedules.occurred_at <= excluded.occurred_at
        """,
        rows,
    )


async def remember_channel_schedules(conn: Connection, rows: Sequence[dict[str, Any]]) -> None:
    """Each post's latest scheduled time per channel; an older event never overwrites a newer."""
    await conn.execute(
        """
        INSERT INTO channel_schedules (tenant_id, post_id, channel_id, brand_id, network,
                                       scheduled_at, cancelled, occurred_at)
        SELECT tenant_id, post_id, channel_id, brand_id, network, scheduled_at, cancelled,
               occurred_at
        FROM jsonb_to_recordset($1::jsonb) AS x(
            tenant_id text, post_id uuid, channel_id uuid, brand_id text, network text,
            scheduled_at timestamptz, cancelled boolean, occurred_at timestamptz)
        ORDER BY tenant_id, post_id, channel_id
        ON CONFLICT (tenant_id, post_id, channel_id) DO UPDATE SET
            scheduled_at = excluded.scheduled_at, cancelled = excluded.cancelled,
            network = excluded.network, occurred_at = excluded.occurred_at
        WHERE channel_schedules.occurred_at <= excluded.occurred_at
        """,
        rows,
    )


ScheduleKey = tuple[str, uuid.UUID, uuid.UUID | None]


async def cancel_schedules(conn: Connection, keys: Sequence[ScheduleKey]) -> None:
    """A cancellation naming a channel cancels that channel's schedule; one without cancels the
    post's and every channel's."""
    tenants, posts = [k[0] for k in keys], [k[1] for k in keys]
    channels = [k[2] for k in keys]
    await conn.execute(
        """
        UPDATE post_schedules SET cancelled = true
        WHERE (tenant_id, post_id) IN (
            SELECT t, p FROM unnest($1::text[], $2::uuid[], $3::uuid[]) AS k(t, p, c)
            WHERE c IS NULL)
        """,
        tenants,
        posts,
        channels,
    )
    await conn.execute(
        """
        UPDATE channel_schedules s SET cancelled = true
        FROM unnest($1::text[], $2::uuid[], $3::uuid[]) AS k(t, p, c)
        WHERE (s.tenant_id, s.post_id) = (k.t, k.p) AND (k.c IS NULL OR s.channel_id = k.c)
        """,
        tenants,
        posts,
        channels,
    )


async def scheduled_times(
    conn: Connection, keys: Sequence[ScheduleKey]
) -> dict[ScheduleKey, datetime]:
    """The remembered due time of each (post, channel): the channel's schedule, else the post's."""
    rows = await conn.fetch(
        """
        SELECT k.t, k.p, k.c, coalesce(c.scheduled_at, p.scheduled_at) AS scheduled_at
        FROM unnest($1::text[], $2::uuid[], $3::uuid[]) AS k(t, p, c)
        LEFT JOIN channel_schedules c ON (c.tenant_id, c.post_id, c.channel_id) = (k.t, k.p, k.c)
        LEFT JOIN post_schedules p ON (p.tenant_id, p.post_id) = (k.t, k.p)
        """,
        [k[0] for k in keys],
        [k[1] for k in keys],
        [k[2] for k in keys],
    )
    return {(r["t"], r["p"], r["c"]): r["scheduled_at"] for r in rows if r["scheduled_at"]}


async def insert_outcomes(conn: Connection, rows: Sequence[dict[str, Any]]) -> None:
    await conn.execute(
        """
        INSERT INTO post_outcomes (event_id, tenant_id, brand_id, post_id, channel_id, network,
                                   outcome, at, external_id, url, scheduled_at, lateness_s, error)
        SELECT * FROM jsonb_to_recordset($1::jsonb) AS x(
            event_id uuid, tenant_id text, brand_id text, post_id uuid, channel_id uuid,
            network text, outcome text, at timestamptz, external_id text, url text,
            scheduled_at timestamptz, lateness_s double precision, error text)
        ON CONFLICT DO NOTHING
        """,
        rows,
    )


# --- writing: engagement and audience ----------------------------------------------------


async def upsert_engagement(conn: Connection, rows: Sequence[dict[str, Any]]) -> None:
    """The latest counters per post and channel: only a strictly newer measurement replaces."""
    await conn.execute(
        """
        INSERT INTO post_engagement (tenant_id, post_id, channel_id, brand_id, network,
                                     external_id, likes, reposts, replies, views, followers,
                                     measured_at)
        SELECT * FROM jsonb_to_recordset($1::jsonb) AS x(
            tenant_id text, post_id uuid, channel_id uuid, brand_id text, network text,
            external_id text, likes bigint, reposts bigint, replies bigint, views bigint,
            followers bigint, measured_at timestamptz)
        ORDER BY tenant_id, post_id, channel_id
        ON CONFLICT (tenant_id, post_id, channel_id) DO UPDATE SET
            brand_id = excluded.brand_id, network = excluded.network,
            external_id = excluded.external_id, likes = excluded.likes,
            reposts = excluded.reposts, replies = excluded.replies, views = excluded.views,
            followers = excluded.followers, measured_at = excluded.measured_at
        WHERE post_engagement.measured_at < excluded.measured_at
        """,
        rows,
    )


async def upsert_audience(conn: Connection, rows: Sequence[dict[str, Any]]) -> None:
    """Each channel's last followers count of the UTC hour: only a newer measurement replaces."""
    await conn.execute(
        """
        INSERT INTO audience_hourly (tenant_id, brand_id, channel_id, bucket, network, followers,
                                     measured_at)
        SELECT * FROM jsonb_to_recordset($1::jsonb) AS x(
            tenant_id text, brand_id text, channel_id uuid, bucket timestamptz, network text,
            followers bigint, measured_at timestamptz)
        ORDER BY tenant_id, brand_id, channel_id, bucket
        ON CONFLICT (tenant_id, brand_id, channel_id, bucket) DO UPDATE SET
            network = excluded.network, followers = excluded.followers,
            measured_at = excluded.measured_at
        WHERE audience_hourly.measured_at < excluded.measured_at
        """,
        rows,
    )


# --- brand settings -----------------------------------------------------------------------


async def brand_timezone(conn: Connection, tenant_id: str, brand_id: str) -> str | None:
    zone: str | None = await conn.fetchval(
        "SELECT timezone FROM brand_reporting WHERE tenant_id = $1 AND brand_id = $2",
        tenant_id,
        brand_id,
    )
    return zone


async def set_brand_timezone(conn: Connection, tenant_id: str, brand_id: str, zone: str) -> None:
    await conn.execute(
        """
        INSERT INTO brand_reporting (tenant_id, brand_id, timezone) VALUES ($1, $2, $3)
        ON CONFLICT (tenant_id, brand_id) DO UPDATE SET timezone = $3, updated_at = now()
        """,
        tenant_id,
        brand_id,
        zone,
    )


# --- reading --------------------------------------------------------------------------------

_LOCAL_BUCKET = """
    CASE WHEN $unit = 'hour' THEN bucket
         ELSE date_trunc($unit, bucket AT TIME ZONE $tz) AT TIME ZONE $tz END
"""


def _local_bucket(unit_param: str, tz_param: str) -> str:
    return _LOCAL_BUCKET.replace("$unit", unit_param).replace("$tz", tz_param)


async def series(
    conn: Connection,
    *,
    tenant_id: str,
    brand_id: str,
    metric: str,
    dimension: str,
    start: datetime,
    end: datetime,
    unit: str,
    tz: str,
    network: str | None,
) -> list[tuple[datetime, str, int]]:
    """Counts per local bucket start and dimension value, for hour buckets in [start, end)."""
    rows = await conn.fetch(
        f"""
        SELECT {_local_bucket("$7", "$8")} AS local_start, value, sum(n)::bigint AS n
        FROM hourly
        WHERE tenant_id = $1 AND brand_id = $2 AND metric = $3 AND dimension = $4
          AND bucket >= $5 AND bucket < $6 AND ($9::text IS NULL OR network = $9)
        GROUP BY 1, 2 ORDER BY 1, 2
        """,
        tenant_id,
        brand_id,
        metric,
        dimension,
        start,
        end,
        unit,
        tz,
        network,
    )
    return [(r["local_start"], r["value"], int(r["n"])) for r in rows]


async def unique_author_series(
    conn: Connection,
    *,
    tenant_id: str,
    brand_id: str,
    start: datetime,
    end: datetime,
    unit: str,
    tz: str,
) -> list[tuple[datetime, str, int]]:
    rows = await conn.fetch(
        f"""
        SELECT {_local_bucket("$5", "$6")} AS local_start, count(DISTINCT token) AS n
        FROM tokens
        WHERE tenant_id = $1 AND brand_id = $2 AND kind = 'author'
          AND bucket >= $3 AND bucket < $4
        GROUP BY 1 ORDER BY 1
        """,
        tenant_id,
        brand_id,
        start,
        end,
        unit,
        tz,
    )
    return [(r["local_start"], "", int(r["n"])) for r in rows]


async def unique_authors(
    conn: Connection, tenant_id: str, brand_id: str, start: datetime, end: datetime
) -> int:
    n = await conn.fetchval(
        """
        SELECT count(DISTINCT token) FROM tokens
        WHERE tenant_id = $1 AND brand_id = $2 AND kind = 'author'
          AND bucket >= $3 AND bucket < $4
        """,
        tenant_id,
        brand_id,
        start,
        end,
    )
    return int(n or 0)


async def totals(
    conn: Connection,
    *,
    tenant_id: str,
    brand_id: str,
    metric: str,
    dimension: str,
    start: datetime,
    end: datetime,
) -> dict[str, int]:
    rows = await conn.fetch(
        """
        SELECT value, sum(n)::bigint AS n FROM hourly
        WHERE tenant_id = $1 AND brand_id = $2 AND metric = $3 AND dimension = $4
          AND bucket >= $5 AND bucket < $6
        GROUP BY value ORDER BY value
        """,
        tenant_id,
        brand_id,
        metric,
        dimension,
        start,
        end,
    )
    return {r["value"]: int(r["n"]) for r in rows}


async def top_tokens(
    conn: Connection,
    *,
    tenant_id: str,
    brand_id: str,
    kind: str,
    start: datetime,
    end: datetime,
    limit: int,
) -> list[tuple[str, int]]:
    # Whole UTC days inside the period from tokens_daily, the partial edges from the hours.
    first_day = (start.astimezone(UTC) + timedelta(days=1) - timedelta(microseconds=1)).date()
    end_day = end.astimezone(UTC).date()
    if end_day <= first_day:
        first_day = end_day = start.astimezone(UTC).date()  # no whole day: hours only
    day_start = datetime.combine(first_day, datetime.min.time(), UTC)
    day_end = datetime.combine(end_day, datetime.min.time(), UTC)
    rows = await conn.fetch(
        """
        SELECT token, sum(n)::bigint AS n FROM (
            SELECT token, n FROM tokens_daily
            WHERE tenant_id = $1 AND brand_id = $2 AND kind = $3 AND day >= $6 AND day < $7
            UNION ALL
            SELECT token, n FROM tokens
            WHERE tenant_id = $1 AND brand_id = $2 AND kind = $3
              AND bucket >= $4 AND bucket < least($5::timestamptz, $8::timestamptz)
            UNION ALL
            SELECT token, n FROM tokens
            WHERE tenant_id = $1 AND brand_id = $2 AND kind = $3
              AND bucket >= greatest($4::timestamptz, $9::timestamptz) AND bucket < $5
        ) counts
        GROUP BY token ORDER BY n DESC, token LIMIT $10
        """,
        tenant_id,
        brand_id,
        kind,
        start,
        end,
        first_day,
        end_day,
        day_start,
        day_end,
        limit,
    )
    return [(r["token"], int(r["n"])) for r in rows]


async def top_posts(
    conn: Connection,
    *,
    tenant_id: str,
    brand_id: str,
    start: datetime,
    end: datetime,
    limit: int,
) -> list[dict[str, Any]]:
    """Our posts by replies heard in the period, with where they were published."""
    rows = await conn.fetch(
        """
        WITH top AS (
            SELECT value AS post_id, sum(n)::bigint AS replies FROM hourly
            WHERE tenant_id = $1 AND brand_id = $2 AND metric = 'post_replies'
              AND dimension = 'post' AND bucket >= $3 AND bucket < $4
            GROUP BY value ORDER BY replies DESC, value LIMIT $5
        )
        SELECT top.post_id, top.replies, o.network, o.url, o.external_id, o.at AS published_at
        FROM top
        LEFT JOIN LATERAL (
            SELECT network, url, external_id, at FROM post_outcomes
            WHERE tenant_id = $1 AND post_id = top.post_id::uuid AND outcome = 'published'
            ORDER BY at LIMIT 1
        ) o ON true
        ORDER BY top.replies DESC, top.post_id
        """,
        tenant_id,
        brand_id,
        start,
        end,
        limit,
    )
    return [dict(r) for r in rows]


_GROUPS = {"brand": "''", "team": "coalesce(team_id, '')", "member": "coalesce(member_id, '')"}


async def response_stats(
    conn: Connection,
    *,
    tenant_id: str,
    brand_id: str,
    start: datetime,
    end: datetime,
    by: str,
    limit: int,
    after: str | None,
) -> list[dict[str, Any]]:
    """First and next response times (count, median, p90) and SLA met / breached per group."""
    group = _GROUPS[by]
    rows = await conn.fetch(
        f"""
        WITH r AS (
            SELECT {group} AS key, response_kind, response_s, first_response_s, sla_state
            FROM responses
            WHERE tenant_id = $1 AND brand_id = $2 AND replied_at >= $3 AND replied_at < $4
        ), b AS (
            SELECT {group} AS key, count(*) AS breached FROM sla_breaches
            WHERE tenant_id = $1 AND brand_id = $2 AND breached_at >= $3 AND breached_at < $4
            GROUP BY 1
        ), s AS (
            SELECT key,
                   count(first_response_s) AS first_count,
                   percentile_cont(0.5) WITHIN GROUP (ORDER BY first_response_s) AS first_median,
                   percentile_cont(0.9) WITHIN GROUP (ORDER BY first_response_s) AS first_p90,
                   count(*) FILTER (WHERE response_kind = 'next') AS next_count,
                   percentile_cont(0.5) WITHIN GROUP (ORDER BY response_s)
                       FILTER (WHERE response_kind = 'next') AS next_median,
                   percentile_cont(0.9) WITHIN GROUP (ORDER BY response_s)
                       FILTER (WHERE response_kind = 'next') AS next_p90,
                   count(*) AS replies,
                   count(*) FILTER (WHERE sla_state = 'met') AS met
            FROM r GROUP BY key
        )
        SELECT coalesce(s.key, b.key) AS key, coalesce(s.first_count, 0) AS first_count,
               s.first_median, s.first_p90, coalesce(s.next_count, 0) AS next_count,
               s.next_median, s.next_p90, coalesce(s.replies, 0) AS replies,
               coalesce(s.met, 0) AS met, coalesce(b.breached, 0) AS breached
        FROM s FULL JOIN b ON s.key = b.key
        WHERE $6::text IS NULL OR coalesce(s.key, b.key) > $6
        ORDER BY 1 LIMIT $5
        """,
        tenant_id,
        brand_id,
        start,
        end,
        limit,
        after,
    )
    return [dict(r) for r in rows]


async def backlog(conn: Connection, tenant_id: str, brand_id: str) -> list[dict[str, Any]]:
    rows = await conn.fetch(
        """
        SELECT status, level, count(*)::bigint AS n FROM conversations
        WHERE tenant_id = $1 AND brand_id = $2 AND status <> 'closed'
        GROUP BY status, level ORDER BY status, level
        """,
        tenant_id,
        brand_id,
    )
    return [dict(r) for r in rows]


async def publishing_stats(
    conn: Connection,
    tenant_id: str,
    brand_id: str,
    start: datetime,
    end: datetime,
    on_time_s: float,
) -> list[dict[str, Any]]:
    """Per channel: its schedules due in the period (per-channel `post.scheduled`), outcomes,
    on time / late and lateness."""
    rows = await conn.fetch(
        """
        WITH o AS (
            SELECT network, channel_id,
                   count(*) FILTER (WHERE outcome = 'published') AS published,
                   count(*) FILTER (WHERE outcome = 'failed') AS failed,
                   count(*) FILTER (WHERE outcome = 'published' AND lateness_s <= $5) AS on_time,
                   count(*) FILTER (WHERE outcome = 'published' AND lateness_s > $5) AS late,
                   percentile_cont(0.5) WITHIN GROUP (ORDER BY lateness_s)
                       FILTER (WHERE outcome = 'published') AS lateness_median_s,
                   percentile_cont(0.9) WITHIN GROUP (ORDER BY lateness_s)
                       FILTER (WHERE outcome = 'published') AS lateness_p90_s
            FROM post_outcomes
            WHERE tenant_id = $1 AND brand_id = $2 AND at >= $3 AND at < $4
            GROUP BY network, channel_id
        ), s AS (
            SELECT channel_id, max(network) AS network, count(*) AS scheduled
            FROM channel_schedules
            WHERE tenant_id = $1 AND brand_id = $2 AND NOT cancelled
              AND scheduled_at >= $3 AND scheduled_at < $4
            GROUP BY channel_id
        )
        SELECT coalesce(o.network, s.network) AS network,
               coalesce(o.channel_id, s.channel_id) AS channel_id,
               coalesce(s.scheduled, 0) AS scheduled, coalesce(o.published, 0) AS published,
               coalesce(o.failed, 0) AS failed, coalesce(o.on_time, 0) AS on_time,
               coalesce(o.late, 0) AS late, o.lateness_median_s, o.lateness_p90_s
        FROM o FULL JOIN s ON o.channel_id = s.channel_id
        ORDER BY 1, 2
        """,
        tenant_id,
        brand_id,
        start,
        end,
        on_time_s,
    )
    return [dict(r) for r in rows]


async def scheduled_count(
    conn: Connection, tenant_id: str, brand_id: str, start: datetime, end: datetime
) -> int:
    """Posts with a schedule due in the period: per channel when the events named channels, else
    the post's own latest scheduled time."""
    n = await conn.fetchval(
        """
        SELECT count(*) FROM (
            SELECT post_id FROM channel_schedules
            WHERE tenant_id = $1 AND brand_id = $2 AND NOT cancelled
              AND scheduled_at >= $3 AND scheduled_at < $4
            UNION
            SELECT post_id FROM post_schedules p
            WHERE tenant_id = $1 AND brand_id = $2 AND NOT cancelled
              AND scheduled_at >= $3 AND scheduled_at < $4
              AND NOT EXISTS (SELECT 1 FROM channel_schedules c
                              WHERE c.tenant_id = p.tenant_id AND c.post_id = p.post_id)
        ) scheduled
        """,
        tenant_id,
        brand_id,
        start,
        end,
    )
    return int(n or 0)


_ENGAGEMENT_ORDER = {
    "published": "p.at DESC, p.post_id, p.channel_id",
    "engagement": "e.engagement DESC NULLS LAST, p.at DESC, p.post_id, p.channel_id",
}

_PUBLISHED = """
    WITH p AS (
        SELECT DISTINCT ON (post_id, channel_id) post_id, channel_id, network, external_id, url,
               at
        FROM post_outcomes
        WHERE tenant_id = $1 AND brand_id = $2 AND outcome = 'published' AND channel_id IS NOT NULL
          AND at >= $3 AND at < $4 AND ($5::text IS NULL OR network = $5)
        ORDER BY post_id, channel_id, at DESC
    )
"""


async def post_engagement(
    conn: Connection,
    *,
    tenant_id: str,
    brand_id: str,
    start: datetime,
    end: datetime,
    network: str | None,
    order: str,
    limit: int,
) -> list[dict[str, Any]]:
    """Our posts published in the period (per channel; a series' latest run) with their latest
    counters, null until a measurement arrived."""
    rows = await conn.fetch(
        f"""
        {_PUBLISHED}
        SELECT p.post_id, p.channel_id, p.network, coalesce(e.external_id, p.external_id)
                   AS external_id,
               p.url, p.at AS published_at, e.likes, e.reposts, e.replies, e.views,
               e.engagement, e.followers, e.measured_at
        FROM p
        LEFT JOIN post_engagement e
               ON (e.tenant_id, e.post_id, e.channel_id) = ($1, p.post_id, p.channel_id)
        ORDER BY {_ENGAGEMENT_ORDER[order]}
        LIMIT $6
        """,
        tenant_id,
        brand_id,
        start,
        end,
        network,
        limit,
    )
    return [dict(r) for r in rows]


async def engagement_totals(
    conn: Connection,
    *,
    tenant_id: str,
    brand_id: str,
    start: datetime,
    end: datetime,
    network: str | None,
) -> dict[str, Any]:
    """Sums over the posts published in the period, and the mean of their engagement rates."""
    row = await conn.fetchrow(
        f"""
        {_PUBLISHED}
        SELECT count(*) AS posts, count(e.measured_at) AS measured,
               coalesce(sum(e.likes), 0) AS likes, coalesce(sum(e.reposts), 0) AS reposts,
               coalesce(sum(e.replies), 0) AS replies, coalesce(sum(e.views), 0) AS views,
               coalesce(sum(e.engagement), 0) AS engagement,
               avg(e.engagement::double precision / e.followers)
                   FILTER (WHERE e.followers > 0) AS rate
        FROM p
        LEFT JOIN post_engagement e
               ON (e.tenant_id, e.post_id, e.channel_id) = ($1, p.post_id, p.channel_id)
        """,
        tenant_id,
        brand_id,
        start,
        end,
        network,
    )
    return dict(row) if row else {}


async def audience(
    conn: Connection,
    *,
    tenant_id: str,
    brand_id: str,
    start: datetime,
    end: datetime,
    unit: str,
    tz: str,
    channel_id: uuid.UUID | None,
) -> list[dict[str, Any]]:
    """Per channel: the last measurement of each bucket measured in [start, end) (UTC hours, or
    days/weeks/months from local midnight in `tz`) as arrays in bucket order, the network of the
    period's last measurement and the followers of its first. Reduced here, one row a channel:
    a 30-day hour series is 1,440 measurements, and reducing or even decoding them row by row
    cost more in Python than the query (docs/benchmarks.md)."""
    rows = await conn.fetch(
        """
        SELECT channel_id, (array_agg(network ORDER BY start DESC))[1] AS network,
               min(first) AS first, array_agg(start ORDER BY start) AS starts,
               array_agg(followers ORDER BY start) AS followers,
               array_agg(measured_at ORDER BY start) AS measured
        FROM (
            SELECT DISTINCT ON (channel_id, start) channel_id, start, network, followers,
                   measured_at,
                   first_value(followers) OVER (PARTITION BY channel_id ORDER BY measured_at)
                       AS first
            FROM (
                SELECT channel_id, network, followers, measured_at, bucket,
                       date_trunc($6, measured_at, CASE WHEN $6 = 'hour' THEN 'UTC' ELSE $7 END)
                           AS start
                FROM audience_hourly
                WHERE tenant_id = $1 AND brand_id = $2
                  AND bucket >= date_trunc('hour', $3::timestamptz) AND bucket < $4
                  AND measured_at >= $3 AND measured_at < $4
                  AND ($5::uuid IS NULL OR channel_id = $5)
            ) m
            ORDER BY channel_id, start, measured_at DESC, bucket DESC
        ) last_per_bucket
        GROUP BY channel_id
        """,
        tenant_id,
        brand_id,
        start,
        end,
        channel_id,
        unit,
        tz,
    )
    return [dict(r) for r in rows]
