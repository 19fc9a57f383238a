"""Property tests: the compiled matcher agrees with the reference evaluator, and queries print
back to themselves."""

# ruff: noqa: RUF001 -- Cyrillic words in the vocabulary are the point, not look-alike letters.

from __future__ import annotations

from hypothesis import given, settings
from hypothesis import strategies as st

from services.ingest.listening import (
    And,
    FieldFilter,
    FieldName,
    Matcher,
    MatchInput,
    Near,
    Not,
    Or,
    Phrase,
    Query,
    QueryParseError,
    Term,
    TokenKind,
    evaluate,
    normalise,
    parse,
)

# A small vocabulary, so that generated queries and texts share words and matches happen often.
WORDS = ["acme", "shoes", "cafe", "банк", "кредит", "🔥", "go", "globex"]
HANDLES = ["acme", "acme@mastodon.social", "bob"]
TEXT_PIECES = [
    *WORDS,
    "Acme",
    "ACMESHOES",
    "Café",
    "БАНК",
    "кредиты",
    "#acme",
    "#AcmeShoes",
    "#банк",
    "@acme",
    "@Acme@mastodon.social",
    "@bob",
    "bob@acme.com",
    "👍🏽",
    "🔥🔥",
    ",",
    ".",
    "-",
    "acme's",
]

words = st.sampled_from(WORDS)
exact_terms = st.one_of(
    words.map(Term),
    words.filter(str.isalnum).map(lambda w: Term(w, TokenKind.HASHTAG)),
    st.sampled_from(HANDLES).map(lambda h: Term(h, TokenKind.HANDLE)),
)
prefix_terms = st.one_of(
    st.sampled_from(["ac", "acme", "sho", "ба", "gl"]).map(lambda w: Term(w, prefix=True)),
    st.sampled_from(["ac", "acme"]).map(lambda w: Term(w, TokenKind.HASHTAG, prefix=True)),
    st.sampled_from(["ac", "bo"]).map(lambda w: Term(w, TokenKind.HANDLE, prefix=True)),
)
terms = st.one_of(exact_terms, prefix_terms)
phrases = st.lists(exact_terms, min_size=2, max_size=3).map(lambda ts: Phrase(tuple(ts)))
operands = st.one_of(terms, phrases)
nears = st.builds(Near, operands, operands, st.integers(1, 4))
fields = st.one_of(
    st.sampled_from(["en", "ru", "en-gb"]).map(lambda v: FieldFilter(FieldName.LANG, v)),
    st.sampled_from(["mastodon", "vk"]).map(lambda v: FieldFilter(FieldName.NETWORK, v)),
    st.sampled_from(HANDLES).map(lambda v: FieldFilter(FieldName.AUTHOR, v)),
    st.sampled_from(["example.com", "blog.example.com"]).map(
        lambda v: FieldFilter(FieldName.SITE, v)
    ),
)
leaves = st.one_of(terms, phrases, nears, fields)


def _extend(children: st.SearchStrategy[Query]) -> st.SearchStrategy[Query]:
    group = st.lists(children, min_size=2, max_size=4)
    return st.one_of(
        children.map(Not),
        group.map(lambda cs: And(tuple(cs))),
        group.map(lambda cs: Or(tuple(cs))),
    )


queries = st.recursive(leaves, _extend, max_leaves=8)

mentions = st.builds(
    MatchInput,
    text=st.lists(
        st.one_of(st.sampled_from(TEXT_PIECES), st.text(max_size=3)), max_size=14
    ).flatmap(lambda pieces: st.sampled_from([" ", "", "  "]).map(lambda sep: sep.join(pieces))),
    language=st.sampled_from([None, "en", "en-GB", "ru", "de"]),
    network=st.sampled_from(["mastodon", "vk", "Mastodon"]),
    author_handle=st.sampled_from([None, "acme", "@Acme@mastodon.social", "bob", "bobby"]),
    url=st.sampled_from(
        [None, "https://example.com/x", "https://blog.example.com", "https://other.org/a"]
    ),
)


@settings(max_examples=300, deadline=None)
@given(st.lists(queries, min_size=1, max_size=8), st.lists(mentions, min_size=1, max_size=6))
def test_compiled_matcher_agrees_with_evaluate(
    generated: list[Query], items: list[MatchInput]
) -> None:
    keyed = list(enumerate(generated))
    matcher = Matcher(keyed)
    for item in items:
        assert matcher.match(item) == [key for key, query in keyed if evaluate(query, item)]


def _canonical(query: Query) -> Query:
    """The tree the parser builds for a query's text: nested AND in AND (OR in OR) flattened."""
    if isinstance(query, Not):
        return Not(_canonical(query.operand))
    if isinstance(query, And | Or):
        flat: list[Query] = []
        for operand in map(_canonical, query.operands):
            same = isinstance(operand, And | Or) and type(operand) is type(query)
            flat += operand.operands if isinstance(operand, And | Or) and same else (operand,)
        return type(query)(tuple(flat))
    return query


@settings(max_examples=300, deadline=None)
@given(queries)
def test_printed_queries_parse_back_to_the_same_tree(query: Query) -> None:
    refusal: QueryParseError | None = None
    try:
        parsed = parse(str(query))
    except QueryParseError as error:
        refusal = error
    if refusal is not None:
        # The only trees the parser refuses are those without a positive term on every side.
        assert "positive term" in refusal.message
        return
    assert parsed == _canonical(query)
    assert parse(str(parsed)) == parsed


@given(st.text())
def test_normalising_twice_changes_nothing(text: str) -> None:
    assert normalise(normalise(text)) == normalise(text)
