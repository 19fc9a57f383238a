"""How a service process runs: settings → pool → migrations → broker → relay → HTTP.

Each service supplies a `wire` function that registers its Kafka subscribers on the broker and
returns its HTTP router; this module owns the order of start-up and shutdown.
"""

from __future__ import annotations

import asyncio
import contextlib
import gc
import logging
from collections.abc import AsyncIterator, Awaitable, Callable, Coroutine, Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, TypeVar

import asyncpg
import uvicorn
from fastapi import APIRouter, FastAPI
from faststream import AckPolicy
from faststream.kafka import KafkaBroker
from faststream.kafka.annotations import KafkaMessage
from faststream.message import StreamMessage
from pydantic import BaseModel

from shared import db
from shared.auth import Principal
from shared.broker import create_broker, create_producer
from shared.consumer import Effect, IdempotentBatchConsumer
from shared.http import (
    ERROR_RESPONSES,
    bearer_auth,
    install_body_limit,
    install_error_handlers,
    install_operational_routes,
)
from shared.logs import configure_logging
from shared.metrics import ConsumerLagSampler, ServiceMetrics, for_process
from shared.migrations import migrate
from shared.outbox import OutboxRelay
from shared.settings import PlatformSettings, ServiceName, ServiceSettings, load_settings
from shared.topics import TopicSpec

log = logging.getLogger("opensmm.runtime")
E = TypeVar("E", bound=BaseModel)


@dataclass
class Runtime:
    """What a service's handlers and routes may use. `pool` is set before anything runs."""

    service: ServiceName
    platform: PlatformSettings
    settings: ServiceSettings
    metrics: ServiceMetrics
    broker: KafkaBroker
    authenticate: Callable[..., Awaitable[Principal]]
    _pool: asyncpg.Pool | None = None
    background: list[Callable[[], Coroutine[Any, Any, None]]] = field(default_factory=list)
    # Every consumer group `consume` subscribes is watched for lag (set by build_runtime).
    lag: ConsumerLagSampler | None = None

    @property
    def pool(self) -> asyncpg.Pool:
        if self._pool is None:
            raise RuntimeError("the database pool is not open yet")
        return self._pool

    @property
    def dsn(self) -> str:
        assert self.settings.database_url is not None
        return self.settings.database_url.get_secret_value()

    def topic(self, name: str) -> str:
        return self.platform.topic_prefix + name

    def group(self, consumer: str) -> str:
        return f"{self.platform.topic_prefix}opensmm.{self.service}.{consumer}"

    def consume(
        self,
        topic: TopicSpec,
        *,
        name: str,
        models: Mapping[str, type[E]],
        effect: Effect[E],
    ) -> IdempotentBatchConsumer[E]:
        """Subscribe an idempotent batch consumer to `topic` in consumer group `name`.

        Offsets are committed only after the batch's effect committed in Postgres; an error
        rewinds to the batch start so it is redelivered (NACK_ON_ERROR, never FastStream's
        acknowledge-first default). See shared/consumer.py.
        """
        consumer = IdempotentBatchConsumer[E](
            name=f"{self.service}.{name}",
            pool_provider=lambda: self.pool,
            broker=self.broker,
            metrics=self.metrics,
            models=models,
            effect=effect,
            max_attempts=self.settings.consumer_max_attempts,
            topic_prefix=self.platform.topic_prefix,
        )

        async def on_batch(message: KafkaMessage) -> None:
            records = message.raw_message
            await consumer.handle(records if isinstance(records, tuple) else (records,))

        if self.lag is not None:
            self.lag.watch(self.group(name), self.topic(topic.name))
        self.broker.subscriber(
            self.topic(topic.name),
            group_id=self.group(name),
            batch=True,
            max_records=self.settings.consumer_max_records,
            batch_timeout_ms=self.settings.consumer_batch_timeout_ms,
            auto_offset_reset="earliest",
            ack_policy=AckPolicy.NACK_ON_ERROR,
            decoder=_undecoded,
        )(on_batch)
        return consumer


async def _undecoded(message: StreamMessage[Any]) -> Any:
    """The batch consumer decodes and validates records itself: FastStream's own JSON decode of
    every record would be thrown away."""
    return message.body


Wire = Callable[[Runtime], APIRouter]


def build_runtime(service: ServiceName) -> Runtime:
    platform, settings = load_settings(service)
    configure_logging(service, platform.log_level, platform.log_format)
    metrics = for_process(service)
    assert platform.auth_secret is not None
    return Runtime(
        service=service,
        platform=platform,
        settings=settings,
        metrics=metrics,
        broker=create_broker(platform, service, metrics),
        authenticate=bearer_auth(platform.auth_secret.get_secret_value(), platform.auth_issuer),
        lag=ConsumerLagSampler(
            bootstrap_servers=platform.kafka_bootstrap_servers,
            metrics=metrics,
            client_id=f"opensmm-{service}-lag",
            topic_prefix=platform.topic_prefix,
        ),
    )


async def _retry(what: str, action: Callable[[], Awaitable[Any]]) -> Any:
    """Start-up waits for a dependency that is still coming up instead of crash-looping."""
    delay = 0.5
    while True:
        try:
            return await action()
        except Exception as exc:
            log.warning("waiting for %s: %s", what, exc)
            await asyncio.sleep(delay)
            delay = min(delay * 2, 10.0)


def create_app(runtime: Runtime, wire: Wire, migrations: Path) -> FastAPI:
    api = wire(runtime)

    @contextlib.asynccontextmanager
    async def lifespan(_: FastAPI) -> AsyncIterator[None]:
        s = runtime.settings
        runtime._pool = await _retry(
            "postgres",
            lambda: db.create_pool(
                runtime.dsn,
                min_size=s.db_pool_min_size,
                max_size=s.db_pool_max_size,
                schema=runtime.service,
                plan_cache_mode=s.db_plan_cache_mode,
            ),
        )

        async def run_migrations() -> list[str]:
            async with runtime.pool.acquire() as conn:
                try:
                    return await migrate(conn, runtime.service, migrations)
                finally:
                    # migrate() sets the search_path; the pool does not reset sessions on release
                    # (shared/db.py), so put the connection's own settings back.
                    await conn.execute("RESET ALL")

        applied = await _retry("migrations", run_migrations)
        if applied:
            log.info("applied migrations: %s", ", ".join(applied))
        await _retry("kafka", runtime.broker.start)
        producer = create_producer(runtime.platform, runtime.service)
        await _retry("kafka", producer.start)
        relay = OutboxRelay(
            pool=runtime.pool,
            dsn=runtime.dsn,
            producer=producer,
            schema=runtime.service,
            metrics=runtime.metrics,
            topic_prefix=runtime.platform.topic_prefix,
            batch_size=s.outbox_batch_size,
            poll_interval_s=s.outbox_poll_interval_s,
        )
        tasks = [asyncio.create_task(relay.run(), name="outbox-relay")]
        if runtime.lag is not None:
            tasks.append(asyncio.create_task(runtime.lag.run(), name="consumer-lag"))
        tasks += [asyncio.create_task(job()) for job in runtime.background]
        # What is loaded by now (modules, models, routes, pools) lives as long as the process.
        # Frozen, it is out of the garbage collector's walk: a full collection over it cost
        # 14-22 ms in the middle of API calls (the metrics queries' p99) and CPU in every consumer.
        gc.collect()
        gc.freeze()
        log.info("%s ready on %s:%d", runtime.service, s.http_host, s.http_port)
        try:
            yield
        finally:
            for task in tasks:
                task.cancel()
            for task in tasks:
                with contextlib.suppress(BaseException):
                    await task
            await producer.stop()
            await runtime.broker.stop()
            await runtime.pool.close()

    app = FastAPI(
        title=f"OpenSMM {runtime.service}",
        version="1.0.0",
        lifespan=lifespan,
        openapi_url="/api/v1/openapi.json",
        docs_url="/api/v1/docs",
        redoc_url=None,
    )
    install_error_handlers(app)
    install_body_limit(app, runtime.settings.max_body_bytes)

    async def database_ready() -> bool:
        return runtime._pool is not None and await db.ping(runtime._pool)

    async def broker_ready() -> bool:
        try:
            return bool(await runtime.broker.ping(timeout=2.0))
        except Exception:
            return False

    install_operational_routes(
        app, runtime.metrics, {"database": database_ready, "kafka": broker_ready}
    )
    app.include_router(api, prefix="/api/v1", responses=ERROR_RESPONSES)
    return app


def serve(service: ServiceName, wire: Wire, migrations: Path) -> None:
    """`python -m services.<name>`: run until SIGINT/SIGTERM, then shut down cleanly."""
    runtime = build_runtime(service)
    app = create_app(runtime, wire, migrations)
    config = uvicorn.Config(
        app,
        host=runtime.settings.http_host,
        port=runtime.settings.http_port,
        log_config=None,
        access_log=False,
        lifespan="on",
        limit_concurrency=2000,
        timeout_graceful_shutdown=10,
    )
    asyncio.run(uvicorn.Server(config).serve())
