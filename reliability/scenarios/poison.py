"""Chaos: poison events among real load — random bytes, schema-invalid JSON, an unknown schema
version, and mentions a handler raises on — must reach the DLQ with their error headers after
bounded retries while the partitions keep moving; `smm dlq replay` applies the fixed ones once."""

from __future__ import annotations

import asyncio
import functools
import json
import logging
import os
import subprocess
import sys
import time
import uuid
from collections.abc import Sequence
from datetime import UTC, datetime, timedelta
from typing import Any

import asyncpg
import httpx
from aiokafka import AIOKafkaProducer

from reliability.stack import ChaosStack
from shared.topics import MENTIONS, POSTS
from smmctl import dlq
from tests.support import REPO, post_mentions, token, wait_until
from tests.support import mention_event as support_event

log = logging.getLogger("reliability.poison")

BRAND = "brand-a"
PILL = "poison-pill"
BATCH = 200
# The handler bug: the inbox cannot file a mention with this text. Installed as a trigger in the
# inbox's schema so that the real consumer path (retries, isolation, DLQ) meets a real handler
# error; dropping it is "deploying the fix".
BUG = f"""
CREATE FUNCTION inbox.chaos_handler_bug() RETURNS trigger LANGUAGE plpgsql AS $$
BEGIN
    RAISE EXCEPTION 'handler bug: cannot file mention %', NEW.external_id;
END $$;
CREATE TRIGGER chaos_handler_bug BEFORE INSERT ON inbox.items
    FOR EACH ROW WHEN (NEW.text LIKE '%{PILL}%') EXECUTE FUNCTION inbox.chaos_handler_bug();
"""
FIX = """
DROP TRIGGER chaos_handler_bug ON inbox.items;
DROP FUNCTION inbox.chaos_handler_bug();
"""


def mention_event(tenant: str, external_id: str, text: str) -> dict[str, Any]:
    return support_event(
        tenant, external_id, text, brand=BRAND, created_at=datetime.now(UTC) - timedelta(minutes=1)
    )


def poison_values(tenant: str, n: int) -> list[tuple[str, bytes, str]]:
    """(kind, value, external id of the valid event sent after it on the same key)."""
    out: list[tuple[str, bytes, str]] = []
    for i in range(n):
        invalid = mention_event(tenant, f"invalid-{i}", "schema-invalid")
        invalid["payload"]["author"] = "not an object"
        newer = {**mention_event(tenant, f"v99-{i}", "from the future"), "schema_version": 99}
        pill = mention_event(tenant, f"pill-direct-{i}", f"direct {PILL} {i}")
        out += [
            ("decode", b"\x00\xff random bytes " + os.urandom(16), f"after-decode-{i}"),
            ("schema", json.dumps(invalid).encode(), f"after-schema-{i}"),
            ("version", json.dumps(newer).encode(), f"after-version-{i}"),
            ("handler", json.dumps(pill).encode(), f"after-handler-{i}"),
        ]
    return out


async def _source(http: httpx.AsyncClient, stack: ChaosStack, admin: dict[str, str]) -> Any:
    ingest = stack.services["ingest"].url
    r = await http.post(
        f"{ingest}/api/v1/brands",
        json={"id": BRAND, "name": "Brand A", "timezone": "UTC"},
        headers=admin,
    )
    r.raise_for_status()
    r = await http.post(
        f"{ingest}/api/v1/sources", json={"brand_id": BRAND, "name": "chaos"}, headers=admin
    )
    r.raise_for_status()
    return r.json()


async def _load(
    http: httpx.AsyncClient, stack: ChaosStack, source: Any, mentions: int, pills: int
) -> list[str]:
    """`mentions` mentions through the webhook, `pills` of them carrying the handler bug's text;
    returns the pills' external ids."""
    base = datetime.now(UTC) - timedelta(minutes=30)
    every = max(1, mentions // max(pills, 1))
    pill_ids: list[str] = []
    items: list[dict[str, Any]] = []
    for i in range(mentions):
        external_id = f"load-{i}"
        text = f"load mention {i}"
        if i % every == 0 and len(pill_ids) < pills:
            text = f"webhook {PILL} {i}"
            pill_ids.append(external_id)
        items.append(
            {
                "external_id": external_id,
                "text": text,
                "author": {"id": f"u{i % 97}", "handle": f"@fan{i % 97}"},
                "created_at": (base + timedelta(milliseconds=i)).isoformat(),
            }
        )
    for start in range(0, len(items), BATCH):
        r = await post_mentions(
            http, stack.services["ingest"].url, source, items[start : start + BATCH]
        )
        r.raise_for_status()
    return pill_ids


async def _inject(
    stack: ChaosStack, tenant: str, poison: Sequence[tuple[str, bytes, str]]
) -> dict[bytes, tuple[str, int, int]]:
    """Each poison record, then a valid mention on the same key (so the same partition): that one
    can only arrive if the partition moved past the poison. Also three on smm.posts.v1."""
    producer = AIOKafkaProducer(bootstrap_servers=stack.bootstrap, acks="all")
    await producer.start()
    sent: dict[bytes, tuple[str, int, int]] = {}
    try:
        for kind, value, after in poison:
            key = f"{tenant}:{BRAND}:{after}".encode()
            meta = await producer.send_and_wait(stack.topic(MENTIONS.name), value, key=key)
            sent[value] = (kind, meta.partition, meta.offset)
            good = mention_event(tenant, after, f"valid after {kind}")
            await producer.send_and_wait(
                stack.topic(MENTIONS.name), json.dumps(good).encode(), key=key
            )
        post_key = f"{tenant}:post".encode()
        bad_post = {"event_id": str(uuid.uuid4()), "type": "post.published", "schema_version": 1}
        bad_post |= {"tenant_id": tenant, "brand_id": BRAND, "payload": {"post_id": 5}}
        for kind, value in (
            ("decode", b"\xfe\xfe not json " + os.urandom(8)),
            ("schema", json.dumps(bad_post).encode()),
            ("version", json.dumps({**bad_post, "schema_version": 42}).encode()),
        ):
            meta = await producer.send_and_wait(stack.topic(POSTS.name), value, key=post_key)
            sent[value] = (kind, meta.partition, meta.offset)
    finally:
        await producer.stop()
    return sent


async def _count(db: asyncpg.Connection, sql: str, *args: Any) -> int:
    return int(await db.fetchval(sql, *args) or 0)


async def _inbox_has(db: asyncpg.Connection, tenant: str, ids: Sequence[str]) -> bool:
    found = await _count(
        db,
        "SELECT count(*) FROM inbox.items WHERE tenant_id = $1 AND external_id = ANY($2)",
        tenant,
        list(ids),
    )
    return found == len(ids)


def smm_dlq(stack: ChaosStack, *args: str) -> dict[str, Any]:
    """The operator command, run as an operator would run it against this stack."""
    env = {
        **os.environ,
        "SMM_KAFKA_BOOTSTRAP_SERVERS": stack.bootstrap,
        "SMM_TOPIC_PREFIX": stack.topic_prefix,
    }
    done = subprocess.run(
        [sys.executable, "-m", "smmctl", "dlq", *args, "--json"],
        cwd=REPO,
        env=env,
        capture_output=True,
        text=True,
        timeout=120,
        check=True,
    )
    return dict(json.loads(done.stdout))


async def _dead_letters(stack: ChaosStack) -> list[dlq.DeadLetter]:
    topics = [stack.topic(MENTIONS.dlq), stack.topic(POSTS.dlq)]
    return await dlq.read_dead_letters(stack.bootstrap, topics)


async def run(stack: ChaosStack, mentions: int) -> dict[str, Any]:
    tenant = "chaos-" + uuid.uuid4().hex[:8]
    admin = token(stack.auth_secret, tenant, "admin")
    per_kind = max(1, min(25, mentions // 200))
    webhook_pills = per_kind
    poison = poison_values(tenant, per_kind)
    after_ids = [after for _, _, after in poison]
    direct_pills = [
        json.loads(value)["payload"]["external_id"]
        for kind, value, _ in poison
        if kind == "handler"
    ]
    db = await asyncpg.connect(stack.admin_dsn())
    try:
        await db.execute(BUG)
        async with httpx.AsyncClient(timeout=60.0) as http:
            source = await _source(http, stack, admin)
            load = asyncio.create_task(_load(http, stack, source, mentions, webhook_pills))
            sent = await _inject(stack, tenant, poison)
            injected_at = time.monotonic()
            pill_ids = await load
        good_ids = [f"load-{i}" for i in range(mentions) if f"load-{i}" not in set(pill_ids)]
        # The partitions moved on: every valid mention behind a poison record arrived.
        await wait_until(
            functools.partial(_inbox_has, db, tenant, after_ids),
            timeout_s=300,
            interval_s=0.5,
            what="the valid mentions behind the poison",
        )
        recovered_s = time.monotonic() - injected_at
        await wait_until(
            functools.partial(_inbox_has, db, tenant, good_ids),
            timeout_s=600,
            interval_s=1,
            what="the load",
        )

        all_pills = set(pill_ids) | set(direct_pills)

        async def dead_lettered() -> list[dlq.DeadLetter]:
            letters = await _dead_letters(stack)
            mine = [x for x in letters if x.value in sent or _external_id(x) in all_pills]
            inbox_pills = {
                _external_id(x)
                for x in mine
                if x.header("smm-consumer") == "inbox.mentions" and _external_id(x) in all_pills
            }
            return mine if inbox_pills == all_pills and {x.value for x in mine} >= set(sent) else []

        letters = await wait_until(dead_lettered, timeout_s=120, interval_s=1, what="the DLQ")
        checks = _check_headers(letters, sent, all_pills, stack)
        pills_before_fix = await _count(
            db,
            "SELECT count(*) FROM inbox.items WHERE tenant_id = $1 AND text LIKE $2",
            tenant,
            f"%{PILL}%",
        )

        # The fix is deployed; the operator replays what the bug dead-lettered, twice.
        await db.execute(FIX)
        pill_event_ids = sorted(
            {x.event_id for x in letters if _external_id(x) in all_pills and x.event_id}
        )
        replay_args = [arg for eid in pill_event_ids for arg in ("--event-id", eid)]
        replayed_at = time.monotonic()
        first = await asyncio.to_thread(smm_dlq, stack, "replay", *replay_args)
        await wait_until(
            functools.partial(_inbox_has, db, tenant, sorted(all_pills)),
            timeout_s=120,
            interval_s=0.5,
            what="the replayed mentions",
        )
        replay_s = time.monotonic() - replayed_at
        second = await asyncio.to_thread(smm_dlq, stack, "replay", *replay_args)

        expected_ids = [*good_ids, *after_ids, *sorted(all_pills)]
        stored = await _count(
            db,
            "SELECT count(DISTINCT external_id) FROM inbox.items"
            " WHERE tenant_id = $1 AND external_id = ANY($2)",
            tenant,
            expected_ids,
        )
        rows = await _count(db, "SELECT count(*) FROM inbox.items WHERE tenant_id = $1", tenant)

        async def metrics_settled() -> int:
            counted = await _count(
                db,
                "SELECT coalesce(sum(n), 0) FROM metrics.hourly WHERE tenant_id = $1"
                " AND metric = 'mentions' AND dimension = 'all'",
                tenant,
            )
            return counted if counted >= len(expected_ids) else 0

        counted = await wait_until(metrics_settled, timeout_s=120, interval_s=1, what="metrics")
    finally:
        await db.close()
    return {
        "injected": len(sent) + len(pill_ids),
        "expected": len(expected_ids),
        "delivered": rows,
        "lost": len(expected_ids) - stored,
        "duplicated": rows - stored,
        "recovered_s": round(recovered_s, 1),
        "metrics_exact": counted == len(expected_ids),
        "poison_by_kind": {
            kind: sum(1 for k, _, _ in sent.values() if k == kind)
            + (len(pill_ids) if kind == "handler" else 0)
            for kind in ("decode", "schema", "version", "handler")
        },
        "webhook_pills": len(pill_ids),
        "pills_filed_before_fix": pills_before_fix,
        "dead_letters_checked": checks,
        "replay_first": first,
        "replay_second": second,
        "replay_applied_s": round(replay_s, 1),  # from starting `smm dlq replay`
        "note": (
            "The handler error is a trigger on inbox.items raising for texts with "
            f"'{PILL}' (a stand-in for a bug in the inbox's handler); dropping it is the fix. "
            "Random bytes, schema-invalid and unknown-version records are never replayed: "
            "nothing can consume the first two, and the third waits for a consumer that reads "
            "that version. Replay by event id, then again: the second sends nothing."
        ),
    }


def _external_id(letter: dlq.DeadLetter) -> str | None:
    body = letter.body
    payload = body.get("payload") if body else None
    found = payload.get("external_id") if isinstance(payload, dict) else None
    return found if isinstance(found, str) else None


def _check_headers(
    letters: Sequence[dlq.DeadLetter],
    sent: dict[bytes, tuple[str, int, int]],
    pills: set[str],
    stack: ChaosStack,
) -> int:
    """Every dead letter names its error, reason, source and attempts; returns how many were
    checked. A handler failure was retried `max_attempts` times, the rest not at all."""
    checked = 0
    for letter in letters:
        reason = letter.header("smm-error-reason")
        assert letter.header("smm-error"), letter
        if letter.value in sent:
            kind, partition, offset = sent[letter.value]
            assert letter.source_topic in (stack.topic(MENTIONS.name), stack.topic(POSTS.name))
            assert (letter.source_partition, letter.source_offset) == (partition, offset)
            if kind != "handler":
                assert reason == ("decode" if kind == "decode" else "schema"), (kind, reason)
                assert letter.attempts == 1
        if _external_id(letter) in pills and letter.header("smm-consumer") == "inbox.mentions":
            assert reason == "handler", reason
            assert letter.attempts == 3, letter.attempts
            assert "handler bug" in (letter.header("smm-error") or "")
        checked += 1
    return checked
