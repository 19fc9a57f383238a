"""Made-up but realistic traffic on the sandbox network: many authors posting in English and
Russian about the brands (praise, complaints, questions, purchase intent), spam, reply threads and
influencers, @mentioning the brand accounts so they get `mention` notifications.

`TrafficGenerator` is deterministic for a seed (the same profile and seed write the same authors
and texts in the same order, however the statuses are batched); `TrafficRunner` paces it in the
sandbox's event loop. Cheap on purpose: a status is a few random draws and one template, so one
core sustains thousands per second.
"""

# ruff: noqa: RUF001  # the Russian templates are Cyrillic on purpose
from __future__ import annotations

import asyncio
import contextlib
import logging
import random
import time
from collections import deque
from typing import Any, Literal

from pydantic import BaseModel, ConfigDict, Field, model_validator

from devstack.sandbox.network import Account, MediaAttachment, Network, NotFound

log = logging.getLogger("devstack.sandbox.traffic")

Language = Literal["en", "ru"]
Intent = Literal["praise", "purchase", "question", "observation", "complaint", "spam", "reply"]

_BATCH_MAX = 1000  # statuses created under one lock hold, so requests are served in between


def _all_languages() -> list[Language]:
    return ["en", "ru"]


class SentimentMix(BaseModel):
    model_config = ConfigDict(extra="forbid")

    positive: float = Field(default=0.4, ge=0)
    neutral: float = Field(default=0.35, ge=0)
    negative: float = Field(default=0.25, ge=0)

    @model_validator(mode="after")
    def _not_all_zero(self) -> SentimentMix:
        if self.positive + self.neutral + self.negative <= 0:
            raise ValueError("sentiment_mix needs at least one positive weight")
        return self


class TrafficProfile(BaseModel):
    """What the made-up audience talks about and how (`POST /sandbox/traffic` body)."""

    model_config = ConfigDict(extra="forbid")

    rate_per_s: float = Field(default=2.0, gt=0, le=20_000)
    brands: list[str] = Field(default_factory=lambda: ["Demo Sneakers"], min_length=1)
    competitors: list[str] = Field(default_factory=lambda: ["RivalRun"])
    languages: list[Language] = Field(default_factory=_all_languages, min_length=1)
    sentiment_mix: SentimentMix = Field(default_factory=SentimentMix)
    spam_share: float = Field(default=0.05, ge=0, le=1)
    reply_share: float = Field(default=0.2, ge=0, le=1)
    influencer_share: float = Field(default=0.05, ge=0, le=1)
    mention_accounts: list[str] = Field(
        default_factory=list, description="Account ids the statuses @mention"
    )
    mention_share: float = Field(
        default=0.5, ge=0, le=1, description="Share of statuses that @mention a mention_account"
    )
    hashtag_share: float = Field(default=0.4, ge=0, le=1)
    media_share: float = Field(default=0.1, ge=0, le=1)
    authors: int = Field(default=400, ge=10, le=100_000)
    seed: int = 0
    total: int | None = Field(default=None, ge=1, description="Stop after this many statuses")


# --- vocabulary ---------------------------------------------------------------------------------

_TEMPLATES: dict[Language, dict[Intent, tuple[str, ...]]] = {
    "en": {
        "praise": (
            "Just got my new {product} from {brand} and honestly it's the best purchase this year!",
            "Shout-out to {brand} support, they fixed my order in ten minutes 👏",
            "{brand} never disappoints. Third pair of {product} and still in love.",
            "Switched from {competitor} to {brand} and I'm not going back.",
            "The {product} from {brand} is so comfy, wore it all weekend.",
        ),
        "purchase": (
            "Thinking about buying the {product} from {brand}. Anyone have a discount code?",
            "Where can I buy {brand} {product} in Berlin? Need it before Saturday",
            "Ready to order two {product} from {brand}, does the sale end today?",
            "Is the {brand} {product} worth the price? About to check out.",
        ),
        "question": (
            "Does {brand} ship to Canada? Can't find it on the site.",
            "{brand} vs {competitor} for running, which one lasts longer?",
            "How long does {brand} delivery usually take?",
            "Can I return a {product} to {brand} without the box?",
        ),
        "observation": (
            "Saw a {brand} pop-up store downtown today.",
            "{brand} just announced a new {product} line.",
            "Half the people at the marathon wore {brand} or {competitor}.",
        ),
        "complaint": (
            "Ordered from {brand} two weeks ago and still nothing. Where is my refund??",
            "My {brand} {product} fell apart after a month. Really disappointed.",
            "{brand} support hasn't answered in 5 days. Worst service ever.",
            "Charged twice by {brand} and nobody replies. Switching to {competitor}.",
            "The {product} I got from {brand} is the wrong size AGAIN.",
        ),
        "spam": (
            "🔥 FREE {brand} GIVEAWAY 🔥 click {link} click {link} FREE FREE FREE",
            "Earn $500/day from home!!! {link} {link} {link}",
            "Cheap {brand} {product} 90% OFF 90% OFF 90% OFF {link}",
            "FREE FOLLOWERS FREE FOLLOWERS click {link} now now now",
        ),
        "reply": (
            "Same here, totally agree.",
            "Have you tried contacting their support?",
            "Mine arrived yesterday, no issues at all.",
            "That's exactly why I stopped buying from them.",
            "Thanks, this is really helpful!",
            "Any update on this?",
        ),
    },
    "ru": {
        "praise": (
            "Купил {product} от {brand}, лучшая покупка за год!",
            "Спасибо {brand}, поддержка решила вопрос за десять минут 👏",
            "{brand} никогда не подводит, уже третьи {product}.",
            "Перешла с {competitor} на {brand} и ни капли не жалею.",
        ),
        "purchase": (
            "Хочу заказать {product} у {brand}, есть промокод?",
            "Где купить {brand} в Москве? Нужны до субботы",
            "Готов взять две пары {brand}, скидка ещё действует?",
        ),
        "question": (
            "{brand} доставляет в Казахстан?",
            "{brand} или {competitor} для бега, что лучше?",
            "Сколько обычно идёт доставка {brand}?",
        ),
        "observation": (
            "Видел сегодня магазин {brand} в центре.",
            "{brand} анонсировали новую коллекцию: {product}.",
        ),
        "complaint": (
            "Заказала у {brand} две недели назад, до сих пор ничего. Где мой возврат?!",
            "{product} от {brand} развалились через месяц. Очень разочарован.",
            "Поддержка {brand} молчит пятый день. Ужасный сервис.",
            "{brand} списали деньги дважды и не отвечают. Ухожу к {competitor}.",
        ),
        "spam": (
            "🔥 БЕСПЛАТНО {brand} РОЗЫГРЫШ 🔥 жми {link} жми {link} БЕСПЛАТНО БЕСПЛАТНО",
            "Заработок от 5000 в день!!! {link} {link} {link}",
            "Дешёвые {brand} скидка 90% скидка 90% скидка 90% {link}",
        ),
        "reply": (
            "Согласен, у меня так же.",
            "Пробовали написать в поддержку?",
            "Мой заказ пришёл вчера, всё отлично.",
            "Вот поэтому я больше у них не покупаю.",
            "Спасибо, очень помогло!",
        ),
    },
}
_PRODUCTS: dict[Language, tuple[str, ...]] = {
    "en": ("sneakers", "running shoes", "hoodie", "backpack", "rain jacket", "socks"),
    "ru": ("кроссовки", "беговые кроссовки", "худи", "рюкзак", "куртка", "носки"),
}
_NAMES: dict[Language, tuple[tuple[str, str], ...]] = {
    "en": (
        ("kate", "Kate"), ("max", "Max"), ("olivia", "Olivia"), ("liam", "Liam"),
        ("emma", "Emma"), ("noah", "Noah"), ("ava", "Ava"), ("james", "James"),
        ("mia", "Mia"), ("lucas", "Lucas"), ("zoe", "Zoe"), ("ethan", "Ethan"),
    ),
    "ru": (
        ("olga", "Ольга"), ("dmitry", "Дмитрий"), ("anna", "Анна"), ("ivan", "Иван"),
        ("maria", "Мария"), ("sergey", "Сергей"), ("elena", "Елена"), ("pavel", "Павел"),
        ("natasha", "Наташа"), ("alexey", "Алексей"), ("irina", "Ирина"), ("oleg", "Олег"),
    ),
}  # fmt: skip
_HANDLE_SUFFIXES = ("runs", "spb", "reviews", "daily", "fit", "style", "city", "x")
_RECENT_FOR_REPLIES = 256


def hashtag_of(name: str) -> str:
    """`Demo Sneakers` -> `DemoSneakers` (what people write after `#`)."""
    return "".join(part[:1].upper() + part[1:] for part in name.split() if part.isalnum())


class TrafficGenerator:
    """Writes statuses into a network according to a profile; deterministic for its seed."""

    def __init__(self, network: Network, profile: TrafficProfile) -> None:
        self.network = network
        self.profile = profile
        self.generated = 0
        self._rng = random.Random(profile.seed)  # noqa: S311  # made-up traffic, not secrets
        self._mention_targets = [self._resolve(i) for i in profile.mention_accounts]
        mix = profile.sentiment_mix
        self._sentiments: list[Literal["positive", "neutral", "negative"]] = [
            "positive",
            "neutral",
            "negative",
        ]
        self._sentiment_weights = [mix.positive, mix.neutral, mix.negative]
        self._authors: dict[Language, list[Account]] = {}
        self._influencers: dict[Language, list[Account]] = {}
        self._spammers: dict[Language, list[Account]] = {}
        self._recent: deque[tuple[int, Account]] = deque(maxlen=_RECENT_FOR_REPLIES)
        self._sequence = 0  # statuses made so far; numbers spam links independently of batching
        with network.lock:
            for language in profile.languages:
                self._make_authors(language)

    def _resolve(self, account_id: str) -> Account:
        try:
            return self.network.account(int(account_id))
        except (ValueError, NotFound):
            raise NotFound(f"mention_accounts: no account {account_id!r}") from None

    def _make_authors(self, language: Language) -> None:
        count = max(10, self.profile.authors // len(self.profile.languages))
        rng = random.Random(f"{self.profile.seed}:{language}")  # noqa: S311
        regular: list[Account] = []
        influencers: list[Account] = []
        spammers: list[Account] = []
        names = _NAMES[language]
        for index in range(count):
            handle, display = names[index % len(names)]
            suffix = _HANDLE_SUFFIXES[(index // len(names)) % len(_HANDLE_SUFFIXES)]
            kind = "influencer" if index % 20 == 0 else "spammer" if index % 20 == 1 else "regular"
            username = f"{handle}_{suffix}{index}_{self.profile.seed}"[:30]
            if kind == "spammer":
                username = f"deals_{language}{index}_{self.profile.seed}"[:30]
            existing = self.network.account_by_username(username)
            if existing is not None:  # a restart with the same seed reuses its authors
                account = existing
            elif kind == "influencer":
                account = self.network.create_account(
                    username,
                    display_name=f"{display} ✨",
                    followers_count=rng.randint(50_000, 2_000_000),
                    following_count=rng.randint(100, 2_000),
                    language=language,
                    generated=True,
                )
            elif kind == "spammer":
                account = self.network.create_account(
                    username,
                    display_name="Best Deals 24/7",
                    followers_count=rng.randint(0, 20),
                    following_count=rng.randint(2_000, 7_000),
                    bot=rng.random() < 0.5,
                    language=language,
                    generated=True,
                )
            else:
                account = self.network.create_account(
                    username,
                    display_name=display,
                    followers_count=int(rng.lognormvariate(4.5, 1.3)),
                    following_count=rng.randint(10, 800),
                    language=language,
                    generated=True,
                )
            {"influencer": influencers, "spammer": spammers, "regular": regular}[kind].append(
                account
            )
        self._authors[language] = regular
        self._influencers[language] = influencers
        self._spammers[language] = spammers

    def generate(self, count: int) -> int:
        """Create `count` statuses now; return how many were created."""
        with self.network.lock:
            for _ in range(count):
                self._one()
        self.generated += count
        return count

    def _one(self) -> None:
        rng, profile = self._rng, self.profile
        self._sequence += 1
        language: Language = rng.choice(profile.languages)
        brand = rng.choice(profile.brands)
        competitor = rng.choice(profile.competitors) if profile.competitors else "the others"
        product = rng.choice(_PRODUCTS[language])
        parent: tuple[int, Account] | None = None
        roll = rng.random()
        if roll < profile.spam_share:
            intent: Intent = "spam"
            author = rng.choice(self._spammers[language])
        else:
            if roll < profile.spam_share + profile.reply_share and self._recent:
                intent = "reply"
                parent = self._reply_target()
            else:
                sentiment = rng.choices(self._sentiments, self._sentiment_weights)[0]
                if sentiment == "positive":
                    intent = "praise" if rng.random() < 0.7 else "purchase"
                elif sentiment == "neutral":
                    intent = "question" if rng.random() < 0.6 else "observation"
                else:
                    intent = "complaint"
            pool = (
                self._influencers[language]
                if rng.random() < profile.influencer_share
                else self._authors[language]
            )
            author = rng.choice(pool)
        text = rng.choice(_TEMPLATES[language][intent])
        if intent == "spam":
            link = f"https://deals{rng.randint(1, 99)}.example/{self._sequence}"
            text = text.replace("{link}", link)
        text = text.format(brand=brand, competitor=competitor, product=product)
        words = [text]
        if parent is not None and parent[1] is not author:
            words.insert(0, f"@{parent[1].username}")
        if self._mention_targets and rng.random() < profile.mention_share:
            target = rng.choice(self._mention_targets)
            if parent is None or parent[1] is not target:
                words.insert(0 if rng.random() < 0.5 else len(words), f"@{target.username}")
        if intent != "reply" and rng.random() < profile.hashtag_share:
            words.append(f"#{hashtag_of(brand)}")
            if profile.competitors and rng.random() < 0.2:
                words.append(f"#{hashtag_of(competitor)}")
        media: tuple[MediaAttachment, ...] = ()
        if intent in ("praise", "complaint") and rng.random() < profile.media_share:
            media = (self.network.new_media("image", product),)
        reach = author.followers_count
        favourites = int(reach * rng.random() * 0.01) if intent != "spam" else 0
        try:
            status, _ = self.network.create_status(
                author,
                " ".join(words),
                in_reply_to_id=parent[0] if parent else None,
                language=language,
                media=media,
                favourites_count=favourites,
                reblogs_count=favourites // 5,
                application="SandboxTraffic",
            )
        except NotFound:  # the parent was deleted or is not visible to this author
            status, _ = self.network.create_status(
                author, " ".join(words), language=language, application="SandboxTraffic"
            )
        self._recent.append((status.id, author))

    def _reply_target(self) -> tuple[int, Account]:
        # Brand accounts' own posts draw replies too: comments on what the brand published.
        if self._mention_targets and self._rng.random() < 0.3:
            target = self._rng.choice(self._mention_targets)
            posted = self.network.statuses_of(target, limit=5)
            if posted:
                chosen = self._rng.choice(posted)
                return chosen.id, target
        index = self._rng.randrange(len(self._recent))
        status_id, author = self._recent[index]
        if status_id not in self.network.statuses:
            return self._recent[-1]
        return status_id, author


class TrafficRunner:
    """Runs one generator at a time at its profile's rate, as a task in the running event loop."""

    def __init__(self, network: Network) -> None:
        self.network = network
        self._generator: TrafficGenerator | None = None
        self._task: asyncio.Task[None] | None = None
        self.started_at: float | None = None

    @property
    def running(self) -> bool:
        return self._task is not None and not self._task.done()

    async def start(self, profile: TrafficProfile) -> None:
        await self.stop()
        self._generator = TrafficGenerator(self.network, profile)
        self.started_at = time.monotonic()
        self._task = asyncio.get_running_loop().create_task(self._run(self._generator))
        log.info(
            "traffic started: %.1f statuses/s, brands %s, seed %d",
            profile.rate_per_s,
            ", ".join(profile.brands),
            profile.seed,
        )

    async def stop(self) -> None:
        task, self._task = self._task, None
        if task is not None:
            task.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await task
            log.info("traffic stopped")

    def status(self) -> dict[str, object]:
        generator = self._generator
        return {
            "running": self.running,
            "generated": generator.generated if generator else 0,
            "profile": generator.profile.model_dump() if generator else None,
        }

    async def _run(self, generator: TrafficGenerator) -> None:
        rate, total = generator.profile.rate_per_s, generator.profile.total
        interval = 0.02 if rate >= 50 else min(0.5, 1.0 / rate)
        loop = asyncio.get_running_loop()
        started = loop.time()
        made = 0
        while total is None or made < total:
            due = int((loop.time() - started) * rate) - made
            if total is not None:
                due = min(due, total - made)
            if due > 0:
                made += generator.generate(min(due, _BATCH_MAX))
                if due > _BATCH_MAX:
                    await asyncio.sleep(0)  # behind schedule: catch up, but let requests in
                    continue
            await asyncio.sleep(interval)
        log.info("traffic finished: %d statuses", made)


def webhook_mentions(
    brand: str, count: int, *, seed: int = 0, id_prefix: str = "", with_urls: bool = False
) -> list[dict[str, Any]]:
    """`count` statuses the generator writes about `brand` (deterministic for `seed`), as items
    of OpenSMM's generic webhook: what the load tools push when pulling would be too slow.
    Replies name their parent by the same `id_prefix`ed ids."""
    network = Network(max_statuses=count + _BATCH_MAX)
    generator = TrafficGenerator(network, TrafficProfile(brands=[brand], seed=seed, total=count))
    left = count
    while left > 0:
        left -= generator.generate(min(left, _BATCH_MAX))
    out: list[dict[str, Any]] = []
    for status in sorted(network.statuses.values(), key=lambda s: s.id)[:count]:
        account = status.account
        item: dict[str, Any] = {
            "external_id": f"{id_prefix}{status.id}",
            "text": status.text,
            "author": {
                "id": str(account.id),
                "handle": "@" + account.username,
                "display_name": account.display_name,
                "followers": account.followers_count,
            },
            "created_at": status.created_at.isoformat(),
        }
        if with_urls:
            item["url"] = f"https://sandbox.invalid/@{account.username}/{status.id}"
        if status.language:
            item["language"] = status.language
        if status.in_reply_to_id is not None:
            item["in_reply_to"] = f"{id_prefix}{status.in_reply_to_id}"
        out.append(item)
    return out
