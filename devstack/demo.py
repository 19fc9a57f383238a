"""The `make up` demo: a brand gets a webhook source, a few mentions arrive signed, and they show up
in the inbox — all through the services' public HTTP APIs."""

from __future__ import annotations

import asyncio
import hashlib
import hmac
import json
import time
import uuid
from datetime import UTC, datetime, timedelta
from typing import Any

import httpx
import typer

from devstack.state import load_secrets, service_url
from shared.auth import issue_token

TENANT = "demo-agency"
BRAND = "demo-sneakers"

_MENTIONS = [
    ("@runner_kate", "Just got my new sneakers from @demo_sneakers, so comfy!", "en"),
    ("@angry_max", "Ordered two weeks ago and still nothing. Where is my refund??", "en"),
    ("@olga_spb", "Кроссовки отличные, но доставка опять задержалась", "ru"),
    ("@deal_hunter", "Do you ship to Canada? Want to buy three pairs", "en"),
    ("@spam_bot_77", "FREE FOLLOWERS click http://spam.example/now", "en"),
]


def _signed_body(secret: str, mentions: list[dict[str, Any]]) -> tuple[bytes, dict[str, str]]:
    body = json.dumps({"mentions": mentions}).encode()
    digest = hmac.new(secret.encode(), body, hashlib.sha256).hexdigest()
    return body, {"X-SMM-Signature": f"sha256={digest}", "Content-Type": "application/json"}


async def run() -> None:
    token = issue_token(load_secrets().auth_secret, tenant_id=TENANT, role="admin")
    auth = {"Authorization": f"Bearer {token}"}
    ingest, inbox = service_url("ingest"), service_url("inbox")
    async with httpx.AsyncClient(timeout=10.0) as client:
        created = await client.post(
            f"{ingest}/api/v1/sources",
            json={"brand_id": BRAND, "name": "Demo reviews relay"},
            headers=auth,
        )
        created.raise_for_status()
        source = created.json()
        run_id = uuid.uuid4().hex[:6]
        now = datetime.now(UTC)
        mentions = [
            {
                "external_id": f"demo-{run_id}-{i}",
                "text": text,
                "language": lang,
                "author": {"id": handle, "handle": handle, "followers": 10 ** (i + 1)},
                "created_at": (now - timedelta(minutes=5 - i)).isoformat(),
                "url": f"https://social.example/{handle.strip('@')}/{run_id}{i}",
            }
            for i, (handle, text, lang) in enumerate(_MENTIONS)
        ]
        body, headers = _signed_body(source["signing_secret"], mentions)
        started = time.monotonic()
        posted = await client.post(
            f"{ingest}{source['webhook_path']}", content=body, headers=headers
        )
        posted.raise_for_status()
        wanted = {m["external_id"] for m in mentions}
        items: list[dict[str, Any]] = []
        while time.monotonic() - started < 10:
            page = await client.get(
                f"{inbox}/api/v1/items", params={"brand_id": BRAND, "limit": 50}, headers=auth
            )
            items = [i for i in page.json()["items"] if i["external_id"] in wanted]
            if len(items) == len(wanted):
                break
            await asyncio.sleep(0.05)
        elapsed = time.monotonic() - started
    typer.echo(f"\nDemo: tenant {TENANT!r}, brand {BRAND!r}, webhook source {source['id']}")
    typer.echo(f"Posted {len(mentions)} signed mentions to ingest: {posted.json()}")
    typer.echo(f"{len(items)} of them are in the inbox after {elapsed:.2f}s (newest first):")
    for item in items:
        typer.echo(f"  {item['created_at'][:19]}  {item['author']['handle']:<14} {item['text']}")
    typer.echo("\nTry it yourself:")
    typer.echo(f"  export TOKEN=$(smm token issue --tenant {TENANT} --role agent)")
    typer.echo(
        f'  curl -s -H "Authorization: Bearer $TOKEN" {inbox}/api/v1/items | python -m json.tool'
    )
    typer.echo(f"  API docs: {ingest}/api/v1/docs and {inbox}/api/v1/docs\n")
    if len(items) != len(wanted):
        raise typer.Exit(code=1)
