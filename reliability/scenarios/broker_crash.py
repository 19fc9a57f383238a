"""`kill -9` the Kafka broker in the middle of a sandbox-load run and start it again: nothing is
lost or duplicated, and every service reconnects by itself (same process, no restart)."""

from __future__ import annotations

import asyncio
import logging
import time
from typing import Any

from reliability import load
from reliability.stack import ChaosStack
from tests.support import wait_until

log = logging.getLogger("reliability.broker_crash")

DOWN_S = 10.0  # how long the broker stays dead: several client retry and session timeouts


async def run(stack: ChaosStack, mentions: int, *, down_s: float = DOWN_S) -> dict[str, Any]:
    target = await load.setup(stack)
    items = await asyncio.to_thread(load.sandbox_mentions, mentions, 1)
    pids = stack.pids()
    stats = load.DeliveryStats()
    started = time.monotonic()
    # Paced, so the crash lands while mentions still arrive (not after a burst already settled).
    rate = max(500.0, mentions / 40)
    delivery = asyncio.create_task(load.deliver(stack, target, items, rate_per_s=rate, stats=stats))
    await load.wait_delivered(stats, mentions * 2 // 5, delivery)
    killed_at = time.monotonic()
    at_share = stats.done / mentions
    stack.kill_kafka()
    log.info(
        "killed the broker at %.1f s (%d/%d delivered)", killed_at - started, stats.done, mentions
    )
    await asyncio.sleep(down_s / 2)
    readyz_during_outage = {name: await stack.readyz(name) for name in stack.services}
    await asyncio.sleep(down_s / 2)
    await stack.start_kafka()
    broker_back = time.monotonic()
    await wait_until(stack.all_ready, timeout_s=180, interval_s=0.2, what="services reconnected")
    services_ready = time.monotonic()
    await delivery
    caught_up = await load.wait_caught_up(stack, target, mentions, max(300.0, mentions / 100))
    result = await load.verify(stack, target, [i["external_id"] for i in items])
    end = caught_up or time.monotonic()
    return {
        "injected": 1,
        **result,
        **load.delivery_figures(stats),
        "recovered_s": round(end - broker_back, 1),
        "caught_up": caught_up is not None,
        "killed_at_share": round(at_share, 3),
        "broker_down_s": round(broker_back - killed_at, 1),
        "services_reconnected_s": round(services_ready - broker_back, 1),
        "readyz_during_outage": readyz_during_outage,
        "services_restarted": stack.restarted_since(pids),
        "total_s": round(end - started, 1),
    }
