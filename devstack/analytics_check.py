"""Does the metrics service tell the truth? Its analytics API beside counts taken straight from the
ingest, inbox and publisher schemas for one brand, plus the client report written to disk.

`make up` runs it at the end of the demo; `smm dev analytics` runs it any time. Live traffic keeps
arriving, so a comparison is retried until both sides were read between two pipeline steps.
"""

from __future__ import annotations

import asyncio
import time
from collections.abc import Awaitable, Callable
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import asyncpg
import httpx
import typer

from devstack.state import DATABASE, admin_dsn, load_secrets, service_url, state_dir
from shared.auth import issue_token


@dataclass
class Figure:
    name: str
    api: Any
    direct: Any

    @property
    def agrees(self) -> bool:
        return bool(self.api == self.direct)


def _period() -> tuple[str, str, datetime, datetime]:
    """Yesterday through tomorrow in UTC: everything the demo produced today, whole days."""
    today = datetime.now(UTC).date()
    start, end = today - timedelta(days=1), today + timedelta(days=2)
    return (
        start.isoformat(),
        end.isoformat(),
        datetime(start.year, start.month, start.day, tzinfo=UTC),
        datetime(end.year, end.month, end.day, tzinfo=UTC),
    )


def _manager(tenant: str) -> dict[str, str]:
    token = issue_token(load_secrets().auth_secret, tenant_id=tenant, role="manager")
    return {"Authorization": f"Bearer {token}"}


async def figures(
    client: httpx.AsyncClient, db: asyncpg.Connection, tenant: str, brand: str
) -> list[Figure]:
    """One reading of both sides."""
    frm, to, start, end = _period()
    auth = _manager(tenant)
    api = f"{service_url('metrics')}/api/v1/brands/{brand}"
    # The API is pinned to UTC here so its whole days are the same instants as the SQL below.
    period = {"from": frm, "to": to, "timezone": "UTC"}

    async def get(path: str, **params: Any) -> Any:
        r = await client.get(f"{api}/{path}", params={**period, **params}, headers=auth)
        r.raise_for_status()
        return r.json()

    mentions = await db.fetch(
        """
        SELECT coalesce(i.language, 'und') AS language, i.author->>'id' AS author
        FROM ingest.item_matches m JOIN ingest.items i ON i.id = m.item_id
        WHERE m.tenant_id = $1 AND m.brand_id = $2 AND i.deleted_at IS NULL
          AND i.created_at >= $3 AND i.created_at < $4
        """,
        tenant,
        brand,
        start,
        end,
    )
    triage = await db.fetch(
        """
        SELECT sentiment, count(*) AS n FROM inbox.items
        WHERE tenant_id = $1 AND brand_id = $2 AND created_at >= $3 AND created_at < $4
          AND sentiment IS NOT NULL
        GROUP BY 1
        """,
        tenant,
        brand,
        start,
        end,
    )
    answered = await db.fetchrow(
        """
        SELECT count(first_response_s) AS n,
               percentile_cont(0.5) WITHIN GROUP (ORDER BY first_response_s) AS median
        FROM inbox.conversations
        WHERE tenant_id = $1 AND brand_id = $2
          AND first_response_at >= $3 AND first_response_at < $4
        """,
        tenant,
        brand,
        start,
        end,
    )
    backlog = await db.fetch(
        """
        SELECT status, count(*) AS n FROM inbox.conversations
        WHERE tenant_id = $1 AND brand_id = $2 AND status <> 'closed' GROUP BY 1
        """,
        tenant,
        brand,
    )
    published = await db.fetchrow(
        """
        SELECT count(*) FILTER (WHERE d.status = 'published') AS published,
               count(*) FILTER (WHERE d.status = 'failed') AS failed
        FROM publisher.deliveries d JOIN publisher.posts p ON p.id = d.post_id
        WHERE d.tenant_id = $1 AND p.brand_id = $2 AND d.kind = 'post'
          AND coalesce(d.published_at, d.updated_at) >= $3
          AND coalesce(d.published_at, d.updated_at) < $4
        """,
        tenant,
        brand,
        start,
        end,
    )
    assert answered is not None
    assert published is not None
    languages: dict[str, int] = {}
    for row in mentions:
        languages[row["language"]] = languages.get(row["language"], 0) + 1

    series = await get("series")
    by_language = await get("series", dimension="language")
    by_sentiment = await get("series", dimension="sentiment")
    authors = await get("series", metric="authors", dimension="unique")
    responses = await get("responses", by="brand")
    first = next(
        (r["first_response"] for r in responses["rows"] if r["first_response"]["count"]),
        {"count": 0, "median_s": None},
    )
    backlog_api = (await client.get(f"{api}/backlog", headers=auth)).json()
    pub = await get("publishing")
    return [
        Figure("mentions", series["total"], len(mentions)),
        Figure("mentions by language", by_language["totals"], languages),
        Figure(
            "mentions by sentiment",
            by_sentiment["totals"],
            {r["sentiment"]: r["n"] for r in triage},
        ),
        Figure("unique authors", authors["total"], len({r["author"] for r in mentions})),
        Figure("first responses", first["count"], answered["n"]),
        Figure(
            "first response median (s)",
            None if first["median_s"] is None else round(first["median_s"], 3),
            None if answered["median"] is None else round(answered["median"], 3),
        ),
        Figure(
            "backlog by status", backlog_api["by_status"], {r["status"]: r["n"] for r in backlog}
        ),
        Figure("posts published", pub["published"], published["published"]),
        Figure("posts failed", pub["failed"], published["failed"]),
    ]


async def check(tenant: str, brand: str, *, timeout_s: float = 60.0) -> bool:
    """Compare until every figure agrees (or the timeout), print the table, write the report."""
    deadline = time.monotonic() + timeout_s
    async with httpx.AsyncClient(timeout=30.0) as client:
        db = await asyncpg.connect(admin_dsn(DATABASE))
        try:
            reading = await _settled(lambda: figures(client, db, tenant, brand), deadline)
        finally:
            await db.close()
        reports = await _reports(client, tenant, brand)
    typer.echo(f"\nAnalytics for {brand} (metrics API vs counts in the owning schemas):")
    for f in reading:
        mark = "ok " if f.agrees else "MISMATCH"
        typer.echo(f"  {mark} {f.name:<28} api {f.api!s:<40} direct {f.direct}")
    typer.echo("Client report: " + ", ".join(str(p) for p in reports))
    return all(f.agrees for f in reading)


async def _settled(read: Callable[[], Awaitable[list[Figure]]], deadline: float) -> list[Figure]:
    reading = await read()
    while not all(f.agrees for f in reading) and time.monotonic() < deadline:
        await asyncio.sleep(1.0)
        reading = await read()
    return reading


async def _reports(client: httpx.AsyncClient, tenant: str, brand: str) -> list[Path]:
    frm, to, _, _ = _period()
    auth = _manager(tenant)
    folder = state_dir() / "reports"
    folder.mkdir(parents=True, exist_ok=True)
    written = []
    for fmt in ("html", "pdf"):
        r = await client.get(
            f"{service_url('metrics')}/api/v1/brands/{brand}/report",
            params={"from": frm, "to": to, "format": fmt},
            headers=auth,
        )
        r.raise_for_status()
        path = folder / f"{brand}.{fmt}"
        path.write_bytes(r.content)
        written.append(path)
    return written
