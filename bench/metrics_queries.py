"""Analytics query latency with N mentions' worth of rollups: `python -m bench.metrics_queries`.

Builds the metrics schema in a throwaway database on the dev Postgres, fills the rollup tables
with rows equivalent to `--mentions` mentions (generated server-side with generate_series; see
docs/metrics.md for the equivalence), then times every API and dashboard query shape on random
brands and 30-day windows. Drops the database at the end.
"""

from __future__ import annotations

import argparse
import asyncio
import json
import math
import random
import statistics
import time
import uuid
from collections.abc import Awaitable, Callable
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any
from zoneinfo import ZoneInfo

import asyncpg

from devstack import state
from services.metrics import analytics, repository
from services.metrics.periods import Period, Unit
from services.metrics.rollups import ON_TIME_S

MIGRATIONS = Path(__file__).resolve().parents[1] / "services/metrics/migrations"
RESULTS = Path(__file__).with_name("results") / "metrics_queries.json"
TENANTS, BRANDS_PER_TENANT, DAYS = 10, 10, 365
START = datetime(2025, 11, 1, tzinfo=UTC)
BERLIN = ZoneInfo("Europe/Berlin")


def _fill_sql(per_hour: int) -> list[str]:
    """Rollup rows for every tenant, brand and hour of the year: `per_hour` mentions a brand-hour,
    split over 3 sentiments, 3 intents, 2 languages, 2 kinds, brand + 2 competitors; the tokens
    of each hour: its authors (per_hour distinct of a 50,000 pool), 4 hashtags of 200, 10 terms
    of 2,000; one response per 10 mentions, one conversation per 4, one post per brand-day on
    each of the brand's 2 channels with its schedule and latest engagement, and each channel's
    followers every hour."""
    grid = f"""
        FROM generate_series(1, {TENANTS}) t, generate_series(1, {BRANDS_PER_TENANT}) b,
             generate_series(0, {DAYS * 24 - 1}) h
    """
    hour = f"'{START.isoformat()}'::timestamptz + h * interval '1 hour'"
    # Deterministic ids, so a post's outcome, schedule and engagement rows meet.
    post = "md5(t || '-' || b || '-' || h || '-' || c)::uuid"
    channel = "md5(t || '-' || b || '-' || c)::uuid"
    network = "CASE WHEN c = 1 THEN 'mastodon' ELSE 'bluesky' END"
    splits = [
        ("all", ["''"], [1.0]),
        ("sentiment", ["'positive'", "'neutral'", "'negative'"], [0.4, 0.4, 0.2]),
        ("intent", ["'question'", "'complaint'", "'praise'"], [0.3, 0.3, 0.4]),
        ("language", ["'en'", "'ru'"], [0.6, 0.4]),
        ("kind", ["'mention'", "'comment'"], [0.8, 0.2]),
        ("sov", ["'brand'", "'competitor:Globex'", "'competitor:Initech'"], [0.6, 0.25, 0.15]),
    ]
    statements = []
    for dimension, values, shares in splits:
        for value, share in zip(values, shares, strict=True):
            n = max(1, round(per_hour * share))
            statements.append(
                f"""INSERT INTO hourly SELECT 't' || t, 'b' || b, 'mentions', '{dimension}',
                    {hour}, 'mastodon', {value}, {n} {grid}"""
            )
    for kind, distinct, pool in (
        ("author", per_hour, 50_000),
        ("hashtag", 4, 200),
        ("term", 10, 2000),
    ):
        statements.append(
            f"""INSERT INTO tokens SELECT 't' || t, 'b' || b, '{kind}', {hour},
                '{kind}' || ((h * 7919 + b * 104729 + k * 1299709) % {pool}), 1 + (k % 3)
                {grid}, generate_series(1, {distinct}) k"""
        )
    responses = max(1, per_hour // 10)
    statements += [
        f"""INSERT INTO responses SELECT gen_random_uuid(), 't' || t, 'b' || b, 'mastodon',
            gen_random_uuid(), {hour} + k * interval '1 minute',
            CASE WHEN k % 2 = 0 THEN 'first' ELSE 'next' END, 30 + (h * k) % 3600,
            CASE WHEN k % 2 = 0 THEN 30 + (h * k) % 3600 END, 'm' || (k % 8), 'team' || (k % 2),
            CASE WHEN k % 5 = 0 THEN 'breached' ELSE 'met' END
            {grid}, generate_series(1, {responses}) k""",
        f"""INSERT INTO conversations SELECT 't' || t, gen_random_uuid(), 'b' || b, 'mastodon',
            (ARRAY['new','open','pending','snoozed','closed','closed','closed','closed'])
                [1 + k % 8],
            (ARRAY['low','normal','high','urgent'])[1 + (h + k) % 4], k % 100, NULL, NULL, {hour}
            {grid}, generate_series(1, {max(1, per_hour // 4)}) k""",
        f"""INSERT INTO post_outcomes SELECT gen_random_uuid(), 't' || t, 'b' || b,
            {post}, {channel}, {network},
            CASE WHEN h % 240 = 0 THEN 'failed' ELSE 'published' END, {hour}, 'x' || h, NULL,
            {hour}, (h % 7) * 20, NULL {grid}, generate_series(1, 2) c WHERE h % 24 = 9""",
        f"""INSERT INTO post_schedules SELECT 't' || t, gen_random_uuid(), 'b' || b, {hour},
            false, {hour} {grid} WHERE h % 24 = 9""",
        f"""INSERT INTO channel_schedules SELECT 't' || t, {post}, {channel}, 'b' || b,
            {network}, {hour}, false, {hour} {grid}, generate_series(1, 2) c WHERE h % 24 = 9""",
        f"""INSERT INTO post_engagement (tenant_id, post_id, channel_id, brand_id, network,
            external_id, likes, reposts, replies, views, followers, measured_at)
            SELECT 't' || t, {post}, {channel}, 'b' || b, {network},
            'x' || h, (h * 7 + b) % 300, (h + b) % 40, (h * 3 + c) % 60, 1000 + h % 5000,
            10000 + h + c * 500, {hour} + interval '2 days'
            {grid}, generate_series(1, 2) c WHERE h % 24 = 9""",
        f"""INSERT INTO audience_hourly SELECT 't' || t, 'b' || b, {channel}, {hour}, {network},
            10000 + h + c * 500, {hour} + interval '50 minutes' {grid}, generate_series(1, 2) c""",
        f"""INSERT INTO hourly SELECT 't' || t, 'b' || b, 'post_replies', 'post', {hour},
            'mastodon', gen_random_uuid()::text, 1 + h % 5 {grid} WHERE h % 6 = 0""",
        """INSERT INTO tokens_daily SELECT tenant_id, brand_id, kind,
            (bucket AT TIME ZONE 'UTC')::date, token, sum(n) FROM tokens GROUP BY 1, 2, 3, 4, 5""",
        # Steady state: autovacuum keeps the visibility map of settled rollup pages current,
        # which the index-only scans of the token tables rely on.
        "VACUUM ANALYZE",
    ]
    return statements


def _pct(samples: list[float], q: float) -> float:
    ordered = sorted(samples)
    return ordered[min(len(ordered) - 1, int(q * len(ordered)))]


async def _measure(
    name: str, runs: int, query: Callable[[], Awaitable[Any]]
) -> dict[str, float | int | str]:
    for _ in range(5):
        await query()  # warm the cache as a running dashboard would
    samples = []
    for _ in range(runs):
        started = time.perf_counter()
        await query()
        samples.append((time.perf_counter() - started) * 1000)
    return {
        "query": name,
        "runs": runs,
        "p50_ms": round(statistics.median(samples), 2),
        "p95_ms": round(_pct(samples, 0.95), 2),
        "p99_ms": round(_pct(samples, 0.99), 2),
    }


async def run(
    mentions: int, runs: int, *, keep: bool = False, reuse: str | None = None
) -> dict[str, Any]:
    """`reuse`: measure a database an earlier `--keep` run loaded (same `--mentions`) instead of
    loading a new one; a migration added since must have been applied to it by hand."""
    per_hour = max(1, math.ceil(mentions / (TENANTS * BRANDS_PER_TENANT * DAYS * 24)))
    database = reuse or f"smm_bench_metrics_{uuid.uuid4().hex[:8]}"
    keep = keep or reuse is not None
    admin = await asyncpg.connect(state.admin_dsn())
    if reuse is None:
        await admin.execute(f'CREATE DATABASE "{database}"')
    try:
        conn = await asyncpg.connect(state.admin_dsn(database))
        try:
            load_s = 0.0
            if reuse is None:
                await conn.execute("CREATE SCHEMA metrics; SET search_path = metrics")
                for migration in sorted(MIGRATIONS.glob("*.sql")):
                    await conn.execute(migration.read_text())
                started = time.perf_counter()
                for statement in _fill_sql(per_hour):
                    await conn.execute(statement)
                load_s = time.perf_counter() - started
            await conn.execute("SET search_path = metrics")
            sizes = {
                t: int(await conn.fetchval(f"SELECT count(*) FROM {t}"))
                for t in (
                    "hourly",
                    "tokens",
                    "responses",
                    "conversations",
                    "post_outcomes",
                    "post_engagement",
                    "audience_hourly",
                )
            }
            rng = random.Random(6)  # noqa: S311 -- sampling windows, not secrets

            def window() -> tuple[str, str, datetime, datetime]:
                tenant = f"t{rng.randint(1, TENANTS)}"
                brand = f"b{rng.randint(1, BRANDS_PER_TENANT)}"
                start = START + timedelta(days=rng.randint(0, DAYS - 30))
                return tenant, brand, start, start + timedelta(days=30)

            async def series(dimension: str, unit: str) -> Any:
                t, b, s, e = window()
                return await repository.series(
                    conn, tenant_id=t, brand_id=b, metric="mentions", dimension=dimension,
                    start=s, end=e, unit=unit, tz="Europe/Berlin", network=None,
                )  # fmt: skip

            async def top(kind: str) -> Any:
                t, b, s, e = window()
                return await repository.top_tokens(
                    conn, tenant_id=t, brand_id=b, kind=kind, start=s, end=e, limit=10
                )

            async def authors() -> Any:
                t, b, s, e = window()
                return await repository.unique_authors(conn, t, b, s, e)

            async def sov() -> Any:
                t, b, s, e = window()
                return await repository.totals(
                    conn,
                    tenant_id=t,
                    brand_id=b,
                    metric="mentions",
                    dimension="sov",
                    start=s,
                    end=e,
                )

            async def responses(by: str) -> Any:
                t, b, s, e = window()
                return await repository.response_stats(
                    conn, tenant_id=t, brand_id=b, start=s, end=e, by=by, limit=100, after=None
                )

            async def backlog() -> Any:
                t, b, _, _ = window()
                return await repository.backlog(conn, t, b)

            async def publishing() -> Any:
                t, b, s, e = window()
                return await repository.publishing_stats(conn, t, b, s, e, ON_TIME_S)

            async def top_posts() -> Any:
                t, b, s, e = window()
                return await repository.top_posts(
                    conn, tenant_id=t, brand_id=b, start=s, end=e, limit=10
                )

            async def engagement(sort: str) -> Any:
                t, b, s, e = window()
                return await analytics.posts_engagement(
                    conn, t, b, Period(s, e), sort=sort, limit=100
                )

            async def audience(unit: Unit) -> Any:
                t, b, s, e = window()
                return await analytics.audience(conn, t, b, Period(s, e), unit, BERLIN)

            async def scheduled() -> Any:
                t, b, s, e = window()
                return await repository.scheduled_count(conn, t, b, s, e)

            shapes: list[tuple[str, Callable[[], Awaitable[Any]]]] = [
                ("series mentions/day (30 d, Europe/Berlin)", lambda: series("all", "day")),
                ("series sentiment/day", lambda: series("sentiment", "day")),
                ("series mentions/hour (30 d)", lambda: series("all", "hour")),
                ("series sov/week", lambda: series("sov", "week")),
                ("unique authors (30 d)", authors),
                ("top hashtags", lambda: top("hashtag")),
                ("top terms", lambda: top("term")),
                ("top authors", lambda: top("author")),
                ("share of voice totals", sov),
                ("response stats by brand", lambda: responses("brand")),
                ("response stats by member", lambda: responses("member")),
                ("backlog", backlog),
                ("publishing stats", publishing),
                ("top posts by replies", top_posts),
                ("post engagement, newest first (+ totals)", lambda: engagement("published")),
                ("top posts by engagement (+ totals)", lambda: engagement("engagement")),
                ("audience/hour (30 d, last value)", lambda: audience("hour")),
                ("audience/day (30 d, Europe/Berlin)", lambda: audience("day")),
                ("posts scheduled (per channel or post)", scheduled),
            ]
            results = [await _measure(name, runs, q) for name, q in shapes]
        finally:
            await conn.close()
    finally:
        if not keep:
            await admin.execute(f'DROP DATABASE IF EXISTS "{database}" WITH (FORCE)')
        await admin.close()
    return {
        "mentions": per_hour * TENANTS * BRANDS_PER_TENANT * DAYS * 24,
        "tenants": TENANTS,
        "brands": TENANTS * BRANDS_PER_TENANT,
        "days": DAYS,
        "mentions_per_brand_hour": per_hour,
        "rows": sizes,
        "load_s": round(load_s, 1),
        "window_days": 30,
        "results": results,
        "max_p99_ms": max(float(r["p99_ms"]) for r in results),
        "measured_at": datetime.now(UTC).isoformat(timespec="seconds"),
    }


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--mentions", type=int, default=10_000_000)
    parser.add_argument("--runs", type=int, default=200)
    parser.add_argument("--results", type=Path, default=RESULTS)
    parser.add_argument("--keep", action="store_true", help="keep the database (to EXPLAIN)")
    parser.add_argument("--reuse", help="measure this kept database instead of loading one")
    args = parser.parse_args()
    report = asyncio.run(run(args.mentions, args.runs, keep=args.keep, reuse=args.reuse))
    args.results.write_text(json.dumps(report, indent=2) + "\n")
    for r in report["results"]:
        print(
            f"{r['query']:<46} p50 {r['p50_ms']:>7} ms  p95 {r['p95_ms']:>7}  p99 {r['p99_ms']:>7}"
        )
    print(
        f"{report['mentions']:,} mentions' rollups, loaded in {report['load_s']} s:",
        report["rows"],
    )


if __name__ == "__main__":
    main()
