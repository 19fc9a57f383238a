"""What each operator, filter and script does to which mentions, as a table."""

# ruff: noqa: RUF001 -- Cyrillic and full-width letters in the cases are the point.

from __future__ import annotations

import pytest

from services.ingest.listening import Matcher, MatchInput, evaluate, parse


def mention(
    text: str,
    *,
    language: str | None = None,
    network: str = "mastodon",
    author: str | None = None,
    url: str | None = None,
) -> MatchInput:
    return MatchInput(text=text, language=language, network=network, author_handle=author, url=url)


# (query, mention, expected): what a brand manager would expect to land in their stream.
CASES: list[tuple[str, MatchInput, bool]] = [
    # terms: whole tokens, any case, found inside a possessive
    ("acme", mention("I love Acme!"), True),
    ("ACME", mention("acme"), True),
    ("acme", mention("acmeshoes are great"), False),
    ("acme", mention("Acme's new store"), True),
    ("acme", mention("ＡＣＭＥ fullwidth"), True),
    # AND, implicit AND, OR
    ("acme shoes", mention("shoes by acme"), True),
    ("acme shoes", mention("acme boots"), False),
    ("acme AND shoes", mention("Shoes, Acme."), True),
    ("acme OR globex", mention("globex rocks"), True),
    ("acme OR globex", mention("initech rocks"), False),
    # NOT and -term
    ("acme NOT shoes", mention("acme boots"), True),
    ("acme NOT shoes", mention("acme shoes"), False),
    ("acme -shoes", mention("acme shoes"), False),
    ("acme -shoes", mention("acme boots"), True),
    ("acme -(shoes OR boots)", mention("acme boots"), False),
    ("NOT acme shoes", mention("shoes"), True),
    ("NOT acme shoes", mention("acme shoes"), False),
    # parentheses and precedence (AND binds tighter than OR)
    ("acme AND (shoes OR boots)", mention("acme boots"), True),
    ("acme AND (shoes OR boots)", mention("acme hats"), False),
    ("acme shoes OR boots", mention("boots only"), True),
    ("acme shoes OR boots", mention("acme only"), False),
    # phrases: consecutive tokens, punctuation between them ignored
    ('"acme shoes"', mention("New Acme shoes!"), True),
    ('"acme shoes"', mention("shoes acme"), False),
    ('"acme shoes"', mention("acme red shoes"), False),
    ('"acme shoes"', mention("acme, shoes"), True),
    ("e-commerce", mention("E-Commerce is here"), True),
    ("e-commerce", mention("commerce e"), False),
    # NEAR/n: either order, n tokens apart at most
    ("acme NEAR/3 delivery", mention("acme a b delivery"), True),
    ("acme NEAR/3 delivery", mention("delivery a b acme"), True),
    ("acme NEAR/3 delivery", mention("acme a b c delivery"), False),
    ("acme NEAR/3 delivery", mention("delivery a b c acme"), False),
    ("acme NEAR/1 shoes", mention("shoes acme"), True),
    ("acme NEAR/1 shoes", mention("shoes by acme"), False),
    ('"acme app" NEAR/2 crash', mention("the acme app did crash"), True),
    ('"acme app" NEAR/2 crash', mention("crash of the acme app"), False),
    ("acme NEAR/5 acme", mention("acme"), False),
    ("acme NEAR/5 acme", mention("acme and acme"), True),
    # trailing wildcards
    ("acme*", mention("AcmeShoes on sale"), True),
    ("acme*", mention("#acmeshoes"), True),
    ("acme*", mention("the acm store"), False),
    ("#acme*", mention("acmeshoes"), False),
    ("#acme*", mention("#AcmeFans unite"), True),
    # hashtags versus plain words
    ("#acme", mention("#Acme"), True),
    ("#acme", mention("acme"), False),
    ("acme", mention("#acme"), True),
    ("#acme", mention("a#acme"), False),
    # @handles: in the text, or as the author
    ("@acme", mention("thanks @Acme!"), True),
    ("@acme", mention("thanks acme"), False),
    ("acme", mention("@acme hi"), False),
    ("@acme", mention("write to bob@acme.com"), False),
    ("@acme", mention("hi", author="acme"), True),
    ("@acme", mention("hi", author="@ACME@mastodon.social"), True),
    ("@acme", mention("hi @acme@mastodon.social"), True),
    ("@acme@mastodon.social", mention("hi", author="acme@other.example"), False),
    ("@acme*", mention("hi", author="acme_support"), True),
    ("@acme", mention("hi", author="acmesupport"), False),
    # field filters
    ("acme lang:en", mention("acme", language="en-GB"), True),
    ("acme lang:en", mention("acme", language="de"), False),
    ("acme lang:en", mention("acme"), False),
    ("acme lang:en-gb", mention("acme", language="en"), False),
    ("acme network:mastodon", mention("acme", network="Mastodon"), True),
    ("acme network:mastodon", mention("acme", network="bluesky"), False),
    ("acme author:SomeOne", mention("acme", author="@someone"), True),
    ("acme author:someone", mention("acme", author="someone@mastodon.social"), True),
    ("acme author:someone", mention("acme", author="someone_else"), False),
    ("acme -author:acme", mention("acme", author="acme"), False),
    ("site:example.com", mention("x", url="https://blog.Example.com/p/1"), True),
    ("site:example.com", mention("x", url="https://example.com"), True),
    ("site:example.com", mention("x", url="https://notexample.com/"), False),
    ("site:example.com", mention("x"), False),
    ("site:пример.рф", mention("x", url="https://xn--e1afmkfd.xn--p1ai/a"), True),
    ("lang:ru network:vk", mention("что угодно", language="ru", network="vk"), True),
    # Cyrillic
    ('"мобильный банк" AND NOT кредит', mention("Мобильный банк - удобно"), True),
    ('"мобильный банк" AND NOT кредит', mention("мобильный банк и кредит"), False),
    ('"мобильный банк" AND NOT кредит', mention("мобильный и банк"), False),
    ("ёлка", mention("ЕЛКА"), True),
    ("#сбер", mention("Люблю #Сбер"), True),
    # diacritics, both ways
    ("cafe", mention("Café au lait"), True),
    ("café", mention("CAFE"), True),
    ("naive", mention("so naïve"), True),
    # emoji are terms; a skin tone or a variation selector does not change the emoji
    ("acme 🔥", mention("acme is 🔥🔥"), True),
    ("acme 🔥", mention("acme is hot"), False),
    ("👍", mention("👍🏽 nice"), True),
    ("❤️", mention("I ❤ it"), True),
]


@pytest.mark.parametrize(("query", "item", "expected"), CASES)
def test_query_matches_what_a_user_expects(query: str, item: MatchInput, expected: bool) -> None:
    parsed = parse(query)
    assert evaluate(parsed, item) is expected
    assert Matcher([("q", parsed)]).match(item) == (["q"] if expected else [])


def test_one_matcher_over_the_whole_table_agrees_with_each_query() -> None:
    queries = [(n, parse(query)) for n, (query, _, _) in enumerate(CASES)]
    matcher = Matcher(queries)
    for _, item, _ in CASES:
        assert matcher.match(item) == [n for n, query in queries if evaluate(query, item)]
