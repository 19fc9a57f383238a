"""Process plumbing shared by the dev stack's components: pid files, liveness, stopping, ports."""

from __future__ import annotations

import contextlib
import os
import signal
import socket
import subprocess
import time
from collections import deque
from pathlib import Path


class DevstackError(RuntimeError):
    """Something the dev stack needs is missing or failed; the message says what and where."""


def pid_alive(pid: int, marker: str | None = None) -> bool:
    """Whether `pid` is a live (non-zombie) process whose command line contains `marker`.

    The marker guards against a stale pid file whose pid the kernel has since reused.
    """
    if pid <= 0:
        return False
    try:
        # Reap it if it is our own child that already exited (else it lingers as a zombie).
        done, _ = os.waitpid(pid, os.WNOHANG)
        if done == pid:
            return False
    except ChildProcessError:
        pass
    proc = Path("/proc") / str(pid)
    try:
        cmdline = (proc / "cmdline").read_bytes().replace(b"\0", b" ").decode(errors="replace")
        # A zombie leader can still have live threads (a JVM running its shutdown hooks), so the
        # process is alive while any of its threads is.
        if not any(_thread_alive(task) for task in (proc / "task").iterdir()):
            return False
    except (FileNotFoundError, ProcessLookupError, PermissionError):
        return False
    return marker is None or marker in cmdline


def _thread_alive(task: Path) -> bool:
    try:
        stat = (task / "stat").read_text()
    except (FileNotFoundError, ProcessLookupError):
        return False
    # The state is the field after the parenthesised command name.
    return not stat[stat.rfind(")") + 2 :].startswith(("Z", "X"))


def read_pid(pid_file: Path, marker: str | None = None) -> int | None:
    """The pid in `pid_file` if that process is alive; a stale file is removed silently."""
    try:
        pid = int(pid_file.read_text().split()[0])
    except (FileNotFoundError, ValueError, IndexError):
        return None
    if pid_alive(pid, marker):
        return pid
    pid_file.unlink(missing_ok=True)
    return None


def write_pid(pid_file: Path, pid: int) -> None:
    pid_file.parent.mkdir(parents=True, exist_ok=True)
    tmp = pid_file.with_suffix(".tmp")
    tmp.write_text(f"{pid}\n")
    tmp.replace(pid_file)


def spawn_detached(
    argv: list[str], *, log_file: Path, cwd: Path, env: dict[str, str] | None = None
) -> int:
    """Start `argv` in its own session (Ctrl-C in the terminal does not reach it), output appended
    to `log_file`; return its pid."""
    log_file.parent.mkdir(parents=True, exist_ok=True)
    with log_file.open("ab") as log:
        # Logs accumulate across runs; mark where this one starts.
        stamp = time.strftime("%Y-%m-%d %H:%M:%S")
        log.write(f"----- devstack: started {stamp}: {' '.join(argv)}\n".encode())
        log.flush()
        proc = subprocess.Popen(
            argv,
            cwd=cwd,
            env=env,
            stdin=subprocess.DEVNULL,
            stdout=log,
            stderr=subprocess.STDOUT,
            start_new_session=True,
            close_fds=True,
        )
    return proc.pid


def stop_process_group(pid: int, marker: str | None, timeout_s: float = 15.0) -> None:
    """SIGTERM the process group led by `pid`, wait up to `timeout_s`, then SIGKILL it."""
    if not pid_alive(pid, marker):
        return
    try:
        pgid = os.getpgid(pid)
    except ProcessLookupError:
        return
    # Only signal a group the process leads (started with start_new_session); never our own.
    target_group = pgid == pid and pgid != os.getpgrp()
    _signal(pid, signal.SIGTERM, target_group)
    deadline = time.monotonic() + timeout_s
    while time.monotonic() < deadline:
        if not pid_alive(pid, marker):
            break
        time.sleep(0.2)
    else:
        _signal(pid, signal.SIGKILL, target_group)
        deadline = time.monotonic() + 5
        while pid_alive(pid, marker) and time.monotonic() < deadline:
            time.sleep(0.1)
    if target_group:
        # Children that outlived their leader (e.g. worker processes) go too.
        with contextlib.suppress(ProcessLookupError, PermissionError):
            os.killpg(pgid, signal.SIGKILL)


def _signal(pid: int, sig: signal.Signals, group: bool) -> None:
    try:
        if group:
            os.killpg(pid, sig)
        else:
            os.kill(pid, sig)
    except ProcessLookupError:
        pass


def port_open(port: int, host: str = "127.0.0.1", timeout_s: float = 0.5) -> bool:
    """Whether something accepts TCP connections on host:port."""
    try:
        with socket.create_connection((host, port), timeout=timeout_s):
            return True
    except OSError:
        return False


def wait_ports_closed(ports: list[int], timeout_s: float = 10.0) -> list[int]:
    """Wait until nothing listens on `ports`; return those still open at the deadline."""
    deadline = time.monotonic() + timeout_s
    while True:
        still_open = [p for p in ports if port_open(p)]
        if not still_open or time.monotonic() >= deadline:
            return still_open
        time.sleep(0.2)


def tail(path: Path, lines: int = 40) -> str:
    """The last `lines` lines of a text file ('' if it does not exist)."""
    try:
        with path.open(encoding="utf-8", errors="replace") as f:
            return "".join(deque(f, maxlen=lines))
    except FileNotFoundError:
        return ""


def with_log_tail(message: str, log_file: Path, lines: int = 40) -> str:
    """`message` followed by the end of `log_file`, for errors a person has to act on."""
    text = tail(log_file, lines).rstrip()
    if not text:
        return f"{message} (log {log_file} is empty)"
    return f"{message}\n--- last {lines} lines of {log_file} ---\n{text}"
