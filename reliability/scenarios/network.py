"""Chaos: the sandbox network answers ingest's pulls and the publisher's posts with each fault in
turn (429 with Retry-After, 5xx, slow answers, timeouts after the write, dropped and reset
connections); Retry-After must be waited out, and no mention or post lost or doubled."""

from __future__ import annotations

import functools
import logging
import time
import uuid
from dataclasses import dataclass
from typing import Any

import asyncpg
import httpx

from reliability.scenarios.publisher_crash import (
    BRAND,
    Channel,
    count_texts,
    deliveries_settled,
    make_channel,
    publish_now,
    statuses_of,
)
from reliability.stack import ChaosStack
from tests.support import token, wait_until

log = logging.getLogger("reliability.network")

RETRY_AFTER_S = 5
# A request that reaches the sandbox this soon after a 429 was sent before its client could have
# read the 429 (the publisher posts a channel's due deliveries concurrently).
IN_FLIGHT_S = 0.25
PULL = ("GET", "/api/v1/notifications")
POST = ("POST", "/api/v1/statuses")


@dataclass(frozen=True)
class Phase:
    name: str
    fault: dict[str, Any]
    pull_count: int
    post_count: int


PHASES = (
    Phase("rate_limit", {"kind": "rate_limit", "retry_after_s": RETRY_AFTER_S}, 1, 1),
    Phase("server_error", {"kind": "server_error", "status": 503}, 2, 3),
    # Longer than the publisher's network timeout (2 s in the chaos stack): the post is not
    # applied yet when the publisher gives up, so its outcome is unknown until reconciled.
    Phase("slow", {"kind": "delay", "delay_ms": 3000}, 2, 3),
    Phase("timeout_after_send", {"kind": "timeout_after_send", "delay_ms": 4000}, 1, 3),
    Phase("dropped_after_send", {"kind": "timeout_after_send", "drop": True}, 1, 3),
    Phase("connection_reset", {"kind": "connection_reset"}, 2, 3),
)


async def _arm(http: httpx.AsyncClient, sandbox: str, phase: Phase) -> None:
    for (method, path), count in ((PULL, phase.pull_count), (POST, phase.post_count)):
        spec = {**phase.fault, "method": method, "path_prefix": path, "count": count}
        (await http.post(f"{sandbox}/sandbox/faults", json=spec)).raise_for_status()


async def _pull_source(
    http: httpx.AsyncClient, stack: ChaosStack, admin: dict[str, str], channel: Channel
) -> str:
    ingest, sandbox = stack.services["ingest"].url, stack.sandbox_url
    r = await http.post(
        f"{ingest}/api/v1/brands", json={"id": BRAND, "name": "Chaos"}, headers=admin
    )
    r.raise_for_status()
    r = await http.post(
        f"{ingest}/api/v1/sources",
        json={
            "kind": "pull",
            "network": "mastodon",
            "brand_id": BRAND,
            "name": "Mentions of the brand account",
            "config": {"api_base": sandbox, "mode": "notifications"},
            "credentials": {"access_token": channel.account["access_token"]},
            "interval_s": 10,
        },
        headers=admin,
    )
    r.raise_for_status()
    source_id = str(r.json()["id"])

    async def first_run_done() -> bool:
        s = (await http.get(f"{ingest}/api/v1/sources/{source_id}", headers=admin)).json()
        return s["last_run_at"] is not None

    # A new source starts from "now": mentions are posted after its first run.
    await wait_until(first_run_done, timeout_s=60, interval_s=0.2, what="the first pull")
    return source_id


async def _metrics_mentions(db: asyncpg.Connection, tenant: str, want: int) -> int:
    """The mentions the metrics service counted for the tenant, once it has counted `want`."""

    async def counted() -> int:
        n = int(
            await db.fetchval(
                "SELECT coalesce(sum(n), 0) FROM metrics.hourly WHERE tenant_id = $1"
                " AND metric = 'mentions' AND dimension = 'all'",
                tenant,
            )
            or 0
        )
        return n if n >= want else 0

    try:
        return await wait_until(counted, timeout_s=120, interval_s=1, what="metrics")
    except AssertionError:
        return int(await counted())


async def _inbox_count(db: asyncpg.Connection, tenant: str, want: int) -> int:
    found = int(
        await db.fetchval("SELECT count(*) FROM inbox.items WHERE tenant_id = $1", tenant) or 0
    )
    return found if found >= want else 0


def _retry_after_gaps(requests: list[dict[str, Any]]) -> tuple[dict[str, float], int]:
    """For each 429 the sandbox injected: seconds until the same client's next request of the
    same kind (a pull, or a post), by method and path; and how many requests were already in
    flight when it answered (concurrent posts sent before the client could read the 429)."""
    gaps: dict[str, float] = {}
    in_flight = 0
    for i, r in enumerate(requests):
        if r["fault"] != "rate_limit":
            continue
        for later in requests[i + 1 :]:
            if (later["method"], later["path"]) != (r["method"], r["path"]):
                continue
            if later["at"] - r["at"] < IN_FLIGHT_S:
                in_flight += 1
                continue
            gaps[f"{r['method']} {r['path']}"] = round(later["at"] - r["at"], 2)
            break
    return gaps, in_flight


async def run(stack: ChaosStack, mentions: int) -> dict[str, Any]:
    per_phase = max(1, mentions // len(PHASES))
    posts_per_phase = max(3, min(20, per_phase // 10))
    tenant = "chaos-" + uuid.uuid4().hex[:8]
    admin = token(stack.auth_secret, tenant, "admin")
    sandbox, publisher = stack.sandbox_url, stack.services["publisher"].url
    db = await asyncpg.connect(stack.admin_dsn())
    mention_texts: list[str] = []
    post_texts: list[str] = []
    phases: dict[str, dict[str, Any]] = {}
    try:
        async with httpx.AsyncClient(timeout=60.0) as http:
            channel = await make_channel(http, stack, tenant, admin)
            source_id = await _pull_source(http, stack, admin, channel)
            fan_headers = {"Authorization": f"Bearer {channel.fan['access_token']}"}
            started = time.time()
            for phase in PHASES:
                phase_started = time.time()
                # The fan's mentions go up before the faults are armed: the faults are for the
                # platform's calls, not for the fan's.
                for i in range(per_phase):
                    text = f"@{channel.account['username']} {phase.name} mention {i}"
                    r = await http.post(
                        f"{sandbox}/api/v1/statuses", json={"status": text}, headers=fan_headers
                    )
                    r.raise_for_status()
                    mention_texts.append(text)
                await _arm(http, sandbox, phase)
                await http.post(
                    f"{stack.services['ingest'].url}/api/v1/sources/{source_id}/run",
                    headers=admin,
                )
                for i in range(posts_per_phase):
                    text = f"{phase.name} post {i} {uuid.uuid4().hex[:6]}"
                    await publish_now(http, publisher, admin, channel, text)
                    post_texts.append(text)
                await wait_until(
                    functools.partial(_inbox_count, db, tenant, len(mention_texts)),
                    timeout_s=300,
                    interval_s=0.5,
                    what=f"{phase.name}: the mentions pulled",
                )
                await wait_until(
                    functools.partial(deliveries_settled, db, tenant, len(post_texts)),
                    timeout_s=300,
                    interval_s=0.5,
                    what=f"{phase.name}: the posts recorded",
                )
                left = (await http.get(f"{sandbox}/sandbox/faults")).json()["pending"]
                await http.delete(f"{sandbox}/sandbox/faults")
                phases[phase.name] = {
                    "seconds": round(time.time() - phase_started, 1),
                    "faults_unused": sum(f["remaining"] for f in left),
                }
                log.info("%s done: %s", phase.name, phases[phase.name])
            account_id = channel.account["id"]
            found = count_texts(await statuses_of(http, sandbox, account_id), post_texts)
            stats = (await http.get(f"{sandbox}/sandbox/stats")).json()
            requests = (
                await http.get(
                    f"{sandbox}/sandbox/requests",
                    params={"account_id": account_id, "since": started},
                )
            ).json()["requests"]
        items = await db.fetch(
            "SELECT text, count(*) AS n FROM inbox.items WHERE tenant_id = $1 GROUP BY text",
            tenant,
        )
        failed = await db.fetchval(
            "SELECT count(*) FROM publisher.deliveries WHERE tenant_id = $1 AND status = 'failed'",
            tenant,
        )
        counted = await _metrics_mentions(db, tenant, len(mention_texts))
        attempts = await db.fetch(
            "SELECT a.outcome, count(*) AS n FROM publisher.attempts a"
            " JOIN publisher.deliveries d ON d.id = a.delivery_id"
            " WHERE d.tenant_id = $1 GROUP BY a.outcome",
            tenant,
        )
    finally:
        await db.close()
    in_inbox = {str(r["text"]): int(r["n"]) for r in items}
    gaps, in_flight = _retry_after_gaps(requests)
    lost = sum(1 for t in mention_texts if t not in in_inbox) + sum(
        1 for t in post_texts if found[t] == 0
    )
    duplicated = sum(n - 1 for n in in_inbox.values() if n > 1) + sum(
        max(found[t] - 1, 0) for t in post_texts
    )
    faults = sum(1 for r in requests if r["fault"] is not None)
    return {
        "injected": faults,
        "expected": len(mention_texts) + len(post_texts),
        "delivered": sum(in_inbox.get(t, 0) for t in mention_texts)
        + sum(found[t] for t in post_texts),
        "lost": lost,
        "duplicated": duplicated,
        "recovered_s": max(p["seconds"] for p in phases.values()),
        "metrics_exact": counted == len(mention_texts),
        "mentions": len(mention_texts),
        "posts": len(post_texts),
        "posts_failed": failed,
        "publish_attempts_by_outcome": {str(r["outcome"]): int(r["n"]) for r in attempts},
        "retry_after_s": RETRY_AFTER_S,
        "retry_after_gaps_s": gaps,
        "retry_after_honoured": len(gaps) == 2 and min(gaps.values()) >= RETRY_AFTER_S,
        "requests_in_flight_at_429": in_flight,
        "duplicates_by_idempotency_key": stats["duplicates_by_idempotency_key"],
        "phases": phases,
        "note": (
            "Each phase arms its fault for ingest's GET /api/v1/notifications and the "
            "publisher's POST /api/v1/statuses, then pulls and publishes; the next phase starts "
            "once every mention is in the inbox and every post recorded. Retry-After: the gap "
            "between each injected 429 and the same client's next request of that kind, from "
            "the sandbox's request log, not counting requests that arrived within "
            f"{IN_FLIGHT_S} s of it (sent concurrently, before the 429 could be read). "
            "recovered_s is the slowest phase; a 5xx, a cut connection or a timeout on a post "
            "leaves its outcome unknown, reconciled after 30 s (UNKNOWN_RECHECK_S)."
        ),
    }
