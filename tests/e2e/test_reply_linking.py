"""Replies to our posts heard before ingest consumed the post's `post.published` (a notification
pulled first, a webhook delivered first) are linked to the post once it arrives: one
`mention.updated` as a comment of the post, exactly once, kept through edits, and counted by
metrics as replies to the post."""

from __future__ import annotations

import asyncio
import json
import uuid
from collections.abc import AsyncIterator, Callable
from datetime import UTC, datetime, timedelta
from typing import Any

import httpx
import pytest
from aiokafka import AIOKafkaConsumer, AIOKafkaProducer

from services.ingest.connectors.base import FetchedAuthor, FetchedMention
from services.ingest.matching import QueryIndex
from services.ingest.pipeline import PublishedPost, SourceContext, ingest_items, track_posts
from shared.db import create_pool
from shared.events import PostPublishedPayload, envelope_for
from shared.topics import MENTIONS, POSTS
from tests.conftest import SessionStack
from tests.support import ServiceProcess, mention, post_mentions, token, wait_until

Json = dict[str, Any]


class TenantEvents:
    """Every event of one tenant on a topic, read from the start while the test runs."""

    def __init__(self, consumer: AIOKafkaConsumer, tenant: str) -> None:
        self._consumer = consumer
        self._tenant = tenant
        self.seen: list[Json] = []

    async def _drain(self) -> None:
        for records in (await self._consumer.getmany(timeout_ms=200)).values():
            for r in records:
                try:
                    body = json.loads(r.value)
                except ValueError:
                    continue  # other tests' poison events share the topic
                if isinstance(body, dict) and body.get("tenant_id") == self._tenant:
                    self.seen.append(body)

    async def until(self, done: Callable[[list[Json]], bool], what: str) -> list[Json]:
        async def probe() -> bool:
            await self._drain()
            return done(self.seen)

        await wait_until(probe, timeout_s=60, interval_s=0.05, what=what)
        return self.seen

    def of(self, mention_id: str) -> list[Json]:
        return [e for e in self.seen if e["payload"].get("mention_id") == mention_id]


@pytest.fixture
async def mentions(stack: SessionStack, tenant: str) -> AsyncIterator[TenantEvents]:
    consumer = AIOKafkaConsumer(
        stack.topic(MENTIONS.name),
        bootstrap_servers=stack.bootstrap,
        group_id=f"test-{uuid.uuid4()}",
        auto_offset_reset="earliest",
    )
    await consumer.start()
    try:
        yield TenantEvents(consumer, tenant)
    finally:
        await consumer.stop()


def _published(
    tenant: str, brand_id: str, network: str, external_id: str, post_id: uuid.UUID
) -> Json:
    payload = PostPublishedPayload(
        post_id=post_id,
        channel_id=uuid.uuid5(uuid.NAMESPACE_URL, f"{tenant}/{network}"),
        network=network,
        external_id=external_id,
        published_at=datetime.now(UTC),
    )
    return envelope_for(
        payload, tenant_id=tenant, brand_id=brand_id, occurred_at=payload.published_at
    )


async def _send(stack: SessionStack, tenant: str, *events: Json) -> None:
    """Publish as the publisher does; one key per tenant keeps these in order on one partition."""
    producer = AIOKafkaProducer(bootstrap_servers=stack.bootstrap, acks="all")
    await producer.start()
    try:
        for event in events:
            await producer.send_and_wait(
                stack.topic(POSTS.name), json.dumps(event).encode(), key=tenant.encode()
            )
    finally:
        await producer.stop()


async def _ok(response: httpx.Response, *codes: int) -> Json:
    assert response.status_code in (codes or (200, 201)), response.text
    return dict(response.json())


async def _account(http: httpx.AsyncClient, sandbox: str, name: str) -> Json:
    return await _ok(
        await http.post(
            f"{sandbox}/sandbox/accounts", json={"username": f"{name}_{uuid.uuid4().hex[:8]}"}
        )
    )


async def _status(
    http: httpx.AsyncClient, sandbox: str, who: Json, text: str, in_reply_to: str | None = None
) -> Json:
    body: Json = {"status": text}
    if in_reply_to is not None:
        body["in_reply_to_id"] = in_reply_to
    return await _ok(
        await http.post(
            f"{sandbox}/api/v1/statuses",
            json=body,
            headers={"Authorization": f"Bearer {who['access_token']}"},
        )
    )


def _received(events: list[Json], text: str) -> Json | None:
    for e in events:
        if e["type"] == "mention.received" and e["payload"]["text"].endswith(text):
            return e
    return None


async def test_replies_pulled_before_post_published_are_linked_once_when_it_arrives(
    services: dict[str, ServiceProcess],
    sandbox: str,
    http: httpx.AsyncClient,
    stack: SessionStack,
    tenant: str,
    mentions: TenantEvents,
) -> None:
    ingest, metrics = services["ingest"].url, services["metrics"].url
    admin = token(stack.auth_secret, tenant, "admin")
    brand, fan = await _account(http, sandbox, "acme"), await _account(http, sandbox, "fan")
    other = await _account(http, sandbox, "other")
    await _ok(
        await http.post(f"{ingest}/api/v1/brands", json={"id": "acme", "name": "A"}, headers=admin)
    )
    source = await _ok(
        await http.post(
            f"{ingest}/api/v1/sources",
            json={
                "kind": "pull",
                "network": "mastodon",
                "brand_id": "acme",
                "name": "Mentions of the brand account",
                "config": {"api_base": sandbox, "mode": "notifications"},
                "credentials": {"access_token": brand["access_token"]},
                "interval_s": 10,
            },
            headers=admin,
        )
    )

    async def first_run_done() -> bool:
        s = await _ok(await http.get(f"{ingest}/api/v1/sources/{source['id']}", headers=admin))
        return s["last_run_at"] is not None

    # A new source starts from "now": what it should hear is posted after its first run.
    await wait_until(first_run_done, timeout_s=30, interval_s=0.1, what="the source's first run")

    # Two of our posts, each with a fan's reply the brand is notified of, and a reply to the
    # first reply that only the post's thread shows.
    winter = await _status(http, sandbox, brand, "Our winter collection is out!")
    spring = await _status(http, sandbox, brand, "Spring preview next week")
    to_brand = f"@{brand['username']} "  # as a client writes a reply: it mentions the author
    reply = await _status(http, sandbox, fan, to_brand + "Love the blue coat", winter["id"])
    await _status(http, sandbox, other, f"@{fan['username']} The blue one is great", reply["id"])
    await _status(http, sandbox, fan, to_brand + "Can't wait", spring["id"])
    await _ok(await http.post(f"{ingest}/api/v1/sources/{source['id']}/run", headers=admin))

    # The race as users saw it: the notifications are in before ingest knows our posts.
    heard = await mentions.until(
        lambda seen: (
            _received(seen, "Love the blue coat") is not None
            and _received(seen, "Can't wait") is not None
        ),
        "the notifications of both replies",
    )
    first, second = _received(heard, "Love the blue coat"), _received(heard, "Can't wait")
    assert first is not None
    assert second is not None
    for e in (first, second):
        assert e["payload"]["kind"] == "mention"
        assert e["payload"]["replies_to_post_id"] is None

    winter_id, spring_id = uuid.uuid4(), uuid.uuid4()
    published = _published(tenant, "acme", "mastodon", winter["id"], winter_id)
    await _send(stack, tenant, published)

    def linked(mention_id: str, post_id: uuid.UUID) -> Callable[[list[Json]], bool]:
        return lambda seen: any(
            e["type"] == "mention.updated"
            and e["payload"]["mention_id"] == mention_id
            and e["payload"]["replies_to_post_id"] == str(post_id)
            for e in seen
        )

    first_id = first["payload"]["mention_id"]
    await mentions.until(linked(first_id, winter_id), "the first reply linked to our post")
    # The reply to the reply comes from the post's thread, already a comment of it.
    seen = await mentions.until(
        lambda seen: _received(seen, "The blue one is great") is not None,
        "the reply to the reply",
    )
    nested = _received(seen, "The blue one is great")
    assert nested is not None
    assert nested["payload"]["kind"] == "comment"
    assert nested["payload"]["replies_to_post_id"] == str(winter_id)

    # The same event again, and the publisher announcing the post a second time: nothing more to
    # link. The second post's event behind them on the same partition tells when they were read.
    again = _published(tenant, "acme", "mastodon", winter["id"], winter_id)
    await _send(
        stack,
        tenant,
        published,
        again,
        _published(tenant, "acme", "mastodon", spring["id"], spring_id),
    )
    second_id = second["payload"]["mention_id"]
    await mentions.until(linked(second_id, spring_id), "the second post's reply linked")

    updates = [e for e in mentions.of(first_id) if e["type"] == "mention.updated"]
    assert len(updates) == 1, updates
    update = updates[0]
    assert update["causation_id"] == published["event_id"]
    assert update["brand_id"] == "acme"
    assert update["payload"]["kind"] == "comment"
    assert update["payload"]["text"] == first["payload"]["text"]
    assert update["payload"]["item_id"] == first["payload"]["item_id"]
    assert update["payload"]["thread"] == first["payload"]["thread"]
    # Hearing the first reply again in the post's thread (as a `reply`) was not an edit.
    assert [e["type"] for e in mentions.of(first_id)] == ["mention.received", "mention.updated"]

    found = await _ok(
        await http.get(f"{ingest}/api/v1/mentions", params={"brand_id": "acme"}, headers=admin)
    )
    by_text = {m["text"].split(" ", 1)[1]: m for m in found["mentions"]}
    assert {t: (m["kind"], m["replies_to_post_id"]) for t, m in by_text.items()} == {
        "Love the blue coat": ("comment", str(winter_id)),
        "The blue one is great": ("comment", str(winter_id)),
        "Can't wait": ("comment", str(spring_id)),
    }

    # Metrics counts every reply to each post, the late-linked ones included.
    today = datetime.now(UTC).date()
    period = {
        "from": (today - timedelta(days=1)).isoformat(),
        "to": (today + timedelta(days=2)).isoformat(),
    }

    async def replies_per_post() -> dict[str, int] | None:
        top = await _ok(
            await http.get(f"{metrics}/api/v1/brands/acme/top-posts", params=period, headers=admin)
        )
        counts = {p["post_id"]: p["replies"] for p in top["items"]}
        return counts if counts == {str(winter_id): 2, str(spring_id): 1} else None

    await wait_until(replies_per_post, timeout_s=60, interval_s=0.2, what="replies per post")


async def test_a_webhook_reply_linked_late_stays_linked_through_its_edit(
    services: dict[str, ServiceProcess],
    http: httpx.AsyncClient,
    stack: SessionStack,
    tenant: str,
    source: Json,
    mentions: TenantEvents,
) -> None:
    ingest = services["ingest"].url
    ours = f"post-{uuid.uuid4().hex[:8]}"
    reply = mention(f"r-{uuid.uuid4().hex[:8]}", "Does it come in red?", in_reply_to=ours)
    accepted = await post_mentions(http, ingest, source, [reply])
    assert accepted.status_code == 202, accepted.text
    seen = await mentions.until(
        lambda seen: _received(seen, "Does it come in red?") is not None, "the reply"
    )
    received = _received(seen, "Does it come in red?")
    assert received is not None
    assert received["payload"]["replies_to_post_id"] is None
    mention_id = received["payload"]["mention_id"]

    post_id = uuid.uuid4()
    await _send(stack, tenant, _published(tenant, "brand-a", "generic", ours, post_id))
    await mentions.until(
        lambda seen: any(e["type"] == "mention.updated" for e in mentions.of(mention_id)),
        "the link",
    )

    edited = {**reply, "text": "Does it come in red or green?"}
    accepted = await post_mentions(http, ingest, source, [edited])
    assert accepted.status_code == 202, accepted.text
    await mentions.until(
        lambda seen: any(
            e["payload"].get("text") == "Does it come in red or green?"
            for e in mentions.of(mention_id)
        ),
        "the edit",
    )
    updates = [e["payload"] for e in mentions.of(mention_id) if e["type"] == "mention.updated"]
    assert [(u["text"], u["kind"], u["replies_to_post_id"]) for u in updates] == [
        ("Does it come in red?", "comment", str(post_id)),
        ("Does it come in red or green?", "comment", str(post_id)),
    ]


async def test_a_pull_committing_while_post_published_is_applied_still_links_the_reply(
    services: dict[str, ServiceProcess], stack: SessionStack, tenant: str, mentions: TenantEvents
) -> None:
    """The race itself, on ingest's own database: a pull stored the reply but has not committed
    when `post.published` is applied, so neither transaction can see the other's row."""
    ours = f"{uuid.uuid4().int % 10**15}"
    reply = FetchedMention(
        network="mastodon",
        external_id=f"{uuid.uuid4().int % 10**15}",
        kind="mention",
        text="@acme is the red one back?",
        created_at=datetime.now(UTC),
        author=FetchedAuthor(id="fan-1", handle="@fan@sandbox.local"),
        root_external_id=ours,
        parent_external_id=ours,
    )
    post_id = uuid.uuid4()
    post = PublishedPost(
        event_id=uuid.uuid4(),
        tenant_id=tenant,
        brand_id="acme",
        post_id=post_id,
        channel_id=uuid.uuid4(),
        network="mastodon",
        external_id=ours,
        url=None,
        published_at=datetime.now(UTC),
        track_until=datetime.now(UTC) + timedelta(days=7),
    )
    pool = await create_pool(stack.service_dsn("ingest"), schema="ingest", min_size=3, max_size=3)
    try:
        async with pool.acquire() as pull, pool.acquire() as consumer, pool.acquire() as probe:
            pulling = pull.transaction()
            await pulling.start()
            await ingest_items(
                pull,
                SourceContext(uuid.uuid4(), tenant, "acme", "brand"),
                [reply],
                queries=QueryIndex(),
                detect_language=lambda _: None,
            )

            async def apply_post_published() -> None:
                async with consumer.transaction():
                    await track_posts(consumer, [post])

            applying = asyncio.create_task(apply_post_published())
            pid = consumer.get_server_pid()

            async def applied_or_waiting() -> bool:
                if applying.done():
                    return True
                return bool(
                    await probe.fetchval(
                        "SELECT EXISTS (SELECT 1 FROM pg_locks WHERE pid = $1 AND NOT granted)", pid
                    )
                )

            await wait_until(applied_or_waiting, what="post.published applied or waiting")
            await pulling.commit()
            await applying
            link = await probe.fetchval(
                """
                SELECT m.replies_to_post_id FROM item_matches m JOIN items i ON i.id = m.item_id
                WHERE i.network = 'mastodon' AND i.external_id = $1 AND m.tenant_id = $2
                """,
                reply.external_id,
                tenant,
            )
    finally:
        await pool.close()
    assert link == post_id
    seen = await mentions.until(
        lambda seen: any(e["type"] == "mention.updated" for e in seen), "the link's event"
    )
    assert [
        (e["type"], e["payload"]["kind"], e["payload"]["replies_to_post_id"]) for e in seen
    ] == [
        ("mention.received", "mention", None),
        ("mention.updated", "comment", str(post_id)),
    ]
