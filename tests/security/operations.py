"""Every API operation of the four services: which roles may call it (read off each route's
`require_role`), and how to make a valid call of it against tenant A's world."""

from __future__ import annotations

import uuid
from collections.abc import Awaitable, Callable
from dataclasses import dataclass, field
from typing import Any

from tests.security.world import SUBJECTS, World

ADMIN = frozenset({"admin"})
WRITERS = frozenset({"admin", "manager"})
EDITORS = WRITERS | {"agent"}
READERS = EDITORS | {"client-approver"}  # ingest, publisher
CLIENT_STAGE = frozenset({"admin", "client-approver"})
INBOX = EDITORS | {"service"}  # the inbox's items and actions; no client-approver
INBOX_SETTINGS_READ = EDITORS
METRICS = READERS | {"service"}
PUBLIC = frozenset({"public"})  # webhooks: no bearer token, the network's signature instead
PERIOD = {"from": "2026-11-01", "to": "2026-11-08"}


@dataclass(frozen=True)
class Call:
    path: str
    body: Any = None
    params: dict[str, Any] = field(default_factory=dict)
    content: bytes | None = None


Build = Callable[[World, str], Awaitable[Call]]


@dataclass(frozen=True)
class Op:
    service: str
    method: str
    path: str  # as in the OpenAPI, without /api/v1
    roles: frozenset[str]  # get a 2xx; every other role gets 403
    build: Build
    variant: str = ""

    @property
    def key(self) -> tuple[str, str, str]:
        return (self.service, self.method, self.path)

    def __str__(self) -> str:
        return f"{self.service} {self.method} {self.path} {self.variant}".strip()


def fixed(path: str, body: Any = None, **params: Any) -> Build:
    """A call whose path names A's resources by `{key}` of `world.ids`."""

    async def build(w: World, role: str) -> Call:
        return Call(render(path, w), render(body, w), render(params, w))

    return build


def item(path: str, body: Any = None, *, own: bool = False) -> Build:
    """A call on an inbox item: the shared one, or (own) one item per role, for claims."""

    async def build(w: World, role: str) -> Call:
        target = w.items[role if own else "shared"]["id"]
        return Call(path.format(item=target), body)

    return build


def with_post(path: str, status: str, body: Any = None) -> Build:
    async def build(w: World, role: str) -> Call:
        return Call(path.format(post=await w.new_post(status)), body)

    return build


async def _brand_delete(w: World, role: str) -> Call:
    return Call(f"/brands/{await w.new_brand()}")


async def _query_delete(w: World, role: str) -> Call:
    return Call(f"/queries/{await w.new_query()}")


async def _source(w: World, role: str) -> Call:
    return Call(f"/sources/{(await w.new_source())['id']}")


async def _pull_source(suffix: str, w: World, body: Any = None) -> Call:
    source = await w.new_source(
        kind="pull",
        network="rss",
        config={"feed_url": "http://127.0.0.1:9/feed.xml"},
        interval_s=86_400,
    )
    return Call(f"/sources/{source['id']}{suffix}", body)


async def _backfill(w: World, role: str) -> Call:
    return await _pull_source("/backfill", w, {"since": "2026-01-01T00:00:00Z"})


async def _release(w: World, role: str) -> Call:
    # The caller's own claim first; a role that may not claim is refused either way.
    target = w.items[role]["id"]
    await w.call("inbox", "POST", f"/items/{target}/claim", role=role)
    return Call(f"/items/{target}/claim")


async def _bulk(w: World, role: str) -> Call:
    return Call(
        "/items/bulk",
        {"item_ids": [w.items["shared"]["id"]], "action": {"type": "tag", "tags": ["bulk"]}},
    )


async def _patch_member(w: World, role: str) -> Call:
    # An agent may set their own availability (and nothing else): the path names the caller.
    return Call(f"/members/{SUBJECTS[role]}", {"available": True})


def fresh_name(path: str, body: Any = None, *, create: Any = None) -> Build:
    """A call on a name of A's inbox settings made just for it (deletes consume theirs)."""

    async def build(w: World, role: str) -> Call:
        name = f"n{uuid.uuid4().hex[:10]}"
        if create is not None:
            await w.ok("inbox", "PUT", path.format(name=name), body=create)
        return Call(path.format(name=name), body)

    return build


async def _rules_put(w: World, role: str) -> Call:
    current = await w.ok("inbox", "GET", "/rules")
    return Call("/rules", {"rules": current["rules"]})


async def _brand_settings_delete(w: World, role: str) -> Call:
    brand = await w.new_brand()
    await w.ok("inbox", "PUT", f"/brands/{brand}/settings", body={"time_zone": "UTC"})
    return Call(f"/brands/{brand}/settings")


async def _slots(w: World, role: str) -> Call:
    # A channel per call: concurrent PUTs of one channel's slots race into a 500 (reported).
    channel = await w.ok(
        "publisher",
        "POST",
        "/channels",
        body={
            "brand_id": w.brand,
            "network": "mastodon",
            "name": "slots",
            "config": {"api_base": "http://127.0.0.1:9"},
        },
    )
    return Call(f"/channels/{channel['id']}/slots", {"slots": [{"weekday": 1, "time": "10:00"}]})


async def _create_post(w: World, role: str) -> Call:
    return Call(
        "/posts",
        {"brand_id": w.brand, "variants": [{"channel_id": w.ids["channel"], "text": "new"}]},
    )


async def _import(w: World, role: str) -> Call:
    csv = f"channel_id,scheduled_at_local,text\n{w.ids['channel']},2027-06-01 10:00,imported\n"
    return Call("/posts/import", content=csv.encode())


async def _webhook(w: World, role: str) -> Call:
    return Call(f"/webhooks/generic/{w.ids['source']}")


def _tz(path: str, **params: Any) -> Build:
    return fixed(path, **PERIOD, **params)


OPERATIONS: tuple[Op, ...] = (
    # ingest
    Op("ingest", "GET", "/brands", READERS, fixed("/brands")),
    Op(
        "ingest",
        "POST",
        "/brands",
        WRITERS,
        lambda w, r: _const(Call("/brands", {"id": f"b{uuid.uuid4().hex[:10]}", "name": "n"})),
    ),
    Op("ingest", "GET", "/brands/{brand_id}", READERS, fixed("/brands/{brand}")),
    Op("ingest", "PATCH", "/brands/{brand_id}", WRITERS, fixed("/brands/{brand}", {})),
    Op("ingest", "DELETE", "/brands/{brand_id}", ADMIN, _brand_delete),
    Op(
        "ingest",
        "POST",
        "/queries/test",
        READERS,
        fixed("/queries/test", {"expression": "order", "samples": [{"text": "my order"}]}),
    ),
    Op(
        "ingest",
        "POST",
        "/queries",
        WRITERS,
        fixed("/queries", {"brand_id": "{brand}", "name": "n", "expression": "shoes"}),
    ),
    Op("ingest", "GET", "/queries", READERS, fixed("/queries")),
    Op("ingest", "GET", "/queries/{query_id}", READERS, fixed("/queries/{query}")),
    Op(
        "ingest",
        "PUT",
        "/queries/{query_id}",
        WRITERS,
        fixed("/queries/{query}", {"name": "n", "expression": "order OR parcel"}),
    ),
    Op("ingest", "DELETE", "/queries/{query_id}", WRITERS, _query_delete),
    Op("ingest", "POST", "/sources", ADMIN, fixed("/sources", {"brand_id": "{brand}"})),
    Op("ingest", "GET", "/sources", WRITERS, fixed("/sources")),
    Op("ingest", "GET", "/sources/{source_id}", WRITERS, fixed("/sources/{source}")),
    Op("ingest", "PATCH", "/sources/{source_id}", ADMIN, fixed("/sources/{source}", {"name": "n"})),
    Op("ingest", "DELETE", "/sources/{source_id}", ADMIN, _source),
    Op(
        "ingest",
        "POST",
        "/sources/{source_id}/pause",
        WRITERS,
        fixed("/sources/{pull_source}/pause"),
    ),
    Op(
        "ingest",
        "POST",
        "/sources/{source_id}/resume",
        WRITERS,
        fixed("/sources/{pull_source}/resume"),
    ),
    Op("ingest", "POST", "/sources/{source_id}/run", WRITERS, fixed("/sources/{pull_source}/run")),
    Op("ingest", "POST", "/sources/{source_id}/backfill", WRITERS, _backfill),
    Op("ingest", "POST", "/webhooks/{network}/{source_id}", PUBLIC, _webhook),
    Op("ingest", "GET", "/webhooks/{network}/{source_id}", PUBLIC, _webhook),
    Op("ingest", "GET", "/mentions", READERS, fixed("/mentions")),
    # publisher
    Op(
        "publisher",
        "PUT",
        "/brands/{brand_id}/publishing",
        ADMIN,
        fixed("/brands/{brand}/publishing", {"timezone": "Europe/Berlin"}),
    ),
    Op(
        "publisher",
        "GET",
        "/brands/{brand_id}/publishing",
        READERS,
        fixed("/brands/{brand}/publishing"),
    ),
    Op("publisher", "GET", "/networks", READERS, fixed("/networks")),
    Op(
        "publisher",
        "POST",
        "/channels",
        ADMIN,
        fixed(
            "/channels",
            {
                "brand_id": "{brand}",
                "network": "mastodon",
                "name": "n",
                "config": {"api_base": "http://127.0.0.1:9"},
            },
        ),
    ),
    Op("publisher", "GET", "/channels", READERS, fixed("/channels")),
    Op("publisher", "PATCH", "/channels/{channel_id}", ADMIN, fixed("/channels/{channel}", {})),
    Op(
        "publisher",
        "POST",
        "/channels/{channel_id}/pause",
        WRITERS,
        fixed("/channels/{channel}/pause"),
    ),
    Op(
        "publisher",
        "POST",
        "/channels/{channel_id}/resume",
        WRITERS,
        fixed("/channels/{channel}/resume"),
    ),
    Op(
        "publisher",
        "PUT",
        "/channels/{channel_id}/slots",
        WRITERS,
        _slots,
    ),
    Op(
        "publisher",
        "GET",
        "/channels/{channel_id}/slots",
        READERS,
        fixed("/channels/{channel}/slots"),
    ),
    Op("publisher", "POST", "/posts", EDITORS, _create_post),
    Op(
        "publisher",
        "POST",
        "/posts/validate",
        READERS,
        fixed(
            "/posts/validate",
            {"brand_id": "{brand}", "variants": [{"channel_id": "{channel}", "text": "hi"}]},
        ),
    ),
    Op("publisher", "POST", "/posts/import", EDITORS, _import),
    Op(
        "publisher",
        "GET",
        "/posts/export",
        READERS,
        fixed("/posts/export", brand_id="{brand}", **PERIOD),
    ),
    Op("publisher", "GET", "/posts", READERS, fixed("/posts")),
    Op("publisher", "DELETE", "/posts/{post_id}", EDITORS, with_post("/posts/{post}", "draft")),
    Op("publisher", "GET", "/posts/{post_id}", READERS, fixed("/posts/{post}")),
    Op(
        "publisher",
        "PATCH",
        "/posts/{post_id}",
        EDITORS,
        with_post("/posts/{post}", "draft", {"notes": "edited"}),
    ),
    Op(
        "publisher",
        "POST",
        "/posts/{post_id}/submit",
        EDITORS,
        with_post("/posts/{post}/submit", "draft"),
    ),
    Op(
        "publisher",
        "POST",
        "/posts/{post_id}/approve",
        WRITERS,
        with_post("/posts/{post}/approve", "pending_internal", {}),
        "internal stage",
    ),
    Op(
        "publisher",
        "POST",
        "/posts/{post_id}/approve",
        CLIENT_STAGE,
        with_post("/posts/{post}/approve", "pending_client", {}),
        "client stage",
    ),
    Op(
        "publisher",
        "POST",
        "/posts/{post_id}/reject",
        WRITERS,
        with_post("/posts/{post}/reject", "pending_internal", {"comment": "no"}),
        "internal stage",
    ),
    Op(
        "publisher",
        "POST",
        "/posts/{post_id}/reject",
        CLIENT_STAGE,
        with_post("/posts/{post}/reject", "pending_client", {"comment": "no"}),
        "client stage",
    ),
    Op(
        "publisher",
        "POST",
        "/posts/{post_id}/schedule",
        EDITORS,
        with_post("/posts/{post}/schedule", "approved", World.later()),
    ),
    Op(
        "publisher",
        "POST",
        "/posts/{post_id}/publish-now",
        EDITORS,
        with_post("/posts/{post}/publish-now", "approved"),
    ),
    Op(
        "publisher",
        "POST",
        "/posts/{post_id}/cancel",
        EDITORS,
        with_post("/posts/{post}/cancel", "scheduled"),
    ),
    Op("publisher", "GET", "/calendar", READERS, fixed("/calendar", brand_id="{brand}", **PERIOD)),
    # inbox: items and actions
    Op("inbox", "GET", "/items", INBOX, fixed("/items")),
    Op("inbox", "GET", "/items/{item_id}", INBOX, item("/items/{item}")),
    Op(
        "inbox",
        "GET",
        "/conversations/{conversation_id}",
        INBOX,
        fixed("/conversations/{conversation}"),
    ),
    Op(
        "inbox",
        "POST",
        "/items/{item_id}/status",
        INBOX,
        item("/items/{item}/status", {"status": "open"}),
    ),
    Op(
        "inbox",
        "POST",
        "/items/{item_id}/assign",
        INBOX,
        item("/items/{item}/assign", {"member_id": SUBJECTS["agent"]}),
    ),
    Op("inbox", "POST", "/items/{item_id}/claim", INBOX, item("/items/{item}/claim", own=True)),
    Op("inbox", "DELETE", "/items/{item_id}/claim", INBOX, _release),
    Op("inbox", "POST", "/items/{item_id}/tags", INBOX, item("/items/{item}/tags", {"add": ["t"]})),
    Op(
        "inbox", "POST", "/items/{item_id}/notes", INBOX, item("/items/{item}/notes", {"text": "n"})
    ),
    Op(
        "inbox",
        "POST",
        "/items/{item_id}/replies",
        INBOX,
        item("/items/{item}/replies", {"text": "We are on it"}, own=True),
    ),
    Op("inbox", "POST", "/items/{item_id}/hide", INBOX, item("/items/{item}/hide", {})),
    Op("inbox", "POST", "/items/bulk", INBOX, _bulk),
    # inbox: settings
    Op("inbox", "GET", "/members", INBOX_SETTINGS_READ, fixed("/members")),
    Op("inbox", "GET", "/members/{member_id}", INBOX_SETTINGS_READ, fixed("/members/{member}")),
    Op(
        "inbox",
        "PUT",
        "/members/{member_id}",
        WRITERS,
        fresh_name("/members/{name}", {"name": "n"}),
    ),
    Op("inbox", "PATCH", "/members/{member_id}", INBOX_SETTINGS_READ, _patch_member),
    Op(
        "inbox",
        "DELETE",
        "/members/{member_id}",
        WRITERS,
        fresh_name("/members/{name}", create={"name": "n"}),
    ),
    Op("inbox", "GET", "/teams", INBOX_SETTINGS_READ, fixed("/teams")),
    Op("inbox", "GET", "/teams/{team_id}", INBOX_SETTINGS_READ, fixed("/teams/{team}")),
    Op("inbox", "PUT", "/teams/{team_id}", WRITERS, fresh_name("/teams/{name}", {"name": "n"})),
    Op(
        "inbox",
        "DELETE",
        "/teams/{team_id}",
        WRITERS,
        fresh_name("/teams/{name}", create={"name": "n"}),
    ),
    Op("inbox", "GET", "/rules", INBOX_SETTINGS_READ, fixed("/rules")),
    Op("inbox", "PUT", "/rules", WRITERS, _rules_put),
    Op("inbox", "POST", "/rules/dry-run", INBOX_SETTINGS_READ, fixed("/rules/dry-run", {})),
    Op("inbox", "GET", "/saved-replies", INBOX_SETTINGS_READ, fixed("/saved-replies")),
    Op(
        "inbox",
        "GET",
        "/saved-replies/{reply_id}",
        INBOX_SETTINGS_READ,
        fixed("/saved-replies/{saved_reply}"),
    ),
    Op(
        "inbox",
        "PUT",
        "/saved-replies/{reply_id}",
        WRITERS,
        fresh_name("/saved-replies/{name}", {"name": "n", "text": "Hello"}),
    ),
    Op(
        "inbox",
        "DELETE",
        "/saved-replies/{reply_id}",
        WRITERS,
        fresh_name("/saved-replies/{name}", create={"name": "n", "text": "Hello"}),
    ),
    Op(
        "inbox",
        "POST",
        "/saved-replies/{reply_id}/preview",
        INBOX_SETTINGS_READ,
        fixed("/saved-replies/{saved_reply}/preview", {"variables": {"author_name": "Al"}}),
    ),
    Op(
        "inbox",
        "GET",
        "/brands/{brand_id}/settings",
        INBOX_SETTINGS_READ,
        fixed("/brands/{brand}/settings"),
    ),
    Op(
        "inbox",
        "PUT",
        "/brands/{brand_id}/settings",
        WRITERS,
        fixed(
            "/brands/{brand}/settings",
            {"time_zone": "Europe/Berlin", "reply_channels": {"generic": "{channel}"}},
        ),
    ),
    Op("inbox", "DELETE", "/brands/{brand_id}/settings", WRITERS, _brand_settings_delete),
    # metrics
    Op(
        "metrics",
        "GET",
        "/brands/{brand_id}/reporting",
        METRICS,
        fixed("/brands/{brand}/reporting"),
    ),
    Op(
        "metrics",
        "PUT",
        "/brands/{brand_id}/reporting",
        WRITERS,
        fixed("/brands/{brand}/reporting", {"timezone": "Asia/Tokyo"}),
    ),
    Op("metrics", "GET", "/brands/{brand_id}/series", METRICS, _tz("/brands/{brand}/series")),
    Op("metrics", "GET", "/brands/{brand_id}/top", METRICS, _tz("/brands/{brand}/top")),
    Op("metrics", "GET", "/brands/{brand_id}/top-posts", METRICS, _tz("/brands/{brand}/top-posts")),
    Op(
        "metrics",
        "GET",
        "/brands/{brand_id}/share-of-voice",
        METRICS,
        _tz("/brands/{brand}/share-of-voice"),
    ),
    Op("metrics", "GET", "/brands/{brand_id}/responses", METRICS, _tz("/brands/{brand}/responses")),
    Op("metrics", "GET", "/brands/{brand_id}/backlog", METRICS, fixed("/brands/{brand}/backlog")),
    Op(
        "metrics",
        "GET",
        "/brands/{brand_id}/publishing",
        METRICS,
        _tz("/brands/{brand}/publishing"),
    ),
    Op(
        "metrics",
        "GET",
        "/brands/{brand_id}/engagement",
        METRICS,
        _tz("/brands/{brand}/engagement"),
    ),
    Op("metrics", "GET", "/brands/{brand_id}/audience", METRICS, _tz("/brands/{brand}/audience")),
    Op("metrics", "GET", "/brands/{brand_id}/report", METRICS, _tz("/brands/{brand}/report")),
)


async def _const(call: Call) -> Call:
    return call


def render(value: Any, w: World) -> Any:
    """`{key}` placeholders in a body or params replaced by A's ids."""
    if isinstance(value, str):
        return value.format(**w.ids, brand=w.brand) if "{" in value else value
    if isinstance(value, dict):
        return {k: render(v, w) for k, v in value.items()}
    if isinstance(value, list):
        return [render(v, w) for v in value]
    return value
