"""Inbox rules: each condition and action, ordering, stop_processing, overrides, errors, dry run."""

from __future__ import annotations

import uuid
from datetime import UTC, datetime
from typing import Any

import pytest
from pydantic import ValidationError

from services.inbox.rules import (
    AddTag,
    AppliedAction,
    AssignMember,
    AssignTeam,
    AutoReply,
    Hide,
    MarkSpam,
    Rule,
    RuleItem,
    RuleMatch,
    RuleSet,
    SetPriority,
    dry_run,
    parse_rules,
)
from shared.events import Author, MentionPayload, Thread

# Wednesday 2026-03-04 10:30 UTC (13:30 in Moscow).
WEDNESDAY_MORNING = datetime(2026, 3, 4, 10, 30, tzinfo=UTC)


def item(**overrides: Any) -> RuleItem:
    fields: dict[str, Any] = {
        "item_id": "i1",
        "brand_id": "acme",
        "network": "bluesky",
        "kind": "mention",
        "text": "Hello there",
        "created_at": WEDNESDAY_MORNING,
        "author_handle": "alice.bsky.social",
        "language": "en",
        "author_followers": 120,
        "sentiment": "neutral",
        "sentiment_score": 0.0,
        "intent": "question",
        "spam": False,
        "priority": 50,
        "level": "normal",
    }
    fields.update(overrides)
    return RuleItem(**fields)


def rule(rule_id: str, conditions: list[dict[str, Any]], **extra: Any) -> Rule:
    actions = extra.pop("actions", [{"type": "add_tag", "tag": rule_id}])
    return parse_rules([{"id": rule_id, "conditions": conditions, "actions": actions, **extra}])[0]


def matches(condition: dict[str, Any], subject: RuleItem) -> bool:
    return bool(RuleSet.compile([rule("r", [condition])]).evaluate(subject))


@pytest.mark.parametrize(
    ("condition", "matching", "not_matching"),
    [
        (
            {"type": "sentiment_in", "values": ["negative"]},
            {"sentiment": "negative"},
            {"sentiment": "positive"},
        ),
        (
            {"type": "sentiment_score", "op": "<=", "value": -0.5},
            {"sentiment_score": -0.5},
            {"sentiment_score": -0.4},
        ),
        (
            {"type": "sentiment_score", "op": ">=", "value": 0.5},
            {"sentiment_score": 0.9},
            {"sentiment_score": None},
        ),
        (
            {"type": "intent_in", "values": ["complaint", "refund"]},
            {"intent": "Refund"},
            {"intent": "praise"},
        ),
        ({"type": "spam_is", "value": True}, {"spam": True}, {"spam": None}),
        ({"type": "spam_is", "value": False}, {"spam": None}, {"spam": True}),
        ({"type": "priority", "op": ">=", "value": 80}, {"priority": 80}, {"priority": 79}),
        ({"type": "priority", "op": "<=", "value": 20}, {"priority": 5}, {"priority": None}),
        ({"type": "level_in", "values": ["high", "urgent"]}, {"level": "urgent"}, {"level": "low"}),
        (
            {"type": "network_in", "values": ["mastodon", "Bluesky"]},
            {"network": "bluesky"},
            {"network": "vk"},
        ),
        ({"type": "brand_in", "values": ["acme"]}, {"brand_id": "acme"}, {"brand_id": "globex"}),
        (
            {"type": "language_in", "values": ["ru", "EN"]},
            {"language": "en"},
            {"language": None},
        ),
        (
            {"type": "kind_in", "values": ["direct_message", "review"]},
            {"kind": "review"},
            {"kind": "comment"},
        ),
        (
            {"type": "author_handle_in", "values": ["@Alice.bsky.social"]},
            {"author_handle": "alice.bsky.social"},
            {"author_handle": "bob.bsky.social"},
        ),
        (
            {"type": "author_followers_at_least", "value": 10_000},
            {"author_followers": 10_000},
            {"author_followers": None},
        ),
    ],
)
def test_each_field_condition_matches_only_items_that_satisfy_it(
    condition: dict[str, Any], matching: dict[str, Any], not_matching: dict[str, Any]
) -> None:
    assert matches(condition, item(**matching))
    assert not matches(condition, item(**not_matching))


@pytest.mark.parametrize(
    ("text", "expected"),
    [
        ("REFUND please", True),  # case-insensitive
        ("Где мой возврат?", True),  # Cyrillic keyword, punctuation is a word boundary
        ("Je veux un rembourse\u0301ment", True),  # combining accent in the text
        ("Quero meu reembolsó", True),  # accent in the text, not in the keyword
        ("refunded already", False),  # whole words only
        ("prerefund", False),
        ("my money back now", True),  # multi-word keyword
        ("money, back", False),
        ("c++ crashes", True),  # keyword edges that are not word characters
    ],
)
def test_text_keywords_match_whole_words_ignoring_case_and_accents(
    text: str, expected: bool
) -> None:
    condition = {
        "type": "text_contains_any",
        "keywords": ["refund", "Возврат", "remboursement", "reembolso", "money back", "C++"],
    }
    assert matches(condition, item(text=text)) is expected


def test_two_keyword_conditions_in_one_rule_must_both_hold() -> None:
    ruleset = RuleSet.compile(
        [
            rule(
                "both",
                [
                    {"type": "text_contains_any", "keywords": ["refund"]},
                    {"type": "text_contains_any", "keywords": ["late", "delayed"]},
                ],
            )
        ]
    )
    assert ruleset.evaluate(item(text="refund, order delayed"))
    assert not ruleset.evaluate(item(text="refund please"))


def test_time_window_uses_the_rules_zone_and_weekdays() -> None:
    business_hours = {
        "type": "time_window",
        "zone": "Europe/Moscow",
        "start": "09:00",
        "end": "18:00",
        "weekdays": ["mon", "tue", "wed", "thu", "fri"],
    }
    assert matches(business_hours, item(created_at=WEDNESDAY_MORNING))  # 13:30 Moscow
    assert not matches(business_hours, item(created_at=datetime(2026, 3, 4, 16, 0, tzinfo=UTC)))
    saturday = datetime(2026, 3, 7, 10, 30, tzinfo=UTC)
    assert not matches(business_hours, item(created_at=saturday))


def test_overnight_window_belongs_to_the_day_it_starts() -> None:
    friday_night = {
        "type": "time_window",
        "zone": "UTC",
        "start": "22:00",
        "end": "06:00",
        "weekdays": ["fri"],
    }
    assert matches(friday_night, item(created_at=datetime(2026, 3, 6, 23, 0, tzinfo=UTC)))
    assert matches(friday_night, item(created_at=datetime(2026, 3, 7, 3, 0, tzinfo=UTC)))
    assert not matches(friday_night, item(created_at=datetime(2026, 3, 6, 3, 0, tzinfo=UTC)))
    assert not matches(friday_night, item(created_at=datetime(2026, 3, 7, 23, 0, tzinfo=UTC)))


def test_rule_without_conditions_matches_every_item_and_disabled_rules_never() -> None:
    ruleset = RuleSet.compile([rule("always", []), rule("off", [], enabled=False)])
    assert [a.rule_id for a in ruleset.evaluate(item())] == ["always"]
    assert len(ruleset) == 1


def test_every_action_kind_is_returned_in_rule_order() -> None:
    actions = [
        {"type": "add_tag", "tag": "vip"},
        {"type": "set_priority", "priority": 90, "level": "urgent"},
        {"type": "assign_team", "team_id": "care"},
        {"type": "assign_member", "member_id": "m-7"},
        {"type": "mark_spam"},
        {"type": "hide"},
        {"type": "auto_reply", "saved_reply_id": "thanks-1"},
    ]
    applied = RuleSet.compile([rule("all", [], actions=actions)]).evaluate(item())
    assert applied == [
        AppliedAction("all", AddTag(tag="vip")),
        AppliedAction("all", SetPriority(priority=90, level="urgent")),
        AppliedAction("all", AssignTeam(team_id="care")),
        AppliedAction("all", AssignMember(member_id="m-7")),
        AppliedAction("all", MarkSpam()),
        AppliedAction("all", Hide()),
        AppliedAction("all", AutoReply(saved_reply_id="thanks-1")),
    ]


def test_stop_processing_ends_evaluation_only_when_its_rule_matches() -> None:
    ruleset = RuleSet.compile(
        [
            rule("first", []),
            rule(
                "stopper", [{"type": "sentiment_in", "values": ["negative"]}], stop_processing=True
            ),
            rule("after", []),
        ]
    )
    assert [a.rule_id for a in ruleset.evaluate(item(sentiment="negative"))] == [
        "first",
        "stopper",
    ]
    assert [a.rule_id for a in ruleset.evaluate(item(sentiment="positive"))] == [
        "first",
        "after",
    ]


def test_later_rules_override_single_valued_actions_and_tags_are_not_repeated() -> None:
    ruleset = RuleSet.compile(
        [
            rule(
                "general",
                [],
                actions=[
                    {"type": "set_priority", "priority": 30},
                    {"type": "add_tag", "tag": "inbox"},
                    {"type": "assign_team", "team_id": "care"},
                    {"type": "mark_spam"},
                ],
            ),
            rule(
                "vip",
                [{"type": "author_followers_at_least", "value": 100}],
                actions=[
                    {"type": "add_tag", "tag": "inbox"},
                    {"type": "set_priority", "priority": 95, "level": "urgent"},
                    {"type": "mark_spam"},
                ],
            ),
        ]
    )
    assert ruleset.evaluate(item()) == [
        AppliedAction("general", AddTag(tag="inbox")),
        AppliedAction("general", AssignTeam(team_id="care")),
        AppliedAction("general", MarkSpam()),
        AppliedAction("vip", SetPriority(priority=95, level="urgent")),
    ]


def test_index_only_offers_rules_for_the_items_brand_network_and_language() -> None:
    rules = [
        rule(
            f"r{n}",
            [
                {"type": "brand_in", "values": [brand]},
                {"type": "network_in", "values": [network]},
                {"type": "language_in", "values": [language]},
            ],
        )
        for n, (brand, network, language) in enumerate(
            [("acme", "bluesky", "en"), ("acme", "vk", "ru"), ("globex", "bluesky", "en")]
        )
    ]
    rules.append(rule("any-brand", [{"type": "network_in", "values": ["bluesky"]}]))
    rules.append(
        rule(
            "contradiction",
            [{"type": "brand_in", "values": ["acme"]}, {"type": "brand_in", "values": ["globex"]}],
        )
    )
    ruleset = RuleSet.compile(rules)
    assert [a.rule_id for a in ruleset.evaluate(item())] == ["r0", "any-brand"]
    assert [a.rule_id for a in ruleset.evaluate(item(network="vk", language="ru"))] == ["r1"]
    assert [a.rule_id for a in ruleset.evaluate(item(brand_id="globex"))] == ["r2", "any-brand"]


@pytest.mark.parametrize(
    ("data", "message"),
    [
        ({"id": "x", "actions": []}, "at least 1 item"),
        ({"id": "x", "actions": [{"type": "explode"}]}, "does not match any of the expected tags"),
        (
            {"id": "x", "actions": [{"type": "hide"}], "conditions": [{"type": "spam_is"}]},
            "Field required",
        ),
        (
            {
                "id": "x",
                "actions": [{"type": "hide"}],
                "conditions": [{"type": "sentiment_in", "values": ["angry"]}],
            },
            "'negative', 'neutral' or 'positive'",
        ),
        (
            {
                "id": "x",
                "actions": [{"type": "hide"}],
                "conditions": [{"type": "sentiment_score", "op": "<=", "value": -2}],
            },
            "greater than or equal to -1",
        ),
        (
            {
                "id": "x",
                "actions": [{"type": "hide"}],
                "conditions": [{"type": "text_contains_any", "keywords": ["\u0301"]}],
            },
            "empty once case and accents are removed",
        ),
        (
            {
                "id": "x",
                "actions": [{"type": "hide"}],
                "conditions": [
                    {
                        "type": "time_window",
                        "zone": "Mars/Olympus",
                        "start": "09:00",
                        "end": "18:00",
                    }
                ],
            },
            "unknown time zone 'Mars/Olympus'",
        ),
        (
            {
                "id": "x",
                "actions": [{"type": "hide"}],
                "conditions": [{"type": "network_in", "values": ["vk", "vk"]}],
            },
            "values must not repeat",
        ),
        (
            {
                "id": "x",
                "actions": [
                    {"type": "assign_team", "team_id": "a"},
                    {"type": "assign_team", "team_id": "b"},
                ],
            },
            "more than one assign_team",
        ),
        ({"id": "x", "actions": [{"type": "hide"}], "colour": "red"}, "Extra inputs"),
    ],
)
def test_invalid_rules_are_rejected_with_a_clear_message(
    data: dict[str, Any], message: str
) -> None:
    with pytest.raises(ValidationError, match=message):
        parse_rules([data])


def test_duplicate_rule_ids_and_naive_times_are_refused() -> None:
    with pytest.raises(ValueError, match="repeated: dup"):
        RuleSet.compile([rule("dup", []), rule("dup", [])])
    with pytest.raises(ValueError, match="timezone-aware"):
        item(created_at=datetime(2026, 3, 4, 10, 30))  # naive on purpose


def test_dry_run_lists_each_items_matching_rules_with_their_actions() -> None:
    rules = [
        rule(
            "complaints",
            [{"type": "text_contains_any", "keywords": ["refund"]}],
            actions=[{"type": "assign_team", "team_id": "care"}],
        ),
        rule(
            "spam",
            [{"type": "spam_is", "value": True}],
            actions=[{"type": "hide"}],
            stop_processing=True,
        ),
        rule("tag", [], actions=[{"type": "add_tag", "tag": "seen"}]),
    ]
    report = dry_run(rules, [item(text="refund now"), item(spam=True), item()])
    assert report == [
        [
            RuleMatch("complaints", (AssignTeam(team_id="care"),)),
            RuleMatch("tag", (AddTag(tag="seen"),)),
        ],
        [RuleMatch("spam", (Hide(),))],
        [RuleMatch("tag", (AddTag(tag="seen"),))],
    ]


def test_item_built_from_a_mention_carries_its_fields_into_rules() -> None:
    mention = MentionPayload(
        mention_id=uuid.uuid4(),
        source_id=uuid.uuid4(),
        network="mastodon",
        external_id="109",
        kind="reply",
        text="Awful service",
        language="en",
        created_at=WEDNESDAY_MORNING,
        author=Author(id="1", handle="carol@example.social", followers=50_000, verified=True),
        thread=Thread(root_external_id="100"),
    )
    subject = RuleItem.from_mention(
        mention, brand_id="acme", sentiment="negative", sentiment_score=-0.8
    )
    ruleset = RuleSet.compile(
        [
            rule(
                "influencer-complaint",
                [
                    {"type": "network_in", "values": ["mastodon"]},
                    {"type": "kind_in", "values": ["reply"]},
                    {"type": "author_followers_at_least", "value": 10_000},
                    {"type": "sentiment_score", "op": "<=", "value": -0.5},
                    {"type": "text_contains_any", "keywords": ["awful"]},
                ],
            )
        ]
    )
    assert [a.rule_id for a in ruleset.evaluate(subject)] == ["influencer-complaint"]
