"""`smm dev …`: start, stop and inspect the dev stack (Kafka, Postgres, the sandbox network and the
four services)."""

from __future__ import annotations

import asyncio
import functools
import logging
import signal
import sys
import threading
import time
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from types import FrameType
from typing import Annotated, NoReturn
from urllib.parse import urlsplit

import httpx
import typer

from devstack import services, state
from devstack.kafka import list_topics
from devstack.postgres import is_ready as postgres_is_ready
from devstack.procs import DevstackError, tail, wait_ports_closed
from shared.settings import SERVICE_NAMES

dev_app = typer.Typer(
    name="dev",
    help="Run the dev stack: a real Kafka broker, a real Postgres, the sandbox network and the "
    "four services.",
    no_args_is_help=True,
    add_completion=False,
)

COMPONENTS: tuple[str, ...] = ("kafka", "postgres", "sandbox", *SERVICE_NAMES)


def _setup_logging() -> None:
    handler = logging.StreamHandler(sys.stderr)
    handler.setFormatter(logging.Formatter("%(message)s"))
    logger = logging.getLogger("devstack")
    logger.handlers[:] = [handler]
    logger.setLevel(logging.INFO)
    logger.propagate = False


def _fail(message: str, code: int = 1) -> NoReturn:
    typer.echo(f"error: {message}", err=True)
    raise typer.Exit(code)


# --- component table -------------------------------------------------------------------------


@dataclass
class Row:
    component: str
    state: str
    pid: int | None
    address: str
    health: str
    log: Path


async def _kafka_row() -> Row:
    external = state.external_kafka()
    pid = None if external else state.kafka_broker().pid()
    running = state.kafka_running()
    health = "-"
    if running:
        try:
            topics = await list_topics(state.kafka_bootstrap())
            health = f"healthy ({len(topics)} topics)"
        except Exception as exc:  # any failure is what status reports
            health = f"unhealthy ({type(exc).__name__})"
    return Row(
        "kafka",
        ("external" if external else "running") if running else "stopped",
        pid,
        state.kafka_bootstrap(),
        health,
        state.log_file("kafka"),
    )


async def _postgres_row() -> Row:
    external = state.external_database_url()
    pid = None if external else state.postgres_cluster().pid()
    running = state.postgres_running()
    health = "-"
    if running:
        ready = await postgres_is_ready(state.admin_dsn(state.DATABASE))
        health = "healthy" if ready else "unhealthy (login to smm failed)"
    if external:
        parts = urlsplit(external)
        host, port = parts.hostname or "", parts.port or 5432
    else:
        host, port = state.LOCAL_HOST, state.postgres_cluster().port
    return Row(
        "postgres",
        ("external" if external else "running") if running else "stopped",
        pid,
        f"{host}:{port}",
        health,
        state.log_file("postgres"),
    )


async def _service_row(name: str, client: httpx.AsyncClient) -> Row:
    pid = state.service_pid(name)
    health = await services.readiness(name, client) if pid is not None else "-"
    return Row(
        name,
        "running" if pid is not None else "stopped",
        pid,
        state.service_url(name),
        health,
        state.log_file(name),
    )


async def _sandbox_row(client: httpx.AsyncClient) -> Row:
    pid = state.sandbox_pid()
    health = await services.sandbox_readiness(client) if pid is not None else "-"
    return Row(
        "sandbox",
        "running" if pid is not None else "stopped",
        pid,
        state.sandbox_url(),
        health,
        state.log_file("sandbox"),
    )


async def _rows() -> list[Row]:
    async with httpx.AsyncClient(timeout=2.0) as client:
        return list(
            await asyncio.gather(
                _kafka_row(),
                _postgres_row(),
                _sandbox_row(client),
                *(_service_row(name, client) for name in SERVICE_NAMES),
            )
        )


def _print_table(rows: list[Row], *, with_logs: bool) -> None:
    header = ["COMPONENT", "STATE", "PID", "ADDRESS", "HEALTH"]
    lines = [
        [r.component, r.state, str(r.pid or "-"), r.address, r.health]
        + ([str(r.log)] if with_logs else [])
        for r in rows
    ]
    if with_logs:
        header.append("LOG")
    widths = [max(len(line[i]) for line in [header, *lines]) for i in range(len(header))]
    for line in [header, *lines]:
        cells = zip(line, widths, strict=True)
        typer.echo("  ".join(cell.ljust(width) for cell, width in cells).rstrip())


# --- commands --------------------------------------------------------------------------------


async def _up(infra_only: bool) -> None:
    await state.infra_up()
    if not infra_only:
        await services.wait_sandbox_ready(services.launch_sandbox())
        await services.start_all()
        state.write_state()


def _down() -> list[int]:
    """Stop everything the dev stack runs; return the ports still in use afterwards."""
    with state.devstack_lock():
        services.stop_all()
        services.stop_sandbox()
        state.infra_down()
        state.clear_state()
    return wait_ports_closed([*state.infra_ports(), state.sandbox_port(), *services.ports()])


def _run_demo() -> None:
    from devstack import demo

    asyncio.run(demo.run())


def _service_running(name: str) -> bool:
    return state.service_pid(name) is not None


def _sandbox_running() -> bool:
    return state.sandbox_pid() is not None


def _stay_attached(infra_only: bool) -> None:
    """Block until SIGINT/SIGTERM; say so when a component stops on its own meanwhile."""
    stop = threading.Event()

    def on_signal(signum: int, frame: FrameType | None) -> None:
        stop.set()

    signal.signal(signal.SIGINT, on_signal)
    signal.signal(signal.SIGTERM, on_signal)
    watched: dict[str, Callable[[], bool]] = {
        "kafka": state.kafka_running,
        "postgres": state.postgres_running,
    }
    if not infra_only:
        watched["sandbox"] = _sandbox_running
        for name in SERVICE_NAMES:
            watched[name] = functools.partial(_service_running, name)
    reported: set[str] = set()
    typer.echo("Attached: press Ctrl-C to stop the dev stack.", err=True)
    while not stop.wait(2.0):
        for component, is_up in watched.items():
            if component not in reported and not is_up():
                reported.add(component)
                typer.echo(
                    f"warning: {component} stopped; see {state.log_file(component)}", err=True
                )


@dev_app.command()
def up(
    infra_only: Annotated[
        bool, typer.Option("--infra-only", help="Only Kafka and Postgres, no services.")
    ] = False,
    foreground: Annotated[
        bool, typer.Option("--foreground", help="Stay attached; Ctrl-C stops everything.")
    ] = False,
    demo: Annotated[
        bool, typer.Option("--demo", help="Run devstack.demo once everything is up.")
    ] = False,
) -> None:
    """Start Kafka, Postgres, the database, the topics, the sandbox network and the services
    (idempotent)."""
    _setup_logging()
    try:
        asyncio.run(_up(infra_only))
    except DevstackError as exc:
        _fail(str(exc))
    _print_table(asyncio.run(_rows()), with_logs=True)
    if demo:
        _run_demo()
    if foreground:
        _stay_attached(infra_only)
        typer.echo("stopping the dev stack…", err=True)
        still_open = _down()
        if still_open:
            _fail(f"ports still in use after stopping: {', '.join(map(str, still_open))}")
        raise typer.Exit(0)


@dev_app.command()
def down() -> None:
    """Stop the services, the sandbox network, Kafka and Postgres the dev stack started."""
    _setup_logging()
    try:
        still_open = _down()
    except DevstackError as exc:
        _fail(str(exc))
    if still_open:
        _fail(f"ports still in use after stopping: {', '.join(map(str, still_open))}")
    typer.echo("dev stack stopped", err=True)


@dev_app.command()
def status() -> None:
    """One line per component: state, pid, address and health."""
    _print_table(asyncio.run(_rows()), with_logs=False)


def _follow(paths: dict[str, Path]) -> None:
    """Print what is appended to `paths` until Ctrl-C (prefixing lines when there are several)."""
    offsets = {name: path.stat().st_size if path.exists() else 0 for name, path in paths.items()}
    pending = dict.fromkeys(paths, "")
    try:
        while True:
            for name, path in paths.items():
                try:
                    size = path.stat().st_size
                except FileNotFoundError:
                    continue
                if size < offsets[name]:  # truncated or replaced
                    offsets[name] = 0
                if size == offsets[name]:
                    continue
                with path.open("rb") as f:
                    f.seek(offsets[name])
                    chunk = f.read()
                offsets[name] += len(chunk)
                text = pending[name] + chunk.decode(errors="replace")
                *complete, pending[name] = text.split("\n")
                for line in complete:
                    typer.echo(f"{name:<9} | {line}" if len(paths) > 1 else line)
            time.sleep(0.3)
    except KeyboardInterrupt:
        return


@dev_app.command()
def logs(
    component: Annotated[
        str | None, typer.Argument(help=f"One of: {', '.join(COMPONENTS)} (default: all).")
    ] = None,
    follow: Annotated[
        bool, typer.Option("--follow", "-f", help="Keep printing new lines.")
    ] = False,
    lines: Annotated[int, typer.Option("--lines", "-n", min=0, help="Lines of history.")] = 100,
) -> None:
    """Print the log of one component, or of all of them."""
    if component is not None and component not in COMPONENTS:
        _fail(f"unknown component {component!r}: expected one of {', '.join(COMPONENTS)}", 2)
    names = [component] if component else list(COMPONENTS)
    paths = {name: state.log_file(name) for name in names}
    for name, path in paths.items():
        if len(paths) > 1:
            typer.echo(f"==> {name}: {path} <==")
        if not path.exists():
            typer.echo("(no log yet)")
        elif lines:
            typer.echo(tail(path, lines), nl=False)
    if follow:
        _follow(paths)


@dev_app.command()
def analytics(
    tenant: Annotated[str, typer.Option(help="The tenant.")] = "demo-agency",
    brand: Annotated[str, typer.Option(help="The brand.")] = "demo-sneakers",
) -> None:
    """The metrics API's figures for a brand beside direct counts from the owning schemas (they
    must agree exactly), and its client report written to .devstack/reports/."""
    from devstack.analytics_check import check

    if not asyncio.run(check(tenant, brand)):
        raise typer.Exit(code=1)
