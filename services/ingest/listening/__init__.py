"""Listening queries: the boolean language brands use to say which mentions are theirs.

`parse` turns a query's text into a `Query`; `evaluate` is the reference semantics for one query
and one mention; `Matcher` matches a mention against every query of every tenant at once.
"""

from __future__ import annotations

from services.ingest.listening.evaluate import evaluate
from services.ingest.listening.matcher import Matcher
from services.ingest.listening.mention import MatchInput
from services.ingest.listening.parser import QueryParseError, parse
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
from services.ingest.listening.text import TokenKind, normalise, tokenise

__all__ = [
    "And",
    "FieldFilter",
    "FieldName",
    "MatchInput",
    "Matcher",
    "Near",
    "Not",
    "Or",
    "Phrase",
    "Query",
    "QueryParseError",
    "Term",
    "TokenKind",
    "evaluate",
    "normalise",
    "parse",
    "tokenise",
]
