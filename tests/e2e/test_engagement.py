"""What our posts achieve, measured by the publisher on the real stack: a post published to the
sandbox network is favourited, boosted and answered there, and `post.engagement_updated` on
smm.posts.v1 carries the new counts and the channel's followers, once per change and never for a
measurement that found nothing new. Also: a post for two channels is announced as scheduled once
per channel, each with its own due time, and `post.published` names the delivery's due time."""

from __future__ import annotations

import asyncio
import itertools
import json
import uuid
from collections.abc import AsyncIterator, Callable
from datetime import datetime, time, timedelta
from typing import Any

import asyncpg
import httpx
import pytest
from aiokafka import AIOKafkaConsumer

from shared.topics import POSTS
from tests.conftest import SessionStack
from tests.support import ServiceProcess, events_for, token, wait_until

INTERVAL_S = "0.5"  # how often the test publisher measures each post again


@pytest.fixture
async def publisher(services: dict[str, ServiceProcess]) -> AsyncIterator[str]:
    """The session's publisher, restarted to measure engagement every half second (production:
    every 15 minutes), and restored afterwards."""
    proc = services["publisher"]
    saved = dict(proc.env)
    proc.stop()
    proc.env["SMM_PUBLISHER_ENGAGEMENT_INTERVAL_S"] = INTERVAL_S
    proc.start()
    try:
        await proc.wait_ready()
        yield proc.url
    finally:
        proc.stop()
        proc.env.clear()
        proc.env.update(saved)
        proc.start()
        await proc.wait_ready()


async def _account(http: httpx.AsyncClient, sandbox: str, **extra: Any) -> dict[str, Any]:
    username = f"u_{uuid.uuid4().hex[:10]}"
    r = await http.post(f"{sandbox}/sandbox/accounts", json={"username": username, **extra})
    assert r.status_code == 200, r.text
    return dict(r.json())


async def _channel(
    http: httpx.AsyncClient, publisher: str, admin: dict[str, str], sandbox: str, account: Any
) -> dict[str, Any]:
    r = await http.put(
        f"{publisher}/api/v1/brands/acme/publishing",
        json={"timezone": "Europe/Berlin", "approval": "none"},
        headers=admin,
    )
    assert r.status_code == 200, r.text
    r = await http.post(
        f"{publisher}/api/v1/channels",
        json={
            "brand_id": "acme",
            "network": "mastodon",
            "name": f"ACME {account['username']}",
            "config": {"api_base": sandbox, "account_id": account["id"]},
            "credentials": {"access_token": account["access_token"]},
        },
        headers=admin,
    )
    assert r.status_code == 201, r.text
    return dict(r.json())


async def _act(http: httpx.AsyncClient, sandbox: str, account: Any, path: str, **body: Any) -> None:
    r = await http.post(
        f"{sandbox}{path}",
        json=body,
        headers={"Authorization": f"Bearer {account['access_token']}"},
    )
    assert r.status_code == 200, r.text


async def _tenant_events(
    stack: SessionStack, tenant: str, enough: Callable[[list[dict[str, Any]]], bool]
) -> list[dict[str, Any]]:
    """Every event of `tenant` on smm.posts.v1 from the start, read until `enough` holds and
    the topic has been read to its end."""
    topic = stack.topic(POSTS.name)
    consumer = AIOKafkaConsumer(
        topic,
        bootstrap_servers=stack.bootstrap,
        group_id=f"test-{uuid.uuid4()}",
        auto_offset_reset="earliest",
        enable_auto_commit=False,
    )
    await consumer.start()
    found: list[dict[str, Any]] = []
    try:
        async with asyncio.timeout(60):
            while True:
                for records in (await consumer.getmany(timeout_ms=300)).values():
                    for record in records:
                        try:
                            body = json.loads(record.value)
                        except ValueError:
                            continue
                        if isinstance(body, dict) and body.get("tenant_id") == tenant:
                            found.append(body)
                parts = consumer.assignment()
                ends = await consumer.end_offsets(list(parts)) if parts else {}
                at_end = bool(parts)
                for part in parts:
                    at_end = at_end and await consumer.position(part) >= ends[part]
                if at_end and enough(found):
                    return found
    finally:
        await consumer.stop()


def _engagement(events: list[dict[str, Any]]) -> list[dict[str, Any]]:
    return [e["payload"] for e in events if e["type"] == "post.engagement_updated"]


async def _measured(admin_db: asyncpg.Connection, delivery_id: str) -> datetime | None:
    at: datetime | None = await admin_db.fetchval(
        "SELECT measured_at FROM publisher.post_engagement WHERE delivery_id = $1",
        uuid.UUID(delivery_id),
    )
    return at


async def test_engagement_is_measured_and_emitted_only_when_it_changes(
    publisher: str,
    sandbox: str,
    http: httpx.AsyncClient,
    stack: SessionStack,
    admin_db: asyncpg.Connection,
    tenant: str,
) -> None:
    admin = token(stack.auth_secret, tenant, "admin")
    brand = await _account(http, sandbox, followers_count=40)
    fans = [await _account(http, sandbox) for _ in range(3)]
    channel = await _channel(http, publisher, admin, sandbox, brand)
    r = await http.post(
        f"{publisher}/api/v1/posts",
        json={"brand_id": "acme", "variants": [{"channel_id": channel["id"], "text": "Sale!"}]},
        headers=admin,
    )
    assert r.status_code == 201, r.text
    post_id = r.json()["id"]
    await http.post(f"{publisher}/api/v1/posts/{post_id}/submit", headers=admin)
    r = await http.post(f"{publisher}/api/v1/posts/{post_id}/publish-now", headers=admin)
    assert r.status_code == 200, r.text

    async def published() -> dict[str, Any]:
        body = (await http.get(f"{publisher}/api/v1/posts/{post_id}", headers=admin)).json()
        return dict(body["deliveries"][0]) if body["status"] == "published" else {}

    delivery = await wait_until(published, timeout_s=60, interval_s=0.2, what="the post out")
    status_id = delivery["remote_id"]

    # The first measurement: nothing yet but the audience.
    first = await _tenant_events(stack, tenant, lambda found: len(_engagement(found)) >= 1)
    assert _engagement(first)[0] | {"measured_at": None} == {
        "post_id": post_id,
        "channel_id": channel["id"],
        "network": "mastodon",
        "external_id": status_id,
        "measured_at": None,
        "likes": 0,
        "reposts": 0,
        "replies": 0,
        "views": None,
        "followers": 40,
    }
    published_event = next(e for e in first if e["type"] == "post.published")
    assert published_event["payload"]["scheduled_at"] is not None
    assert datetime.fromisoformat(published_event["payload"]["scheduled_at"]) == (
        datetime.fromisoformat(delivery["due_at"])
    )

    for fan in fans[:2]:
        await _act(http, sandbox, fan, f"/api/v1/statuses/{status_id}/favourite")
    await _act(http, sandbox, fans[2], f"/api/v1/statuses/{status_id}/reblog")
    await _act(http, sandbox, fans[2], "/api/v1/statuses", status="Nice", in_reply_to_id=status_id)
    await _act(http, sandbox, fans[0], f"/api/v1/accounts/{brand['id']}/follow")

    def settled(found: list[dict[str, Any]]) -> bool:
        last = _engagement(found)[-1] if _engagement(found) else {}
        return (last.get("likes"), last.get("reposts"), last.get("replies")) == (2, 1, 1) and (
            last.get("followers") == 41
        )

    changed = _engagement(await _tenant_events(stack, tenant, settled))
    # Every event says something new: no two in a row carry the same counters.
    counters = [
        (e["likes"], e["reposts"], e["replies"], e["views"], e["followers"]) for e in changed
    ]
    assert all(a != b for a, b in itertools.pairwise(counters))
    seen = datetime.fromisoformat(changed[-1]["measured_at"])

    # Two more measurements that find nothing new, and every event they could have made relayed.
    async def measured_twice_more() -> bool:
        at = await _measured(admin_db, delivery["id"])
        return at is not None and at > seen + timedelta(seconds=2 * float(INTERVAL_S))

    await wait_until(measured_twice_more, timeout_s=30, interval_s=0.2, what="re-measurements")

    async def relayed() -> bool:
        left = await admin_db.fetchval(
            "SELECT count(*) FROM publisher.outbox WHERE event->>'tenant_id' = $1", tenant
        )
        return bool(left == 0)

    await wait_until(relayed, timeout_s=30, interval_s=0.1, what="the outbox drained")
    after = _engagement(await _tenant_events(stack, tenant, lambda found: True))
    assert len(after) == len(changed)


async def test_a_post_for_two_channels_is_scheduled_once_per_channel_at_its_own_time(
    services: dict[str, ServiceProcess],
    sandbox: str,
    http: httpx.AsyncClient,
    stack: SessionStack,
    tenant: str,
) -> None:
    publisher = services["publisher"].url
    admin = token(stack.auth_secret, tenant, "admin")
    morning = await _channel(http, publisher, admin, sandbox, await _account(http, sandbox))
    evening = await _channel(http, publisher, admin, sandbox, await _account(http, sandbox))
    for channel, at in ((morning, time(9, 0)), (evening, time(18, 30))):
        r = await http.put(
            f"{publisher}/api/v1/channels/{channel['id']}/slots",
            json={"slots": [{"weekday": d, "time": at.isoformat()} for d in range(7)]},
            headers=admin,
        )
        assert r.status_code == 200, r.text
    variants = [{"channel_id": c["id"], "text": "Both"} for c in (morning, evening)]
    r = await http.post(
        f"{publisher}/api/v1/posts",
        json={"brand_id": "acme", "variants": variants},
        headers=admin,
    )
    assert r.status_code == 201, r.text
    post_id = r.json()["id"]
    await http.post(f"{publisher}/api/v1/posts/{post_id}/submit", headers=admin)
    r = await http.post(
        f"{publisher}/api/v1/posts/{post_id}/schedule", json={"queue": True}, headers=admin
    )
    assert r.status_code == 200, r.text
    due = {d["channel_id"]: d["due_at"] for d in r.json()["deliveries"]}

    found = await events_for(stack.bootstrap, stack.topic(POSTS.name), tenant, 2)

    scheduled = {
        e["payload"]["channel_id"]: e["payload"]
        for e in found
        if e["type"] == "post.scheduled" and e["payload"]["post_id"] == post_id
    }
    assert set(scheduled) == {morning["id"], evening["id"]}
    for channel_id, payload in scheduled.items():
        assert payload["network"] == "mastodon"
        assert datetime.fromisoformat(payload["scheduled_at"]) == datetime.fromisoformat(
            due[channel_id]
        )
    assert scheduled[morning["id"]]["scheduled_at"] != scheduled[evening["id"]]["scheduled_at"]
