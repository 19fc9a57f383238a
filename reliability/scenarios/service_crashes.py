"""`kill -9` each of the four services three times at random moments of a sandbox-load run, restart
it at once, and check every unique mention reaches the inbox exactly once with exact metrics."""

from __future__ import annotations

import asyncio
import logging
import random
import time
from typing import Any

from reliability import load
from reliability.stack import ChaosStack

log = logging.getLogger("reliability.service_crashes")

KILLS_PER_SERVICE = 3


async def run(stack: ChaosStack, mentions: int, *, seed: int = 9) -> dict[str, Any]:
    target = await load.setup(stack)
    items = await asyncio.to_thread(load.sandbox_mentions, mentions, seed)
    rng = random.Random(seed)  # noqa: S311  # reproducible kill moments, not a secret
    # Moments as shares of the delivered mentions; the last ones may fall while the consumers
    # still work through the backlog, which is as much "mid-run" as any.
    plan = sorted(
        (rng.uniform(0.05, 0.95), name) for name in stack.services for _ in range(KILLS_PER_SERVICE)
    )
    stats = load.DeliveryStats()
    started = time.monotonic()
    delivery = asyncio.create_task(load.deliver(stack, target, items, stats=stats))
    kills: list[dict[str, Any]] = []
    last_fault_end = started
    for share, name in plan:
        if name == "ingest":
            await load.wait_delivered(stats, int(share * mentions), delivery)
        else:
            await load.wait_in_inbox(stack, target, int(share * mentions))
        old_pid = stack.pid(name)
        at = time.monotonic()
        stack.kill9(name)
        await stack.restart(name)
        last_fault_end = time.monotonic()
        assert stack.pid(name) != old_pid
        kills.append(
            {
                "service": name,
                "at_s": round(at - started, 2),
                "delivered_share": round(stats.done / mentions, 3),
                "inbox_share": round(await load.inbox_count(stack, target) / mentions, 3),
                "back_ready_s": round(last_fault_end - at, 2),
            }
        )
        log.info("killed %s at %.1f s (%d/%d delivered)", name, at - started, stats.done, mentions)
    await delivery
    delivered_at = stats.finished_at or time.monotonic()
    timeout = max(600.0, mentions / 20)
    caught_up = await load.wait_caught_up(stack, target, mentions, timeout_s=timeout)
    result = await load.verify(stack, target, [i["external_id"] for i in items])
    end = caught_up or time.monotonic()
    return {
        "injected": len(kills),
        **result,
        **load.delivery_figures(stats),
        "recovered_s": round(end - max(last_fault_end, started), 1),
        "caught_up": caught_up is not None,
        "delivery_s": round(delivered_at - started, 1),
        "total_s": round(end - started, 1),
        "kills": kills,
    }
