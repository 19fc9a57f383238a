"""The connector protocol: what every network's read half provides to ingest.

A connector knows one network's wire format and nothing about storage, scheduling, tenants or
brands. Two shapes exist:

- `PullConnector.pull(...)` fetches one page after a persisted cursor and returns the normalised
  mentions, the next cursor, and what the network said about rate limits. Ingest persists the new
  cursor in the same transaction as the mentions, so a crash never skips or repeats a page.
- `WebhookConnector` answers the network's handshake (if it has one), verifies a delivery's
  signature over the raw body (constant time), and parses the body into mentions.

Errors a connector raises are the ones below, so the scheduler can tell a rate limit from a
revoked token from an outage. A malformed item is never an exception: it goes into `skipped` and
the rest of the page is processed.
"""

from __future__ import annotations

import html
import re
from dataclasses import dataclass, field
from datetime import UTC, datetime
from typing import Any, ClassVar, Literal, Protocol

import httpx
from pydantic import BaseModel, ConfigDict

MentionKind = Literal["mention", "comment", "reply", "direct_message", "review", "post"]


# --- what a connector returns ------------------------------------------------------------------


@dataclass(frozen=True)
class FetchedAuthor:
    id: str
    handle: str
    display_name: str | None = None
    followers: int | None = None
    verified: bool | None = None


@dataclass(frozen=True)
class Media:
    type: Literal["image", "video", "gif", "audio", "link", "other"]
    url: str


@dataclass(frozen=True)
class Engagement:
    likes: int | None = None
    reposts: int | None = None
    replies: int | None = None
    views: int | None = None


@dataclass(frozen=True)
class FetchedMention:
    """One item heard on a network, normalised. `text` is plain text (no HTML)."""

    network: str
    external_id: str
    kind: MentionKind
    text: str
    created_at: datetime  # timezone-aware
    author: FetchedAuthor
    # The thread: `root_external_id` is the conversation's first item (itself if it is one);
    # `parent_external_id` is what this item replies to, if anything.
    root_external_id: str
    parent_external_id: str | None = None
    url: str | None = None
    language: str | None = None  # as the network reports it (BCP 47-ish), ingest may detect it
    media: tuple[Media, ...] = ()
    engagement: Engagement | None = None
    edited_at: datetime | None = None
    deleted: bool = False  # the network told us the item was removed
    raw: dict[str, Any] = field(default_factory=dict)  # the original item, for audit


@dataclass(frozen=True)
class SkippedItem:
    """An item of a page that could not be normalised; recorded, not fatal."""

    reason: str
    raw: Any = None


@dataclass(frozen=True)
class RateLimit:
    limit: int | None = None
    remaining: int | None = None
    reset_at: datetime | None = None


@dataclass(frozen=True)
class PullResult:
    mentions: list[FetchedMention]
    cursor: dict[str, Any]  # JSON-serialisable; persisted with the mentions
    more: bool = False  # another page can be fetched right away
    rate_limit: RateLimit | None = None
    skipped: list[SkippedItem] = field(default_factory=list)
    # New credentials to persist (encrypted), e.g. a refreshed session; None if unchanged.
    credentials: dict[str, Any] | None = None
    # Units of a quota this call spent (YouTube), for accounting.
    quota_used: int = 0


@dataclass(frozen=True)
class WebhookRequest:
    method: str
    headers: dict[str, str]  # lower-cased names
    query: dict[str, str]
    body: bytes


@dataclass(frozen=True)
class WebhookReply:
    """What to answer the network (handshakes want a specific body)."""

    status: int = 200
    body: bytes = b"ok"
    content_type: str = "text/plain"


@dataclass(frozen=True)
class WebhookResult:
    mentions: list[FetchedMention]
    skipped: list[SkippedItem] = field(default_factory=list)
    reply: WebhookReply = field(default_factory=WebhookReply)


# --- errors ------------------------------------------------------------------------------------


class ConnectorError(Exception):
    """Base of what connectors raise; the message is shown in the source's status."""


class RateLimited(ConnectorError):
    def __init__(self, message: str, retry_after_s: float) -> None:
        super().__init__(message)
        self.retry_after_s = retry_after_s


class AuthFailed(ConnectorError):
    """Credentials expired or revoked: the source needs reconnecting; retrying will not help."""


class TransientError(ConnectorError):
    """5xx, timeouts, connection resets: retry with backoff."""


class BadConfig(ConnectorError):
    """The source's configuration cannot work (wrong URL, unknown account…)."""


class SignatureInvalid(ConnectorError):
    """A webhook delivery whose signature or secret token does not verify."""


# --- configuration and protocols ---------------------------------------------------------------


class SourceConfig(BaseModel):
    """Base of each connector's settings model (validated when a source is created)."""

    model_config = ConfigDict(extra="forbid", frozen=True)


class PullConnector(Protocol):
    network: ClassVar[str]
    config_model: ClassVar[type[SourceConfig]]

    async def pull(
        self,
        client: httpx.AsyncClient,
        config: Any,  # an instance of config_model
        credentials: dict[str, Any],
        cursor: dict[str, Any],
    ) -> PullResult: ...


class RepliesConnector(Protocol):
    """Optional: a pull connector that can fetch the replies to one of our published posts."""

    async def replies(
        self,
        client: httpx.AsyncClient,
        config: Any,
        credentials: dict[str, Any],
        post_external_id: str,
        cursor: dict[str, Any],
    ) -> PullResult: ...


class BackfillConnector(Protocol):
    """Optional: a pull connector that can turn a start time into a cursor that re-reads from it."""

    def backfill_cursor(self, since: datetime) -> dict[str, Any]: ...


class WebhookConnector(Protocol):
    network: ClassVar[str]
    config_model: ClassVar[type[SourceConfig]]

    def handshake(
        self, request: WebhookRequest, config: Any, secrets: dict[str, Any]
    ) -> WebhookReply | None:
        """Answer a verification request (Meta `hub.challenge`, VK confirmation), else None."""
        ...

    def verify(self, request: WebhookRequest, config: Any, secrets: dict[str, Any]) -> None:
        """Raise SignatureInvalid unless the delivery is authentic."""
        ...

    def parse(self, request: WebhookRequest, config: Any) -> WebhookResult: ...


# --- helpers every connector uses --------------------------------------------------------------

_TAG = re.compile(r"<[^>]+>")
_BREAK = re.compile(r"<\s*(br|/p|/div|/li)\s*/?\s*>", re.IGNORECASE)
_SPACES = re.compile(r"[ \t\r\f\v]+")


def html_to_text(value: str) -> str:
    """Plain text from a network's HTML (Mastodon, RSS): tags dropped, entities decoded."""
    text = _BREAK.sub("\n", value)
    text = _TAG.sub("", text)
    text = html.unescape(text)
    lines = [_SPACES.sub(" ", line).strip() for line in text.split("\n")]
    return "\n".join(line for line in lines if line)


def parse_time(value: str | int | float) -> datetime:
    """An aware UTC datetime from ISO 8601 (with `Z`) or a Unix timestamp."""
    if isinstance(value, int | float):
        return datetime.fromtimestamp(value, UTC)
    parsed = datetime.fromisoformat(value.replace("Z", "+00:00"))
    return parsed if parsed.tzinfo else parsed.replace(tzinfo=UTC)


def raise_for_status(response: httpx.Response, network: str) -> None:
    """Map an HTTP error answer to the connector errors above."""
    status = response.status_code
    if status < 400:
        return
    detail = f"{network}: HTTP {status} from {response.request.url.copy_with(query=None)}"
    if status == 429:
        raise RateLimited(detail, retry_after_seconds(response) or 60.0)
    if status in (401, 403):
        raise AuthFailed(detail)
    if status >= 500:
        raise TransientError(detail)
    raise BadConfig(detail)


def retry_after_seconds(response: httpx.Response) -> float | None:
    """`Retry-After` (seconds or HTTP date), else an `X-RateLimit-Reset`-style header."""
    value = response.headers.get("retry-after")
    if value:
        try:
            return max(float(value), 0.0)
        except ValueError:
            from email.utils import parsedate_to_datetime

            try:
                when = parsedate_to_datetime(value)
                return max((when - datetime.now(UTC)).total_seconds(), 0.0)
            except (TypeError, ValueError):
                pass
    reset = response.headers.get("x-ratelimit-reset")
    if reset:
        try:
            when = (
                parse_time(float(reset)) if reset.replace(".", "").isdigit() else parse_time(reset)
            )
            return max((when - datetime.now(UTC)).total_seconds(), 0.0)
        except ValueError:
            return None
    return None
