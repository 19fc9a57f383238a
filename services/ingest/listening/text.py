"""Normalisation and tokenisation that listening queries and mention texts share.

Both sides go through the same two functions, so a query term matches a text exactly when their
normalised tokens are equal, whatever the case, accents or Unicode compatibility forms.
"""

from __future__ import annotations

import unicodedata
from enum import StrEnum

import regex

# Marks are removed after decomposition: e-acute becomes e, Cyrillic yo becomes ie.
_MARKS = regex.compile(r"\p{M}+")

# A handle is a word, optionally dotted or dashed (Bluesky's alice.bsky.social), optionally followed
# by @instance (Mastodon's @alice@mastodon.social). Hashtags and handles only start a token when no
# word character precedes them, so e-mail addresses and "a#b" stay plain words.
_HANDLE_BODY = r"\w+(?:[.\-]\w+)*(?:@\w+(?:[.\-]\w+)+)?"
# Words come first among the alternatives: they are most tokens, and the others cannot start at a
# word character anyway.
_TOKEN = regex.compile(rf"\w+|(?<!\w)#\w+|(?<![\w@])@{_HANDLE_BODY}|\p{{So}}")


class TokenKind(StrEnum):
    """What a token is: a plain word (or emoji), a #hashtag or an @handle."""

    WORD = "word"
    HASHTAG = "hashtag"
    HANDLE = "handle"


def normalise(text: str) -> str:
    """Case-fold and strip diacritics: NFKD, casefold, NFKD again, drop combining marks.

    NFKD runs before case folding too, because some compatibility characters decompose to capitals
    (U+03D2 to U+03A5); with both passes the function is idempotent, which round-trips rely on.
    """
    if text.isascii():
        # For ASCII, NFKD is the identity and casefold() is lower().
        return text.lower()
    decomposed = unicodedata.normalize("NFKD", unicodedata.normalize("NFKD", text).casefold())
    return _MARKS.sub("", decomposed)


def tokenise(normalised: str) -> list[str]:
    """Tokens of an already normalised text, in order.

    Tokens are maximal runs of Unicode word characters, "#tag" and "@handle" (kept with their
    sigil), and single symbol characters such as emoji. Punctuation and spaces separate tokens;
    an apostrophe or a dot splits a word ("acme's" is "acme", "s"), so a brand is found inside
    its possessive.
    """
    return _TOKEN.findall(normalised)


def token_kind(token: str) -> TokenKind:
    first = token[0]
    if first == "#":
        return TokenKind.HASHTAG
    if first == "@":
        return TokenKind.HANDLE
    return TokenKind.WORD


def handle_matches(value: str, handle: str, *, prefix: bool) -> bool:
    """Whether a normalised handle (no leading @) is the one a query names.

    `@acme` names acme on any instance (acme@mastodon.social too); `@acme@mastodon.social` only
    that one; `@acme*` any handle that starts with acme.
    """
    if prefix:
        return handle.startswith(value)
    return handle == value or ("@" not in value and handle.startswith(value + "@"))
