"""A private dev stack (its own Kafka, Postgres, four services and sandbox) that scenarios may kill.

`async with chaos_stack(workdir) as stack:` gives a fresh database and topic prefix with the
services running; the Kafka and Postgres under `<workdir>/devstack` are never the shared ones.
"""

from __future__ import annotations

import asyncio
import contextlib
import json
import os
import signal
import socket
import time
import uuid
from collections.abc import AsyncIterator
from dataclasses import dataclass, field
from pathlib import Path

import httpx

from devstack import postgres as dev_postgres
from devstack import state as dev
from devstack.procs import port_open
from shared.settings import SERVICE_NAMES
from shared.topics import delete_topics, ensure_topics
from tests.support import ServiceProcess, free_port

REPO = Path(__file__).resolve().parents[1]
SHARED_CACHE = REPO / ".devstack" / "cache"
SANDBOX = "sandbox"


def _free_port_pair() -> int:
    """A port p with p and p + 1 free (Kafka's controller listens on p + 1)."""
    for _ in range(200):
        port = free_port()
        if port < 65534 and not port_open(port + 1):
            with socket.socket() as s:
                try:
                    s.bind(("127.0.0.1", port + 1))
                except OSError:
                    continue
            return port
    raise RuntimeError("no two adjacent free ports for Kafka")


def _point_devstack_at(workdir: Path) -> Path:
    """Aim devstack.state at `<workdir>/devstack` on ports chosen once per workdir.

    The ports are kept in the workdir so later stacks in it reuse the infra already running.
    """
    root = workdir.resolve() / "devstack"
    root.mkdir(parents=True, exist_ok=True)
    # Postgres runs as an unprivileged user under root: it must be able to enter every parent.
    for folder in (workdir.resolve(), root):
        folder.chmod(folder.stat().st_mode | 0o755)
    cache = root / "cache"
    if not cache.exists() and SHARED_CACHE.is_dir():
        # The Kafka jars were fetched once for the shared stack; do not download them again.
        cache.symlink_to(SHARED_CACHE, target_is_directory=True)
    ports_file = root / "ports.json"
    if ports_file.is_file():
        ports = json.loads(ports_file.read_text())
    else:
        ports = {"kafka": _free_port_pair(), "pg": free_port(), "sandbox": free_port()}
        ports_file.write_text(json.dumps(ports))
    # Never an external broker or database: this stack exists to be killed.
    os.environ.pop("SMM_KAFKA_BOOTSTRAP_SERVERS", None)
    os.environ.pop("SMM_DATABASE_URL", None)
    os.environ["SMM_DEVSTACK_DIR"] = str(root)
    os.environ["SMM_DEVSTACK_KAFKA_PORT"] = str(ports["kafka"])
    os.environ["SMM_DEVSTACK_PG_PORT"] = str(ports["pg"])
    os.environ["SMM_DEVSTACK_SANDBOX_PORT"] = str(ports["sandbox"])
    return root


def _logs_dir(workdir: Path, run: str) -> Path:
    logs = workdir.resolve() / "logs" / run
    logs.mkdir(parents=True, exist_ok=True)
    return logs


def service_env(name: str, database: str, prefix: str, port: int) -> dict[str, str]:
    """What tests/conftest.py gives a service: the dev stack env plus short leases and ticks."""
    env = dev.service_env(name, database=database, topic_prefix=prefix, http_port=port)
    env["SMM_INGEST_SOURCE_LEASE_S"] = "15"
    env["SMM_PUBLISHER_DISPATCH_LEASE_S"] = "4"
    env["SMM_PUBLISHER_NETWORK_TIMEOUT_S"] = "2"
    env["SMM_INBOX_SLA_TICK_S"] = "0.5"
    return env


@dataclass
class ChaosStack:
    """One scenario's slice: a database and topic prefix on private infra, and its processes."""

    workdir: Path
    database: str
    topic_prefix: str
    bootstrap: str
    auth_secret: str
    logs: Path
    services: dict[str, ServiceProcess] = field(default_factory=dict)
    sandbox: ServiceProcess | None = None

    @property
    def sandbox_url(self) -> str:
        assert self.sandbox is not None
        return self.sandbox.url

    def admin_dsn(self) -> str:
        return dev.admin_dsn(self.database)

    def service_dsn(self, service: str) -> str:
        return dev.service_dsn(service, self.database)

    def topic(self, name: str) -> str:
        return self.topic_prefix + name

    def pid(self, name: str) -> int:
        """The pid of a service's process (a restart changes it; a reconnect does not)."""
        proc = self.services[name].proc
        assert proc is not None
        return proc.pid

    def pids(self) -> dict[str, int]:
        return {name: self.pid(name) for name in self.services}

    def restarted_since(self, pids: dict[str, int]) -> list[str]:
        """Services whose process died or changed since `pids` was taken (a reconnect keeps it)."""

        def alive_as_before(name: str) -> bool:
            proc = self.services[name].proc
            return proc is not None and proc.poll() is None and proc.pid == pids[name]

        return sorted(name for name in self.services if not alive_as_before(name))

    # --- services ---------------------------------------------------------------------------

    def kill9(self, name: str) -> None:
        """SIGKILL the service's process group (no shutdown hooks, no flush)."""
        self.services[name].kill9()

    async def restart(self, name: str, timeout_s: float = 120.0) -> None:
        """Start the service again on the same port and wait until /readyz says 200."""
        proc = self.services[name]
        proc.stop()
        proc.start()
        await proc.wait_ready(timeout_s)

    async def readyz(self, name: str) -> int:
        """The HTTP status of the service's /readyz; 0 if it does not answer at all."""
        async with httpx.AsyncClient(timeout=3.0) as client:
            try:
                return (await client.get(self.services[name].url + "/readyz")).status_code
            except httpx.HTTPError:
                return 0

    async def all_ready(self) -> bool:
        codes = await asyncio.gather(*(self.readyz(name) for name in self.services))
        return all(code == 200 for code in codes)

    # --- infrastructure ---------------------------------------------------------------------

    def kafka_pid(self) -> int | None:
        return dev.kafka_broker().pid()

    def kill_kafka(self) -> None:
        """SIGKILL the broker (the JVM leads its own process group)."""
        pid = dev.kafka_broker().pid()
        if pid is None:
            raise RuntimeError("the chaos Kafka broker is not running")
        os.killpg(pid, signal.SIGKILL)
        deadline = time.monotonic() + 10
        while dev.kafka_broker().pid() is not None and time.monotonic() < deadline:
            time.sleep(0.1)

    async def start_kafka(self) -> None:
        """Start the broker on the same data and port; wait until it answers metadata."""
        broker = dev.kafka_broker()
        await asyncio.to_thread(broker.start)
        await broker.wait_ready(timeout_s=180)

    async def stop_postgres(self) -> None:
        """Stop the cluster (fast shutdown: every session is cut off at once)."""
        await asyncio.to_thread(dev.postgres_cluster().stop)

    async def start_postgres(self) -> None:
        cluster = dev.postgres_cluster()
        await asyncio.to_thread(cluster.start, dev.load_secrets().admin_password)
        await cluster.wait_ready(dev.admin_dsn())

    async def restart_postgres(self, down_s: float) -> None:
        """Stop Postgres, keep it down `down_s` seconds, start it again."""
        await self.stop_postgres()
        await asyncio.sleep(down_s)
        await self.start_postgres()


async def _start_processes(stack: ChaosStack) -> None:
    for name in SERVICE_NAMES:
        port = free_port()
        env = service_env(name, stack.database, stack.topic_prefix, port)
        proc = ServiceProcess(name, env, port, stack.logs / f"{name}.log")
        stack.services[name] = proc
        proc.start()
    sandbox_port = int(os.environ["SMM_DEVSTACK_SANDBOX_PORT"])
    sandbox = ServiceProcess(SANDBOX, {}, sandbox_port, stack.logs / "sandbox.log")
    sandbox.module = "devstack.sandbox"
    sandbox.args = ["--port", str(sandbox_port), "--rate-limit", "0"]
    stack.sandbox = sandbox
    sandbox.start()
    for proc in [*stack.services.values(), sandbox]:
        await proc.wait_ready(120)


@contextlib.asynccontextmanager
async def chaos_infra(workdir: Path) -> AsyncIterator[None]:
    """Kafka and Postgres under `<workdir>/devstack`, up for the block and stopped after it."""
    _point_devstack_at(workdir)
    await dev.infra_up()
    try:
        yield
    finally:
        dev.infra_down()


@contextlib.asynccontextmanager
async def chaos_stack(workdir: Path) -> AsyncIterator[ChaosStack]:
    """A fresh database + topic prefix with the four services and the sandbox running.

    Starts the private Kafka and Postgres if they do not run yet, and then also stops them after.
    """
    _point_devstack_at(workdir)
    owns_infra = not dev.infra_running()
    await dev.infra_up()
    run = uuid.uuid4().hex[:10]
    database, prefix = f"smm_chaos_{run}", f"chaos-{run}."
    logs = _logs_dir(workdir, run)
    secrets = dev.load_secrets()
    await dev_postgres.bootstrap_database(dev.admin_dsn(), database, secrets.role_passwords)
    await ensure_topics(dev.kafka_bootstrap(), prefix)
    stack = ChaosStack(
        workdir=workdir,
        database=database,
        topic_prefix=prefix,
        bootstrap=dev.kafka_bootstrap(),
        auth_secret=secrets.auth_secret,
        logs=logs,
    )
    try:
        await _start_processes(stack)
        yield stack
    finally:
        for proc in [*stack.services.values(), *([stack.sandbox] if stack.sandbox else [])]:
            proc.stop()
        if owns_infra:
            dev.infra_down()
        else:
            # Best effort: the infra is torn down at the end anyway, with everything in it.
            with contextlib.suppress(Exception):
                await delete_topics(dev.kafka_bootstrap(), prefix)
            with contextlib.suppress(Exception):
                await dev_postgres.drop_database(dev.admin_dsn(), database)
