"""`smm dlq` against the running services: a real dead letter is listed with its error headers, and
a replay after the cause is fixed is applied exactly once, however often it is run."""

from __future__ import annotations

import asyncio
import json
import os
import subprocess
import sys
import time
import uuid
from datetime import UTC, datetime
from typing import Any

import httpx
from aiokafka import AIOKafkaConsumer, AIOKafkaProducer, TopicPartition

from shared.events import Author, MentionPayload, Thread, envelope_for
from shared.topics import MENTIONS
from smmctl import dlq
from tests.conftest import SessionStack
from tests.support import REPO, ServiceProcess, all_items, token, wait_until


def smm(stack: SessionStack, *args: str) -> str:
    """Run the operator command as an operator would, on this session's topics."""
    env = {
        **os.environ,
        "SMM_KAFKA_BOOTSTRAP_SERVERS": stack.bootstrap,
        "SMM_TOPIC_PREFIX": stack.topic_prefix,
    }
    done = subprocess.run(
        [sys.executable, "-m", "smmctl", "dlq", *args],
        cwd=REPO,
        env=env,
        capture_output=True,
        text=True,
        timeout=60,
        check=False,
    )
    assert done.returncode == 0, done.stderr
    return done.stdout


async def listed(stack: SessionStack) -> list[dict[str, Any]]:
    """What `smm dlq list --json` prints, read in-process (the command itself is run below)."""
    letters = await dlq.read_dead_letters(stack.bootstrap, [stack.topic(MENTIONS.dlq)])
    flags = await dlq.replayed_flags(stack.bootstrap, stack.topic_prefix, letters)
    now = time.time()
    return [x.as_json(now, done) for x, done in zip(letters, flags, strict=True)]


async def replay(stack: SessionStack, event_id: str) -> dict[str, int]:
    plan = await dlq.replay(
        stack.bootstrap, stack.topic_prefix, [stack.topic(MENTIONS.dlq)], event_ids={event_id}
    )
    return plan.summary()


def mention_event(tenant: str, external_id: str) -> dict[str, Any]:
    payload = MentionPayload(
        mention_id=uuid.uuid4(),
        source_id=uuid.uuid4(),
        network="generic",
        external_id=external_id,
        text="the handler once choked on this one",
        created_at=datetime.now(UTC),
        author=Author(id="a1", handle="@a1"),
        thread=Thread(root_external_id=external_id),
    )
    return envelope_for(
        payload, tenant_id=tenant, brand_id="brand-a", occurred_at=datetime.now(UTC)
    )


async def dead_letter_as_consumers_wrote_it(
    stack: SessionStack, tenant: str, external_id: str
) -> dict[str, Any]:
    """A valid event that every consumer group of the topic dead-lettered (as shared/consumer.py
    does after `max_attempts` handler failures); the handler bug is since fixed, so the running
    services apply it when it comes back."""
    event = mention_event(tenant, external_id)
    producer = AIOKafkaProducer(bootstrap_servers=stack.bootstrap, acks="all")
    await producer.start()
    try:
        for consumer in ("inbox.mentions", "metrics.mentions"):
            await producer.send_and_wait(
                stack.topic(MENTIONS.dlq),
                json.dumps(event).encode(),
                key=f"{tenant}:brand-a:{external_id}".encode(),
                headers=[
                    ("traceparent", b"00-0af7651916cd43dd8448eb211c80319c-b7ad6b7169203331-01"),
                    ("smm-error", b"RuntimeError: handler bug"),
                    ("smm-error-reason", b"handler"),
                    ("smm-source-topic", stack.topic(MENTIONS.name).encode()),
                    ("smm-source-partition", b"5"),
                    ("smm-source-offset", b"0"),
                    ("smm-attempts", b"3"),
                    ("smm-consumer", consumer.encode()),
                    ("smm-failed-at", datetime.now(UTC).isoformat().encode()),
                ],
            )
    finally:
        await producer.stop()
    return event


async def source_end_offsets(stack: SessionStack) -> dict[TopicPartition, int]:
    consumer = AIOKafkaConsumer(bootstrap_servers=stack.bootstrap)
    await consumer.start()
    try:
        topic = stack.topic(MENTIONS.name)
        parts = [TopicPartition(topic, p) for p in range(MENTIONS.partitions)]
        ends: dict[TopicPartition, int] = await consumer.end_offsets(parts)
        return ends
    finally:
        await consumer.stop()


async def test_a_real_dead_letter_is_listed_with_its_error_headers(
    services: dict[str, ServiceProcess], stack: SessionStack
) -> None:
    poison = b"\x00\xff not an event " + uuid.uuid4().hex.encode()
    producer = AIOKafkaProducer(bootstrap_servers=stack.bootstrap, acks="all")
    await producer.start()
    try:
        sent = await producer.send_and_wait(stack.topic(MENTIONS.name), poison, key=b"dlq-cli")
    finally:
        await producer.stop()

    async def both_copies() -> list[dict[str, Any]]:
        rows = [
            r
            for r in await listed(stack)
            if r["source_offset"] == sent.offset and r["source_partition"] == sent.partition
        ]
        return rows if len(rows) == 2 else []

    rows = await wait_until(both_copies, timeout_s=60, interval_s=1, what="the dead letters")
    assert {r["consumer"] for r in rows} == {"inbox.mentions", "metrics.mentions"}
    for row in rows:
        assert row["reason"] == "decode"
        assert row["error"].startswith("undecodable event")
        assert row["attempts"] == 1
        assert row["source_topic"] == stack.topic(MENTIONS.name)
        assert row["event_id"] is None
        assert row["replayed"] is False
    table = await asyncio.to_thread(smm, stack, "list", "--topic", "smm.mentions.v1")
    assert f"smm.mentions.v1[{sent.partition}]@{sent.offset}" in table


async def test_replay_after_the_fix_applies_each_event_once_and_a_second_replay_adds_nothing(
    services: dict[str, ServiceProcess], http: httpx.AsyncClient, stack: SessionStack, tenant: str
) -> None:
    first = await dead_letter_as_consumers_wrote_it(stack, tenant, "dlq-first")
    second = await dead_letter_as_consumers_wrote_it(stack, tenant, "dlq-second")
    reader = token(stack.auth_secret, tenant, "agent")

    dry = await dlq.replay(
        stack.bootstrap,
        stack.topic_prefix,
        [stack.topic(MENTIONS.dlq)],
        event_ids={first["event_id"]},
        dry_run=True,
    )
    assert [x.event_id for x in dry.send] == [first["event_id"]]
    before = await source_end_offsets(stack)
    # Only the chosen event goes back, once for both consumer groups' copies.
    out = json.loads(
        await asyncio.to_thread(smm, stack, "replay", "--event-id", first["event_id"], "--json")
    )
    assert (out["replayed"], out["duplicate_copies"]) == (1, 1)
    after = await source_end_offsets(stack)
    grew = {tp.partition: after[tp] - before[tp] for tp in after if after[tp] != before[tp]}
    assert grew == {5: 1}, "sent back to its source partition, once"

    async def items() -> list[dict[str, Any]]:
        return await all_items(http, services["inbox"].url, reader)

    found = await wait_until(items, what="the replayed mention in the inbox")
    assert [i["external_id"] for i in found] == ["dlq-first"]

    again = await replay(stack, first["event_id"])
    assert (again["replayed"], again["already_replayed"]) == (0, 2)
    assert await source_end_offsets(stack) == after, "a second replay sends nothing"

    rows = {(r["event_id"], r["consumer"]): r for r in await listed(stack)}
    assert rows[(first["event_id"], "inbox.mentions")]["replayed"] is True
    assert rows[(second["event_id"], "inbox.mentions")]["replayed"] is False
    assert rows[(second["event_id"], "inbox.mentions")]["headers"]["traceparent"].startswith("00-")

    # The other one, chosen later, still goes back exactly once.
    out = await replay(stack, second["event_id"])
    assert out["replayed"] == 1
    found = await wait_until(
        lambda: _has(items, 2), what="the second replayed mention in the inbox"
    )
    assert sorted(i["external_id"] for i in found) == ["dlq-first", "dlq-second"]
    pending = await dlq.replay(
        stack.bootstrap,
        stack.topic_prefix,
        [stack.topic(MENTIONS.dlq)],
        event_ids=None,
        dry_run=True,
    )
    assert not {first["event_id"], second["event_id"]} & {x.event_id for x in pending.send}


async def _has(items: Any, count: int) -> list[dict[str, Any]]:
    found: list[dict[str, Any]] = await items()
    return found if len(found) >= count else []
