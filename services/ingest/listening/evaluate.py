"""The reference semantics of listening queries: a direct, unoptimised evaluation of one mention.

The compiled matcher must agree with `evaluate` on every query and mention.
"""

from __future__ import annotations

from services.ingest.listening.mention import MatchInput, MentionFacts
from services.ingest.listening.query import And, FieldFilter, Near, Not, Phrase, Query, Term
from services.ingest.listening.text import TokenKind, handle_matches, normalise, tokenise

Span = tuple[int, int]


def evaluate(query: Query, mention: MatchInput) -> bool:
    """Whether `mention` matches `query`."""
    return _holds(query, tokenise(normalise(mention.text)), MentionFacts.of(mention))


def term_matches_token(term: Term, token: str) -> bool:
    """Whether one text token is an occurrence of `term`.

    A plain word also matches the hashtag of that word (acme matches #acme); a #hashtag matches
    only hashtags; an @handle only handles.
    """
    value = term.value
    if term.kind is TokenKind.WORD:
        if term.prefix:
            return token.startswith((value, "#" + value))
        return token == value or token == "#" + value
    if term.kind is TokenKind.HASHTAG:
        tag = "#" + value
        return token.startswith(tag) if term.prefix else token == tag
    return token[0] == "@" and handle_matches(value, token[1:], prefix=term.prefix)


def within(first: Span, second: Span, distance: int) -> bool:
    """Whether two non-overlapping spans are at most `distance` tokens apart (1 = adjacent)."""
    if first[1] < second[0]:
        return second[0] - first[1] <= distance
    if second[1] < first[0]:
        return first[0] - second[1] <= distance
    return False


def _holds(query: Query, tokens: list[str], facts: MentionFacts) -> bool:
    if isinstance(query, Term):
        if any(term_matches_token(query, token) for token in tokens):
            return True
        return (
            query.kind is TokenKind.HANDLE
            and facts.author is not None
            and handle_matches(query.value, facts.author, prefix=query.prefix)
        )
    if isinstance(query, Phrase):
        return bool(_spans(query, tokens))
    if isinstance(query, Near):
        right = _spans(query.right, tokens)
        return any(
            within(left, other, query.distance)
            for left in _spans(query.left, tokens)
            for other in right
        )
    if isinstance(query, FieldFilter):
        return facts.matches(query)
    if isinstance(query, Not):
        return not _holds(query.operand, tokens, facts)
    if isinstance(query, And):
        return all(_holds(operand, tokens, facts) for operand in query.operands)
    return any(_holds(operand, tokens, facts) for operand in query.operands)


def _spans(operand: Term | Phrase, tokens: list[str]) -> list[Span]:
    """Where an operand occurs in the text, as inclusive token index ranges."""
    terms = (operand,) if isinstance(operand, Term) else operand.terms
    length = len(terms)
    return [
        (start, start + length - 1)
        for start in range(len(tokens) - length + 1)
        if all(term_matches_token(term, tokens[start + n]) for n, term in enumerate(terms))
    ]
