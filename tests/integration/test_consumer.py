"""The idempotent batch consumer against the real database and broker."""

from __future__ import annotations

import asyncio
import json
import uuid
from collections.abc import AsyncIterator, Sequence

import asyncpg
import pytest
from aiokafka import AIOKafkaConsumer
from faststream.kafka import KafkaBroker

from services.inbox.workflow import receive
from shared.consumer import IdempotentBatchConsumer, Record
from shared.db import Connection, WriteConflict
from shared.events import MentionReceived
from shared.metrics import ServiceMetrics
from shared.topics import MENTIONS
from tests.conftest import SessionStack
from tests.support import mention_event, wait_until


@pytest.fixture
async def broker(stack: SessionStack) -> AsyncIterator[KafkaBroker]:
    broker = KafkaBroker(stack.bootstrap, enable_idempotence=True, acks="all")
    await broker.connect()
    try:
        yield broker
    finally:
        await broker.stop()


def records(stack: SessionStack, tenant: str, texts: Sequence[str]) -> list[Record]:
    out = []
    for offset, text in enumerate(texts):
        event = mention_event(tenant, f"e-{offset}", text)
        out.append(
            Record(
                topic=stack.topic(MENTIONS.name),
                partition=0,
                offset=10_000 + offset,
                key=tenant.encode(),
                value=json.dumps(event).encode(),
                headers=(),
            )
        )
    return out


async def count(pool: asyncpg.Pool, tenant: str) -> int:
    async with pool.acquire() as conn:
        return int(await conn.fetchval("SELECT count(*) FROM items WHERE tenant_id = $1", tenant))


async def test_the_same_batch_delivered_twice_changes_nothing(
    stack: SessionStack, inbox_pool: asyncpg.Pool, broker: KafkaBroker, tenant: str
) -> None:
    applied: list[int] = []

    async def effect(conn: Connection, events: Sequence[MentionReceived]) -> None:
        applied.append(len(events))
        await receive(conn, events)

    consumer = IdempotentBatchConsumer[MentionReceived](
        name=f"test.{tenant}",
        pool_provider=lambda: inbox_pool,
        broker=broker,
        metrics=ServiceMetrics("test"),
        models={"mention.received": MentionReceived},
        effect=effect,
    )
    batch = records(stack, tenant, [f"text {i}" for i in range(50)])
    await consumer.handle(batch)
    await consumer.handle(batch)
    await consumer.handle(batch[10:20] + batch[:5])
    assert applied == [50]  # the redeliveries reached the effect with nothing new
    assert await count(inbox_pool, tenant) == 50


async def test_a_failing_event_is_retried_then_dead_lettered_and_the_rest_applied(
    stack: SessionStack, inbox_pool: asyncpg.Pool, broker: KafkaBroker, tenant: str
) -> None:
    tries: dict[str, int] = {}

    async def effect(conn: Connection, events: Sequence[MentionReceived]) -> None:
        for e in events:
            tries[e.payload.text] = tries.get(e.payload.text, 0) + 1
            if e.payload.text == "boom":
                raise ValueError("cannot triage 'boom'")
        await receive(conn, events)

    consumer = IdempotentBatchConsumer[MentionReceived](
        name=f"test.{tenant}",
        pool_provider=lambda: inbox_pool,
        broker=broker,
        metrics=ServiceMetrics("test"),
        models={"mention.received": MentionReceived},
        effect=effect,
        max_attempts=3,
        retry_backoff_s=0.01,
    )
    texts = [f"fine {i}" for i in range(9)]
    texts.insert(5, "boom")
    batch = records(stack, tenant, texts)
    await consumer.handle(batch)
    assert await count(inbox_pool, tenant) == 9
    assert tries["boom"] >= 3

    dlq = AIOKafkaConsumer(
        stack.topic(MENTIONS.dlq),
        bootstrap_servers=stack.bootstrap,
        group_id=f"test-{uuid.uuid4()}",
        auto_offset_reset="earliest",
    )
    await dlq.start()
    found: dict[str, str] | None = None
    try:
        async with asyncio.timeout(30):
            while found is None:
                for recs in (await dlq.getmany(timeout_ms=500)).values():
                    for r in recs:
                        if r.value == batch[5].value:
                            found = {k: v.decode() for k, v in r.headers}
    finally:
        await dlq.stop()
    assert found["smm-attempts"] == "3"
    assert found["smm-error-reason"] == "handler"
    assert "cannot triage 'boom'" in found["smm-error"]
    assert found["smm-source-offset"] == str(batch[5].offset)
    # Redelivering the batch after the DLQ changes nothing either.
    await consumer.handle(batch)
    assert await count(inbox_pool, tenant) == 9


async def test_two_transactions_opening_the_same_thread_end_in_one_conversation(
    inbox_pool: asyncpg.Pool, tenant: str
) -> None:
    """A new thread's conversation is inserted with its state when the batch is saved; a second
    transaction that started the same thread meanwhile gets a transient conflict (its batch is
    redelivered) and, applied again, joins the first one's conversation."""
    first = MentionReceived.model_validate(mention_event(tenant, "r-1", "Where is my order?"))
    second = MentionReceived.model_validate(
        mention_event(tenant, "r-2", "Still waiting for my order", root="r-1")
    )
    async with inbox_pool.acquire() as a, inbox_pool.acquire() as b:
        ta, tb = a.transaction(), b.transaction()
        await ta.start()
        await tb.start()
        await receive(a, [first])
        racing = asyncio.create_task(receive(b, [second]))
        pid = b.get_server_pid()
        async with inbox_pool.acquire() as watch:

            async def blocked() -> bool:  # on the first one's uncommitted conversation row
                state = "SELECT wait_event_type FROM pg_stat_activity WHERE pid = $1"
                return bool(await watch.fetchval(state, pid) == "Lock")

            await wait_until(blocked, timeout_s=10, what="the second insert to wait")
        assert not racing.done()
        await ta.commit()
        with pytest.raises(WriteConflict):
            await racing
        await tb.rollback()
    async with inbox_pool.acquire() as conn, conn.transaction():
        await receive(conn, [second])  # the redelivery
    async with inbox_pool.acquire() as conn:
        rows = await conn.fetch(
            "SELECT c.id, c.item_count, count(i.id) AS items FROM conversations c"
            " JOIN items i ON i.conversation_id = c.id WHERE c.tenant_id = $1"
            " GROUP BY c.id, c.item_count",
            tenant,
        )
    assert [(r["item_count"], r["items"]) for r in rows] == [(2, 2)]
