from __future__ import annotations

import pytest

from services.ingest.listening import (
    And,
    FieldFilter,
    FieldName,
    Near,
    Not,
    Or,
    Phrase,
    QueryParseError,
    Term,
    TokenKind,
    parse,
)


def test_a_query_parses_into_its_tree() -> None:
    query = parse('(Acme OR #acme OR @Acme) "new shoes" NEAR/5 café* -job lang:EN')
    assert query == And(
        (
            Or(
                (
                    Term("acme"),
                    Term("acme", TokenKind.HASHTAG),
                    Term("acme", TokenKind.HANDLE),
                )
            ),
            Near(Phrase((Term("new"), Term("shoes"))), Term("cafe", prefix=True), 5),
            Not(Term("job")),
            FieldFilter(FieldName.LANG, "en"),
        )
    )


def test_keywords_are_upper_case_only_and_quotes_make_them_words() -> None:
    assert parse("acme and shoes") == And((Term("acme"), Term("and"), Term("shoes")))
    assert parse('acme "OR"') == And((Term("acme"), Term("or")))


def test_a_term_with_punctuation_is_the_phrase_a_text_would_tokenise_it_into() -> None:
    assert parse("acme.com") == Phrase((Term("acme"), Term("com")))
    assert parse('"acme"') == Term("acme")


def test_field_values_are_normalised() -> None:
    assert parse("site:Пример.РФ") == FieldFilter(FieldName.SITE, "xn--e1afmkfd.xn--p1ai")
    assert parse("author:@SomeOne") == FieldFilter(FieldName.AUTHOR, "someone")
    assert parse("lang:pt_BR") == FieldFilter(FieldName.LANG, "pt-br")


@pytest.mark.parametrize(
    "query",
    [
        'acme OR (#acme AND NOT "acme jobs") -@acme_hr',
        "acme NEAR/3 delivery lang:en network:mastodon site:example.com author:bob",
        '"мобильный банк" AND NOT кредит',
        "acme* 🔥 (café OR naïve)",
        "acme NOT NOT shoes",
    ],
)
def test_printed_queries_parse_back_to_the_same_tree(query: str) -> None:
    parsed = parse(query)
    assert parse(str(parsed)) == parsed


# (query, position, start of the message, what was expected)
ERRORS: list[tuple[str, int, str, str]] = [
    ("", 0, "the query is empty", "a term"),
    ("   ", 0, "the query is empty", "a term"),
    ("acme AND", 8, "expected a term or '('", "a term or '('"),
    ("acme AND (shoes OR", 18, "expected a term or '('", "a term or '('"),
    ("AND acme", 0, "expected a term or '('", "a term or '('"),
    ("acme OR OR b", 8, "expected a term or '('", "a term or '('"),
    ("(acme", 5, "expected ')'", "')'"),
    ("acme)", 4, "unexpected ')'", "AND, OR, a term or the end"),
    ('"acme shoes', 11, "expected '\"' to close the phrase", "'\"'"),
    ('""', 0, "the phrase has no terms", "a term inside the quotes"),
    ("!!!", 0, "'!!!' has no letters, digits or emoji", "a term"),
    ("- acme", 1, "expected a term right after '-'", "a term or '('"),
    ("acme NEAR shoes", 9, "expected '/' and a distance after NEAR", "a distance from 1"),
    ("acme NEAR/0 shoes", 10, "NEAR distance must be a number from 1 to 100", "a distance"),
    ("acme NEAR/101 shoes", 10, "NEAR distance must be a number from 1 to 100", "a distance"),
    ("acme NEAR/x shoes", 10, "NEAR distance must be a number from 1 to 100", "a distance"),
    ("(a OR b) NEAR/2 c", 0, "NEAR joins two terms or phrases", "a term or phrase before"),
    ("acme NEAR/2 (b OR c)", 12, "NEAR joins two terms or phrases", "a term or phrase after"),
    ("lang:en NEAR/2 acme", 0, "NEAR joins two terms or phrases", "a term or phrase before"),
    ("a NEAR/2 b NEAR/2 c", 11, "NEAR joins two terms or phrases", "AND, OR or the end"),
    ("ac*me", 2, "a wildcard '*' may only end a word", "a space or ')'"),
    ("acme a*", 5, "a wildcard needs one word of at least 2 characters", "a word followed"),
    ("acme.com*", 0, "a wildcard needs one word", "a word followed"),
    ('"acme sho*"', 9, "a wildcard '*' is not allowed inside a phrase", "'\"'"),
    ("acme lang:", 10, "expected a value after 'lang:'", "a value"),
    ("acme lang:english", 10, "'english' is not a language code", "a language code"),
    ("acme site:-bad-.com", 10, "'-bad-.com' is not a domain", "a domain"),
    ("acme author:bob!", 12, "'bob!' is not a handle", "a handle"),
    ("acme network:", 13, "expected a value after 'network:'", "a value"),
    ("NOT acme", 0, "a query needs at least one positive term", "a positive term"),
    ("-acme -shoes", 0, "a query needs at least one positive term", "a positive term"),
    ("NOT lang:en", 0, "a query needs at least one positive term", "a positive term"),
    ("acme OR -shoes", 8, "every side of OR needs a positive term", "a positive term"),
    ("c OR (NOT a AND NOT b)", 6, "every side of OR needs a positive term", "a positive term"),
]


@pytest.mark.parametrize(("query", "position", "message", "expected"), ERRORS)
def test_errors_say_what_was_expected_and_where(
    query: str, position: int, message: str, expected: str
) -> None:
    with pytest.raises(QueryParseError) as caught:
        parse(query)
    error = caught.value
    assert error.position == position
    assert error.message.startswith(message)
    assert error.expected is not None
    assert error.expected.startswith(expected)
    assert str(error) == f"{error.message} at position {position}"
    assert error.as_dict() == {
        "message": str(error),
        "position": position,
        "expected": error.expected,
    }


def test_the_error_message_reads_as_a_sentence() -> None:
    with pytest.raises(QueryParseError, match=r"^expected a term or '\(' at position 9$"):
        parse("acme AND )")


def test_nesting_is_limited_to_32_levels() -> None:
    assert parse("(" * 32 + "acme" + ")" * 32) == Term("acme")
    with pytest.raises(QueryParseError) as caught:
        parse("(" * 33 + "acme" + ")" * 33)
    assert caught.value.position == 32
    negations = "acme AND " + "NOT " * 33 + "shoes"
    with pytest.raises(QueryParseError) as caught:
        parse(negations)
    assert caught.value.position == len("acme AND ") + 32 * len("NOT ")
    assert "deeper than 32" in caught.value.message


def test_queries_are_limited_to_4000_characters() -> None:
    longest = "acme OR " * 499 + "acmeshoe"
    assert len(longest) == 4000
    assert parse(longest) == Or((Term("acme"),) * 499 + (Term("acmeshoe"),))
    with pytest.raises(QueryParseError) as caught:
        parse("acme " * 801)
    assert caught.value.position == 4000
    assert caught.value.message == "the query is longer than 4000 characters"
