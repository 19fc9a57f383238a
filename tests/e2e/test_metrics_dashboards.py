"""Every SQL query of the brand analytics dashboard, Grafana's macros and the tenant and brand
variables filled in, runs against the metrics schema after real traffic and returns rows."""

from __future__ import annotations

import json
import re
from datetime import UTC, datetime
from typing import Any

import asyncpg
import httpx

from tests.conftest import SessionStack
from tests.e2e.test_metrics import brand_traffic
from tests.support import REPO, ServiceProcess, token

DASHBOARD = REPO / "deploy/grafana/dashboards/brand-analytics.json"
DATASOURCE = REPO / "deploy/grafana/provisioning/datasources/postgres.yml"
DASHBOARD_TEXT, DATASOURCE_TEXT = DASHBOARD.read_text(), DATASOURCE.read_text()
# The dashboard's time range for the run: covers the test mentions (Nov 1) and now (replies, posts).
TIME_FROM, TIME_TO = datetime(2026, 10, 1, tzinfo=UTC), datetime(2027, 12, 31, tzinfo=UTC)
_INTERVALS = {"1m": 60, "5m": 300, "1h": 3600, "1d": 86400}


def grafana_sql(sql: str, variables: dict[str, str]) -> str:
    """What Grafana's Postgres data source sends: macros expanded, variables interpolated."""

    def time_filter(m: re.Match[str]) -> str:
        return (
            f"{m.group(1)} BETWEEN '{TIME_FROM.isoformat()}'::timestamptz"
            f" AND '{TIME_TO.isoformat()}'::timestamptz"
        )

    def group_alias(m: re.Match[str]) -> str:
        seconds = _INTERVALS[m.group(2)]
        return (
            f"to_timestamp(floor(extract(epoch from {m.group(1)}) / {seconds}) * {seconds})"
            ' AS "time"'
        )

    sql = re.sub(r"\$__timeFilter\(([\w.]+)\)", time_filter, sql)
    sql = re.sub(r"\$__timeGroupAlias\(([\w.]+),\s*'(\w+)'\)", group_alias, sql)
    sql = sql.replace("$__timeFrom()", f"'{TIME_FROM.isoformat()}'::timestamptz")
    sql = sql.replace("$__timeTo()", f"'{TIME_TO.isoformat()}'::timestamptz")
    for name, value in variables.items():
        sql = sql.replace(f"${name}", value.replace("'", "''"))
    assert "$" not in sql, f"unexpanded macro or variable in: {sql}"
    return sql


def _queries(dashboard: dict[str, Any]) -> list[tuple[str, str]]:
    return [
        (panel["title"], t["rawSql"])
        for panel in dashboard["panels"]
        for t in panel.get("targets", [])
    ]


async def test_every_dashboard_query_runs_and_returns_rows_after_traffic(
    services: dict[str, ServiceProcess],
    sandbox: str,
    http: httpx.AsyncClient,
    source: dict[str, Any],
    stack: SessionStack,
    tenant: str,
    admin_db: asyncpg.Connection,
) -> None:
    admin = token(stack.auth_secret, tenant, "admin")
    await brand_traffic(services, sandbox, http, admin, source, stack, tenant, admin_db)
    dashboard = json.loads(DASHBOARD_TEXT)
    assert "uid: metrics-postgres" in DATASOURCE_TEXT
    variables = {"tenant": tenant, "brand": "brand-a"}
    await admin_db.execute("SET search_path = public")  # the queries name their schema

    # The variables' own queries list this tenant and its brand.
    by_name = {v["name"]: v["query"] for v in dashboard["templating"]["list"]}
    tenants = {r[0] for r in await admin_db.fetch(grafana_sql(by_name["tenant"], variables))}
    assert tenant in tenants
    brands = [r[0] for r in await admin_db.fetch(grafana_sql(by_name["brand"], variables))]
    assert brands == ["brand-a"]

    queries = _queries(dashboard)
    assert len(queries) == len(dashboard["panels"]) >= 10
    for title, sql in queries:
        assert all(p["datasource"]["uid"] == "metrics-postgres" for p in dashboard["panels"])
        rows = await admin_db.fetch(grafana_sql(sql, variables))
        assert rows, f"panel {title!r} returned nothing"
        assert any(v is not None for r in rows for v in r.values()), f"panel {title!r} is empty"
