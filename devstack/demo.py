"""The `make up` demo, through the services' public HTTP APIs only: a brand with listening queries,
a signed webhook delivery, and live traffic from the sandbox network (a local Mastodon) that ingest
polls and the inbox shows within a minute."""

from __future__ import annotations

import asyncio
import hashlib
import hmac
import json
import time
import uuid
from datetime import UTC, datetime, timedelta
from typing import Any
from zoneinfo import ZoneInfo

import httpx
import typer

from devstack.state import load_secrets, sandbox_url, service_url
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
        brand = await client.post(
            f"{ingest}/api/v1/brands",
            json={"id": BRAND, "name": "Demo Sneakers", "timezone": "Europe/Berlin"},
            headers=auth,
        )
        if brand.status_code not in (201, 409):  # 409: an earlier demo made it
            brand.raise_for_status()
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
    if len(items) != len(wanted):
        raise typer.Exit(code=1)
    brand_account = await _sandbox_traffic(auth, run_id)
    await _scheduled_posts(auth, brand_account)
    typer.echo("\nTry it yourself:")
    typer.echo(f"  export TOKEN=$(smm token issue --tenant {TENANT} --role agent)")
    typer.echo(
        f'  curl -s -H "Authorization: Bearer $TOKEN" {inbox}/api/v1/items | python -m json.tool'
    )
    typer.echo(f"  API docs: {ingest}/api/v1/docs and {inbox}/api/v1/docs\n")


async def _sandbox_traffic(auth: dict[str, str], run_id: str) -> dict[str, Any]:
    """Start sandbox traffic that @mentions the brand's account and names it and a competitor,
    and point two pull sources at it: the account's notifications and a search."""
    ingest, inbox, sandbox = service_url("ingest"), service_url("inbox"), sandbox_url()
    async with httpx.AsyncClient(timeout=10.0) as client:
        account = await client.post(
            f"{sandbox}/sandbox/accounts",
            json={
                "username": f"demo_sneakers_{run_id}",
                "display_name": "Demo Sneakers",
                "followers_count": 12000,
            },
        )
        account.raise_for_status()
        brand_account = account.json()
        for name, expression, role, competitor in [
            ("Brand name", '"demo sneakers" OR #demosneakers', "brand", None),
            ("RivalRun", "rivalrun OR #rivalrun", "competitor", "RivalRun"),
        ]:
            query = await client.post(
                f"{ingest}/api/v1/queries",
                json={
                    "brand_id": BRAND,
                    "name": name,
                    "expression": expression,
                    "role": role,
                    "competitor": competitor,
                },
                headers=auth,
            )
            query.raise_for_status()
        for name, mode, match_mode, extra in [
            ("Sandbox mentions of @demo_sneakers", "notifications", "brand", {}),
            ("Sandbox search", "search", "queries", {"query": "sneakers"}),
        ]:
            source = await client.post(
                f"{ingest}/api/v1/sources",
                json={
                    "kind": "pull",
                    "network": "mastodon",
                    "brand_id": BRAND,
                    "name": name,
                    "match_mode": match_mode,
                    "config": {"api_base": sandbox, "mode": mode, **extra},
                    "credentials": {"access_token": brand_account["access_token"]},
                    "interval_s": 10,
                },
                headers=auth,
            )
            source.raise_for_status()
        traffic = await client.post(
            f"{sandbox}/sandbox/traffic",
            json={
                "rate_per_s": 2,
                "brands": ["Demo Sneakers"],
                "competitors": ["RivalRun"],
                "languages": ["en", "ru"],
                "mention_accounts": [brand_account["id"]],
                "seed": 1,
            },
        )
        traffic.raise_for_status()
        typer.echo("Sandbox traffic started (2 statuses/s); ingest polls it every 10 s.")
        started = time.monotonic()
        since = datetime.now(UTC)
        seen: list[dict[str, Any]] = []
        while time.monotonic() - started < 60:
            page = await client.get(
                f"{inbox}/api/v1/items", params={"brand_id": BRAND, "limit": 200}, headers=auth
            )
            seen = [
                i
                for i in page.json()["items"]
                if i["network"] == "mastodon" and datetime.fromisoformat(i["received_at"]) >= since
            ]
            if len(seen) >= 5:
                break
            await asyncio.sleep(1)
    typer.echo(
        f"{len(seen)} sandbox mentions in the inbox after {time.monotonic() - started:.0f}s, e.g.:"
    )
    for item in seen[:5]:
        typer.echo(f"  {item['author']['handle']:<22} {item['text'][:90]}")
    typer.echo(f"Stop the traffic: curl -X DELETE {sandbox}/sandbox/traffic\n")
    if not seen:
        raise typer.Exit(code=1)
    return dict(brand_account)


async def _scheduled_posts(auth: dict[str, str], account: dict[str, Any]) -> None:
    """Three approved posts scheduled a few seconds apart in the brand's zone, published to the
    sandbox by the publisher's dispatcher; shows how late each went out."""
    publisher, sandbox = service_url("publisher"), sandbox_url()
    zone = "Europe/Berlin"
    async with httpx.AsyncClient(timeout=10.0) as client:
        settings = await client.put(
            f"{publisher}/api/v1/brands/{BRAND}/publishing",
            json={"timezone": zone, "approval": "none"},
            headers=auth,
        )
        settings.raise_for_status()
        channel = await client.post(
            f"{publisher}/api/v1/channels",
            json={
                "brand_id": BRAND,
                "network": "mastodon",
                "name": "Demo Sneakers on the sandbox",
                "config": {"api_base": sandbox, "account_id": account["id"]},
                "credentials": {"access_token": account["access_token"]},
            },
            headers=auth,
        )
        channel.raise_for_status()
        local_now = datetime.now(ZoneInfo(zone)).replace(tzinfo=None, microsecond=0)
        posts = []
        for n, text in enumerate(
            ["Winter collection drops today ❄️", "Free shipping this weekend", "Ask us anything!"]
        ):
            created = await client.post(
                f"{publisher}/api/v1/posts",
                json={
                    "brand_id": BRAND,
                    "variants": [{"channel_id": channel.json()["id"], "text": text}],
                },
                headers=auth,
            )
            created.raise_for_status()
            post_id = created.json()["id"]
            await client.post(f"{publisher}/api/v1/posts/{post_id}/submit", headers=auth)
            at = local_now + timedelta(seconds=5 + 5 * n)
            scheduled = await client.post(
                f"{publisher}/api/v1/posts/{post_id}/schedule",
                json={"at_local": at.isoformat()},
                headers=auth,
            )
            scheduled.raise_for_status()
            posts.append(post_id)
        typer.echo(
            f"\nScheduled 3 posts at {local_now + timedelta(seconds=5):%H:%M:%S}, +5 s and"
            f" +10 s ({zone}); waiting for them to go out to the sandbox…"
        )
        deadline = time.monotonic() + 60
        done: list[dict[str, Any]] = []
        while time.monotonic() < deadline:
            done = [
                (await client.get(f"{publisher}/api/v1/posts/{p}", headers=auth)).json()
                for p in posts
            ]
            if all(d["status"] in ("published", "failed") for d in done):
                break
            await asyncio.sleep(0.5)
    for post in done:
        (delivery,) = post["deliveries"]
        late = ""
        if delivery["published_at"]:
            lateness = datetime.fromisoformat(delivery["published_at"]) - datetime.fromisoformat(
                post["scheduled_at"]
            )
            late = f"{lateness.total_seconds():.1f}s after its time"
        typer.echo(f"  {post['status']:<10} {late:<22} {delivery['url'] or delivery['last_error']}")
    if any(p["status"] != "published" for p in done):
        raise typer.Exit(code=1)
