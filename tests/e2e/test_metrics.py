"""The metrics service on the real stack: mentions in through ingest, triage and a reply through
the inbox and the publisher, a post published to the sandbox; every analytics figure equals the
count taken directly from the ingest, inbox and publisher schemas."""

from __future__ import annotations

import csv
import io
import json
import uuid
from collections import Counter
from collections.abc import Sequence
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from typing import Any

import asyncpg
import httpx
import pytest
from aiokafka import AIOKafkaConsumer, AIOKafkaProducer, TopicPartition
from faststream.kafka import KafkaBroker

from services.metrics.handlers import MENTION_MODELS, MentionEvent, apply_mentions
from services.metrics.rollups import hashtags, share_of_voice
from shared.consumer import IdempotentBatchConsumer, Record
from shared.events import (
    Author,
    MentionPayload,
    PostEngagementPayload,
    QueryMatch,
    Thread,
    envelope_for,
)
from shared.metrics import ServiceMetrics
from shared.topics import MENTIONS, POSTS, TopicSpec
from tests.conftest import SessionStack
from tests.support import (
    ServiceProcess,
    events_for,
    mention,
    post_mentions,
    token,
    wait_until,
)

Json = dict[str, Any]
FROM, TO = "2026-10-01", "2026-12-01"  # the test mentions' creation times
NOW_PERIOD = {"from": "2026-01-01", "to": "2027-12-31"}  # replies and posts happen now


def at(minute: int) -> str:
    return (datetime(2026, 11, 1, 8, tzinfo=UTC) + timedelta(minutes=minute)).isoformat()


@pytest.fixture
def admin(stack: SessionStack, tenant: str) -> dict[str, str]:
    return token(stack.auth_secret, tenant, "admin")


async def _ok(response: httpx.Response, *codes: int) -> Json:
    assert response.status_code in (codes or (200,)), response.text
    return dict(response.json())


async def _get(http: httpx.AsyncClient, url: str, headers: dict[str, str], **params: Any) -> Json:
    return await _ok(await http.get(url, params=params, headers=headers))


async def _fetch(db: asyncpg.Connection, sql: str, *args: Any) -> list[asyncpg.Record]:
    return list(await db.fetch(sql, *args))


@dataclass(frozen=True)
class Traffic:
    """What `brand_traffic` did, for the assertions."""

    rows: list[asyncpg.Record]  # the brand's mentions as ingest stores them
    total: int
    remote_id: str
    post: Json
    channel: Json
    today: dict[str, str]  # a period around now, short enough for hour buckets


async def brand_traffic(
    services: dict[str, ServiceProcess],
    sandbox: str,
    http: httpx.AsyncClient,
    admin: dict[str, str],
    source: Json,
    stack: SessionStack,
    tenant: str,
    admin_db: asyncpg.Connection,
) -> Traffic:
    """Mentions (English, Russian, a competitor's, one delivered twice), a reply through the
    publisher, a post published and two replies to it; returns once metrics has caught up."""
    ingest, inbox = services["ingest"].url + "/api/v1", services["inbox"].url + "/api/v1"
    publisher, metrics = services["publisher"].url + "/api/v1", services["metrics"].url + "/api/v1"
    brand = f"{metrics}/brands/brand-a"

    # Listening: the brand's own query and a competitor's.
    for body in (
        {"brand_id": "brand-a", "name": "Brand", "expression": "acme"},
        {
            "brand_id": "brand-a",
            "name": "Globex",
            "expression": "globex",
            "role": "competitor",
            "competitor": "Globex",
        },
    ):
        await _ok(await http.post(f"{ingest}/queries", json=body, headers=admin), 201)

    # The sandbox: the brand's account (our channel) and a fan who asks a question.
    accounts = []
    for who in ("brand", "fan"):
        r = await http.post(
            f"{sandbox}/sandbox/accounts", json={"username": f"{who}_{uuid.uuid4().hex[:8]}"}
        )
        accounts.append(r.json())
    brand_account, fan = accounts
    status = await _ok(
        await http.post(
            f"{sandbox}/api/v1/statuses",
            data={"status": "@brand where is my parcel?"},
            headers={"Authorization": f"Bearer {fan['access_token']}"},
        )
    )
    await _ok(
        await http.put(
            f"{publisher}/brands/brand-a/publishing",
            json={"timezone": "UTC", "approval": "none"},
            headers=admin,
        )
    )
    channel = await _ok(
        await http.post(
            f"{publisher}/channels",
            json={
                "brand_id": "brand-a",
                "network": "mastodon",
                "name": "Brand A on the sandbox",
                "config": {"api_base": sandbox, "account_id": brand_account["id"]},
                "credentials": {"access_token": brand_account["access_token"]},
            },
            headers=admin,
        ),
        201,
    )
    settings: list[tuple[str, Json]] = [
        ("members/ann", {"name": "ann", "languages": ["en", "ru"], "capacity": 20}),
        ("teams/care", {"name": "care", "strategy": "round_robin", "members": ["ann"]}),
        ("brands/brand-a/settings", {"reply_channels": {"generic": channel["id"]}}),
    ]
    for path, body in settings:
        await _ok(await http.put(f"{inbox}/{path}", json=body, headers=admin), 200, 201)

    async def send(*items: Json) -> None:
        r = await post_mentions(http, services["ingest"].url, source, list(items))
        assert r.status_code == 202, r.text

    mentions = [
        mention("m-en-1", "Love my Acme boots! #acme #boots", created_at=at(1)),
        mention("m-en-2", "Acme support never answers, refund please #acme", created_at=at(2)),
        mention(
            "m-ru-1",
            "Где мой заказ Acme? Жду уже неделю #доставка",
            created_at=at(3),
            language="ru",
        ),
        mention("m-ru-2", "Спасибо Acme, отличные кроссовки!", created_at=at(65), language="ru"),
        mention(status["id"], "where is my parcel?", created_at=at(70)),
    ]
    mentions[1]["author"] = mentions[0]["author"]  # one author twice: unique authors is not rows
    await send(*mentions)
    await send(mentions[0])  # delivered again: ingest's duplicate, counted once

    # A competitor mention, resent with a new id until ingest's matcher has the new queries.
    async def competitor_heard() -> bool:
        await send(
            mention(f"m-globex-{uuid.uuid4().hex[:6]}", "Globex boots beat Acme", created_at=at(90))
        )
        n = await admin_db.fetchval(
            """SELECT count(*) FROM ingest.item_matches
               WHERE tenant_id = $1 AND matches @> '[{"role": "competitor"}]'""",
            tenant,
        )
        return bool(n)

    await wait_until(competitor_heard, timeout_s=20, interval_s=0.5, what="a competitor match")

    # The fan's question answered through the publisher.
    async def item_of(external_id: str) -> Json:
        r = await http.get(f"{inbox}/items", params={"limit": 200}, headers=admin)
        found = [i for i in r.json()["items"] if i["external_id"] == external_id]
        return found[0] if found else {}

    item = await wait_until(lambda: item_of(status["id"]), timeout_s=20, what="the fan's item")
    ann = {"Authorization": "Bearer " + _agent_token(stack, tenant, "ann")}
    await _ok(
        await http.post(
            f"{inbox}/items/{item['id']}/replies", json={"text": "On it!"}, headers=ann
        ),
        202,
    )

    async def answered() -> bool:
        d = (await http.get(f"{inbox}/items/{item['id']}", headers=admin)).json()
        return bool(d["replies"][0]["status"] == "published")

    await wait_until(answered, timeout_s=30, what="the reply to be published")

    # A post published now, then a reply to it heard by ingest.
    post = await _ok(
        await http.post(
            f"{publisher}/posts",
            json={
                "brand_id": "brand-a",
                "variants": [{"channel_id": channel["id"], "text": "Our new Acme boots"}],
            },
            headers=admin,
        ),
        201,
    )
    await _ok(await http.post(f"{publisher}/posts/{post['id']}/submit", headers=admin))
    await _ok(await http.post(f"{publisher}/posts/{post['id']}/publish-now", headers=admin))

    async def tracked() -> str | None:
        remote: str | None = await admin_db.fetchval(
            "SELECT external_id FROM ingest.tracked_posts WHERE tenant_id = $1", tenant
        )
        return remote

    remote_id = await wait_until(tracked, timeout_s=60, what="ingest to track our post")
    # The post's engagement as ingest reports it (post.engagement_updated), published directly:
    # two measurements, then one taken between them that arrives late and must not win.
    hour0 = datetime.now(UTC).replace(minute=0, second=0, microsecond=0) - timedelta(hours=2)
    measurements = [
        (hour0 + timedelta(minutes=5), {"likes": 2, "replies": 1, "views": 40, "followers": 50}),
        (
            hour0 + timedelta(minutes=100),
            {"likes": 5, "reposts": 1, "replies": 2, "views": 90, "followers": 52},
        ),
        (hour0 + timedelta(minutes=80), {"likes": 3, "replies": 2, "followers": 51}),
    ]
    engagement = [
        envelope_for(
            PostEngagementPayload(
                post_id=uuid.UUID(post["id"]),
                channel_id=uuid.UUID(channel["id"]),
                network="mastodon",
                external_id=remote_id,
                measured_at=measured_at,
                **counts,
            ),
            tenant_id=tenant,
            brand_id="brand-a",
            occurred_at=measured_at,
        )
        for measured_at, counts in measurements
    ]
    await publish(stack, POSTS.name, f"{tenant}:{post['id']}", engagement)
    # Two replies to our post on the sandbox; the brand's pull source, created after them, hears
    # them on its first pull (they mention the brand's account), and ingest links them to the post.
    for text in ("nice boots", "when in stock?"):
        await _ok(
            await http.post(
                f"{sandbox}/api/v1/statuses",
                data={
                    "status": f"@{brand_account['username']} {text}",
                    "in_reply_to_id": remote_id,
                },
                headers={"Authorization": f"Bearer {fan['access_token']}"},
            )
        )
    pull = {
        "kind": "pull",
        "network": "mastodon",
        "brand_id": "brand-a",
        "config": {"api_base": sandbox, "mode": "notifications"},
        "credentials": {"access_token": brand_account["access_token"]},
        "interval_s": 3600,
    }
    await _ok(await http.post(f"{ingest}/sources", json=pull, headers=admin), 201)

    async def comments_heard() -> bool:
        n = await admin_db.fetchval(
            """SELECT count(*) FROM ingest.items i JOIN ingest.item_matches m ON m.item_id = i.id
               WHERE m.tenant_id = $1 AND i.root_external_id = $2""",
            tenant,
            remote_id,
        )
        return bool(n == 2)

    await wait_until(comments_heard, timeout_s=60, interval_s=0.3, what="the replies to our post")

    # --- direct counts from the owning schemas ---------------------------------------------
    rows = await _fetch(
        admin_db,
        """
        SELECT m.mention_id, m.matches, i.kind, coalesce(i.language, 'und') AS language,
               i.author->>'id' AS author_id, i.text, i.root_external_id, i.created_at
        FROM ingest.item_matches m JOIN ingest.items i ON i.id = m.item_id
        WHERE m.tenant_id = $1 AND m.brand_id = 'brand-a' AND i.deleted_at IS NULL
        """,
        tenant,
    )
    expected_total = len(rows)
    assert expected_total >= len(mentions) + 2 + 1  # and the competitor mentions

    async def caught_up() -> Json:
        s = await _get(http, f"{brand}/series", admin, **{"from": FROM, "to": TO})
        triaged = await _get(
            http, f"{brand}/series", admin, dimension="sentiment", **{"from": FROM, "to": TO}
        )
        inbox_items = await admin_db.fetchval(
            "SELECT count(*) FROM inbox.items WHERE tenant_id = $1", tenant
        )
        pub = await _get(http, f"{brand}/publishing", admin, **NOW_PERIOD)
        resp = await _get(http, f"{brand}/responses", admin, **NOW_PERIOD)
        measured = await admin_db.fetchval(
            """SELECT count(*) FROM metrics.processed_events
               WHERE consumer = 'metrics.posts' AND event_id = ANY($1::uuid[])""",
            [e["event_id"] for e in engagement],
        )
        done = (
            measured == len(engagement)
            and s["total"] == expected_total
            and triaged["total"] == inbox_items == expected_total
            and pub["published"] == 1
            and resp["rows"]
            and resp["rows"][0]["first_response"]["count"] == 1
        )
        return s if done else {}

    await wait_until(caught_up, timeout_s=60, interval_s=0.3, what="metrics to catch up")
    assert remote_id is not None
    now = datetime.now(UTC)
    today = {
        "from": str((now - timedelta(days=1)).date()),
        "to": str((now + timedelta(days=2)).date()),
    }
    return Traffic(list(rows), expected_total, remote_id, post, channel, today)


async def test_every_figure_agrees_exactly_with_the_source_schemas(
    services: dict[str, ServiceProcess],
    sandbox: str,
    http: httpx.AsyncClient,
    admin: dict[str, str],
    source: Json,
    stack: SessionStack,
    tenant: str,
    admin_db: asyncpg.Connection,
) -> None:
    t = await brand_traffic(services, sandbox, http, admin, source, stack, tenant, admin_db)
    rows, expected_total, remote_id, post, channel = t.rows, t.total, t.remote_id, t.post, t.channel
    metrics = services["metrics"].url + "/api/v1"
    brand = f"{metrics}/brands/brand-a"

    # Ingest's own word on each mention's kind and the post it replies to: its events. (Its
    # tables keep the network's kind; a reply to our post is emitted as a `comment`.)
    emitted = {
        uuid.UUID(e["payload"]["mention_id"]): e["payload"]
        for e in await events_for(stack.bootstrap, stack.topic(MENTIONS.name), tenant, len(rows))
        if e["type"] == "mention.received"
    }
    assert set(emitted) == {r["mention_id"] for r in rows}
    period = {"from": FROM, "to": TO}
    # Volume, kind, language, sentiment, intent.
    for dimension, expected in (
        ("all", {"all": expected_total}),
        ("kind", Counter(emitted[r["mention_id"]]["kind"] for r in rows)),
        ("language", Counter(r["language"] for r in rows)),
    ):
        got = await _get(http, f"{brand}/series", admin, dimension=dimension, **period)
        assert got["totals"] == dict(expected), dimension
        assert sum(p["total"] for p in got["points"]) == expected_total
    triage = await _fetch(
        admin_db, "SELECT sentiment, intent FROM inbox.items WHERE tenant_id = $1", tenant
    )
    for dimension in ("sentiment", "intent"):
        got = await _get(http, f"{brand}/series", admin, dimension=dimension, **period)
        assert got["totals"] == dict(Counter(r[dimension] for r in triage if r[dimension]))
    assert {"en", "ru"} <= set(Counter(r["language"] for r in rows))

    # Hour buckets in UTC and day buckets in the brand's zone add up to the same.
    hourly = await _get(
        http, f"{brand}/series", admin, bucket="hour", **{"from": "2026-11-01", "to": "2026-11-02"}
    )
    by_hour = Counter(r["created_at"].replace(minute=0, second=0, microsecond=0) for r in rows)
    for p in hourly["points"]:
        assert p["total"] == by_hour.get(datetime.fromisoformat(p["start"]).astimezone(UTC), 0)

    # Share of voice, unique authors, top hashtags and authors.
    sov = await _get(http, f"{brand}/share-of-voice", admin, **period)
    voices: Counter[str] = Counter()
    for row in rows:
        matches = json.loads(row["matches"])
        voices.update(share_of_voice(QueryMatch.model_validate(m) for m in matches))
    assert {v["voice"]: v["mentions"] for v in sov["voices"]} == dict(voices)
    assert voices["competitor:Globex"] >= 1
    authors = await _get(
        http, f"{brand}/series", admin, metric="authors", dimension="unique", **period
    )
    assert authors["total"] == len({r["author_id"] for r in rows}) < expected_total
    tags = await _get(http, f"{brand}/top", admin, kind="hashtag", limit=100, **period)
    expected_tags = Counter(t for r in rows for t in hashtags(r["text"]))
    assert {e["key"]: e["count"] for e in tags["items"]} == dict(expected_tags)
    top_authors = await _get(http, f"{brand}/top", admin, kind="author", limit=100, **period)
    assert {e["key"]: e["count"] for e in top_authors["items"]} == dict(
        Counter(r["author_id"] for r in rows)
    )

    # Replies to our published post.
    top_posts = await _get(http, f"{brand}/top-posts", admin, **period)
    linked = Counter(p["replies_to_post_id"] for p in emitted.values() if p["replies_to_post_id"])
    assert {p["post_id"]: p["replies"] for p in top_posts["items"]} == dict(linked)
    assert set(linked) <= {post["id"]}
    assert sum(1 for r in rows if r["root_external_id"] == remote_id) == 2

    # Response times and SLA against the inbox's own conversations.
    now_period = NOW_PERIOD
    direct = await admin_db.fetchrow(
        """
        SELECT count(first_response_s) AS n,
               percentile_cont(0.5) WITHIN GROUP (ORDER BY first_response_s) AS median,
               percentile_cont(0.9) WITHIN GROUP (ORDER BY first_response_s) AS p90,
               count(*) FILTER (WHERE sla_state = 'met') AS met
        FROM inbox.conversations WHERE tenant_id = $1
        """,
        tenant,
    )
    assert direct is not None
    for by in ("brand", "member", "team"):
        stats = await _get(http, f"{brand}/responses", admin, by=by, **now_period)
        answered_rows = [r for r in stats["rows"] if r["first_response"]["count"]]
        assert len(answered_rows) == 1, stats
        first = answered_rows[0]["first_response"]
        assert (first["count"], first["median_s"], first["p90_s"]) == (
            direct["n"],
            direct["median"],
            direct["p90"],
        )
        assert answered_rows[0]["sla_met"] == direct["met"]
        assert answered_rows[0]["key"] == {"brand": "", "member": "ann", "team": "care"}[by]

    # Backlog: each conversation's latest status and level.
    expected_backlog = await _fetch(
        admin_db,
        """SELECT status, level, count(*) AS n FROM inbox.conversations
           WHERE tenant_id = $1 AND status <> 'closed' GROUP BY 1, 2""",
        tenant,
    )

    async def backlog_agrees() -> bool:
        got = await _get(http, f"{brand}/backlog", admin)
        return {(r["status"], r["level"]): r["count"] for r in got["rows"]} == {
            (r["status"], r["level"]): r["n"] for r in expected_backlog
        }

    await wait_until(backlog_agrees, timeout_s=15, what="the backlog to agree")

    # Publishing against the publisher's deliveries.
    pub = await _get(http, f"{brand}/publishing", admin, **now_period)
    delivered = await admin_db.fetchrow(
        """
        SELECT count(*) FILTER (WHERE d.status = 'published') AS published,
               count(*) FILTER (WHERE d.status = 'failed') AS failed,
               count(*) FILTER (WHERE d.published_at - p.scheduled_at <= interval '60 seconds')
                   AS on_time
        FROM publisher.deliveries d JOIN publisher.posts p ON p.id = d.post_id
        WHERE d.tenant_id = $1 AND d.kind = 'post'
        """,
        tenant,
    )
    scheduled = await admin_db.fetchval(
        "SELECT count(*) FROM publisher.posts WHERE tenant_id = $1 AND scheduled_at IS NOT NULL",
        tenant,
    )
    assert delivered is not None
    assert (pub["scheduled"], pub["published"], pub["failed"], pub["on_time"]) == (
        scheduled,
        delivered["published"],
        delivered["failed"],
        delivered["on_time"],
    )
    assert pub["channels"][0]["channel_id"] == channel["id"]

    # Our posts' engagement and the channel's audience: the newest measurement of each post and
    # of each hour, as the post.engagement_updated events on the topic said.
    posts_events = await all_events(stack, POSTS, tenant)
    measured = [e["payload"] for e in posts_events if e["type"] == "post.engagement_updated"]
    assert len(measured) >= 3
    newest: dict[tuple[str, str], Json] = {}
    per_hour: dict[tuple[str, datetime], Json] = {}
    for m in measured:
        at = datetime.fromisoformat(m["measured_at"])
        key = (m["post_id"], m["channel_id"])
        if key not in newest or at > datetime.fromisoformat(newest[key]["measured_at"]):
            newest[key] = m
        if m["followers"] is not None:
            slot = (m["channel_id"], at.replace(minute=0, second=0, microsecond=0))
            if slot not in per_hour or at > datetime.fromisoformat(per_hour[slot]["measured_at"]):
                per_hour[slot] = m
    got = await _get(http, f"{brand}/engagement", admin, **now_period)
    assert {(i["post_id"], i["channel_id"]) for i in got["items"]} == set(newest)
    for item in got["items"]:
        m = newest[(item["post_id"], item["channel_id"])]
        engaged = (m["likes"] or 0) + (m["reposts"] or 0) + (m["replies"] or 0)
        assert (item["likes"], item["reposts"], item["replies"], item["views"]) == (
            m["likes"],
            m["reposts"],
            m["replies"],
            m["views"],
        )
        assert (item["engagement"], item["followers"]) == (engaged, m["followers"])
        assert item["engagement_rate"] == (engaged / m["followers"] if m["followers"] else None)
        assert item["external_id"] == remote_id
    assert got["totals"]["engagement"] == sum(
        (m["likes"] or 0) + (m["reposts"] or 0) + (m["replies"] or 0) for m in newest.values()
    )
    audience = await _get(http, f"{brand}/audience", admin, bucket="hour", **t.today)
    assert {
        (c["channel_id"], datetime.fromisoformat(p["start"]), p["followers"])
        for c in audience["channels"]
        for p in c["points"]
    } == {(ch, at, m["followers"]) for (ch, at), m in per_hour.items()}
    # Publishing per channel: the schedules the per-channel post.scheduled events named.
    per_channel: dict[str, set[str]] = {}
    for e in posts_events:
        p = e["payload"]
        if e["type"] == "post.scheduled" and p.get("channel_id"):
            per_channel.setdefault(p["channel_id"], set()).add(p["post_id"])
    assert {c["channel_id"]: c["scheduled"] for c in pub["channels"]} == {
        channel["id"]: len(per_channel.get(channel["id"], set()))
    }

    # CSV of a series: a header, then one row per bucket and value, summing to the total.
    r = await http.get(
        f"{brand}/series",
        params={"dimension": "language", "format": "csv", **period},
        headers=admin,
    )
    assert r.status_code == 200
    assert r.headers["content-type"].startswith("text/csv")
    table = list(csv.reader(io.StringIO(r.text)))
    assert table[0] == ["bucket_start", "language", "count"]
    assert sum(int(row[2]) for row in table[1:]) == expected_total

    # The client report, HTML with charts and PDF.
    r = await http.get(f"{brand}/report", params=period, headers=admin)
    assert r.status_code == 200
    assert r.headers["content-type"].startswith("text/html")
    assert r.text.count("<svg") == 7
    assert f"<th>Mentions</th><td>{expected_total}</td>" in r.text
    for heading in ("Top posts by engagement", "Audience"):
        assert f"<h2>{heading}</h2>" in r.text
    assert "<th>Post engagement (likes + reposts + replies)</th><td>" in r.text
    r = await http.get(f"{brand}/report", params={**period, "format": "pdf"}, headers=admin)
    assert r.status_code == 200
    assert r.content.startswith(b"%PDF")


async def publish(stack: SessionStack, topic: str, key: str, events: Sequence[Json]) -> None:
    """Events onto a topic in order (one key: one partition), as their producer would."""
    producer = AIOKafkaProducer(bootstrap_servers=stack.bootstrap, acks="all")
    await producer.start()
    try:
        for e in events:
            await producer.send_and_wait(
                stack.topic(topic), json.dumps(e).encode(), key=key.encode()
            )
    finally:
        await producer.stop()


async def all_events(stack: SessionStack, topic: TopicSpec, tenant: str) -> list[Json]:
    """Every event of `tenant` on the topic now: read from the start to the end offsets."""
    consumer = AIOKafkaConsumer(bootstrap_servers=stack.bootstrap, enable_auto_commit=False)
    await consumer.start()
    found: list[Json] = []
    try:
        name = stack.topic(topic.name)
        partitions = [TopicPartition(name, p) for p in range(topic.partitions)]
        consumer.assign(partitions)
        await consumer.seek_to_beginning(*partitions)
        ends = await consumer.end_offsets(partitions)
        while [tp for tp in partitions if await consumer.position(tp) < ends[tp]]:
            for records in (await consumer.getmany(*partitions, timeout_ms=500)).values():
                for r in records:
                    try:
                        body = json.loads(r.value or b"")
                    except ValueError:
                        continue  # another test's poison events share the topic
                    if isinstance(body, dict) and body.get("tenant_id") == tenant:
                        found.append(body)
    finally:
        await consumer.stop()
    return found


def _agent_token(stack: SessionStack, tenant: str, name: str) -> str:
    from shared.auth import issue_token

    return issue_token(stack.auth_secret, tenant_id=tenant, role="agent", subject=name)


async def test_the_brand_zone_and_bad_input(
    services: dict[str, ServiceProcess],
    http: httpx.AsyncClient,
    admin: dict[str, str],
    stack: SessionStack,
    tenant: str,
) -> None:
    brand = services["metrics"].url + "/api/v1/brands/brand-a"
    got = await _get(http, f"{brand}/reporting", admin)
    assert (got["timezone"], got["explicit"]) == ("UTC", False)
    r = await http.put(f"{brand}/reporting", json={"timezone": "Asia/Kolkata"}, headers=admin)
    assert r.status_code == 200, r.text
    s = await _get(http, f"{brand}/series", admin, **{"from": "2026-11-01", "to": "2026-11-03"})
    assert [p["start"] for p in s["points"]] == [
        "2026-11-01T00:00:00+05:30",
        "2026-11-02T00:00:00+05:30",
    ]
    agent = token(stack.auth_secret, tenant, "agent")
    r = await http.put(f"{brand}/reporting", json={"timezone": "UTC"}, headers=agent)
    assert r.status_code == 403
    for params, field in (
        ({"from": "yesterday", "to": "2026-11-02"}, "from"),
        ({"from": "2026-11-02", "to": "2026-11-01"}, "to"),
        ({"from": "2026-11-01", "to": "2026-11-02", "timezone": "Mars/Base"}, "timezone"),
        ({"from": "2026-11-01", "to": "2026-11-02", "metric": "likes"}, "metric"),
        ({"from": "2026-11-01", "to": "2026-11-02", "dimension": "colour"}, "dimension"),
        ({"from": "2020-01-01", "to": "2022-01-01", "bucket": "hour"}, "bucket"),
        ({"from": "2020-01-01", "to": "2023-01-01"}, "to"),
    ):
        r = await http.get(f"{brand}/series", params=params, headers=admin)
        assert r.status_code == 422, (params, r.text)
        assert r.json()["details"][0]["field"] == field, r.text
    r = await http.get(
        f"{brand}/top", params={"from": "2026-11-01", "to": "2026-11-02", "limit": 0}, headers=admin
    )
    assert r.status_code == 422
    assert r.json()["details"][0]["field"] == "query.limit"
    assert (await http.get(f"{brand}/backlog")).status_code == 401


def _records(stack: SessionStack, tenant: str, events: Sequence[Json]) -> list[Record]:
    return [
        Record(
            topic=stack.topic(MENTIONS.name),
            partition=0,
            offset=50_000 + n,
            key=tenant.encode(),
            value=json.dumps(e).encode(),
            headers=(),
        )
        for n, e in enumerate(events)
    ]


async def test_a_redelivered_batch_counts_once_and_a_deleted_mention_leaves_the_counts(
    stack: SessionStack, metrics_pool: asyncpg.Pool, tenant: str
) -> None:
    created = datetime(2026, 11, 3, 10, 15, tzinfo=UTC)
    payloads = [
        MentionPayload(
            mention_id=uuid.uuid4(),
            source_id=uuid.uuid4(),
            network="generic",
            external_id=f"r-{n}",
            text=f"Acme #redelivery number {n}",
            language="en",
            created_at=created,
            author=Author(id=f"a-{n % 3}", handle="@a"),
            thread=Thread(root_external_id=f"r-{n}"),
        )
        for n in range(20)
    ]
    events = [
        envelope_for(p, tenant_id=tenant, brand_id="brand-r", occurred_at=created) for p in payloads
    ]
    broker = KafkaBroker(stack.bootstrap)
    consumer = IdempotentBatchConsumer[MentionEvent](
        name="metrics.mentions",
        pool_provider=lambda: metrics_pool,
        broker=broker,
        metrics=ServiceMetrics("test"),
        models=MENTION_MODELS,
        effect=apply_mentions,
    )
    batch = _records(stack, tenant, events)
    await consumer.handle(batch)
    await consumer.handle(batch)
    await consumer.handle(batch[5:10] + batch[:3])

    async def counts() -> tuple[int, int, int]:
        async with metrics_pool.acquire() as conn:
            row = await conn.fetchrow(
                """SELECT
                   (SELECT sum(n) FROM hourly WHERE tenant_id = $1 AND metric = 'mentions'
                       AND dimension = 'all') AS mentions,
                   (SELECT sum(n) FROM tokens WHERE tenant_id = $1 AND kind = 'hashtag') AS tags,
                   (SELECT count(DISTINCT token) FROM tokens WHERE tenant_id = $1
                       AND kind = 'author') AS authors""",
                tenant,
            )
        assert row is not None
        return (int(row["mentions"] or 0), int(row["tags"] or 0), int(row["authors"]))

    assert await counts() == (20, 20, 3)
    deleted = [
        envelope_for(
            payload,
            event_type="mention.deleted",
            tenant_id=tenant,
            brand_id="brand-r",
            occurred_at=created,
        )
        for payload in [_deleted(p) for p in payloads[:5]]
    ]
    second = _records(stack, tenant, deleted)
    await consumer.handle(second)
    await consumer.handle(second)
    assert await counts() == (15, 15, 3)


def _deleted(p: MentionPayload) -> Any:
    from shared.events import MentionDeletedPayload

    return MentionDeletedPayload(
        mention_id=p.mention_id,
        network=p.network,
        external_id=p.external_id,
        deleted_at=datetime(2026, 11, 4, tzinfo=UTC),
    )
