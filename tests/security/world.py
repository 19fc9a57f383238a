"""Tenant A's resources for the security suite: one of every kind, created through the public APIs,
with recognisable marker texts and secrets that must never leak to another tenant or to storage."""

from __future__ import annotations

import json
import uuid
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from typing import Any

import httpx

from shared.auth import ROLES
from tests.support import ServiceProcess, mention, post_mentions, token, wait_until

# The member id each role's token names as its subject (an agent acts as a member of the inbox).
SUBJECTS = {role: f"{role}-1" for role in ROLES}
DEAD_END = "http://127.0.0.1:9"  # the discard port: a channel that never reaches any network


@dataclass
class World:
    """What exists in tenant A, and how to call the services as any role of A or B."""

    http: httpx.AsyncClient
    urls: dict[str, str]
    secret: str
    tenant: str
    other: str
    brand: str
    marker: str  # in every text tenant A stores; must never reach tenant B
    secrets: list[str]  # plaintext credentials and webhook secrets given to the services
    ids: dict[str, str] = field(default_factory=dict)
    items: dict[str, dict[str, Any]] = field(default_factory=dict)

    def headers(self, role: str, tenant: str | None = None) -> dict[str, str]:
        return token(self.secret, tenant or self.tenant, role, SUBJECTS[role])

    async def call(
        self,
        service: str,
        method: str,
        path: str,
        *,
        role: str = "admin",
        tenant: str | None = None,
        body: Any = None,
        params: dict[str, Any] | None = None,
        content: bytes | None = None,
    ) -> httpx.Response:
        headers = self.headers(role, tenant)
        if content is not None:
            headers["Content-Type"] = "text/csv"
        return await self.http.request(
            method,
            self.urls[service] + "/api/v1" + path,
            json=body if content is None else None,
            content=content,
            params=params,
            headers=headers,
        )

    async def ok(self, service: str, method: str, path: str, **kw: Any) -> Any:
        """Call as A's admin (unless told otherwise) and insist on success."""
        response = await self.call(service, method, path, **kw)
        assert response.status_code < 300, (method, path, response.status_code, response.text)
        return (
            response.json()
            if response.content and "json" in response.headers.get("content-type", "")
            else None
        )

    # --- fresh resources, for operations that consume what they act on -----------------------

    async def new_query(self) -> str:
        body = {"brand_id": self.brand, "name": "q " + self.marker, "expression": self.marker}
        return str((await self.ok("ingest", "POST", "/queries", body=body))["id"])

    async def new_source(self, **extra: Any) -> dict[str, Any]:
        body = {"brand_id": self.brand, "name": "src " + self.marker, **extra}
        return dict(await self.ok("ingest", "POST", "/sources", body=body))

    async def new_brand(self) -> str:
        brand = f"{self.brand}-{uuid.uuid4().hex[:6]}"
        await self.ok("ingest", "POST", "/brands", body={"id": brand, "name": self.marker})
        return brand

    async def new_post(self, status: str = "draft") -> str:
        """A post of A's channel in `status`: draft, approved, scheduled, pending_internal or
        pending_client (the latter two on brands with that approval workflow)."""
        brand = {
            "pending_internal": self.ids["brand_internal"],
            "pending_client": self.ids["brand_client"],
        }.get(status, self.brand)
        channel = self.ids["channel_" + brand]
        body = {
            "brand_id": brand,
            "variants": [{"channel_id": channel, "text": "post " + self.marker}],
            "notes": self.marker,
        }
        post = str((await self.ok("publisher", "POST", "/posts", body=body))["id"])
        if status == "draft":
            return post
        await self.ok("publisher", "POST", f"/posts/{post}/submit")
        if status == "pending_client":
            await self.ok("publisher", "POST", f"/posts/{post}/approve", body={}, role="manager")
        if status == "scheduled":
            await self.ok("publisher", "POST", f"/posts/{post}/schedule", body=self.later())
        return post

    @staticmethod
    def later() -> dict[str, str]:
        return {"at": (datetime.now(UTC) + timedelta(days=30)).isoformat()}


async def build_world(
    http: httpx.AsyncClient, services: dict[str, ServiceProcess], secret: str
) -> World:
    run = uuid.uuid4().hex[:8]
    w = World(
        http=http,
        urls={name: proc.url for name, proc in services.items()},
        secret=secret,
        tenant=f"sec-a-{run}",
        other=f"sec-b-{run}",
        brand=f"acme{run}",
        marker=f"zqxmark{run}",
        secrets=[f"plaintext-{kind}-{run}" for kind in ("pull", "telegram", "channel", "meta")],
    )
    pull_secret, telegram_secret, channel_secret, meta_secret = w.secrets
    await w.ok("ingest", "POST", "/brands", body={"id": w.brand, "name": "brand " + w.marker})
    for flow in ("internal", "client"):
        brand = f"{w.brand}{flow}"
        w.ids[f"brand_{flow}"] = brand
        await w.ok("ingest", "POST", "/brands", body={"id": brand, "name": w.marker})
        approval = "internal" if flow == "internal" else "internal_client"
        await w.ok(
            "publisher",
            "PUT",
            f"/brands/{brand}/publishing",
            body={"timezone": "UTC", "approval": approval},
        )
    await w.ok(
        "publisher", "PUT", f"/brands/{w.brand}/publishing", body={"timezone": "Europe/Berlin"}
    )
    w.ids["query"] = await w.new_query()
    generic = await w.new_source()
    w.ids["source"] = generic["id"]
    w.ids["signing_secret"] = generic["signing_secret"]
    w.secrets.append(generic["signing_secret"])
    pull = await w.new_source(
        kind="pull",
        network="mastodon",
        config={"api_base": DEAD_END, "mode": "notifications"},
        credentials={"access_token": pull_secret},
        interval_s=86_400,
    )
    w.ids["pull_source"] = pull["id"]
    telegram = await w.new_source(
        kind="webhook", network="telegram", secrets={"secret_token": telegram_secret}
    )
    w.ids["telegram_source"] = telegram["id"]
    meta = await w.new_source(kind="webhook", network="meta", secrets={"app_secret": meta_secret})
    w.ids["meta_source"] = meta["id"]
    for brand in (w.brand, w.ids["brand_internal"], w.ids["brand_client"]):
        channel = await w.ok(
            "publisher",
            "POST",
            "/channels",
            body={
                "brand_id": brand,
                "network": "mastodon",
                "name": "chan " + w.marker,
                "config": {"api_base": DEAD_END, "account_id": "1"},
                "credentials": {"access_token": channel_secret},
            },
        )
        w.ids["channel_" + brand] = channel["id"]
    w.ids["channel"] = w.ids["channel_" + w.brand]
    await w.ok(
        "publisher",
        "PUT",
        f"/channels/{w.ids['channel']}/slots",
        body={"slots": [{"weekday": 0, "time": "09:00"}]},
    )
    w.ids["post"] = await w.new_post()
    # The inbox: a member per role subject, a team, rules, a saved reply, brand settings.
    for role, member in SUBJECTS.items():
        await w.ok("inbox", "PUT", f"/members/{member}", body={"name": f"{role} {w.marker}"})
    w.ids["member"] = SUBJECTS["agent"]
    w.ids["team"] = f"team{run}"
    await w.ok(
        "inbox",
        "PUT",
        f"/teams/{w.ids['team']}",
        body={"name": w.marker, "members": [SUBJECTS["agent"]]},
    )
    w.ids["saved_reply"] = f"reply{run}"
    await w.ok(
        "inbox",
        "PUT",
        f"/saved-replies/{w.ids['saved_reply']}",
        body={"name": w.marker, "text": f"Hi {{author_name}}, {w.marker}"},
    )
    await w.ok(
        "inbox",
        "PUT",
        "/rules",
        body={
            "rules": [
                {
                    "id": f"rule{run}",
                    "conditions": [{"type": "text_contains_any", "keywords": [w.marker]}],
                    "actions": [{"type": "add_tag", "tag": w.marker}],
                }
            ]
        },
    )
    await w.ok(
        "inbox",
        "PUT",
        f"/brands/{w.brand}/settings",
        body={"time_zone": "Europe/Berlin", "reply_channels": {"generic": w.ids["channel"]}},
    )
    await w.ok("metrics", "PUT", f"/brands/{w.brand}/reporting", body={"timezone": "Asia/Tokyo"})
    # Inbox items arrive through a signed webhook: one shared, one per role for claims/replies.
    names = ["shared", *ROLES]
    sent = [mention(f"{run}-{n}", f"Help {w.marker} {n}, where is my order?") for n in names]
    response = await post_mentions(http, w.urls["ingest"], generic, sent)
    assert response.status_code == 202, response.text

    async def arrived() -> bool:
        page = await w.ok("inbox", "GET", "/items", params={"limit": 200})
        w.items = {i["external_id"].split("-", 1)[1]: i for i in page["items"]}
        return len(w.items) == len(names)

    await wait_until(arrived, timeout_s=60, what="tenant A's items in the inbox")
    w.ids["item"] = w.items["shared"]["id"]
    w.ids["conversation"] = w.items["shared"]["conversation_id"]
    mentions = await w.ok("ingest", "GET", "/mentions", params={"brand_id": w.brand})
    w.ids["mention"] = mentions["mentions"][0]["mention_id"]
    return w


def leaks(response: httpx.Response, world: World, sent: str) -> list[str]:
    """A's markers and ids in `response` that were not in the request (`sent`) itself."""
    text = response.text
    found = [world.marker] if world.marker in text and world.marker not in sent else []
    found += [s for s in world.secrets if s in text]
    for value in (*world.ids.values(), *(i["id"] for i in world.items.values())):
        if value in text and value not in sent:
            found.append(value)
    return found


def dumps(value: Any) -> str:
    return json.dumps(value, default=str)
