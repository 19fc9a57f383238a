"""Publishes due deliveries exactly once, with any number of replicas.

A delivery is leased with `FOR UPDATE SKIP LOCKED`; the attempt (with the delivery's stable
idempotency key) is committed before the network call, and the outcome after it, fenced by the
lease. A delivery found mid-publish (its replica died between the call and the record) or with an
unknown outcome is reconciled on the network first: published → recorded, no trace → published
again with the same key, cannot tell → looked at again later. Nothing is ever retried blindly;
the one exception is a `hide` delivery (a comment the inbox asked to hide), which sets a state on
the network and so is simply sent again.
"""

from __future__ import annotations

import asyncio
import contextlib
import dataclasses
import logging
import os
import random
import socket
import uuid
from collections.abc import Callable, Mapping
from datetime import UTC, datetime
from typing import Any

import asyncpg
import httpx

from services.publisher import events, repository
from services.publisher.adapters.base import (
    Hidden,
    HideOutcome,
    MediaUpload,
    NeedsReconnect,
    PublishAdapter,
    Published,
    PublishOutcome,
    PublishRequest,
    RateLimited,
    ReconcileFailed,
    Rejected,
    Retryable,
    Unknown,
    hide_comment,
)
from services.publisher.ratelimit import AccountLimiter, Action, UnknownNetworkError
from shared.crypto import SecretBox
from shared.db import TRANSIENT_DB_ERRORS
from shared.metrics import ServiceMetrics, for_process
from shared.outbox import add_events

log = logging.getLogger("opensmm.publisher.dispatcher")

MAX_ATTEMPTS = 8
MAX_MEDIA_BYTES = 200 * 1024 * 1024
UNKNOWN_RECHECK_S = 30.0
RECONNECT_RECHECK_S = 300.0


class LeaseLost(RuntimeError):
    pass


def retry_backoff_s(attempts: int) -> float:
    return float(min(5.0 * 2 ** max(attempts - 1, 0), 900.0)) * random.uniform(0.8, 1.2)  # noqa: S311


class Dispatcher:
    def __init__(
        self,
        *,
        pool_provider: Callable[[], asyncpg.Pool],
        adapters: Mapping[str, PublishAdapter],
        box: SecretBox,
        lease_s: float = 60.0,
        batch: int = 50,
        idle_poll_s: float = 0.5,
        network_timeout_s: float = 20.0,
        limiter: AccountLimiter | None = None,
        client: httpx.AsyncClient | None = None,
        metrics: ServiceMetrics | None = None,
        engagement_first_check_s: float = 0.0,
    ) -> None:
        self._pool = pool_provider
        self._metrics = metrics or for_process("publisher")
        self._adapters = dict(adapters)
        self._box = box
        self._lease_s = lease_s
        self._batch = batch
        self._idle_poll_s = idle_poll_s
        self._client = client
        self._timeout_s = network_timeout_s
        self._limiter = limiter or AccountLimiter()
        self._first_check_s = engagement_first_check_s
        self.owner = f"{socket.gethostname()}:{os.getpid()}:{uuid.uuid4().hex[:8]}"

    async def run(self) -> None:
        own = self._client is None
        client = self._client or httpx.AsyncClient(
            timeout=httpx.Timeout(self._timeout_s, connect=min(5.0, self._timeout_s))
        )
        try:
            while True:
                try:
                    async with self._pool().acquire() as conn:
                        due = await repository.claim_due(
                            conn, self.owner, self._lease_s, self._batch
                        )
                except TRANSIENT_DB_ERRORS:
                    due = []
                if not due:
                    await asyncio.sleep(self._idle_poll_s)
                    continue
                await asyncio.gather(*(self._safely(client, d) for d in due))
        finally:
            if own:
                await client.aclose()

    async def _safely(self, client: httpx.AsyncClient, delivery: dict[str, Any]) -> None:
        try:
            await self.dispatch(client, delivery)
        except LeaseLost:
            log.warning("delivery %s: lease lost; another replica has it", delivery["id"])
        except TRANSIENT_DB_ERRORS:
            log.warning("delivery %s: database unavailable; the lease will expire", delivery["id"])
        except Exception:
            log.exception("delivery %s: unexpected failure", delivery["id"])

    async def _media(
        self, client: httpx.AsyncClient, items: list[dict[str, Any]]
    ) -> list[MediaUpload] | PublishOutcome:
        """The variant's files, fetched from their URLs; an outcome when they cannot be had."""
        uploads: list[MediaUpload] = []
        for index, item in enumerate(items):
            url = item.get("url")
            if not url:
                return Rejected("media_missing", f"media item {index} has no url to fetch")
            try:
                async with client.stream("GET", url) as response:
                    if response.status_code >= 400:
                        return Retryable(f"media {url}: HTTP {response.status_code}")
                    data = bytearray()
                    async for chunk in response.aiter_bytes():
                        data += chunk
                        if len(data) > MAX_MEDIA_BYTES:
                            return Rejected("media_too_large", f"media {url} exceeds the limit")
                    content_type = response.headers.get("content-type", "") or item.get("mime")
            except httpx.HTTPError as exc:
                return Retryable(f"media {url}: {type(exc).__name__}")
            uploads.append(
                MediaUpload(
                    filename=url.rsplit("/", 1)[-1] or f"media-{index}",
                    content_type=(content_type or "application/octet-stream").split(";")[0],
                    data=bytes(data),
                    description=item.get("alt_text"),
                    source_url=url,
                )
            )
        return uploads

    def _request(self, delivery: dict[str, Any], media: list[MediaUpload]) -> PublishRequest:
        return PublishRequest(
            # Stable across every attempt of this delivery: the network sees one publication.
            idempotency_key=str(delivery["id"]),
            text=delivery["text"]
            if not delivery["link"]
            else f"{delivery['text']}\n{delivery['link']}",
            reply_to_external_id=delivery["reply_to"],
            media=media,
            attempted_at=delivery["first_attempt_at"],
        )

    async def dispatch(self, client: httpx.AsyncClient, delivery: dict[str, Any]) -> None:
        adapter = self._adapters.get(delivery["network"])
        if adapter is None:
            message = f"cannot publish to {delivery['network']}"
            await self._record(delivery, Rejected("no_adapter", message))
            return
        config = adapter.config_model.model_validate(delivery["config"])
        credentials = self._box.open_json(delivery["credentials_encrypted"])
        request = self._request(delivery, [])
        hiding = delivery["kind"] == "hide"
        retaken = delivery["status"] in ("publishing", "unknown") and delivery["attempts"] > 0
        # A hide found mid-attempt is sent again: hiding a hidden comment changes nothing.
        if retaken and not hiding:
            try:
                found = await adapter.reconcile(client, config, credentials, request)
            except ReconcileFailed as exc:
                if isinstance(exc.outcome, Rejected):
                    # The network offers no way to check (Telegram): a person must look, since
                    # publishing again could post twice.
                    await self._record(
                        delivery,
                        Rejected(
                            "outcome_unverifiable",
                            f"the last attempt may have been published; check it ({exc.outcome})",
                        ),
                    )
                else:
                    await self._record(delivery, Unknown(f"reconcile failed: {exc.outcome}"))
                return
            if found is not None:
                await self._record(delivery, found)
                return
        wait = self._pace(delivery)
        if wait > 0:
            async with self._pool().acquire() as conn:
                await repository.postpone(conn, delivery["id"], self.owner, wait)
            return
        async with self._pool().acquire() as conn:
            number = await repository.start_attempt(
                conn, delivery["id"], self.owner, request.idempotency_key
            )
        if number is None:
            raise LeaseLost(str(delivery["id"]))
        delivery = {**delivery, "attempts": number}
        outcome: PublishOutcome | HideOutcome
        if hiding:
            outcome = await hide_comment(
                adapter, client, config, credentials, delivery["target_external_id"]
            )
        else:
            media = await self._media(client, list(delivery["media"] or []))
            if not isinstance(media, list):
                await self._record(delivery, media)  # nothing was sent to the network
                return
            outcome = await adapter.publish(
                client, config, credentials, dataclasses.replace(request, media=media)
            )
        if isinstance(outcome, Published) and outcome.budget is not None:
            with contextlib.suppress(UnknownNetworkError):
                self._limiter.observe(
                    delivery["network"],
                    str(delivery["channel_id"]),
                    outcome.budget.remaining,
                    outcome.budget.reset_at,
                    now=datetime.now(UTC),
                )
        if isinstance(outcome, RateLimited):
            with contextlib.suppress(UnknownNetworkError):
                self._limiter.penalise(
                    delivery["network"],
                    str(delivery["channel_id"]),
                    outcome.retry_after_s,
                    now=datetime.now(UTC),
                )
        await self._record(delivery, outcome)

    def _pace(self, delivery: dict[str, Any]) -> float:
        """Seconds this channel's account must wait under its network's published limits (each
        replica paces what it sends; one account never delays another)."""
        action = Action.MODERATE if delivery["kind"] == "hide" else Action.PUBLISH
        try:
            return self._limiter.acquire(
                delivery["network"],
                str(delivery["channel_id"]),
                now=datetime.now(UTC),
                action=action,
            )
        except UnknownNetworkError:
            return 0.0

    async def _record(
        self, delivery: dict[str, Any], outcome: PublishOutcome | HideOutcome
    ) -> None:
        status, wait, detail = "failed", None, None
        remote_id = url = None
        channel_status: str | None = None
        if isinstance(outcome, Published):
            status, remote_id, url = "published", outcome.remote_id, outcome.url
        elif isinstance(outcome, Hidden):
            status = "published"  # done on the network; `comment.hidden` says what was done
        elif isinstance(outcome, Retryable):
            detail = outcome.reason
            if delivery["attempts"] < MAX_ATTEMPTS:
                status = "scheduled"
                wait = outcome.retry_after_s or retry_backoff_s(delivery["attempts"])
        elif isinstance(outcome, RateLimited):
            status, wait, detail = "scheduled", max(outcome.retry_after_s, 1.0), "rate limited"
        elif isinstance(outcome, NeedsReconnect):
            status, wait, detail = "scheduled", RECONNECT_RECHECK_S, outcome.reason
            channel_status = "needs_reconnect"
        elif isinstance(outcome, Rejected):
            detail = f"{outcome.reason}: {outcome.network_message}"
        elif isinstance(outcome, Unknown):
            status, wait, detail = "unknown", UNKNOWN_RECHECK_S, outcome.reason
        async with self._pool().acquire() as conn, conn.transaction():
            done = await repository.finish_attempt(
                conn,
                delivery["id"],
                self.owner,
                outcome=outcome.kind,
                detail=detail,
                status=status,
                next_attempt_in_s=wait,
                remote_id=remote_id,
                url=url,
            )
            if not done:
                raise LeaseLost(str(delivery["id"]))
            if channel_status is not None:
                await repository.update_channel(
                    conn, delivery["channel_id"], status=channel_status, last_error=detail
                )
            if status in ("published", "failed"):
                await add_events(
                    conn, events.delivery_done(delivery, status, remote_id, url, detail)
                )
                if delivery["kind"] == "post" and status == "published":
                    # From now on the engagement job measures what the post achieves.
                    await repository.track_engagement(
                        conn,
                        delivery["id"],
                        delivery["tenant_id"],
                        delivery["channel_id"],
                        first_check_in_s=self._first_check_s,
                    )
                if delivery["post_id"] is not None:
                    rolled = await repository.roll_up_post(conn, delivery["post_id"])
                    if rolled is not None:
                        log.info("post %s is %s", delivery["post_id"], rolled)
        self._observe(delivery, status)

    def _observe(self, delivery: dict[str, Any], status: str) -> None:
        """Count a recorded outcome (after its commit) and, once out, how late it went out."""
        network, kind = delivery["network"], delivery["kind"]
        outcome = {"published": "published", "failed": "failed", "unknown": "unknown"}.get(
            status, "retried"
        )
        self._metrics.publish_outcomes.labels(network, kind, outcome).inc()
        due = delivery.get("due_at")
        if status == "published" and isinstance(due, datetime):
            late = (datetime.now(UTC) - due).total_seconds()
            self._metrics.scheduler_lateness.labels(network, kind).observe(max(late, 0.0))
