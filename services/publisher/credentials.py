"""Keeps channel credentials fresh: refreshed before they expire; a channel whose credentials the
network refuses is flagged `needs_reconnect` (its posts wait) instead of failing at publish time."""

from __future__ import annotations

import asyncio
import logging
from collections.abc import Callable, Mapping
from datetime import UTC, datetime, timedelta

import asyncpg
import httpx

from services.publisher import repository
from services.publisher.adapters.base import (
    CredentialRefresher,
    CredentialsRejected,
    PublishAdapter,
)
from shared.crypto import SecretBox
from shared.db import TRANSIENT_DB_ERRORS

log = logging.getLogger("opensmm.publisher.credentials")

# Bluesky access tokens live about two hours: refresh well inside that.
REFRESH_MARGIN = timedelta(minutes=30)


async def refresh_one(
    pool: asyncpg.Pool,
    adapters: Mapping[str, PublishAdapter],
    box: SecretBox,
    client: httpx.AsyncClient,
    now: datetime,
) -> bool:
    """Refresh the most urgent channel; False when none is due."""
    refreshers = [n for n, a in adapters.items() if isinstance(a, CredentialRefresher)]
    async with pool.acquire() as conn, conn.transaction():
        channel = await repository.lock_channel_to_refresh(conn, refreshers, now + REFRESH_MARGIN)
        if channel is None:
            return False
        adapter = adapters[channel["network"]]
        assert isinstance(adapter, CredentialRefresher)
        config = adapter.config_model.model_validate(channel["config"])
        try:
            refreshed = await adapter.refresh_credentials(
                client, config, box.open_json(channel["credentials_encrypted"])
            )
        except CredentialsRejected as exc:
            log.warning("channel %s needs reconnecting: %s", channel["id"], exc.reason)
            await repository.update_channel(
                conn, channel["id"], status="needs_reconnect", last_error=exc.reason
            )
            return True
        except httpx.HTTPError as exc:
            # The stored credentials still work; look again after a while.
            log.info("channel %s: refresh failed for now (%s)", channel["id"], exc)
            await repository.store_refreshed_credentials(
                conn, channel["id"], None, now + REFRESH_MARGIN / 2
            )
            return True
        await repository.store_refreshed_credentials(
            conn, channel["id"], box.seal_json(refreshed.credentials), refreshed.expires_at
        )
    return True


async def keep_fresh(
    pool_provider: Callable[[], asyncpg.Pool],
    adapters: Mapping[str, PublishAdapter],
    box: SecretBox,
    idle_s: float = 60.0,
) -> None:
    async with httpx.AsyncClient(timeout=20.0) as client:
        while True:
            try:
                while await refresh_one(pool_provider(), adapters, box, client, datetime.now(UTC)):
                    pass
            except TRANSIENT_DB_ERRORS:
                log.warning("credential refresh: database unavailable")
            await asyncio.sleep(idle_s)
