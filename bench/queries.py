"""Scenario `queries` of `python -m bench`: the inbox agent list at 1,000,000 items of one tenant
and the metrics dashboard's queries at 10,000,000 mentions, against p99 ≤ 50 ms.

The inbox half is `bench.inbox_list` (with the plan cache mode the inbox runs with), the metrics
half `bench.metrics_queries`; each loads a throwaway database on the dev stack's Postgres and
drops it at the end unless `--keep` (`--reuse` measures the kept ones again without loading).
"""

from __future__ import annotations

import argparse
import asyncio
import os
import time
from typing import Any

from bench import inbox_list, metrics_queries, report

TARGET_P99_MS = 50.0
# The plan cache mode the inbox's connections use (SMM_INBOX_DB_PLAN_CACHE_MODE's default).
INBOX_PLAN_CACHE_MODE = "force_custom_plan"
INBOX_DATABASE = "smm_bench_queries_inbox"
METRICS_DATABASE = "smm_bench_queries_metrics"


def _parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog="python -m bench queries", description=__doc__.split("\n\n")[0]
    )
    parser.add_argument(
        "--items", type=int, default=1_000_000, help="inbox items of the big tenant"
    )
    parser.add_argument(
        "--mentions", type=int, default=10_000_000, help="mentions' worth of metrics rollups"
    )
    parser.add_argument(
        "--iterations", type=int, default=200, help="inbox rounds (every view and shape)"
    )
    parser.add_argument("--warmup", type=int, default=20, help="inbox rounds not counted")
    parser.add_argument("--runs", type=int, default=200, help="runs of every metrics query")
    parser.add_argument(
        "--deep-page", type=int, default=50, help="the inbox views' deep page, by cursor"
    )
    parser.add_argument("--keep", action="store_true", help="keep both databases afterwards")
    parser.add_argument(
        "--reuse",
        action="store_true",
        help=f"measure the databases a --keep run left ({INBOX_DATABASE}, {METRICS_DATABASE})"
        " instead of loading them (one that is missing is loaded); keeps them",
    )
    return parser


def _view_rows(inbox: dict[str, Any]) -> list[dict[str, Any]]:
    """The inbox views' first and deep pages, one row each."""
    rows = []
    for view in inbox["views"]:
        stats = view[INBOX_PLAN_CACHE_MODE]
        for page, key in ((1, "first"), (stats["deep_page"], "deep")):
            rows.append({"view": view["view"], "query": view["query"], "page": page, **stats[key]})
    return rows


def summarize(inbox: dict[str, Any], metrics: dict[str, Any]) -> dict[str, Any]:
    """The scenario's result: the two headline figures, then the detail they come from."""
    views = _view_rows(inbox)
    shapes = [
        {"shape": s["shape"], "sort": s["sort"], **s[INBOX_PLAN_CACHE_MODE]}
        for s in inbox["shapes"]
    ]
    analytics = metrics["results"]
    dashboard = metrics["dashboard"]
    slowest_view = max(views, key=lambda v: v["p99_ms"])
    slowest_query = max(analytics + dashboard, key=lambda q: q["p99_ms"])
    return {
        "inbox_list_p99_ms": slowest_view["p99_ms"],
        "metrics_query_p99_ms": slowest_query["p99_ms"],
        "target_p99_ms": TARGET_P99_MS,
        "inbox": {
            "items": inbox["items"],
            "other_tenants": inbox["other_tenants"],
            "plan_cache_mode": INBOX_PLAN_CACHE_MODE,
            "page_size": inbox["page"],
            "iterations": inbox["iterations"],
            "warmup": inbox["warmup"],
            "slowest_view": f"{slowest_view['view']}, page {slowest_view['page']}",
            "views": views,
            "shapes": shapes,
            "shapes_max_p99_ms": max(s["p99_ms"] for s in shapes),
            "load_average_1m": inbox["load_average_1m"][INBOX_PLAN_CACHE_MODE],
            "load": inbox.get("load"),
            "migrations": inbox["migrations"],
            "postgres_settings": {
                k: v
                for k, v in inbox["machine"].items()
                if k in ("shared_buffers", "random_page_cost")
            },
            "explain": inbox["explain"],
        },
        "metrics": {
            "mentions": metrics["mentions"],
            "tenants": metrics["tenants"],
            "brands": metrics["brands"],
            "days": metrics["days"],
            "rows": metrics["rows"],
            "load_s": metrics["load_s"],
            "runs": analytics[0]["runs"],
            "window_days": metrics["window_days"],
            "dashboard_range_days": metrics["dashboard_range_days"],
            "slowest_query": slowest_query["query"],
            "analytics_api": analytics,
            "grafana_dashboard": dashboard,
        },
    }


def _stats(row: dict[str, Any], *more: str) -> list[Any]:
    return [row[k] for k in ("p50_ms", "p95_ms", "p99_ms", *more)]


def _ms(rows: list[dict[str, Any]], name: str) -> list[list[Any]]:
    return [[r[name], *_stats(r)] for r in rows]


def _verdict(ms: float) -> str:
    return report.verdict(ms, TARGET_P99_MS, at_most=True)


def table_body(result: dict[str, Any]) -> str:
    inbox, metrics = result["inbox"], result["metrics"]
    views = inbox["views"]
    rows: list[list[Any]] = [
        [
            f"inbox list: {v['view']} (`{v['query']}`), page {v['page']}",
            f"{report.fmt(inbox['items'])} items",
            _verdict(v["p99_ms"]),
        ]
        for v in views
    ]
    for where, queries in (
        ("analytics API", metrics["analytics_api"]),
        ("Grafana dashboard", metrics["grafana_dashboard"]),
    ):
        slowest = max(queries, key=lambda q: q["p99_ms"])
        rows.append(
            [
                f"metrics: slowest {where} query ({slowest['query']})",
                f"{report.fmt(metrics['mentions'])} mentions",
                _verdict(slowest["p99_ms"]),
            ]
        )
    headline = report.table(["measurement", "size", "p99 ms (≤ 50)"], rows)
    summary = (
        f"**`inbox_list_p99_ms` {report.fmt(result['inbox_list_p99_ms'])}** (the slowest view"
        f" page: {inbox['slowest_view']}), **`metrics_query_p99_ms`"
        f" {report.fmt(result['metrics_query_p99_ms'])}** (the slowest dashboard query:"
        f" {metrics['slowest_query']})."
    )
    load = inbox["load"]
    loaded = (
        f"Inbox: loaded in {load['total_s']} s (items {load['items_table_mb']} MB +"
        f" {load['items_indexes_mb']} MB of indexes)"
        if load
        else "Inbox: a kept database (`--reuse`)"
    )
    loaded += (
        f"; {inbox['iterations']} rounds after {inbox['warmup']} of warm-up, plan cache mode"
        f" `{inbox['plan_cache_mode']}`, load average {inbox['load_average_1m']}. Metrics: "
        + (f"loaded in {metrics['load_s']} s" if metrics["load_s"] else "a kept database")
        + f"; {metrics['runs']} runs a query, API on {metrics['window_days']}-day windows,"
        f" the dashboard on its default {report.fmt(metrics['dashboard_range_days'])}-day range."
        f" The run took {result['elapsed_s']} s; load average {result['load_average_1m']} (1 min,"
        " before and after; the machine is shared, so the tails are noisy)."
    )
    view_table = report.table(
        ["inbox view", "page", "p50 ms", "p95 ms", "p99 ms", "max ms"],
        [[f"{v['view']} (`{v['query']}`)", v["page"], *_stats(v, "max_ms")] for v in views],
    )
    shape_table = report.table(
        ["inbox filter shape", "sort", "p50 ms", "p95 ms", "p99 ms", "max ms", "rows"],
        [[s["shape"], s["sort"], *_stats(s, "max_ms", "rows_mean")] for s in inbox["shapes"]],
    )
    api_table = report.table(
        ["analytics API query", "p50 ms", "p95 ms", "p99 ms"],
        _ms(metrics["analytics_api"], "query"),
    )
    panel_table = report.table(
        ["Grafana brand dashboard query", "p50 ms", "p95 ms", "p99 ms"],
        _ms(metrics["grafana_dashboard"], "query"),
    )
    return "\n\n".join([headline, summary, loaded, view_table, shape_table, api_table, panel_table])


async def _run(args: argparse.Namespace) -> dict[str, Any]:
    keep = args.keep or args.reuse
    inbox = await inbox_list.run(
        inbox_list.Options(
            items=args.items,
            iterations=args.iterations,
            warmup=args.warmup,
            database=INBOX_DATABASE,
            keep=keep,
            reuse=args.reuse,
            plan_cache_modes=(INBOX_PLAN_CACHE_MODE,),
            deep_page=args.deep_page,
        )
    )
    reuse = args.reuse and await metrics_queries.database_exists(METRICS_DATABASE)
    metrics = await metrics_queries.run(
        args.mentions,
        args.runs,
        keep=keep,
        reuse=METRICS_DATABASE if reuse else None,
        database=METRICS_DATABASE,
    )
    return summarize(inbox, metrics)


def main(argv: list[str]) -> None:
    args = _parser().parse_args(argv)
    started, load = time.monotonic(), os.getloadavg()[0]
    result = asyncio.run(_run(args))
    result["elapsed_s"] = round(time.monotonic() - started)
    result["load_average_1m"] = [round(load, 2), round(os.getloadavg()[0], 2)]
    report.record("queries", result, table_body(result))
