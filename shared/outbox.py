"""The transactional outbox: write events with the state change, publish them after commit.

`add_events` runs inside the caller's transaction. `OutboxRelay` publishes committed rows in id
order and deletes them once Kafka acknowledged every one (acks=all, idempotent producer). One
relay per schema is active at a time (a transaction-scoped advisory lock), which keeps each key's
events in order even with many replicas. A crash after publishing and before deleting republishes
the batch: consumers are idempotent, so that costs a redelivery, never a duplicate effect.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import time
from collections.abc import Sequence
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import Any

import asyncpg
from aiokafka import AIOKafkaProducer

from shared.db import Connection
from shared.metrics import ServiceMetrics

log = logging.getLogger("opensmm.outbox")


@dataclass(frozen=True)
class OutgoingEvent:
    topic: str  # the registry name, without the deployment's topic prefix
    key: str
    event: dict[str, Any]  # a JSON-ready envelope (see shared.events.envelope_for)


async def add_events(conn: Connection, events: Sequence[OutgoingEvent]) -> None:
    """Stage events in the caller's open transaction (one statement for the whole batch)."""
    if not events:
        return
    await conn.execute(
        """
        INSERT INTO outbox (event_id, topic, key, event)
        SELECT e.event_id, e.topic, e.key, e.event
        FROM unnest($1::uuid[], $2::text[], $3::text[], $4::jsonb[])
             AS e(event_id, topic, key, event)
        """,
        [e.event["event_id"] for e in events],
        [e.topic for e in events],
        [e.key for e in events],
        [e.event for e in events],
    )


class OutboxRelay:
    def __init__(
        self,
        *,
        pool: asyncpg.Pool,
        dsn: str,
        producer: AIOKafkaProducer,
        schema: str,
        metrics: ServiceMetrics,
        topic_prefix: str = "",
        batch_size: int = 500,
        poll_interval_s: float = 1.0,
    ) -> None:
        self._pool = pool
        self._dsn = dsn
        self._producer = producer
        self._schema = schema
        self._metrics = metrics
        self._prefix = topic_prefix
        self._batch_size = batch_size
        self._poll_interval_s = poll_interval_s
        self._wake = asyncio.Event()

    async def relay_once(self) -> int:
        """Publish up to one batch; return how many rows were published."""
        async with self._pool.acquire() as conn, conn.transaction():
            leader = await conn.fetchval(
                "SELECT pg_try_advisory_xact_lock(hashtext('opensmm.outbox'), hashtext($1))",
                self._schema,
            )
            if not leader:
                return 0
            # The event as Postgres stores it, as text: publishing it needs no decode/encode.
            rows = await conn.fetch(
                """
                SELECT id, topic, key, event::text AS body, event->>'type' AS type,
                       event->>'event_id' AS event_id, created_at
                FROM outbox ORDER BY id LIMIT $1
                """,
                self._batch_size,
            )
            if not rows:
                self._metrics.outbox_backlog.set(0)
                return 0
            pending = [
                await self._producer.send(
                    self._prefix + row["topic"],
                    row["body"].encode(),
                    key=row["key"].encode(),
                    headers=[
                        ("content-type", b"application/json"),
                        ("smm-event-type", (row["type"] or "").encode()),
                        ("smm-event-id", (row["event_id"] or "").encode()),
                    ],
                )
                for row in rows
            ]
            await asyncio.gather(*pending)
            await conn.execute(
                "DELETE FROM outbox WHERE id = ANY($1::bigint[])", [r["id"] for r in rows]
            )
        now = datetime.now(UTC)
        for row in rows:
            self._metrics.events_produced.labels(row["topic"]).inc()
            self._metrics.outbox_relay_seconds.observe((now - row["created_at"]).total_seconds())
        return len(rows)

    async def _listen(self) -> None:
        """Keep a LISTEN connection so commits wake the relay at once; polling is the fallback."""
        channel = f"smm_outbox_{self._schema}"
        while True:
            try:
                conn: Connection = await asyncpg.connect(self._dsn)
            except Exception:
                await asyncio.sleep(self._poll_interval_s)
                continue
            lost = asyncio.Event()
            try:
                conn.add_termination_listener(lambda *_, lost=lost: lost.set())
                await conn.add_listener(channel, lambda *_: self._wake.set())
                self._wake.set()
                await lost.wait()
            finally:
                with contextlib.suppress(Exception):
                    await conn.close()

    async def run(self) -> None:
        listener = asyncio.create_task(self._listen())
        backoff = 0.1
        try:
            while True:
                try:
                    started = time.monotonic()
                    # Cleared before draining: a commit notified during the drain wakes us again.
                    self._wake.clear()
                    while await self.relay_once() == self._batch_size:
                        pass
                    await self._refresh_backlog()
                    backoff = 0.1
                    remaining = self._poll_interval_s - (time.monotonic() - started)
                    with contextlib.suppress(TimeoutError):
                        await asyncio.wait_for(self._wake.wait(), max(remaining, 0.01))
                except asyncio.CancelledError:
                    raise
                except Exception:
                    log.warning("outbox relay failed; retrying", exc_info=True)
                    await asyncio.sleep(backoff)
                    backoff = min(backoff * 2, 5.0)
        finally:
            listener.cancel()
            with contextlib.suppress(BaseException):
                await listener

    async def _refresh_backlog(self) -> None:
        async with self._pool.acquire() as conn:
            self._metrics.outbox_backlog.set(await conn.fetchval("SELECT count(*) FROM outbox"))
