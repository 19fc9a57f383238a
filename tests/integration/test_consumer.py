"""The idempotent batch consumer against the real database and broker."""

from __future__ import annotations

import asyncio
import json
import uuid
from collections.abc import AsyncIterator, Sequence
from datetime import UTC, datetime
from typing import Any

import asyncpg
import pytest
from aiokafka import AIOKafkaConsumer
from faststream.kafka import KafkaBroker

from services.inbox.workflow import receive
from shared.consumer import IdempotentBatchConsumer, Record
from shared.db import Connection, create_pool
from shared.events import Author, MentionPayload, MentionReceived, Thread, envelope_for
from shared.metrics import ServiceMetrics
from shared.topics import MENTIONS
from tests.conftest import SessionStack


@pytest.fixture
async def inbox_pool(stack: SessionStack, services: dict[str, Any]) -> AsyncIterator[asyncpg.Pool]:
    pool = await create_pool(stack.service_dsn("inbox"), schema="inbox")
    try:
        yield pool
    finally:
        await pool.close()


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
        payload = MentionPayload(
            mention_id=uuid.uuid4(),
            source_id=uuid.uuid4(),
            network="generic",
            external_id=f"e-{offset}",
            text=text,
            created_at=datetime.now(UTC),
            author=Author(id="a", handle="@a"),
            thread=Thread(root_external_id=f"e-{offset}"),
        )
        event = envelope_for(
            payload, tenant_id=tenant, brand_id="b", occurred_at=payload.created_at
        )
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
