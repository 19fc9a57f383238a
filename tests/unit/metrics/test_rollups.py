"""What a mention counts for in the rollups, and that edits, late triage and deletions are exact."""

from __future__ import annotations

import uuid
from collections import Counter
from datetime import UTC, datetime
from zoneinfo import ZoneInfo

from services.metrics import rollups
from services.metrics.periods import Period, buckets
from services.metrics.rollups import MentionFact
from shared.events import Author, Engagement, MentionPayload, QueryMatch, Thread

AT = datetime(2026, 11, 1, 9, 41, tzinfo=UTC)


def payload(text: str = "Love the #AcmeShoes sneakers", **extra: object) -> MentionPayload:
    base: dict[str, object] = {
        "mention_id": uuid.uuid4(),
        "source_id": uuid.uuid4(),
        "network": "mastodon",
        "external_id": "42",
        "text": text,
        "language": "en",
        "created_at": AT,
        "author": Author(id="u1", handle="@kim"),
        "thread": Thread(root_external_id="42"),
    }
    return MentionPayload.model_validate({**base, **extra})


def counters(*facts: MentionFact) -> Counter[rollups.CounterKey]:
    total: Counter[rollups.CounterKey] = Counter()
    for f in facts:
        total.update(rollups.contribution(f))
    return total


def hourly(delta: Counter[rollups.CounterKey], dimension: str) -> dict[str, int]:
    return {k[7]: n for k, n in delta.items() if k[0] == "hourly" and k[4] == dimension}


def test_a_received_mention_counts_once_in_its_utc_hour_by_every_dimension() -> None:
    fact = MentionFact("t", uuid.uuid4())
    rollups.receive(fact, "brand-a", payload(engagement=Engagement(likes=3, views=10)))
    c = rollups.contribution(fact)
    hour = datetime(2026, 11, 1, 9, tzinfo=UTC)
    assert {k[5] if k[0] == "hourly" else k[4] for k in c} == {hour}
    assert hourly(c, "all") == {"": 1}
    assert hourly(c, "language") == {"en": 1}
    assert hourly(c, "kind") == {"mention": 1}
    assert hourly(c, "sov") == {"brand": 1}
    assert hourly(c, "likes") == {"": 3}
    assert hourly(c, "sentiment") == {}  # not triaged yet
    assert {k[5] for k in c if k[0] == "tokens" and k[3] == "hashtag"} == {"acmeshoes"}


def test_triage_before_or_after_the_mention_ends_in_the_same_counts() -> None:
    p = payload()
    early, late = MentionFact("t", p.mention_id), MentionFact("t", p.mention_id)
    total: Counter[rollups.CounterKey] = Counter()
    # Triage first: nothing counts until the mention itself arrives.
    before = early.copy()
    early.sentiment = "positive"
    assert rollups.change({1: before}, {1: early}) == Counter()
    before = early.copy()
    rollups.receive(early, "brand-a", p)
    total.update(rollups.change({1: before}, {1: early}))
    rollups.receive(late, "brand-a", p)
    late.sentiment = "positive"
    assert total == counters(late)
    assert hourly(total, "sentiment") == {"positive": 1}


def test_an_edit_moves_the_counts_and_a_deletion_takes_them_all_away() -> None:
    fact = MentionFact("t", uuid.uuid4())
    rollups.receive(fact, "brand-a", payload())
    fact.sentiment = "negative"
    total = counters(fact)
    edited = fact.copy()
    rollups.receive(edited, "brand-a", payload("Плохо, жду заказ #доставка", language="ru"))
    total.update(rollups.change({1: fact}, {1: edited}))
    assert hourly(+total, "language") == {"ru": 1}
    assert hourly(+total, "sentiment") == {"negative": 1}
    deleted = edited.copy()
    deleted.deleted = True
    total.update(rollups.change({1: edited}, {1: deleted}))
    assert +total == Counter()
    assert all(n == 0 for n in total.values())


def test_share_of_voice_names_each_competitor_and_the_brand_once() -> None:
    q = uuid.uuid4()
    matches = [
        QueryMatch(query_id=q, version=1, role="brand"),
        QueryMatch(query_id=q, version=2, role="brand"),
        QueryMatch(query_id=q, version=1, role="competitor", competitor="Globex"),
    ]
    assert rollups.share_of_voice(matches) == ["brand", "competitor:Globex"]
    assert rollups.share_of_voice([]) == ["brand"]


def test_terms_and_hashtags_in_english_and_russian() -> None:
    text = "Where is my order?! Где мой заказ, @acme? #Доставка #late https://x.example/a"
    assert rollups.hashtags(text) == ["late", "доставка"]
    assert rollups.terms(text) == ["order", "заказ"]


def test_day_buckets_follow_the_zone_across_dst_and_months_have_their_lengths() -> None:
    berlin = ZoneInfo("Europe/Berlin")
    start = datetime(2026, 10, 24, tzinfo=berlin)
    end = datetime(2026, 10, 27, tzinfo=berlin)
    days = buckets(start, end, "day", berlin)
    assert [d.isoformat() for d in days] == [
        "2026-10-24T00:00:00+02:00",
        "2026-10-25T00:00:00+02:00",
        "2026-10-26T00:00:00+01:00",
    ]
    assert (days[2].astimezone(UTC) - days[1].astimezone(UTC)).total_seconds() == 25 * 3600
    months = buckets(
        datetime(2026, 1, 15, tzinfo=UTC),
        datetime(2026, 4, 1, tzinfo=UTC),
        "month",
        ZoneInfo("UTC"),
    )
    assert [m.month for m in months] == [1, 2, 3]
    period = Period(datetime(2026, 11, 8, tzinfo=UTC), datetime(2026, 11, 15, tzinfo=UTC))
    assert period.previous() == Period(datetime(2026, 11, 1, tzinfo=UTC), period.start)
