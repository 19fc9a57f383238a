"""The role matrix: every operation, called validly by each role of the tenant, succeeds (2xx)
for exactly the roles the table names and is refused with 403 for every other role."""

from __future__ import annotations

import asyncio

from shared.auth import ROLES
from tests.security.operations import OPERATIONS, PUBLIC, Call, Op
from tests.security.world import World


async def _verdict(world: World, op: Op, role: str, call: Call) -> str | None:
    response = await world.call(
        op.service,
        op.method,
        call.path,
        role=role,
        body=call.body,
        params=call.params,
        content=call.content,
    )
    allowed = role in op.roles
    if allowed and 200 <= response.status_code < 300:
        return None
    if not allowed and response.status_code == 403:
        return None
    expected = "2xx" if allowed else "403"
    return f"{op} as {role}: {response.status_code} (expected {expected}) {response.text[:200]}"


async def test_each_role_may_do_exactly_what_the_table_says(world: World) -> None:
    wrong: list[str] = []
    for op in OPERATIONS:
        if op.roles == PUBLIC:
            continue
        # A refused call consumes nothing, so the refused roles share one prepared call; each
        # allowed role gets its own (deletes and transitions consume what they act on).
        refused = await op.build(world, "client-approver")
        calls = [
            (role, await op.build(world, role) if role in op.roles else refused) for role in ROLES
        ]
        verdicts = await asyncio.gather(*(_verdict(world, op, r, c) for r, c in calls))
        wrong += [v for v in verdicts if v is not None]
    assert wrong == [], "\n".join(wrong)
