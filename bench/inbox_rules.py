"""Benchmark of the inbox rules engine: 5,000 rules of 200 brands against 10,000 triaged items.

Run `python -m bench.inbox_rules [--rules 5000] [--items 10000] [--seed 7]`; it prints one JSON
line. Everything runs in this one process, on one core.
"""

from __future__ import annotations

import argparse
import json
import platform
import random
import time
from datetime import UTC, datetime, timedelta
from typing import Any

from services.inbox.rules import Rule, RuleItem, RuleSet, parse_rules


def _words(text: str) -> list[str]:
    return text.split()


_NETWORKS = ["bluesky", "mastodon", "vk", "telegram", "youtube", "reddit"]
_LANGUAGES = ["en", "ru", "de", "pt"]
_WORDS = _words("""refund delivery late broken love great thanks price app crash login card order
    support scam giveaway cheap awful excellent slow fast help cancel subscription bill charge
    возврат доставка сбой карта заказ поддержка спасибо отлично ужасно цена""")
_FILLER = _words("""the a to and of in is it you that for on was with are this have be at not but
    my so just like what all do get can out about new your good time one today really""")


def _rules(count: int, brands: list[str], rng: random.Random) -> list[Rule]:
    data: list[dict[str, Any]] = []
    for n in range(count):
        conditions: list[dict[str, Any]] = [{"type": "brand_in", "values": [rng.choice(brands)]}]
        if rng.random() < 0.6:
            conditions.append({"type": "network_in", "values": rng.sample(_NETWORKS, 2)})
        if rng.random() < 0.4:
            conditions.append({"type": "language_in", "values": [rng.choice(_LANGUAGES)]})
        if rng.random() < 0.7:
            keywords = [*rng.sample(_WORDS, 3), f"brand{n}"]
            conditions.append({"type": "text_contains_any", "keywords": keywords})
        if rng.random() < 0.3:
            conditions.append({"type": "sentiment_in", "values": ["negative"]})
        if rng.random() < 0.2:
            conditions.append({"type": "author_followers_at_least", "value": 1000})
        if rng.random() < 0.1:
            conditions.append(
                {"type": "time_window", "zone": "Europe/Berlin", "start": "09:00", "end": "18:00"}
            )
        actions: list[dict[str, Any]] = [{"type": "add_tag", "tag": f"t{n % 50}"}]
        if rng.random() < 0.3:
            actions.append({"type": "set_priority", "priority": rng.randint(0, 100)})
        if rng.random() < 0.2:
            actions.append({"type": "assign_team", "team_id": f"team{n % 20}"})
        data.append(
            {
                "id": f"rule-{n}",
                "conditions": conditions,
                "actions": actions,
                "stop_processing": rng.random() < 0.05,
            }
        )
    return parse_rules(data)


def _items(count: int, brands: list[str], rng: random.Random) -> list[RuleItem]:
    start = datetime(2026, 3, 2, tzinfo=UTC)
    items = []
    for n in range(count):
        words = rng.choices(_FILLER, k=rng.randint(8, 40)) + rng.choices(_WORDS, k=2)
        rng.shuffle(words)
        items.append(
            RuleItem(
                item_id=str(n),
                brand_id=rng.choice(brands),
                network=rng.choice(_NETWORKS),
                kind="mention",
                text=" ".join(words).capitalize() + "!",
                created_at=start + timedelta(minutes=rng.randint(0, 7 * 24 * 60)),
                author_handle=f"user{rng.randint(0, 5000)}",
                language=rng.choice(_LANGUAGES),
                author_followers=rng.randint(0, 5000),
                sentiment=rng.choice(["negative", "neutral", "positive"]),
                sentiment_score=rng.uniform(-1, 1),
            )
        )
    return items


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--rules", type=int, default=5000)
    parser.add_argument("--items", type=int, default=10_000)
    parser.add_argument("--brands", type=int, default=200)
    parser.add_argument("--seed", type=int, default=7)
    args = parser.parse_args()
    rng = random.Random(args.seed)  # noqa: S311 -- reproducible test data, not secrets
    brands = [f"brand{n}" for n in range(args.brands)]
    rules = _rules(args.rules, brands, rng)
    items = _items(args.items, brands, rng)

    began = time.perf_counter()
    ruleset = RuleSet.compile(rules)
    compile_s = time.perf_counter() - began

    began = time.perf_counter()
    applied = sum(len(ruleset.evaluate(item)) for item in items)
    evaluate_s = time.perf_counter() - began
    print(
        json.dumps(
            {
                "rules": args.rules,
                "items": args.items,
                "brands": args.brands,
                "compile_s": round(compile_s, 3),
                "evaluate_s": round(evaluate_s, 3),
                "items_per_s": round(args.items / evaluate_s),
                "actions_applied": applied,
                "python": platform.python_version(),
                "machine": platform.machine(),
            }
        )
    )


if __name__ == "__main__":
    main()
