"""The chaos harness's load and count on the shared test stack: a kill -9 of inbox mid-run loses
and duplicates nothing, and the count would name a mention that never arrived."""

from __future__ import annotations

import asyncio
from pathlib import Path

from reliability import load
from reliability.stack import ChaosStack
from tests.conftest import SessionStack
from tests.support import ServiceProcess


async def test_chaos_load_survives_an_inbox_kill_and_the_count_is_exact(
    services: dict[str, ServiceProcess], stack: SessionStack, tmp_path: Path
) -> None:
    chaos = ChaosStack(
        workdir=tmp_path,
        database=stack.database,
        topic_prefix=stack.topic_prefix,
        bootstrap=stack.bootstrap,
        auth_secret=stack.auth_secret,
        logs=stack.logs,
        services=services,
    )
    total = 2000
    target = await load.setup(chaos)
    items = await asyncio.to_thread(load.sandbox_mentions, total, 5)
    stats = load.DeliveryStats()
    delivery = asyncio.create_task(load.deliver(chaos, target, items, stats=stats))
    await load.wait_in_inbox(chaos, target, total // 4)
    chaos.kill9("inbox")
    at_kill = await load.inbox_count(chaos, target)
    assert at_kill < total, f"the kill landed after the run ({at_kill}/{total})"
    await chaos.restart("inbox")
    await delivery

    assert await load.wait_caught_up(chaos, target, total, timeout_s=120) is not None
    result = await load.verify(chaos, target, [i["external_id"] for i in items])
    assert (result["lost"], result["duplicated"], result["metrics_exact"]) == (0, 0, True)
    assert result["inbox_items"] == result["metrics_mentions"] == total

    # A mention the harness expected but nobody sent is reported lost, by id.
    missing = await load.verify(chaos, target, [*(i["external_id"] for i in items), "never-sent"])
    assert (missing["lost"], missing["lost_sample"]) == (1, ["never-sent"])
    # A mention that arrived but was not expected counts as a duplicate.
    extra = await load.verify(chaos, target, [i["external_id"] for i in items[1:]])
    assert extra["duplicated"] == 1
