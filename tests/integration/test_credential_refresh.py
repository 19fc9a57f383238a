"""The publisher's credential refresh job on the real database, against a fake Bluesky server."""

from __future__ import annotations

from datetime import UTC, datetime

import asyncpg
import httpx
from cryptography.fernet import Fernet

from services.publisher import repository
from services.publisher.adapters.bluesky import BlueskyChannel, BlueskyPublisher
from services.publisher.credentials import refresh_one
from shared.crypto import SecretBox
from tests.fakes.publish_bluesky import APP_PASSWORD, BRAND_HANDLE, FakeBlueskyPds
from tests.fakes.server import serve


async def test_channels_are_refreshed_before_expiry_and_flagged_when_refused(
    publisher_pool: asyncpg.Pool, tenant: str
) -> None:
    box = SecretBox(Fernet.generate_key().decode())
    fake = FakeBlueskyPds()
    adapters = {"bluesky": BlueskyPublisher()}
    async with serve(fake.app) as url, httpx.AsyncClient(timeout=5) as client:
        async with publisher_pool.acquire() as conn:
            channel = await repository.insert_channel(
                conn,
                tenant_id=tenant,
                brand_id="acme",
                network="bluesky",
                name="ACME on Bluesky",
                config=BlueskyChannel(service=url).model_dump(mode="json"),
                overrides={},
                credentials_encrypted=box.seal_json(
                    {"identifier": BRAND_HANDLE, "app_password": APP_PASSWORD}
                ),
            )
        now = datetime.now(UTC)
        # Other tests' channels may be due too: refresh until ours has been handled.
        for _ in range(50):
            if not await refresh_one(publisher_pool, adapters, box, client, now):
                break
        async with publisher_pool.acquire() as conn:
            row = await conn.fetchrow(
                "SELECT credentials_encrypted, credentials_expire_at, status FROM channels"
                " WHERE id = $1",
                channel["id"],
            )
        assert row is not None
        credentials = box.open_json(row["credentials_encrypted"])
        assert credentials["access_jwt"]
        assert credentials["refresh_jwt"]
        assert row["credentials_expire_at"] > now
        assert row["status"] == "active"
        assert fake.session_count() == 1

        # Revoked at the network: the next refresh flags the channel instead of failing later.
        fake.password_revoked = True
        async with publisher_pool.acquire() as conn:
            await conn.execute(
                "UPDATE channels SET credentials_expire_at = now(),"
                " credentials_encrypted = $2 WHERE id = $1",
                channel["id"],
                box.seal_json({"identifier": BRAND_HANDLE, "app_password": "wrong"}),
            )
        for _ in range(50):
            if not await refresh_one(publisher_pool, adapters, box, client, datetime.now(UTC)):
                break
        async with publisher_pool.acquire() as conn:
            status = await conn.fetchval("SELECT status FROM channels WHERE id = $1", channel["id"])
        assert status == "needs_reconnect"
