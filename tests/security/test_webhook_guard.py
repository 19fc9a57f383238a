"""Public webhook endpoints: unsigned and replayed deliveries are refused (401), and a source or
a client scanning for source ids past its rate gets 429 with Retry-After."""

from __future__ import annotations

import asyncio
import json
import time
import uuid
from collections.abc import AsyncIterator
from typing import Any

import httpx
import pytest

from devstack import state as dev
from services.ingest.connectors.generic import sign
from shared.settings import IngestSettings
from tests.conftest import SessionStack
from tests.security.world import World
from tests.support import ServiceProcess, free_port, mention


def _delivery(secret: str, external_id: str, sent_at: int | None) -> tuple[bytes, dict[str, str]]:
    body = json.dumps({"mentions": [mention(external_id, "guarded")]}).encode()
    stamp = None if sent_at is None else str(sent_at)
    headers = {"Content-Type": "application/json", "X-SMM-Signature": sign(secret, body, stamp)}
    if stamp is not None:
        headers["X-SMM-Timestamp"] = stamp
    return body, headers


async def _post(world: World, url: str, source: str, body: bytes, headers: Any) -> httpx.Response:
    return await world.http.post(
        f"{url}/api/v1/webhooks/generic/{source}", content=body, headers=headers
    )


async def test_replayed_or_unsigned_deliveries_are_refused(world: World) -> None:
    url, source, secret = world.urls["ingest"], world.ids["source"], world.ids["signing_secret"]
    now = int(time.time())
    fresh = await _post(world, url, source, *_delivery(secret, "ts-fresh", now))
    assert fresh.status_code == 202, fresh.text
    stale = await _post(world, url, source, *_delivery(secret, "ts-stale", now - 600))
    assert (stale.status_code, stale.json()["error"]) == (401, "bad_signature"), stale.text
    future = await _post(world, url, source, *_delivery(secret, "ts-future", now + 600))
    assert future.status_code == 401, future.text
    # A timestamp moved onto an old body-only signature does not verify.
    body, headers = _delivery(secret, "ts-moved", None)
    moved = await _post(world, url, source, body, {**headers, "X-SMM-Timestamp": str(now)})
    assert moved.status_code == 401, moved.text
    unsigned = await world.http.post(
        f"{url}/api/v1/webhooks/generic/{source}", content=body, headers={"X-SMM-Signature": ""}
    )
    assert unsigned.status_code == 401
    strict = await world.new_source(config={"require_timestamp": True})
    no_stamp = await _post(
        world, url, strict["id"], *_delivery(strict["signing_secret"], "s-1", None)
    )
    assert no_stamp.status_code == 401, no_stamp.text
    stamped = await _post(
        world, url, strict["id"], *_delivery(strict["signing_secret"], "s-2", now)
    )
    assert stamped.status_code == 202, stamped.text


async def test_default_limit_admits_real_traffic(world: World) -> None:
    """The benchmarks send 10 deliveries/s of 1,000 mentions through one source; 60 at once pass."""
    assert IngestSettings.model_fields["webhook_rate_per_s"].default >= 50
    secret, source = world.ids["signing_secret"], world.ids["source"]
    burst = [_delivery(secret, f"burst-{n}", None) for n in range(60)]
    answers = await asyncio.gather(
        *(_post(world, world.urls["ingest"], source, b, h) for b, h in burst)
    )
    assert [a.status_code for a in answers] == [202] * 60


@pytest.fixture
async def strict_ingest(stack: SessionStack) -> AsyncIterator[str]:
    """A second ingest replica with tiny webhook limits (the session's one keeps the defaults)."""
    port = free_port()
    env = dev.service_env(
        "ingest", database=stack.database, topic_prefix=stack.topic_prefix, http_port=port
    )
    env |= {
        "SMM_INGEST_SCHEDULER_ENABLED": "false",
        "SMM_INGEST_WEBHOOK_RATE_PER_S": "0.01",
        "SMM_INGEST_WEBHOOK_BURST": "3",
        "SMM_INGEST_WEBHOOK_UNKNOWN_RATE_PER_S": "0.01",
        "SMM_INGEST_WEBHOOK_UNKNOWN_BURST": "2",
    }
    proc = ServiceProcess("ingest", env, port, stack.logs / "ingest-strict.log")
    proc.start()
    try:
        await proc.wait_ready()
        yield proc.url
    finally:
        proc.stop()


async def test_rate_limits_answer_429_with_retry_after(world: World, strict_ingest: str) -> None:
    secret, source = world.ids["signing_secret"], world.ids["source"]
    codes = []
    for n in range(4):
        answer = await _post(world, strict_ingest, source, *_delivery(secret, f"rl-{n}", None))
        codes.append(answer.status_code)
    assert codes == [202, 202, 202, 429], codes
    assert int(answer.headers["Retry-After"]) >= 1
    assert answer.json()["error"] == "rate_limited"
    # Another source has its own bucket.
    other = await world.new_source()
    ok = await _post(
        world, strict_ingest, other["id"], *_delivery(other["signing_secret"], "o", None)
    )
    assert ok.status_code == 202, ok.text
    # Guessing source ids spends the client's bucket, whatever id is tried.
    scans = [
        (
            await world.http.post(f"{strict_ingest}/api/v1/webhooks/generic/{uuid.uuid4()}")
        ).status_code
        for _ in range(3)
    ]
    assert scans == [404, 404, 429], scans
