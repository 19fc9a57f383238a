"""Listening through ingest's API: brands, versioned queries, matching to several brands, edits,
deletions and mention search, checked on the API and on the events that reach Kafka."""

from __future__ import annotations

from typing import Any

import httpx

from shared.topics import MENTIONS
from tests.conftest import SessionStack
from tests.support import (
    ServiceProcess,
    all_items,
    events_for,
    mention,
    post_mentions,
    token,
    wait_until,
)


async def _setup(
    http: httpx.AsyncClient, ingest: str, admin: dict[str, str], brands: list[str]
) -> None:
    for brand in brands:
        r = await http.post(
            f"{ingest}/api/v1/brands", json={"id": brand, "name": brand.title()}, headers=admin
        )
        assert r.status_code == 201, r.text


async def test_brands_and_queries_are_managed_and_versioned(
    services: dict[str, ServiceProcess], http: httpx.AsyncClient, stack: SessionStack, tenant: str
) -> None:
    ingest = services["ingest"].url
    admin = token(stack.auth_secret, tenant, "admin")
    await _setup(http, ingest, admin, ["acme"])
    dup = await http.post(
        f"{ingest}/api/v1/brands", json={"id": "acme", "name": "x"}, headers=admin
    )
    assert dup.status_code == 409
    bad_tz = await http.post(
        f"{ingest}/api/v1/brands",
        json={"id": "z", "name": "Z", "timezone": "Mars/Base"},
        headers=admin,
    )
    assert bad_tz.status_code == 422

    created = await http.post(
        f"{ingest}/api/v1/queries",
        json={
            "brand_id": "acme",
            "name": "Brand",
            "expression": 'acme AND ("new shoes" OR sneak*)',
        },
        headers=admin,
    )
    assert created.status_code == 201, created.text
    query = created.json()
    assert query["version"] == 1
    updated = await http.put(
        f"{ingest}/api/v1/queries/{query['id']}",
        json={"name": "Brand", "expression": "acme NOT job"},
        headers=admin,
    )
    assert updated.json()["version"] == 2
    assert [v["expression"] for v in updated.json()["versions"]] == [
        "acme NOT job",
        'acme AND ("new shoes" OR sneak*)',
    ]
    broken = await http.post(
        f"{ingest}/api/v1/queries",
        json={"brand_id": "acme", "name": "Broken", "expression": "acme AND (shoes OR"},
        headers=admin,
    )
    assert broken.status_code == 422
    detail = broken.json()["details"][0]
    assert detail["field"] == "expression"
    assert isinstance(detail["position"], int)
    assert detail["expected"]
    unknown_brand = await http.post(
        f"{ingest}/api/v1/queries",
        json={"brand_id": "nope", "name": "x", "expression": "x"},
        headers=admin,
    )
    assert unknown_brand.status_code == 404
    other_tenant = token(stack.auth_secret, tenant + "-x", "admin")
    hidden = await http.get(f"{ingest}/api/v1/queries/{query['id']}", headers=other_tenant)
    assert hidden.status_code == 404

    tested = await http.post(
        f"{ingest}/api/v1/queries/test",
        json={
            "expression": '"мобильный банк" AND NOT кредит',
            "samples": [
                {"text": "Новый мобильный банк просто супер"},
                {"text": "Мобильный банк одобрил кредит"},
                {"text": "банк мобильный"},
            ],
        },
        headers=token(stack.auth_secret, tenant, "agent"),
    )
    assert [r["matched"] for r in tested.json()["results"]] == [True, False, False]


async def test_a_mention_matching_two_brands_reaches_both_once_and_edits_follow(
    services: dict[str, ServiceProcess], http: httpx.AsyncClient, stack: SessionStack, tenant: str
) -> None:
    ingest, inbox = services["ingest"].url, services["inbox"].url
    admin = token(stack.auth_secret, tenant, "admin")
    await _setup(http, ingest, admin, ["acme", "globex"])
    for brand, expression, role, competitor in [
        ("acme", "acme OR #acmeshoes", "brand", None),
        ("acme", "globex", "competitor", "Globex"),
        ("globex", "globex", "brand", None),
    ]:
        r = await http.post(
            f"{ingest}/api/v1/queries",
            json={
                "brand_id": brand,
                "name": expression,
                "expression": expression,
                "role": role,
                "competitor": competitor,
            },
            headers=admin,
        )
        assert r.status_code == 201, r.text
    source = (
        await http.post(
            f"{ingest}/api/v1/sources",
            json={"name": "Forum relay", "match_mode": "queries", "network": "forum"},
            headers=admin,
        )
    ).json()
    items = [
        mention("f1", "Acme or Globex, which sneakers are better?"),
        mention("f2", "Loving my #AcmeShoes"),
        mention("f3", "Nothing to see here"),
    ]
    response = await post_mentions(http, ingest, source, items)
    assert response.json() == {"received": 3, "accepted": 3, "duplicates": 0}
    # The same items again (another relay resends): no new brand mentions.
    again = await post_mentions(http, ingest, source, items)
    assert again.json()["accepted"] == 0

    events = await events_for(stack.bootstrap, stack.topic(MENTIONS.name), tenant, 3)
    by_brand: dict[str, list[str]] = {}
    for e in events:
        by_brand.setdefault(e["brand_id"], []).append(e["payload"]["external_id"])
    assert sorted(by_brand["acme"]) == ["f1", "f2"]
    assert by_brand["globex"] == ["f1"]
    f1_acme = next(
        e for e in events if e["brand_id"] == "acme" and e["payload"]["external_id"] == "f1"
    )
    roles = sorted((m["role"], m["competitor"]) for m in f1_acme["payload"]["matches"])
    assert roles == [("brand", None), ("competitor", "Globex")]
    assert f1_acme["payload"]["network"] == "forum"

    reader = token(stack.auth_secret, tenant, "agent")

    async def three_items() -> list[dict[str, Any]]:
        got = await all_items(http, inbox, reader)
        return got if len(got) == 3 else []

    await wait_until(three_items, what="three inbox items (f1 twice, f2 once)")

    found = await http.get(
        f"{ingest}/api/v1/mentions", params={"brand_id": "acme", "q": "sneakers"}, headers=reader
    )
    assert [m["external_id"] for m in found.json()["mentions"]] == ["f1"]

    # An edit reaches every brand that has the item, as mention.updated.
    edited = mention("f1", "Acme or Globex? Acme, definitely.", edited_at="2026-11-02T10:00:00Z")
    await post_mentions(http, ingest, source, [edited])
    events = await events_for(stack.bootstrap, stack.topic(MENTIONS.name), tenant, 5)
    updates = [e for e in events if e["type"] == "mention.updated"]
    assert sorted(e["brand_id"] for e in updates) == ["acme", "globex"]
    assert {e["payload"]["text"] for e in updates} == {"Acme or Globex? Acme, definitely."}

    async def edited_in_the_inbox() -> list[dict[str, Any]]:
        got = [i for i in await all_items(http, inbox, reader) if i["external_id"] == "f1"]
        done = all(i["edited_at"] and i["text"].endswith("definitely.") for i in got)
        return got if len(got) == 2 and done else []

    await wait_until(edited_in_the_inbox, what="both brands' items to show the edit")


async def test_source_status_pause_and_resume(
    services: dict[str, ServiceProcess], http: httpx.AsyncClient, stack: SessionStack, tenant: str
) -> None:
    ingest = services["ingest"].url
    admin = token(stack.auth_secret, tenant, "admin")
    await _setup(http, ingest, admin, ["acme"])
    source = (
        await http.post(f"{ingest}/api/v1/sources", json={"brand_id": "acme"}, headers=admin)
    ).json()
    assert source["status"] == "active"
    await post_mentions(http, ingest, source, [mention("s1"), mention("s2")])
    status = (await http.get(f"{ingest}/api/v1/sources/{source['id']}", headers=admin)).json()
    assert status["items_total"] == 2
    assert status["last_success_at"] is not None
    paused = await http.post(f"{ingest}/api/v1/sources/{source['id']}/pause", headers=admin)
    assert paused.json()["status"] == "paused"
    refused = await post_mentions(http, ingest, source, [mention("s3")])
    assert refused.status_code == 409
    resumed = await http.post(f"{ingest}/api/v1/sources/{source['id']}/resume", headers=admin)
    assert resumed.json()["status"] == "active"
    assert (await post_mentions(http, ingest, source, [mention("s3")])).json()["accepted"] == 1
    listed = await http.get(f"{ingest}/api/v1/sources", headers=admin)
    assert [s["id"] for s in listed.json()["sources"]] == [source["id"]]
    assert "signing_secret" not in listed.json()["sources"][0]
