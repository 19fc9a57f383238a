"""What a listening query can see of a mention: its text and metadata, normalised once."""

from __future__ import annotations

from dataclasses import dataclass
from functools import lru_cache
from urllib.parse import urlsplit

from services.ingest.listening.query import FieldFilter, FieldName
from services.ingest.listening.text import handle_matches, normalise

# Separates the metadata keys the compiled matcher appends to a text before scanning it; a control
# character that ordinary texts do not contain keeps key literals from matching inside words.
KEY_SEPARATOR = "\x1e"


@dataclass(frozen=True, slots=True)
class MatchInput:
    """A mention as the listening queries see it."""

    text: str
    language: str | None = None
    network: str = ""
    author_handle: str | None = None
    url: str | None = None


class MentionFacts:
    """A mention's metadata, normalised the way field filters compare it.

    A plain slotted class rather than a frozen dataclass: one is built per mention on the hot path,
    and frozen dataclasses pay for every attribute set in __init__. Nothing mutates it.
    """

    __slots__ = ("author", "host", "language", "network")

    def __init__(
        self, language: str | None, network: str, author: str | None, host: str | None
    ) -> None:
        self.language = language
        self.network = network
        self.author = author
        self.host = host

    @classmethod
    def of(cls, mention: MatchInput) -> MentionFacts:
        language = mention.language
        if language:
            language = language.strip().lower().replace("_", "-") or None
        author = mention.author_handle
        if author:
            author = normalise(author.strip().removeprefix("@")) or None
        return cls(language or None, mention.network.strip().lower(), author, _host(mention.url))

    def matches(self, condition: FieldFilter) -> bool:
        value = condition.value
        if condition.name is FieldName.LANG:
            return self.language is not None and (
                self.language == value or self.language.startswith(value + "-")
            )
        if condition.name is FieldName.NETWORK:
            return self.network == value
        if condition.name is FieldName.AUTHOR:
            return self.author is not None and handle_matches(value, self.author, prefix=False)
        return self.host is not None and (self.host == value or self.host.endswith("." + value))

    def keys(self) -> str:
        """`name=value` for every filter value this mention satisfies (lang=en for en-gb too),
        each followed by KEY_SEPARATOR."""
        keys = f"network={self.network}{KEY_SEPARATOR}"
        if self.language:
            keys += f"lang={self.language}{KEY_SEPARATOR}"
            tag = self.language
            while "-" in tag:
                tag = tag.rpartition("-")[0]
                keys += f"lang={tag}{KEY_SEPARATOR}"
        if self.host:
            domain = self.host
            keys += f"site={domain}{KEY_SEPARATOR}"
            while "." in domain:
                domain = domain.partition(".")[2]
                keys += f"site={domain}{KEY_SEPARATOR}"
        if self.author:
            keys += f"author={self.author}{KEY_SEPARATOR}"
            local, at, _ = self.author.partition("@")
            if at:
                keys += f"author={local}{KEY_SEPARATOR}"
        return keys


def field_key(condition: FieldFilter) -> str:
    """The literal whose presence among a mention's keys a field filter needs."""
    return f"{KEY_SEPARATOR}{condition.name}={condition.value}{KEY_SEPARATOR}"


def author_key(handle: str, *, prefix: bool) -> str:
    """The literal an @handle term needs among a mention's keys to match its author."""
    return f"{KEY_SEPARATOR}author={handle}" + ("" if prefix else KEY_SEPARATOR)


def _host(url: str | None) -> str | None:
    if not url:
        return None
    try:
        host = urlsplit(url if "//" in url else "//" + url).hostname
    except ValueError:
        return None
    if not host:
        return None
    host = host.rstrip(".")
    return host if host.isascii() else _ascii_domain(host)


@lru_cache(maxsize=4096)
def _ascii_domain(host: str) -> str:
    """An internationalised domain in ASCII (punycode); the codec is slow, hence the cache."""
    try:
        return host.encode("idna").decode("ascii")
    except UnicodeError:
        return host
