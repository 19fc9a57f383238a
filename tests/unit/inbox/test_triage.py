"""Inbox triage: labels a user would see on typical en/ru mentions, and the priority ordering."""

# ruff: noqa: RUF001 -- Cyrillic mentions are the point.

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import pytest

from services.inbox.triage import Triage, detect_spam, priority_level, triage

EVAL_SET = Path(__file__).resolve().parents[2] / "fixtures" / "triage" / "eval.jsonl"


@pytest.mark.parametrize(
    ("text", "language", "sentiment", "intent"),
    [
        ("Love Acme, the new update is amazing! 😍", "en", "positive", "praise"),
        ("Acme charged me twice, terrible support 😡", "en", "negative", "complaint"),
        ("does Acme ship to Canada?", "en", "neutral", "question"),
        ("where can I buy Acme headphones in Berlin?", "en", "neutral", "purchase"),
        ("Acme opened a new store in Lisbon", "en", "neutral", "other"),
        ("Обожаю Акме, спасибо за быструю доставку 👍", "ru", "positive", "praise"),
        ("Акме, посылка пришла разбитой, ужасный сервис", "ru", "negative", "complaint"),
        ("Акме, во сколько вы открываетесь в воскресенье?", "ru", "neutral", "question"),
        ("хочу купить наушники Акме, сколько стоит?", "ru", "neutral", "purchase"),
        ("Акме поменяли логотип", "ru", "neutral", "other"),
    ],
)
def test_typical_mentions_get_the_expected_sentiment_and_intent(
    text: str, language: str, sentiment: str, intent: str
) -> None:
    result = triage(text, language=language)

    assert (result.sentiment.label, result.intent) == (sentiment, intent)
    assert not result.spam.is_spam


@pytest.mark.parametrize(
    ("text", "label"),
    [
        ("not bad", "positive"),
        ("Acme is not bad at all", "positive"),
        ("не плохо", "positive"),
        ("not happy with Acme", "negative"),
        ("не доволен Акме", "negative"),
        ("can't complain, Acme works perfectly", "positive"),
        ("Акме никогда не подводит", "positive"),
        ("Acme never disappoints", "positive"),
    ],
)
def test_negation_flips_the_word_it_governs(text: str, label: str) -> None:
    assert triage(text).sentiment.label == label


def test_negation_does_not_reach_past_the_end_of_a_clause() -> None:
    assert triage("never again. rude staff and cold food").sentiment.label == "negative"


@pytest.mark.parametrize(
    "text",
    [
        "Great, Acme lost my order again. Just great 🙃",
        "thanks Acme for charging me twice, really appreciate it 🙄",
        "love how Acme cancels my flight every single time",
        "Ну спасибо, Акме, опять потеряли заказ. Отлично просто 🙃",
        "обожаю, когда Акме отменяет заказ без объяснений",
    ],
)
def test_praise_wrapped_around_a_bad_event_reads_as_sarcastic_complaint(text: str) -> None:
    result = triage(text)

    assert result.sentiment.sarcasm
    assert (result.sentiment.label, result.intent) == ("negative", "complaint")


@pytest.mark.parametrize(
    ("text", "sentiment", "intent"),
    [
        # The misses from the demo that opened issue #5.
        (
            "Заказала у Акме две недели назад, до сих пор ничего. Где мой возврат?!",
            "negative",
            "complaint",
        ),
        ("Just got my new sneakers from @acme, so comfy!", "positive", "praise"),
        ("Поддержка Акме молчит пятый день", "negative", "complaint"),
        (
            "Ordered from Acme two weeks ago and still nothing. Where is my refund??",
            "negative",
            "complaint",
        ),
    ],
)
def test_waiting_silence_and_comfort_read_as_people_mean_them(
    text: str, sentiment: str, intent: str
) -> None:
    result = triage(text)

    assert (result.sentiment.label, result.intent) == (sentiment, intent)


def test_an_angry_question_is_a_complaint_but_a_calm_one_is_a_question() -> None:
    assert triage("Acme where is my order?? three weeks now").intent == "complaint"
    assert triage("Акме, сколько можно ждать ответа??").intent == "complaint"
    assert triage("Акме, какие условия возврата для подарков?").intent == "question"


def test_praise_for_a_past_purchase_is_praise_not_a_sales_lead() -> None:
    assert triage("Acme is awesome, best purchase this year!").intent == "praise"
    assert triage("Купил кроссовки Акме, лучшая покупка за год!").intent == "praise"
    assert triage("Acme, is the blue hoodie in stock? want to buy two").intent == "purchase"


def test_the_clause_after_but_carries_the_verdict() -> None:
    assert triage("Acme was slow to ship but the staff were lovely").sentiment.label == "positive"
    assert triage("Acme is great but delivery was slow").sentiment.label == "negative"


def test_thanks_for_fixing_a_problem_is_not_sarcasm() -> None:
    result = triage("thanks Acme for fixing the wrong charge so fast")

    assert not result.sentiment.sarcasm
    assert result.sentiment.label == "positive"


def test_a_link_is_not_read_as_the_sarcasm_marker() -> None:
    assert not triage("our Acme review http://site.example.com/sale").sentiment.sarcasm


def test_sincere_praise_is_not_taken_for_sarcasm() -> None:
    result = triage("Great job Acme, the order arrived early 👏")

    assert not result.sentiment.sarcasm
    assert result.sentiment.label == "positive"


def test_intensifier_and_emoji_strengthen_the_score() -> None:
    plain = triage("Acme is good").sentiment.score
    assert triage("Acme is very good").sentiment.score > plain
    assert triage("Acme is good 😍").sentiment.score > plain
    assert -1.0 <= triage("worst worst worst awful terrible 😡🤬").sentiment.score <= -0.9


def _fired(text: str, **author: Any) -> set[str]:
    return {feature.name for feature in detect_spam(text, **author).features}


def test_spam_features_are_reported_by_name() -> None:
    assert "link_density" in _fired("win http://bit.ly/a http://bit.ly/b")
    assert "repeated_phrases" in _fired("follow for follow Acme follow for follow")
    assert "spam_phrases" in _fired("Заработок не выходя из дома, пиши в лс")
    assert "low_reputation_author" in _fired("hi", author_followers=2, author_verified=False)
    assert "low_reputation_author" not in _fired("hi", author_followers=2, author_verified=True)


def test_spam_needs_more_than_one_weak_feature() -> None:
    one_link = detect_spam("our review of Acme: http://blog.example.com/acme")
    new_account = detect_spam("hi Acme", author_followers=0)
    link_and_phrase = detect_spam("FREE gift, click here http://bit.ly/a http://bit.ly/b")

    assert not one_link.is_spam
    assert not new_account.is_spam
    assert link_and_phrase.is_spam
    assert link_and_phrase.score >= 0.5


def test_spam_is_pushed_to_the_bottom_of_the_inbox() -> None:
    result = triage(
        "crypto 1000% guaranteed, check my bio http://x.example.xyz", author_followers=3
    )

    assert result.spam.is_spam
    assert result.intent == "other"
    assert result.level == "low"
    assert any(signal.name == "spam" and signal.weight < 0 for signal in result.signals)


def _names(result: Triage) -> set[str]:
    return {signal.name for signal in result.signals}


def test_angry_influencer_asking_for_refund_outranks_question_outranks_praise() -> None:
    angry = triage(
        "Acme I want a refund NOW, worst service ever 😡",
        language="en",
        author_followers=250_000,
        author_verified=True,
    )
    question = triage("does Acme ship to Canada?", language="en", author_followers=300)
    praise = triage("Love Acme, amazing coffee!", language="en", author_followers=300)

    assert angry.priority > question.priority > praise.priority
    assert angry.level == "urgent"
    assert {"negative_sentiment", "complaint", "escalation_keyword", "author_reach"} <= _names(
        angry
    )
    assert "question" in _names(question)


def test_russian_escalation_keywords_raise_priority() -> None:
    plain = triage("Акме, заказ опаздывает, плохо", language="ru")
    escalated = triage("Акме мошенники, подам в суд, верните деньги", language="ru")

    assert escalated.priority > plain.priority
    keyword = next(s for s in escalated.signals if s.name == "escalation_keyword")
    assert "мошенн" in keyword.detail
    assert "суд" in keyword.detail


def test_custom_escalation_keywords_replace_the_defaults() -> None:
    result = triage("the Acme battery exploded", escalation_keywords=("explod",))
    default = triage("the Acme battery exploded")

    assert "escalation_keyword" in _names(result)
    assert "escalation_keyword" not in _names(default)


def test_vip_author_is_matched_by_handle_and_explained() -> None:
    vip = triage("Acme ok", author_handle="@BigCustomer", vip_authors=("bigcustomer",))
    anyone = triage("Acme ok", author_handle="@someone", vip_authors=("bigcustomer",))

    assert vip.priority > anyone.priority
    assert "vip_author" in _names(vip)


def test_signals_explain_the_priority_exactly() -> None:
    result = triage("Acme my order is late, refund please", author_followers=5_000)

    assert result.priority == round(sum(signal.weight for signal in result.signals))
    assert [abs(s.weight) for s in result.signals] == sorted(
        (abs(s.weight) for s in result.signals), reverse=True
    )


@pytest.mark.parametrize(
    ("priority", "level"), [(0, "low"), (24, "low"), (25, "normal"), (50, "high"), (75, "urgent")]
)
def test_priority_levels_have_documented_floors(priority: int, level: str) -> None:
    assert priority_level(priority) == level


def _accuracy(language: str, split: str, label: str) -> float:
    items = [json.loads(line) for line in EVAL_SET.read_text(encoding="utf-8").splitlines()]
    subset = [i for i in items if i["language"] == language and i["split"] == split]
    assert len(subset) >= 100
    hits = 0
    for item in subset:
        result = triage(item["text"], language=language)
        got = {"sentiment": result.sentiment.label, "intent": result.intent}
        got_spam = result.spam.is_spam
        hits += (got_spam if label == "spam" else got[label]) == item[label]
    return hits / len(subset)


# Measured by `python -m bench.triage` (docs/triage.md) minus a margin of about 0.03. The old
# holdout became tuning data in issue #5; holdout2 is the honest split.
@pytest.mark.parametrize(
    ("language", "split", "label", "floor"),
    [
        ("en", "tuning", "sentiment", 0.92),
        ("en", "tuning", "intent", 0.97),
        ("en", "tuning", "spam", 0.97),
        ("ru", "tuning", "sentiment", 0.92),
        ("ru", "tuning", "intent", 0.97),
        ("ru", "tuning", "spam", 0.97),
        ("en", "holdout", "sentiment", 0.93),
        ("en", "holdout", "intent", 0.97),
        ("en", "holdout", "spam", 0.97),
        ("ru", "holdout", "sentiment", 0.93),
        ("ru", "holdout", "intent", 0.97),
        ("ru", "holdout", "spam", 0.97),
        ("en", "holdout2", "sentiment", 0.90),
        ("en", "holdout2", "intent", 0.89),
        ("en", "holdout2", "spam", 0.95),
        ("ru", "holdout2", "sentiment", 0.87),
        ("ru", "holdout2", "intent", 0.82),
        ("ru", "holdout2", "spam", 0.95),
    ],
)
def test_accuracy_stays_above_the_measured_floor(
    language: str, split: str, label: str, floor: float
) -> None:
    assert _accuracy(language, split, label) >= floor
