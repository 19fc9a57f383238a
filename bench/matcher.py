"""Benchmark of the listening matcher: 10,000 queries of ~1,000 tenants against a mention stream.

Run `python -m bench matcher [--queries 10000] [--mentions 200000]` (or `python -m bench.matcher`):
the process pins itself to one core, writes bench/results/matcher.json and the matcher's table in
docs/benchmarks.md.
"""

# ruff: noqa: RUF001 -- the Russian half of the generated data is Cyrillic on purpose.

from __future__ import annotations

import argparse
import itertools
import os
import random
import sys
import time
from dataclasses import dataclass, field
from typing import Any

from bench import report
from services.ingest.listening import Matcher, MatchInput, Query, parse

TARGET_PER_CORE = 20_000


def _words(text: str) -> list[str]:
    return text.split()


_LATIN = _words("""ba be bi bo da de di do fa fe ga go ka ke ki ko la le li lo ma me mi mo na ne ni
    no pa pe po ra re ri ro sa se si so ta te ti to va ve vi vo za ze zi zo tri pro vex lum""")
_CYRILLIC = _words("""ба бе би бо ва ве ви во да де ди до за зе ка ке ки ко ла ле ли ло ма ме ми мо
    на не ни но ра ре ри ро са се си со та те ти то бер тек мир сбер тор вол""")
_PRODUCTS_EN = _words("pro max lite air mini plus go one home card pay app cloud drive")
_PRODUCTS_RU = _words("плюс про лайт мини карта бизнес онлайн премиум")
_TOPICS_EN = _words("delivery shipping refund support price app crash outage login card order")
_TOPICS_RU = _words("доставка возврат поддержка цена приложение сбой вход карта заказ кэшбэк")
_EXCLUDE_EN = _words("job vacancy hiring giveaway casino")
_EXCLUDE_RU = _words("вакансия работа розыгрыш казино кредит")
_WORDS_EN = _words("""the a to and of in is it you that for on was with are this have be at not but
    my so just like what all do get can out about new your good time one love today really
    great day people think know some when would how now very been more got want see after
    service store order package arrived late again still waiting phone screen battery price
    cheap expensive quality customer support team thanks help problem issue update version
    bought buy sold review recommend never ever best worst fast slow broken works working
    weekend morning night city shop online account money bank transfer card app website""")
_WORDS_RU = _words("""и в не на я что он с как это а то все она так его но да ты к у же вы за бы по
    только ее мне было вот от меня еще нет о из ему теперь когда даже ну вдруг ли если уже
    или ни быть был него до вас нибудь опять уж вам ведь там потом себя ничего ей может
    они тут где есть надо ней для мы тебя их чем была сам чтоб без будто чего раз тоже
    магазин заказ доставка курьер телефон экран цена дорого дешево качество поддержка
    спасибо помощь проблема обновление купил покупка отзыв советую никогда лучший худший
    быстро медленно сломался работает выходные утром вечером город онлайн счет деньги банк
    перевод карта приложение сайт мобильный""")
_EMOJI = ["👍", "🔥", "😡", "❤️", "😂", "🙏", "👎", "🎉"]
_NETWORKS = ["mastodon", "bluesky", "telegram", "vk", "rss", "reddit", "youtube"]


@dataclass
class Brand:
    name: str
    russian: bool
    products: list[str] = field(default_factory=list)

    @property
    def slug(self) -> str:
        return self.name.replace(" ", "")


def _brand_name(rng: random.Random, russian: bool, taken: set[str]) -> str:
    syllables = _CYRILLIC if russian else _LATIN
    while True:
        name = "".join(rng.choice(syllables) for _ in range(rng.choice((2, 3, 3, 4))))
        if len(name) >= 5 and name not in taken:
            taken.add(name)
            return name


def make_brands(rng: random.Random, count: int) -> list[Brand]:
    taken: set[str] = set()
    brands = []
    for _ in range(count):
        russian = rng.random() < 0.35
        name = _brand_name(rng, russian, taken)
        products = rng.sample(_PRODUCTS_RU if russian else _PRODUCTS_EN, 2)
        brands.append(Brand(name, russian, products))
    return brands


_POPULARITY: dict[int, list[float]] = {}


def _zipf_pick(rng: random.Random, brands: list[Brand]) -> Brand:
    # A few big brands are many tenants' competitor and in many mentions; most are small.
    weights = _POPULARITY.get(len(brands))
    if weights is None:
        weights = list(itertools.accumulate(1 / rank**0.8 for rank in range(1, len(brands) + 1)))
        _POPULARITY[len(brands)] = weights
    return rng.choices(brands, cum_weights=weights)[0]


def make_queries(rng: random.Random, brands: list[Brand], tenants: int, total: int) -> list[str]:
    texts: list[str] = []
    per_tenant = max(1, total // tenants)
    for tenant in range(tenants):
        own = brands[tenant % len(brands)]
        # Eight queries about the brand itself and two competitors for share of voice.
        competitors = [_zipf_pick(rng, brands) for _ in range(2)]
        texts += _tenant_queries(rng, own, competitors)[:per_tenant]
    while len(texts) < total:
        texts.append(f"{_zipf_pick(rng, brands).name} OR #{_zipf_pick(rng, brands).slug}")
    return texts[:total]


def _tenant_queries(rng: random.Random, own: Brand, competitors: list[Brand]) -> list[str]:
    name, slug = own.name, own.slug
    topics = _TOPICS_RU if own.russian else _TOPICS_EN
    exclude = _EXCLUDE_RU if own.russian else _EXCLUDE_EN
    lang = "ru" if own.russian else "en"
    product = own.products[0]
    queries = [
        f"{name} OR #{slug} OR @{slug}",
        f'"{name} {product}" OR "{name} {own.products[1]}" OR #{slug}{product}',
        f"{name} AND ({' OR '.join(rng.sample(topics, 3))}) AND NOT ({' OR '.join(exclude[:3])})",
        f"{name} NEAR/5 {rng.choice(topics)}",
        f"{name[:5]}* AND lang:{lang} -{rng.choice(exclude)}",
        f"site:{slug}.com OR ({name} AND network:{rng.choice(_NETWORKS)})",
        f'("{name} {product}" OR {name}) -author:{slug}support',
    ]
    if own.russian:
        queries.append(f'"мобильный банк" AND {name} AND NOT кредит')
    else:
        queries.append(f'"{name} app" NEAR/10 crash')
    for competitor in competitors:
        queries.append(f"{competitor.name} OR #{competitor.slug}")
    return queries


def make_mentions(
    rng: random.Random, brands: list[Brand], count: int, brand_share: float
) -> list[MatchInput]:
    mentions = []
    for _ in range(count):
        russian = rng.random() < 0.4
        words = _WORDS_RU if russian else _WORDS_EN
        # Mostly posts and comments; one in twenty is a news or blog item of a few paragraphs.
        length = rng.randint(150, 300) if rng.random() < 0.05 else rng.randint(8, 40)
        tokens = rng.choices(words, k=length)
        url = None
        if rng.random() < brand_share:
            brand = _zipf_pick(rng, brands)
            where = rng.randrange(len(tokens))
            tokens.insert(where, brand.name.capitalize())
            roll = rng.random()
            if roll < 0.3:
                tokens.insert(where + 1, rng.choice(brand.products))
            elif roll < 0.5:
                tokens.append(f"#{brand.slug}")
            elif roll < 0.6:
                tokens.insert(0, f"@{brand.slug}")
            if rng.random() < 0.2:
                url = f"https://blog.{brand.slug}.com/post/{rng.randrange(10**6)}"
        if rng.random() < 0.3:
            tokens.append(rng.choice(_EMOJI))
        if rng.random() < 0.1:
            tokens.append(f"#{rng.choice(words)}")
        text = " ".join(tokens)
        if rng.random() < 0.5:
            text = text.capitalize() + rng.choice([".", "!", "?", "!!", " ..."])
        mentions.append(
            MatchInput(
                text=text,
                language=("ru" if russian else "en") if rng.random() < 0.8 else None,
                network=rng.choice(_NETWORKS),
                author_handle=f"user{rng.randrange(10**6)}",
                url=url
                or (
                    f"https://news.example.org/{rng.randrange(10**6)}"
                    if rng.random() < 0.2
                    else None
                ),
            )
        )
    return mentions


def _throughput(matcher: Matcher[int], stream: list[MatchInput]) -> dict[str, int]:
    """Mentions a second of the core's time (CPU time of this one-threaded process: what other
    work on a shared core takes is not counted) and of the wall clock, and the matches found."""
    matches = 0
    cpu, wall = time.process_time(), time.perf_counter()
    for mention in stream:
        matches += len(matcher.match(mention))
    cpu, wall = time.process_time() - cpu, time.perf_counter() - wall
    return {
        "mentions_per_s_per_core": round(len(stream) / cpu),
        "mentions_per_s_wall": round(len(stream) / wall),
        "matches": matches,
    }


def pin_to_one_core() -> int | None:
    """Run this process on one core only, so its throughput is a per-core figure; the core."""
    if not hasattr(os, "sched_setaffinity"):
        return None
    core = min(os.sched_getaffinity(0))
    os.sched_setaffinity(0, {core})
    return core


def run(
    queries: int,
    mentions: int,
    tenants: int,
    seed: int,
    brand_share: float,
    brand_heavy_share: float | None = None,
) -> dict[str, Any]:
    """Build the matcher over `queries` generated queries and time it on `mentions` mentions;
    with `brand_heavy_share`, time it again on a stream where that share names a brand."""
    rng = random.Random(seed)  # noqa: S311 -- reproducible test data, not secrets
    brands = make_brands(rng, max(tenants * 3 // 2, 10))
    query_texts = make_queries(rng, brands, tenants, queries)
    parsed: list[tuple[int, Query]] = [(n, parse(text)) for n, text in enumerate(query_texts)]
    stream = make_mentions(rng, brands, mentions, brand_share)

    started = time.perf_counter()
    matcher = Matcher(parsed)
    build_s = time.perf_counter() - started
    # What a tenant editing one query costs: a new matcher that reuses the compiled queries.
    started = time.perf_counter()
    grown = matcher.with_queries([(len(parsed), parse('"brand new query" OR brandnew*'))])
    rebuild_s = time.perf_counter() - started
    assert len(grown) == len(parsed) + 1

    measured = _throughput(matcher, stream)
    result: dict[str, Any] = {
        "queries": len(parsed),
        "mentions_per_s_per_core": measured["mentions_per_s_per_core"],
        "mentions_per_s_wall": measured["mentions_per_s_wall"],
        "tenants": tenants,
        "mentions": len(stream),
        "brand_share": brand_share,
        "build_s": round(build_s, 3),
        "rebuild_s": round(rebuild_s, 3),
        "matches": measured["matches"],
    }
    if brand_heavy_share is not None:
        heavy = make_mentions(rng, brands, mentions, brand_heavy_share)
        result["brand_heavy"] = {"brand_share": brand_heavy_share, **_throughput(matcher, heavy)}
    return result


def table_body(result: dict[str, Any]) -> str:
    streams = [(result["brand_share"], result, True)]
    if result.get("brand_heavy"):
        streams.append((result["brand_heavy"]["brand_share"], result["brand_heavy"], False))
    rows = [
        [
            f"{share:.0%} name a brand",
            result["queries"],
            result["mentions"],
            f"{result['build_s']} s",
            report.verdict(figures["mentions_per_s_per_core"], TARGET_PER_CORE)
            if target
            else report.fmt(figures["mentions_per_s_per_core"]),
            figures["mentions_per_s_wall"],
        ]
        for share, figures, target in streams
    ]
    core = result.get("pinned_core")
    where = f"One process pinned to core {core}" if core is not None else "One process"
    header = ["stream", "queries", "mentions", "build", "mentions/s per core (≥ 20,000)"]
    return (
        report.table([*header, "mentions/s, wall clock"], rows)
        + f"\n\n{where}; per core is per second of the process's CPU time, so other work on the"
        " shared core does not count (on an idle core the wall-clock figure is the same). Load"
        f" average {result.get('load_average_1m')} (1 min, before and after). Adding a query to"
        f" the built matcher took {result['rebuild_s']} s."
    )


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(
        prog="python -m bench matcher", description=__doc__.split("\n\n")[0]
    )
    parser.add_argument("--queries", type=int, default=10_000)
    parser.add_argument("--mentions", type=int, default=200_000)
    parser.add_argument("--tenants", type=int, default=1_000)
    parser.add_argument("--seed", type=int, default=20_260_101)
    parser.add_argument(
        "--brand-share", type=float, default=0.3, help="share of mentions that name a brand"
    )
    parser.add_argument(
        "--brand-heavy-share",
        type=float,
        default=0.8,
        help="a second stream where this share names a brand (0 to skip)",
    )
    args = parser.parse_args(sys.argv[1:] if argv is None else argv)
    core = pin_to_one_core()
    # Other work on the machine shares the core: keep how busy it was.
    before = os.getloadavg()[0]
    result = run(
        args.queries,
        args.mentions,
        args.tenants,
        args.seed,
        args.brand_share,
        args.brand_heavy_share or None,
    )
    result["pinned_core"] = core
    result["load_average_1m"] = [round(before, 2), round(os.getloadavg()[0], 2)]
    report.record("matcher", result, table_body(result))


if __name__ == "__main__":
    main()
