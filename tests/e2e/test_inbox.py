"""The inbox on the real stack: webhook mentions in through ingest, conversations and actions
through the inbox API, replies out through the publisher to the sandbox network, events on Kafka."""

from __future__ import annotations

import asyncio
import uuid
from datetime import UTC, datetime, timedelta
from typing import Any

import httpx
import pytest

from shared.topics import INBOX
from tests.conftest import SessionStack
from tests.support import ServiceProcess, events_for, mention, post_mentions, token, wait_until

Json = dict[str, Any]


def at(minute: int) -> str:
    """Creation times in order, for threads whose order matters."""
    return (datetime(2026, 11, 2, 12, tzinfo=UTC) + timedelta(minutes=minute)).isoformat()


@pytest.fixture
def inbox(services: dict[str, ServiceProcess]) -> str:
    return services["inbox"].url + "/api/v1"


@pytest.fixture
def admin(stack: SessionStack, tenant: str) -> dict[str, str]:
    return token(stack.auth_secret, tenant, "admin")


def agent(stack: SessionStack, tenant: str, name: str) -> dict[str, str]:
    return token(stack.auth_secret, tenant, "agent", subject=name)


async def _items(
    http: httpx.AsyncClient, inbox: str, who: dict[str, str], **params: Any
) -> list[Json]:
    r = await http.get(f"{inbox}/items", params={"limit": 200, **params}, headers=who)
    assert r.status_code == 200, r.text
    return list(r.json()["items"])


async def _arrived(
    http: httpx.AsyncClient, inbox: str, who: dict[str, str], external_ids: set[str]
) -> dict[str, Json]:
    async def seen() -> dict[str, Json]:
        items = {i["external_id"]: i for i in await _items(http, inbox, who)}
        return items if external_ids <= items.keys() else {}

    return await wait_until(seen, timeout_s=15, what=f"items {sorted(external_ids)}")


async def _post(
    http: httpx.AsyncClient, services: dict[str, ServiceProcess], source: Json, *mentions: Json
) -> None:
    r = await post_mentions(http, services["ingest"].url, source, list(mentions))
    assert r.status_code == 202, r.text


async def _conversation(http: httpx.AsyncClient, inbox: str, who: dict[str, str], cid: str) -> Json:
    r = await http.get(f"{inbox}/conversations/{cid}", headers=who)
    assert r.status_code == 200, r.text
    return dict(r.json())


async def _configure(
    http: httpx.AsyncClient,
    inbox: str,
    admin: dict[str, str],
    *,
    members: list[str],
    strategy: str = "round_robin",
    capacity: int = 10,
    settings: Json | None = None,
    team: str = "care",
) -> None:
    for m in members:
        r = await http.put(
            f"{inbox}/members/{m}",
            json={"name": m, "languages": ["en"], "capacity": capacity},
            headers=admin,
        )
        assert r.status_code in (200, 201), r.text
    r = await http.put(
        f"{inbox}/teams/{team}",
        json={"name": team, "strategy": strategy, "brands": None, "members": members},
        headers=admin,
    )
    assert r.status_code in (200, 201), r.text
    if settings is not None:
        r = await http.put(f"{inbox}/brands/brand-a/settings", json=settings, headers=admin)
        assert r.status_code == 200, r.text


async def test_a_thread_is_one_conversation_that_reopens_when_the_author_writes_again(
    services: dict[str, ServiceProcess],
    http: httpx.AsyncClient,
    inbox: str,
    admin: dict[str, str],
    source: Json,
    stack: SessionStack,
    tenant: str,
) -> None:
    await _post(
        http, services, source, mention("t-1", "Where is my order? It is late.", created_at=at(1))
    )
    await _post(
        http, services, source, mention("t-2", "Hello?", in_reply_to="t-1", created_at=at(2))
    )
    items = await _arrived(http, inbox, admin, {"t-1", "t-2"})
    cid = items["t-1"]["conversation_id"]
    assert items["t-2"]["conversation_id"] == cid
    detail = await _conversation(http, inbox, admin, cid)
    conv = detail["conversation"]
    assert [i["external_id"] for i in detail["items"]] == ["t-1", "t-2"]
    assert conv["status"] == "new"
    assert conv["item_count"] == 2
    # The default policy (no brand settings): a first response is due, counted around the clock.
    assert conv["sla_state"] == "ok"
    assert conv["sla_kind"] == "first"
    assert items["t-1"]["due_at"] == conv["due_at"] is not None

    r = await http.post(
        f"{inbox}/items/{items['t-1']['id']}/status", json={"status": "closed"}, headers=admin
    )
    assert r.status_code == 200, r.text
    assert r.json()["status"] == "closed"
    assert r.json()["due_at"] is None
    for i in await _items(http, inbox, admin):
        assert i["status"] == "closed"

    await _post(
        http,
        services,
        source,
        mention("t-3", "Still nothing arrived", in_reply_to="t-2", created_at=at(3)),
    )

    async def reopened() -> Json:
        c = (await _conversation(http, inbox, admin, cid))["conversation"]
        return c if c["status"] == "open" else {}

    conv = await wait_until(reopened, timeout_s=15, what="the conversation to reopen")
    assert conv["item_count"] == 3
    assert conv["sla_state"] == "ok"
    activity = (await _conversation(http, inbox, admin, cid))["activity"]
    assert any(
        a["kind"] == "status_changed" and a["detail"].get("reason") == "the author wrote again"
        for a in activity
    )
    events = await events_for(stack.bootstrap, stack.topic(INBOX.name), tenant, 5)
    kinds = [e["type"] for e in events]
    assert kinds.count("item.created") == 3
    # The triage travels with the item's creation: one event per new item, not two.
    assert "item.triaged" not in kinds
    created = [e["payload"] for e in events if e["type"] == "item.created"]
    assert all(c["sentiment"] and c["intent"] and c["reason"] for c in created)
    changes = [e["payload"] for e in events if e["type"] == "item.status_changed"]
    assert [(c["previous_status"], c["status"]) for c in changes][:2] == [
        ("new", "closed"),
        ("closed", "open"),
    ]


async def test_snooze_wakes_the_conversation_and_bad_actions_change_nothing(
    services: dict[str, ServiceProcess],
    http: httpx.AsyncClient,
    inbox: str,
    admin: dict[str, str],
    source: Json,
) -> None:
    await _post(http, services, source, mention("s-1", "Do you ship to Norway?"))
    item = (await _arrived(http, inbox, admin, {"s-1"}))["s-1"]
    url = f"{inbox}/items/{item['id']}/status"
    past = (datetime.now(UTC) - timedelta(minutes=1)).isoformat()
    for body in (
        {"status": "snoozed"},
        {"status": "snoozed", "snoozed_until": past},
        {"status": "archived"},
        {"status": "closed", "colour": "red"},
    ):
        r = await http.post(url, json=body, headers=admin)
        assert r.status_code == 422, (body, r.text)
    assert (await _items(http, inbox, admin))[0]["status"] == "new"
    r = await http.post(
        f"{inbox}/items/{uuid.uuid4()}/status", json={"status": "closed"}, headers=admin
    )
    assert r.status_code == 404

    until = datetime.now(UTC) + timedelta(seconds=2)
    r = await http.post(
        url, json={"status": "snoozed", "snoozed_until": until.isoformat()}, headers=admin
    )
    assert r.status_code == 200, r.text
    assert r.json()["status"] == "snoozed", r.text

    async def awake() -> Json:
        i = (await _items(http, inbox, admin))[0]
        return i if i["status"] == "open" else {}

    await wait_until(awake, timeout_s=15, what="the snooze to end")


async def test_tags_notes_and_bulk_actions(
    services: dict[str, ServiceProcess],
    http: httpx.AsyncClient,
    inbox: str,
    admin: dict[str, str],
    source: Json,
) -> None:
    await _post(
        http, services, source, *(mention(f"b-{n}", f"Question number {n}?") for n in range(3))
    )
    items = await _arrived(http, inbox, admin, {"b-0", "b-1", "b-2"})
    first = items["b-0"]["id"]
    r = await http.post(
        f"{inbox}/items/{first}/tags", json={"add": ["vip", "shipping"]}, headers=admin
    )
    assert r.status_code == 200, r.text
    assert r.json()["tags"] == ["vip", "shipping"], r.text
    r = await http.post(f"{inbox}/items/{first}/tags", json={"remove": ["vip"]}, headers=admin)
    assert r.json()["tags"] == ["shipping"]
    assert [i["external_id"] for i in await _items(http, inbox, admin, tag="shipping")] == ["b-0"]
    r = await http.post(
        f"{inbox}/items/{first}/notes", json={"text": "VIP, be quick"}, headers=admin
    )
    assert r.status_code == 201, r.text
    detail = await _conversation(http, inbox, admin, items["b-0"]["conversation_id"])
    assert [n["text"] for n in detail["notes"]] == ["VIP, be quick"]

    missing = str(uuid.uuid4())
    r = await http.post(
        f"{inbox}/items/bulk",
        json={
            "item_ids": [i["id"] for i in items.values()] + [missing],
            "action": {"type": "close"},
        },
        headers=admin,
    )
    assert r.status_code == 200, r.text
    assert r.json()["done"] == 3
    assert [x for x in r.json()["results"] if not x["ok"]] == [
        {"item_id": missing, "ok": False, "error": f"no item {missing}"}
    ]
    assert {i["status"] for i in await _items(http, inbox, admin)} == {"closed"}
    r = await http.post(
        f"{inbox}/items/bulk",
        json={"item_ids": [first], "action": {"type": "tag", "tags": []}},
        headers=admin,
    )
    assert r.status_code == 422


async def test_claims_keep_two_agents_from_answering_the_same_item(
    services: dict[str, ServiceProcess],
    http: httpx.AsyncClient,
    inbox: str,
    admin: dict[str, str],
    source: Json,
    stack: SessionStack,
    tenant: str,
) -> None:
    await _post(http, services, source, mention("c-1", "Can I change my delivery address?"))
    item = (await _arrived(http, inbox, admin, {"c-1"}))["c-1"]
    ann, bob = agent(stack, tenant, "ann"), agent(stack, tenant, "bob")
    claim = f"{inbox}/items/{item['id']}/claim"
    r = await http.post(claim, headers=ann)
    assert r.status_code == 200, r.text
    assert r.json()["outcome"] == "claimed", r.text
    assert (await _items(http, inbox, admin))[0]["status"] == "open"  # someone is on it
    # Both at once: exactly one of them holds it.
    results = await asyncio.gather(http.post(claim, headers=bob), http.post(claim, headers=ann))
    assert [x.status_code for x in results] == [409, 200]
    assert results[0].json()["claimed_by"] == "ann"
    assert results[1].json()["outcome"] == "renewed"
    channel = str(uuid.uuid4())
    r = await http.post(
        f"{inbox}/items/{item['id']}/replies",
        json={"text": "Sure!", "channel_id": channel},
        headers=bob,
    )
    assert r.status_code == 409
    assert r.json()["claimed_by"] == "ann"
    assert (await http.delete(claim, headers=bob)).status_code == 409
    assert (await http.delete(claim, headers=ann)).status_code == 200
    r = await http.post(claim, headers=bob)
    assert r.status_code == 200
    assert r.json()["claimed_by"] == "bob"
    # A manager frees an item someone left claimed.
    manager = token(stack.auth_secret, tenant, "manager")
    assert (await http.delete(claim, headers=manager)).status_code == 200
    assert (await _items(http, inbox, admin))[0]["claimed_by"] is None


async def test_other_tenants_cannot_see_or_touch_items(
    services: dict[str, ServiceProcess],
    http: httpx.AsyncClient,
    inbox: str,
    admin: dict[str, str],
    source: Json,
    stack: SessionStack,
) -> None:
    await _post(http, services, source, mention("x-1", "Mine, not yours"))
    item = (await _arrived(http, inbox, admin, {"x-1"}))["x-1"]
    other = token(stack.auth_secret, "tenant-other", "admin")
    assert await _items(http, inbox, other) == []
    for method, path, body in (
        ("GET", f"/items/{item['id']}", None),
        ("GET", f"/conversations/{item['conversation_id']}", None),
        ("POST", f"/items/{item['id']}/status", {"status": "closed"}),
        ("POST", f"/items/{item['id']}/claim", None),
        ("POST", f"/items/{item['id']}/tags", {"add": ["x"]}),
        ("POST", f"/items/{item['id']}/notes", {"text": "x"}),
        ("POST", f"/items/{item['id']}/assign", {"member_id": "x"}),
    ):
        r = await http.request(method, inbox + path, json=body, headers=other)
        assert r.status_code == 404, (path, r.text)
    assert (await _items(http, inbox, admin))[0]["status"] == "new"


async def test_list_filters_sorts_and_pages(
    services: dict[str, ServiceProcess],
    http: httpx.AsyncClient,
    inbox: str,
    admin: dict[str, str],
    source: Json,
) -> None:
    await _post(
        http,
        services,
        source,
        mention("f-1", "This is a scam, I want a refund now! Worst service ever 😡"),
        mention("f-2", "Love it, thank you so much! 😍"),
        mention("f-3", "Does the winter jacket come in blue?", language="en"),
        mention("f-4", "Где мой заказ? Уже неделю жду!", language="ru"),
    )
    await _arrived(http, inbox, admin, {"f-1", "f-2", "f-3", "f-4"})
    by_priority = await _items(http, inbox, admin, sort="priority")
    assert by_priority[0]["external_id"] == "f-1"
    assert by_priority[0]["triage"]["level"] in ("urgent", "high")
    priorities = [i["triage"]["priority"] for i in by_priority]
    assert priorities == sorted(priorities, reverse=True)
    assert {i["external_id"] for i in await _items(http, inbox, admin, sentiment="negative")} >= {
        "f-1"
    }
    assert [i["external_id"] for i in await _items(http, inbox, admin, language="ru")] == ["f-4"]
    assert [i["external_id"] for i in await _items(http, inbox, admin, q="jacket")] == ["f-3"]
    assert "f-3" in {i["external_id"] for i in await _items(http, inbox, admin, intent="question")}
    assert len(await _items(http, inbox, admin, status=["new", "open"])) == 4
    assert await _items(http, inbox, admin, status="closed") == []
    assert len(await _items(http, inbox, admin, assignee_id="none")) == 4
    # The soonest due first: the urgent complaint's answer is due before the praise's.
    by_due = await _items(http, inbox, admin, sort="due")
    dues = [i["due_at"] for i in by_due]
    assert dues == sorted(dues)
    assert by_due.index(next(i for i in by_due if i["external_id"] == "f-1")) < by_due.index(
        next(i for i in by_due if i["external_id"] == "f-2")
    )
    # Keyset pages of one, in every sort, add up to the whole list with no repeats.
    for sort in ("newest", "priority", "due"):
        seen: list[str] = []
        cursor = None
        while True:
            params: dict[str, Any] = {"sort": sort, "limit": 1}
            if cursor:
                params["cursor"] = cursor
            page = (await http.get(f"{inbox}/items", params=params, headers=admin)).json()
            seen += [i["external_id"] for i in page["items"]]
            cursor = page["next_cursor"]
            if not cursor:
                break
        assert sorted(seen) == ["f-1", "f-2", "f-3", "f-4"], sort
    r = await http.get(f"{inbox}/items", params={"sort": "due", "cursor": "bm9wZQ"}, headers=admin)
    assert r.status_code == 422
    assert r.json()["error"] == "invalid_cursor"
    r = await http.get(f"{inbox}/items", params={"status": "archived"}, headers=admin)
    assert r.status_code == 422


async def test_assignment_round_robin_rules_and_sla_escalation(
    services: dict[str, ServiceProcess],
    http: httpx.AsyncClient,
    inbox: str,
    admin: dict[str, str],
    source: Json,
    stack: SessionStack,
    tenant: str,
) -> None:
    fast = {"first_response_minutes": 0.05, "next_response_minutes": 0.05}
    await _configure(
        http,
        inbox,
        admin,
        members=["ann", "bob"],
        settings={
            "sla": {"targets": {level: fast for level in ("urgent", "high", "normal", "low")}}
        },
    )
    r = await http.put(
        f"{inbox}/rules",
        json={
            "rules": [
                {
                    "id": "refunds",
                    "conditions": [{"type": "text_contains_any", "keywords": ["refund"]}],
                    "actions": [
                        {"type": "add_tag", "tag": "refund"},
                        {"type": "set_priority", "priority": 90},
                    ],
                }
            ]
        },
        headers=admin,
    )
    assert r.status_code == 200, r.text
    await _post(
        http,
        services,
        source,
        *(mention(f"r-{n}", f"Question {n}: when do you open?") for n in range(4)),
    )
    await _post(http, services, source, mention("r-refund", "I need a refund for my order"))
    items = await _arrived(http, inbox, admin, {"r-0", "r-1", "r-2", "r-3", "r-refund"})
    refund = items["r-refund"]
    assert refund["tags"] == ["refund"]
    assert refund["rule_ids"] == ["refunds"]
    assert refund["triage"]["priority"] == 90
    assert refund["triage"]["level"] == "urgent"
    assert refund["triage"]["signals"][0]["name"] == "rule"
    owners = [i["assignee_id"] for i in items.values()]
    assert sorted(owners) == ["ann", "ann", "ann", "bob", "bob"]  # fair: 3 and 2 in turn
    assert all(i["team_id"] == "care" for i in items.values())
    mine = await _items(http, inbox, agent(stack, tenant, "ann"), assignee_id="me")
    assert {i["assignee_id"] for i in mine} == {"ann"}
    assert len(mine) == 3

    # 3 seconds later every first response is overdue: breached, one level up, handed over.
    async def breached() -> dict[str, Json]:
        now = {i["external_id"]: i for i in await _items(http, inbox, admin)}
        return now if all(i["sla_state"] == "breached" for i in now.values()) else {}

    after = await wait_until(breached, timeout_s=20, what="every SLA to breach")
    for ext, before in items.items():
        assert after[ext]["assignee_id"] != before["assignee_id"], ext
    assert after["r-0"]["triage"]["level"] == "high"  # normal -> high
    events = await events_for(stack.bootstrap, stack.topic(INBOX.name), tenant, 5 * 5)
    kinds = [e["type"] for e in events]
    assert kinds.count("item.sla_breached") == 5
    assert kinds.count("item.sla_near_breach") >= 1
    assert kinds.count("item.assigned") >= 10  # first routing, then the escalation


async def test_a_reply_goes_out_through_the_publisher_and_its_outcome_comes_back(
    services: dict[str, ServiceProcess],
    sandbox: str,
    http: httpx.AsyncClient,
    inbox: str,
    admin: dict[str, str],
    source: Json,
    stack: SessionStack,
    tenant: str,
) -> None:
    publisher = services["publisher"].url
    brand = await http.post(
        f"{sandbox}/sandbox/accounts", json={"username": f"brand_{uuid.uuid4().hex[:8]}"}
    )
    fan = await http.post(
        f"{sandbox}/sandbox/accounts", json={"username": f"fan_{uuid.uuid4().hex[:8]}"}
    )
    brand_account, fan_account = brand.json(), fan.json()
    status = await http.post(
        f"{sandbox}/api/v1/statuses",
        data={"status": "@brand where is my parcel?"},
        headers={"Authorization": f"Bearer {fan_account['access_token']}"},
    )
    assert status.status_code == 200, status.text
    r = await http.put(
        f"{publisher}/api/v1/brands/brand-a/publishing", json={"timezone": "UTC"}, headers=admin
    )
    assert r.status_code == 200, r.text
    r = await http.post(
        f"{publisher}/api/v1/channels",
        json={
            "brand_id": "brand-a",
            "network": "mastodon",
            "name": "Brand A on the sandbox",
            "config": {"api_base": sandbox, "account_id": brand_account["id"]},
            "credentials": {"access_token": brand_account["access_token"]},
        },
        headers=admin,
    )
    assert r.status_code == 201, r.text
    channel = r.json()["id"]
    await _configure(
        http, inbox, admin, members=["ann"], settings={"reply_channels": {"generic": channel}}
    )
    r = await http.put(
        f"{inbox}/saved-replies/parcel",
        json={"name": "Parcel", "text": "Hi {author_name}, {agent} from {brand} is on it!"},
        headers=admin,
    )
    assert r.status_code in (200, 201), r.text
    await _post(http, services, source, mention(status.json()["id"], "where is my parcel?"))
    await _post(http, services, source, mention("ghost-1", "reply to a status that is gone"))
    items = await _arrived(http, inbox, admin, {status.json()["id"], "ghost-1"})
    item, ghost = items[status.json()["id"]], items["ghost-1"]

    ann = agent(stack, tenant, "ann")
    r = await http.post(
        f"{inbox}/items/{item['id']}/replies", json={"saved_reply_id": "parcel"}, headers=ann
    )
    assert r.status_code == 202, r.text
    assert r.json()["status"] == "requested"
    assert r.json()["text"] == f"Hi fan_{status.json()['id']}, ann from brand-a is on it!"
    r = await http.post(
        f"{inbox}/items/{ghost['id']}/replies", json={"text": "Hello!"}, headers=ann
    )
    assert r.status_code == 202, r.text

    async def settled() -> dict[str, Json]:
        got = {}
        for i in (item, ghost):
            d = (await http.get(f"{inbox}/items/{i['id']}", headers=ann)).json()
            if d["replies"][0]["status"] == "requested":
                return {}
            got[i["external_id"]] = d
        return got

    done = await wait_until(settled, timeout_s=30, what="both replies to settle")
    ok, failed = done[item["external_id"]], done["ghost-1"]
    assert ok["replies"][0]["status"] == "published"
    assert ok["replies"][0]["external_id"]
    assert ok["conversation"]["first_response_s"] is not None
    assert ok["conversation"]["sla_state"] == "met"
    assert ok["conversation"]["status"] == "pending"
    context = await http.get(f"{sandbox}/api/v1/statuses/{status.json()['id']}/context")
    assert ok["replies"][0]["external_id"] in {s["id"] for s in context.json()["descendants"]}
    assert failed["replies"][0]["status"] == "failed"
    assert failed["replies"][0]["error"]
    assert failed["conversation"]["status"] == "open"  # back in the queue, with why on the item
    events = await events_for(stack.bootstrap, stack.topic(INBOX.name), tenant, 10)
    replied = [e["payload"] for e in events if e["type"] == "item.replied"]
    assert replied
    assert replied[0]["reply_external_id"] == ok["replies"][0]["external_id"]
    assert replied[0]["first_response_s"] == ok["conversation"]["first_response_s"]
    assert replied[0]["response_kind"] == "first"
    assert 0 <= replied[0]["response_s"] <= replied[0]["first_response_s"] + 1
    assert replied[0]["sla_state"] == "met"


async def test_a_team_queue_drains_when_someone_has_room_or_an_agent_leaves(
    services: dict[str, ServiceProcess],
    http: httpx.AsyncClient,
    inbox: str,
    admin: dict[str, str],
    source: Json,
) -> None:
    await _configure(http, inbox, admin, members=["ann"], capacity=1)
    await _post(http, services, source, mention("q-0", "First question?", created_at=at(1)))
    await _arrived(http, inbox, admin, {"q-0"})
    await _post(http, services, source, mention("q-1", "Second question?", created_at=at(2)))
    items = await _arrived(http, inbox, admin, {"q-0", "q-1"})
    assert items["q-0"]["assignee_id"] == "ann"
    # Ann is full: the second waits in the team's queue.
    assert items["q-1"]["assignee_id"] is None
    assert items["q-1"]["team_id"] == "care"
    waiting = await _items(http, inbox, admin, assignee_id="none", team_id="care")
    assert [i["external_id"] for i in waiting] == ["q-1"]

    r = await http.post(
        f"{inbox}/items/{items['q-0']['id']}/status", json={"status": "closed"}, headers=admin
    )
    assert r.status_code == 200, r.text

    async def owner_of_q1() -> str | None:
        now = {i["external_id"]: i for i in await _items(http, inbox, admin)}
        owner: str | None = now["q-1"]["assignee_id"]
        return owner

    assert await wait_until(owner_of_q1, timeout_s=15, what="ann to get q-1") == "ann"

    # Ann leaves: her open conversation goes to the rest of the team.
    await _configure(http, inbox, admin, members=["ann", "bob"])
    assert (await http.delete(f"{inbox}/members/ann", headers=admin)).status_code in (200, 204)

    async def bob_has_it() -> bool:
        return await owner_of_q1() == "bob"

    await wait_until(bob_has_it, timeout_s=15, what="bob to take over q-1")
