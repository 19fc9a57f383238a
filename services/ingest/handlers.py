"""Ingest's Kafka subscribers: our published posts become tracked, so replies are comments."""

from __future__ import annotations

from collections.abc import Sequence
from datetime import timedelta

from services.ingest.pipeline import PublishedPost, track_posts
from shared.db import Connection
from shared.events import PostPublished
from shared.runtime import Runtime
from shared.topics import POSTS


def subscribe(rt: Runtime, tracking_window: timedelta) -> None:
    async def track(conn: Connection, events: Sequence[PostPublished]) -> None:
        await track_posts(
            conn,
            [
                PublishedPost(
                    event_id=e.event_id,
                    tenant_id=e.tenant_id,
                    brand_id=e.brand_id,
                    post_id=e.payload.post_id,
                    channel_id=e.payload.channel_id,
                    network=e.payload.network,
                    external_id=e.payload.external_id,
                    url=e.payload.url,
                    published_at=e.payload.published_at,
                    track_until=(
                        e.payload.track_replies_until or e.payload.published_at + tracking_window
                    ),
                )
                for e in events
                # A post always has a brand; an event without one has nothing to track.
                if e.brand_id is not None
            ],
        )

    rt.consume(POSTS, name="posts", models={"post.published": PostPublished}, effect=track)
