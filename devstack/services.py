"""Run the four services and the sandbox network as detached processes against the dev stack,
and stop them."""

from __future__ import annotations

import asyncio
import logging
import os
import sys
import time
from concurrent.futures import ThreadPoolExecutor

import httpx

from devstack.procs import (
    DevstackError,
    pid_alive,
    port_open,
    spawn_detached,
    stop_process_group,
    with_log_tail,
    write_pid,
)
from devstack.state import (
    SANDBOX_MODULE,
    log_file,
    repo_root,
    sandbox_pid,
    sandbox_pid_file,
    sandbox_port,
    sandbox_url,
    service_env,
    service_pid,
    service_pid_file,
    service_port,
    service_url,
)
from shared.settings import SERVICE_NAMES

log = logging.getLogger("devstack.services")

READY_TIMEOUT_S = 60.0
STOP_TIMEOUT_S = 15.0
LOG_TAIL_LINES = 40


def _marker(name: str) -> str:
    return f"services.{name}"


def launch(name: str) -> int:
    """Start `python -m services.<name>` detached unless it runs; return its pid."""
    pid = service_pid(name)
    if pid is not None:
        return pid
    port = service_port(name)
    if port_open(port):
        raise DevstackError(
            f"port {port} for {name} is taken by a process the dev stack did not start"
        )
    log.info("starting %s on %s (log %s)", name, service_url(name), log_file(name))
    pid = spawn_detached(
        [sys.executable, "-m", _marker(name)],
        log_file=log_file(name),
        cwd=repo_root(),
        env=os.environ | service_env(name),
    )
    write_pid(service_pid_file(name), pid)
    return pid


async def readiness(name: str, client: httpx.AsyncClient) -> str:
    """'ready', or why not: the HTTP status of /readyz or 'no answer'."""
    try:
        response = await client.get(f"{service_url(name)}/readyz")
    except httpx.HTTPError:
        return "no answer"
    return "ready" if response.status_code == 200 else f"readyz {response.status_code}"


async def wait_ready(name: str, pid: int, timeout_s: float = READY_TIMEOUT_S) -> None:
    """Wait for GET /readyz to answer 200; fail with the log tail if the process dies or hangs."""
    deadline = time.monotonic() + timeout_s
    async with httpx.AsyncClient(timeout=2.0) as client:
        while True:
            health = await readiness(name, client)
            if health == "ready":
                return
            if not pid_alive(pid, _marker(name)):
                service_pid_file(name).unlink(missing_ok=True)
                raise DevstackError(
                    with_log_tail(f"{name} exited during start-up", log_file(name), LOG_TAIL_LINES)
                )
            if time.monotonic() >= deadline:
                # A half-started process would make the next `up` wait on it again: stop it.
                await asyncio.to_thread(stop, name)
                raise DevstackError(
                    with_log_tail(
                        f"{name} not ready after {timeout_s:.0f} s ({health})",
                        log_file(name),
                        LOG_TAIL_LINES,
                    )
                )
            await asyncio.sleep(0.5)


async def start_all() -> None:
    """Start every service (those already running are only checked) and wait until all are
    ready; report every one that failed."""
    pids = {name: launch(name) for name in SERVICE_NAMES}
    results = await asyncio.gather(
        *(wait_ready(name, pid) for name, pid in pids.items()), return_exceptions=True
    )
    errors = [r for r in results if isinstance(r, BaseException)]
    for error in errors:
        if not isinstance(error, Exception):
            raise error
    if errors:
        raise DevstackError("\n".join(str(e) for e in errors))


def stop(name: str) -> bool:
    """Stop the service's process group if it runs; return whether it did."""
    pid = service_pid(name)
    if pid is None:
        return False
    log.info("stopping %s (pid %d)", name, pid)
    stop_process_group(pid, _marker(name), timeout_s=STOP_TIMEOUT_S)
    service_pid_file(name).unlink(missing_ok=True)
    return True


def stop_all() -> list[str]:
    """Stop every service the dev stack started (in parallel); return which ones were running."""
    with ThreadPoolExecutor(max_workers=len(SERVICE_NAMES)) as pool:
        stopped = list(pool.map(stop, SERVICE_NAMES))
    return [name for name, was_running in zip(SERVICE_NAMES, stopped, strict=True) if was_running]


def ports() -> list[int]:
    return [service_port(name) for name in SERVICE_NAMES]


# --- the sandbox network -----------------------------------------------------------------------


def launch_sandbox() -> int:
    """Start `python -m devstack.sandbox` detached unless it runs; return its pid."""
    pid = sandbox_pid()
    if pid is not None:
        return pid
    port = sandbox_port()
    if port_open(port):
        raise DevstackError(
            f"port {port} for the sandbox is taken by a process the dev stack did not start "
            "(set SMM_DEVSTACK_SANDBOX_PORT to use another)"
        )
    log.info("starting the sandbox network on %s (log %s)", sandbox_url(), log_file("sandbox"))
    pid = spawn_detached(
        [sys.executable, "-m", SANDBOX_MODULE, "--port", str(port)],
        log_file=log_file("sandbox"),
        cwd=repo_root(),
        env=dict(os.environ),
    )
    write_pid(sandbox_pid_file(), pid)
    return pid


async def sandbox_readiness(client: httpx.AsyncClient) -> str:
    """'ready', or why not."""
    try:
        response = await client.get(f"{sandbox_url()}/readyz")
    except httpx.HTTPError:
        return "no answer"
    return "ready" if response.status_code == 200 else f"readyz {response.status_code}"


async def wait_sandbox_ready(pid: int, timeout_s: float = READY_TIMEOUT_S) -> None:
    """Wait for the sandbox's /readyz; fail with its log tail if it dies or hangs."""
    deadline = time.monotonic() + timeout_s
    async with httpx.AsyncClient(timeout=2.0) as client:
        while (health := await sandbox_readiness(client)) != "ready":
            if not pid_alive(pid, SANDBOX_MODULE):
                sandbox_pid_file().unlink(missing_ok=True)
                raise DevstackError(
                    with_log_tail(
                        "sandbox exited during start-up", log_file("sandbox"), LOG_TAIL_LINES
                    )
                )
            if time.monotonic() >= deadline:
                await asyncio.to_thread(stop_sandbox)
                raise DevstackError(
                    with_log_tail(
                        f"sandbox not ready after {timeout_s:.0f} s ({health})",
                        log_file("sandbox"),
                        LOG_TAIL_LINES,
                    )
                )
            await asyncio.sleep(0.2)


def stop_sandbox() -> bool:
    """Stop the sandbox network if it runs; return whether it did."""
    pid = sandbox_pid()
    if pid is None:
        return False
    log.info("stopping the sandbox (pid %d)", pid)
    stop_process_group(pid, SANDBOX_MODULE, timeout_s=STOP_TIMEOUT_S)
    sandbox_pid_file().unlink(missing_ok=True)
    return True
