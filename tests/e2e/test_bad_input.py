"""Bad input gets a clear 4xx and changes nothing."""

from __future__ import annotations

import json
import uuid
from typing import Any

import asyncpg
import httpx
import pytest

from tests.conftest import SessionStack
from tests.support import ServiceProcess, mention, post_mentions, signed, token


async def stored(admin_db: asyncpg.Connection, source: dict[str, Any]) -> int:
    count = await admin_db.fetchval(
        "SELECT count(*) FROM ingest.item_matches WHERE source_id = $1", uuid.UUID(source["id"])
    )
    outbox = await admin_db.fetchval(
        "SELECT count(*) FROM ingest.outbox WHERE event->'payload'->>'source_id' = $1",
        source["id"],
    )
    return int(count) + int(outbox)


def webhook_url(services: dict[str, ServiceProcess], source: dict[str, Any]) -> str:
    return f"{services['ingest'].url}/api/v1/webhooks/generic/{source['id']}"


@pytest.mark.parametrize(
    "signature",
    [None, "", "sha256=", "sha256=" + "0" * 64, "md5=abc", "sha256=not-hex"],
    ids=["missing", "empty", "bare-prefix", "wrong-digest", "other-scheme", "garbage"],
)
async def test_wrong_or_missing_signature_is_401_and_stores_nothing(
    services: dict[str, ServiceProcess],
    http: httpx.AsyncClient,
    source: dict[str, Any],
    admin_db: asyncpg.Connection,
    signature: str | None,
) -> None:
    body = json.dumps({"mentions": [mention("x-1")]}).encode()
    headers = {"Content-Type": "application/json"}
    if signature is not None:
        headers["X-SMM-Signature"] = signature
    response = await http.post(webhook_url(services, source), content=body, headers=headers)
    assert response.status_code == 401
    assert response.json()["error"] == "bad_signature"
    assert await stored(admin_db, source) == 0


async def test_signature_of_another_body_or_secret_is_401(
    services: dict[str, ServiceProcess],
    http: httpx.AsyncClient,
    source: dict[str, Any],
    admin_db: asyncpg.Connection,
) -> None:
    body = json.dumps({"mentions": [mention("x-1")]}).encode()
    tampered = body.replace(b"x-1", b"x-2")
    response = await http.post(
        webhook_url(services, source),
        content=tampered,
        headers=signed(source["signing_secret"], body),
    )
    assert response.status_code == 401
    response = await http.post(
        webhook_url(services, source), content=body, headers=signed("not-the-secret", body)
    )
    assert response.status_code == 401
    assert await stored(admin_db, source) == 0


async def test_oversized_body_is_413(
    services: dict[str, ServiceProcess],
    http: httpx.AsyncClient,
    source: dict[str, Any],
    admin_db: asyncpg.Connection,
) -> None:
    huge = [mention(f"big-{i}", "x" * 4000) for i in range(600)]  # ~2.4 MB > 2 MiB limit
    response = await post_mentions(http, services["ingest"].url, source, huge)
    assert response.status_code == 413
    assert response.json()["error"] == "body_too_large"
    assert await stored(admin_db, source) == 0


async def test_more_than_1000_mentions_is_422(
    services: dict[str, ServiceProcess],
    http: httpx.AsyncClient,
    source: dict[str, Any],
    admin_db: asyncpg.Connection,
) -> None:
    response = await post_mentions(
        http, services["ingest"].url, source, [mention(f"m{i}", "ok") for i in range(1001)]
    )
    assert response.status_code == 422
    assert response.json()["details"][0]["field"] == "mentions"
    assert await stored(admin_db, source) == 0


@pytest.mark.parametrize(
    ("broken", "field"),
    [
        ({"author": {"id": "u1"}}, "mentions.1.author.handle"),
        ({"created_at": "yesterday"}, "mentions.1.created_at"),
        ({"created_at": "2026-11-01T10:00:00"}, "mentions.1.created_at"),  # no time zone
        ({"external_id": ""}, "mentions.1.external_id"),
        ({"text": 42}, "mentions.1.text"),
        ({"url": "javascript:alert(1)"}, "mentions.1.url"),
        ({"author": {"id": "u1", "handle": "h", "followers": -5}}, "mentions.1.author.followers"),
    ],
)
async def test_malformed_mention_is_422_naming_the_field(
    services: dict[str, ServiceProcess],
    http: httpx.AsyncClient,
    source: dict[str, Any],
    admin_db: asyncpg.Connection,
    broken: dict[str, Any],
    field: str,
) -> None:
    items = [mention("good-1"), {**mention("bad-1"), **broken}]
    response = await post_mentions(http, services["ingest"].url, source, items)
    assert response.status_code == 422, response.text
    body = response.json()
    assert field in [d["field"] for d in body["details"]]
    assert field in body["message"]
    # All or nothing: the good mention in the same request is not stored either.
    assert await stored(admin_db, source) == 0


@pytest.mark.parametrize(
    "raw", [b"", b"not json", b"[]", b'{"mentions": []}', b'{"mentions": "x"}', b"\xff\xfe"]
)
async def test_body_that_is_not_a_mention_list_is_422(
    services: dict[str, ServiceProcess],
    http: httpx.AsyncClient,
    source: dict[str, Any],
    admin_db: asyncpg.Connection,
    raw: bytes,
) -> None:
    response = await http.post(
        webhook_url(services, source), content=raw, headers=signed(source["signing_secret"], raw)
    )
    assert response.status_code == 422
    assert await stored(admin_db, source) == 0


async def test_unknown_source_is_404(
    services: dict[str, ServiceProcess], http: httpx.AsyncClient
) -> None:
    body = b'{"mentions": []}'
    response = await http.post(
        f"{services['ingest'].url}/api/v1/webhooks/generic/{uuid.uuid4()}",
        content=body,
        headers=signed("x", body),
    )
    assert response.status_code == 404
    response = await http.post(
        f"{services['ingest'].url}/api/v1/webhooks/generic/not-a-uuid",
        content=body,
        headers=signed("x", body),
    )
    assert response.status_code == 422


async def test_api_needs_a_valid_token_and_the_right_role(
    services: dict[str, ServiceProcess], http: httpx.AsyncClient, stack: SessionStack, tenant: str
) -> None:
    inbox, ingest = services["inbox"].url, services["ingest"].url
    assert (await http.get(inbox + "/api/v1/items")).status_code == 401
    forged = token("another-secret-another-secret-123456", tenant)
    assert (await http.get(inbox + "/api/v1/items", headers=forged)).status_code == 401
    garbage = {"Authorization": "Bearer abc.def.ghi"}
    assert (await http.get(inbox + "/api/v1/items", headers=garbage)).status_code == 401
    agent = token(stack.auth_secret, tenant, "agent")
    response = await http.post(ingest + "/api/v1/sources", json={"brand_id": "b"}, headers=agent)
    assert response.status_code == 403
    admin = token(stack.auth_secret, tenant, "admin")
    response = await http.post(
        ingest + "/api/v1/sources", json={"brand_id": "no spaces"}, headers=admin
    )
    assert response.status_code == 422
    assert response.json()["details"][0]["field"] == "brand_id"
    response = await http.get(inbox + "/api/v1/items", params={"cursor": "zzz"}, headers=agent)
    assert response.status_code == 422
