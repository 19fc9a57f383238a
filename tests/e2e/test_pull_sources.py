"""Pull sources on the sandbox network: the scheduler polls, resumes after crashes, shares sources
between replicas, and reports failures in the source status — checked through public APIs."""

from __future__ import annotations

import json
import uuid
from datetime import UTC, datetime, timedelta
from typing import Any

import httpx
import pytest
from aiokafka import AIOKafkaProducer

from shared.events import PostPublishedPayload, envelope_for
from shared.topics import MENTIONS, POSTS
from tests.conftest import SessionStack
from tests.support import ServiceProcess, all_items, events_for, free_port, token, wait_until


async def _account(http: httpx.AsyncClient, sandbox: str, name: str) -> dict[str, Any]:
    r = await http.post(
        f"{sandbox}/sandbox/accounts", json={"username": f"{name}_{uuid.uuid4().hex[:8]}"}
    )
    assert r.status_code in (200, 201), r.text
    return dict(r.json())


async def _post(http: httpx.AsyncClient, sandbox: str, author: dict[str, Any], text: str) -> None:
    r = await http.post(
        f"{sandbox}/api/v1/statuses",
        json={"status": text},
        headers={"Authorization": f"Bearer {author['access_token']}"},
    )
    assert r.status_code == 200, r.text


async def _brand_with_mastodon_source(
    http: httpx.AsyncClient,
    ingest: str,
    sandbox: str,
    admin: dict[str, str],
    brand: dict[str, Any],
    brand_id: str = "acme",
) -> dict[str, Any]:
    r = await http.post(
        f"{ingest}/api/v1/brands", json={"id": brand_id, "name": "A"}, headers=admin
    )
    assert r.status_code == 201, r.text
    r = await http.post(
        f"{ingest}/api/v1/sources",
        json={
            "kind": "pull",
            "network": "mastodon",
            "brand_id": brand_id,
            "name": "Mentions of the brand account",
            "config": {"api_base": sandbox, "mode": "notifications"},
            "credentials": {"access_token": brand["access_token"]},
            "interval_s": 10,
        },
        headers=admin,
    )
    assert r.status_code == 201, r.text
    source = dict(r.json())
    assert "credentials" not in source

    async def first_run_done() -> bool:
        s = (await http.get(f"{ingest}/api/v1/sources/{source['id']}", headers=admin)).json()
        return s["last_run_at"] is not None

    # A new source starts from "now" (it does not backfill the account's history), so tests
    # post after its first run.
    await wait_until(first_run_done, timeout_s=30, interval_s=0.1, what="the source's first run")
    return source


async def _inbox_texts(
    http: httpx.AsyncClient, inbox: str, reader: dict[str, str], want: int
) -> list[str]:
    async def enough() -> list[str]:
        items = await all_items(http, inbox, reader)
        return [i["text"] for i in items] if len(items) >= want else []

    return await wait_until(enough, timeout_s=60, interval_s=0.2, what=f"{want} inbox items")


async def test_pull_source_brings_sandbox_mentions_to_the_inbox_and_resumes(
    services: dict[str, ServiceProcess],
    sandbox: str,
    http: httpx.AsyncClient,
    stack: SessionStack,
    tenant: str,
) -> None:
    ingest, inbox = services["ingest"].url, services["inbox"].url
    admin, reader = (
        token(stack.auth_secret, tenant, "admin"),
        token(stack.auth_secret, tenant, "agent"),
    )
    brand, fan = await _account(http, sandbox, "acme"), await _account(http, sandbox, "fan")
    source = await _brand_with_mastodon_source(http, ingest, sandbox, admin, brand)
    for i in range(90):  # more than two pages of notifications
        await _post(http, sandbox, fan, f"@{brand['username']} question number {i}")
    await http.post(f"{ingest}/api/v1/sources/{source['id']}/run", headers=admin)
    texts = await _inbox_texts(http, inbox, reader, 90)
    assert sorted(texts) == sorted(f"@{brand['username']} question number {i}" for i in range(90))

    for i in range(90, 95):
        await _post(http, sandbox, fan, f"@{brand['username']} question number {i}")
    await http.post(f"{ingest}/api/v1/sources/{source['id']}/run", headers=admin)
    texts = await _inbox_texts(http, inbox, reader, 95)
    assert len(texts) == len(set(texts)) == 95
    status = (await http.get(f"{ingest}/api/v1/sources/{source['id']}", headers=admin)).json()
    assert status["status"] == "active"
    assert status["items_total"] == 95
    assert status["items_last_hour"] == 95
    assert status["last_success_at"] is not None
    found = await http.get(
        f"{ingest}/api/v1/mentions",
        params={"network": "mastodon", "q": "number 93"},
        headers=reader,
    )
    assert [m["text"] for m in found.json()["mentions"]] == [
        f"@{brand['username']} question number 93"
    ]


async def test_revoked_credentials_mark_the_source_and_new_ones_reconnect_it(
    services: dict[str, ServiceProcess],
    sandbox: str,
    http: httpx.AsyncClient,
    stack: SessionStack,
    tenant: str,
) -> None:
    ingest, inbox = services["ingest"].url, services["inbox"].url
    admin, reader = (
        token(stack.auth_secret, tenant, "admin"),
        token(stack.auth_secret, tenant, "agent"),
    )
    brand, fan = await _account(http, sandbox, "acme"), await _account(http, sandbox, "fan")
    source = await _brand_with_mastodon_source(http, ingest, sandbox, admin, brand)
    await http.post(f"{sandbox}/sandbox/accounts/{brand['id']}/revoke")
    await _post(http, sandbox, fan, f"@{brand['username']} hello?")
    await http.post(f"{ingest}/api/v1/sources/{source['id']}/run", headers=admin)

    async def flagged() -> dict[str, Any]:
        s = (await http.get(f"{ingest}/api/v1/sources/{source['id']}", headers=admin)).json()
        return dict(s) if s["status"] == "needs_reconnect" else {}

    status = await wait_until(flagged, timeout_s=30, interval_s=0.2, what="needs_reconnect")
    assert "AuthFailed" in status["last_error"]
    fresh = (await http.post(f"{sandbox}/sandbox/accounts/{brand['id']}/tokens")).json()
    patched = await http.patch(
        f"{ingest}/api/v1/sources/{source['id']}",
        json={"credentials": {"access_token": fresh["access_token"]}},
        headers=admin,
    )
    assert patched.json()["status"] == "active"
    assert await _inbox_texts(http, inbox, reader, 1) == [f"@{brand['username']} hello?"]


@pytest.mark.parametrize("crash", [False, True], ids=["two-replicas", "replica-killed"])
async def test_replicas_share_sources_and_every_item_arrives_exactly_once(
    services: dict[str, ServiceProcess],
    sandbox: str,
    http: httpx.AsyncClient,
    stack: SessionStack,
    tenant: str,
    crash: bool,
) -> None:
    ingest, inbox = services["ingest"].url, services["inbox"].url
    admin, reader = (
        token(stack.auth_secret, tenant, "admin"),
        token(stack.auth_secret, tenant, "agent"),
    )
    second = ServiceProcess(
        "ingest",
        {**services["ingest"].env, "SMM_INGEST_HTTP_PORT": str(port := free_port())},
        port,
        stack.logs / "ingest-2.log",
    )
    second.start()
    try:
        await second.wait_ready()
        expected: set[str] = set()
        sources = []
        for n in range(4):
            brand, fan = await _account(http, sandbox, "acme"), await _account(http, sandbox, "fan")
            sources.append(
                await _brand_with_mastodon_source(http, ingest, sandbox, admin, brand, f"brand-{n}")
            )
            for i in range(120):
                text = f"@{brand['username']} replica test {n}-{i}"
                await _post(http, sandbox, fan, text)
                expected.add(text)
        for source in sources:
            await http.post(f"{ingest}/api/v1/sources/{source['id']}/run", headers=admin)
        if crash:

            async def started() -> bool:
                return len(await all_items(http, inbox, reader)) > 0

            await wait_until(started, timeout_s=30, what="the first items")
            second.kill9()
        texts = await _inbox_texts(http, inbox, reader, len(expected))
        assert len(texts) == len(expected)
        assert set(texts) == expected
    finally:
        second.stop()


async def test_replies_to_our_published_post_become_comments_of_its_brand(
    services: dict[str, ServiceProcess],
    sandbox: str,
    http: httpx.AsyncClient,
    stack: SessionStack,
    tenant: str,
) -> None:
    ingest = services["ingest"].url
    admin, reader = (
        token(stack.auth_secret, tenant, "admin"),
        token(stack.auth_secret, tenant, "agent"),
    )
    brand = await _account(http, sandbox, "acme")
    fan, other = await _account(http, sandbox, "fan"), await _account(http, sandbox, "other")
    await _brand_with_mastodon_source(http, ingest, sandbox, admin, brand)
    ours = await http.post(
        f"{sandbox}/api/v1/statuses",
        json={"status": "Our autumn collection is out!"},
        headers={"Authorization": f"Bearer {brand['access_token']}"},
    )
    post_status = ours.json()
    reply = await http.post(
        f"{sandbox}/api/v1/statuses",
        json={"status": "Love the green one", "in_reply_to_id": post_status["id"]},
        headers={"Authorization": f"Bearer {fan['access_token']}"},
    )
    # A reply to the reply notifies the fan, not the brand: only the post's thread shows it.
    await http.post(
        f"{sandbox}/api/v1/statuses",
        json={"status": "Agreed, the green one", "in_reply_to_id": reply.json()["id"]},
        headers={"Authorization": f"Bearer {other['access_token']}"},
    )
    post_id = uuid.uuid4()
    published = PostPublishedPayload(
        post_id=post_id,
        channel_id=uuid.uuid4(),
        network="mastodon",
        external_id=post_status["id"],
        url=post_status["url"],
        published_at=datetime.now(UTC),
    )
    event = envelope_for(
        published, tenant_id=tenant, brand_id="acme", occurred_at=published.published_at
    )
    producer = AIOKafkaProducer(bootstrap_servers=stack.bootstrap, acks="all")
    await producer.start()
    try:
        await producer.send_and_wait(
            stack.topic(POSTS.name), json.dumps(event).encode(), key=tenant.encode()
        )
    finally:
        await producer.stop()

    # The brand's source may hear the reply before ingest handles post.published: then it is
    # first emitted unlinked and linked later by one mention.updated. Each mention's latest event
    # is what counts.
    for count in (2, 3, 4):
        events = await events_for(stack.bootstrap, stack.topic(MENTIONS.name), tenant, count)
        latest = {e["payload"]["mention_id"]: e for e in events}
        if len(latest) == 2 and all(e["payload"]["replies_to_post_id"] for e in latest.values()):
            break
    # Each reply was received once; a late link adds one update, never a second reception.
    assert sorted(e["type"] for e in events) == ["mention.received"] * 2 + ["mention.updated"] * (
        len(events) - 2
    )
    comments = list(latest.values())
    assert sorted(e["payload"]["text"] for e in comments) == [
        "Agreed, the green one",
        "Love the green one",
    ]
    for e in comments:
        assert e["brand_id"] == "acme"
        assert e["payload"]["kind"] == "comment"
        assert e["payload"]["replies_to_post_id"] == str(post_id)
        assert e["payload"]["thread"]["root_external_id"] == post_status["id"]
    found = await http.get(f"{ingest}/api/v1/mentions", params={"brand_id": "acme"}, headers=reader)
    assert len(found.json()["mentions"]) == 2


async def test_backfill_rereads_a_source_from_a_past_time_without_repeats(
    services: dict[str, ServiceProcess],
    sandbox: str,
    http: httpx.AsyncClient,
    stack: SessionStack,
    tenant: str,
) -> None:
    ingest, inbox = services["ingest"].url, services["inbox"].url
    admin, reader = (
        token(stack.auth_secret, tenant, "admin"),
        token(stack.auth_secret, tenant, "agent"),
    )
    brand, fan = await _account(http, sandbox, "acme"), await _account(http, sandbox, "fan")
    before = datetime.now(UTC)
    for i in range(3):
        await _post(http, sandbox, fan, f"@{brand['username']} old news {i}")
    source = await _brand_with_mastodon_source(http, ingest, sandbox, admin, brand)
    # The first run read the newest page (history is not news), so all three are there now.
    assert len(await _inbox_texts(http, inbox, reader, 3)) == 3
    await _post(http, sandbox, fan, f"@{brand['username']} fresh")
    backfilled = await http.post(
        f"{ingest}/api/v1/sources/{source['id']}/backfill",
        json={"since": (before - timedelta(minutes=1)).isoformat()},
        headers=admin,
    )
    assert backfilled.status_code == 200, backfilled.text
    texts = await _inbox_texts(http, inbox, reader, 4)
    assert len(texts) == len(set(texts)) == 4
    generic = await http.post(f"{ingest}/api/v1/sources", json={"brand_id": "acme"}, headers=admin)
    refused = await http.post(
        f"{ingest}/api/v1/sources/{generic.json()['id']}/backfill",
        json={"since": before.isoformat()},
        headers=admin,
    )
    assert refused.status_code == 422
