"""Ingest's Kafka subscribers: our published posts become tracked, so replies are comments."""

from __future__ import annotations

from collections.abc import Sequence
from datetime import timedelta

from services.ingest import repository
from shared.db import Connection
from shared.events import PostPublished
from shared.runtime import Runtime
from shared.topics import POSTS


def subscribe(rt: Runtime, tracking_window: timedelta) -> None:
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

    rt.consume(POSTS, name="posts", models={"post.published": PostPublished}, effect=track)
