"""Chaos: the publisher is killed with SIGKILL after the network applied a post or reply and before
the publisher recorded it, N times; every post and reply must exist exactly once on the sandbox."""

from __future__ import annotations

import functools
import json
import logging
import time
import uuid
from collections import Counter
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import Any

import asyncpg
import httpx
from aiokafka import AIOKafkaProducer

from reliability.stack import ChaosStack
from shared.events import ReplyRequestedPayload, envelope_for
from shared.topics import INBOX
from tests.support import token, wait_until

log = logging.getLogger("reliability.publisher_crash")

BRAND = "chaos-brand"
# The sandbox holds the answer this long after applying the write; the publisher's own network
# timeout must be longer, so the attempt is still open when the kill comes.
HOLD_MS = 6000
NETWORK_TIMEOUT_S = "15"


@dataclass(frozen=True)
class Channel:
    """A publisher channel on a fresh sandbox account, and a fan account that talks to it."""

    id: str
    account: dict[str, Any]
    fan: dict[str, Any]


async def sandbox_account(http: httpx.AsyncClient, sandbox: str, prefix: str) -> dict[str, Any]:
    r = await http.post(
        f"{sandbox}/sandbox/accounts", json={"username": f"{prefix}_{uuid.uuid4().hex[:10]}"}
    )
    r.raise_for_status()
    return dict(r.json())


async def make_channel(
    http: httpx.AsyncClient, stack: ChaosStack, tenant: str, admin: dict[str, str]
) -> Channel:
    publisher, sandbox = stack.services["publisher"].url, stack.sandbox_url
    account = await sandbox_account(http, sandbox, "brand")
    fan = await sandbox_account(http, sandbox, "fan")
    r = await http.put(
        f"{publisher}/api/v1/brands/{BRAND}/publishing",
        json={"timezone": "UTC", "approval": "none"},
        headers=admin,
    )
    r.raise_for_status()
    r = await http.post(
        f"{publisher}/api/v1/channels",
        json={
            "brand_id": BRAND,
            "network": "mastodon",
            "name": "Chaos channel",
            "config": {"api_base": sandbox, "account_id": account["id"]},
            "credentials": {"access_token": account["access_token"]},
        },
        headers=admin,
    )
    r.raise_for_status()
    return Channel(str(r.json()["id"]), account, fan)


async def publish_now(
    http: httpx.AsyncClient, publisher: str, admin: dict[str, str], channel: Channel, text: str
) -> str:
    r = await http.post(
        f"{publisher}/api/v1/posts",
        json={"brand_id": BRAND, "variants": [{"channel_id": channel.id, "text": text}]},
        headers=admin,
    )
    r.raise_for_status()
    post_id = str(r.json()["id"])
    for step in ("submit", "publish-now"):
        r = await http.post(f"{publisher}/api/v1/posts/{post_id}/{step}", headers=admin)
        r.raise_for_status()
    return post_id


async def ask_question(
    http: httpx.AsyncClient, stack: ChaosStack, channel: Channel, text: str
) -> str:
    """A fan asks the brand something on the sandbox; returns the question's status id."""
    question = await http.post(
        f"{stack.sandbox_url}/api/v1/statuses",
        json={"status": f"@{channel.account['username']} question for {text}"},
        headers={"Authorization": f"Bearer {channel.fan['access_token']}"},
    )
    question.raise_for_status()
    return str(question.json()["id"])


async def request_reply(
    stack: ChaosStack,
    producer: AIOKafkaProducer,
    tenant: str,
    channel: Channel,
    question_id: str,
    text: str,
) -> str:
    """The inbox (played here) asks the publisher to answer through `reply.requested`, as
    services/inbox does."""
    request = ReplyRequestedPayload(
        request_id=uuid.uuid4(),
        channel_id=uuid.UUID(channel.id),
        reply_to_external_id=question_id,
        text=text,
    )
    event = envelope_for(request, tenant_id=tenant, brand_id=BRAND, occurred_at=datetime.now(UTC))
    await producer.send_and_wait(
        stack.topic(INBOX.name), json.dumps(event).encode(), key=f"{tenant}:{text}".encode()
    )
    return str(request.request_id)


async def statuses_of(http: httpx.AsyncClient, sandbox: str, account_id: str) -> list[Any]:
    r = await http.get(f"{sandbox}/sandbox/accounts/{account_id}/statuses")
    r.raise_for_status()
    body = r.json()
    return list(body["statuses"] if isinstance(body, dict) else body)


def count_texts(statuses: list[Any], texts: list[str]) -> Counter[str]:
    """How many statuses carry each (unique) text; content is HTML, and a reply may open with the
    author's @mention, so the text is looked for inside it."""
    found: Counter[str] = Counter()
    wanted = set(texts)
    for status in statuses:
        content = str(status.get("content", ""))
        for text in wanted:
            if text in content:
                found[text] += 1
    return found


async def deliveries_settled(db: asyncpg.Connection, tenant: str, count: int) -> bool:
    done = await db.fetchval(
        "SELECT count(*) FROM publisher.deliveries WHERE tenant_id = $1"
        " AND status IN ('published', 'failed')",
        tenant,
    )
    return bool(done >= count)


async def _open_attempt_applied(
    db: asyncpg.Connection, http: httpx.AsyncClient, sandbox: str, channel: Channel, text: str
) -> bool:
    """The publisher's attempt is open and the network has already applied the write."""
    open_attempts = await db.fetchval(
        "SELECT count(*) FROM publisher.attempts a JOIN publisher.deliveries d"
        " ON d.id = a.delivery_id WHERE d.channel_id = $1 AND a.finished_at IS NULL",
        uuid.UUID(channel.id),
    )
    if not open_attempts:
        return False
    r = await http.get(f"{sandbox}/sandbox/accounts/{channel.account['id']}/statuses?limit=5")
    return any(text in str(s.get("content", "")) for s in r.json())


async def run(stack: ChaosStack, mentions: int) -> dict[str, Any]:
    """`mentions` is the number of crash cycles here (half posts, half replies)."""
    cycles = max(1, mentions)
    tenant = "chaos-" + uuid.uuid4().hex[:8]
    admin = token(stack.auth_secret, tenant, "admin")
    publisher = stack.services["publisher"]
    # A longer network timeout than the stack's default: the kill must land while the call is
    # still open, not after the publisher gave up on it and recorded "unknown".
    publisher.env["SMM_PUBLISHER_NETWORK_TIMEOUT_S"] = NETWORK_TIMEOUT_S
    await stack.restart("publisher")
    sandbox = stack.sandbox_url
    db = await asyncpg.connect(stack.admin_dsn())
    producer = AIOKafkaProducer(bootstrap_servers=stack.bootstrap, acks="all")
    await producer.start()
    kills = missed = 0
    recoveries: list[float] = []
    texts: list[str] = []
    try:
        async with httpx.AsyncClient(timeout=30.0) as http:
            channel = await make_channel(http, stack, tenant, admin)
            started = time.monotonic()
            for cycle in range(cycles):
                kind = "post" if cycle % 2 == 0 else "reply"
                text = f"chaos {kind} {cycle} {uuid.uuid4().hex[:6]}"
                texts.append(text)
                # Asked before the fault is armed: the fault is for the publisher's call.
                question = await ask_question(http, stack, channel, text) if kind == "reply" else ""
                fault = {
                    "kind": "timeout_after_send",
                    "path_prefix": "/api/v1/statuses",
                    "method": "POST",
                    "delay_ms": HOLD_MS,
                }
                (await http.post(f"{sandbox}/sandbox/faults", json=fault)).raise_for_status()
                if kind == "post":
                    await publish_now(http, publisher.url, admin, channel, text)
                else:
                    await request_reply(stack, producer, tenant, channel, question, text)
                try:
                    await wait_until(
                        functools.partial(_open_attempt_applied, db, http, sandbox, channel, text),
                        timeout_s=60,
                        interval_s=0.02,
                        what=f"cycle {cycle}: the {kind} applied, its attempt open",
                    )
                    stack.kill9("publisher")
                    kills += 1
                except AssertionError:
                    missed += 1  # the attempt closed before we saw it open: no crash this time
                    log.warning("cycle %d: attempt not caught open", cycle)
                killed_at = time.monotonic()
                await http.delete(f"{sandbox}/sandbox/faults")
                if publisher.proc is None or publisher.proc.poll() is not None:
                    await stack.restart("publisher")
                await wait_until(
                    functools.partial(deliveries_settled, db, tenant, cycle + 1),
                    timeout_s=120,
                    interval_s=0.1,
                    what=f"cycle {cycle}: the {kind} recorded after the restart",
                )
                recoveries.append(time.monotonic() - killed_at)
                if (cycle + 1) % 10 == 0:
                    log.info("%d/%d cycles, %.0f s", cycle + 1, cycles, time.monotonic() - started)
            found = count_texts(await statuses_of(http, sandbox, channel.account["id"]), texts)
            stats = (await http.get(f"{sandbox}/sandbox/stats")).json()
            failed = await db.fetchval(
                "SELECT count(*) FROM publisher.deliveries WHERE tenant_id = $1"
                " AND status = 'failed'",
                tenant,
            )
    finally:
        await producer.stop()
        await db.close()
    lost = sum(1 for t in texts if found[t] == 0)
    duplicated = sum(max(found[t] - 1, 0) for t in texts)
    return {
        "injected": kills,
        "expected": len(texts),
        "delivered": sum(found[t] for t in texts),
        "lost": lost,
        "duplicated": duplicated,
        "recovered_s": round(max(recoveries, default=0.0), 1),
        "recovered_mean_s": round(sum(recoveries) / max(len(recoveries), 1), 1),
        "posts": (len(texts) + 1) // 2,
        "replies": len(texts) // 2,
        "cycles_not_caught_open": missed,
        "deliveries_failed": failed,
        "duplicates_by_idempotency_key": stats["duplicates_by_idempotency_key"],
        "note": (
            "Each cycle: the sandbox applies the POST /api/v1/statuses and holds the answer "
            f"{HOLD_MS} ms; the publisher is killed (SIGKILL) while its attempt is open and "
            "restarted; the delivery is reconciled by its idempotency key. Counted on the "
            "sandbox: statuses per text on the brand's account."
        ),
    }
