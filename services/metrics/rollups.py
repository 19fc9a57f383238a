"""What each mention contributes to the rollups, and the exact change a batch makes to them.

A mention's contribution is a multiset of counter keys. A batch takes the contributions of the
mentions it touches before and after applying its events; the difference is what gets added to
the counters. Edits, triage that arrives before or after the mention, and deletions are exact.
"""

# ruff: noqa: RUF001 -- Russian stop words and the typographic apostrophe are the point.
from __future__ import annotations

import copy
import uuid
from collections import Counter
from collections.abc import Callable, Hashable, Iterable, Mapping
from dataclasses import dataclass, field
from datetime import datetime
from typing import Any, TypeVar

import regex

from shared.events import Engagement, MentionPayload, PostEngagementPayload, QueryMatch

HOURLY = "hourly"
TOKENS = "tokens"
# ("hourly", tenant, brand, metric, dimension, bucket, network, value)
# ("tokens", tenant, brand, kind, bucket, token)
CounterKey = tuple[Any, ...]

ON_TIME_S = 60.0  # a post published within a minute of its scheduled time is on time
MAX_TERMS = 40

_HASHTAG = regex.compile(r"(?<![\p{L}\p{N}_])#([\p{L}\p{N}_]{1,100})")
_WORD = regex.compile(r"(?<![#@\p{L}\p{N}_])\p{L}[\p{L}\p{M}'’-]{2,}")
_URL = regex.compile(r"https?://\S+")
_STOPWORDS = frozenset(
    """
    the and for are but not you your yours with this that from have has had was were will would
    can could should what when where which who whom why how all any our out its it's i'm im just
    about into than then them they their there here been being very more most some such only
    also too get got one two new now like yes don't doesn't didn't can't won't isn't aren't
    и в во не что он на я с со как а то все она так его но да ты к у же вы за бы по только ее мне
    было вот от меня еще нет о из ему теперь когда даже ну вдруг ли если уже или ни быть был него
    до вас нибудь опять уж вам ведь там потом себя ничего ей может они тут где есть надо ней для
    мы тебя их чем была сам чтоб без будто чего раз тоже себе под будет ж тогда кто этот того
    потому этого какой совсем ним здесь этом один почти мой тем чтобы нее сейчас были куда зачем
    всех никогда можно при наконец два об другой хоть после над больше тот через эти нас про
    всего них какая много разве три эту моя впрочем хорошо свою этой перед иногда лучше чуть
    том нельзя такой им более всегда конечно всю между это мой
    """.split()  # noqa: SIM905 -- a word list reads better as text
)


def hashtags(text: str) -> list[str]:
    return sorted({m.lower() for m in _HASHTAG.findall(text)})


def terms(text: str) -> list[str]:
    """Distinct lower-cased words of three letters or more, stop words, links and tags left out."""
    words = _WORD.findall(_URL.sub(" ", text))
    found = sorted({w.lower().strip("'’-") for w in words} - _STOPWORDS)
    return [w for w in found if len(w) >= 3][:MAX_TERMS]


def share_of_voice(matches: Iterable[QueryMatch]) -> list[str]:
    """Who a mention speaks of: `brand`, and/or `competitor:<name>` for each competitor query.
    A mention the brand's own source delivered (no query matched) is about the brand."""
    voices = {
        "brand" if m.role == "brand" else f"competitor:{m.competitor or 'unnamed'}" for m in matches
    }
    return sorted(voices or {"brand"})


def hour(at: datetime) -> datetime:
    return at.replace(minute=0, second=0, microsecond=0)


@dataclass
class MentionFact:
    """What the rollups know of one mention of one brand."""

    tenant_id: str
    mention_id: uuid.UUID
    brand_id: str | None = None
    network: str | None = None
    kind: str | None = None
    language: str | None = None
    author_id: str | None = None
    bucket: datetime | None = None
    replies_to_post_id: uuid.UUID | None = None
    sov: list[str] = field(default_factory=list)
    hashtags: list[str] = field(default_factory=list)
    terms: list[str] = field(default_factory=list)
    engagement: dict[str, int] | None = None
    sentiment: str | None = None
    intent: str | None = None
    received: bool = False
    deleted: bool = False

    def copy(self) -> MentionFact:
        # copy.copy, not dataclasses.replace: this runs for every mention a batch touches, and
        # replace re-runs __init__ with every field by keyword.
        fact = copy.copy(self)
        fact.sov, fact.hashtags, fact.terms = list(self.sov), list(self.hashtags), list(self.terms)
        return fact


def _engagement(e: Engagement | None) -> dict[str, int] | None:
    if e is None:
        return None
    counts = {k: v for k, v in e.model_dump().items() if isinstance(v, int)}
    return counts or None


def receive(fact: MentionFact, brand_id: str | None, mention: MentionPayload) -> None:
    """`mention.received` or `mention.updated`: the mention as the network has it now."""
    fact.brand_id = brand_id
    fact.network = mention.network
    fact.kind = mention.kind
    fact.language = mention.language or "und"
    fact.author_id = mention.author.id
    fact.bucket = hour(mention.created_at)
    fact.replies_to_post_id = mention.replies_to_post_id
    fact.sov = share_of_voice(mention.matches)
    fact.hashtags = hashtags(mention.text)
    fact.terms = terms(mention.text)
    fact.engagement = _engagement(mention.engagement)
    fact.received = True


def contribution(fact: MentionFact) -> Counter[CounterKey]:
    """The counter increments one mention stands for; nothing until it is received, nothing
    once it is deleted."""
    out: Counter[CounterKey] = Counter()
    if not fact.received or fact.deleted or fact.bucket is None or fact.brand_id is None:
        return out
    t, b, at, net = fact.tenant_id, fact.brand_id, fact.bucket, fact.network or ""

    def count(metric: str, dimension: str, value: str, n: int = 1) -> None:
        out[(HOURLY, t, b, metric, dimension, at, net, value)] += n

    count("mentions", "all", "")
    count("mentions", "kind", fact.kind or "mention")
    count("mentions", "language", fact.language or "und")
    if fact.sentiment is not None:
        count("mentions", "sentiment", fact.sentiment)
    if fact.intent is not None:
        count("mentions", "intent", fact.intent)
    for voice in fact.sov:
        count("mentions", "sov", voice)
    for name, n in (fact.engagement or {}).items():
        if n:
            count("engagement", name, "", n)
    if fact.replies_to_post_id is not None:
        count("post_replies", "post", str(fact.replies_to_post_id))
    if fact.author_id is not None:
        out[(TOKENS, t, b, "author", at, fact.author_id)] += 1
    for tag in fact.hashtags:
        out[(TOKENS, t, b, "hashtag", at, tag)] += 1
    for term in fact.terms:
        out[(TOKENS, t, b, "term", at, term)] += 1
    return out


def change(
    before: Mapping[Any, MentionFact], after: Mapping[Any, MentionFact]
) -> Counter[CounterKey]:
    """What to add to the counters (negative to take away) for facts moving from before to after."""
    delta: Counter[CounterKey] = Counter()
    for key, fact in after.items():
        delta.update(contribution(fact))
        if key in before:
            delta.subtract(contribution(before[key]))
    return Counter({k: n for k, n in delta.items() if n != 0})


def lateness(published_at: datetime, scheduled_at: datetime | None) -> float | None:
    if scheduled_at is None:
        return None
    return (published_at - scheduled_at).total_seconds()


def on_time(lateness_s: float | None) -> bool | None:
    return None if lateness_s is None else lateness_s <= ON_TIME_S


# --- our posts' engagement and the channels' audience ---------------------------------------

T = TypeVar("T")


def newest(
    items: Iterable[T], key: Callable[[T], Hashable], at: Callable[[T], datetime]
) -> list[T]:
    """The newest item per key (a strictly newer time replaces; a tie keeps the first seen), as
    the database keeps them: a late or redelivered older measurement never overwrites."""
    kept: dict[Hashable, T] = {}
    for item in items:
        k = key(item)
        if k not in kept or at(item) > at(kept[k]):
            kept[k] = item
    return list(kept.values())


def engagement(p: PostEngagementPayload) -> int:
    """Likes + reposts + replies (a counter the network does not report counts 0); views are
    reach, not engagement."""
    return (p.likes or 0) + (p.reposts or 0) + (p.replies or 0)


def engagement_rate(engaged: int | None, followers: int | None) -> float | None:
    """Engagement per follower of the channel at the measurement; None without an audience."""
    if engaged is None or not followers:
        return None
    return engaged / followers
