"""The idempotent batch consumer every service uses to apply Kafka events to Postgres.

For each batch: decode every record (undecodable or schema-invalid records go to the DLQ at once,
since retrying cannot fix them), then in ONE transaction claim the event ids in the
`processed_events` ledger and apply the effect to the newly claimed events only, then commit.
Offsets are committed by the subscriber's ack policy only after this returns, so a crash at any
point redelivers the batch and the ledger turns the redelivery into a no-op.

A handler error on a batch isolates the culprit by halving the batch; a single event that still
fails after `max_attempts` tries goes to the DLQ with the error, its source topic, partition and
offset, and the attempt count in headers. The partition keeps moving. A database outage is not the
event's fault: it is raised so the batch is redelivered later, and nothing goes to the DLQ.
"""

from __future__ import annotations

import asyncio
import logging
import time
import uuid
from collections.abc import Awaitable, Callable, Mapping, Sequence
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import Any, Generic, TypeVar

import asyncpg
import orjson
from faststream.kafka import KafkaBroker
from pydantic import BaseModel, ValidationError

from shared.db import TRANSIENT_DB_ERRORS, Connection, WriteConflict
from shared.metrics import ServiceMetrics

log = logging.getLogger("opensmm.consumer")

E = TypeVar("E", bound=BaseModel)
Effect = Callable[[Connection, Sequence[E]], Awaitable[None]]

HEADER_PREFIX = "smm-"


class TransientFailure(RuntimeError):
    """The batch could not be applied for a reason outside the events; redeliver it later."""


@dataclass(frozen=True)
class Record:
    """What the consumer needs of a Kafka record (aiokafka's ConsumerRecord fits)."""

    topic: str
    partition: int
    offset: int
    key: bytes | None
    value: bytes | None
    headers: Sequence[tuple[str, bytes]]


@dataclass(frozen=True)
class _Decoded(Generic[E]):
    event: E
    event_id: uuid.UUID
    record: Record


@dataclass(frozen=True)
class _Poison:
    record: Record
    reason: str
    error: str
    attempts: int


def as_record(raw: Any) -> Record:
    return Record(
        topic=raw.topic,
        partition=raw.partition,
        offset=raw.offset,
        key=raw.key,
        value=raw.value,
        headers=tuple(raw.headers or ()),
    )


class IdempotentBatchConsumer(Generic[E]):
    def __init__(
        self,
        *,
        name: str,
        pool_provider: Callable[[], asyncpg.Pool],
        broker: KafkaBroker,
        metrics: ServiceMetrics,
        models: Mapping[str, type[E]],
        effect: Effect[E],
        supported_versions: Mapping[str, int] | None = None,
        max_attempts: int = 3,
        retry_backoff_s: float = 0.2,
        dlq_suffix: str = ".dlq",
        topic_prefix: str = "",
    ) -> None:
        self.name = name
        # A provider, not a pool: subscribers are wired before the service opens its pool.
        self._pool = pool_provider
        self._broker = broker
        self._metrics = metrics
        self._models = dict(models)
        self._versions = dict(supported_versions or {})
        self._effect = effect
        self._max_attempts = max_attempts
        self._retry_backoff_s = retry_backoff_s
        self._dlq_suffix = dlq_suffix
        self._topic_prefix = topic_prefix

    def _label(self, topic: str) -> str:
        """The registry name of a topic: metric labels read the same in every deployment."""
        return topic.removeprefix(self._topic_prefix)

    # -- entry point ----------------------------------------------------------------------

    async def handle(self, raw_records: Sequence[Any]) -> None:
        records = [r if isinstance(r, Record) else as_record(r) for r in raw_records]
        if not records:
            return
        topic = self._label(records[0].topic)
        started = time.perf_counter()
        self._metrics.batch_size.labels(topic).observe(len(records))
        decoded, poison = self._decode(records)
        await self._apply_isolating(decoded)
        await self._dead_letter(poison)
        self._metrics.handler_seconds.labels(topic).observe(time.perf_counter() - started)

    # -- decoding ---------------------------------------------------------------------------

    def _decode(self, records: Sequence[Record]) -> tuple[list[_Decoded[E]], list[_Poison]]:
        decoded: list[_Decoded[E]] = []
        poison: list[_Poison] = []
        seen: set[uuid.UUID] = set()
        for record in records:
            item = self._decode_one(record, poison)
            if item is None:
                continue
            if item.event_id in seen:
                self._metrics.events_duplicate.labels(self._label(record.topic)).inc()
                continue
            seen.add(item.event_id)
            decoded.append(item)
        for p in poison:
            self._metrics.events_failed.labels(self._label(p.record.topic), p.reason).inc()
        return decoded, poison

    def _decode_one(self, record: Record, poison: list[_Poison]) -> _Decoded[E] | None:
        """The event checked step by step; None when it is poison (added to `poison`) or another
        consumer's type."""
        try:
            body = orjson.loads(record.value or b"")
            if not isinstance(body, dict):
                raise ValueError("event is not a JSON object")
        except (ValueError, UnicodeDecodeError) as exc:
            poison.append(_Poison(record, "decode", f"undecodable event: {exc}", 1))
            return None
        event_type = body.get("type")
        if not isinstance(event_type, str):
            poison.append(_Poison(record, "schema", "event has no string 'type'", 1))
            return None
        model = self._models.get(event_type)
        if model is None:
            # Another consumer's event type on a shared topic: not ours to judge.
            self._metrics.events_ignored.labels(self._label(record.topic)).inc()
            return None
        version = body.get("schema_version")
        newest = self._versions.get(event_type, 1)
        if not isinstance(version, int) or not 1 <= version <= newest:
            reason = (
                f"unsupported schema_version {version!r} for {event_type}"
                f" (this consumer reads 1..{newest})"
            )
            poison.append(_Poison(record, "schema", reason, 1))
            return None
        try:
            # Without its id an event cannot be applied exactly once: a model's default would
            # give every redelivery a new one.
            event_id = uuid.UUID(str(body["event_id"]))
        except (KeyError, ValueError):
            poison.append(_Poison(record, "schema", "event has no valid 'event_id'", 1))
            return None
        try:
            event = model.model_validate(body)
        except ValidationError as exc:
            poison.append(_Poison(record, "schema", f"schema-invalid event: {exc}", 1))
            return None
        return _Decoded(event, event_id, record)

    # -- applying -----------------------------------------------------------------------------

    async def _apply_once(self, items: Sequence[_Decoded[E]]) -> None:
        async with self._pool().acquire() as conn, conn.transaction():
            claimed = await conn.fetch(
                """
                INSERT INTO processed_events (consumer, event_id)
                SELECT $1, unnest($2::uuid[])
                ON CONFLICT DO NOTHING
                RETURNING event_id
                """,
                self.name,
                [i.event_id for i in items],
            )
            fresh_ids = {r["event_id"] for r in claimed}
            fresh = [i for i in items if i.event_id in fresh_ids]
            if fresh:
                await self._effect(conn, [i.event for i in fresh])
        topic = self._label(items[0].record.topic)
        self._metrics.events_consumed.labels(topic).inc(len(fresh))
        self._metrics.events_duplicate.labels(topic).inc(len(items) - len(fresh))
        now = datetime.now(UTC)
        for item in fresh:
            occurred = getattr(item.event, "occurred_at", None)
            if isinstance(occurred, datetime):
                self._metrics.end_to_end_seconds.labels(topic).observe(
                    max((now - occurred).total_seconds(), 0.0)
                )

    async def _apply_isolating(self, items: Sequence[_Decoded[E]]) -> None:
        if not items:
            return
        attempts = 1 if len(items) > 1 else self._max_attempts
        error: BaseException | None = None
        for attempt in range(1, attempts + 1):
            try:
                await self._apply_once(items)
                return
            except TRANSIENT_DB_ERRORS as exc:
                log.warning(
                    "%s: %s (%s), batch will be redelivered",
                    self.name,
                    "write conflict" if isinstance(exc, WriteConflict) else "database unavailable",
                    type(exc).__name__,
                )
                # Pause before the redelivery so an outage does not become a hot loop.
                await asyncio.sleep(1.0)
                raise TransientFailure(str(exc)) from exc
            except Exception as exc:
                error = exc
                topic = self._label(items[0].record.topic)
                self._metrics.events_failed.labels(topic, "handler").inc()
                if attempt < attempts:
                    await asyncio.sleep(self._retry_backoff_s * 2 ** (attempt - 1))
        if len(items) > 1:
            middle = len(items) // 2
            await self._apply_isolating(items[:middle])
            await self._apply_isolating(items[middle:])
            return
        assert error is not None
        log.error(
            "%s: event %s failed %d times, sent to DLQ: %r",
            self.name,
            items[0].event_id,
            attempts,
            error,
        )
        await self._dead_letter(
            [_Poison(items[0].record, "handler", f"{type(error).__name__}: {error}", attempts)]
        )

    # -- dead letters ---------------------------------------------------------------------------

    async def _dead_letter(self, poison: Sequence[_Poison]) -> None:
        if not poison:
            return
        pending = []
        for p in poison:
            r = p.record
            headers = {k: v.decode("utf-8", "replace") for k, v in r.headers}
            headers.update(
                {
                    f"{HEADER_PREFIX}error": p.error[:2000],
                    f"{HEADER_PREFIX}error-reason": p.reason,
                    f"{HEADER_PREFIX}source-topic": r.topic,
                    f"{HEADER_PREFIX}source-partition": str(r.partition),
                    f"{HEADER_PREFIX}source-offset": str(r.offset),
                    f"{HEADER_PREFIX}attempts": str(p.attempts),
                    f"{HEADER_PREFIX}consumer": self.name,
                    f"{HEADER_PREFIX}failed-at": datetime.now(UTC).isoformat(),
                }
            )
            pending.append(
                await self._broker.publish(
                    r.value or b"",
                    r.topic + self._dlq_suffix,
                    key=r.key,
                    headers=headers,
                    no_confirm=True,
                )
            )
        # The offsets are committed only after every dead letter is safely in Kafka.
        await asyncio.gather(*pending)
        for p in poison:
            self._metrics.dlq_events.labels(self._label(p.record.topic)).inc()
