"""Versioned SQL migrations per schema, safe when several replicas start at once.

Each service's schema has its own `schema_migrations` table. Files are `NNNN_name.sql` in two
streams: the platform's (`shared/migrations`, tables every service has) and the service's own.
A session advisory lock serialises concurrent runners and is released by Postgres even if the
process dies, so a crashed pod never leaves a stale lock. An applied file whose text changed is
an error, not a silent skip.
"""

from __future__ import annotations

import hashlib
import re
from dataclasses import dataclass
from pathlib import Path

from shared.db import Connection

SHARED_MIGRATIONS = Path(__file__).with_name("migrations")
_FILE = re.compile(r"^(\d{4})_([a-z0-9_]+)\.sql$")
_SCHEMA = re.compile(r"^[a-z_][a-z0-9_]*$")


class MigrationError(RuntimeError):
    pass


@dataclass(frozen=True)
class Migration:
    stream: str
    version: int
    name: str
    sql: str

    @property
    def checksum(self) -> str:
        return hashlib.sha256(self.sql.encode()).hexdigest()


def discover(stream: str, folder: Path) -> list[Migration]:
    found: list[Migration] = []
    for path in sorted(folder.glob("*.sql")):
        match = _FILE.match(path.name)
        if match is None:
            raise MigrationError(f"{path}: migration files are named NNNN_snake_name.sql")
        found.append(Migration(stream, int(match[1]), match[2], path.read_text()))
    versions = [m.version for m in found]
    if len(set(versions)) != len(versions):
        raise MigrationError(f"{folder}: two migrations share a version number")
    return found


async def migrate(conn: Connection, schema: str, service_folder: Path) -> list[str]:
    """Apply pending migrations to `schema`; return the names applied. The connection is left
    with its search_path on `schema` (tools go on using it; a pooled connection is reset by its
    owner, shared/runtime.py)."""
    if not _SCHEMA.match(schema):
        raise MigrationError(f"invalid schema name {schema!r}")
    pending = discover("shared", SHARED_MIGRATIONS) + discover(schema, service_folder)
    await conn.execute("SELECT pg_advisory_lock(hashtext('opensmm.migrate'), hashtext($1))", schema)
    try:
        exists = await conn.fetchval("SELECT 1 FROM pg_namespace WHERE nspname = $1", schema)
        if not exists:
            await conn.execute(f'CREATE SCHEMA "{schema}"')
        await conn.execute(f'SET search_path TO "{schema}"')
        await conn.execute(
            """
            CREATE TABLE IF NOT EXISTS schema_migrations (
                stream     text        NOT NULL,
                version    integer     NOT NULL,
                name       text        NOT NULL,
                checksum   text        NOT NULL,
                applied_at timestamptz NOT NULL DEFAULT now(),
                PRIMARY KEY (stream, version)
            )
            """
        )
        rows = await conn.fetch("SELECT stream, version, checksum FROM schema_migrations")
        applied = {(r["stream"], r["version"]): r["checksum"] for r in rows}
        done: list[str] = []
        for m in pending:
            label = f"{m.stream}/{m.version:04d}_{m.name}"
            known = applied.get((m.stream, m.version))
            if known is not None:
                if known != m.checksum:
                    raise MigrationError(f"{schema}: applied migration {label} was edited")
                continue
            async with conn.transaction():
                await conn.execute(m.sql)
                await conn.execute(
                    "INSERT INTO schema_migrations (stream, version, name, checksum)"
                    " VALUES ($1, $2, $3, $4)",
                    m.stream,
                    m.version,
                    m.name,
                    m.checksum,
                )
            done.append(label)
        return done
    finally:
        await conn.execute(
            "SELECT pg_advisory_unlock(hashtext('opensmm.migrate'), hashtext($1))", schema
        )
