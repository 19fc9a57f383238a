"""Analytics query latency with N mentions' worth of rollups: `python -m bench.metrics_queries`.

Builds the metrics schema in a throwaway database on the dev Postgres, fills the rollup tables
with rows equivalent to `--mentions` mentions (generated server-side with generate_series; see
docs/metrics.md for the equivalence), then times every analytics API query shape on random brands
and 30-day windows, and every query of the Grafana brand dashboard on random brands over its
default range. Drops the database at the end. `python -m bench queries` runs it with the inbox list.
"""

from __future__ import annotations

import argparse
import asyncio
import gc
import json
import math
import random
import re
import statistics
import sys
import time
import uuid
from collections.abc import Awaitable, Callable
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any
from zoneinfo import ZoneInfo

import asyncpg

from bench.report import percentile
from devstack import state
from services.metrics import analytics, repository
from services.metrics.periods import Period, Unit
from services.metrics.rollups import ON_TIME_S

REPO = Path(__file__).resolve().parents[1]
MIGRATIONS = REPO / "services/metrics/migrations"
DASHBOARD = REPO / "deploy/grafana/dashboards/brand-analytics.json"
RESULTS = Path(__file__).with_name("results") / "metrics_queries.json"
TENANTS, BRANDS_PER_TENANT, DAYS = 10, 10, 365
MIN_DAYS = 31  # a smaller load keeps a 30-day window, with fewer days instead of fewer rows a day
START = datetime(2025, 11, 1, tzinfo=UTC)
BERLIN = ZoneInfo("Europe/Berlin")


def _fill_sql(per_hour: int, days: int = DAYS) -> list[str]:
    """Rollup rows for every tenant, brand and hour of `days` days (a year unless the bench is
    sized down): `per_hour` mentions a brand-hour,
    split over 3 sentiments, 3 intents, 2 languages, 2 kinds, brand + 2 competitors; the tokens
    of each hour: its authors (per_hour distinct of a 50,000 pool), 4 hashtags of 200, 10 terms
    of 2,000; one response per 10 mentions, one conversation per 4, one post per brand-day on
    each of the brand's 2 channels with its schedule and latest engagement, and each channel's
    followers every hour; the inbox's and the publisher's hourly counters of the same."""
    grid = f"""
        FROM generate_series(1, {TENANTS}) t, generate_series(1, {BRANDS_PER_TENANT}) b,
             generate_series(0, {days * 24 - 1}) h
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
        # The inbox's and the publisher's counters of the same traffic (the dashboard's panels
        # read them): an item per mention, the responses above with their SLA outcomes, and
        # each channel's outcome of the day's post.
        f"""INSERT INTO hourly SELECT 't' || t, 'b' || b, 'inbox', d, {hour}, 'mastodon', '',
            CASE d WHEN 'created' THEN {per_hour} WHEN 'replies' THEN {responses}
                ELSE greatest(1, {responses} * (CASE d WHEN 'sla_met' THEN 4 ELSE 1 END) / 5) END
            {grid}, unnest(ARRAY['created', 'replies', 'sla_met', 'sla_breached']) d""",
        f"""INSERT INTO hourly SELECT 't' || t, 'b' || b, 'posts',
            CASE WHEN h % 240 = 0 THEN 'failed' ELSE 'published' END, {hour}, {network},
            {channel}::text, 1 {grid}, generate_series(1, 2) c WHERE h % 24 = 9""",
        """INSERT INTO tokens_daily SELECT tenant_id, brand_id, kind,
            (bucket AT TIME ZONE 'UTC')::date, token, sum(n) FROM tokens GROUP BY 1, 2, 3, 4, 5""",
        # Steady state: autovacuum keeps the visibility map of settled rollup pages current,
        # which the index-only scans of the token tables rely on.
        "VACUUM ANALYZE",
    ]
    return statements


def _dashboard_range() -> timedelta:
    """The dashboard's default time range (`now-7d` to `now`)."""
    default = json.loads(DASHBOARD.read_text())["time"]
    found = re.fullmatch(r"now-(\d+)([hd])", default["from"])
    if found is None or default["to"] != "now":
        raise ValueError(f"dashboard time range {default} is not `now-N[hd]` to `now`")
    return timedelta(**{"hours" if found[2] == "h" else "days": int(found[1])})


_INTERVALS = {"1m": 60, "5m": 300, "1h": 3600, "1d": 86400}


def grafana_sql(sql: str, variables: dict[str, str], start: datetime, end: datetime) -> str:
    """What Grafana's Postgres data source sends: macros expanded, variables interpolated."""

    def time_filter(m: re.Match[str]) -> str:
        return (
            f"{m.group(1)} BETWEEN '{start.isoformat()}'::timestamptz"
            f" AND '{end.isoformat()}'::timestamptz"
        )

    def group_alias(m: re.Match[str]) -> str:
        seconds = _INTERVALS[m.group(2)]
        return (
            f"to_timestamp(floor(extract(epoch from {m.group(1)}) / {seconds}) * {seconds})"
            ' AS "time"'
        )

    sql = re.sub(r"\$__timeFilter\(([\w.]+)\)", time_filter, sql)
    sql = re.sub(r"\$__timeGroupAlias\(([\w.]+),\s*'(\w+)'\)", group_alias, sql)
    sql = sql.replace("$__timeFrom()", f"'{start.isoformat()}'::timestamptz")
    sql = sql.replace("$__timeTo()", f"'{end.isoformat()}'::timestamptz")
    for name, value in variables.items():
        sql = sql.replace(f"${name}", value.replace("'", "''"))
    if "$" in sql:
        raise ValueError(f"unexpanded macro or variable in: {sql}")
    return sql


def dashboard_queries() -> list[tuple[str, str]]:
    """(name, SQL) of every variable and panel query of the brand dashboard."""
    dashboard = json.loads(DASHBOARD.read_text())
    return [(f"variable {v['name']}", v["query"]) for v in dashboard["templating"]["list"]] + [
        (panel["title"], target["rawSql"])
        for panel in dashboard["panels"]
        for target in panel.get("targets", [])
    ]


async def _measure(
    name: str, runs: int, query: Callable[[], Awaitable[Any]]
) -> dict[str, float | int | str]:
    # The service freezes what it loaded at start out of the garbage collector's walk
    # (shared/runtime.py); this process measures its code, so it does the same.
    gc.collect()
    gc.freeze()
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
        "p95_ms": round(percentile(samples, 0.95), 2),
        "p99_ms": round(percentile(samples, 0.99), 2),
    }


async def database_exists(name: str) -> bool:
    admin = await asyncpg.connect(state.admin_dsn())
    try:
        return bool(await admin.fetchval("SELECT 1 FROM pg_database WHERE datname = $1", name))
    finally:
        await admin.close()


async def run(
    mentions: int,
    runs: int,
    *,
    keep: bool = False,
    reuse: str | None = None,
    database: str | None = None,
) -> dict[str, Any]:
    """`reuse`: measure a database an earlier `--keep` run loaded instead of loading a new one
    (the figures say how many mentions it holds); a migration added since must have been applied
    to it by hand. `database`: the name to load into (default: a new random one)."""
    brand_hours = TENANTS * BRANDS_PER_TENANT * 24
    days = min(DAYS, max(MIN_DAYS, math.ceil(mentions / brand_hours)))
    per_hour = max(1, math.ceil(mentions / (brand_hours * days)))
    database = reuse or database or f"smm_bench_metrics_{uuid.uuid4().hex[:8]}"
    if not database.startswith("smm_bench_"):
        raise SystemExit("the bench only creates and drops databases named smm_bench_*")
    keep = keep or reuse is not None
    admin = await asyncpg.connect(state.admin_dsn())
    if reuse is None:
        await admin.execute(f'DROP DATABASE IF EXISTS "{database}" WITH (FORCE)')
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
                for statement in _fill_sql(per_hour, days):
                    await conn.execute(statement)
                load_s = time.perf_counter() - started
            await conn.execute("SET search_path = metrics")
            if reuse is not None:
                # What the kept database holds, whatever this run asked for.
                found = await conn.fetchrow(
                    "SELECT max(n) AS n, count(*) AS hours FROM hourly WHERE tenant_id = 't1'"
                    " AND brand_id = 'b1' AND metric = 'mentions' AND dimension = 'all'"
                )
                assert found is not None
                per_hour, days = int(found["n"]), int(found["hours"]) // 24
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
                start = START + timedelta(days=rng.randint(0, days - 30))
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

            span = _dashboard_range()

            def panel(sql: str) -> Callable[[], Awaitable[Any]]:
                async def query() -> Any:
                    t, b, s, _ = window()
                    return await conn.fetch(
                        grafana_sql(sql, {"tenant": t, "brand": b}, s, s + span)
                    )

                return query

            # The dashboard names its schema, as Grafana's data source has no search_path.
            await conn.execute("RESET search_path")
            dashboard = [
                await _measure(name, runs, panel(sql)) for name, sql in dashboard_queries()
            ]
        finally:
            await conn.close()
    finally:
        if not keep:
            await admin.execute(f'DROP DATABASE IF EXISTS "{database}" WITH (FORCE)')
        await admin.close()
    return {
        "mentions": per_hour * brand_hours * days,
        "tenants": TENANTS,
        "brands": TENANTS * BRANDS_PER_TENANT,
        "days": days,
        "mentions_per_brand_hour": per_hour,
        "rows": sizes,
        "load_s": round(load_s, 1),
        "window_days": 30,
        "results": results,
        "dashboard_range_days": span / timedelta(days=1),
        "dashboard": dashboard,
        "max_p99_ms": max(float(r["p99_ms"]) for r in results + dashboard),
        "measured_at": datetime.now(UTC).isoformat(timespec="seconds"),
    }


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--mentions", type=int, default=10_000_000)
    parser.add_argument("--runs", type=int, default=200)
    parser.add_argument("--results", type=Path, default=RESULTS)
    parser.add_argument("--keep", action="store_true", help="keep the database (to EXPLAIN)")
    parser.add_argument("--reuse", help="measure this kept database instead of loading one")
    args = parser.parse_args(sys.argv[1:] if argv is None else argv)
    report = asyncio.run(run(args.mentions, args.runs, keep=args.keep, reuse=args.reuse))
    args.results.write_text(json.dumps(report, indent=2) + "\n")
    for r in report["results"] + report["dashboard"]:
        print(
            f"{r['query']:<46} p50 {r['p50_ms']:>7} ms  p95 {r['p95_ms']:>7}  p99 {r['p99_ms']:>7}"
        )
    print(
        f"{report['mentions']:,} mentions' rollups, loaded in {report['load_s']} s:",
        report["rows"],
    )


if __name__ == "__main__":
    main()
