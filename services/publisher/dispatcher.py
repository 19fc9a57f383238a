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
import itertools
import logging
import math
import os
import random
import socket
import uuid
from collections.abc import Awaitable, Callable, Mapping
from datetime import UTC, datetime
from functools import partial
from typing import Any, Generic, TypeVar

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
Item = TypeVar("Item")
R = TypeVar("R")

MAX_ATTEMPTS = 8
MAX_MEDIA_BYTES = 200 * 1024 * 1024
UNKNOWN_RECHECK_S = 30.0
# httpx's pool walks all its connections on every request and response (profiled: with 100
# open, 43 % of a replica's CPU in a burst): the dispatcher spreads its calls over several
# small clients instead, and what is over waits in the dispatcher, not in httpx's queue.
CALLS_PER_CLIENT = 16
RECONNECT_RECHECK_S = 300.0


class LeaseLost(RuntimeError):
    pass


class Coalescer(Generic[Item, R]):
    """Hands what is submitted while the last flush runs to the next flush, all in one call
    (a group commit): one item waits for no other, and items arriving together share a round
    trip. `flush` answers one result per item, in order."""

    def __init__(self, flush: Callable[[list[Item]], Awaitable[list[R]]], *, limit: int) -> None:
        self._flush = flush
        self._limit = limit
        self._queue: list[tuple[Item, asyncio.Future[R]]] = []
        self._task: asyncio.Task[None] | None = None

    async def submit(self, item: Item) -> R:
        future: asyncio.Future[R] = asyncio.get_running_loop().create_future()
        self._queue.append((item, future))
        if self._task is None:
            self._task = asyncio.create_task(self._drain())
        return await future

    async def _drain(self) -> None:
        batch: list[tuple[Item, asyncio.Future[R]]] = []
        try:
            while self._queue:
                batch, self._queue = self._queue[: self._limit], self._queue[self._limit :]
                await self._answer(batch)
        finally:
            self._task = None
            for _, future in batch + self._queue:
                future.cancel()  # only those still unanswered: shutting down
            self._queue = []

    async def _answer(self, batch: list[tuple[Item, asyncio.Future[R]]]) -> None:
        try:
            results = await self._flush([item for item, _ in batch])
        except TRANSIENT_DB_ERRORS as exc:
            for _, future in batch:
                if not future.done():
                    future.set_exception(exc)
            return
        except Exception as exc:
            if len(batch) == 1:
                if not batch[0][1].done():
                    batch[0][1].set_exception(exc)
                return
            # Something about one item; each alone, so it holds none of the others back.
            for one in batch:
                await self._answer([one])
            return
        for (_, future), result in zip(batch, results, strict=True):
            if not future.done():
                future.set_result(result)

    def close(self) -> None:
        if self._task is not None:
            self._task.cancel()


@dataclasses.dataclass(frozen=True)
class _Finished:
    """An outcome to record: the delivery as claimed, what to write, and the channel's state."""

    delivery: dict[str, Any]
    finish: repository.Finish
    channel_status: str | None


def retry_backoff_s(attempts: int) -> float:
    return float(min(5.0 * 2 ** max(attempts - 1, 0), 900.0)) * random.uniform(0.8, 1.2)  # noqa: S311


def _forget(flying: dict[uuid.UUID, asyncio.Task[None]], key: uuid.UUID, _: object) -> None:
    flying.pop(key, None)


class Dispatcher:
    def __init__(
        self,
        *,
        pool_provider: Callable[[], asyncpg.Pool],
        adapters: Mapping[str, PublishAdapter],
        box: SecretBox,
        lease_s: float = 60.0,
        batch: int = 50,
        idle_poll_s: float = 0.25,
        tick_s: float = 0.05,
        window: int | None = None,
        network_concurrency: int = 48,
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
        self._tick_s = min(tick_s, idle_poll_s)
        # Deliveries in flight at most: up to a batch more is claimed while the rest go out.
        self._window = max(window or 2 * batch, batch)
        # Network calls at once, over as many clients as it takes at CALLS_PER_CLIENT each.
        self._clients = max(math.ceil(network_concurrency / CALLS_PER_CLIENT), 1)
        self._gates: dict[httpx.AsyncClient, asyncio.Semaphore] = {}
        # Attempts starting together and outcomes arriving together share a statement and a
        # transaction (a group commit), instead of a round trip or six per delivery.
        self._started: Coalescer[tuple[uuid.UUID, str], int | None] = Coalescer(
            self._start_attempts, limit=self._window
        )
        self._finished: Coalescer[_Finished, bool] = Coalescer(
            self._finish_attempts, limit=self._window
        )
        self._client = client
        self._timeout_s = network_timeout_s
        self._limiter = limiter or AccountLimiter()
        self._first_check_s = engagement_first_check_s
        self.owner = f"{socket.gethostname()}:{os.getpid()}:{uuid.uuid4().hex[:8]}"

    async def run(self) -> None:
        if self._client is not None:
            clients = [self._client]
        else:
            clients = [self._new_client() for _ in range(self._clients)]
        turns = itertools.cycle(clients)
        flying: dict[uuid.UUID, asyncio.Task[None]] = {}
        try:
            while True:
                # A sliding window: claim again as soon as a batch's worth of room is free,
                # not when the slowest delivery of the last batch is done.
                while len(flying) > self._window - self._batch:
                    await asyncio.wait(flying.values(), return_when=asyncio.FIRST_COMPLETED)
                try:
                    async with self._pool().acquire() as conn:
                        due = await repository.claim_due(
                            conn, self.owner, self._lease_s, self._batch
                        )
                        upcoming = None if due else await repository.next_due(conn)
                except TRANSIENT_DB_ERRORS:
                    due, upcoming = [], None
                for delivery in due:
                    # Claimed again while still in flight here (its lease ran out on a slow
                    # call): the lease is ours either way, and one dispatch of it is enough.
                    if delivery["id"] not in flying:
                        task = asyncio.create_task(self._safely(next(turns), delivery))
                        flying[delivery["id"]] = task
                        task.add_done_callback(partial(_forget, flying, delivery["id"]))
                if len(due) < self._batch:
                    await asyncio.sleep(self._idle_wait(upcoming, busy=bool(due)))
        finally:
            for task in flying.values():
                task.cancel()
            await asyncio.gather(*flying.values(), return_exceptions=True)
            self._started.close()
            self._finished.close()
            if self._client is None:
                for client in clients:
                    await client.aclose()

    def _new_client(self) -> httpx.AsyncClient:
        return httpx.AsyncClient(
            timeout=httpx.Timeout(self._timeout_s, connect=min(5.0, self._timeout_s)),
            # Kept alive, a burst to one network does not open a connection per post.
            limits=httpx.Limits(
                max_connections=CALLS_PER_CLIENT, max_keepalive_connections=CALLS_PER_CLIENT
            ),
        )

    def _gate(self, client: httpx.AsyncClient) -> asyncio.Semaphore:
        """What a network call through `client` waits on past CALLS_PER_CLIENT at once."""
        return self._gates.setdefault(client, asyncio.Semaphore(CALLS_PER_CLIENT))

    def _idle_wait(self, upcoming: datetime | None, *, busy: bool) -> float:
        """How long to wait before claiming again when all that is due is claimed: a short tick
        while posts keep falling due, else until the next one is due, never longer than the
        idle poll (a reply or a post scheduled for now may come in meanwhile)."""
        if busy:
            return self._tick_s
        if upcoming is None:
            return self._idle_poll_s
        until = (upcoming - datetime.now(UTC)).total_seconds()
        return min(max(until, self._tick_s), self._idle_poll_s)

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
                async with self._gate(client):
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
        number = await self._started.submit((delivery["id"], request.idempotency_key))
        if number is None:
            raise LeaseLost(str(delivery["id"]))
        delivery = {**delivery, "attempts": number}
        async with self._gate(client):
            outcome = await self._send(client, adapter, config, credentials, delivery, request)
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

    async def _send(
        self,
        client: httpx.AsyncClient,
        adapter: PublishAdapter,
        config: Any,
        credentials: Any,
        delivery: dict[str, Any],
        request: PublishRequest,
    ) -> PublishOutcome | HideOutcome:
        if delivery["kind"] == "hide":
            return await hide_comment(
                adapter, client, config, credentials, delivery["target_external_id"]
            )
        media = await self._media(client, list(delivery["media"] or []))
        if not isinstance(media, list):
            return media  # nothing was sent to the network
        return await adapter.publish(
            client, config, credentials, dataclasses.replace(request, media=media)
        )

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
        finish = repository.Finish(
            delivery["id"], outcome.kind, detail, status, wait, remote_id, url
        )
        if not await self._finished.submit(_Finished(delivery, finish, channel_status)):
            raise LeaseLost(str(delivery["id"]))
        self._observe(delivery, status)

    async def _start_attempts(self, keys: list[tuple[uuid.UUID, str]]) -> list[int | None]:
        """Attempt numbers of the deliveries, committed (before any of them goes out); None
        where the lease was lost."""
        async with self._pool().acquire() as conn:
            started = await repository.start_attempts(conn, self.owner, keys)
        return [started.get(delivery_id) for delivery_id, _ in keys]

    async def _finish_attempts(self, batch: list[_Finished]) -> list[bool]:
        """Record outcomes in one transaction, each fenced by its lease: False where the lease
        was lost (nothing of that delivery is written; the others are)."""
        closing = [f for f in batch if f.finish.status in ("published", "failed")]
        async with self._pool().acquire() as conn, conn.transaction():
            # Posts first, in id order, as the API locks them before their deliveries.
            await repository.lock_posts(
                conn, [f.delivery["post_id"] for f in closing if f.delivery["post_id"]]
            )
            done = await repository.finish_attempts(conn, self.owner, [f.finish for f in batch])
            recorded = [f for f in batch if f.delivery["id"] in done]
            for f in sorted(recorded, key=lambda f: f.delivery["channel_id"]):
                if f.channel_status is not None:
                    await repository.update_channel(
                        conn,
                        f.delivery["channel_id"],
                        status=f.channel_status,
                        last_error=f.finish.detail,
                    )
            closed = [f for f in closing if f.delivery["id"] in done]
            await add_events(
                conn,
                [
                    event
                    for f in closed
                    for event in events.delivery_done(
                        f.delivery,
                        f.finish.status,
                        f.finish.remote_id,
                        f.finish.url,
                        f.finish.detail,
                    )
                ],
            )
            # From now on the engagement job measures what the posts achieve.
            await repository.track_engagements(
                conn,
                [
                    (f.delivery["id"], f.delivery["tenant_id"], f.delivery["channel_id"])
                    for f in closed
                    if f.delivery["kind"] == "post" and f.finish.status == "published"
                ],
                self._first_check_s,
            )
            rolled = await repository.roll_up_posts(
                conn, [f.delivery["post_id"] for f in closed if f.delivery["post_id"]]
            )
        for post_id, post_status in rolled.items():
            log.info("post %s is %s", post_id, post_status)
        return [f.delivery["id"] in done for f in batch]

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
