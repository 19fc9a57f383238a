"""Ingest's Kafka subscribers: our published posts become tracked, so replies are comments."""

from __future__ import annotations

from collections.abc import Sequence
from datetime import timedelta

from faststream import AckPolicy
from faststream.kafka import KafkaRouter
from faststream.kafka.annotations import KafkaMessage

from services.ingest import repository
from shared.consumer import IdempotentBatchConsumer
from shared.db import Connection
from shared.events import PostPublished
from shared.runtime import Runtime
from shared.topics import POSTS


def build_router(rt: Runtime, tracking_window: timedelta) -> KafkaRouter:
    async def track(conn: Connection, events: Sequence[PostPublished]) -> None:
        for e in events:
            if e.brand_id is None:
                continue  # a post always has a brand; an event without one has nothing to track
            p = e.payload
            await repository.track_post(
                conn,
                {
                    "network": p.network,
                    "external_id": p.external_id,
                    "tenant_id": e.tenant_id,
                    "brand_id": e.brand_id,
                    "post_id": p.post_id,
                    "channel_id": p.channel_id,
                    "url": p.url,
                    "published_at": p.published_at,
                    "track_until": p.track_replies_until or p.published_at + tracking_window,
                },
            )

    router = KafkaRouter()
    posts = IdempotentBatchConsumer[PostPublished](
        name="ingest.posts",
        pool_provider=lambda: rt.pool,
        broker=rt.broker,
        metrics=rt.metrics,
        models={"post.published": PostPublished},
        effect=track,
        max_attempts=rt.settings.consumer_max_attempts,
    )

    @router.subscriber(
        rt.topic(POSTS.name),
        group_id=rt.group("posts"),
        batch=True,
        max_records=rt.settings.consumer_max_records,
        batch_timeout_ms=rt.settings.consumer_batch_timeout_ms,
        auto_offset_reset="earliest",
        ack_policy=AckPolicy.NACK_ON_ERROR,
    )
    async def on_posts(message: KafkaMessage) -> None:
        records = message.raw_message
        await posts.handle(records if isinstance(records, tuple) else (records,))

    return router
