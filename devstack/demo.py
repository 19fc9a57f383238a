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

from devstack import analytics_check
from devstack.state import load_secrets, sandbox_url, service_url
from shared.auth import issue_token

TENANT = "demo-agency"
BRAND = "demo-sneakers"

_MENTIONS = [  # handle, text, language, followers
    ("@runner_kate", "Just got my new sneakers from @demo_sneakers, so comfy!", "en", 2_400),
    ("@angry_max", "Ordered two weeks ago and still nothing. Where is my refund??", "en", 150),
    ("@olga_spb", "Кроссовки отличные, но доставка опять задержалась", "ru", 800),
    ("@deal_hunter", "Do you ship to Canada? Want to buy three pairs", "en", 300),
    ("@spam_bot_77", "FREE FOLLOWERS click http://spam.example/now", "en", 3),
]


def _show(items: list[dict[str, Any]]) -> None:
    """One line per item: level, priority, who has it, when the answer is due, the text."""
    now = datetime.now(UTC)
    for item in items:
        t = item["triage"]
        due = "-"
        if item["due_at"]:
            minutes = (datetime.fromisoformat(item["due_at"]) - now).total_seconds() / 60
            due = f"due in {minutes:.0f} min"
        who = item["assignee_id"] or ("spam" if t["spam"] else "unassigned")
        typer.echo(
            f"  {t['level']:<7} {t['priority']:>3}  {who:<8} {due:<16}"
            f" {item['author']['handle'][:16]:<16} {item['text'][:64]}"
        )


async def _setup_inbox(
    client: httpx.AsyncClient, auth: dict[str, str], reply_channels: dict[str, str]
) -> None:
    """Agents, teams, rules and the brand's inbox settings (all idempotent PUTs): angry items go
    to the escalations lead, the rest round-robin to the care team by language."""
    inbox = service_url("inbox") + "/api/v1"
    for member, languages in [("anna", ["en"]), ("boris", ["ru", "en"]), ("lead", ["en", "ru"])]:
        r = await client.put(
            f"{inbox}/members/{member}",
            json={"name": member.title(), "languages": languages, "capacity": 50},
            headers=auth,
        )
        r.raise_for_status()
    for team, members, strategy in [
        ("care", ["anna", "boris"], "round_robin"),
        ("escalations", ["lead"], "least_loaded"),
    ]:
        r = await client.put(
            f"{inbox}/teams/{team}",
            json={"name": team.title(), "strategy": strategy, "brands": None, "members": members},
            headers=auth,
        )
        r.raise_for_status()
    rules = [
        {
            "id": rule_id,
            "name": name,
            "conditions": [condition, {"type": "level_in", "values": ["urgent", "high"]}],
            "actions": [
                {"type": "add_tag", "tag": "escalation"},
                {"type": "assign_team", "team_id": "escalations"},
            ],
        }
        for rule_id, name, condition in [
            (
                "angry-to-escalations",
                "Angry, high-priority mentions go to the escalations lead",
                {"type": "sentiment_in", "values": ["negative"]},
            ),
            (
                "complaints-to-escalations",
                "High-priority complaints go to the escalations lead",
                {"type": "intent_in", "values": ["complaint"]},
            ),
        ]
    ] + [
        {
            "id": "spam-tag",
            "name": "Tag spam",
            "conditions": [{"type": "spam_is", "value": True}],
            "actions": [{"type": "add_tag", "tag": "spam"}],
        },
    ]
    r = await client.put(f"{inbox}/rules", json={"rules": rules}, headers=auth)
    r.raise_for_status()
    r = await client.put(
        f"{inbox}/brands/{BRAND}/settings",
        json={
            "time_zone": "Europe/Berlin",
            "vip_authors": ["@runner_kate"],
            "reply_channels": reply_channels,
        },
        headers=auth,
    )
    r.raise_for_status()


async def _reply_to_most_urgent(auth: dict[str, str], channel_id: str) -> None:
    """The lead answers the most urgent sandbox mention; the publisher posts the reply to the
    sandbox and the inbox records the first response time."""
    inbox = service_url("inbox") + "/api/v1"
    lead = {
        "Authorization": "Bearer "
        + issue_token(load_secrets().auth_secret, tenant_id=TENANT, role="agent", subject="lead")
    }
    async with httpx.AsyncClient(timeout=10.0) as client:
        await _setup_inbox(client, auth, {"mastodon": channel_id})
        page = await client.get(
            f"{inbox}/items",
            params={"brand_id": BRAND, "network": "mastodon", "sort": "priority", "limit": 1},
            headers=auth,
        )
        page.raise_for_status()
        (top,) = page.json()["items"]
        reply = await client.post(
            f"{inbox}/items/{top['id']}/replies",
            json={"text": "So sorry about this! We are on it, check your DMs."},
            headers=lead,
        )
        reply.raise_for_status()
        deadline = time.monotonic() + 30
        detail: dict[str, Any] = {}
        while time.monotonic() < deadline:
            detail = (await client.get(f"{inbox}/items/{top['id']}", headers=auth)).json()
            if detail["replies"][-1]["status"] != "requested":
                break
            await asyncio.sleep(0.2)
    outcome = detail["replies"][-1]
    typer.echo(f"\nThe lead answered the most urgent sandbox mention ({top['text'][:50]!r}):")
    typer.echo(
        f"  reply {outcome['status']} as sandbox status {outcome['external_id']};"
        f" first response after {detail['conversation']['first_response_s'] or 0:.0f}s;"
        f" conversation now {detail['conversation']['status']}"
    )
    if outcome["status"] != "published":
        raise typer.Exit(code=1)


def _signed_body(secret: str, mentions: list[dict[str, Any]]) -> tuple[bytes, dict[str, str]]:
    body = json.dumps({"mentions": mentions}).encode()
    digest = hmac.new(secret.encode(), body, hashlib.sha256).hexdigest()
    return body, {"X-SMM-Signature": f"sha256={digest}", "Content-Type": "application/json"}


# The demo's last step compares analytics with direct counts once it has run this long.
ANALYTICS_AFTER_S = 120


async def run() -> None:
    demo_started = time.monotonic()
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
        await _setup_inbox(client, auth, {})
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
                "author": {"id": handle, "handle": handle, "followers": followers},
                "created_at": (now - timedelta(minutes=5 - i)).isoformat(),
                "url": f"https://social.example/{handle.strip('@')}/{run_id}{i}",
            }
            for i, (handle, text, lang, followers) in enumerate(_MENTIONS)
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
                f"{inbox}/api/v1/items",
                # Webhook relays arrive as network "generic"; earlier demo runs' items stay.
                params={"brand_id": BRAND, "network": "generic", "limit": 200},
                headers=auth,
            )
            items = [i for i in page.json()["items"] if i["external_id"] in wanted]
            if len(items) == len(wanted):
                break
            await asyncio.sleep(0.05)
        elapsed = time.monotonic() - started
    typer.echo(f"\nDemo: tenant {TENANT!r}, brand {BRAND!r}, webhook source {source['id']}")
    typer.echo(f"Posted {len(mentions)} signed mentions to ingest: {posted.json()}")
    typer.echo(f"{len(items)} of them are in the inbox after {elapsed:.2f}s, most urgent first:")
    _show(sorted(items, key=lambda i: -i["triage"]["priority"]))
    if len(items) != len(wanted):
        raise typer.Exit(code=1)
    brand_account = await _sandbox_traffic(auth, run_id)
    channel_id = await _scheduled_posts(auth, brand_account)
    await _reply_to_most_urgent(auth, channel_id)
    wait = ANALYTICS_AFTER_S - (time.monotonic() - demo_started)
    if wait > 0:
        typer.echo(f"\nLetting the traffic run {wait:.0f}s more before checking the analytics…")
        await asyncio.sleep(wait)
    if not await analytics_check.check(TENANT, BRAND):
        raise typer.Exit(code=1)
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
        f"{len(seen)} sandbox mentions in the inbox after {time.monotonic() - started:.0f}s;"
        " the top of the agents' view (open items, most urgent first):"
    )
    lags = [
        (datetime.fromisoformat(i["received_at"]) - datetime.fromisoformat(i["created_at"]))
        for i in seen
    ]
    async with httpx.AsyncClient(timeout=10.0) as client:
        top = await client.get(
            f"{inbox}/api/v1/items",
            params={
                "brand_id": BRAND,
                "network": "mastodon",
                "status": ["new", "open"],
                "sort": "priority",
                "limit": 5,
            },
            headers=auth,
        )
        top.raise_for_status()
    _show(top.json()["items"])
    typer.echo(
        f"From the sandbox posting to triaged and assigned in the inbox: median"
        f" {sorted(lags)[len(lags) // 2].total_seconds():.1f}s, at most"
        f" {max(lags).total_seconds():.1f}s (ingest polls every 10 s)."
    )
    typer.echo(f"Stop the traffic: curl -X DELETE {sandbox}/sandbox/traffic\n")
    if not seen:
        raise typer.Exit(code=1)
    return dict(brand_account)


async def _scheduled_posts(auth: dict[str, str], account: dict[str, Any]) -> str:
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
    return str(channel.json()["id"])
