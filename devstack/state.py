"""Where the dev stack keeps its state, its secrets, and how to reach what it runs.

This is the API tests and the CLI use: `infra_up()` brings Kafka and Postgres up (idempotent),
`service_env()` gives the environment a service process needs, `admin_dsn()`/`service_dsn()`
the database URLs. Only the process environment is read (never `.env`): a `.env` meant for a
service must not make the dev stack think its Kafka or Postgres is external.
"""

from __future__ import annotations

import asyncio
import contextlib
import datetime as dt
import fcntl
import json
import logging
import os
import secrets
from collections.abc import AsyncIterator, Callable, Iterator, Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any
from urllib.parse import quote, urlsplit, urlunsplit

import asyncpg
from cryptography.fernet import Fernet
from pydantic import Field
from pydantic_settings import BaseSettings, SettingsConfigDict

from devstack.kafka import KafkaBroker, list_topics, wait_external
from devstack.postgres import PostgresCluster, bootstrap_database, with_database
from devstack.procs import DevstackError, port_open, read_pid
from shared.settings import DEFAULT_HTTP_PORTS, SERVICE_NAMES, ServiceName
from shared.topics import all_topic_names, ensure_topics

log = logging.getLogger("devstack")

DATABASE = "smm"
LOCAL_HOST = "127.0.0.1"


class DevstackSettings(BaseSettings):
    """Knobs of the dev stack itself (prefix `SMM_DEVSTACK_`)."""

    model_config = SettingsConfigDict(env_prefix="SMM_DEVSTACK_", extra="ignore")

    dir: Path | None = Field(
        default=None, description="The state folder (default <repo>/.devstack)"
    )
    kafka_port: int = Field(default=9092, ge=1, le=65534, description="Controller: this port + 1")
    pg_port: int = Field(default=55432, ge=1, le=65535)
    sandbox_port: int = Field(default=8010, ge=1, le=65535, description="The sandbox network")


def _settings() -> DevstackSettings:
    return DevstackSettings()


def repo_root() -> Path:
    root = Path(__file__).resolve().parents[1]
    if not (root / "pyproject.toml").is_file():
        raise DevstackError(f"{root} has no pyproject.toml: devstack must run from the repository")
    return root


def state_dir() -> Path:
    """The state folder: `SMM_DEVSTACK_DIR`, else `<repo>/.devstack`."""
    configured = _settings().dir
    return configured.resolve() if configured else repo_root() / ".devstack"


def logs_dir() -> Path:
    return state_dir() / "logs"


def run_dir() -> Path:
    return state_dir() / "run"


def log_file(component: str) -> Path:
    return logs_dir() / f"{component}.log"


def external_kafka() -> str | None:
    """The bootstrap servers of a broker the dev stack must use instead of running its own."""
    return os.environ.get("SMM_KAFKA_BOOTSTRAP_SERVERS") or None


def external_database_url() -> str | None:
    """An admin DSN of a Postgres the dev stack must use instead of running its own."""
    return os.environ.get("SMM_DATABASE_URL") or None


def kafka_broker() -> KafkaBroker:
    root = state_dir()
    return KafkaBroker(
        libs_dir=root / "cache" / "kafka-libs",
        home=root / "kafka",
        pid_file=root / "run" / "kafka.pid",
        log_file=root / "logs" / "kafka.log",
        port=_settings().kafka_port,
    )


def postgres_cluster() -> PostgresCluster:
    root = state_dir()
    return PostgresCluster(
        home=root / "pg",
        socket_dir=root / "run" / "pg",
        log_file=root / "logs" / "postgres.log",
        port=_settings().pg_port,
        host=LOCAL_HOST,
    )


# --- secrets ---------------------------------------------------------------------------------


@dataclass(frozen=True)
class Secrets:
    """The dev stack's generated secrets (repr hides them)."""

    auth_secret: str = field(repr=False)
    encryption_key: str = field(repr=False)
    admin_password: str = field(repr=False)
    role_passwords: dict[str, str] = field(repr=False)  # keyed by service name


@contextlib.contextmanager
def _file_lock(name: str) -> Iterator[None]:
    """An exclusive lock between dev stack processes (released when the process dies)."""
    path = run_dir() / name
    path.parent.mkdir(parents=True, exist_ok=True)
    with path.open("a") as f:
        fcntl.flock(f, fcntl.LOCK_EX)
        try:
            yield
        finally:
            fcntl.flock(f, fcntl.LOCK_UN)


@contextlib.asynccontextmanager
async def _async_file_lock(name: str) -> AsyncIterator[None]:
    path = run_dir() / name
    path.parent.mkdir(parents=True, exist_ok=True)
    with path.open("a") as f:
        # Wait in a thread so a second `up` in this process's loop does not block the loop.
        await asyncio.to_thread(fcntl.flock, f, fcntl.LOCK_EX)
        try:
            yield
        finally:
            fcntl.flock(f, fcntl.LOCK_UN)


def devstack_lock() -> contextlib.AbstractContextManager[None]:
    """Serialises `up` and `down` across processes."""
    return _file_lock("devstack.lock")


def _write_private(path: Path, data: Mapping[str, Any]) -> None:
    """Write JSON readable by the owner only, atomically."""
    path.parent.mkdir(parents=True, exist_ok=True)
    tmp = path.with_name(f".{path.name}.{os.getpid()}.tmp")
    fd = os.open(tmp, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o600)
    with os.fdopen(fd, "w") as f:
        json.dump(data, f, indent=2, sort_keys=True)
        f.write("\n")
    tmp.replace(path)


def load_secrets() -> Secrets:
    """The secrets in `secrets.json`, generated on first use and never regenerated."""
    path = state_dir() / "secrets.json"
    with _file_lock("secrets.lock"):
        try:
            data: dict[str, Any] = json.loads(path.read_text())
        except FileNotFoundError:
            data = {}
        changed = False
        generated: dict[str, Callable[[], str]] = {
            "auth_secret": lambda: secrets.token_urlsafe(48),
            "encryption_key": lambda: Fernet.generate_key().decode(),
            "admin_password": lambda: secrets.token_urlsafe(24),
        }
        for key, make in generated.items():
            if not data.get(key):
                data[key] = make()
                changed = True
        roles: dict[str, str] = data.setdefault("role_passwords", {})
        for service in SERVICE_NAMES:
            # A service added later gets a password; existing ones are kept.
            if not roles.get(f"smm_{service}"):
                roles[f"smm_{service}"] = secrets.token_urlsafe(24)
                changed = True
        if changed:
            _write_private(path, data)
    return Secrets(
        auth_secret=data["auth_secret"],
        encryption_key=data["encryption_key"],
        admin_password=data["admin_password"],
        role_passwords={s: roles[f"smm_{s}"] for s in SERVICE_NAMES},
    )


# --- addresses -------------------------------------------------------------------------------


def _service_name(service: str) -> ServiceName:
    for name in SERVICE_NAMES:
        if name == service:
            return name
    raise ValueError(f"unknown service {service!r}: expected one of {', '.join(SERVICE_NAMES)}")


def kafka_bootstrap() -> str:
    return external_kafka() or kafka_broker().bootstrap


def admin_dsn(database: str = "postgres") -> str:
    """The DSN of the superuser (`smm_admin`, or the external `SMM_DATABASE_URL`)."""
    external = external_database_url()
    if external:
        return with_database(external, database)
    password = quote(load_secrets().admin_password, safe="")
    return f"postgresql://smm_admin:{password}@{LOCAL_HOST}:{_settings().pg_port}/{database}"


def service_dsn(service: str, database: str = DATABASE) -> str:
    """The DSN of the role `smm_<service>`, e.g. postgresql://smm_inbox:…@127.0.0.1:55432/smm."""
    name = _service_name(service)
    user = quote(f"smm_{name}", safe="")
    password = quote(load_secrets().role_passwords[name], safe="")
    external = external_database_url()
    if external:
        parts = urlsplit(external)
        hostport = parts.netloc.rpartition("@")[2]
        return urlunsplit(
            parts._replace(netloc=f"{user}:{password}@{hostport}", path="/" + database)
        )
    return f"postgresql://{user}:{password}@{LOCAL_HOST}:{_settings().pg_port}/{database}"


def service_port(service: str) -> int:
    return DEFAULT_HTTP_PORTS[_service_name(service)]


def service_url(service: str, http_port: int | None = None) -> str:
    return f"http://{LOCAL_HOST}:{http_port or service_port(service)}"


def service_env(
    service: str, *, database: str = DATABASE, topic_prefix: str = "", http_port: int | None = None
) -> dict[str, str]:
    """The environment variables that point a service process at the dev stack."""
    name = _service_name(service)
    secret = load_secrets()
    prefix = f"SMM_{name.upper()}_"
    return {
        "SMM_KAFKA_BOOTSTRAP_SERVERS": kafka_bootstrap(),
        f"{prefix}DATABASE_URL": service_dsn(name, database),
        "SMM_AUTH_SECRET": secret.auth_secret,
        "SMM_ENCRYPTION_KEYS": secret.encryption_key,
        "SMM_TOPIC_PREFIX": topic_prefix,
        f"{prefix}HTTP_PORT": str(http_port if http_port is not None else service_port(name)),
        "SMM_LOG_FORMAT": "json",
    }


def service_pid_file(service: str) -> Path:
    return run_dir() / f"{_service_name(service)}.pid"


def service_pid(service: str) -> int | None:
    """The pid of the dev stack's process of `service`, if it runs."""
    return read_pid(service_pid_file(service), f"services.{_service_name(service)}")


SANDBOX_MODULE = "devstack.sandbox"


def sandbox_port() -> int:
    return _settings().sandbox_port


def sandbox_url() -> str:
    """Where the sandbox network (Mastodon API subset) answers, e.g. http://127.0.0.1:8010."""
    return f"http://{LOCAL_HOST}:{sandbox_port()}"


def sandbox_pid_file() -> Path:
    return run_dir() / "sandbox.pid"


def sandbox_pid() -> int | None:
    """The pid of the dev stack's sandbox network process, if it runs."""
    return read_pid(sandbox_pid_file(), SANDBOX_MODULE)


# --- infrastructure --------------------------------------------------------------------------


async def infra_up() -> None:
    """Bring Kafka and Postgres up, bootstrap database `smm` and the topics.

    Idempotent: what already runs is only checked. Safe to call from several processes at once.
    """
    async with _async_file_lock("devstack.lock"):
        secret = load_secrets()
        external_bootstrap, external_pg = external_kafka(), external_database_url()
        broker, cluster = kafka_broker(), postgres_cluster()
        if external_bootstrap:
            log.info("using external Kafka at %s", external_bootstrap)
        else:
            # Spawns and returns at once; the broker boots while Postgres starts.
            await asyncio.to_thread(broker.start)
        if external_pg:
            log.info("using external Postgres from SMM_DATABASE_URL")
        else:
            await asyncio.to_thread(cluster.start, secret.admin_password)
            await cluster.wait_ready(admin_dsn())
        if external_bootstrap:
            await wait_external(external_bootstrap)
        else:
            await broker.wait_ready()
        try:
            await bootstrap_database(admin_dsn(), DATABASE, secret.role_passwords)
        except (OSError, asyncpg.PostgresError) as exc:
            raise DevstackError(f"bootstrapping database {DATABASE} failed: {exc}") from exc
        bootstrap = kafka_bootstrap()
        created = await ensure_topics(bootstrap, prefix="")
        if created:
            log.info("created topics: %s", ", ".join(created))
        missing = sorted(set(all_topic_names()) - set(await list_topics(bootstrap)))
        if missing:
            raise DevstackError(f"topics missing after ensure_topics: {', '.join(missing)}")
        write_state()


def kafka_running() -> bool:
    external = external_kafka()
    if external:
        host, _, port = external.split(",")[0].strip().rpartition(":")
        return port.isdigit() and port_open(int(port), host or LOCAL_HOST)
    broker = kafka_broker()
    return broker.running() and port_open(broker.port)


def postgres_running() -> bool:
    external = external_database_url()
    if external:
        parts = urlsplit(external)
        return port_open(parts.port or 5432, parts.hostname or LOCAL_HOST)
    cluster = postgres_cluster()
    return cluster.running() and port_open(cluster.port)


def infra_running() -> bool:
    """Whether Kafka and Postgres are up and accept connections (a quick TCP check)."""
    return kafka_running() and postgres_running()


def infra_down() -> list[str]:
    """Stop the Kafka and Postgres the dev stack runs (never external ones); return which."""
    stopped = []
    if not external_kafka() and kafka_broker().stop():
        stopped.append("kafka")
    if not external_database_url() and postgres_cluster().stop():
        stopped.append("postgres")
    return stopped


def infra_ports() -> list[int]:
    """The local ports the dev stack's own infrastructure listens on."""
    ports = []
    if not external_kafka():
        broker = kafka_broker()
        ports += [broker.port, broker.controller_port]
    if not external_database_url():
        ports.append(postgres_cluster().port)
    return ports


# --- state.json ------------------------------------------------------------------------------


def state_file() -> Path:
    return state_dir() / "state.json"


def write_state() -> None:
    """Record how to reach everything that runs now (`state.json`, owner-only: it holds DSNs)."""
    cluster = postgres_cluster()
    external_pg = external_database_url()
    pg_parts = urlsplit(admin_dsn())
    data: dict[str, Any] = {
        "updated_at": dt.datetime.now(dt.UTC).isoformat(timespec="seconds"),
        "state_dir": str(state_dir()),
        "kafka": {
            "bootstrap": kafka_bootstrap(),
            "external": external_kafka() is not None,
            "pid": None if external_kafka() else kafka_broker().pid(),
            "log": str(log_file("kafka")),
        },
        "postgres": {
            "host": pg_parts.hostname,
            "port": pg_parts.port,
            "external": external_pg is not None,
            "pid": None if external_pg else cluster.pid(),
            "database": DATABASE,
            "admin_dsn": admin_dsn(),
            "log": str(log_file("postgres")),
        },
        "services": {
            name: {
                "url": service_url(name),
                "port": service_port(name),
                "dsn": service_dsn(name),
                "pid": service_pid(name),
                "log": str(log_file(name)),
            }
            for name in SERVICE_NAMES
        },
        "sandbox": {
            "url": sandbox_url(),
            "port": sandbox_port(),
            "pid": sandbox_pid(),
            "log": str(log_file("sandbox")),
        },
    }
    _write_private(state_file(), data)


def clear_state() -> None:
    state_file().unlink(missing_ok=True)
