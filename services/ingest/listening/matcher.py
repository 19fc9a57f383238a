"""Matches each incoming mention against every tenant's listening queries at once.

An Aho-Corasick automaton over the normalised text (and the mention's metadata keys) finds which
queries could match; only those are evaluated, on one tokenisation of the mention. The result is
always what `evaluate` says for each query.
"""

from __future__ import annotations

from bisect import bisect_left
from collections import Counter
from collections.abc import Callable, Hashable, Iterable, Iterator
from typing import Generic, Protocol, TypeVar, cast

# A C extension without type stubs; _Automaton below types the part we use.
import ahocorasick  # type: ignore[import-not-found, unused-ignore]

from services.ingest.listening.evaluate import term_matches_token, within
from services.ingest.listening.mention import (
    KEY_SEPARATOR,
    MatchInput,
    MentionFacts,
    author_key,
    field_key,
)
from services.ingest.listening.query import (
    And,
    FieldFilter,
    FieldName,
    Near,
    Not,
    Or,
    Phrase,
    Query,
    Term,
)
from services.ingest.listening.text import TokenKind, handle_matches, normalise, tokenise

QueryKey = TypeVar("QueryKey", bound=Hashable)


class _Automaton(Protocol):
    def add_word(self, key: str, value: int) -> bool: ...
    def make_automaton(self) -> None: ...
    def iter(self, haystack: str) -> Iterator[tuple[int, int]]: ...


class _MentionView:
    """One mention, tokenised once and shared by every candidate query's evaluation."""

    __slots__ = ("_handle_locals", "_sorted", "_where", "facts", "present", "tokens")

    def __init__(self, text: str, facts: MentionFacts) -> None:
        self.tokens = tokenise(text)
        self.present = set(self.tokens)
        self.facts = facts
        self._where: dict[str, list[int]] = {}
        self._sorted: list[str] | None = None
        self._handle_locals: set[str] | None = None

    def where(self, token: str) -> list[int]:
        """Indexes at which `token` occurs (list.index scans in C; a long text has few repeats)."""
        found = self._where.get(token)
        if found is None:
            found = []
            if token in self.present:
                index = self.tokens.index
                position = index(token)
                try:
                    while True:
                        found.append(position)
                        position = index(token, position + 1)
                except ValueError:
                    pass
            self._where[token] = found
        return found

    def starting_with(self, prefix: str) -> list[str]:
        """The distinct tokens that start with `prefix`, found by bisection in sorted tokens."""
        if self._sorted is None:
            self._sorted = sorted(self.present)
        tokens = self._sorted
        position = bisect_left(tokens, prefix)
        found = []
        while position < len(tokens) and tokens[position].startswith(prefix):
            found.append(tokens[position])
            position += 1
        return found

    def handle_locals(self) -> set[str]:
        """Handles without their @instance part (acme for @acme@mastodon.social)."""
        if self._handle_locals is None:
            self._handle_locals = {
                token[1:].partition("@")[0] for token in self.present if token[0] == "@"
            }
        return self._handle_locals


_Predicate = Callable[[_MentionView], bool]
_Spans = Callable[[_MentionView], list[tuple[int, int]]]


class Matcher(Generic[QueryKey]):
    """Every query of every tenant, compiled for matching; immutable, so it can be swapped whole.

    `match` returns the keys of the matching queries in the order the queries were given.
    Adding, replacing or removing queries builds a new matcher (`with_queries`, `without`), which
    reuses the compiled form of every query it already had.
    """

    def __init__(self, queries: Iterable[tuple[QueryKey, Query]] = ()) -> None:
        self._build(dict(queries), {})

    def __len__(self) -> int:
        return len(self._entries)

    def queries(self) -> dict[QueryKey, Query]:
        """The queries this matcher holds, by key, in the order they were given."""
        return dict(self._entries)

    def with_queries(self, queries: Iterable[tuple[QueryKey, Query]]) -> Matcher[QueryKey]:
        """A matcher with these queries added (a key already present gets its new query)."""
        entries = dict(self._entries)
        entries.update(queries)
        return self._rebuilt(entries)

    def without(self, keys: Iterable[QueryKey]) -> Matcher[QueryKey]:
        """A matcher without the queries of these keys."""
        removed = set(keys)
        return self._rebuilt({k: q for k, q in self._entries.items() if k not in removed})

    def match(self, mention: MatchInput) -> list[QueryKey]:
        """Keys of the queries `mention` matches, in the order the queries were given."""
        text = normalise(mention.text)
        facts = MentionFacts.of(mention)
        candidates = set(self._always)
        if self._automaton is not None:
            literal_queries = self._literal_queries
            scan = text + KEY_SEPARATOR + facts.keys()
            for literal in {literal for _, literal in self._automaton.iter(scan)}:
                candidates.update(literal_queries[literal])
        if not candidates:
            return []
        view = _MentionView(text, facts)
        predicates, owners = self._predicates, self._owners
        matched: list[tuple[int, QueryKey]] = []
        for index in sorted(candidates):
            if predicates[index](view):
                matched += owners[index]
        if self._shared and len(matched) > 1:
            matched.sort()  # orders are unique, so keys themselves are never compared
        return [key for _, key in matched]

    def _rebuilt(self, entries: dict[QueryKey, Query]) -> Matcher[QueryKey]:
        matcher: Matcher[QueryKey] = Matcher.__new__(Matcher)
        matcher._build(entries, self._compiled)
        return matcher

    def _build(self, entries: dict[QueryKey, Query], compiled: dict[Query, _Predicate]) -> None:
        self._entries = entries
        # Tenants often watch the same query (a shared competitor): evaluate it once per mention.
        index_of: dict[Query, int] = {}
        owners: list[list[tuple[int, QueryKey]]] = []
        for order, (key, query) in enumerate(entries.items()):
            index = index_of.setdefault(query, len(index_of))
            if index == len(owners):
                owners.append([])
            owners[index].append((order, key))
        distinct = list(index_of)
        self._owners = owners
        self._shared = len(distinct) < len(entries)
        self._compiled = {query: compiled.get(query) or _compile(query) for query in distinct}
        self._predicates = [self._compiled[query] for query in distinct]

        fanout: Counter[str] = Counter()
        for query in distinct:
            fanout.update(set(_positive_literals(query)))
        always: list[int] = []
        by_literal: dict[str, list[int]] = {}
        for index, query in enumerate(distinct):
            required = _required_literals(query, fanout)
            if required is None:
                always.append(index)
            else:
                for literal in required:
                    by_literal.setdefault(literal, []).append(index)
        self._always = tuple(always)
        self._literal_queries = [tuple(indexes) for indexes in by_literal.values()]
        self._automaton: _Automaton | None = None
        if by_literal:
            automaton = cast(_Automaton, ahocorasick.Automaton(ahocorasick.STORE_INTS))
            for number, literal in enumerate(by_literal):
                automaton.add_word(literal, number)
            automaton.make_automaton()
            self._automaton = automaton


# Choosing which literals a query is indexed under.
#
# A literal set is "required" when the query can only be true if at least one of its literals
# occurs in the scanned string. Among the operands of an AND any one operand's set will do, so we
# take the one expected to wake the fewest queries: shared by few queries, and long (long literals
# are rarer).

_LiteralSet = frozenset[str]


def _term_literals(term: Term) -> _LiteralSet:
    if term.kind is TokenKind.HANDLE:
        return frozenset({term.token, author_key(term.value, prefix=term.prefix)})
    return frozenset({term.token})


def _positive_literals(query: Query) -> Iterator[str]:
    if isinstance(query, Term):
        yield from _term_literals(query)
    elif isinstance(query, Phrase):
        for term in query.terms:
            yield from _term_literals(term)
    elif isinstance(query, Near):
        yield from _positive_literals(query.left)
        yield from _positive_literals(query.right)
    elif isinstance(query, FieldFilter):
        yield field_key(query)
    elif isinstance(query, And | Or):
        for operand in query.operands:
            yield from _positive_literals(operand)


def _cost(literals: _LiteralSet, fanout: Counter[str]) -> float:
    total = 0.0
    for literal in literals:
        # Metadata such as lang=en holds for a large share of mentions.
        metadata = literal.startswith(KEY_SEPARATOR)
        rarity = 0.5 if metadata else min(1.0, 2.0 / len(literal) ** 2)
        total += max(fanout[literal], 1) * rarity
    return total


def _cheapest(options: Iterable[_LiteralSet | None], fanout: Counter[str]) -> _LiteralSet | None:
    usable = [option for option in options if option is not None]
    if not usable:
        return None
    return min(usable, key=lambda option: _cost(option, fanout))


def _required_literals(query: Query, fanout: Counter[str]) -> _LiteralSet | None:
    if isinstance(query, Term):
        return _term_literals(query)
    if isinstance(query, Phrase):
        return _cheapest((_term_literals(term) for term in query.terms), fanout)
    if isinstance(query, Near):
        return _cheapest(
            (_required_literals(query.left, fanout), _required_literals(query.right, fanout)),
            fanout,
        )
    if isinstance(query, FieldFilter):
        return frozenset({field_key(query)})
    if isinstance(query, Not):
        return None
    if isinstance(query, And):
        return _cheapest((_required_literals(o, fanout) for o in query.operands), fanout)
    union: set[str] = set()
    for operand in query.operands:
        literals = _required_literals(operand, fanout)
        if literals is None:
            return None
        union |= literals
    return frozenset(union)


# Compiling a query into closures over a _MentionView.


def _effort(query: Query) -> int:
    """A rough cost of evaluating a node, to try cheap operands of AND and OR first."""
    if isinstance(query, Term):
        return 1 if _is_exact(query) else 3
    if isinstance(query, FieldFilter):
        return 1
    if isinstance(query, Phrase):
        return 5
    if isinstance(query, Near):
        return 8
    if isinstance(query, Not):
        return _effort(query.operand)
    return sum(_effort(operand) for operand in query.operands)


def _compile(query: Query) -> _Predicate:
    if isinstance(query, Term):
        return _compile_term(query)
    if isinstance(query, Phrase):
        return _compile_phrase(query)
    if isinstance(query, Near):
        return _compile_near(query)
    if isinstance(query, FieldFilter):
        return _compile_field(query)
    if isinstance(query, Not):
        negated = _compile(query.operand)
        return lambda view: not negated(view)
    ordered = sorted(query.operands, key=_effort)
    if isinstance(query, And):
        return _all_of([_compile(operand) for operand in ordered])
    # Plain words and hashtags of an OR become one set intersection with the text's tokens.
    forms: set[str] = set()
    others: list[_Predicate] = []
    for operand in ordered:
        if isinstance(operand, Term) and _is_exact(operand):
            forms.update(_exact_forms(operand))
        else:
            others.append(_compile(operand))
    if forms:
        frozen = frozenset(forms)
        others.insert(0, lambda view: not frozen.isdisjoint(view.present))
    return _any_of(others)


def _all_of(predicates: list[_Predicate]) -> _Predicate:
    # Unrolled for the usual two or three operands: a generator per call costs more than the work.
    if len(predicates) == 1:
        return predicates[0]
    if len(predicates) == 2:
        first, second = predicates
        return lambda view: first(view) and second(view)
    if len(predicates) == 3:
        one, two, three = predicates
        return lambda view: one(view) and two(view) and three(view)

    def all_hold(view: _MentionView) -> bool:
        return all(predicate(view) for predicate in predicates)

    return all_hold


def _any_of(predicates: list[_Predicate]) -> _Predicate:
    if len(predicates) == 1:
        return predicates[0]
    if len(predicates) == 2:
        first, second = predicates
        return lambda view: first(view) or second(view)
    if len(predicates) == 3:
        one, two, three = predicates
        return lambda view: one(view) or two(view) or three(view)

    def any_holds(view: _MentionView) -> bool:
        return any(predicate(view) for predicate in predicates)

    return any_holds


def _is_exact(term: Term) -> bool:
    """A word or hashtag without wildcard: found by set lookups alone."""
    return not term.prefix and term.kind is not TokenKind.HANDLE


def _exact_forms(term: Term) -> tuple[str, ...]:
    """The tokens an exact word or hashtag term is (a word also matches its hashtag)."""
    return (term.value, "#" + term.value) if term.kind is TokenKind.WORD else (term.token,)


def _matching_tokens(term: Term) -> Callable[[_MentionView], list[str]]:
    """The distinct tokens of a text that are occurrences of `term`."""
    if _is_exact(term):
        forms = _exact_forms(term)
        return lambda view: [form for form in forms if form in view.present]
    # Every match of a prefix or a handle starts with the term's token (or, for a word, with the
    # word or its hashtag), so bisection finds the few tokens to check exactly.
    starts = (term.value, "#" + term.value) if term.kind is TokenKind.WORD else (term.token,)

    def matching(view: _MentionView) -> list[str]:
        return [
            token
            for start in starts
            for token in view.starting_with(start)
            if term_matches_token(term, token)
        ]

    return matching


def _compile_field(condition: FieldFilter) -> _Predicate:
    value = condition.value
    # The two most common filters compare one attribute; the rest share MentionFacts.matches.
    if condition.name is FieldName.NETWORK:
        return lambda view: view.facts.network == value
    if condition.name is FieldName.LANG:
        variant = value + "-"
        return lambda view: (
            (language := view.facts.language) is not None
            and (language == value or language.startswith(variant))
        )
    return lambda view: view.facts.matches(condition)


def _compile_term(term: Term) -> _Predicate:
    if _is_exact(term):
        if term.kind is TokenKind.HASHTAG:
            tag = term.token
            return lambda view: tag in view.present
        word, tag = _exact_forms(term)
        return lambda view: word in view.present or tag in view.present
    value, prefix = term.value, term.prefix

    def author_matches(view: _MentionView) -> bool:
        author = view.facts.author
        return author is not None and handle_matches(value, author, prefix=prefix)

    if term.kind is TokenKind.HANDLE:
        if not prefix and "@" not in value:
            return lambda view: value in view.handle_locals() or author_matches(view)
        matching = _matching_tokens(term)
        return lambda view: bool(matching(view)) or author_matches(view)
    matching = _matching_tokens(term)
    return lambda view: bool(matching(view))


def _compile_spans(operand: Term | Phrase) -> _Spans:
    """Where an operand occurs, as inclusive token index ranges."""
    if isinstance(operand, Term):
        matching = _matching_tokens(operand)

        def term_spans(view: _MentionView) -> list[tuple[int, int]]:
            return [(i, i) for token in matching(view) for i in view.where(token)]

        return term_spans

    first = _matching_tokens(operand.terms[0])
    rest = operand.terms[1:]
    last = len(rest)
    # Each later element is checked at its offset: by set membership when it is exact.
    checks = [
        (offset, frozenset(_exact_forms(term)) if _is_exact(term) else None, term)
        for offset, term in enumerate(rest, 1)
    ]
    # Exact elements must all be in the text before it is worth looking for them in a row.
    needed = [forms for _, forms, _ in checks if forms is not None]

    def follows(tokens: list[str], start: int) -> bool:
        for offset, forms, term in checks:
            token = tokens[start + offset]
            if not (token in forms if forms is not None else term_matches_token(term, token)):
                return False
        return True

    def phrase_spans(view: _MentionView) -> list[tuple[int, int]]:
        present = view.present
        for forms in needed:
            if forms.isdisjoint(present):
                return []
        tokens = view.tokens
        end = len(tokens) - last
        return [
            (start, start + last)
            for token in first(view)
            for start in view.where(token)
            if start < end and follows(tokens, start)
        ]

    return phrase_spans


def _compile_phrase(phrase: Phrase) -> _Predicate:
    spans = _compile_spans(phrase)
    return lambda view: bool(spans(view))


def _compile_near(near: Near) -> _Predicate:
    left, right, distance = _compile_spans(near.left), _compile_spans(near.right), near.distance

    def near_holds(view: _MentionView) -> bool:
        right_spans = right(view)
        if not right_spans:
            return False
        return any(within(a, b, distance) for a in left(view) for b in right_spans)

    return near_holds
