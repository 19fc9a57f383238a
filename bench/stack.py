"""A throwaway slice of the dev stack for one benchmark: its own database and topic prefix on the
running Kafka and Postgres, the services it needs as processes on free ports, and their RSS."""

from __future__ import annotations

import asyncio
import contextlib
import tempfile
import uuid
from collections.abc import AsyncIterator, Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path

import psutil

from devstack import postgres as dev_postgres
from devstack import state as dev
from shared.topics import delete_topics, ensure_topics
from tests.support import ServiceProcess, free_port


@dataclass
class BenchSlice:
    """Where one benchmark run lives, and the service processes it started."""

    database: str
    prefix: str
    logs: Path
    services: dict[str, ServiceProcess] = field(default_factory=dict)

    @property
    def bootstrap(self) -> str:
        return dev.kafka_bootstrap()

    @property
    def auth_secret(self) -> str:
        return dev.load_secrets().auth_secret

    def admin_dsn(self) -> str:
        return dev.admin_dsn(self.database)

    def topic(self, name: str) -> str:
        return self.prefix + name

    def url(self, service: str) -> str:
        return self.services[service].url

    async def start(self, name: str, service: str, env: Mapping[str, str] | None = None) -> None:
        """Start `service` as the process `name` (e.g. `publisher-2` for a second replica)."""
        port = free_port()
        proc_env = dev.service_env(
            service, database=self.database, topic_prefix=self.prefix, http_port=port
        )
        proc_env["SMM_LOG_LEVEL"] = "WARNING"
        proc_env.update(env or {})
        proc = ServiceProcess(service, proc_env, port, self.logs / f"{name}.log")
        proc.start()
        self.services[name] = proc
        await proc.wait_ready(timeout_s=120)

    def stop_all(self) -> None:
        for proc in self.services.values():
            proc.stop()
        self.services.clear()


@contextlib.asynccontextmanager
async def bench_slice(label: str, *, keep: bool = False) -> AsyncIterator[BenchSlice]:
    """A fresh database + topic prefix, dropped (with every process started) on the way out
    unless `keep` (to inspect it afterwards)."""
    await dev.infra_up()
    run = uuid.uuid4().hex[:8]
    database, prefix = f"smm_bench_{label}_{run}", f"bench-{label}-{run}."
    await dev_postgres.bootstrap_database(
        dev.admin_dsn(), database, dev.load_secrets().role_passwords
    )
    await ensure_topics(dev.kafka_bootstrap(), prefix)
    logs = Path(tempfile.mkdtemp(prefix=f"bench-{label}-"))
    slice_ = BenchSlice(database, prefix, logs)
    try:
        yield slice_
    finally:
        slice_.stop_all()
        if keep:
            print(f"kept database {database} and topics {prefix}*", flush=True)
        else:
            await delete_topics(dev.kafka_bootstrap(), prefix)
            await dev_postgres.drop_database(dev.admin_dsn(), database)


class RssSampler:
    """Samples each named process's resident memory (with its children) and keeps the maximum."""

    def __init__(self, pids: Mapping[str, int], interval_s: float = 0.25) -> None:
        self._procs = {name: psutil.Process(pid) for name, pid in pids.items()}
        self._interval_s = interval_s
        self.max_mb: dict[str, float] = dict.fromkeys(pids, 0.0)
        self._task: asyncio.Task[None] | None = None

    def _sample(self) -> None:
        for name, proc in self._procs.items():
            try:
                rss = proc.memory_info().rss + sum(
                    c.memory_info().rss for c in proc.children(recursive=True)
                )
            except psutil.Error:
                continue  # a process between restarts
            self.max_mb[name] = max(self.max_mb[name], round(rss / 1024 / 1024, 1))

    async def _loop(self) -> None:
        while True:
            self._sample()
            await asyncio.sleep(self._interval_s)

    def __enter__(self) -> RssSampler:
        self._task = asyncio.get_running_loop().create_task(self._loop())
        return self

    def __exit__(self, *exc: object) -> None:
        if self._task is not None:
            self._task.cancel()
        self._sample()


def pids(
    services: Mapping[str, ServiceProcess], names: Sequence[str] | None = None
) -> dict[str, int]:
    chosen = names or list(services)
    return {n: services[n].proc.pid for n in chosen if services[n].proc is not None}  # type: ignore[union-attr]


def _cpu_s(proc: psutil.Process) -> float:
    times = proc.cpu_times()
    return float(times.user + times.system)


def cpu_seconds(database: str, services: Mapping[str, int]) -> dict[str, float]:
    """CPU seconds used so far by each service, by this database's Postgres backends serving the
    services (not the benchmark's own connections, which log in as the admin role) and by the dev
    stack's Kafka broker: what a mention costs, whatever else shares the machine."""
    out: dict[str, float] = {}
    for name, pid in services.items():
        with contextlib.suppress(psutil.Error):
            out[name] = _cpu_s(psutil.Process(pid))
    postgres = kafka = 0.0
    home = str(dev.state_dir())
    for proc in psutil.process_iter(["cmdline"]):
        cmdline = " ".join(proc.info["cmdline"] or [])
        with contextlib.suppress(psutil.Error):
            if (
                cmdline.startswith("postgres:")
                and f" {database} " in cmdline
                and not cmdline.startswith(f"postgres: {dev_postgres.ADMIN_ROLE} ")
            ):
                postgres += _cpu_s(proc)
            elif "java" in cmdline and "kafka" in cmdline and home in cmdline:
                kafka += _cpu_s(proc)
    out["postgres"] = postgres
    out["kafka"] = kafka
    return out


def cpu_used(before: Mapping[str, float], after: Mapping[str, float]) -> dict[str, float]:
    return {k: round(after[k] - before.get(k, 0.0), 2) for k in after}
