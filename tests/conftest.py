"""Fixtures on the real dev stack: an isolated database and topic prefix per test session, and the
four services run as processes. Unit tests use none of these."""

from __future__ import annotations

import uuid
from collections.abc import AsyncIterator
from dataclasses import dataclass
from pathlib import Path

import asyncpg
import httpx
import pytest

from devstack import postgres as dev_postgres
from devstack import state as dev
from shared.db import create_pool
from shared.settings import SERVICE_NAMES
from shared.topics import delete_topics, ensure_topics
from tests.support import ServiceProcess, free_port


@dataclass(frozen=True)
class SessionStack:
    """Where this test session's isolated slice of the dev stack lives."""

    database: str
    topic_prefix: str
    bootstrap: str
    auth_secret: str
    logs: Path

    def admin_dsn(self) -> str:
        return dev.admin_dsn(self.database)

    def service_dsn(self, service: str) -> str:
        return dev.service_dsn(service, self.database)

    def topic(self, name: str) -> str:
        return self.topic_prefix + name


@pytest.fixture(scope="session")
async def stack(tmp_path_factory: pytest.TempPathFactory) -> AsyncIterator[SessionStack]:
    await dev.infra_up()
    run = uuid.uuid4().hex[:10]
    database, prefix = f"smm_test_{run}", f"test-{run}."
    await dev_postgres.bootstrap_database(
        dev.admin_dsn(), database, dev.load_secrets().role_passwords
    )
    await ensure_topics(dev.kafka_bootstrap(), prefix)
    logs = tmp_path_factory.mktemp("service-logs")
    yield SessionStack(
        database, prefix, dev.kafka_bootstrap(), dev.load_secrets().auth_secret, logs
    )
    await delete_topics(dev.kafka_bootstrap(), prefix)
    await dev_postgres.drop_database(dev.admin_dsn(), database)


@pytest.fixture(scope="session")
async def services(stack: SessionStack) -> AsyncIterator[dict[str, ServiceProcess]]:
    procs: dict[str, ServiceProcess] = {}
    for name in SERVICE_NAMES:
        port = free_port()
        env = dev.service_env(
            name, database=stack.database, topic_prefix=stack.topic_prefix, http_port=port
        )
        # A killed replica's sources wait out its lease; keep that short so tests see the
        # takeover in seconds (production default: 120 s).
        env["SMM_INGEST_SOURCE_LEASE_S"] = "15"
        env["SMM_PUBLISHER_DISPATCH_LEASE_S"] = "4"
        env["SMM_PUBLISHER_NETWORK_TIMEOUT_S"] = "2"
        env["SMM_INBOX_SLA_TICK_S"] = "0.5"
        procs[name] = ServiceProcess(name, env, port, stack.logs / f"{name}.log")
        procs[name].start()
    try:
        for proc in procs.values():
            await proc.wait_ready()
        yield procs
    finally:
        for proc in procs.values():
            proc.stop()


@pytest.fixture(scope="session")
async def sandbox(stack: SessionStack) -> AsyncIterator[str]:
    """The sandbox network (a local Mastodon) as its own process, rate limits off."""
    port = free_port()
    proc = ServiceProcess("sandbox", {}, port, stack.logs / "sandbox.log")
    proc.module = "devstack.sandbox"
    proc.args = ["--port", str(port), "--rate-limit", "0"]
    proc.start()
    try:
        await proc.wait_ready()
        yield proc.url
    finally:
        proc.stop()


@pytest.fixture
async def admin_db(stack: SessionStack) -> AsyncIterator[asyncpg.Connection]:
    """A superuser connection to the session's database, for assertions on stored rows."""
    conn = await asyncpg.connect(stack.admin_dsn())
    try:
        yield conn
    finally:
        await conn.close()


async def _service_pool(stack: SessionStack, service: str) -> AsyncIterator[asyncpg.Pool]:
    """A pool on a service's schema as the service's own role (its migrations have run)."""
    pool = await create_pool(stack.service_dsn(service), schema=service)
    try:
        yield pool
    finally:
        await pool.close()


@pytest.fixture
async def inbox_pool(
    stack: SessionStack, services: dict[str, ServiceProcess]
) -> AsyncIterator[asyncpg.Pool]:
    async for pool in _service_pool(stack, "inbox"):
        yield pool


@pytest.fixture
async def publisher_pool(
    stack: SessionStack, services: dict[str, ServiceProcess]
) -> AsyncIterator[asyncpg.Pool]:
    async for pool in _service_pool(stack, "publisher"):
        yield pool


@pytest.fixture
async def metrics_pool(
    stack: SessionStack, services: dict[str, ServiceProcess]
) -> AsyncIterator[asyncpg.Pool]:
    async for pool in _service_pool(stack, "metrics"):
        yield pool


@pytest.fixture
async def http() -> AsyncIterator[httpx.AsyncClient]:
    async with httpx.AsyncClient(timeout=30.0) as client:
        yield client


@pytest.fixture
def tenant() -> str:
    """A fresh tenant per test: tests never see each other's rows."""
    return "t-" + uuid.uuid4().hex[:12]
