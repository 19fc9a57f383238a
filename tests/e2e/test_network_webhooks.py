"""Networks' webhooks through ingest's HTTP API: handshakes, signature checks (401 and nothing
stored), deliveries that become brand mentions, and deletions that become `mention.deleted`."""

from __future__ import annotations

import hashlib
import hmac
import json
from pathlib import Path
from typing import Any

import asyncpg
import httpx

from shared.topics import MENTIONS
from tests.conftest import SessionStack
from tests.support import ServiceProcess, all_items, events_for, token, wait_until

FIXTURES = Path(__file__).resolve().parents[1] / "fixtures"


def fixture(network: str, name: str) -> dict[str, Any]:
    return dict(json.loads((FIXTURES / network / name).read_text()))


async def webhook_source(
    http: httpx.AsyncClient,
    ingest: str,
    admin: dict[str, str],
    network: str,
    config: dict[str, Any],
    secrets: dict[str, Any],
) -> str:
    brand = await http.post(
        f"{ingest}/api/v1/brands", json={"id": "acme", "name": "ACME"}, headers=admin
    )
    assert brand.status_code in (201, 409)
    created = await http.post(
        f"{ingest}/api/v1/sources",
        json={
            "kind": "webhook",
            "network": network,
            "brand_id": "acme",
            "config": config,
            "secrets": secrets,
        },
        headers=admin,
    )
    assert created.status_code == 201, created.text
    source = created.json()
    assert "secrets" not in source
    return f"{ingest}{source['webhook_path']}"


async def stored_count(admin_db: asyncpg.Connection, tenant: str) -> int:
    return int(
        await admin_db.fetchval(
            "SELECT count(*) FROM ingest.item_matches WHERE tenant_id = $1", tenant
        )
    )


async def test_vk_callback_api(
    services: dict[str, ServiceProcess],
    http: httpx.AsyncClient,
    stack: SessionStack,
    tenant: str,
    admin_db: asyncpg.Connection,
) -> None:
    vk = fixture("vk", "callback_events.json")
    url = await webhook_source(
        http,
        services["ingest"].url,
        token(stack.auth_secret, tenant, "admin"),
        "vk",
        {"group_id": vk["group_id"], "confirmation_code": "d8f2a1c0"},
        {"secret": "vk-secret"},
    )
    events = vk["events"]
    confirm = await http.post(url, json=events["confirmation"])
    assert confirm.status_code == 200
    assert confirm.text == "d8f2a1c0"

    forged = await http.post(url, json={**events["wall_reply_new"], "secret": "guess"})
    assert forged.status_code == 401
    assert await stored_count(admin_db, tenant) == 0

    delivered = await http.post(url, json={**events["wall_reply_new"], "secret": "vk-secret"})
    assert delivered.status_code == 200
    assert delivered.text == "ok"
    deleted = await http.post(url, json={**events["wall_reply_delete"], "secret": "vk-secret"})
    assert deleted.text == "ok"

    received, gone = await events_for(stack.bootstrap, stack.topic(MENTIONS.name), tenant, 2)
    assert received["type"] == "mention.received"
    assert received["brand_id"] == "acme"
    assert received["payload"]["network"] == "vk"
    assert received["payload"]["kind"] == "comment"
    assert received["payload"]["text"] == events["wall_reply_new"]["object"]["text"]
    assert gone["type"] == "mention.deleted"
    assert gone["payload"]["mention_id"] == received["payload"]["mention_id"]

    async def marked_deleted() -> list[dict[str, Any]]:
        items = await all_items(
            http, services["inbox"].url, token(stack.auth_secret, tenant, "agent")
        )
        return items if items and items[0]["deleted_at"] else []

    (item,) = await wait_until(marked_deleted, what="the inbox item marked deleted")
    assert item["id"] == received["payload"]["mention_id"]


async def test_telegram_bot_webhook(
    services: dict[str, ServiceProcess],
    http: httpx.AsyncClient,
    stack: SessionStack,
    tenant: str,
    admin_db: asyncpg.Connection,
) -> None:
    updates = fixture("telegram", "updates.json")["updates"]
    url = await webhook_source(
        http,
        services["ingest"].url,
        token(stack.auth_secret, tenant, "admin"),
        "telegram",
        {},
        {"secret_token": "tg-secret-token"},
    )
    update = updates["channel_post"]
    for headers in ({}, {"X-Telegram-Bot-Api-Secret-Token": "wrong"}):
        refused = await http.post(url, json=update, headers=headers)
        assert refused.status_code == 401
    assert await stored_count(admin_db, tenant) == 0
    ok = await http.post(
        url, json=update, headers={"X-Telegram-Bot-Api-Secret-Token": "tg-secret-token"}
    )
    assert ok.status_code == 200
    (event,) = await events_for(stack.bootstrap, stack.topic(MENTIONS.name), tenant, 1)
    assert event["payload"]["network"] == "telegram"
    assert event["payload"]["text"] == update["channel_post"]["text"]


async def test_meta_page_webhook(
    services: dict[str, ServiceProcess],
    http: httpx.AsyncClient,
    stack: SessionStack,
    tenant: str,
    admin_db: asyncpg.Connection,
) -> None:
    page = fixture("meta", "page_feed.json")
    url = await webhook_source(
        http,
        services["ingest"].url,
        token(stack.auth_secret, tenant, "admin"),
        "meta",
        {"page_id": page["page_id"]},
        {"app_secret": "meta-app-secret", "verify_token": "meta-verify"},
    )
    challenge = await http.get(
        url,
        params={
            "hub.mode": "subscribe",
            "hub.verify_token": "meta-verify",
            "hub.challenge": "4711",
        },
    )
    assert challenge.status_code == 200
    assert challenge.text == "4711"
    wrong = await http.get(
        url, params={"hub.mode": "subscribe", "hub.verify_token": "nope", "hub.challenge": "1"}
    )
    assert wrong.status_code == 401

    body = json.dumps(page["deliveries"]["comment_add"]).encode()
    unsigned = await http.post(url, content=body, headers={"Content-Type": "application/json"})
    assert unsigned.status_code == 401
    assert await stored_count(admin_db, tenant) == 0
    signature = "sha256=" + hmac.new(b"meta-app-secret", body, hashlib.sha256).hexdigest()
    signed = await http.post(
        url,
        content=body,
        headers={"Content-Type": "application/json", "X-Hub-Signature-256": signature},
    )
    assert signed.status_code == 200
    (event,) = await events_for(stack.bootstrap, stack.topic(MENTIONS.name), tenant, 1)
    assert event["payload"]["network"] == "facebook"
    assert event["payload"]["kind"] == "comment"
