"""Migrations per schema on the real Postgres, and each service role confined to its schema."""

from __future__ import annotations

import asyncio
import uuid
from pathlib import Path

import asyncpg
import pytest

from shared.migrations import MigrationError, migrate
from tests.conftest import SessionStack


async def test_concurrent_runners_apply_each_migration_once(
    stack: SessionStack, tmp_path: Path
) -> None:
    schema = "mig_" + uuid.uuid4().hex[:8]
    (tmp_path / "0001_things.sql").write_text("CREATE TABLE things (id int PRIMARY KEY);")
    (tmp_path / "0002_more.sql").write_text("ALTER TABLE things ADD COLUMN name text;")
    conns = [await asyncpg.connect(stack.admin_dsn()) for _ in range(4)]
    try:
        results = await asyncio.gather(*(migrate(c, schema, tmp_path) for c in conns))
        applied = [name for result in results for name in result]
        assert sorted(applied) == [
            f"{schema}/0001_things",
            f"{schema}/0002_more",
            "shared/0001_outbox_and_inbox_ledger",
        ]
        rows = await conns[0].fetch(f"SELECT stream, version FROM {schema}.schema_migrations")
        assert len(rows) == 3
        # A second run has nothing to do.
        assert await migrate(conns[0], schema, tmp_path) == []
        # Editing an applied migration is refused, not silently skipped.
        (tmp_path / "0002_more.sql").write_text("ALTER TABLE things ADD COLUMN other text;")
        with pytest.raises(MigrationError, match="was edited"):
            await migrate(conns[0], schema, tmp_path)
    finally:
        await conns[0].execute(f"DROP SCHEMA IF EXISTS {schema} CASCADE")
        for c in conns:
            await c.close()


async def test_bad_migration_file_name_is_refused(stack: SessionStack, tmp_path: Path) -> None:
    (tmp_path / "1_oops.sql").write_text("SELECT 1;")
    conn = await asyncpg.connect(stack.admin_dsn())
    try:
        with pytest.raises(MigrationError, match="NNNN_snake_name"):
            await migrate(conn, "mig_bad", tmp_path)
    finally:
        await conn.close()


@pytest.mark.usefixtures("services")  # the services have migrated their schemas
async def test_each_service_role_reaches_only_its_own_schema(stack: SessionStack) -> None:
    conn = await asyncpg.connect(stack.service_dsn("inbox"))
    try:
        await conn.execute("CREATE TABLE inbox.role_probe (x int); DROP TABLE inbox.role_probe;")
        assert await conn.fetchval("SELECT count(*) >= 0 FROM items")  # its own, via search_path
        with pytest.raises(asyncpg.InsufficientPrivilegeError):
            await conn.fetchval("SELECT count(*) FROM ingest.mentions")
        with pytest.raises(asyncpg.InsufficientPrivilegeError):
            await conn.execute("CREATE TABLE ingest.role_probe (x int)")
        with pytest.raises(asyncpg.InsufficientPrivilegeError):
            await conn.execute("CREATE TABLE public.role_probe (x int)")
        with pytest.raises(asyncpg.InsufficientPrivilegeError):
            await conn.execute("CREATE SCHEMA sneaky")
    finally:
        await conn.close()
