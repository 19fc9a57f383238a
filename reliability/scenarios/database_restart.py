"""Stop Postgres in the middle of a sandbox-load run and start it again: nothing is lost, every
service reports the outage on /readyz while it lasts and recovers without a restart."""

from __future__ import annotations

import asyncio
import contextlib
import logging
import time
from typing import Any

from reliability import load
from reliability.stack import ChaosStack

log = logging.getLogger("reliability.database_restart")

DOWN_S = 10.0


async def _watch_readyz(stack: ChaosStack, seen: dict[str, set[int]]) -> None:
    """Record every /readyz status each service answers, until cancelled."""
    while True:
        for name in stack.services:
            seen[name].add(await stack.readyz(name))
        await asyncio.sleep(0.25)


async def run(stack: ChaosStack, mentions: int, *, down_s: float = DOWN_S) -> dict[str, Any]:
    target = await load.setup(stack)
    items = await asyncio.to_thread(load.sandbox_mentions, mentions, 2)
    pids = stack.pids()
    stats = load.DeliveryStats()
    started = time.monotonic()
    rate = max(500.0, mentions / 40)
    delivery = asyncio.create_task(load.deliver(stack, target, items, rate_per_s=rate, stats=stats))
    await load.wait_delivered(stats, mentions * 2 // 5, delivery)
    at_share = stats.done / mentions
    stopped_at = time.monotonic()
    await stack.stop_postgres()
    log.info(
        "stopped Postgres at %.1f s (%d/%d delivered)", stopped_at - started, stats.done, mentions
    )
    seen: dict[str, set[int]] = {name: set() for name in stack.services}
    watcher = asyncio.create_task(_watch_readyz(stack, seen))
    await asyncio.sleep(down_s)
    watcher.cancel()
    with contextlib.suppress(asyncio.CancelledError):
        await watcher
    await stack.start_postgres()
    db_back = time.monotonic()
    ready_again: dict[str, float] = {}
    while len(ready_again) < len(stack.services):
        for name in stack.services:
            if name not in ready_again and await stack.readyz(name) == 200:
                ready_again[name] = round(time.monotonic() - db_back, 1)
        await asyncio.sleep(0.2)
    await delivery
    caught_up = await load.wait_caught_up(stack, target, mentions, max(300.0, mentions / 100))
    result = await load.verify(stack, target, [i["external_id"] for i in items])
    end = caught_up or time.monotonic()
    return {
        "injected": 1,
        **result,
        **load.delivery_figures(stats),
        "recovered_s": round(end - db_back, 1),
        "caught_up": caught_up is not None,
        "stopped_at_share": round(at_share, 3),
        "database_down_s": round(db_back - stopped_at, 1),
        "readyz_during_outage": {name: sorted(codes) for name, codes in seen.items()},
        "outage_reported": all(200 not in codes and codes for codes in seen.values()),
        "ready_again_s": ready_again,
        "services_restarted": stack.restarted_since(pids),
        "total_s": round(end - started, 1),
    }
