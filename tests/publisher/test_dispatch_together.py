"""Deliveries that go out together are started and recorded together, on the real database: one
whose lease another replica took in the meantime is left alone, and the others are recorded, with
their post rolled up and its engagement tracked."""

from __future__ import annotations

import asyncio
import uuid
from typing import Any, ClassVar

import asyncpg
import httpx
from cryptography.fernet import Fernet

from services.publisher import repository
from services.publisher.adapters.base import ChannelConfig, Published, PublishRequest
from services.publisher.dispatcher import Dispatcher
from shared.crypto import SecretBox

OTHER_REPLICA = "another-replica:1:feedbeef"


class AnyConfig(ChannelConfig):
    pass


class TogetherNetwork:
    """Answers no publish until all expected are in flight (so they go out, and come back,
    together); while one of them is out, another replica takes its delivery over."""

    network: ClassVar[str] = "mastodon"
    config_model: ClassVar[type[ChannelConfig]] = AnyConfig

    def __init__(self, pool: asyncpg.Pool) -> None:
        self.pool = pool
        self.taken_over: uuid.UUID | None = None
        self.in_flight = asyncio.Barrier(1)
        self.published: list[str] = []

    def expect(self, count: int, taken_over: uuid.UUID) -> None:
        self.in_flight = asyncio.Barrier(count)
        self.taken_over = taken_over

    async def publish(
        self, client: httpx.AsyncClient, config: Any, credentials: Any, request: PublishRequest
    ) -> Published:
        if request.idempotency_key == str(self.taken_over):
            async with self.pool.acquire() as conn:
                await conn.execute(
                    "UPDATE deliveries SET lease_owner = $2, lease_until = now() + interval '1 h'"
                    " WHERE id = $1",
                    self.taken_over,
                    OTHER_REPLICA,
                )
        await self.in_flight.wait()
        self.published.append(request.idempotency_key)
        return Published(f"remote-{request.idempotency_key}", None)

    async def reconcile(self, *args: Any) -> None:
        return None


async def test_outcomes_recorded_together_skip_only_the_delivery_whose_lease_was_lost(
    publisher_pool: asyncpg.Pool, tenant: str
) -> None:
    box = SecretBox(Fernet.generate_key().decode())
    network = TogetherNetwork(publisher_pool)
    dispatcher = Dispatcher(
        pool_provider=lambda: publisher_pool, adapters={"mastodon": network}, box=box
    )
    async with publisher_pool.acquire() as conn:
        channels = [
            await repository.insert_channel(
                conn,
                tenant_id=tenant,
                brand_id="acme",
                network="mastodon",
                name=f"ACME {n}",
                config={},
                overrides={},
                credentials_encrypted=box.seal_json({"access_token": "t"}),
            )
            for n in range(2)
        ]
        posts = []
        for variants in ([channels[0], channels[1]], [channels[0]]):
            post = await repository.insert_post(
                conn, tenant_id=tenant, brand_id="acme", tags=[], notes=None, created_by="u"
            )
            await repository.replace_variants(
                conn,
                post["id"],
                tenant,
                [
                    {
                        "channel_id": c["id"],
                        "text": "hi",
                        "media": [],
                        "link": None,
                        "reply_to": None,
                    }
                    for c in variants
                ],
            )
            await repository.set_post(conn, post["id"], status="scheduled")
            posts.append(post["id"])
        # Leased to the dispatcher under test, and not due for the service's own replica.
        rows = await conn.fetch(
            """
            UPDATE deliveries d SET status = 'scheduled', due_at = now(),
                   next_attempt_at = now() + interval '1 day',
                   lease_owner = $2, lease_until = now() + interval '1 h'
            FROM channels c
            WHERE d.post_id = ANY($1::uuid[]) AND c.id = d.channel_id
            RETURNING d.*, c.network, c.config, c.credentials_encrypted, c.brand_id
            """,
            posts,
            dispatcher.owner,
        )
    claimed = [dict(r) for r in rows]
    [taken_over] = [d["id"] for d in claimed if d["post_id"] == posts[1]]
    network.expect(len(claimed), taken_over)

    async with httpx.AsyncClient() as client:
        results = await asyncio.gather(
            *(dispatcher.dispatch(client, d) for d in claimed), return_exceptions=True
        )

    assert sorted(network.published) == sorted(str(d["id"]) for d in claimed)
    assert [type(r).__name__ for r in results if r is not None] == ["LeaseLost"]
    async with publisher_pool.acquire() as conn:
        deliveries = {
            r["id"]: r
            for r in await conn.fetch(
                "SELECT id, status, remote_id, lease_owner FROM deliveries"
                " WHERE post_id = ANY($1::uuid[])",
                posts,
            )
        }
        attempts = {
            r["delivery_id"]: r
            for r in await conn.fetch(
                "SELECT delivery_id, number, outcome, finished_at FROM attempts"
                " WHERE delivery_id = ANY($1::uuid[])",
                list(deliveries),
            )
        }
        tracked = {
            r["delivery_id"]
            for r in await conn.fetch(
                "SELECT delivery_id FROM post_engagement WHERE delivery_id = ANY($1::uuid[])",
                list(deliveries),
            )
        }
        post_status = {
            r["id"]: r["status"]
            for r in await conn.fetch(
                "SELECT id, status FROM posts WHERE id = ANY($1::uuid[])", posts
            )
        }
    recorded = set(deliveries) - {taken_over}
    for delivery_id in recorded:
        assert deliveries[delivery_id]["status"] == "published"
        assert deliveries[delivery_id]["remote_id"] == f"remote-{delivery_id}"
        assert deliveries[delivery_id]["lease_owner"] is None
        assert attempts[delivery_id]["number"] == 1
        assert attempts[delivery_id]["outcome"] == "published"
    assert tracked == recorded
    assert post_status[posts[0]] == "published"
    # The other replica has it now: nothing of this replica's outcome was written.
    assert deliveries[taken_over]["status"] == "publishing"
    assert deliveries[taken_over]["lease_owner"] == OTHER_REPLICA
    assert attempts[taken_over]["finished_at"] is None
    assert post_status[posts[1]] == "scheduled"
