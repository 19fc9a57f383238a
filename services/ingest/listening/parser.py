"""Parses the text of a listening query into its syntax tree, with errors an API can return as 422.

Grammar (NOT binds tighter than AND, AND tighter than OR; adjacent operands are ANDed):

    query   = or END
    or      = and ("OR" and)*
    and     = unary (["AND"] unary)*
    unary   = ("NOT" | "-") unary | near
    near    = primary ["NEAR/n" primary]      both primaries terms or phrases
    primary = "(" or ")" | TERM | "PHRASE" | FIELD:value
"""

from __future__ import annotations

import re
from dataclasses import dataclass
from typing import Final, Literal

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
from services.ingest.listening.text import normalise, token_kind, tokenise

MAX_QUERY_LENGTH: Final = 4000
MAX_DEPTH: Final = 32
MAX_NEAR_DISTANCE: Final = 100
MIN_WILDCARD_PREFIX: Final = 2

_LANGUAGE = re.compile(r"[a-z]{2,3}(?:-[a-z0-9]{1,8})*")
_NETWORK = re.compile(r"[a-z][a-z0-9_.\-]{0,63}")
_LABEL = r"[a-z0-9_](?:[a-z0-9_\-]*[a-z0-9_])?"
_DOMAIN = re.compile(rf"{_LABEL}(?:\.{_LABEL})*")
_DISTANCE = re.compile(r"[0-9]{1,3}")
_TERM_OR_PAREN = "a term or '('"
_FIELD_NAMES: Final = frozenset(field.value for field in FieldName)


class QueryParseError(ValueError):
    """A query that cannot be parsed: what went wrong, where (0-based character), what would fit."""

    def __init__(self, message: str, position: int, expected: str | None = None) -> None:
        super().__init__(f"{message} at position {position}")
        self.message = message
        self.position = position
        self.expected = expected

    def as_dict(self) -> dict[str, object]:
        """The error as an API puts it in a 422 body."""
        return {"message": str(self), "position": self.position, "expected": self.expected}


_Kind = Literal["(", ")", "AND", "OR", "NOT", "NEAR", "PHRASE", "WORD", "END"]
_STARTS_OPERAND: Final = frozenset({"(", "NOT", "PHRASE", "WORD"})
# Only upper-case keywords are operators, so "and" or "near" in a query are plain words.
_KEYWORDS: Final[dict[str, _Kind]] = {"AND": "AND", "OR": "OR", "NOT": "NOT"}


@dataclass(frozen=True, slots=True)
class _Lexeme:
    kind: _Kind
    text: str
    position: int


def parse(query: str) -> Query:
    """The syntax tree of `query`; raises QueryParseError if it is not a valid listening query."""
    if len(query) > MAX_QUERY_LENGTH:
        raise QueryParseError(
            f"the query is longer than {MAX_QUERY_LENGTH} characters",
            MAX_QUERY_LENGTH,
            f"at most {MAX_QUERY_LENGTH} characters",
        )
    if not query.strip():
        raise QueryParseError("the query is empty", 0, "a term")
    root = _Parser(query).parse()
    _require_positive_term(root)
    return root


def _lex(query: str) -> list[_Lexeme]:
    lexemes: list[_Lexeme] = []
    i, end = 0, len(query)
    while i < end:
        char = query[i]
        if char.isspace():
            i += 1
        elif char in "()":
            lexemes.append(_Lexeme("(" if char == "(" else ")", char, i))
            i += 1
        elif char == '"':
            close = query.find('"', i + 1)
            if close < 0:
                raise QueryParseError("expected '\"' to close the phrase", end, "'\"'")
            lexemes.append(_Lexeme("PHRASE", query[i + 1 : close], i))
            i = close + 1
        elif char == "-":
            if i + 1 >= end or query[i + 1].isspace() or query[i + 1] == ")":
                raise QueryParseError("expected a term right after '-'", i + 1, _TERM_OR_PAREN)
            lexemes.append(_Lexeme("NOT", char, i))
            i += 1
        else:
            start = i
            while i < end and not query[i].isspace() and query[i] not in '()"':
                i += 1
            word = query[start:i]
            if word in _KEYWORDS:
                lexemes.append(_Lexeme(_KEYWORDS[word], word, start))
            elif word == "NEAR" or word.startswith("NEAR/"):
                lexemes.append(_Lexeme("NEAR", word, start))
            else:
                lexemes.append(_Lexeme("WORD", word, start))
    lexemes.append(_Lexeme("END", "", end))
    return lexemes


class _Parser:
    def __init__(self, query: str) -> None:
        self._lexemes = _lex(query)
        self._index = 0
        self._depth = 0

    def parse(self) -> Query:
        root = self._or()
        extra = self._peek()
        if extra.kind != "END":
            # Only a stray ')' can be left over: every other lexeme starts or joins an operand.
            raise QueryParseError(
                f"unexpected {extra.text!r}", extra.position, "AND, OR, a term or the end"
            )
        return root

    def _peek(self) -> _Lexeme:
        return self._lexemes[self._index]

    def _advance(self) -> _Lexeme:
        lexeme = self._lexemes[self._index]
        self._index += 1
        return lexeme

    def _enter(self, position: int) -> None:
        self._depth += 1
        if self._depth > MAX_DEPTH:
            raise QueryParseError(
                f"the query nests deeper than {MAX_DEPTH} levels",
                position,
                f"at most {MAX_DEPTH} nested parentheses or NOTs",
            )

    def _or(self) -> Query:
        operands = [self._and()]
        while self._peek().kind == "OR":
            self._advance()
            operands.append(self._and())
        if len(operands) == 1:
            return operands[0]
        flat = tuple(o for operand in operands for o in _children(operand, Or))
        return Or(flat, flat[0].position)

    def _and(self) -> Query:
        operands = [self._unary()]
        while True:
            kind = self._peek().kind
            if kind == "AND":
                self._advance()
            elif kind not in _STARTS_OPERAND:
                break
            operands.append(self._unary())
        if len(operands) == 1:
            return operands[0]
        flat = tuple(o for operand in operands for o in _children(operand, And))
        return And(flat, flat[0].position)

    def _unary(self) -> Query:
        if self._peek().kind == "NOT":
            negation = self._advance()
            self._enter(negation.position)
            operand = self._unary()
            self._depth -= 1
            return Not(operand, negation.position)
        return self._near()

    def _near(self) -> Query:
        left_position = self._peek().position
        left = self._primary()
        if self._peek().kind != "NEAR":
            return left
        near = self._advance()
        distance = _near_distance(near)
        if not isinstance(left, Term | Phrase):
            raise QueryParseError(
                "NEAR joins two terms or phrases", left_position, "a term or phrase before NEAR"
            )
        right_position = self._peek().position
        right = self._primary()
        if not isinstance(right, Term | Phrase):
            raise QueryParseError(
                "NEAR joins two terms or phrases", right_position, "a term or phrase after NEAR"
            )
        following = self._peek()
        if following.kind == "NEAR":
            raise QueryParseError(
                "NEAR joins two terms or phrases; join NEAR clauses with AND",
                following.position,
                "AND, OR or the end",
            )
        return Near(left, right, distance, left.position)

    def _primary(self) -> Query:
        lexeme = self._peek()
        if lexeme.kind == "(":
            self._advance()
            self._enter(lexeme.position)
            inner = self._or()
            closing = self._peek()
            if closing.kind != ")":
                raise QueryParseError("expected ')'", closing.position, "')'")
            self._advance()
            self._depth -= 1
            return inner
        if lexeme.kind == "WORD":
            self._advance()
            return _word(lexeme.text, lexeme.position)
        if lexeme.kind == "PHRASE":
            self._advance()
            return _phrase(lexeme.text, lexeme.position)
        raise QueryParseError(f"expected {_TERM_OR_PAREN}", lexeme.position, _TERM_OR_PAREN)


def _children(query: Query, kind: type[And] | type[Or]) -> tuple[Query, ...]:
    # (a OR b) OR c is a OR b OR c: one flat node keeps the tree canonical for round-trips.
    return query.operands if isinstance(query, kind) else (query,)


def _near_distance(near: _Lexeme) -> int:
    digits = near.text[len("NEAR/") :]
    expected = f"a distance from 1 to {MAX_NEAR_DISTANCE}, as in NEAR/5"
    if not near.text.startswith("NEAR/"):
        raise QueryParseError("expected '/' and a distance after NEAR", near.position + 4, expected)
    if not _DISTANCE.fullmatch(digits) or not 1 <= int(digits) <= MAX_NEAR_DISTANCE:
        raise QueryParseError(
            f"NEAR distance must be a number from 1 to {MAX_NEAR_DISTANCE}",
            near.position + 5,
            expected,
        )
    return int(digits)


def _word(text: str, position: int) -> Query:
    name, colon, value = text.partition(":")
    if colon and name.lower() in _FIELD_NAMES:
        return _field(FieldName(name.lower()), value, position, position + len(name) + 1)
    prefix = False
    star = text.find("*")
    if star >= 0:
        if star != len(text) - 1:
            raise QueryParseError(
                "a wildcard '*' may only end a word", position + star, "a space or ')'"
            )
        prefix, text = True, text[:-1]
    tokens = tokenise(normalise(text))
    if prefix:
        if len(tokens) != 1 or len(tokens[0].lstrip("#@")) < MIN_WILDCARD_PREFIX:
            raise QueryParseError(
                f"a wildcard needs one word of at least {MIN_WILDCARD_PREFIX} characters"
                " before '*'",
                position,
                "a word followed by '*', as in acme*",
            )
        return _term(tokens[0], position, prefix=True)
    if not tokens:
        raise QueryParseError(f"{text!r} has no letters, digits or emoji", position, "a term")
    if len(tokens) == 1:
        return _term(tokens[0], position, prefix=False)
    # A word that tokenises into several tokens (e-commerce, acme.com) means what it means in a
    # text: those tokens in a row.
    return Phrase(tuple(_term(token, position, prefix=False) for token in tokens), position)


def _phrase(text: str, position: int) -> Query:
    star = text.find("*")
    if star >= 0:
        raise QueryParseError(
            "a wildcard '*' is not allowed inside a phrase", position + 1 + star, "'\"'"
        )
    tokens = tokenise(normalise(text))
    if not tokens:
        raise QueryParseError("the phrase has no terms", position, "a term inside the quotes")
    if len(tokens) == 1:
        return _term(tokens[0], position, prefix=False)
    return Phrase(tuple(_term(token, position, prefix=False) for token in tokens), position)


def _term(token: str, position: int, *, prefix: bool) -> Term:
    kind = token_kind(token)
    value = token if kind == "word" else token[1:]
    return Term(value, kind, prefix, position)


def _field(name: FieldName, raw: str, position: int, value_position: int) -> FieldFilter:
    if not raw:
        raise QueryParseError(f"expected a value after '{name}:'", value_position, "a value")
    value: str | None
    if name is FieldName.LANG:
        value = raw.lower().replace("_", "-")
        what = "a language code such as en or pt-br"
        value = value if _LANGUAGE.fullmatch(value) else None
    elif name is FieldName.NETWORK:
        value = raw.lower()
        what = "a network name such as mastodon"
        value = value if _NETWORK.fullmatch(value) else None
    elif name is FieldName.AUTHOR:
        value = normalise(raw.removeprefix("@"))
        what = "a handle such as acme or acme@mastodon.social"
        value = value if tokenise("@" + value) == ["@" + value] else None
    else:
        value = _domain(raw)
        what = "a domain such as example.com"
    if value is None:
        raise QueryParseError(f"{raw!r} is not {what}", value_position, what)
    return FieldFilter(name, value, position)


def _domain(raw: str) -> str | None:
    domain = raw.lower().rstrip(".")
    if not domain.isascii():
        try:
            domain = domain.encode("idna").decode("ascii")
        except UnicodeError:
            return None
    return domain if _DOMAIN.fullmatch(domain) else None


def _has_requirement(query: Query) -> bool:
    """Whether the query can only be true if one of its positive terms or filters is."""
    if isinstance(query, Not):
        return False
    if isinstance(query, And):
        return any(_has_requirement(operand) for operand in query.operands)
    if isinstance(query, Or):
        return all(_has_requirement(operand) for operand in query.operands)
    return True


def _has_positive(query: Query) -> bool:
    if isinstance(query, Not):
        return False
    if isinstance(query, And | Or):
        return any(_has_positive(operand) for operand in query.operands)
    return True


def _require_positive_term(root: Query) -> None:
    if _has_requirement(root):
        return
    if not _has_positive(root):
        raise QueryParseError("a query needs at least one positive term", 0, "a positive term")
    # Somewhere an OR has a purely negative side, which alone would match almost every mention.
    offender = root
    while True:
        if isinstance(offender, Or):
            offender = next(o for o in offender.operands if not _has_requirement(o))
        elif isinstance(offender, And) and any(_has_positive(o) for o in offender.operands):
            offender = next(o for o in offender.operands if _has_positive(o))
        else:
            break
    raise QueryParseError(
        f"every side of OR needs a positive term, but '{offender}' has none",
        offender.position,
        "a positive term",
    )
