"""A tenant that owns real resources in all four services, so fuzzed requests sometimes name ids
that exist, plus helpers the bad-input tests share."""

from __future__ import annotations

import uuid
from dataclasses import dataclass, field
from typing import Any

import httpx
import pytest

from tests.conftest import SessionStack
from tests.support import ServiceProcess, all_items, mention, post_mentions, token, wait_until


@dataclass
class World:
    """One tenant's resources across the services; `ids` maps path parameter names to real ids."""

    tenant: str
    headers: dict[str, str]
    source: dict[str, Any]
    ids: dict[str, str] = field(default_factory=dict)


async def _ok(response: httpx.Response) -> Any:
    assert response.status_code in (200, 201), (response.request.url, response.text)
    return response.json()


@pytest.fixture(scope="session")
async def world(services: dict[str, ServiceProcess], stack: SessionStack) -> World:
    """Resources the targeted tests name; they leave them as they found them."""
    return await build_world(services, stack)


@pytest.fixture(scope="session")
async def fuzz_world(services: dict[str, ServiceProcess], stack: SessionStack) -> World:
    """Resources for schemathesis alone: its generated calls edit, cancel and delete them."""
    return await build_world(services, stack)


async def build_world(services: dict[str, ServiceProcess], stack: SessionStack) -> World:
    tenant = "bad-" + uuid.uuid4().hex[:10]
    admin = token(stack.auth_secret, tenant, "admin", subject="ann")
    ingest, publisher, inbox = (
        services[name].url + "/api/v1" for name in ("ingest", "publisher", "inbox")
    )
    async with httpx.AsyncClient(timeout=30.0, headers=admin) as http:
        await _ok(
            await http.post(
                f"{ingest}/brands",
                json={"id": "brand-a", "name": "Brand A", "timezone": "Europe/Berlin"},
            )
        )
        query = await _ok(
            await http.post(
                f"{ingest}/queries",
                json={"brand_id": "brand-a", "name": "Sneakers", "expression": "sneakers OR boots"},
            )
        )
        source = await _ok(
            await http.post(f"{ingest}/sources", json={"brand_id": "brand-a", "name": "Relay"})
        )
        delivered = await post_mentions(
            http,
            services["ingest"].url,
            source,
            [mention(f"w-{i}", "Loving the new sneakers!") for i in range(3)],
        )
        assert delivered.status_code == 202, delivered.text

        await _ok(
            await http.put(
                f"{publisher}/brands/brand-a/publishing",
                json={"timezone": "Europe/Berlin", "approval": "none"},
            )
        )
        channel = await _ok(
            await http.post(
                f"{publisher}/channels",
                json={
                    "brand_id": "brand-a",
                    "network": "webhook",
                    "name": "CMS",
                    # A closed local port: nothing this suite schedules ever leaves the machine.
                    "config": {"url": "http://127.0.0.1:9/smm"},
                    "credentials": {"secret": "s3cret"},
                },
            )
        )
        post = await _ok(
            await http.post(
                f"{publisher}/posts",
                json={
                    "brand_id": "brand-a",
                    "variants": [{"channel_id": channel["id"], "text": "Hi"}],
                },
            )
        )

        await _ok(await http.put(f"{inbox}/members/ann", json={"name": "Ann"}))
        await _ok(await http.put(f"{inbox}/teams/care", json={"members": ["ann"]}))
        await _ok(
            await http.put(f"{inbox}/saved-replies/thanks", json={"name": "Thanks", "text": "Hi"})
        )
        await _ok(
            await http.put(f"{inbox}/brands/brand-a/settings", json={"time_zone": "Europe/Berlin"})
        )

        async def arrived() -> list[dict[str, Any]]:
            return await all_items(http, services["inbox"].url, admin)

        items = await wait_until(arrived, what="the world's mentions in the inbox")
        return World(
            tenant,
            admin,
            source,
            {
                "brand_id": "brand-a",
                "query_id": str(query["id"]),
                "source_id": str(source["id"]),
                "network": "generic",
                "channel_id": str(channel["id"]),
                "post_id": str(post["id"]),
                "item_id": str(items[0]["id"]),
                "member_id": "ann",
                "team_id": "care",
                "reply_id": "thanks",
            },
        )
