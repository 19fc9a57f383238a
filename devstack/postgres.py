"""A local PostgreSQL 15 cluster for the dev stack, and the idempotent database bootstrap.

The bootstrap gives each service a login role `smm_<service>` that owns one schema `<service>` in
the platform database and has no rights on any other schema (see ARCHITECTURE.md: no service
reads another's schema).
"""

from __future__ import annotations

import asyncio
import contextlib
import grp
import logging
import os
import pwd
import re
import shlex
import shutil
import stat
import subprocess
import time
from collections.abc import AsyncIterator, Mapping
from dataclasses import dataclass
from pathlib import Path
from urllib.parse import urlsplit, urlunsplit

import asyncpg

from devstack.procs import DevstackError, pid_alive, port_open, with_log_tail
from shared.settings import SERVICE_NAMES

log = logging.getLogger("devstack.postgres")

PG_VERSION = "15"
DEFAULT_BINDIR = Path(f"/usr/lib/postgresql/{PG_VERSION}/bin")
ADMIN_ROLE = "smm_admin"
# Postgres refuses to run as root; as root the dev stack runs it as this system user.
OS_USER = "smmdev"
READY_TIMEOUT_S = 60.0
# Any fixed key works: every bootstrapping process takes the same one on the same database.
BOOTSTRAP_LOCK_KEY = 0x5_3_4_D_0001
_IDENT = re.compile(r"^[a-z_][a-z0-9_]*$")


def bindir() -> Path:
    """Where initdb, pg_ctl and postgres live."""
    if (DEFAULT_BINDIR / "pg_ctl").is_file():
        return DEFAULT_BINDIR
    pg_config = shutil.which("pg_config")
    if pg_config:
        result = subprocess.run([pg_config, "--bindir"], capture_output=True, text=True)
        candidate = Path(result.stdout.strip())
        if result.returncode == 0 and (candidate / "pg_ctl").is_file():
            return candidate
    raise DevstackError(
        f"PostgreSQL server binaries not found in {DEFAULT_BINDIR} nor via pg_config --bindir: "
        f"install postgresql-{PG_VERSION}"
    )


@dataclass(frozen=True)
class OsUser:
    name: str
    uid: int
    gid: int


def _ensure_os_user() -> OsUser:
    """The user that runs Postgres: the current one, or `smmdev` (created once) under root."""
    if os.geteuid() != 0:
        me = pwd.getpwuid(os.geteuid())
        return OsUser(me.pw_name, me.pw_uid, me.pw_gid)
    try:
        entry = pwd.getpwnam(OS_USER)
    except KeyError:
        log.info("creating system user %s to run Postgres (it refuses to run as root)", OS_USER)
        result = subprocess.run(
            ["useradd", "--system", "--no-create-home", "--shell", "/usr/sbin/nologin", OS_USER],
            capture_output=True,
            text=True,
        )
        # A concurrent `up` may have created it first (exit code 9: user exists).
        if result.returncode not in (0, 9):
            raise DevstackError(f"useradd {OS_USER} failed: {result.stderr.strip()}") from None
        entry = pwd.getpwnam(OS_USER)
    return OsUser(entry.pw_name, entry.pw_uid, entry.pw_gid)


def _check_traversable(path: Path, user: OsUser) -> None:
    """Fail clearly if `user` cannot reach `path` because a parent directory is closed to it."""
    groups = {user.gid} | {g.gr_gid for g in grp.getgrall() if user.name in g.gr_mem}
    for parent in reversed(path.resolve().parents):
        mode = parent.stat()
        if mode.st_uid == user.uid:
            ok = bool(mode.st_mode & stat.S_IXUSR)
        elif mode.st_gid in groups:
            ok = bool(mode.st_mode & stat.S_IXGRP)
        else:
            ok = bool(mode.st_mode & stat.S_IXOTH)
        if not ok:
            raise DevstackError(
                f"Postgres runs as user {user.name}, which cannot enter {parent}: "
                f"run `chmod o+x {parent}` or set SMM_DEVSTACK_DIR to a state folder elsewhere"
            )


def _has_c_utf8_locale() -> bool:
    try:
        result = subprocess.run(["locale", "-a"], capture_output=True, text=True)
    except FileNotFoundError:
        return False
    names = {line.strip().lower() for line in result.stdout.splitlines()}
    return bool(names & {"c.utf8", "c.utf-8"})


@dataclass(frozen=True)
class PostgresCluster:
    """One local cluster: its folders, log, port and the admin password it was created with."""

    home: Path  # .devstack/pg, holds data/
    socket_dir: Path
    log_file: Path
    port: int = 55432
    host: str = "127.0.0.1"

    @property
    def data_dir(self) -> Path:
        return self.home / "data"

    def pid(self) -> int | None:
        """The postmaster's pid, read from postmaster.pid, if it is alive."""
        try:
            pid = int((self.data_dir / "postmaster.pid").read_text().split()[0])
        except (FileNotFoundError, PermissionError, ValueError, IndexError):
            return None
        return pid if pid_alive(pid, "postgres") else None

    def running(self) -> bool:
        return self.pid() is not None

    def _run(self, user: OsUser, argv: list[str], *, detach: bool = False) -> str:
        result = subprocess.run(
            argv,
            capture_output=True,
            text=True,
            # Root drops to the Postgres user; its primary group only, like runuser does.
            user=user.uid if os.geteuid() == 0 else None,
            group=user.gid if os.geteuid() == 0 else None,
            extra_groups=[] if os.geteuid() == 0 else None,
            cwd=self.home,  # a cwd the Postgres user can enter (root's home may be closed)
            # pg_ctl's postmaster inherits the new session, so a Ctrl-C in the terminal does not
            # stop the database.
            start_new_session=detach,
            env=os.environ | {"LC_ALL": "C", "PGTZ": "UTC"},
        )
        if result.returncode != 0:
            output = (result.stdout + result.stderr).strip()[-4000:]
            raise DevstackError(f"{Path(argv[0]).name} failed:\n{output}")
        return result.stdout

    def _prepare_dirs(self, user: OsUser) -> None:
        for directory in (self.home, self.socket_dir, self.log_file.parent):
            directory.mkdir(parents=True, exist_ok=True)
        self.log_file.touch(exist_ok=True)
        if os.geteuid() == 0:
            for path in (self.home, self.socket_dir, self.log_file):
                os.chown(path, user.uid, user.gid)
            if self.data_dir.exists() and self.data_dir.stat().st_uid != user.uid:
                for path in (self.data_dir, *self.data_dir.rglob("*")):
                    os.lchown(path, user.uid, user.gid)
        self.home.chmod(0o700)
        self.socket_dir.chmod(0o755)  # clients of any user may use the socket
        _check_traversable(self.data_dir, user)
        _check_traversable(self.log_file, user)

    def initdb(self, user: OsUser, admin_password: str) -> None:
        """Create the cluster once; its superuser is `smm_admin` with `admin_password`."""
        if (self.data_dir / "PG_VERSION").is_file():
            return
        log.info("initialising Postgres cluster in %s", self.data_dir)
        pwfile = self.home / ".pwfile"
        fd = os.open(pwfile, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o600)
        try:
            with os.fdopen(fd, "w") as f:
                f.write(admin_password + "\n")
            if os.geteuid() == 0:
                os.chown(pwfile, user.uid, user.gid)
            locale = ["--locale=C.UTF-8"] if _has_c_utf8_locale() else ["--no-locale"]
            self._run(
                user,
                [
                    str(bindir() / "initdb"),
                    "-D",
                    str(self.data_dir),
                    "--auth-host=scram-sha-256",
                    "--auth-local=scram-sha-256",
                    "-U",
                    ADMIN_ROLE,
                    f"--pwfile={pwfile}",
                    "-E",
                    "UTF8",
                    *locale,
                ],
            )
        finally:
            pwfile.unlink(missing_ok=True)

    def start(self, admin_password: str) -> int:
        """initdb if needed, then start the cluster unless it runs; return the postmaster pid."""
        pid = self.pid()
        if pid is not None:
            return pid
        if port_open(self.port, self.host):
            raise DevstackError(
                f"port {self.port} is taken by another process: stop it or set SMM_DEVSTACK_PG_PORT"
            )
        user = _ensure_os_user()
        self._prepare_dirs(user)
        self.initdb(user, admin_password)
        options = (
            f"-c listen_addresses={self.host} -c port={self.port} "
            f"-c unix_socket_directories={shlex.quote(str(self.socket_dir.resolve()))} "
            "-c max_connections=300 -c shared_buffers=256MB"
        )
        log.info("starting Postgres on %s:%d (log %s)", self.host, self.port, self.log_file)
        try:
            self._run(
                user,
                [
                    str(bindir() / "pg_ctl"),
                    "-D",
                    str(self.data_dir),
                    "-l",
                    str(self.log_file.resolve()),
                    "-o",
                    options,
                    "-w",
                    "-t",
                    str(int(READY_TIMEOUT_S)),
                    "start",
                ],
                detach=True,
            )
        except DevstackError as exc:
            raise DevstackError(with_log_tail(str(exc), self.log_file)) from None
        pid = self.pid()
        if pid is None:
            raise DevstackError(with_log_tail("Postgres exited during start-up", self.log_file))
        return pid

    def stop(self) -> bool:
        """Stop the cluster (fast shutdown) if it runs; return whether it did."""
        pid = self.pid()
        if pid is None:
            return False
        log.info("stopping Postgres (pid %d)", pid)
        user = _ensure_os_user()
        self._run(
            user,
            [
                str(bindir() / "pg_ctl"),
                "-D",
                str(self.data_dir),
                "-m",
                "fast",
                "-w",
                "-t",
                "60",
                "stop",
            ],
        )
        return True

    async def wait_ready(self, dsn: str, timeout_s: float = READY_TIMEOUT_S) -> None:
        """Wait until the admin can log in (this also proves the password still matches)."""
        deadline = time.monotonic() + timeout_s
        while True:
            try:
                conn = await asyncpg.connect(dsn, timeout=5)
            except asyncpg.InvalidPasswordError:
                raise DevstackError(
                    f"Postgres rejected the {ADMIN_ROLE} password from secrets.json: the cluster "
                    f"in {self.data_dir} was created with other secrets; stop the dev stack and "
                    "delete that folder to recreate it"
                ) from None
            except (TimeoutError, OSError, asyncpg.PostgresError):
                if time.monotonic() >= deadline:
                    raise DevstackError(
                        with_log_tail(f"Postgres not ready on port {self.port}", self.log_file)
                    ) from None
                await asyncio.sleep(0.5)
            else:
                await conn.close()
                return


async def is_ready(dsn: str, timeout_s: float = 5.0) -> bool:
    try:
        conn = await asyncpg.connect(dsn, timeout=timeout_s)
    except (TimeoutError, OSError, asyncpg.PostgresError):
        return False
    await conn.close()
    return True


# --- bootstrap -------------------------------------------------------------------------------


def _ident(name: str) -> str:
    """A validated identifier, double-quoted (asyncpg cannot bind parameters in DDL)."""
    if not _IDENT.fullmatch(name) or len(name) > 63:
        raise ValueError(f"not a safe SQL identifier: {name!r}")
    return f'"{name}"'


def with_database(dsn: str, database: str) -> str:
    """`dsn` pointing at another database on the same server, as the same user."""
    parts = urlsplit(dsn)
    return urlunsplit(parts._replace(path="/" + database))


@contextlib.asynccontextmanager
async def _connect(dsn: str) -> AsyncIterator[asyncpg.Connection]:
    conn = await asyncpg.connect(dsn, timeout=10)
    try:
        yield conn
    finally:
        await conn.close()


async def _execute_ignoring(conn: asyncpg.Connection, sql: str, *args: object) -> None:
    """Run DDL that a concurrent bootstrap (one not holding our lock) may have run first."""
    with contextlib.suppress(
        asyncpg.DuplicateDatabaseError,
        asyncpg.DuplicateObjectError,
        asyncpg.DuplicateSchemaError,
        asyncpg.UniqueViolationError,
    ):
        await conn.execute(sql, *args)


async def bootstrap_database(
    admin_dsn: str, database: str, role_passwords: Mapping[str, str]
) -> None:
    """Create `database`, one role `smm_<service>` with its password per service in
    `role_passwords` and one schema per service owned by that role; idempotent and safe to run
    concurrently.

    `admin_dsn` must be a role allowed to create databases and roles. Passwords of existing roles
    are reset to the given ones.
    """
    db = _ident(database)
    missing = [s for s in SERVICE_NAMES if s not in role_passwords]
    if missing:
        raise ValueError(f"no password for the roles of: {', '.join(missing)}")
    async with _connect(admin_dsn) as admin:
        # Advisory locks are per database, so every bootstrapper locks on the admin database.
        await admin.execute("SELECT pg_advisory_lock($1)", BOOTSTRAP_LOCK_KEY)
        try:
            exists = await admin.fetchval(
                "SELECT true FROM pg_database WHERE datname = $1", database
            )
            if not exists:
                log.info("creating database %s", database)
                await _execute_ignoring(admin, f"CREATE DATABASE {db}")
            for service in SERVICE_NAMES:
                role = _ident(f"smm_{service}")
                # format(%L) lets the server quote the password literal.
                password = await admin.fetchval(
                    "SELECT format('%L', $1::text)", role_passwords[service]
                )
                has_role = await admin.fetchval(
                    "SELECT true FROM pg_roles WHERE rolname = $1", f"smm_{service}"
                )
                if not has_role:
                    await _execute_ignoring(admin, f"CREATE ROLE {role} LOGIN PASSWORD {password}")
                await admin.execute(f"ALTER ROLE {role} WITH LOGIN PASSWORD {password}")
                await admin.execute(
                    f"ALTER ROLE {role} IN DATABASE {db} SET search_path = {_ident(service)}"
                )
            await admin.execute(f"REVOKE ALL ON DATABASE {db} FROM PUBLIC")
            for service in SERVICE_NAMES:
                await admin.execute(
                    f"GRANT CONNECT, TEMPORARY ON DATABASE {db} TO {_ident(f'smm_{service}')}"
                )
            async with _connect(with_database(admin_dsn, database)) as conn:
                for service in SERVICE_NAMES:
                    schema, owner = _ident(service), _ident(f"smm_{service}")
                    await _execute_ignoring(
                        conn, f"CREATE SCHEMA IF NOT EXISTS {schema} AUTHORIZATION {owner}"
                    )
                    # A schema made earlier by someone else still ends up with its service.
                    await conn.execute(f"ALTER SCHEMA {schema} OWNER TO {owner}")
                await conn.execute("REVOKE ALL ON SCHEMA public FROM PUBLIC")
        finally:
            await admin.execute("SELECT pg_advisory_unlock($1)", BOOTSTRAP_LOCK_KEY)


async def drop_database(admin_dsn: str, database: str) -> None:
    """Drop `database` even while clients are connected (tests clean up with this)."""
    if database in ("postgres", "template0", "template1"):
        raise ValueError(f"refusing to drop the system database {database!r}")
    async with _connect(admin_dsn) as admin:
        await admin.execute(f"DROP DATABASE IF EXISTS {_ident(database)} WITH (FORCE)")
