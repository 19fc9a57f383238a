"""Tenant isolation over every operation: tenant B's admin, calling with tenant A's ids, gets what
it would get for ids that exist nowhere (404 wherever an id is in the path), never A's data, and
A's resources are unchanged afterwards."""

from __future__ import annotations

import json
import uuid
from typing import Any

from tests.security.operations import OPERATIONS, PUBLIC, Call
from tests.security.world import World, dumps, leaks

SNAPSHOTS = (
    ("ingest", "/brands/{brand}"),
    ("ingest", "/queries/{query}"),
    ("ingest", "/sources/{source}"),
    ("publisher", "/brands/{brand}/publishing"),
    ("publisher", "/channels"),
    ("publisher", "/posts/{post}"),
    ("inbox", "/items/{item}"),
    ("inbox", "/members"),
    ("inbox", "/teams"),
    ("inbox", "/rules"),
    ("inbox", "/saved-replies"),
    ("inbox", "/brands/{brand}/settings"),
    ("metrics", "/brands/{brand}/reporting"),
)


async def _snapshot(world: World) -> dict[str, Any]:
    shots: dict[str, Any] = {}
    for service, path in SNAPSHOTS:
        concrete = path.format(**world.ids, brand=world.brand)
        shot = await world.ok(service, "GET", concrete)
        shot.pop("lag_seconds", None)  # time since the newest item: grows by itself
        rows = next(iter(shot.values())) if len(shot) == 1 else None
        if isinstance(rows, list):
            # Lists by id: the suite's own set-up adds rows to A while it runs; B must change none.
            shot = {row["id"]: row for row in rows}
        shots[service + concrete] = shot
    return shots


def _unchanged(before: dict[str, Any], after: dict[str, Any]) -> list[str]:
    changed = []
    for key, shot in before.items():
        if "id" in shot:
            if after[key] != shot:
                changed.append(key)
        else:
            changed += [f"{key} {row}" for row in shot if after[key].get(row) != shot[row]]
    return changed


def _elsewhere(call: Call, world: World) -> Call:
    """The same call with each of A's ids swapped for one that exists in no tenant."""
    text = dumps({"path": call.path, "body": call.body, "params": call.params})
    values = {*world.ids.values(), world.brand, *(i["id"] for i in world.items.values())}
    for value in sorted(values, key=len, reverse=True):
        if value in text:
            try:
                uuid.UUID(value)
                fresh = str(uuid.uuid4())
            except ValueError:
                fresh = "x" + uuid.uuid4().hex[:10]
            text = text.replace(value, fresh)
    swapped = json.loads(text)
    return Call(swapped["path"], swapped["body"], swapped["params"], call.content)


def _has_uuid(path: str, world: World) -> bool:
    for part in path.split("/"):
        try:
            uuid.UUID(part)
        except ValueError:
            continue
        return True
    return False


async def test_another_tenant_gets_nothing_of_a(world: World) -> None:
    before = await _snapshot(world)
    wrong: list[str] = []
    for op in OPERATIONS:
        if op.roles == PUBLIC:
            continue
        call = await op.build(world, "admin")
        elsewhere = _elsewhere(call, world)
        responses = []
        for attempt in (call, elsewhere):
            responses.append(
                await world.call(
                    op.service,
                    op.method,
                    attempt.path,
                    tenant=world.other,
                    body=attempt.body,
                    params=attempt.params,
                    content=attempt.content,
                )
            )
        theirs, nowhere = responses
        sent = dumps({"path": call.path, "body": call.body, "params": call.params})
        sent += (call.content or b"").decode()
        # A uuid names one resource of one tenant: anyone else is told it does not exist. Names
        # (brand, member, team ids) are per tenant: B may have its own of the same name.
        if _has_uuid(call.path, world) and theirs.status_code != 404:
            wrong.append(f"{op}: {theirs.status_code}, expected 404: {theirs.text[:200]}")
        if elsewhere != call and theirs.status_code != nowhere.status_code:
            wrong.append(
                f"{op}: {theirs.status_code} with A's ids but {nowhere.status_code} with ids "
                f"that exist nowhere: {theirs.text[:200]}"
            )
        if found := leaks(theirs, world, sent):
            wrong.append(f"{op}: B's answer shows A's {found}")
    assert wrong == [], "\n".join(wrong)
    assert _unchanged(before, await _snapshot(world)) == [], "tenant B changed A's resources"
