"""Publishing through the publisher's API to the sandbox network: validation, approvals,
scheduling in the brand's zone, exactly-once dispatch under faults and crashes, and replies the
inbox asks for — checked on the API, on Kafka and on the sandbox itself."""

from __future__ import annotations

import asyncio
import base64
import itertools
import json
import uuid
from datetime import UTC, datetime, timedelta
from typing import Any
from zoneinfo import ZoneInfo

import asyncpg
import httpx
import pytest
from aiokafka import AIOKafkaProducer
from starlette.applications import Starlette
from starlette.responses import Response as StarletteResponse
from starlette.routing import Route

from shared.events import ReplyRequestedPayload, envelope_for
from shared.topics import INBOX, POSTS
from tests.conftest import SessionStack
from tests.fakes.server import serve
from tests.support import ServiceProcess, events_for, free_port, token, wait_until


async def _account(http: httpx.AsyncClient, sandbox: str) -> dict[str, Any]:
    r = await http.post(
        f"{sandbox}/sandbox/accounts", json={"username": f"brand_{uuid.uuid4().hex[:10]}"}
    )
    assert r.status_code in (200, 201), r.text
    return dict(r.json())


async def _statuses(http: httpx.AsyncClient, sandbox: str, account: dict[str, Any]) -> list[Any]:
    r = await http.get(f"{sandbox}/sandbox/accounts/{account['id']}/statuses")
    assert r.status_code == 200, r.text
    body = r.json()
    return list(body["statuses"] if isinstance(body, dict) else body)


async def _channel(
    http: httpx.AsyncClient,
    publisher: str,
    sandbox: str,
    admin: dict[str, str],
    account: dict[str, Any],
    *,
    approval: str = "none",
    timezone: str = "Europe/Berlin",
) -> dict[str, Any]:
    r = await http.put(
        f"{publisher}/api/v1/brands/acme/publishing",
        json={"timezone": timezone, "approval": approval},
        headers=admin,
    )
    assert r.status_code == 200, r.text
    r = await http.post(
        f"{publisher}/api/v1/channels",
        json={
            "brand_id": "acme",
            "network": "mastodon",
            "name": "ACME on the sandbox",
            "config": {"api_base": sandbox, "account_id": account["id"]},
            "credentials": {"access_token": account["access_token"]},
        },
        headers=admin,
    )
    assert r.status_code == 201, r.text
    channel = dict(r.json())
    assert "credentials" not in channel
    return channel


async def _post(
    http: httpx.AsyncClient,
    publisher: str,
    headers: dict[str, str],
    channel: dict[str, Any],
    text: str,
) -> dict[str, Any]:
    r = await http.post(
        f"{publisher}/api/v1/posts",
        json={"brand_id": "acme", "variants": [{"channel_id": channel["id"], "text": text}]},
        headers=headers,
    )
    assert r.status_code == 201, r.text
    return dict(r.json())


async def _published(
    http: httpx.AsyncClient, publisher: str, headers: dict[str, str], post_id: str
) -> dict[str, Any]:
    async def done() -> dict[str, Any]:
        body = (await http.get(f"{publisher}/api/v1/posts/{post_id}", headers=headers)).json()
        return dict(body) if body["status"] in ("published", "failed") else {}

    return await wait_until(done, timeout_s=60, interval_s=0.2, what=f"post {post_id} to go out")


async def test_validation_names_the_channel_and_the_rule(
    services: dict[str, ServiceProcess],
    sandbox: str,
    http: httpx.AsyncClient,
    stack: SessionStack,
    tenant: str,
) -> None:
    publisher = services["publisher"].url
    admin = token(stack.auth_secret, tenant, "admin")
    channel = await _channel(http, publisher, sandbox, admin, await _account(http, sandbox))
    too_long = "Autumn sale! " * 40  # 520 characters; the sandbox's Mastodon allows 500
    r = await http.post(
        f"{publisher}/api/v1/posts",
        json={"brand_id": "acme", "variants": [{"channel_id": channel["id"], "text": too_long}]},
        headers=admin,
    )
    assert r.status_code == 422
    body = r.json()
    assert body["details"][0]["rule"] == "text.too_long"
    assert body["details"][0]["channel_id"] == channel["id"]
    assert "ACME on the sandbox" in body["message"]
    preview = await http.post(
        f"{publisher}/api/v1/posts/validate",
        json={"brand_id": "acme", "variants": [{"channel_id": channel["id"], "text": "ok"}]},
        headers=admin,
    )
    assert preview.json() == {"valid": True, "violations": []}
    networks = (await http.get(f"{publisher}/api/v1/networks", headers=admin)).json()["networks"]
    assert networks["mastodon"]["limits"]["max_chars"] == 500
    assert {"mastodon", "bluesky", "telegram", "vk", "meta", "webhook"} <= set(networks)
    other = token(stack.auth_secret, tenant + "-b", "admin")
    foreign = await http.post(
        f"{publisher}/api/v1/posts",
        json={"brand_id": "acme", "variants": [{"channel_id": channel["id"], "text": "hi"}]},
        headers=other,
    )
    assert foreign.status_code == 422


async def test_approved_post_goes_out_once_at_its_local_time_with_an_audit_trail(
    services: dict[str, ServiceProcess],
    sandbox: str,
    http: httpx.AsyncClient,
    stack: SessionStack,
    tenant: str,
) -> None:
    publisher = services["publisher"].url
    admin = token(stack.auth_secret, tenant, "admin")
    manager = token(stack.auth_secret, tenant, "manager")
    agent = token(stack.auth_secret, tenant, "agent")
    client = token(stack.auth_secret, tenant, "client-approver")
    account = await _account(http, sandbox)
    channel = await _channel(
        http, publisher, sandbox, admin, account, approval="internal_client", timezone="Asia/Tokyo"
    )
    post = await _post(http, publisher, agent, channel, "Our winter boots are here #acme")
    url = f"{publisher}/api/v1/posts/{post['id']}"
    local = (datetime.now(ZoneInfo("Asia/Tokyo")) + timedelta(seconds=3)).replace(tzinfo=None)
    early = await http.post(f"{url}/schedule", json={"at_local": local.isoformat()}, headers=agent)
    assert early.status_code == 409  # not approved: it cannot be scheduled
    assert (await http.post(f"{url}/submit", headers=agent)).json()["status"] == "pending_internal"
    assert (await http.post(f"{url}/approve", json={}, headers=agent)).status_code == 403
    step = await http.post(f"{url}/approve", json={"comment": "fine"}, headers=manager)
    assert step.json()["status"] == "pending_client"
    rejected = await http.post(f"{url}/reject", json={"comment": "say boots"}, headers=client)
    assert rejected.json()["status"] == "rejected"
    await http.post(f"{url}/submit", headers=agent)
    await http.post(f"{url}/approve", json={}, headers=manager)
    final = await http.post(f"{url}/approve", json={"comment": "go"}, headers=client)
    assert final.json()["status"] == "approved"
    local = (datetime.now(ZoneInfo("Asia/Tokyo")) + timedelta(seconds=2)).replace(tzinfo=None)
    scheduled = await http.post(
        f"{url}/schedule", json={"at_local": local.isoformat()}, headers=agent
    )
    assert scheduled.status_code == 200, scheduled.text
    body = scheduled.json()
    assert body["status"] == "scheduled"
    assert body["scheduled_local"].startswith(local.isoformat()[:19])
    assert body["timezone"] == "Asia/Tokyo"

    done = await _published(http, publisher, agent, post["id"])
    assert done["status"] == "published"
    (delivery,) = done["deliveries"]
    assert delivery["remote_id"]
    assert datetime.fromisoformat(delivery["published_at"]) >= datetime.fromisoformat(
        body["scheduled_at"]
    )
    actions = [(a["action"], a["role"]) for a in done["audit"]]
    assert actions == [
        ("created", "agent"),
        ("submitted", "agent"),
        ("approved", "manager"),
        ("rejected", "client-approver"),
        ("submitted", "agent"),
        ("approved", "manager"),
        ("approved", "client-approver"),
        ("scheduled", "agent"),
    ]
    assert [a["outcome"] for a in done["attempts"]] == ["published"]
    statuses = await _statuses(http, sandbox, account)
    assert [s["id"] for s in statuses] == [delivery["remote_id"]]
    published = [
        e
        for e in await events_for(stack.bootstrap, stack.topic(POSTS.name), tenant, 4)
        if e["type"] == "post.published"
    ]
    assert published[0]["payload"]["external_id"] == delivery["remote_id"]


async def test_queue_slots_and_calendar_in_the_brand_zone(
    services: dict[str, ServiceProcess],
    sandbox: str,
    http: httpx.AsyncClient,
    stack: SessionStack,
    tenant: str,
) -> None:
    publisher = services["publisher"].url
    admin = token(stack.auth_secret, tenant, "admin")
    channel = await _channel(
        http, publisher, sandbox, admin, await _account(http, sandbox), timezone="America/New_York"
    )
    slots = [{"weekday": d, "time": "09:00:00"} for d in range(7)]
    # Two people saving the same schedule at once: both saves succeed, one after the other.
    saves = await asyncio.gather(
        *(
            http.put(
                f"{publisher}/api/v1/channels/{channel['id']}/slots",
                json={"slots": slots},
                headers=admin,
            )
            for _ in range(4)
        )
    )
    assert [r.status_code for r in saves] == [200] * 4
    first = await _post(http, publisher, admin, channel, "first in the queue")
    second = await _post(http, publisher, admin, channel, "second in the queue")
    locals_ = []
    for post in (first, second):
        url = f"{publisher}/api/v1/posts/{post['id']}"
        await http.post(f"{url}/submit", headers=admin)
        queued = await http.post(f"{url}/schedule", json={"queue": True}, headers=admin)
        assert queued.status_code == 200, queued.text
        local = datetime.fromisoformat(queued.json()["deliveries"][0]["due_local"])
        assert (local.hour, local.minute) == (9, 0)
        locals_.append(local)
    assert locals_[1] - locals_[0] == timedelta(days=1)  # the next free slot, not the same one
    calendar = await http.get(
        f"{publisher}/api/v1/calendar",
        params={
            "brand_id": "acme",
            "from": locals_[0].date().isoformat(),
            "to": locals_[1].date().isoformat(),
        },
        headers=admin,
    )
    days = calendar.json()["days"]
    assert [d["date"] for d in days] == [
        locals_[0].date().isoformat(),
        locals_[1].date().isoformat(),
    ]
    cancelled = await http.post(f"{publisher}/api/v1/posts/{second['id']}/cancel", headers=admin)
    assert cancelled.json()["status"] == "cancelled"


async def test_timeout_after_send_is_reconciled_never_duplicated(
    services: dict[str, ServiceProcess],
    sandbox: str,
    http: httpx.AsyncClient,
    stack: SessionStack,
    tenant: str,
) -> None:
    publisher = services["publisher"].url
    admin = token(stack.auth_secret, tenant, "admin")
    account = await _account(http, sandbox)
    channel = await _channel(http, publisher, sandbox, admin, account)
    post = await _post(http, publisher, admin, channel, "Published despite the timeout")
    fault = await http.post(
        f"{sandbox}/sandbox/faults",
        json={
            "kind": "timeout_after_send",
            "path_prefix": "/api/v1/statuses",
            "method": "POST",
            "delay_ms": 4000,
        },
    )
    assert fault.status_code in (200, 201), fault.text
    url = f"{publisher}/api/v1/posts/{post['id']}"
    await http.post(f"{url}/submit", headers=admin)
    await http.post(f"{url}/publish-now", headers=admin)
    done = await _published(http, publisher, admin, post["id"])
    assert done["status"] == "published"
    outcomes = [a["outcome"] for a in done["attempts"]]
    assert outcomes[0] == "unknown"
    assert len(await _statuses(http, sandbox, account)) == 1
    stats = (await http.get(f"{sandbox}/sandbox/stats")).json()
    assert stats["duplicates_by_idempotency_key"] == 0


@pytest.mark.parametrize("round_", [1, 2, 3])
async def test_publisher_killed_between_the_call_and_the_record_publishes_once(
    services: dict[str, ServiceProcess],
    sandbox: str,
    http: httpx.AsyncClient,
    stack: SessionStack,
    tenant: str,
    admin_db: asyncpg.Connection,
    round_: int,
) -> None:
    publisher = services["publisher"]
    admin = token(stack.auth_secret, tenant, "admin")
    account = await _account(http, sandbox)
    channel = await _channel(http, publisher.url, sandbox, admin, account)
    posts = [await _post(http, publisher.url, admin, channel, f"crash test {i}") for i in range(3)]
    # The network applies each post and then holds the answer, so the publisher dies with the
    # post made but its outcome not recorded.
    await http.post(
        f"{sandbox}/sandbox/faults",
        json={
            "kind": "timeout_after_send",
            "path_prefix": "/api/v1/statuses",
            "method": "POST",
            "delay_ms": 1500,
            "count": 3,
        },
    )
    for post in posts:
        url = f"{publisher.url}/api/v1/posts/{post['id']}"
        await http.post(f"{url}/submit", headers=admin)
        await http.post(f"{url}/publish-now", headers=admin)

    async def mid_call() -> bool:
        open_attempts = await admin_db.fetchval(
            """
            SELECT count(*) FROM publisher.attempts a
            JOIN publisher.deliveries d ON d.id = a.delivery_id
            WHERE d.tenant_id = $1 AND a.finished_at IS NULL
            """,
            tenant,
        )
        return bool(open_attempts)

    try:
        await wait_until(mid_call, timeout_s=30, interval_s=0.02, what="an attempt in flight")
        publisher.kill9()
    finally:
        if publisher.proc is None or publisher.proc.poll() is not None:
            publisher.start()
    await publisher.wait_ready()
    for post in posts:
        done = await _published(http, publisher.url, admin, post["id"])
        assert done["status"] == "published"
    texts = sorted(s["content"] for s in await _statuses(http, sandbox, account))
    assert len(texts) == 3
    stats = (await http.get(f"{sandbox}/sandbox/stats")).json()
    assert stats["duplicates_by_idempotency_key"] == 0


async def test_a_reply_the_inbox_asks_for_is_published_once(
    services: dict[str, ServiceProcess],
    sandbox: str,
    http: httpx.AsyncClient,
    stack: SessionStack,
    tenant: str,
) -> None:
    publisher = services["publisher"].url
    admin = token(stack.auth_secret, tenant, "admin")
    account, fan = await _account(http, sandbox), await _account(http, sandbox)
    channel = await _channel(http, publisher, sandbox, admin, account)
    question = await http.post(
        f"{sandbox}/api/v1/statuses",
        json={"status": f"@{account['username']} do you ship to Canada?"},
        headers={"Authorization": f"Bearer {fan['access_token']}"},
    )
    request = ReplyRequestedPayload(
        request_id=uuid.uuid4(),
        channel_id=uuid.UUID(channel["id"]),
        reply_to_external_id=question.json()["id"],
        text="Yes, we do! Shipping takes 5 days.",
    )
    event = envelope_for(request, tenant_id=tenant, brand_id="acme", occurred_at=datetime.now(UTC))
    producer = AIOKafkaProducer(bootstrap_servers=stack.bootstrap, acks="all")
    await producer.start()
    try:
        for _ in range(2):  # delivered twice: still one reply
            await producer.send_and_wait(
                stack.topic(INBOX.name), json.dumps(event).encode(), key=tenant.encode()
            )
    finally:
        await producer.stop()
    (outcome,) = [
        e
        for e in await events_for(stack.bootstrap, stack.topic(POSTS.name), tenant, 1)
        if e["type"].startswith("reply.")
    ]
    assert outcome["type"] == "reply.published"
    assert outcome["payload"]["request_id"] == str(request.request_id)
    statuses = await _statuses(http, sandbox, account)
    assert [s["in_reply_to_id"] for s in statuses] == [question.json()["id"]]


async def test_three_replicas_publish_every_post_exactly_once(
    services: dict[str, ServiceProcess],
    sandbox: str,
    http: httpx.AsyncClient,
    stack: SessionStack,
    tenant: str,
) -> None:
    publisher = services["publisher"]
    admin = token(stack.auth_secret, tenant, "admin")
    extra = [
        ServiceProcess(
            "publisher",
            {**publisher.env, "SMM_PUBLISHER_HTTP_PORT": str(port := free_port())},
            port,
            stack.logs / f"publisher-{n}.log",
        )
        for n in (2, 3)
    ]
    for replica in extra:
        replica.start()
    try:
        for replica in extra:
            await replica.wait_ready()
        accounts = [await _account(http, sandbox) for _ in range(10)]
        posts = []
        due = datetime.now(UTC) + timedelta(seconds=4)
        for account in accounts:
            channel = await _channel(http, publisher.url, sandbox, admin, account)
            for i in range(10):
                post = await _post(http, publisher.url, admin, channel, f"replicas {i}")
                url = f"{publisher.url}/api/v1/posts/{post['id']}"
                await http.post(f"{url}/submit", headers=admin)
                r = await http.post(f"{url}/schedule", json={"at": due.isoformat()}, headers=admin)
                assert r.status_code == 200, r.text
                posts.append(post)
        for post in posts:
            done = await _published(http, publisher.url, admin, post["id"])
            assert done["status"] == "published"
        for account in accounts:
            assert len(await _statuses(http, sandbox, account)) == 10
        stats = (await http.get(f"{sandbox}/sandbox/stats")).json()
        assert stats["duplicates_by_idempotency_key"] == 0
    finally:
        for replica in extra:
            replica.stop()


async def test_csv_import_schedules_and_export_reads_back(
    services: dict[str, ServiceProcess],
    sandbox: str,
    http: httpx.AsyncClient,
    stack: SessionStack,
    tenant: str,
) -> None:
    publisher = services["publisher"].url
    admin = token(stack.auth_secret, tenant, "admin")
    channel = await _channel(http, publisher, sandbox, admin, await _account(http, sandbox))
    day = (datetime.now(ZoneInfo("Europe/Berlin")) + timedelta(days=3)).date()
    good = (
        "channel_id,scheduled_at_local,text,tags\r\n"
        f'{channel["id"]},{day} 09:00,Monday motivation,"a,b"\r\n'
        f"{channel['id']},{day} 18:30,Evening drop,\r\n"
    )
    r = await http.post(f"{publisher}/api/v1/posts/import", content=good.encode(), headers=admin)
    assert r.status_code == 201, r.text
    assert len(r.json()["created"]) == 2
    bad = (
        "channel_id,scheduled_at_local,text\r\n"
        f"{channel['id']},tomorrow,x\r\n"
        f"{channel['id']},{day} 10:00,\r\n"
    )
    refused = await http.post(
        f"{publisher}/api/v1/posts/import", content=bad.encode(), headers=admin
    )
    assert refused.status_code == 422
    assert sorted(d["row"] for d in refused.json()["details"]) == [2, 3]
    exported = await http.get(
        f"{publisher}/api/v1/posts/export",
        params={"brand_id": "acme", "from": day.isoformat(), "to": day.isoformat()},
        headers=admin,
    )
    assert exported.status_code == 200
    lines = exported.text.lstrip("\ufeff").strip().splitlines()
    assert len(lines) == 3
    assert f"{day} 09:00" in lines[1]
    assert f"{day} 18:30" in lines[2]


async def test_three_replicas_10000_posts_due_in_the_same_minute_across_500_channels(
    services: dict[str, ServiceProcess],
    sandbox: str,
    http: httpx.AsyncClient,
    stack: SessionStack,
    tenant: str,
    admin_db: asyncpg.Connection,
) -> None:
    """The issue's scale test: every post exactly once; the latest one goes out within a couple
    of minutes of the shared due minute (no account is near its rate limit: 20 posts each)."""
    publisher = services["publisher"]
    admin = token(stack.auth_secret, tenant, "admin")
    extra = [
        ServiceProcess(
            "publisher",
            {**publisher.env, "SMM_PUBLISHER_HTTP_PORT": str(port := free_port())},
            port,
            stack.logs / f"publisher-scale-{n}.log",
        )
        for n in (2, 3)
    ]
    for replica in extra:
        replica.start()
    try:
        for replica in extra:
            await replica.wait_ready()
        accounts = [await _account(http, sandbox) for _ in range(500)]
        channels = [await _channel(http, publisher.url, sandbox, admin, a) for a in accounts]
        # The shared due minute starts 60-120 s from now, so the import is done before it.
        due = (datetime.now(ZoneInfo("Europe/Berlin")) + timedelta(minutes=2)).replace(
            second=0, microsecond=0, tzinfo=None
        )
        rows = [
            f"{c['id']},{due:%Y-%m-%d %H:%M},post {i} of {c['id'][:8]}"
            for c in channels
            for i in range(20)
        ]
        for chunk in (rows[:5000], rows[5000:]):
            csv_body = "channel_id,scheduled_at_local,text\r\n" + "\r\n".join(chunk) + "\r\n"
            r = await http.post(
                f"{publisher.url}/api/v1/posts/import",
                content=csv_body.encode(),
                headers=admin,
                timeout=120,
            )
            assert r.status_code == 201, r.text

        async def all_out() -> bool:
            left = await admin_db.fetchval(
                """
                SELECT count(*) FROM publisher.deliveries
                WHERE tenant_id = $1 AND status <> 'published'
                """,
                tenant,
            )
            return bool(left == 0)

        await wait_until(all_out, timeout_s=300, interval_s=1, what="10,000 posts to go out")
        lateness = await admin_db.fetchrow(
            """
            SELECT count(*) AS n, max(published_at - due_at) AS worst
            FROM publisher.deliveries WHERE tenant_id = $1
            """,
            tenant,
        )
        assert lateness is not None
        assert lateness["n"] == 10_000
        assert lateness["worst"] < timedelta(minutes=3), lateness
        stats = (await http.get(f"{sandbox}/sandbox/stats")).json()
        assert stats["duplicates_by_idempotency_key"] == 0
        for account in accounts[::50]:
            assert len(await _statuses(http, sandbox, account)) == 20
        total = await admin_db.fetchval(
            "SELECT count(DISTINCT remote_id) FROM publisher.deliveries WHERE tenant_id = $1",
            tenant,
        )
        assert total == 10_000
    finally:
        for replica in extra:
            replica.stop()


async def test_a_recurring_post_keeps_its_local_time_and_cancels_as_a_whole(
    services: dict[str, ServiceProcess],
    sandbox: str,
    http: httpx.AsyncClient,
    stack: SessionStack,
    tenant: str,
) -> None:
    publisher = services["publisher"].url
    admin = token(stack.auth_secret, tenant, "admin")
    channel = await _channel(
        http, publisher, sandbox, admin, await _account(http, sandbox), timezone="Europe/Berlin"
    )
    post = await _post(http, publisher, admin, channel, "Monday tip of the week")
    url = f"{publisher}/api/v1/posts/{post['id']}"
    await http.post(f"{url}/submit", headers=admin)
    start = (datetime.now(ZoneInfo("Europe/Berlin")) + timedelta(days=2)).replace(
        hour=9, minute=0, second=0, microsecond=0, tzinfo=None
    )
    bad = await http.post(
        f"{url}/schedule",
        json={"at_local": start.isoformat(), "rrule": "FREQ=WEEKLY;BYDAY=XX"},
        headers=admin,
    )
    assert bad.status_code == 422
    assert bad.json()["details"][0]["field"] == "rrule"
    r = await http.post(
        f"{url}/schedule",
        json={"at_local": start.isoformat(), "rrule": "FREQ=WEEKLY;COUNT=6"},
        headers=admin,
    )
    assert r.status_code == 200, r.text
    deliveries = r.json()["deliveries"]
    assert len(deliveries) == 6
    locals_ = sorted(datetime.fromisoformat(d["due_local"]) for d in deliveries)
    # Six weeks cross a DST change for most start dates; the wall-clock time never moves.
    assert {(t.hour, t.minute, t.weekday()) for t in locals_} == {(9, 0, start.weekday())}
    assert [b - a for a, b in itertools.pairwise(locals_)] == [timedelta(days=7)] * 5
    moved = await http.post(f"{url}/schedule", json={"at_local": start.isoformat()}, headers=admin)
    assert moved.status_code == 409
    cancelled = await http.post(f"{url}/cancel", headers=admin)
    assert {d["status"] for d in cancelled.json()["deliveries"]} == {"cancelled"}


async def test_media_is_fetched_from_its_url_and_attached(
    services: dict[str, ServiceProcess],
    sandbox: str,
    http: httpx.AsyncClient,
    stack: SessionStack,
    tenant: str,
) -> None:
    png = base64.b64decode(
        "iVBORw0KGgoAAAANSUhEUgAAAAEAAAABCAYAAAAfFcSJAAAADUlEQVR42mP8z8BQDwAEhQGAhKmMIQAAAABJRU5ErkJggg=="
    )
    media_store = Starlette(
        routes=[Route("/boots.png", lambda _: StarletteResponse(png, media_type="image/png"))]
    )
    publisher = services["publisher"].url
    admin = token(stack.auth_secret, tenant, "admin")
    account = await _account(http, sandbox)
    channel = await _channel(http, publisher, sandbox, admin, account)
    async with serve(media_store) as store:
        r = await http.post(
            f"{publisher}/api/v1/posts",
            json={
                "brand_id": "acme",
                "variants": [
                    {
                        "channel_id": channel["id"],
                        "text": "New boots, new season",
                        "media": [
                            {"type": "image", "url": f"{store}/boots.png", "alt_text": "Boots"}
                        ],
                    }
                ],
            },
            headers=admin,
        )
        assert r.status_code == 201, r.text
        url = f"{publisher}/api/v1/posts/{r.json()['id']}"
        await http.post(f"{url}/submit", headers=admin)
        await http.post(f"{url}/publish-now", headers=admin)
        done = await _published(http, publisher, admin, r.json()["id"])
    assert done["status"] == "published", done
    (status,) = await _statuses(http, sandbox, account)
    assert [(m["type"], m["description"]) for m in status["media_attachments"]] == [
        ("image", "Boots")
    ]


async def test_posts_are_listed_newest_first_and_drafts_can_be_deleted(
    services: dict[str, ServiceProcess],
    sandbox: str,
    http: httpx.AsyncClient,
    stack: SessionStack,
    tenant: str,
) -> None:
    publisher = services["publisher"].url
    admin = token(stack.auth_secret, tenant, "admin")
    channel = await _channel(http, publisher, sandbox, admin, await _account(http, sandbox))
    made = [await _post(http, publisher, admin, channel, f"draft {i}") for i in range(5)]
    first = await http.get(f"{publisher}/api/v1/posts", params={"limit": 3}, headers=admin)
    page = first.json()
    assert [p["id"] for p in page["posts"]] == [p["id"] for p in reversed(made)][:3]
    rest = await http.get(
        f"{publisher}/api/v1/posts",
        params={"limit": 3, "cursor": page["next_cursor"]},
        headers=admin,
    )
    assert [p["id"] for p in rest.json()["posts"]] == [made[1]["id"], made[0]["id"]]
    assert rest.json()["next_cursor"] is None
    gone = await http.delete(f"{publisher}/api/v1/posts/{made[0]['id']}", headers=admin)
    assert gone.status_code == 204
    listed = await http.get(f"{publisher}/api/v1/posts", headers=admin)
    assert made[0]["id"] not in [p["id"] for p in listed.json()["posts"]]
    audit = (await http.get(f"{publisher}/api/v1/posts/{made[0]['id']}", headers=admin)).json()
    assert audit["status"] == "deleted"
    assert audit["audit"][-1]["action"] == "deleted"
