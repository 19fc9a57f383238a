"""The syntax tree of a listening query: what `parse` returns and what the evaluators walk.

Nodes are frozen dataclasses, so equal queries compare and hash equal (positions are kept for
error messages only and take no part in equality); `str(query)` prints a query that parses back
to it.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from enum import StrEnum
from typing import TypeAlias

from services.ingest.listening.text import TokenKind

_SIGIL = {TokenKind.WORD: "", TokenKind.HASHTAG: "#", TokenKind.HANDLE: "@"}


class FieldName(StrEnum):
    """Fields of a mention a query can filter on (`lang:en`, `network:mastodon`, ...)."""

    LANG = "lang"
    NETWORK = "network"
    AUTHOR = "author"
    SITE = "site"


@dataclass(frozen=True, slots=True)
class Term:
    """One token: a word or emoji, a #hashtag or an @handle; `prefix` for a trailing `*`."""

    value: str
    kind: TokenKind = TokenKind.WORD
    prefix: bool = False
    position: int = field(default=0, compare=False)

    @property
    def token(self) -> str:
        """The value as it appears among a text's tokens (with its sigil)."""
        return _SIGIL[self.kind] + self.value

    def __str__(self) -> str:
        return self.token + ("*" if self.prefix else "")


@dataclass(frozen=True, slots=True)
class Phrase:
    """Tokens that must appear consecutively, in this order."""

    terms: tuple[Term, ...]
    position: int = field(default=0, compare=False)

    def __str__(self) -> str:
        return '"' + " ".join(str(term) for term in self.terms) + '"'


@dataclass(frozen=True, slots=True)
class Near:
    """Both operands within `distance` tokens of each other, in either order."""

    left: Term | Phrase
    right: Term | Phrase
    distance: int
    position: int = field(default=0, compare=False)

    def __str__(self) -> str:
        return f"{self.left} NEAR/{self.distance} {self.right}"


@dataclass(frozen=True, slots=True)
class FieldFilter:
    """A condition on the mention's metadata rather than its text."""

    name: FieldName
    value: str
    position: int = field(default=0, compare=False)

    def __str__(self) -> str:
        return f"{self.name}:{self.value}"


@dataclass(frozen=True, slots=True)
class Not:
    operand: Query
    position: int = field(default=0, compare=False)

    def __str__(self) -> str:
        return "NOT " + _wrapped(self.operand, And, Or)


@dataclass(frozen=True, slots=True)
class And:
    operands: tuple[Query, ...]
    position: int = field(default=0, compare=False)

    def __str__(self) -> str:
        return " AND ".join(_wrapped(operand, And, Or) for operand in self.operands)


@dataclass(frozen=True, slots=True)
class Or:
    operands: tuple[Query, ...]
    position: int = field(default=0, compare=False)

    def __str__(self) -> str:
        # AND binds tighter than OR, so only a nested OR needs parentheses.
        return " OR ".join(_wrapped(operand, Or) for operand in self.operands)


Query: TypeAlias = Term | Phrase | Near | FieldFilter | Not | And | Or


def _wrapped(query: Query, *needs_parentheses: type[And] | type[Or]) -> str:
    text = str(query)
    return f"({text})" if isinstance(query, needs_parentheses) else text
