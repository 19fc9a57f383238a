"""Measures what our published posts achieve: a background job that reads each recent post's
counters (likes, reposts, replies, views) and its channel's followers from the network, and emits
`post.engagement_updated` through the outbox only when something changed since the last look.

Replicas share the work: each claims due posts with `FOR UPDATE SKIP LOCKED` and a lease, and
records a measurement only while it still holds that lease. Reads are paced by the same per-account
rate limiter as publishing (as `read` calls), so measuring never eats a channel's publish budget
faster than its network allows. A post the network cannot be read for now is looked at again next
round; one the network no longer has stops being measured; a channel that needs reconnecting is
skipped until it is reconnected.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import os
import socket
import uuid
from collections.abc import Callable, Mapping
from datetime import UTC, datetime
from typing import Any

import asyncpg
import httpx

from services.publisher import events, repository
from services.publisher.adapters.base import (
    EngagementReader,
    EngagementUnavailable,
    NeedsReconnect,
    PublishAdapter,
    RateLimited,
    Rejected,
)
from services.publisher.ratelimit import AccountLimiter, Action, UnknownNetworkError
from shared.crypto import SecretBox
from shared.db import TRANSIENT_DB_ERRORS
from shared.outbox import add_events

log = logging.getLogger("opensmm.publisher.engagement")

COUNTERS = ("likes", "reposts", "replies", "views", "followers")
READS_PER_MEASUREMENT = 2  # the post, then the channel's account
IDLE_POLL_MAX_S = 10.0  # how long an idle job waits before looking for due posts again


class EngagementMonitor:
    def __init__(
        self,
        *,
        pool_provider: Callable[[], asyncpg.Pool],
        adapters: Mapping[str, PublishAdapter],
        box: SecretBox,
        interval_s: float = 900.0,
        window_days: float = 7.0,
        lease_s: float = 60.0,
        batch: int = 50,
        network_timeout_s: float = 20.0,
        limiter: AccountLimiter | None = None,
        client: httpx.AsyncClient | None = None,
    ) -> None:
        self._pool = pool_provider
        self._readers = {
            name: adapter
            for name, adapter in adapters.items()
            if isinstance(adapter, EngagementReader)
        }
        self._adapters = dict(adapters)
        self._box = box
        self._interval_s = interval_s
        self._window_days = window_days
        self._lease_s = lease_s
        self._batch = batch
        self._timeout_s = network_timeout_s
        self._limiter = limiter or AccountLimiter()
        self._client = client
        self.owner = f"{socket.gethostname()}:{os.getpid()}:{uuid.uuid4().hex[:8]}:engagement"

    @property
    def networks(self) -> list[str]:
        """The networks whose posts are measured: those whose adapter reads engagement."""
        return sorted(self._readers)

    async def run(self) -> None:
        own = self._client is None
        client = self._client or httpx.AsyncClient(
            timeout=httpx.Timeout(self._timeout_s, connect=min(5.0, self._timeout_s))
        )
        try:
            while True:
                try:
                    claimed = await self.measure_due(client)
                except TRANSIENT_DB_ERRORS:
                    log.warning("engagement: database unavailable")
                    claimed = 0
                if claimed == 0:
                    await asyncio.sleep(min(self._interval_s, IDLE_POLL_MAX_S))
        finally:
            if own:
                await client.aclose()

    async def measure_due(self, client: httpx.AsyncClient) -> int:
        """Measure one batch of due posts; how many were claimed."""
        async with self._pool().acquire() as conn:
            due = await repository.claim_engagement(
                conn,
                self.owner,
                lease_s=self._lease_s,
                limit=self._batch,
                window_days=self._window_days,
                networks=self.networks,
            )
        await asyncio.gather(*(self._safely(client, post) for post in due))
        return len(due)

    async def _safely(self, client: httpx.AsyncClient, post: dict[str, Any]) -> None:
        try:
            await self.measure(client, post)
        except Exception as exc:
            # One post's trouble never stops the job: it is looked at again next round.
            log.exception("engagement of delivery %s: unexpected failure", post["delivery_id"])
            with contextlib.suppress(Exception):
                await self._defer(post, self._interval_s, f"{type(exc).__name__}: {exc}")

    async def measure(self, client: httpx.AsyncClient, post: dict[str, Any]) -> None:
        adapter = self._readers[post["network"]]
        wait = self._pace(post)
        if wait > 0:
            await self._defer(post, wait, None)
            return
        config = self._adapters[post["network"]].config_model.model_validate(post["config"])
        credentials = self._box.open_json(post["credentials_encrypted"])
        try:
            measured = await adapter.fetch_engagement(
                client, config, credentials, post["remote_id"]
            )
        except EngagementUnavailable as exc:
            await self._unavailable(post, exc)
            return
        counters = {name: getattr(measured, name) for name in COUNTERS}
        changed = post["measured_at"] is None or any(
            counters[name] != post[name] for name in COUNTERS
        )
        now = datetime.now(UTC)
        async with self._pool().acquire() as conn, conn.transaction():
            kept = await repository.store_engagement(
                conn, post["delivery_id"], self.owner, counters, next_in_s=self._interval_s
            )
            if not kept:
                log.warning("delivery %s: engagement lease lost", post["delivery_id"])
                return
            if changed:
                await add_events(conn, [events.engagement_updated(post, counters, now)])

    async def _unavailable(self, post: dict[str, Any], exc: EngagementUnavailable) -> None:
        outcome = exc.outcome
        delivery = post["delivery_id"]
        if isinstance(outcome, Rejected):
            # The network no longer has the post (deleted): nothing more to measure.
            log.info("delivery %s: stops being measured (%s)", delivery, outcome.reason)
            await self._defer(post, None, outcome.reason)
            return
        if isinstance(outcome, RateLimited):
            with contextlib.suppress(UnknownNetworkError):
                self._limiter.penalise(
                    post["network"],
                    str(post["channel_id"]),
                    outcome.retry_after_s,
                    now=datetime.now(UTC),
                )
            await self._defer(post, max(outcome.retry_after_s, 1.0), None)
            return
        # A refused token is left to the publisher and the credential job to flag: a read may
        # need a scope publishing does not, and must not stop the channel's posts.
        level = logging.WARNING if isinstance(outcome, NeedsReconnect) else logging.INFO
        log.log(level, "delivery %s: engagement unreadable now: %s", delivery, outcome)
        await self._defer(post, self._interval_s, str(outcome))

    async def _defer(self, post: dict[str, Any], wait_s: float | None, error: str | None) -> None:
        async with self._pool().acquire() as conn:
            await repository.defer_engagement(
                conn, post["delivery_id"], self.owner, wait_s=wait_s, error=error
            )

    def _pace(self, post: dict[str, Any]) -> float:
        try:
            return self._limiter.acquire(
                post["network"],
                str(post["channel_id"]),
                READS_PER_MEASUREMENT,
                now=datetime.now(UTC),
                action=Action.READ,
            )
        except UnknownNetworkError:
            return 0.0
