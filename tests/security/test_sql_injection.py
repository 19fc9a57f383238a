"""SQL injection: classic payloads in every query parameter of every service's OpenAPI (filters,
search words, sort, cursors) and in brand paths cause no 500, show no other tenant's rows, and
change no table."""

from __future__ import annotations

from typing import Any

import asyncpg

from tests.conftest import SessionStack
from tests.security.operations import PERIOD
from tests.security.world import World, dumps, leaks

PAYLOADS = (
    "' OR 1=1 --",
    "'; DROP TABLE items; --",
    "%' UNION SELECT tenant_id, text FROM ingest.items --",
    "1); DELETE FROM inbox.items WHERE (1=1",
    "\\'; SELECT pg_sleep(0); --",
)
# Parameters a valid call needs besides the one under attack.
REQUIRED = {"from": PERIOD["from"], "to": PERIOD["to"]}
COUNTED = ("ingest", "publisher", "inbox", "metrics")
DATA_TABLES = {"brands", "queries", "sources", "channels", "posts", "members", "teams", "items"}


async def _row_counts(admin_dsn: str) -> dict[str, int]:
    conn = await asyncpg.connect(admin_dsn)
    try:
        tables = await conn.fetch(
            "SELECT table_schema, table_name FROM information_schema.tables "
            "WHERE table_schema = ANY($1) AND table_type = 'BASE TABLE'",
            list(COUNTED),
        )
        counts = {}
        for t in tables:
            name = f'"{t["table_schema"]}"."{t["table_name"]}"'
            counts[name] = await conn.fetchval(f"SELECT count(*) FROM {name}")
        return counts
    finally:
        await conn.close()


async def test_injection_payloads_change_nothing_and_show_nothing(
    world: World, stack: SessionStack
) -> None:
    attacker = world.other + "-sqli"  # a tenant with no rows: any row it sees is someone else's
    calls: list[tuple[str, str, dict[str, Any]]] = []
    for service, url in world.urls.items():
        spec = (await world.http.get(url + "/api/v1/openapi.json")).json()
        for path, methods in spec["paths"].items():
            get = methods.get("get")
            if get is None or "webhooks" in path:
                continue
            names = [p["name"] for p in get.get("parameters", []) if p["in"] == "query"]
            concrete = path.removeprefix("/api/v1").replace("{brand_id}", world.brand)
            if "{" in concrete:
                continue  # ids are uuids or checked names: covered by the isolation matrix
            for name in names:
                for payload in PAYLOADS:
                    params = {k: v for k, v in REQUIRED.items() if k in names}
                    calls.append((service, concrete, {**params, name: payload}))
            if "{brand_id}" in path:
                for payload in PAYLOADS:
                    params = {k: v for k, v in REQUIRED.items() if k in names}
                    calls.append(
                        (service, path.removeprefix("/api/v1"), {"_brand": payload, **params})
                    )
    before = await _row_counts(stack.admin_dsn())
    wrong = []
    for service, path, params in calls:
        brand = params.pop("_brand", None)
        target = path.replace("{brand_id}", brand) if brand is not None else path
        response = await world.call(service, "GET", target, tenant=attacker, params=params)
        if response.status_code >= 500:
            wrong.append(f"{service} {path} {params}: {response.status_code}")
        elif found := leaks(response, world, target + dumps(params)):
            wrong.append(f"{service} {path} {params}: shows tenant A's {found}")
    after = await _row_counts(stack.admin_dsn())
    assert wrong == [], "\n".join(wrong)
    # The tenants' data tables; queues and rollups move by themselves while the services run.
    data = [t for t in before if t.split(".")[1].strip('"') in DATA_TABLES]
    assert len(data) >= len(DATA_TABLES)
    assert {t: after.get(t) for t in data} == {t: before[t] for t in data}
    assert len(calls) > 100
