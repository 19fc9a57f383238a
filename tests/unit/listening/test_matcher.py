from __future__ import annotations

import uuid

from services.ingest.listening import (
    Matcher,
    MatchInput,
    Not,
    Or,
    Term,
    evaluate,
    parse,
)

ACME_SHOES = MatchInput("Acme shoes are on sale at #globex", language="en", network="mastodon")


def test_keys_come_back_in_the_order_the_queries_were_given() -> None:
    first, second, third, fourth = (uuid.uuid4() for _ in range(4))
    matcher = Matcher(
        [
            (first, parse("globex")),
            (second, parse("initech")),
            (third, parse('"acme shoes"')),
            (fourth, parse("shoes lang:en")),
        ]
    )
    assert matcher.match(ACME_SHOES) == [first, third, fourth]


def test_tenants_watching_the_same_query_each_get_the_match() -> None:
    matcher = Matcher(
        [("tenant-a", parse("acme")), ("tenant-b", parse("x")), ("tenant-c", parse("acme"))]
    )
    assert matcher.match(ACME_SHOES) == ["tenant-a", "tenant-c"]


def test_adding_replacing_and_removing_queries_builds_a_new_matcher() -> None:
    matcher = Matcher([("a", parse("acme")), ("b", parse("initech"))])
    grown = matcher.with_queries([("c", parse("#globex")), ("b", parse("shoes"))])
    assert grown.match(ACME_SHOES) == ["a", "b", "c"]
    assert len(grown) == 3
    shrunk = grown.without(["a", "missing"])
    assert shrunk.match(ACME_SHOES) == ["b", "c"]
    # The matcher in use is untouched while its replacement is built.
    assert matcher.match(ACME_SHOES) == ["a"]
    assert list(shrunk.queries()) == ["b", "c"]


def test_queries_on_metadata_alone_match_without_any_text_literal() -> None:
    matcher = Matcher([("en", parse("lang:en")), ("vk", parse("network:vk"))])
    assert matcher.match(ACME_SHOES) == ["en"]
    assert matcher.match(MatchInput("", network="VK")) == ["vk"]


def test_a_query_with_nothing_to_index_is_still_evaluated() -> None:
    # parse() refuses this (a purely negative side of OR), but a tree built in code can hold it.
    anything_but_acme = Or((Term("globex"), Not(Term("acme"))))
    matcher = Matcher([("q", anything_but_acme)])
    assert matcher.match(MatchInput("hello world")) == ["q"]
    assert matcher.match(MatchInput("hello acme")) == []
    assert matcher.match(MatchInput("hello acme globex")) == ["q"]


def test_an_empty_matcher_matches_nothing() -> None:
    assert Matcher[str]().match(ACME_SHOES) == []


def test_matcher_agrees_with_evaluate_on_long_texts_with_repeats() -> None:
    queries = [
        (n, parse(text))
        for n, text in enumerate(
            [
                "acme NEAR/2 shoes",
                '"acme shoes" NEAR/4 sale',
                "acme* NEAR/1 #globex",
                '"shoes acme" -sale',
                "@acme NEAR/3 shoes",
            ]
        )
    ]
    matcher = Matcher(queries)
    text = " ".join(["acme", "x", "shoes", "y", "sale", "@acme", "acmes", "#globex"] * 40)
    for cut in range(0, 320, 7):
        item = MatchInput(" ".join(text.split()[cut:]))
        assert matcher.match(item) == [n for n, query in queries if evaluate(query, item)]
