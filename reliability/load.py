"""Sandbox load for the chaos scenarios: a tenant with a brand, a listening query and a signed
webhook source; a driver that delivers N unique mentions at least once; and the exact count of
what reached the inbox and the metrics rollups."""

from __future__ import annotations

import asyncio
import json
import logging
import time
import uuid
from collections import Counter
from collections.abc import Sequence
from dataclasses import dataclass, field
from typing import Any

import asyncpg
import httpx

from devstack.sandbox.traffic import webhook_mentions
from reliability.stack import ChaosStack
from tests.support import signed, token, wait_until

log = logging.getLogger("reliability.load")

BRAND_ID = "demo-sneakers"
BRAND_NAME = "Demo Sneakers"
BATCH = 500  # mentions per webhook request (the endpoint takes up to 1,000)


@dataclass(frozen=True)
class LoadTarget:
    """The tenant, brand and webhook source the load goes to."""

    tenant: str
    brand_id: str
    source: dict[str, Any]


@dataclass
class DeliveryStats:
    """What the client did: requests sent (retries included) and what ingest said it took."""

    mentions: int = 0  # unique mentions the driver had to deliver
    posted: int = 0  # mentions sent, counting every retry of a batch
    requests: int = 0
    retries: int = 0
    accepted: int = 0  # ingest's "accepted": new (item, brand) matches
    done: int = 0  # unique mentions acknowledged with a 2xx
    errors: Counter[str] = field(default_factory=Counter)
    finished_at: float | None = None


async def setup(stack: ChaosStack) -> LoadTarget:
    """Create the tenant's brand, a brand listening query and a generic webhook source."""
    tenant = "t-chaos-" + uuid.uuid4().hex[:8]
    ingest = stack.services["ingest"].url
    headers = token(stack.auth_secret, tenant, "admin")
    async with httpx.AsyncClient(timeout=30.0) as client:
        brand = await client.post(
            f"{ingest}/api/v1/brands",
            json={"id": BRAND_ID, "name": BRAND_NAME, "timezone": "Europe/Berlin"},
            headers=headers,
        )
        brand.raise_for_status()
        query = await client.post(
            f"{ingest}/api/v1/queries",
            json={"brand_id": BRAND_ID, "name": "Brand name", "expression": f'"{BRAND_NAME}"'},
            headers=headers,
        )
        query.raise_for_status()
        source = await client.post(
            f"{ingest}/api/v1/sources",
            json={"brand_id": BRAND_ID, "name": "Sandbox relay"},
            headers=headers,
        )
        source.raise_for_status()
    return LoadTarget(tenant, BRAND_ID, dict(source.json()))


def sandbox_mentions(count: int, seed: int = 0) -> list[dict[str, Any]]:
    """`count` unique mentions as the sandbox's traffic generator writes them (deterministic for
    `seed`): praise, complaints, questions, spam and reply threads in English and Russian."""
    return webhook_mentions(BRAND_NAME, count, seed=seed, with_urls=True)


async def _deliver_batch(
    client: httpx.AsyncClient,
    stack: ChaosStack,
    target: LoadTarget,
    batch: Sequence[dict[str, Any]],
    stats: DeliveryStats,
) -> None:
    """Post one batch until ingest acknowledges it: at-least-once, as a real sender retries on
    5xx and broken connections (ingest's one-item-per-network-id makes the retry harmless)."""
    body = json.dumps({"mentions": list(batch)}).encode()
    headers = signed(target.source["signing_secret"], body)
    backoff = 0.05
    while True:
        # The URL is read per attempt: a restarted ingest keeps its port, but be explicit.
        url = f"{stack.services['ingest'].url}/api/v1/webhooks/generic/{target.source['id']}"
        stats.requests += 1
        stats.posted += len(batch)
        try:
            response = await client.post(url, content=body, headers=headers)
        except httpx.HTTPError as exc:
            stats.errors[type(exc).__name__] += 1
        else:
            if response.status_code < 300:
                stats.accepted += int(response.json()["accepted"])
                stats.done += len(batch)
                return
            if response.status_code < 500 and response.status_code != 429:
                raise RuntimeError(
                    f"ingest refused a batch: {response.status_code} {response.text}"
                )
            stats.errors[str(response.status_code)] += 1
        stats.retries += 1
        await asyncio.sleep(backoff)
        backoff = min(backoff * 2, 1.0)


async def deliver(
    stack: ChaosStack,
    target: LoadTarget,
    items: Sequence[dict[str, Any]],
    *,
    rate_per_s: float | None = None,
    concurrency: int = 2,
    stats: DeliveryStats | None = None,
) -> DeliveryStats:
    """Deliver every item at least once, `rate_per_s` at most (None: as fast as ingest takes)."""
    stats = stats or DeliveryStats()
    stats.mentions = len(items)
    batches = [items[i : i + BATCH] for i in range(0, len(items), BATCH)]
    queue: asyncio.Queue[Sequence[dict[str, Any]]] = asyncio.Queue()
    for batch in batches:
        queue.put_nowait(batch)
    started = time.monotonic()
    handed_out = 0

    async def worker(client: httpx.AsyncClient) -> None:
        nonlocal handed_out
        while not queue.empty():
            batch = queue.get_nowait()
            due = started + handed_out / rate_per_s if rate_per_s else 0.0
            handed_out += len(batch)
            await asyncio.sleep(max(0.0, due - time.monotonic()))
            await _deliver_batch(client, stack, target, batch, stats)

    async with httpx.AsyncClient(timeout=30.0) as client:
        await asyncio.gather(*(worker(client) for _ in range(concurrency)))
    stats.finished_at = time.monotonic()
    return stats


@dataclass(frozen=True)
class Counts:
    """What the databases hold for the tenant's brand right now."""

    inbox_items: int
    inbox_triaged: int
    metrics_mentions: int
    metrics_sentiment: int
    ingest_matches: int


async def counts(stack: ChaosStack, target: LoadTarget) -> Counts:
    conn = await asyncpg.connect(stack.admin_dsn(), timeout=10)
    try:
        row = await conn.fetchrow(
            """
            SELECT
              (SELECT count(*) FROM inbox.items WHERE tenant_id = $1 AND brand_id = $2),
              (SELECT count(*) FROM inbox.items
                WHERE tenant_id = $1 AND brand_id = $2 AND sentiment IS NOT NULL),
              (SELECT coalesce(sum(n), 0) FROM metrics.hourly WHERE tenant_id = $1
                AND brand_id = $2 AND metric = 'mentions' AND dimension = 'all'),
              (SELECT coalesce(sum(n), 0) FROM metrics.hourly WHERE tenant_id = $1
                AND brand_id = $2 AND metric = 'mentions' AND dimension = 'sentiment'),
              (SELECT count(*) FROM ingest.item_matches WHERE tenant_id = $1 AND brand_id = $2)
            """,
            target.tenant,
            target.brand_id,
        )
    finally:
        await conn.close()
    assert row is not None
    return Counts(*(int(v) for v in row))


async def wait_caught_up(
    stack: ChaosStack, target: LoadTarget, expected: int, timeout_s: float = 600.0
) -> float | None:
    """Poll until the inbox and the metrics hold `expected` mentions, all triaged; return when
    (monotonic), or None if they did not within `timeout_s` (then something was lost)."""
    deadline = time.monotonic() + timeout_s
    while time.monotonic() < deadline:
        try:
            now = await counts(stack, target)
        except (OSError, asyncpg.PostgresError, TimeoutError) as exc:
            log.info("counts unavailable (%s); polling on", exc)
        else:
            if (
                now.inbox_items >= expected
                and now.inbox_triaged >= expected
                and now.metrics_mentions >= expected
                and now.metrics_sentiment >= expected
            ):
                return time.monotonic()
        await asyncio.sleep(0.5)
    return None


async def verify(
    stack: ChaosStack, target: LoadTarget, expected_ids: Sequence[str]
) -> dict[str, Any]:
    """Count, from the databases, what was lost and what was duplicated.

    lost: expected mentions with no inbox item; duplicated: inbox items beyond one per expected
    mention plus items nobody sent; metrics_exact: the brand's rollup sums (all mentions, and by
    sentiment) equal the inbox item count exactly.
    """
    conn = await asyncpg.connect(stack.admin_dsn(), timeout=10)
    try:
        rows = await conn.fetch(
            "SELECT external_id, count(*) AS n FROM inbox.items "
            "WHERE tenant_id = $1 AND brand_id = $2 GROUP BY external_id",
            target.tenant,
            target.brand_id,
        )
        ingest_rows = await conn.fetch(
            """
            SELECT i.external_id, count(*) AS n FROM ingest.item_matches m
            JOIN ingest.items i ON i.id = m.item_id
            WHERE m.tenant_id = $1 AND m.brand_id = $2 GROUP BY i.external_id
            """,
            target.tenant,
            target.brand_id,
        )
    finally:
        await conn.close()
    now = await counts(stack, target)
    present = {str(r["external_id"]): int(r["n"]) for r in rows}
    expected = set(expected_ids)
    lost = sorted(expected - present.keys())
    unexpected = sorted(present.keys() - expected)
    duplicated = sum(n - 1 for n in present.values() if n > 1) + sum(present[i] for i in unexpected)
    ingest_duplicated = sum(int(r["n"]) - 1 for r in ingest_rows if int(r["n"]) > 1)
    metrics_exact = (
        now.metrics_mentions == now.inbox_items and now.metrics_sentiment == now.inbox_triaged
    )
    return {
        "expected": len(expected),
        "present": len(present),
        "lost": len(lost),
        "duplicated": duplicated + ingest_duplicated,
        "lost_sample": lost[:10],
        "inbox_items": now.inbox_items,
        "inbox_triaged": now.inbox_triaged,
        "ingest_matches": now.ingest_matches,
        "metrics_mentions": now.metrics_mentions,
        "metrics_sentiment": now.metrics_sentiment,
        "metrics_exact": metrics_exact,
    }


async def wait_delivered(stats: DeliveryStats, mentions: int, delivery: asyncio.Task[Any]) -> None:
    """Return once `mentions` unique mentions were acknowledged, or the delivery ended."""
    while stats.done < mentions and not delivery.done():
        await asyncio.wait({delivery}, timeout=0.05)


async def inbox_count(stack: ChaosStack, target: LoadTarget) -> int:
    conn = await asyncpg.connect(stack.admin_dsn(), timeout=10)
    try:
        n = await conn.fetchval(
            "SELECT count(*) FROM inbox.items WHERE tenant_id = $1 AND brand_id = $2",
            target.tenant,
            target.brand_id,
        )
    finally:
        await conn.close()
    return int(n)


async def wait_in_inbox(stack: ChaosStack, target: LoadTarget, mentions: int) -> None:
    """Return once the inbox holds `mentions` of the tenant's mentions."""

    async def reached() -> bool:
        return await inbox_count(stack, target) >= mentions

    await wait_until(reached, timeout_s=1800, interval_s=0.25, what=f"{mentions} inbox items")


def delivery_figures(stats: DeliveryStats) -> dict[str, Any]:
    return {
        "delivered": stats.posted,
        "requests": stats.requests,
        "retried_requests": stats.retries,
        "ingest_accepted": stats.accepted,
        "client_errors": dict(stats.errors),
    }
