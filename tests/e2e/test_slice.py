"""The first slice through HTTP only: a signed webhook into ingest comes out of inbox's API."""

from __future__ import annotations

import time
from typing import Any

import httpx

from tests.conftest import SessionStack
from tests.support import ServiceProcess, all_items, mention, post_mentions, token, wait_until


async def test_signed_webhook_shows_up_in_the_inbox_within_two_seconds(
    services: dict[str, ServiceProcess],
    http: httpx.AsyncClient,
    stack: SessionStack,
    tenant: str,
    source: dict[str, Any],
) -> None:
    reader = token(stack.auth_secret, tenant, "agent")
    started = time.monotonic()
    response = await post_mentions(
        http,
        services["ingest"].url,
        source,
        [mention("m-1", "Where is my order?"), mention("m-2", in_reply_to="m-1", language="en")],
    )
    assert response.status_code == 202
    assert response.json() == {"received": 2, "accepted": 2, "duplicates": 0}

    async def both_visible() -> list[dict[str, Any]]:
        items = await all_items(http, services["inbox"].url, reader)
        return items if len(items) == 2 else []

    items = await wait_until(both_visible, timeout_s=2.0, what="both mentions in the inbox")
    assert time.monotonic() - started < 2.0
    by_id = {i["external_id"]: i for i in items}
    assert by_id["m-1"]["text"] == "Where is my order?"
    assert by_id["m-1"]["brand_id"] == "brand-a"
    assert by_id["m-1"]["author"]["handle"] == "@fan_m-1"
    assert by_id["m-2"]["kind"] == "reply"
    assert by_id["m-2"]["parent_external_id"] == "m-1"
    assert by_id["m-2"]["language"] == "en"
    # Newest first.
    assert [i["created_at"] for i in items] == sorted(
        (i["created_at"] for i in items), reverse=True
    )


async def test_same_webhook_posted_twice_is_stored_once(
    services: dict[str, ServiceProcess],
    http: httpx.AsyncClient,
    stack: SessionStack,
    tenant: str,
    source: dict[str, Any],
) -> None:
    batch = [mention(f"dup-{i}") for i in range(20)]
    first = await post_mentions(http, services["ingest"].url, source, batch)
    second = await post_mentions(http, services["ingest"].url, source, batch)
    assert first.json()["accepted"] == 20
    assert second.json() == {"received": 20, "accepted": 0, "duplicates": 20}
    # A repeat inside one request is a duplicate too.
    third = await post_mentions(
        http, services["ingest"].url, source, [mention("dup-new"), mention("dup-new")]
    )
    assert third.json() == {"received": 2, "accepted": 1, "duplicates": 1}

    reader = token(stack.auth_secret, tenant, "agent")

    async def all_there() -> list[dict[str, Any]]:
        items = await all_items(http, services["inbox"].url, reader)
        return items if len(items) >= 21 else []

    items = await wait_until(all_there, what="21 items")
    ids = [i["external_id"] for i in items]
    assert len(ids) == len(set(ids)) == 21


async def test_pagination_and_brand_filter(
    services: dict[str, ServiceProcess],
    http: httpx.AsyncClient,
    stack: SessionStack,
    tenant: str,
    source: dict[str, Any],
) -> None:
    admin = token(stack.auth_secret, tenant, "admin")
    await http.post(
        services["ingest"].url + "/api/v1/brands",
        json={"id": "brand-b", "name": "B"},
        headers=admin,
    )
    other = await http.post(
        services["ingest"].url + "/api/v1/sources", json={"brand_id": "brand-b"}, headers=admin
    )
    await post_mentions(http, services["ingest"].url, source, [mention(f"a-{i}") for i in range(7)])
    await post_mentions(http, services["ingest"].url, other.json(), [mention("b-1")])

    async def eight() -> list[dict[str, Any]]:
        items = await all_items(http, services["inbox"].url, admin)
        return items if len(items) == 8 else []

    await wait_until(eight, what="8 items")
    page = await http.get(
        services["inbox"].url + "/api/v1/items",
        params={"limit": 3, "brand_id": "brand-a"},
        headers=admin,
    )
    body = page.json()
    assert len(body["items"]) == 3
    assert body["next_cursor"]
    rest = await all_items(http, services["inbox"].url, admin, brand_id="brand-a")
    assert len(rest) == 7
    assert {i["brand_id"] for i in rest} == {"brand-a"}
    second = await http.get(
        services["inbox"].url + "/api/v1/items",
        params={"limit": 3, "brand_id": "brand-a", "cursor": body["next_cursor"]},
        headers=admin,
    )
    seen = {i["id"] for i in body["items"]}
    assert not seen & {i["id"] for i in second.json()["items"]}


async def test_another_tenant_sees_none_of_the_items(
    services: dict[str, ServiceProcess],
    http: httpx.AsyncClient,
    stack: SessionStack,
    tenant: str,
    source: dict[str, Any],
) -> None:
    await post_mentions(http, services["ingest"].url, source, [mention("secret-1")])
    owner = token(stack.auth_secret, tenant, "agent")

    async def visible() -> list[dict[str, Any]]:
        return await all_items(http, services["inbox"].url, owner)

    await wait_until(visible, what="the owner's item")
    intruder = token(stack.auth_secret, tenant + "-b", "admin")
    assert await all_items(http, services["inbox"].url, intruder) == []
    filtered = await all_items(http, services["inbox"].url, intruder, brand_id="brand-a")
    assert filtered == []
    listed = await http.get(services["ingest"].url + "/api/v1/sources", headers=intruder)
    assert listed.json() == {"sources": []}


async def test_items_are_triaged_and_the_most_urgent_come_first(
    services: dict[str, ServiceProcess],
    http: httpx.AsyncClient,
    stack: SessionStack,
    tenant: str,
    source: dict[str, Any],
) -> None:
    influencer = {"id": "u-angry", "handle": "@angry", "followers": 250_000, "verified": True}
    await post_mentions(
        http,
        services["ingest"].url,
        source,
        [
            mention("calm", "Love the new boots, great quality! 😍"),
            mention("ask", "Do you ship to Canada?"),
            {
                **mention("angry", "Still no refund after three weeks. This is a scam!!"),
                "author": influencer,
            },
        ],
    )
    reader = token(stack.auth_secret, tenant, "agent")

    async def three() -> list[dict[str, Any]]:
        got = await all_items(http, services["inbox"].url, reader)
        return got if len(got) == 3 else []

    await wait_until(three, what="three triaged items")
    r = await http.get(
        f"{services['inbox'].url}/api/v1/items",
        params={"sort": "priority", "limit": 1},
        headers=reader,
    )
    top = r.json()["items"][0]
    assert top["external_id"] == "angry"
    assert top["triage"]["sentiment"] == "negative"
    assert top["triage"]["level"] in ("urgent", "high")
    # The signals explain the score, which is capped at 100.
    assert min(sum(s["weight"] for s in top["triage"]["signals"]), 100) == top["triage"]["priority"]
    second = await http.get(
        f"{services['inbox'].url}/api/v1/items",
        params={"sort": "priority", "limit": 2, "cursor": r.json()["next_cursor"]},
        headers=reader,
    )
    ordered = [top] + second.json()["items"]
    assert [i["triage"]["priority"] for i in ordered] == sorted(
        (i["triage"]["priority"] for i in ordered), reverse=True
    )
    negative = await http.get(
        f"{services['inbox'].url}/api/v1/items",
        params={"sentiment": "negative"},
        headers=reader,
    )
    assert [i["external_id"] for i in negative.json()["items"]] == ["angry"]
