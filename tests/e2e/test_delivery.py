"""Delivery guarantees on the real broker: crashes and poison events lose and duplicate nothing."""

from __future__ import annotations

import asyncio
import json
import uuid
from datetime import UTC, datetime
from typing import Any

import asyncpg
import httpx
from aiokafka import AIOKafkaConsumer, AIOKafkaProducer

from shared.events import Author, MentionPayload, Thread, envelope_for
from shared.topics import MENTIONS
from tests.conftest import SessionStack
from tests.support import ServiceProcess, all_items, mention, post_mentions, token, wait_until


async def test_kill_9_of_inbox_mid_batch_then_restart_gives_every_mention_exactly_once(
    services: dict[str, ServiceProcess],
    http: httpx.AsyncClient,
    stack: SessionStack,
    tenant: str,
    source: dict[str, Any],
    admin_db: asyncpg.Connection,
) -> None:
    total = 10_000
    inbox = services["inbox"]
    inbox.stop()
    try:
        for chunk in range(0, total, 1000):
            items = [mention(f"k-{i}") for i in range(chunk, chunk + 1000)]
            response = await post_mentions(http, services["ingest"].url, source, items)
            assert response.json()["accepted"] == 1000

        async def relayed() -> bool:
            return await admin_db.fetchval("SELECT count(*) = 0 FROM ingest.outbox") is True

        await wait_until(relayed, timeout_s=60, what="ingest's outbox to drain into Kafka")

        async def stored() -> int:
            return int(
                await admin_db.fetchval(
                    "SELECT count(*) FROM inbox.items WHERE tenant_id = $1", tenant
                )
            )

        inbox.start()
        await wait_until(stored, timeout_s=60, interval_s=0.005, what="inbox to start storing")
        inbox.kill9()
        at_kill = await stored()
        assert 0 < at_kill < total, f"the kill landed outside the run ({at_kill}/{total})"
    finally:
        if inbox.proc is None or inbox.proc.poll() is not None:
            inbox.start()
    await inbox.wait_ready()

    async def complete() -> bool:
        return await stored() >= total

    await wait_until(complete, timeout_s=90, what="every mention in the inbox")
    items = await all_items(http, inbox.url, token(stack.auth_secret, tenant, "agent"))
    external_ids = [i["external_id"] for i in items]
    assert len(external_ids) == total
    assert set(external_ids) == {f"k-{i}" for i in range(total)}
    # Each mention event took effect once: one ledger row per event, none left unapplied.
    applied = await admin_db.fetchval(
        """
        SELECT count(*) FROM inbox.processed_events p
        JOIN inbox.items i ON i.event_id = p.event_id
        WHERE p.consumer = 'inbox.mentions' AND i.tenant_id = $1
        """,
        tenant,
    )
    assert applied == total


def _valid_event(tenant: str, external_id: str) -> dict[str, Any]:
    payload = MentionPayload(
        mention_id=uuid.uuid4(),
        source_id=uuid.uuid4(),
        network="generic",
        external_id=external_id,
        text="after the poison",
        created_at=datetime.now(UTC),
        author=Author(id="a1", handle="@a1"),
        thread=Thread(root_external_id=external_id),
    )
    return envelope_for(
        payload, tenant_id=tenant, brand_id="brand-a", occurred_at=payload.created_at
    )


async def test_undecodable_and_schema_invalid_events_go_to_the_dlq_and_the_partition_moves_on(
    services: dict[str, ServiceProcess], http: httpx.AsyncClient, stack: SessionStack, tenant: str
) -> None:
    topic = stack.topic(MENTIONS.name)
    key = f"{tenant}:brand-a:thread".encode()  # one key: one partition, so order is kept
    unknown_version = {**_valid_event(tenant, "v99"), "schema_version": 99}
    schema_invalid = _valid_event(tenant, "bad")
    schema_invalid["payload"] = {**schema_invalid["payload"], "author": "not an object"}
    poison = {
        b"\x00\xffrandom bytes": "decode",
        json.dumps(schema_invalid).encode(): "schema",
        json.dumps(unknown_version).encode(): "schema",
        b'"a JSON string, not an event"': "decode",
    }
    producer = AIOKafkaProducer(bootstrap_servers=stack.bootstrap, acks="all")
    await producer.start()
    try:
        sent = {}
        for value in poison:
            meta = await producer.send_and_wait(topic, value, key=key)
            sent[value] = meta
        good = _valid_event(tenant, "good-after-poison")
        await producer.send_and_wait(topic, json.dumps(good).encode(), key=key)
    finally:
        await producer.stop()

    reader = token(stack.auth_secret, tenant, "agent")

    async def good_one_stored() -> list[dict[str, Any]]:
        return await all_items(http, services["inbox"].url, reader)

    items = await wait_until(good_one_stored, what="the valid event after the poison")
    assert [i["external_id"] for i in items] == ["good-after-poison"]

    consumer = AIOKafkaConsumer(
        stack.topic(MENTIONS.dlq),
        bootstrap_servers=stack.bootstrap,
        group_id=f"test-dlq-{uuid.uuid4()}",
        auto_offset_reset="earliest",
        enable_auto_commit=False,
    )
    await consumer.start()
    # Every consumer group of the topic (the inbox's and the metrics service's) dead-letters
    # its own copy, naming itself.
    consumers = ("inbox.mentions", "metrics.mentions")
    wanted = {(value, name) for value in poison for name in consumers}
    dead: dict[tuple[bytes, str], dict[str, str]] = {}
    try:
        async with asyncio.timeout(30):
            while not wanted <= dead.keys():
                batch = await consumer.getmany(timeout_ms=1000)
                for records in batch.values():
                    for r in records:
                        headers = {k: v.decode() for k, v in r.headers}
                        dead[(r.value, headers["smm-consumer"])] = headers
    finally:
        await consumer.stop()
    for (value, name), headers in dead.items():
        if value not in poison:
            continue  # another test's poison on the shared DLQ
        assert headers["smm-error-reason"] == poison[value]
        assert headers["smm-error"]
        assert headers["smm-source-topic"] == topic
        assert int(headers["smm-source-partition"]) == sent[value].partition
        assert int(headers["smm-source-offset"]) == sent[value].offset
        assert headers["smm-attempts"] == "1"
        assert name in consumers
    unknown = json.dumps(unknown_version).encode()
    assert "schema_version 99" in dead[(unknown, "inbox.mentions")]["smm-error"]
