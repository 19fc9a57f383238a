"""The pipeline benchmark's naive baseline: the same work as ingest → inbox → metrics, written the
straightforward way — a chain of FastStream handlers that each take one message, write one row,
commit, and publish the next message.

`python -m bench.naive <stage> --bootstrap B --dsn D --prefix P --queries FILE` runs one stage as
its own process (as three small services would run):

- `ingest`: match the mention against its brand's listening query, insert it (unique per tenant
  and external id), publish it to the triage topic if it was new;
- `inbox`: triage it (the inbox's own triage function), insert the item, publish it on;
- `metrics`: add one to the brand's hourly counter.
"""

from __future__ import annotations

import argparse
import asyncio
import json
import logging
from datetime import datetime
from pathlib import Path
from typing import Any

import asyncpg
from faststream import FastStream
from faststream.kafka import KafkaBroker

from services.inbox.triage import triage
from services.ingest.listening import Matcher, MatchInput, parse

RAW, TRIAGE, COUNT = "naive.raw", "naive.triage", "naive.count"
STAGES = ("ingest", "inbox", "metrics")

SCHEMA = """
CREATE SCHEMA IF NOT EXISTS naive;
CREATE TABLE IF NOT EXISTS naive.mentions (
    tenant_id text NOT NULL, brand_id text NOT NULL, external_id text NOT NULL,
    text text NOT NULL, author_handle text, created_at timestamptz NOT NULL,
    matched boolean NOT NULL, PRIMARY KEY (tenant_id, external_id));
CREATE TABLE IF NOT EXISTS naive.items (
    tenant_id text NOT NULL, brand_id text NOT NULL, external_id text NOT NULL,
    text text NOT NULL, sentiment text NOT NULL, intent text NOT NULL, spam boolean NOT NULL,
    priority integer NOT NULL, created_at timestamptz NOT NULL,
    received_at timestamptz NOT NULL DEFAULT clock_timestamp(),
    PRIMARY KEY (tenant_id, external_id));
CREATE TABLE IF NOT EXISTS naive.counts (
    tenant_id text NOT NULL, brand_id text NOT NULL, bucket timestamptz NOT NULL,
    n bigint NOT NULL, PRIMARY KEY (tenant_id, brand_id, bucket));
"""


def build(stage: str, bootstrap: str, dsn: str, prefix: str, queries: dict[str, str]) -> FastStream:
    # Per-message INFO logging off, as a production deployment would run it.
    broker = KafkaBroker(bootstrap, log_level=logging.DEBUG, logger=None)
    matchers = {tenant: Matcher([(0, parse(expr))]) for tenant, expr in queries.items()}
    pool: dict[str, asyncpg.Pool] = {}
    topic_in = prefix + {"ingest": RAW, "inbox": TRIAGE, "metrics": COUNT}[stage]

    @broker.subscriber(topic_in, group_id=f"{prefix}naive-{stage}", auto_offset_reset="earliest")
    async def handle(body: dict[str, Any]) -> None:
        db = pool["db"]
        m = body["mention"]
        created = datetime.fromisoformat(m["created_at"])
        if stage == "ingest":
            matched = bool(
                matchers[body["tenant_id"]].match(
                    MatchInput(m["text"], m.get("language"), "generic", m["author"]["handle"])
                )
            )
            inserted = await db.fetchval(
                "INSERT INTO naive.mentions VALUES ($1, $2, $3, $4, $5, $6, $7)"
                " ON CONFLICT DO NOTHING RETURNING true",
                body["tenant_id"],
                body["brand_id"],
                m["external_id"],
                m["text"],
                m["author"]["handle"],
                created,
                matched,
            )
            if inserted:
                await broker.publish(body, prefix + TRIAGE)
        elif stage == "inbox":
            verdict = triage(
                m["text"],
                language=m.get("language"),
                author_followers=m["author"].get("followers"),
                author_handle=m["author"]["handle"],
            )
            inserted = await db.fetchval(
                "INSERT INTO naive.items (tenant_id, brand_id, external_id, text, sentiment,"
                " intent, spam, priority, created_at)"
                " VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9)"
                " ON CONFLICT DO NOTHING RETURNING true",
                body["tenant_id"],
                body["brand_id"],
                m["external_id"],
                m["text"],
                verdict.sentiment.label,
                verdict.intent,
                verdict.spam.is_spam,
                verdict.priority,
                created,
            )
            if inserted:
                await broker.publish(body, prefix + COUNT)
        else:
            await db.execute(
                "INSERT INTO naive.counts VALUES ($1, $2, date_trunc('hour', $3::timestamptz), 1)"
                " ON CONFLICT (tenant_id, brand_id, bucket) DO UPDATE"
                " SET n = naive.counts.n + 1",
                body["tenant_id"],
                body["brand_id"],
                created,
            )

    app = FastStream(broker)

    @app.on_startup
    async def connect() -> None:
        pool["db"] = await asyncpg.create_pool(dsn, min_size=1, max_size=2)

    @app.after_shutdown
    async def disconnect() -> None:
        await pool["db"].close()

    return app


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("stage", choices=STAGES)
    parser.add_argument("--bootstrap", required=True)
    parser.add_argument("--dsn", required=True)
    parser.add_argument("--prefix", required=True)
    parser.add_argument("--queries", type=Path, required=True, help="JSON {tenant: expression}")
    args = parser.parse_args()
    queries = json.loads(args.queries.read_text())
    app = build(args.stage, args.bootstrap, args.dsn, args.prefix, queries)
    asyncio.run(app.run())


if __name__ == "__main__":
    main()
