"""The inbox configuration API on the running inbox service: members, teams, rules (versioned,
with a dry run over ingested items), saved replies and brand settings — round trips, refusals
that store nothing, roles and tenant isolation."""

from __future__ import annotations

import time
from typing import Any

import asyncpg
import httpx

from shared.auth import issue_token
from tests.conftest import SessionStack
from tests.support import ServiceProcess, all_items, mention, post_mentions, token, wait_until


def _as(stack: SessionStack, tenant: str, role: str, subject: str | None = None) -> dict[str, str]:
    bearer = issue_token(stack.auth_secret, tenant_id=tenant, role=role, subject=subject)
    return {"Authorization": "Bearer " + bearer}


def _fields(response: httpx.Response) -> list[str]:
    assert response.status_code == 422, response.text
    return [d["field"] for d in response.json()["details"]]


def _rule(rule_id: str, *actions: dict[str, Any], **extra: Any) -> dict[str, Any]:
    return {
        "id": rule_id,
        "actions": list(actions) or [{"type": "add_tag", "tag": rule_id}],
        **extra,
    }


async def _put(http: httpx.AsyncClient, url: str, body: Any, headers: dict[str, str]) -> Any:
    response = await http.put(url, json=body, headers=headers)
    assert response.status_code == 200, response.text
    return response.json()


# --- members -----------------------------------------------------------------------------------


async def test_members_round_trip_with_open_load(
    services: dict[str, ServiceProcess],
    http: httpx.AsyncClient,
    stack: SessionStack,
    tenant: str,
    source: dict[str, Any],
) -> None:
    api = services["inbox"].url + "/api/v1"
    manager = token(stack.auth_secret, tenant, "manager")
    ann = await _put(
        http,
        f"{api}/members/ann",
        {"name": "Ann", "languages": ["en", "pt_br"], "capacity": 5},
        manager,
    )
    assert ann["languages"] == ["en", "pt-BR"]  # BCP 47 tags come back written the standard way
    assert (ann["capacity"], ann["available"], ann["open_items"], ann["teams"]) == (5, True, 0, [])
    await _put(http, f"{api}/members/bob", {"name": "Bob"}, manager)
    await _put(http, f"{api}/teams/care", {"members": ["ann"]}, manager)

    # A new item for the brand is routed to the only team's only member: her load shows.
    await post_mentions(http, services["ingest"].url, source, [mention("load-1", "Hello?")])

    async def loaded() -> dict[str, Any]:
        listed = await http.get(f"{api}/members", headers=manager)
        by_id = {m["id"]: m for m in listed.json()["members"]}
        return by_id if by_id["ann"]["open_items"] == 1 else {}

    members = await wait_until(loaded, what="ann's open load")
    assert members["ann"]["teams"] == ["care"]
    assert members["bob"] == {**members["bob"], "name": "Bob", "open_items": 0, "capacity": 10}

    patched = await http.patch(f"{api}/members/bob", json={"capacity": 0}, headers=manager)
    assert patched.status_code == 200, patched.text
    assert (patched.json()["capacity"], patched.json()["available"]) == (0, True)

    assert (await http.delete(f"{api}/members/bob", headers=manager)).status_code == 204
    assert (await http.get(f"{api}/members/bob", headers=manager)).status_code == 404
    assert (await http.delete(f"{api}/members/bob", headers=manager)).status_code == 404
    missing = await http.patch(f"{api}/members/bob", json={"available": False}, headers=manager)
    assert missing.status_code == 404


async def test_bad_member_is_refused_naming_the_field_and_nothing_changes(
    services: dict[str, ServiceProcess], http: httpx.AsyncClient, stack: SessionStack, tenant: str
) -> None:
    api = services["inbox"].url + "/api/v1"
    admin = token(stack.auth_secret, tenant, "admin")
    assert _fields(await http.put(f"{api}/members/cy", json={"capacity": -1}, headers=admin)) == [
        "capacity"
    ]
    bad_language = await http.put(f"{api}/members/cy", json={"languages": ["xx"]}, headers=admin)
    assert _fields(bad_language) == ["languages.0"]
    assert (await http.get(f"{api}/members/cy", headers=admin)).status_code == 404

    await _put(http, f"{api}/members/cy", {"name": "Cy", "capacity": 3}, admin)
    refused = await http.put(
        f"{api}/members/cy", json={"name": "Cy 2", "languages": ["en", "en"]}, headers=admin
    )
    assert _fields(refused) == ["languages"]
    assert _fields(await http.patch(f"{api}/members/cy", json={}, headers=admin)) == [""]
    stored = (await http.get(f"{api}/members/cy", headers=admin)).json()
    assert (stored["name"], stored["capacity"], stored["languages"]) == ("Cy", 3, [])
    assert _fields(await http.put(f"{api}/members/-cy", json={}, headers=admin)) == [
        "path.member_id"
    ]


async def test_agents_set_their_own_availability_and_nothing_else(
    services: dict[str, ServiceProcess], http: httpx.AsyncClient, stack: SessionStack, tenant: str
) -> None:
    api = services["inbox"].url + "/api/v1"
    admin = token(stack.auth_secret, tenant, "admin")
    await _put(http, f"{api}/members/dee", {"name": "Dee"}, admin)
    await _put(http, f"{api}/members/eve", {"name": "Eve"}, admin)
    dee = _as(stack, tenant, "agent", subject="dee")

    away = await http.patch(f"{api}/members/dee", json={"available": False}, headers=dee)
    assert away.status_code == 200, away.text
    assert away.json()["available"] is False
    others = await http.patch(f"{api}/members/eve", json={"available": False}, headers=dee)
    assert others.status_code == 403
    own_capacity = await http.patch(f"{api}/members/dee", json={"capacity": 99}, headers=dee)
    assert own_capacity.status_code == 403
    assert (await http.put(f"{api}/members/dee", json={}, headers=dee)).status_code == 403
    assert (await http.delete(f"{api}/members/eve", headers=dee)).status_code == 403

    listed = {m["id"]: m for m in (await http.get(f"{api}/members", headers=dee)).json()["members"]}
    assert (listed["dee"]["available"], listed["dee"]["capacity"]) == (False, 10)
    assert listed["eve"]["available"] is True
    approver = token(stack.auth_secret, tenant, "client-approver")
    assert (await http.get(f"{api}/members", headers=approver)).status_code == 403
    assert (await http.get(f"{api}/members")).status_code == 401


# --- teams -------------------------------------------------------------------------------------


async def test_teams_round_trip_replace_membership_and_keep_the_round_robin_pointer(
    services: dict[str, ServiceProcess],
    http: httpx.AsyncClient,
    stack: SessionStack,
    tenant: str,
    admin_db: asyncpg.Connection,
) -> None:
    api = services["inbox"].url + "/api/v1"
    manager = token(stack.auth_secret, tenant, "manager")
    for member in ("ann", "bob", "cy"):
        await _put(http, f"{api}/members/{member}", {}, manager)
    care = await _put(
        http,
        f"{api}/teams/care",
        {"name": "Care", "strategy": "least_loaded", "members": ["cy", "ann"]},
        manager,
    )
    assert (care["brands"], care["members"], care["strategy"]) == (
        None,
        ["cy", "ann"],
        "least_loaded",
    )
    await _put(http, f"{api}/teams/sales", {"brands": ["brand-a"], "members": ["bob"]}, manager)
    teams = (await http.get(f"{api}/teams", headers=manager)).json()["teams"]
    assert [t["id"] for t in teams] == ["care", "sales"]  # oldest first: the routing order
    assert (await http.get(f"{api}/teams/sales", headers=manager)).json()["brands"] == ["brand-a"]

    # A member that does not exist: 422 naming the list position, and the team is as it was.
    unknown = await http.put(f"{api}/teams/care", json={"members": ["ann", "zed"]}, headers=manager)
    assert _fields(unknown) == ["members.1"]
    assert _fields(
        await http.put(f"{api}/teams/care", json={"strategy": "random"}, headers=manager)
    ) == ["strategy"]
    assert _fields(
        await http.put(f"{api}/teams/care", json={"members": ["ann", "ann"]}, headers=manager)
    ) == ["members"]
    assert (await http.get(f"{api}/teams/care", headers=manager)).json() == care

    await admin_db.execute(
        "UPDATE inbox.teams SET last_assigned = 'cy' WHERE tenant_id = $1 AND id = 'care'", tenant
    )
    replaced = await _put(
        http, f"{api}/teams/care", {"name": "Care", "members": ["bob", "cy"]}, manager
    )
    assert (replaced["members"], replaced["strategy"], replaced["last_assigned"]) == (
        ["bob", "cy"],
        "round_robin",
        "cy",
    )
    # Deleting a member takes them out of every team.
    assert (await http.delete(f"{api}/members/cy", headers=manager)).status_code == 204
    assert (await http.get(f"{api}/teams/care", headers=manager)).json()["members"] == ["bob"]

    agent = token(stack.auth_secret, tenant, "agent")
    assert (await http.get(f"{api}/teams/care", headers=agent)).status_code == 200
    assert (await http.put(f"{api}/teams/care", json={}, headers=agent)).status_code == 403
    assert (await http.delete(f"{api}/teams/care", headers=manager)).status_code == 204
    assert (await http.get(f"{api}/teams/care", headers=manager)).status_code == 404
    assert (await http.delete(f"{api}/teams/care", headers=manager)).status_code == 404


# --- rules -------------------------------------------------------------------------------------


async def test_rules_are_versioned_and_if_match_stops_a_lost_update(
    services: dict[str, ServiceProcess], http: httpx.AsyncClient, stack: SessionStack, tenant: str
) -> None:
    api = services["inbox"].url + "/api/v1"
    manager = _as(stack, tenant, "manager", subject="mia")
    empty = await http.get(f"{api}/rules", headers=manager)
    assert empty.json() == {"version": 0, "rules": [], "updated_at": None, "updated_by": None}

    await _put(http, f"{api}/members/ann", {}, manager)
    await _put(http, f"{api}/teams/care", {"members": ["ann"]}, manager)
    rules = [
        _rule(
            "refunds",
            {"type": "assign_team", "team_id": "care"},
            conditions=[{"type": "text_contains_any", "keywords": ["refund"]}],
            stop_processing=True,
        ),
        _rule("vip", {"type": "assign_member", "member_id": "ann"}, name="VIP"),
    ]
    first = await http.put(
        f"{api}/rules", json={"rules": rules}, headers={**manager, "If-Match": "0"}
    )
    assert first.status_code == 200, first.text
    assert first.headers["ETag"] == '"1"'
    assert (first.json()["version"], first.json()["updated_by"]) == (1, "mia")
    stored = await http.get(f"{api}/rules", headers=token(stack.auth_secret, tenant, "agent"))
    assert stored.headers["ETag"] == '"1"'
    assert [r["id"] for r in stored.json()["rules"]] == ["refunds", "vip"]
    assert stored.json()["rules"][0]["conditions"] == rules[0]["conditions"]
    assert stored.json()["rules"][0]["stop_processing"] is True
    assert stored.json()["rules"][1]["name"] == "VIP"

    # Two managers both loaded version 1; the second save is refused and changes nothing.
    await _put(http, f"{api}/rules", {"rules": rules[:1]}, {**manager, "If-Match": '"1"'})
    stale = await http.put(f"{api}/rules", json={"rules": []}, headers={**manager, "If-Match": "1"})
    assert stale.status_code == 412
    assert stale.json()["version"] == 2
    assert [r["id"] for r in (await http.get(f"{api}/rules", headers=manager)).json()["rules"]] == [
        "refunds"
    ]
    bad_header = await http.put(
        f"{api}/rules", json={"rules": []}, headers={**manager, "If-Match": "latest"}
    )
    assert _fields(bad_header) == ["If-Match"]
    # Without If-Match the save is unconditional.
    last = await _put(http, f"{api}/rules", {"rules": []}, manager)
    assert (last["version"], last["rules"]) == (3, [])


async def test_bad_rules_are_refused_naming_the_field_and_nothing_is_stored(
    services: dict[str, ServiceProcess], http: httpx.AsyncClient, stack: SessionStack, tenant: str
) -> None:
    api = services["inbox"].url + "/api/v1"
    admin = token(stack.auth_secret, tenant, "admin")
    await _put(http, f"{api}/rules", {"rules": [_rule("keep")]}, admin)

    async def refused(rules: list[dict[str, Any]]) -> list[str]:
        return _fields(await http.put(f"{api}/rules", json={"rules": rules}, headers=admin))

    bad_priority = _rule("p", {"type": "set_priority", "priority": 101})
    assert await refused([_rule("ok"), bad_priority]) == ["rules.1.actions.0.set_priority.priority"]
    unknown_zone = _rule(
        "tz",
        conditions=[{"type": "time_window", "zone": "Mars/Base", "start": "09:00", "end": "17:00"}],
    )
    assert await refused([unknown_zone]) == ["rules.0.conditions.0.time_window.zone"]
    assert await refused([_rule("a"), _rule("b"), _rule("a")]) == ["rules.2.id"]
    dangling = [
        _rule("t", {"type": "assign_team", "team_id": "ghosts"}),
        _rule(
            "m", {"type": "add_tag", "tag": "x"}, {"type": "assign_member", "member_id": "nobody"}
        ),
        _rule("r", {"type": "auto_reply", "saved_reply_id": "thanks"}),
    ]
    assert await refused(dangling) == [
        "rules.0.actions.0.team_id",
        "rules.1.actions.1.member_id",
        "rules.2.actions.0.saved_reply_id",
    ]
    agent = token(stack.auth_secret, tenant, "agent")
    assert (await http.put(f"{api}/rules", json={"rules": []}, headers=agent)).status_code == 403
    stored = (await http.get(f"{api}/rules", headers=admin)).json()
    assert (stored["version"], [r["id"] for r in stored["rules"]]) == (1, ["keep"])


async def test_what_a_rule_names_cannot_be_deleted_from_under_it(
    services: dict[str, ServiceProcess], http: httpx.AsyncClient, stack: SessionStack, tenant: str
) -> None:
    api = services["inbox"].url + "/api/v1"
    admin = token(stack.auth_secret, tenant, "admin")
    await _put(http, f"{api}/members/ann", {}, admin)
    await _put(http, f"{api}/teams/care", {"members": ["ann"]}, admin)
    await _put(http, f"{api}/saved-replies/thanks", {"name": "Thanks", "text": "Thank you!"}, admin)
    rules = [
        _rule("to-care", {"type": "assign_team", "team_id": "care"}),
        _rule("to-ann", {"type": "assign_member", "member_id": "ann"}),
        _rule("answer", {"type": "auto_reply", "saved_reply_id": "thanks"}),
    ]
    await _put(http, f"{api}/rules", {"rules": rules}, admin)
    for path, rule_id in (
        ("teams/care", "to-care"),
        ("members/ann", "to-ann"),
        ("saved-replies/thanks", "answer"),
    ):
        response = await http.delete(f"{api}/{path}", headers=admin)
        assert response.status_code == 409, response.text
        assert response.json()["rules"] == [rule_id]
        assert (await http.get(f"{api}/{path}", headers=admin)).status_code == 200
    await _put(http, f"{api}/rules", {"rules": []}, admin)
    assert (await http.delete(f"{api}/teams/care", headers=admin)).status_code == 204


async def test_another_tenant_cannot_see_or_change_the_configuration(
    services: dict[str, ServiceProcess], http: httpx.AsyncClient, stack: SessionStack, tenant: str
) -> None:
    api = services["inbox"].url + "/api/v1"
    owner = token(stack.auth_secret, tenant, "admin")
    await _put(http, f"{api}/members/ann", {"name": "Ann"}, owner)
    care = await _put(http, f"{api}/teams/care", {"name": "Care", "members": ["ann"]}, owner)
    await _put(http, f"{api}/saved-replies/thanks", {"name": "Thanks", "text": "Hi"}, owner)
    await _put(
        http,
        f"{api}/rules",
        {"rules": [_rule("r", {"type": "assign_team", "team_id": "care"})]},
        owner,
    )
    await _put(http, f"{api}/brands/brand-a/settings", {"time_zone": "Asia/Tokyo"}, owner)

    intruder = token(stack.auth_secret, tenant + "-b", "admin")
    assert (await http.get(f"{api}/teams", headers=intruder)).json() == {"teams": []}
    assert (await http.get(f"{api}/members", headers=intruder)).json() == {"members": []}
    assert (await http.get(f"{api}/saved-replies", headers=intruder)).json() == {
        "saved_replies": []
    }
    assert (await http.get(f"{api}/rules", headers=intruder)).json()["version"] == 0
    settings = (await http.get(f"{api}/brands/brand-a/settings", headers=intruder)).json()
    assert (settings["stored"], settings["time_zone"]) == (False, "UTC")
    for path in ("teams/care", "members/ann", "saved-replies/thanks"):
        assert (await http.get(f"{api}/{path}", headers=intruder)).status_code == 404
        assert (await http.delete(f"{api}/{path}", headers=intruder)).status_code == 404
    assert (
        await http.patch(f"{api}/members/ann", json={"available": False}, headers=intruder)
    ).status_code == 404
    # The owner's team, member and reply ids mean nothing to the other tenant's rules or teams.
    foreign = await http.put(
        f"{api}/rules",
        json={"rules": [_rule("r", {"type": "assign_team", "team_id": "care"})]},
        headers=intruder,
    )
    assert _fields(foreign) == ["rules.0.actions.0.team_id"]
    assert _fields(
        await http.put(f"{api}/teams/care", json={"members": ["ann"]}, headers=intruder)
    ) == ["members.0"]
    assert (
        await http.delete(f"{api}/brands/brand-a/settings", headers=intruder)
    ).status_code == 404

    assert (await http.get(f"{api}/teams/care", headers=owner)).json() == care
    assert (await http.get(f"{api}/members/ann", headers=owner)).json()["available"] is True
    assert (await http.get(f"{api}/rules", headers=owner)).json()["version"] == 1
    assert (await http.get(f"{api}/brands/brand-a/settings", headers=owner)).json()["stored"]


async def test_dry_run_shows_which_rules_match_recent_items_and_changes_nothing(
    services: dict[str, ServiceProcess],
    http: httpx.AsyncClient,
    stack: SessionStack,
    tenant: str,
    source: dict[str, Any],
    admin_db: asyncpg.Connection,
) -> None:
    api = services["inbox"].url + "/api/v1"
    admin = token(stack.auth_secret, tenant, "admin")
    await post_mentions(
        http,
        services["ingest"].url,
        source,
        [
            mention("dr-1", "I want a REFUND for this broken order", language="en"),
            mention("dr-2", "Love the new colours", language="en"),
            mention("dr-3", "Où est mon remboursement ?", language="fr"),
        ],
    )

    async def three() -> list[dict[str, Any]]:
        items = await all_items(http, services["inbox"].url, admin)
        return items if len(items) == 3 else []

    await wait_until(three, what="three items")
    snapshot = "SELECT * FROM inbox.items WHERE tenant_id = $1 ORDER BY id"
    before = [dict(r) for r in await admin_db.fetch(snapshot, tenant)]
    candidates = [
        _rule(
            "refunds",
            {"type": "add_tag", "tag": "refund"},
            {"type": "set_priority", "priority": 90, "level": "urgent"},
            conditions=[{"type": "text_contains_any", "keywords": ["refund", "remboursement"]}],
        ),
        _rule(
            "french",
            {"type": "add_tag", "tag": "fr"},
            conditions=[{"type": "language_in", "values": ["fr"]}],
        ),
        _rule("other-brand", conditions=[{"type": "brand_in", "values": ["brand-z"]}]),
    ]
    response = await http.post(f"{api}/rules/dry-run", json={"rules": candidates}, headers=admin)
    assert response.status_code == 200, response.text
    body = response.json()
    assert body["version"] is None
    matched = {i["excerpt"]: [m["rule_id"] for m in i["matches"]] for i in body["items"]}
    assert matched == {
        "I want a REFUND for this broken order": ["refunds"],
        "Love the new colours": [],
        "Où est mon remboursement ?": ["refunds", "french"],
    }
    by_excerpt = {i["excerpt"]: i for i in body["items"]}
    refund_actions = by_excerpt["I want a REFUND for this broken order"]["matches"][0]["actions"]
    assert refund_actions == [
        {"type": "add_tag", "tag": "refund"},
        {"type": "set_priority", "priority": 90, "level": "urgent"},
    ]
    assert body["summary"] == {
        "items": 3,
        "items_matched": 2,
        "by_rule": {"refunds": 2, "french": 1},
        "actions": {"add_tag": 3, "set_priority": 2},
    }
    created = [i["created_at"] for i in body["items"]]
    assert created == sorted(created, reverse=True)  # newest first

    newest = await http.post(
        f"{api}/rules/dry-run", json={"rules": candidates, "last": 1}, headers=admin
    )
    assert [i["created_at"] for i in newest.json()["items"]] == created[:1]
    other = await http.post(
        f"{api}/rules/dry-run", json={"rules": candidates, "brand_id": "brand-z"}, headers=admin
    )
    assert other.json()["items"] == []
    assert _fields(await http.post(f"{api}/rules/dry-run", json={"last": 0}, headers=admin)) == [
        "last"
    ]
    assert _fields(
        await http.post(
            f"{api}/rules/dry-run", json={"rules": [_rule("x"), _rule("x")]}, headers=admin
        )
    ) == ["rules.1.id"]

    # With no candidates the stored rules are tried; agents may look too.
    await _put(http, f"{api}/rules", {"rules": candidates[1:2]}, admin)
    stored = await http.post(
        f"{api}/rules/dry-run", json={}, headers=token(stack.auth_secret, tenant, "agent")
    )
    assert stored.status_code == 200, stored.text
    assert stored.json()["version"] == 1
    assert stored.json()["summary"]["by_rule"] == {"french": 1}

    after = [dict(r) for r in await admin_db.fetch(snapshot, tenant)]
    assert after == before
    assert (await http.get(f"{api}/rules", headers=admin)).json()["version"] == 1


async def test_five_thousand_rules_save_quickly_and_dry_run_over_them(
    services: dict[str, ServiceProcess],
    http: httpx.AsyncClient,
    stack: SessionStack,
    tenant: str,
    source: dict[str, Any],
) -> None:
    api = services["inbox"].url + "/api/v1"
    admin = token(stack.auth_secret, tenant, "admin")
    await post_mentions(
        http, services["ingest"].url, source, [mention("big-1", "Where is my refund")]
    )
    await wait_until(lambda: all_items(http, services["inbox"].url, admin), what="the item")
    words = ["refund", "broken", "late", "love", "great", "scam", "help", "price"]
    rules = [
        _rule(
            f"r-{i:04d}",
            {"type": "add_tag", "tag": f"t{i % 50}"},
            {"type": "set_priority", "priority": i % 100},
            conditions=[
                {"type": "brand_in", "values": [f"brand-{i % 200}" if i % 1000 else "brand-a"]},
                {"type": "text_contains_any", "keywords": [words[i % 8], words[(i + 3) % 8]]},
            ],
        )
        for i in range(5000)
    ]
    started = time.monotonic()
    saved = await http.put(f"{api}/rules", json={"rules": rules}, headers=admin)
    elapsed = time.monotonic() - started
    assert saved.status_code == 200, saved.text[:2000]
    assert saved.json()["version"] == 1
    assert elapsed < 1.0, f"saving 5,000 rules took {elapsed:.2f}s"
    stored = (await http.get(f"{api}/rules", headers=admin)).json()
    assert len(stored["rules"]) == 5000
    assert stored["rules"][4321]["id"] == "r-4321"

    # Only every thousandth rule is for brand-a, and each of those looks for "refund".
    dry = await http.post(f"{api}/rules/dry-run", json={}, headers=admin)
    assert dry.status_code == 200, dry.text
    expected = ["r-0000", "r-1000", "r-2000", "r-3000", "r-4000"]
    assert [m["rule_id"] for m in dry.json()["items"][0]["matches"]] == expected
    assert dry.json()["summary"]["actions"] == {"add_tag": 5, "set_priority": 5}


# --- saved replies -----------------------------------------------------------------------------


async def test_saved_replies_round_trip_preview_and_template_checks(
    services: dict[str, ServiceProcess], http: httpx.AsyncClient, stack: SessionStack, tenant: str
) -> None:
    api = services["inbox"].url + "/api/v1"
    manager = token(stack.auth_secret, tenant, "manager")
    text = "Hi {author_name}, sorry about that! {agent} from {brand} will DM you on {network}."
    sorry = await _put(
        http,
        f"{api}/saved-replies/sorry",
        {"name": "Sorry", "text": text, "brand_id": "acme"},
        manager,
    )
    assert sorry["variables"] == ["agent", "author_name", "brand", "network"]
    await _put(
        http, f"{api}/saved-replies/thanks", {"name": "Thanks", "text": "Thank you!"}, manager
    )
    await _put(
        http,
        f"{api}/saved-replies/hola",
        {"name": "Hola", "text": "¡Hola!", "brand_id": "other"},
        manager,
    )

    async def ids(**params: str) -> list[str]:
        response = await http.get(f"{api}/saved-replies", params=params, headers=manager)
        return [r["id"] for r in response.json()["saved_replies"]]

    assert await ids() == ["hola", "sorry", "thanks"]
    assert await ids(brand_id="acme") == ["sorry", "thanks"]  # the brand's own and the shared
    assert (await http.get(f"{api}/saved-replies/sorry", headers=manager)).json() == sorry

    agent = token(stack.auth_secret, tenant, "agent")
    preview = await http.post(
        f"{api}/saved-replies/sorry/preview",
        json={"variables": {"author_name": "Kim", "agent": "Ann", "brand": "ACME"}},
        headers=agent,
    )
    assert preview.status_code == 200, preview.text
    assert preview.json() == {
        "text": "Hi Kim, sorry about that! Ann from ACME will DM you on {network}.",
        "missing": ["network"],
    }
    odd = await http.post(
        f"{api}/saved-replies/sorry/preview", json={"variables": {"mood": "x"}}, headers=agent
    )
    assert _fields(odd) == ["variables"]
    assert "mood" in odd.json()["details"][0]["message"]
    gone = await http.post(f"{api}/saved-replies/nope/preview", json={}, headers=agent)
    assert gone.status_code == 404

    for bad, named in (
        ("Hi {customer}", "{customer}"),
        ("Hi {author_name", "malformed"),
        ("{}", "{}"),
    ):
        refused = await http.put(
            f"{api}/saved-replies/sorry", json={"name": "Sorry", "text": bad}, headers=manager
        )
        assert _fields(refused) == ["text"]
        assert named in refused.json()["details"][0]["message"]
    assert _fields(
        await http.put(f"{api}/saved-replies/new", json={"name": "", "text": "x"}, headers=manager)
    ) == ["name"]
    assert (await http.get(f"{api}/saved-replies/sorry", headers=manager)).json() == sorry
    assert (await http.get(f"{api}/saved-replies/new", headers=manager)).status_code == 404
    assert (
        await http.put(f"{api}/saved-replies/x", json={"name": "x", "text": "x"}, headers=agent)
    ).status_code == 403

    assert (await http.delete(f"{api}/saved-replies/sorry", headers=manager)).status_code == 204
    assert (await http.delete(f"{api}/saved-replies/sorry", headers=manager)).status_code == 404
    assert await ids() == ["hola", "thanks"]


# --- brand settings ----------------------------------------------------------------------------


async def test_brand_settings_defaults_round_trip_and_validation(
    services: dict[str, ServiceProcess], http: httpx.AsyncClient, stack: SessionStack, tenant: str
) -> None:
    url = services["inbox"].url + "/api/v1/brands/acme/settings"
    admin = token(stack.auth_secret, tenant, "admin")
    defaults = (await http.get(url, headers=admin)).json()
    assert defaults["stored"] is False
    assert (defaults["time_zone"], defaults["business_hours"], defaults["holidays"]) == (
        "UTC",
        None,
        [],
    )
    assert defaults["sla"]["targets"]["urgent"] == {
        "first_response_minutes": 30,
        "next_response_minutes": 30,
    }
    assert defaults["sla"]["targets"]["normal"]["first_response_minutes"] == 240

    settings = {
        "time_zone": "Europe/Berlin",
        "business_hours": {
            "mon": [["09:00", "12:30"], ["13:30", "18:00"]],
            "sat": [["10:00", "14:00"]],
        },
        "holidays": ["2026-12-25"],
        "sla": {"targets": {"urgent": {"first_response_minutes": 15, "next_response_minutes": 20}}},
        "vip_authors": ["@bigname"],
    }
    stored = await _put(http, url, settings, admin)
    assert stored["stored"] is True
    assert stored["business_hours"] == settings["business_hours"]  # "HH:MM" in, "HH:MM" out
    assert stored["sla"]["targets"]["urgent"]["first_response_minutes"] == 15
    assert stored["sla"]["targets"]["low"]["first_response_minutes"] == 1440  # left out: default
    again = (await http.get(url, headers=token(stack.auth_secret, tenant, "agent"))).json()
    assert again == stored

    for bad, field in (
        ({"time_zone": "Mars/Olympus_Mons"}, "time_zone"),
        ({"business_hours": {"mon": [["09:00", "13:00"], ["12:00", "18:00"]]}}, "business_hours"),
        ({"business_hours": {"mon": [["18:00", "09:00"]]}}, "business_hours"),
        ({"business_hours": {}}, "business_hours"),
        ({"business_hours": {"mon": [], "tue": []}}, "business_hours"),
        ({"business_hours": {"someday": [["09:00", "17:00"]]}}, "business_hours.someday.[key]"),
        ({"holidays": ["not a date"]}, "holidays.0"),
        ({"colour": "blue"}, "colour"),
    ):
        refused = await http.put(url, json=bad, headers=admin)
        assert field in _fields(refused), (bad, refused.text)
    overlap = await http.put(
        url,
        json={"business_hours": {"fri": [["09:00", "13:00"], ["12:00", "18:00"]]}},
        headers=admin,
    )
    assert "fri" in overlap.json()["details"][0]["message"]
    assert (await http.get(url, headers=admin)).json() == stored
    manager_only = await http.put(url, json={}, headers=token(stack.auth_secret, tenant, "agent"))
    assert manager_only.status_code == 403

    assert (await http.delete(url, headers=admin)).status_code == 204
    back = (await http.get(url, headers=admin)).json()
    assert back == {**defaults, "stored": False}
    assert (await http.delete(url, headers=admin)).status_code == 404
