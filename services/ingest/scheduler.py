"""Polls pull sources: leases due sources, fetches a page, and commits items, events and the new
cursor in one transaction, so a crash never skips or repeats a page. Also polls the replies to
our own published posts while they are tracked, with a source of the same tenant and network.

Replicas share sources through leases taken with `FOR UPDATE SKIP LOCKED`; a run whose lease was
taken over (it ran too long, its replica stalled) rolls back everything it wrote. Failures set the
next attempt: a rate limit waits for the network's reset, an outage backs off exponentially with
jitter, revoked credentials stop polling until the source is reconnected.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import os
import random
import socket
import uuid
from collections.abc import Mapping
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from typing import Any

import httpx

from services.ingest import repository, secrets
from services.ingest.connectors.base import (
    AuthFailed,
    BadConfig,
    ConnectorError,
    PullConnector,
    PullResult,
    RateLimited,
)
from services.ingest.matching import QueryIndex
from services.ingest.pipeline import LanguageDetector, SourceContext, ingest_items
from shared.crypto import SecretBox
from shared.db import TRANSIENT_DB_ERRORS

log = logging.getLogger("opensmm.ingest.scheduler")

FAILING_AFTER = 3  # consecutive failures before a source shows as failing
MAX_BACKOFF_S = 3600.0
BAD_CONFIG_RETRY_S = 3600.0
REPLIES_RETRY_S = 300.0


class LeaseLost(RuntimeError):
    pass


@dataclass(frozen=True)
class RunPlan:
    """What to record after a run: when to come back and in which state."""

    next_run_in_s: float
    status: str
    error: str | None
    succeeded: bool


def backoff_s(failures: int) -> float:
    """Exponential backoff from 10 s, capped at an hour, with ±20 % jitter."""
    base: float = min(10.0 * 2.0 ** max(failures, 0), MAX_BACKOFF_S)
    return base * random.uniform(0.8, 1.2)  # noqa: S311 - jitter, not security


def plan_after_success(result: PullResult, interval_s: int, now: datetime) -> RunPlan:
    wait = 0.0 if result.more else interval_s * random.uniform(0.9, 1.1)  # noqa: S311 - jitter
    limit = result.rate_limit
    if limit is not None and limit.remaining == 0 and limit.reset_at is not None:
        wait = max(wait, (limit.reset_at - now).total_seconds())
    return RunPlan(wait, "active", None, True)


def plan_after_failure(exc: BaseException, failures: int, interval_s: int) -> RunPlan:
    message = f"{type(exc).__name__}: {exc}"[:1000]
    if isinstance(exc, RateLimited):
        # Being told to slow down is not a failure of the source.
        return RunPlan(max(exc.retry_after_s, 1.0), "active", message, True)
    if isinstance(exc, AuthFailed):
        return RunPlan(BAD_CONFIG_RETRY_S, "needs_reconnect", message, False)
    if isinstance(exc, BadConfig):
        return RunPlan(max(BAD_CONFIG_RETRY_S, interval_s), "failing", message, False)
    status = "failing" if failures + 1 >= FAILING_AFTER else "active"
    return RunPlan(backoff_s(failures), status, message, False)


class PullScheduler:
    def __init__(
        self,
        *,
        pool_provider: Any,
        connectors: Mapping[str, PullConnector],
        box: SecretBox,
        queries: QueryIndex,
        detect_language: LanguageDetector,
        concurrency: int = 16,
        lease_s: float = 120.0,
        pull_timeout_s: float = 60.0,
        raw_retention: timedelta = timedelta(days=90),
        idle_poll_s: float = 1.0,
        replies_interval_s: float = 120.0,
        http_client: httpx.AsyncClient | None = None,
    ) -> None:
        self._pool = pool_provider
        self._connectors = dict(connectors)
        self._box = box
        self._queries = queries
        self._detect = detect_language
        self._concurrency = concurrency
        self._lease_s = lease_s
        self._pull_timeout_s = min(pull_timeout_s, lease_s * 0.8)
        self._raw_retention = raw_retention
        self._idle_poll_s = idle_poll_s
        self._replies_interval_s = replies_interval_s
        self._client = http_client
        self.owner = f"{socket.gethostname()}:{os.getpid()}:{uuid.uuid4().hex[:8]}"
        self._running: set[asyncio.Task[None]] = set()

    async def run(self) -> None:
        own_client = self._client is None
        client = self._client or httpx.AsyncClient(
            timeout=httpx.Timeout(30.0, connect=10.0),
            limits=httpx.Limits(max_connections=self._concurrency * 2),
            headers={"User-Agent": "OpenSMM/1.0 (+listening)"},
        )
        replies = asyncio.create_task(self._replies_loop(client))
        try:
            while True:
                claimed = await self._claim_safely()
                for row in claimed:
                    task = asyncio.create_task(self.run_source(client, row))
                    self._running.add(task)
                    task.add_done_callback(self._running.discard)
                if not claimed:
                    await asyncio.sleep(self._idle_poll_s)
                elif len(self._running) >= self._concurrency:
                    await asyncio.wait(self._running, return_when=asyncio.FIRST_COMPLETED)
        finally:
            replies.cancel()
            with contextlib.suppress(BaseException):
                await replies
            for task in list(self._running):
                task.cancel()
            for task in list(self._running):
                with contextlib.suppress(BaseException):
                    await task
            if own_client:
                await client.aclose()

    async def _replies_loop(self, client: httpx.AsyncClient) -> None:
        while True:
            try:
                async with self._pool().acquire() as conn:
                    due = await repository.claim_due_tracked_posts(conn, self._lease_s, 20)
            except TRANSIENT_DB_ERRORS:
                due = []
            for post in due:
                try:
                    await self.poll_replies(client, post)
                except TRANSIENT_DB_ERRORS:
                    log.warning("replies of %s: database unavailable", post["external_id"])
            if not due:
                await asyncio.sleep(self._idle_poll_s * 5)

    async def poll_replies(self, client: httpx.AsyncClient, post: dict[str, Any]) -> None:
        """Fetch new replies to one tracked post; they become comments of the post's brand."""
        connector = self._connectors.get(post["network"])
        fetch = getattr(connector, "replies", None)
        async with self._pool().acquire() as conn:
            source = await repository.source_for_replies(
                conn, post["tenant_id"], post["brand_id"], post["network"]
            )
        if connector is None or fetch is None or source is None:
            # Nothing here can read this network's replies yet; look again later.
            async with self._pool().acquire() as conn:
                await repository.finish_replies_poll(conn, post, None, REPLIES_RETRY_S)
            return
        try:
            config = connector.config_model.model_validate(source.config)
            credentials = secrets.open_dict(self._box, source.credentials_encrypted)
            async with asyncio.timeout(self._pull_timeout_s):
                result: PullResult = await fetch(
                    client, config, credentials, post["external_id"], dict(post["replies_cursor"])
                )
        except (ConnectorError, httpx.HTTPError, TimeoutError, ValueError) as exc:
            log.info("replies of %s: %s", post["external_id"], exc)
            async with self._pool().acquire() as conn:
                await repository.finish_replies_poll(conn, post, None, REPLIES_RETRY_S)
            return
        async with self._pool().acquire() as conn, conn.transaction():
            await ingest_items(
                conn,
                SourceContext(source.id, post["tenant_id"], post["brand_id"], "brand"),
                result.mentions,
                queries=self._queries,
                detect_language=self._detect,
                raw_retention=self._raw_retention,
            )
            await repository.finish_replies_poll(
                conn, post, result.cursor, self._replies_interval_s
            )
            if result.credentials is not None:
                # A refreshed session (Bluesky refresh tokens work once) belongs to the source.
                await repository.update_source(
                    conn,
                    source.id,
                    credentials_encrypted=secrets.seal_dict(self._box, result.credentials),
                )

    async def _claim_safely(self) -> list[repository.SourceRow]:
        free = self._concurrency - len(self._running)
        if free <= 0:
            return []
        try:
            async with self._pool().acquire() as conn:
                return await repository.claim_due_sources(conn, self.owner, self._lease_s, free)
        except TRANSIENT_DB_ERRORS:
            log.warning("cannot claim sources: database unavailable")
            return []

    async def run_source(self, client: httpx.AsyncClient, row: repository.SourceRow) -> None:
        started = datetime.now(UTC)
        connector = self._connectors.get(row.network)
        result: PullResult | None = None
        failure: BaseException | None = None
        try:
            if connector is None:
                raise BadConfig(f"no pull connector for network {row.network!r}")
            config = connector.config_model.model_validate(row.config)
            credentials = secrets.open_dict(self._box, row.credentials_encrypted)
            async with asyncio.timeout(self._pull_timeout_s):
                result = await connector.pull(client, config, credentials, dict(row.cursor))
        except (ConnectorError, httpx.HTTPError, TimeoutError, ValueError) as exc:
            failure = exc
        except asyncio.CancelledError:
            raise
        except Exception as exc:  # a connector bug must not stop the scheduler
            log.exception("connector %s failed on source %s", row.network, row.id)
            failure = exc
        try:
            await self._commit(row, started, result, failure)
        except LeaseLost:
            log.warning("source %s: lease lost mid-run, its results were rolled back", row.id)
        except TRANSIENT_DB_ERRORS:
            log.warning("source %s: database unavailable, the run will be retried", row.id)

    async def _commit(
        self,
        row: repository.SourceRow,
        started: datetime,
        result: PullResult | None,
        failure: BaseException | None,
    ) -> None:
        now = datetime.now(UTC)
        async with self._pool().acquire() as conn, conn.transaction():
            stored, newest, skipped, fetched = 0, None, 0, 0
            if result is not None:
                outcome = await ingest_items(
                    conn,
                    SourceContext(row.id, row.tenant_id, row.brand_id, row.match_mode),
                    result.mentions,
                    queries=self._queries,
                    detect_language=self._detect,
                    raw_retention=self._raw_retention,
                )
                stored, newest = outcome.new_matches, outcome.newest_created_at
                skipped, fetched = len(result.skipped), len(result.mentions)
                plan = plan_after_success(result, row.interval_s, now)
                if result.skipped:
                    reasons = "; ".join(s.reason for s in result.skipped[:3])
                    plan = RunPlan(
                        plan.next_run_in_s,
                        plan.status,
                        f"skipped {len(result.skipped)} malformed item(s): {reasons}"[:1000],
                        True,
                    )
            else:
                assert failure is not None
                plan = plan_after_failure(failure, row.consecutive_failures, row.interval_s)
            credentials = (
                secrets.seal_dict(self._box, result.credentials)
                if result is not None and result.credentials is not None
                else None
            )
            recorded = await repository.finish_run(
                conn,
                row.id,
                self.owner,
                cursor=result.cursor if result is not None else None,
                credentials_encrypted=credentials,
                next_run_in_s=plan.next_run_in_s,
                status=plan.status,
                error=plan.error,
                succeeded=plan.succeeded,
                stored=stored,
                newest_item_at=newest,
                quota_used=result.quota_used if result is not None else 0,
            )
            if not recorded:
                raise LeaseLost(str(row.id))
            await repository.record_run(conn, row.id, started, fetched, stored, skipped, plan.error)
