"""Benchmark of the inbox agent list (`repository.list_items`) at 1,000,000 items in one tenant.

Run `python -m bench.inbox_list [--items 1000000] [--iterations 200] [--keep]` with the dev stack's
Postgres up (`smm dev up --infra-only`): it loads a throwaway database with the real migrations,
times every filter and sort agents use (under each Postgres `plan_cache_mode`, since asyncpg
caches the statements), prints a table and writes bench/results/inbox_list.json.
"""

# ruff: noqa: RUF001 -- the Russian part of the generated text is Cyrillic on purpose.

from __future__ import annotations

import argparse
import asyncio
import gc
import itertools
import json
import math
import os
import platform
import random
import re
import statistics
import time
import uuid
from collections.abc import Callable, Iterator, Sequence
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any, cast

import asyncpg

from bench.report import cpu_model, memory_gb
from devstack.state import admin_dsn, postgres_running
from services.inbox import repository
from services.inbox.config import DEFAULT_SLA_TARGETS
from services.inbox.repository import ItemFilter
from services.inbox.triage import priority_level
from shared.db import Connection, create_pool
from shared.migrations import migrate

RESULTS = Path(__file__).parent / "results" / "inbox_list.json"
MIGRATIONS = Path(__file__).resolve().parents[1] / "services" / "inbox" / "migrations"
SCHEMA = "inbox"
TARGET_P99_MS = 50.0
PAGE = 50
MAIN_TENANT = "tenant-big"
OTHER_TENANTS = 4
OTHER_SHARE = 0.05  # the other tenants' rows, as a share of the big tenant's
# Only databases of this bench may be created or dropped: the Postgres is the shared dev stack's.
_BENCH_DATABASE = re.compile(r"^smm_bench_[a-z0-9_]+$")


def _words(text: str) -> list[str]:
    return text.split()


NETWORKS = ("bluesky", "telegram", "vk", "youtube", "mastodon", "reddit")
_NETWORK_CUM = list(itertools.accumulate((0.22, 0.2, 0.18, 0.16, 0.12, 0.12)))
LANGUAGES: tuple[str | None, ...] = ("en", "ru", "de", "es", "pt", "fr", None)
_LANGUAGE_CUM = list(itertools.accumulate((0.5, 0.2, 0.1, 0.07, 0.05, 0.04, 0.04)))
STATUSES = ("new", "open", "pending", "snoozed", "closed")
# A conversation's status by its age: arrivals are steady over the year, recent work is in
# progress, old work is mostly closed but a backlog nobody finished stays new or open (in all,
# ~7 % new/open, ~11 % pending, ~80 % closed).
_STATUS_BY_AGE: tuple[tuple[float, list[float]], ...] = (
    (1, list(itertools.accumulate((0.40, 0.35, 0.10, 0.02, 0.13)))),
    (7, list(itertools.accumulate((0.10, 0.20, 0.25, 0.05, 0.40)))),
    (30, list(itertools.accumulate((0.05, 0.08, 0.15, 0.02, 0.70)))),
    (math.inf, list(itertools.accumulate((0.025, 0.03, 0.10, 0.01, 0.835)))),
)
HISTORY_DAYS = 365
TAGS = _words("""refund delivery bug billing vip shipping login outage churn-risk feature-request
    press influencer legal praise competitor""")
_TAG_CUM = list(itertools.accumulate(1 / rank for rank in range(1, len(TAGS) + 1)))
_INTENTS = {
    "negative": (("complaint", "question", "other"), (0.5, 0.3, 0.2)),
    "neutral": (("question", "purchase", "other"), (0.35, 0.1, 0.55)),
    "positive": (("praise", "question", "purchase", "other"), (0.6, 0.1, 0.1, 0.2)),
}
_SIGNALS = [
    "[]",
    json.dumps([{"name": "base", "weight": 20, "detail": ""}]),
    json.dumps(
        [
            {"name": "base", "weight": 20, "detail": ""},
            {"name": "sentiment", "weight": 25, "detail": "negative"},
            {"name": "intent", "weight": 10, "detail": "complaint"},
        ]
    ),
    json.dumps(
        [
            {"name": "base", "weight": 20, "detail": ""},
            {"name": "author_reach", "weight": 15, "detail": "48,200 followers"},
        ]
    ),
]

# Real frequent words first, then the domain's, then a long tail of generated words: ranked by a
# Zipf law, so a search hits anything from most of the items to a few hundred of them.
_COMMON = {
    "en": """the a to and i of in is it you that for on my was with this not but are have be at
        so just can what your me do get all they out no like up if about""",
    "ru": """и в не на я что с как это а то все так но да ты к у же вы за бы по только мне было
        вот от меня еще нет о из когда даже ну уже или""",
    "de": """der die und ich das ist nicht zu es sie in mit den ein auf für mir noch aber auch
        wie so was bei nach""",
    "es": "el la de que y en los se no un por con una para es lo como más pero",
    "pt": "o a de que e do da em um para é com não uma os no se na por mais",
    "fr": "le la de et les des en un une est que pas pour sur ne avec il je ce",
}
_DOMAIN = {
    "en": """order delivery refund support app card account price help problem late broken thanks
        great love waiting package login update payment charge cancel subscription store phone
        screen battery service crash bug shipping return scam awful excellent slow fast courier
        manager agent response weeks email password""",
    "ru": """заказ доставка возврат поддержка приложение карта счет цена помощь проблема курьер
        спасибо отлично ужасно сломался работает жду оплата списали отмена подписка магазин
        телефон экран сбой вход пароль менеджер""",
    "de": """bestellung lieferung rückerstattung hilfe konto preis problem danke karte zahlung
        kündigung versand paket fehler kundenservice warten""",
    "es": "pedido entrega reembolso ayuda cuenta precio problema gracias tarjeta pago envío",
    "pt": "pedido entrega reembolso ajuda conta preço problema obrigado cartão pagamento",
    "fr": "commande livraison remboursement aide compte prix problème merci carte paiement",
}
_LATIN = _words("""ba be bi bo bu da de di do fa fe fi ga go ka ke ki ko la le li lo lu ma me mi mo
    na ne ni no pa pe po ra re ri ro sa se si so ta te ti to va ve vi vo za ze zi zo tri pro str""")
_CYRILLIC = _words("""ба бе би бо ва ве ви во да де ди до за зе ка ке ки ко ла ле ли ло ма ме ми мо
    на не ни но ра ре ри ро са се си со та те ти то бер тек мир тор вол""")
_TAIL = {"en": 4000, "ru": 2500, "de": 1500, "es": 800, "pt": 800, "fr": 800}


@dataclass(frozen=True)
class Vocabulary:
    words: list[str]
    cum_weights: list[float]

    def rank_range(self, start: int, stop: int) -> list[str]:
        return self.words[start:stop]


def make_vocabularies(rng: random.Random) -> dict[str | None, Vocabulary]:
    vocabularies: dict[str | None, Vocabulary] = {}
    for language, tail_size in _TAIL.items():
        words = _words(_COMMON[language]) + _words(_DOMAIN[language])
        syllables = _CYRILLIC if language == "ru" else _LATIN
        seen = set(words)
        while len(words) < len(_words(_COMMON[language])) + tail_size:
            word = "".join(rng.choice(syllables) for _ in range(rng.choice((2, 3, 3, 4))))
            if word not in seen:
                seen.add(word)
                words.append(word)
        cum = list(itertools.accumulate(1 / rank for rank in range(1, len(words) + 1)))
        vocabularies[language] = Vocabulary(words, cum)
    vocabularies[None] = vocabularies["en"]  # undetected language: mostly short English
    return vocabularies


@dataclass
class Tenant:
    id: str
    items: int
    brands: list[str]
    agents: list[str]
    teams: list[str]
    brand_cum: list[float] = field(default_factory=list)
    agent_cum: list[float] = field(default_factory=list)
    sources: dict[tuple[str, str], uuid.UUID] = field(default_factory=dict)

    def team_of(self, agent: str) -> str:
        return self.teams[self.agents.index(agent) % len(self.teams)]


def make_tenants(rng: random.Random, items: int) -> list[Tenant]:
    def tenant(tenant_id: str, count: int, brands: int, agents: int, teams: int) -> Tenant:
        t = Tenant(
            tenant_id,
            count,
            [f"brand-{n:02d}" for n in range(1, brands + 1)],
            [f"agent-{n:02d}" for n in range(1, agents + 1)],
            [f"team-{n}" for n in range(1, teams + 1)],
        )
        # A few big brands and busy agents carry most of the volume.
        t.brand_cum = list(itertools.accumulate(1 / r**0.9 for r in range(1, brands + 1)))
        t.agent_cum = list(itertools.accumulate(1 / r**0.5 for r in range(1, agents + 1)))
        t.sources = {
            (b, n): uuid.UUID(int=rng.getrandbits(128), version=4)
            for b in t.brands
            for n in NETWORKS
        }
        return t

    others = round(items * OTHER_SHARE / OTHER_TENANTS)
    return [tenant(MAIN_TENANT, items, 20, 30, 5)] + [
        tenant(f"tenant-{n}", others, 10, 8, 2) for n in range(1, OTHER_TENANTS + 1)
    ]


def plan_conversations(
    rng: random.Random, tenants: Sequence[Tenant], now: float
) -> list[tuple[float, int, int, str]]:
    """Every conversation of every tenant, oldest first, so the heap is in arrival order as in
    production (the list's index walks then read neighbouring pages)."""
    planned: list[tuple[float, int, int, str]] = []
    day = 86_400.0
    for index, tenant in enumerate(tenants):
        left = tenant.items
        while left > 0:
            if rng.random() < 0.005:  # a viral post's thread
                size = rng.randint(20, 150)
            else:
                size = 1
                while rng.random() < 0.6:
                    size += 1
            size = min(size, left)
            left -= size
            age = rng.random() * HISTORY_DAYS * day
            weights = next(cum for days, cum in _STATUS_BY_AGE if age < days * day)
            status = rng.choices(STATUSES, cum_weights=weights)[0]
            planned.append((now - age, index, size, status))
    planned.sort()
    return planned


ITEM_COLUMNS = (
    "id", "tenant_id", "brand_id", "source_id", "network", "external_id", "kind", "text", "url",
    "language", "author_id", "author_handle", "author_display_name", "author_followers",
    "thread_root_id", "parent_external_id", "created_at", "received_at", "event_id", "edited_at",
    "deleted_at", "sentiment", "sentiment_score", "intent", "spam", "priority", "level",
    "signals", "conversation_id", "status", "assignee_id", "team_id", "due_at", "sla_state",
    "tags", "rule_ids", "hidden_at", "claimed_by", "claimed_at", "claim_expires_at",
)  # fmt: skip
# The conversation's fields an item carries, filled once the whole thread is generated.
_DUE_AT, _SLA_STATE, _CLAIMED_BY, _CLAIMED_AT, _CLAIM_EXPIRES_AT = (
    ITEM_COLUMNS.index(name)
    for name in ("due_at", "sla_state", "claimed_by", "claimed_at", "claim_expires_at")
)
CONVERSATION_COLUMNS = (
    "id", "tenant_id", "brand_id", "network", "thread_root_id", "status", "snoozed_until",
    "assignee_id", "team_id", "priority", "level", "sla_kind", "sla_started_at", "near_due_at",
    "due_at", "sla_state", "first_response_at", "first_response_s", "last_author_at",
    "last_reply_at", "item_count", "created_at", "updated_at",
)  # fmt: skip


@dataclass
class _Sla:
    kind: str | None = None
    state: str = "none"
    started_at: datetime | None = None
    near_due_at: datetime | None = None
    due_at: datetime | None = None
    first_response_at: datetime | None = None


def _sla(
    rng: random.Random, status: str, level: str, start: datetime, last: datetime, now: datetime
) -> _Sla:
    budget = timedelta(minutes=DEFAULT_SLA_TARGETS[level].first_response_minutes)  # type: ignore[index]
    if status == "new" or (status == "open" and rng.random() < 0.7):
        # A running clock since the author's last message: due, nearly due, or late.
        kind = "first" if status == "new" or rng.random() < 0.4 else "next"
        due = last + budget
        near = last + budget * 0.8
        state = "breached" if due <= now else "near_breach" if near <= now else "ok"
        return _Sla(kind, state, last, near, due, None)
    # A stopped clock keeps its outcome (met or breached) but nothing is due.
    state = rng.choices(("met", "breached", "none"), (0.7, 0.12, 0.18))[0]
    if state == "none":
        return _Sla()
    answered = min(start + budget * rng.uniform(0.1, 2.0), now)
    return _Sla("first", state, start, None, None, answered)


def generate(
    rng: random.Random,
    tenants: Sequence[Tenant],
    planned: Sequence[tuple[float, int, int, str]],
    vocabularies: dict[str | None, Vocabulary],
    now: datetime,
    conversations: list[tuple[Any, ...]],
) -> Iterator[tuple[Any, ...]]:
    """Yield item rows in arrival order (each planned conversation is `(start, tenant index,
    items, status)`); append each thread's conversation row to `conversations`."""
    random_ = rng.random
    choices = rng.choices
    randrange = rng.randrange
    counters = [itertools.count(1) for _ in tenants]
    epoch = datetime(1970, 1, 1, tzinfo=UTC)
    sentiments = ("negative", "neutral", "positive")
    for start_s, tenant_index, size, status in planned:
        tenant = tenants[tenant_index]
        start = epoch + timedelta(seconds=start_s)
        brand = choices(tenant.brands, cum_weights=tenant.brand_cum)[0]
        network = choices(NETWORKS, cum_weights=_NETWORK_CUM)[0]
        language = choices(LANGUAGES, cum_weights=_LANGUAGE_CUM)[0]
        vocabulary = vocabularies[language]
        conversation_id = uuid.UUID(int=rng.getrandbits(128), version=4)
        # Assignment follows the workflow: new work waits in a team queue, handled work has
        # an owner.
        unassigned = {"new": 0.7, "open": 0.08, "pending": 0.05, "snoozed": 0.0}.get(status, 0.12)
        if random_() < unassigned:
            assignee = None
            team = rng.choice(tenant.teams) if random_() < 0.8 else None
        else:
            assignee = choices(tenant.agents, cum_weights=tenant.agent_cum)[0]
            team = tenant.team_of(assignee)
        dm = random_() < 0.1
        first_kind = (
            "direct_message"
            if dm
            else choices(("mention", "comment", "review", "post"), (0.55, 0.3, 0.1, 0.05))[0]
        )
        root = ""
        previous = ""
        at = start
        top_priority = 0
        rows: list[list[Any]] = []
        for position in range(size):
            external_id = str(next(counters[tenant_index]))
            if position == 0:
                root = external_id
                kind = first_kind
            else:
                kind = "direct_message" if dm else ("reply" if random_() < 0.65 else "comment")
                at = min(at + timedelta(seconds=rng.expovariate(1 / 10_800)), now)
            words = choices(
                vocabulary.words,
                cum_weights=vocabulary.cum_weights,
                k=max(3, min(80, int(rng.lognormvariate(2.8, 0.5)))),
            )
            if random_() < 0.35:
                words.insert(randrange(len(words)), brand.replace("-", ""))
            if random_() < 0.05:
                words += ["order", str(randrange(10**6, 10**7))]
            if random_() < 0.08:
                words.append("#" + choices(TAGS, cum_weights=_TAG_CUM)[0])
            text = " ".join(words).capitalize() + rng.choice(".!?")
            sentiment = choices(sentiments, (0.25, 0.45, 0.3))[0]
            score = {"negative": -0.3, "neutral": 0.0, "positive": 0.3}[sentiment]
            intents, weights = _INTENTS[sentiment]
            intent = choices(intents, weights)[0]
            spam = random_() < 0.03
            followers = int(rng.lognormvariate(5.5, 2.0))
            priority = int(rng.betavariate(1.4, 4.5) * 100)
            if sentiment == "negative":
                priority += randrange(5, 30)
            if intent == "complaint":
                priority += 10
            if followers > 10_000:
                priority += 15
            priority = 0 if spam else min(priority, 100)
            top_priority = max(top_priority, priority)
            tags: list[str] = []
            if random_() < 0.1:
                tags = list(
                    dict.fromkeys(choices(TAGS, cum_weights=_TAG_CUM, k=rng.choice((1, 1, 2))))
                )
            author = int(50_000 * random_() ** 3)
            received = at + timedelta(seconds=randrange(1, 120))
            rows.append(
                [
                    uuid.UUID(int=rng.getrandbits(128), version=4),
                    tenant.id,
                    brand,
                    tenant.sources[brand, network],
                    network,
                    external_id,
                    kind,
                    text,
                    f"https://{network}.example/{external_id}" if random_() < 0.6 else None,
                    language,
                    f"{network}:{author}",
                    f"user{author}",
                    f"User {author}" if random_() < 0.5 else None,
                    followers,
                    root,
                    previous or None,
                    at,
                    received,
                    uuid.UUID(int=rng.getrandbits(128), version=4),
                    received + timedelta(minutes=5) if random_() < 0.02 else None,
                    received + timedelta(hours=1) if random_() < 0.007 else None,
                    sentiment,
                    score + rng.uniform(-0.3, 0.3),
                    intent,
                    spam,
                    priority,
                    priority_level(priority),
                    _SIGNALS[2 if sentiment == "negative" else randrange(0, 4)],
                    conversation_id,
                    status,
                    assignee,
                    team,
                    None,  # due_at, the conversation's: set below
                    "none",  # sla_state, likewise
                    tags,
                    [f"rule-{TAGS.index(t)}" for t in tags],
                    received + timedelta(hours=2) if random_() < 0.003 else None,
                    None,
                    None,
                    None,
                ]
            )
            previous = external_id
        level = priority_level(top_priority)
        sla = _sla(rng, status, level, start, at, now)
        claimed = status in ("new", "open") and assignee is not None and random_() < 0.02
        for row in rows:
            row[_DUE_AT], row[_SLA_STATE] = sla.due_at, sla.state
            if claimed:
                row[_CLAIMED_BY], row[_CLAIMED_AT] = assignee, now
                row[_CLAIM_EXPIRES_AT] = now + timedelta(minutes=5)
            yield tuple(row)
        conversations.append(
            (
                conversation_id,
                tenant.id,
                brand,
                network,
                root,
                status,
                now + timedelta(hours=randrange(1, 72)) if status == "snoozed" else None,
                assignee,
                team,
                top_priority,
                level,
                sla.kind,
                sla.started_at,
                sla.near_due_at,
                sla.due_at,
                sla.state,
                sla.first_response_at,
                (sla.first_response_at - start).total_seconds() if sla.first_response_at else None,
                at,
                sla.first_response_at,
                size,
                start,
                max(at, sla.first_response_at or at),
            )
        )


@dataclass(frozen=True)
class LoadReport:
    migrations: list[str]
    rows_s: float
    indexes_s: float
    analyze_s: float
    items: int
    conversations: int
    table_mb: float
    indexes_mb: float

    @property
    def total_s(self) -> float:
        return self.rows_s + self.indexes_s + self.analyze_s


async def load(dsn: str, items: int, seed: int) -> LoadReport:
    """Apply the real migrations, then COPY the generated rows with the items table's secondary
    indexes and foreign key dropped and rebuilt from their own definitions afterwards (a bulk
    load's usual shape; the indexes are the migrations' exactly)."""
    conn = await asyncpg.connect(dsn)
    try:
        applied = await migrate(conn, SCHEMA, MIGRATIONS)
        await conn.execute("SET maintenance_work_mem = '1GB'; SET synchronous_commit = off")
        indexes = await conn.fetch(
            """
            SELECT c.relname AS name, pg_get_indexdef(c.oid) AS definition
            FROM pg_index x JOIN pg_class c ON c.oid = x.indexrelid
            WHERE x.indrelid = 'items'::regclass
              AND NOT EXISTS (SELECT 1 FROM pg_constraint k WHERE k.conindid = x.indexrelid)
            """
        )
        foreign_keys = await conn.fetch(
            "SELECT conname AS name, pg_get_constraintdef(oid) AS definition FROM pg_constraint"
            " WHERE conrelid = 'items'::regclass AND contype = 'f'"
        )
        for index in indexes:
            await conn.execute(f'DROP INDEX "{index["name"]}"')
        for key in foreign_keys:
            await conn.execute(f'ALTER TABLE items DROP CONSTRAINT "{key["name"]}"')

        rng = random.Random(seed)  # noqa: S311 -- reproducible test data, not secrets
        tenants = make_tenants(rng, items)
        now = datetime.now(UTC)
        planned = plan_conversations(rng, tenants, now.timestamp())
        vocabularies = make_vocabularies(random.Random(seed + 1))  # noqa: S311
        conversations: list[tuple[Any, ...]] = []
        began = time.perf_counter()
        copied = await conn.copy_records_to_table(
            "items",
            records=generate(rng, tenants, planned, vocabularies, now, conversations),
            columns=ITEM_COLUMNS,
            schema_name=SCHEMA,
        )
        await conn.copy_records_to_table(
            "conversations", records=conversations, columns=CONVERSATION_COLUMNS, schema_name=SCHEMA
        )
        rows_s = time.perf_counter() - began

        began = time.perf_counter()
        for index in indexes:
            await conn.execute(index["definition"])
        for key in foreign_keys:
            await conn.execute(
                f'ALTER TABLE items ADD CONSTRAINT "{key["name"]}" {key["definition"]}'
            )
        indexes_s = time.perf_counter() - began

        began = time.perf_counter()
        await conn.execute("VACUUM (ANALYZE) items")
        await conn.execute("VACUUM (ANALYZE) conversations")
        analyze_s = time.perf_counter() - began
        sizes = await conn.fetchrow(
            "SELECT pg_table_size('items') AS t, pg_indexes_size('items') AS i"
        )
        assert sizes is not None
        return LoadReport(
            migrations=applied,
            rows_s=rows_s,
            indexes_s=indexes_s,
            analyze_s=analyze_s,
            items=int(copied.split()[-1]),
            conversations=len(conversations),
            table_mb=sizes["t"] / 2**20,
            indexes_mb=sizes["i"] / 2**20,
        )
    finally:
        await conn.close()


# --- the query shapes ----------------------------------------------------------------------------


@dataclass(frozen=True)
class Catalog:
    """What the big tenant's agents pick filters from."""

    brands: list[str]
    agents: list[str]
    teams: list[str]
    search: dict[str, list[list[str]]]  # search words by how common they are, by language


def make_catalog(items: int, seed: int) -> Catalog:
    rng = random.Random(seed)  # noqa: S311 -- the same generator as the load, for its vocabulary
    tenant = make_tenants(rng, items)[0]
    vocabularies = make_vocabularies(random.Random(seed + 1))  # noqa: S311
    en, ru = vocabularies["en"], vocabularies["ru"]
    return Catalog(
        brands=tenant.brands,
        agents=tenant.agents,
        teams=tenant.teams,
        search={
            "common": [en.rank_range(0, 20), ru.rank_range(0, 10)],
            "domain": [_words(_DOMAIN["en"]), _words(_DOMAIN["ru"])],
            "rare": [en.rank_range(300, 4000), ru.rank_range(300, 2500)],
            "brand": [[b.replace("-", "") for b in tenant.brands]],
        },
    )


def _search(rng: random.Random, catalog: Catalog) -> tuple[str, str]:
    kind = rng.choice(sorted(catalog.search))
    group = rng.choice(catalog.search[kind])
    # Agents type one word, or two of one language about one topic ("refund late").
    words = rng.sample(group, 2 if kind == "domain" and rng.random() < 0.4 else 1)
    return " ".join(words), kind


Pick = Callable[[random.Random, Catalog], tuple[ItemFilter, str]]


@dataclass(frozen=True)
class Shape:
    name: str
    sort: str
    pick: Pick


def _fixed(filters: ItemFilter) -> Pick:
    return lambda rng, catalog: (filters, "")


def _assignee_open(rng: random.Random, c: Catalog) -> tuple[ItemFilter, str]:
    return ItemFilter(assignee_id=rng.choice(c.agents), statuses=("open",)), ""


def _team_queue(rng: random.Random, c: Catalog) -> tuple[ItemFilter, str]:
    return ItemFilter(unassigned=True, team_id=rng.choice(c.teams)), ""


def _brand(rng: random.Random, c: Catalog) -> tuple[ItemFilter, str]:
    return ItemFilter(brand_ids=(rng.choice(c.brands),)), ""


def _tag(rng: random.Random, c: Catalog) -> tuple[ItemFilter, str]:
    tag = rng.choice(TAGS)
    return ItemFilter(tag=tag), tag


def _text(rng: random.Random, c: Catalog) -> tuple[ItemFilter, str]:
    words, kind = _search(rng, c)
    return ItemFilter(text=words), kind


def _text_status(rng: random.Random, c: Catalog) -> tuple[ItemFilter, str]:
    words, kind = _search(rng, c)
    statuses = rng.choice((("open",), ("new", "open"), ("closed",)))
    return ItemFilter(text=words, statuses=statuses), kind


def _network_language(rng: random.Random, c: Catalog) -> tuple[ItemFilter, str]:
    language = rng.choice([lang for lang in LANGUAGES if lang is not None])
    return ItemFilter(networks=(rng.choice(NETWORKS),), languages=(language,)), ""


SHAPES = (
    Shape("newest", "newest", _fixed(ItemFilter())),
    Shape("priority", "priority", _fixed(ItemFilter())),
    Shape("status new+open, priority", "priority", _fixed(ItemFilter(statuses=("new", "open")))),
    Shape("assignee + open, priority", "priority", _assignee_open),
    Shape("unassigned + team", "newest", _team_queue),
    Shape("brand, priority", "priority", _brand),
    Shape("sentiment negative", "newest", _fixed(ItemFilter(sentiments=("negative",)))),
    Shape("level urgent", "newest", _fixed(ItemFilter(levels=("urgent",)))),
    Shape("sla breached, due", "due", _fixed(ItemFilter(sla_states=("breached",)))),
    Shape("due", "due", _fixed(ItemFilter())),
    Shape("tag", "newest", _tag),
    Shape("q (text search)", "newest", _text),
    Shape("q + status", "newest", _text_status),
    Shape("network + language", "newest", _network_language),
    Shape("min_priority 75", "newest", _fixed(ItemFilter(min_priority=75))),
)


@dataclass(frozen=True)
class Sample:
    ms: float
    rows: int
    page: int
    label: str
    filters: ItemFilter
    after: list[Any] | None


async def measure(
    pool: asyncpg.Pool, catalog: Catalog, iterations: int, warmup: int, seed: int
) -> dict[str, list[Sample]]:
    """Round after round, one query of every shape (so background load hits all shapes alike);
    three times in ten the agent scrolls on for two or three more pages."""
    rng = random.Random(seed)  # noqa: S311 -- reproducible parameters
    samples: dict[str, list[Sample]] = {shape.name: [] for shape in SHAPES}
    gc.collect()
    gc.freeze()  # as the inbox does at start (shared/runtime.py)
    for round_ in range(warmup + iterations):
        for shape in SHAPES:
            filters, label = shape.pick(rng, catalog)
            pages = rng.choice((3, 4)) if rng.random() < 0.3 else 1
            after: list[Any] | None = None
            for page in range(1, pages + 1):
                async with pool.acquire() as conn:
                    began = time.perf_counter()
                    rows = await repository.list_items(
                        conn,
                        tenant_id=MAIN_TENANT,
                        filters=filters,
                        sort=shape.sort,
                        after=after,
                        limit=PAGE + 1,  # as the API asks: one more tells whether a page follows
                    )
                    ms = (time.perf_counter() - began) * 1000
                if round_ >= warmup:
                    samples[shape.name].append(
                        Sample(ms, min(len(rows), PAGE), page, label, filters, after)
                    )
                if len(rows) <= PAGE:
                    break
                after = repository.sort_key(shape.sort, rows[PAGE - 1])
    return samples


@dataclass(frozen=True)
class View:
    """A list an agent opens as is: its first page and, scrolled on by cursor, a deep page."""

    name: str
    query: str  # as `GET /items` takes it
    sort: str
    filters: ItemFilter


VIEWS = (
    # `GET /items` without parameters: every status, newest first.
    View("API defaults", "GET /items", "newest", ItemFilter()),
    # The working queue the README and the demo open: what is waiting, most urgent first.
    View(
        "working queue",
        "GET /items?status=new&status=open&sort=priority",
        "priority",
        ItemFilter(statuses=("new", "open")),
    ),
)


async def _page(
    pool: asyncpg.Pool, view: View, after: list[Any] | None
) -> tuple[float, list[dict[str, Any]]]:
    async with pool.acquire() as conn:
        began = time.perf_counter()
        rows = await repository.list_items(
            conn,
            tenant_id=MAIN_TENANT,
            filters=view.filters,
            sort=view.sort,
            after=after,
            limit=PAGE + 1,
        )
        return (time.perf_counter() - began) * 1000, rows


async def deep_cursor(pool: asyncpg.Pool, view: View, page: int) -> tuple[int, list[Any] | None]:
    """The key `next_cursor` carries to page `page` of the view (or to its last page, if it has
    fewer), found by following the cursor from the first page as the agent's scrolling does."""
    after: list[Any] | None = None
    reached = 1
    while reached < page:
        _, rows = await _page(pool, view, after)
        if len(rows) <= PAGE:
            break
        after = repository.sort_key(view.sort, rows[PAGE - 1])
        reached += 1
    return reached, after


async def measure_views(
    pool: asyncpg.Pool, iterations: int, warmup: int, deep_page: int
) -> dict[str, dict[str, Any]]:
    """Round after round, the first and the deep page of every view; their times."""
    deep = {view.name: await deep_cursor(pool, view, deep_page) for view in VIEWS}
    first_ms: dict[str, list[float]] = {view.name: [] for view in VIEWS}
    deep_ms: dict[str, list[float]] = {view.name: [] for view in VIEWS}
    for round_ in range(warmup + iterations):
        for view in VIEWS:
            first, _ = await _page(pool, view, None)
            later, rows = await _page(pool, view, deep[view.name][1])
            assert rows, f"{view.name}: page {deep[view.name][0]} is empty"
            if round_ >= warmup:
                first_ms[view.name].append(first)
                deep_ms[view.name].append(later)
    return {
        view.name: {
            "first": summarize_ms(first_ms[view.name]),
            "deep": summarize_ms(deep_ms[view.name]),
            "deep_page": deep[view.name][0],
        }
        for view in VIEWS
    }


def summarize_ms(samples: Sequence[float]) -> dict[str, float]:
    ms = sorted(samples)
    cuts = statistics.quantiles(ms * 2 if len(ms) == 1 else ms, n=100, method="inclusive")
    return {
        "queries": len(ms),
        "p50_ms": round(cuts[49], 2),
        "p95_ms": round(cuts[94], 2),
        "p99_ms": round(cuts[98], 2),
        "max_ms": round(ms[-1], 2),
    }


def summarize(samples: Sequence[Sample]) -> dict[str, float]:
    return {
        **summarize_ms([s.ms for s in samples]),
        "rows_mean": round(statistics.fmean(s.rows for s in samples), 1),
    }


class _Recorder:
    """Stands in for a connection to catch the statement `list_items` builds."""

    def __init__(self) -> None:
        self.query = ""
        self.args: tuple[Any, ...] = ()

    async def fetch(self, query: str, *args: Any) -> list[Any]:
        self.query, self.args = query, args
        return []


def _literal(value: Any) -> str:
    """A bound value as SQL text, for EXECUTE (which takes no parameters of its own)."""
    if value is None:
        return "NULL"
    if isinstance(value, bool):
        return "true" if value else "false"
    if isinstance(value, int):
        return str(value)
    if isinstance(value, list):
        return "ARRAY[" + ", ".join(_literal(v) for v in value) + "]::text[]"
    text = value.isoformat() if isinstance(value, datetime) else str(value)
    return "'" + text.replace("'", "''") + "'"


async def explain(pool: asyncpg.Pool, sort: str, sample: Sample) -> dict[str, str]:
    """EXPLAIN (ANALYZE, BUFFERS) of the statement `list_items` builds for this sample, planned
    for its values (custom) and for any values (generic, what a cached statement may switch to)."""
    recorder = _Recorder()
    await repository.list_items(
        cast(Connection, recorder),
        tenant_id=MAIN_TENANT,
        filters=sample.filters,
        sort=sort,
        after=sample.after,
        limit=PAGE + 1,
    )
    values = ", ".join(_literal(v) for v in recorder.args)
    plans: dict[str, str] = {}
    async with pool.acquire() as conn:
        await conn.execute(f"PREPARE bench_list AS {recorder.query}")
        try:
            for mode in ("custom", "generic"):
                await conn.execute(f"SET plan_cache_mode = force_{mode}_plan")
                rows = await conn.fetch(f"EXPLAIN (ANALYZE, BUFFERS) EXECUTE bench_list({values})")
                plans[mode] = "\n".join(r[0] for r in rows)
        finally:
            await conn.execute("DEALLOCATE bench_list; RESET plan_cache_mode")
    return plans


# --- running and reporting -----------------------------------------------------------------------


def _machine(server: dict[str, str]) -> dict[str, Any]:
    return {
        "cpu": cpu_model(),
        "cores": os.cpu_count(),
        "memory_gb": memory_gb(),
        "python": platform.python_version(),
        **server,
    }


async def _admin(statement: str) -> None:
    conn = await asyncpg.connect(admin_dsn())
    try:
        await conn.execute(statement)
    finally:
        await conn.close()


async def _database_exists(name: str) -> bool:
    conn = await asyncpg.connect(admin_dsn())
    try:
        return bool(await conn.fetchval("SELECT 1 FROM pg_database WHERE datname = $1", name))
    finally:
        await conn.close()


def _table(shapes: Sequence[dict[str, Any]], modes: Sequence[str]) -> str:
    first, others = modes[0], modes[1:]
    lines = [
        "| shape | sort | p50 ms | p95 ms | p99 ms | max ms | rows |"
        + "".join(f" p99 ms, {m} |" for m in others),
        "|---|---|---|---|---|---|---|" + "---|" * len(others),
    ]

    def p99(stats: dict[str, Any]) -> str:
        return f"**{stats['p99_ms']}**" + ("" if stats["p99_ms"] <= TARGET_P99_MS else " ✗")

    for s in shapes:
        m = s[first]
        lines.append(
            f"| {s['shape']} | {s['sort']} | {m['p50_ms']} | {m['p95_ms']} | {p99(m)} | "
            f"{m['max_ms']} | {m['rows_mean']} |" + "".join(f" {p99(s[o])} |" for o in others)
        )
    return "\n".join(lines)


@dataclass(frozen=True)
class Options:
    items: int = 1_000_000
    iterations: int = 200
    warmup: int = 20
    seed: int = 20_260_105
    database: str = "smm_bench_inbox"
    keep: bool = False
    reuse: bool = False
    plan_cache_modes: Sequence[str] = ("auto", "force_generic_plan", "force_custom_plan")
    deep_page: int = 50


async def run(args: Options) -> dict[str, Any]:
    """Load (or with `reuse`, find) the database, measure every shape and view under each plan
    cache mode, EXPLAIN the slowest sample; drop the database unless `keep`."""
    if not _BENCH_DATABASE.match(args.database):
        raise SystemExit(f"--database must match {_BENCH_DATABASE.pattern}")
    if not postgres_running():
        raise SystemExit("the dev stack's Postgres is not running: smm dev up --infra-only")
    modes = list(args.plan_cache_modes)
    if not modes or set(modes) - {"auto", "force_custom_plan", "force_generic_plan"}:
        raise SystemExit("--plan-cache-modes: auto, force_custom_plan or force_generic_plan")
    dsn = admin_dsn(args.database)
    report: LoadReport | None = None
    if args.reuse and await _database_exists(args.database):
        conn = await asyncpg.connect(dsn)
        try:
            applied = await migrate(conn, SCHEMA, MIGRATIONS)
            await conn.execute("ANALYZE items")
            # The database may hold another size than asked: report what it holds.
            items = int(
                await conn.fetchval(
                    "SELECT count(*) FROM inbox.items WHERE tenant_id = $1", MAIN_TENANT
                )
            )
        finally:
            await conn.close()
        print(f"reusing {args.database}; migrations applied now: {applied or 'none'}")
    else:
        await _admin(f'DROP DATABASE IF EXISTS "{args.database}" WITH (FORCE)')
        await _admin(f'CREATE DATABASE "{args.database}"')
        report = await load(dsn, args.items, args.seed)
        items = args.items
        print(
            f"loaded {report.items:,} items and {report.conversations:,} conversations: rows"
            f" {report.rows_s:.1f} s, indexes {report.indexes_s:.1f} s, vacuum+analyze"
            f" {report.analyze_s:.1f} s, total {report.total_s:.1f} s"
        )
    try:
        catalog = make_catalog(items, args.seed)
        samples: dict[str, dict[str, list[Sample]]] = {}
        views: dict[str, dict[str, dict[str, Any]]] = {}
        load_average: dict[str, list[float]] = {}
        try:
            for mode in modes:
                # Set for the bench database only; every new connection of the pool plans so.
                await _admin(f'ALTER DATABASE "{args.database}" SET plan_cache_mode = {mode}')
                pool = await create_pool(dsn, min_size=2, max_size=2, schema=SCHEMA)
                try:
                    before = os.getloadavg()[0]
                    # The same seed for every mode: the same queries in the same order.
                    samples[mode] = await measure(
                        pool, catalog, args.iterations, args.warmup, args.seed + 2
                    )
                    views[mode] = await measure_views(
                        pool, args.iterations, args.warmup, args.deep_page
                    )
                    # Other work on the machine shows in the tail: keep how busy it was.
                    load_average[mode] = [round(before, 2), round(os.getloadavg()[0], 2)]
                finally:
                    await pool.close()
        finally:
            await _admin(f'ALTER DATABASE "{args.database}" RESET plan_cache_mode')
        shapes = []
        for shape in SHAPES:
            entry: dict[str, Any] = {"shape": shape.name, "sort": shape.sort}
            for mode in modes:
                found = samples[mode][shape.name]
                entry[mode] = summarize(found)
                labels = sorted({s.label for s in found} - {""})
                if labels:
                    entry[mode]["by_parameter"] = {
                        label: summarize([s for s in found if s.label == label]) for label in labels
                    }
            shapes.append(entry)
        first = modes[0]
        slowest = max(shapes, key=lambda s: s[first]["p99_ms"])
        shape = next(s for s in SHAPES if s.name == slowest["shape"])
        worst = max(samples[first][shape.name], key=lambda s: s.ms)
        pool = await create_pool(dsn, min_size=1, max_size=1, schema=SCHEMA)
        try:
            plans = await explain(pool, shape.sort, worst)
            async with pool.acquire() as pooled:
                server = {
                    "postgres": str(await pooled.fetchval("SHOW server_version")),
                    "shared_buffers": str(await pooled.fetchval("SHOW shared_buffers")),
                    "random_page_cost": str(await pooled.fetchval("SHOW random_page_cost")),
                }
                migrations = [
                    r["name"]
                    for r in await pooled.fetch(
                        "SELECT stream || '/' || name AS name FROM schema_migrations"
                        " ORDER BY stream, version"
                    )
                ]
        finally:
            await pool.close()
    finally:
        if not args.keep:
            await _admin(f'DROP DATABASE IF EXISTS "{args.database}" WITH (FORCE)')
    result: dict[str, Any] = {
        "date": datetime.now(UTC).date().isoformat(),
        "machine": _machine(server),
        "load_average_1m": load_average,
        "items": items,
        "other_tenants": {
            "tenants": OTHER_TENANTS,
            "items_each": round(items * OTHER_SHARE / OTHER_TENANTS),
        },
        "migrations": migrations,
        "iterations": args.iterations,
        "warmup": args.warmup,
        "page": PAGE,
        "target_p99_ms": TARGET_P99_MS,
        "plan_cache_modes": modes,
        "views": [
            {
                "view": view.name,
                "query": view.query,
                "sort": view.sort,
                **{mode: views[mode][view.name] for mode in modes},
            }
            for view in VIEWS
        ],
        "shapes": shapes,
        "missed": {
            mode: [s["shape"] for s in shapes if s[mode]["p99_ms"] > TARGET_P99_MS]
            for mode in modes
        },
        "explain": {
            "shape": shape.name,
            "plan_cache_mode": first,
            "parameters": {
                "filters": {
                    k: v for k, v in vars(worst.filters).items() if v not in ((), None, False)
                },
                "after": [str(v) for v in worst.after] if worst.after else None,
                "ms_in_run": round(worst.ms, 2),
            },
            "plans": plans,
        },
    }
    if report is not None:
        result["load"] = {
            "items": report.items,
            "conversations": report.conversations,
            "rows_s": round(report.rows_s, 1),
            "indexes_s": round(report.indexes_s, 1),
            "vacuum_analyze_s": round(report.analyze_s, 1),
            "total_s": round(report.total_s, 1),
            "items_table_mb": round(report.table_mb),
            "items_indexes_mb": round(report.indexes_mb),
        }
    return result


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--items", type=int, default=1_000_000, help="the big tenant's items")
    parser.add_argument("--iterations", type=int, default=200, help="first pages per shape")
    parser.add_argument("--warmup", type=int, default=20, help="rounds not counted")
    parser.add_argument("--seed", type=int, default=20_260_105)
    parser.add_argument("--database", default="smm_bench_inbox")
    parser.add_argument("--keep", action="store_true", help="keep the database afterwards")
    parser.add_argument(
        "--reuse", action="store_true", help="measure a database kept by --keep (no reload)"
    )
    parser.add_argument(
        "--plan-cache-modes",
        type=lambda text: text.split(","),
        default=["auto", "force_generic_plan", "force_custom_plan"],
        help="Postgres plan_cache_mode values to measure, comma-separated (auto: Postgres'"
        " default, where a statement asyncpg caches may switch to a generic plan after five"
        " runs; force_generic_plan: every statement after such a switch; force_custom_plan: as"
        " the inbox runs, see SMM_INBOX_DB_PLAN_CACHE_MODE)",
    )
    parser.add_argument(
        "--deep-page", type=int, default=50, help="the page of each view's deep-page timing"
    )
    parser.add_argument("--output", type=Path, default=RESULTS)
    args = parser.parse_args()
    output = args.output
    del args.output
    result = asyncio.run(run(Options(**vars(args))))
    print(_table(result["shapes"], result["plan_cache_modes"]))
    for view in result["views"]:
        for mode in result["plan_cache_modes"]:
            v = view[mode]
            print(
                f"{view['view']} ({mode}): first page p99 {v['first']['p99_ms']} ms,"
                f" page {v['deep_page']} p99 {v['deep']['p99_ms']} ms"
            )
    print(f"slowest: {result['explain']['shape']}; missed the target: {result['missed']}")
    output.parent.mkdir(parents=True, exist_ok=True)
    output.write_text(json.dumps(result, indent=2, ensure_ascii=False) + "\n")


if __name__ == "__main__":
    main()
