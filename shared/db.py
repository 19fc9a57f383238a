"""The asyncpg pool and the error classes that tell an outage from a bad row."""

from __future__ import annotations

import asyncio
from typing import Any

import asyncpg
import orjson
from asyncpg.pool import PoolConnectionProxy

# What repositories accept: a connection of their own or one borrowed from the pool.
Connection = asyncpg.Connection | PoolConnectionProxy


class WriteConflict(Exception):
    """Another transaction created the same new row first: the work is applied again, and then
    finds that row (a rare race, e.g. two replicas during a rebalance)."""


# Errors that say the database is unreachable or restarting: the work should be retried later
# (the Kafka batch is redelivered), never sent to a DLQ as if the event were at fault.
TRANSIENT_DB_ERRORS: tuple[type[BaseException], ...] = (
    OSError,
    asyncio.TimeoutError,
    asyncpg.exceptions.ConnectionDoesNotExistError,
    asyncpg.exceptions.CannotConnectNowError,
    asyncpg.exceptions.TooManyConnectionsError,
    asyncpg.exceptions.AdminShutdownError,
    asyncpg.exceptions.CrashShutdownError,
    asyncpg.exceptions.InterfaceError,
    asyncpg.exceptions.PostgresConnectionError,
    asyncpg.exceptions.SerializationError,
    asyncpg.exceptions.DeadlockDetectedError,
    WriteConflict,
)


def _json_text(value: Any) -> str:
    # orjson: the hot paths (outbox events, mention payloads) encode several times faster than
    # with the standard library, and it writes the same JSON for the types the code stores.
    return orjson.dumps(value, option=orjson.OPT_NON_STR_KEYS).decode()


async def _init_connection(conn: asyncpg.Connection) -> None:
    for name in ("json", "jsonb"):
        await conn.set_type_codec(
            name, encoder=_json_text, decoder=orjson.loads, schema="pg_catalog"
        )


async def _keep_session(conn: asyncpg.Connection) -> None:
    """Returning a connection to the pool costs no round trip: asyncpg still rolls back an open
    transaction, and the services keep no other session state on pooled connections (advisory
    locks are transaction-scoped; the one session lock, the migrations', is released by `migrate`
    and its SET undone by the runtime; LISTEN runs on a connection of its own). The
    default reset (`RESET ALL`, `UNLISTEN *`, unlock all...) is a round trip on every release,
    which a publisher pays per post."""


async def create_pool(
    dsn: str,
    *,
    min_size: int = 1,
    max_size: int = 10,
    schema: str | None = None,
    plan_cache_mode: str | None = None,
) -> asyncpg.Pool:
    """A pool whose connections decode json/jsonb and (optionally) pin the search_path.

    `plan_cache_mode="force_custom_plan"` plans every statement for its values: a statement
    asyncpg caches may otherwise switch to a generic plan after five runs, which for filters whose
    selectivity depends on the value (a search word, a tag) can be a hundred times slower.
    """
    server_settings: dict[str, str] = {"application_name": f"opensmm-{schema or 'tool'}"}
    if schema is not None:
        server_settings["search_path"] = schema
    if plan_cache_mode is not None:
        server_settings["plan_cache_mode"] = plan_cache_mode
    pool: Any = await asyncpg.create_pool(
        dsn,
        min_size=min_size,
        max_size=max_size,
        init=_init_connection,
        reset=_keep_session,
        server_settings=server_settings,
        command_timeout=60,
    )
    return pool  # type: ignore[no-any-return]


async def ping(pool: asyncpg.Pool, timeout_s: float = 2.0) -> bool:
    try:
        async with asyncio.timeout(timeout_s):
            async with pool.acquire() as conn:
                return bool(await conn.fetchval("SELECT 1") == 1)
    except Exception:
        return False
