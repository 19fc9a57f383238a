"""The transactional outbox on the real database and broker."""

from __future__ import annotations

import asyncio
import json
import uuid

import asyncpg
import pytest
from aiokafka import AIOKafkaConsumer

from shared.outbox import OutgoingEvent, add_events
from shared.topics import POSTS
from tests.conftest import SessionStack
from tests.support import wait_until


def _event(tenant: str, n: int) -> OutgoingEvent:
    event = {"event_id": str(uuid.uuid4()), "type": "test.ping", "tenant_id": tenant, "n": n}
    return OutgoingEvent(topic=POSTS.name, key=f"{tenant}:p", event=event)


async def test_rolled_back_transaction_leaves_no_event(publisher_pool: asyncpg.Pool) -> None:
    tenant = "t-" + uuid.uuid4().hex[:8]

    async def write_then_fail() -> None:
        async with publisher_pool.acquire() as conn, conn.transaction():
            await add_events(conn, [_event(tenant, 1)])
            raise RuntimeError("business rule failed after the write")

    with pytest.raises(RuntimeError, match="business rule"):
        await write_then_fail()
    async with publisher_pool.acquire() as conn:
        assert (
            await conn.fetchval(
                "SELECT count(*) FROM outbox WHERE event->>'tenant_id' = $1", tenant
            )
            == 0
        )


async def test_service_relay_publishes_committed_events_in_order_then_deletes_them(
    stack: SessionStack, publisher_pool: asyncpg.Pool
) -> None:
    tenant = "t-" + uuid.uuid4().hex[:8]
    async with publisher_pool.acquire() as conn, conn.transaction():
        await add_events(conn, [_event(tenant, n) for n in range(25)])

    # The publisher service's relay (running since the `services` fixture) picks them up.
    async def drained() -> bool:
        async with publisher_pool.acquire() as conn:
            left = await conn.fetchval(
                "SELECT count(*) FROM outbox WHERE event->>'tenant_id' = $1", tenant
            )
        return bool(left == 0)

    await wait_until(drained, timeout_s=10, what="the relay to publish and delete the rows")

    consumer = AIOKafkaConsumer(
        stack.topic(POSTS.name),
        bootstrap_servers=stack.bootstrap,
        group_id=f"test-{uuid.uuid4()}",
        auto_offset_reset="earliest",
    )
    await consumer.start()
    seen: list[int] = []
    try:
        async with asyncio.timeout(30):
            while len(seen) < 25:
                for records in (await consumer.getmany(timeout_ms=500)).values():
                    for r in records:
                        body = json.loads(r.value)
                        if body["tenant_id"] == tenant:
                            assert r.key == f"{tenant}:p".encode()
                            assert dict(r.headers)["smm-event-type"] == b"test.ping"
                            seen.append(body["n"])
    finally:
        await consumer.stop()
    assert seen == list(range(25))
