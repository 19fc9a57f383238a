"""Inbox's Kafka subscribers: decode, hand to the idempotent batch consumer, no SQL here."""

from __future__ import annotations

from collections.abc import Sequence

from faststream import AckPolicy
from faststream.kafka import KafkaRouter
from faststream.kafka.annotations import KafkaMessage

from services.inbox import repository
from shared.consumer import IdempotentBatchConsumer
from shared.db import Connection
from shared.events import MentionReceived
from shared.runtime import Runtime
from shared.topics import MENTIONS


async def store_mentions(conn: Connection, events: Sequence[MentionReceived]) -> None:
    await repository.insert_items(conn, events)


def build_router(rt: Runtime) -> KafkaRouter:
    router = KafkaRouter()
    mentions = IdempotentBatchConsumer[MentionReceived](
        name="inbox.mentions",
        pool_provider=lambda: rt.pool,
        broker=rt.broker,
        metrics=rt.metrics,
        models={"mention.received": MentionReceived},
        effect=store_mentions,
        max_attempts=rt.settings.consumer_max_attempts,
    )

    @router.subscriber(
        rt.topic(MENTIONS.name),
        group_id=rt.group("mentions"),
        batch=True,
        max_records=rt.settings.consumer_max_records,
        batch_timeout_ms=rt.settings.consumer_batch_timeout_ms,
        auto_offset_reset="earliest",
        # Offsets are committed only after the batch's effect committed in Postgres; an error
        # rewinds to the batch start so it is redelivered (see shared/consumer.py).
        ack_policy=AckPolicy.NACK_ON_ERROR,
    )
    async def on_mentions(message: KafkaMessage) -> None:
        records = message.raw_message
        await mentions.handle(records if isinstance(records, tuple) else (records,))

    return router
