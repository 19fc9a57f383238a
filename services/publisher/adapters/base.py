"""The publish adapter protocol: what every network's write half gives the publisher, and the typed
outcomes it answers with, so the publisher can tell "done" from "retry" from "look first".

Exactly once rests on three rules the adapters keep:

- every attempt carries an idempotency key that the publisher recorded before the call, and the
  adapter sends it to networks that honour one (Mastodon's `Idempotency-Key`);
- an outcome is `Unknown` whenever the request may have reached the network and no answer says
  what happened (a timeout after sending, a cut connection, a 5xx): the publisher then calls
  `reconcile` instead of retrying blindly;
- `reconcile` only reads: it returns what the earlier attempt created, or None when the network
  shows no trace of it; when it cannot tell, it raises `ReconcileFailed` (never None).

Adapters whose tokens expire also implement `CredentialRefresher`, so a job can renew a channel's
tokens before they lapse and flag the channel for reconnecting when the network refuses. Adapters
whose network lets a brand hide comments on its posts implement `CommentHider`; for the others
`hide_comment` answers `cannot_hide`, a permanent refusal. Adapters whose network reports a post's
counters (likes, reposts, replies, views) and the channel's audience implement
`EngagementReader`; the engagement job measures only those networks.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from datetime import UTC, datetime
from email.utils import parsedate_to_datetime
from typing import Any, ClassVar, Literal, Protocol, runtime_checkable

import httpx
from pydantic import BaseModel, ConfigDict

# --- what the publisher asks for -----------------------------------------------------------------


@dataclass(frozen=True, slots=True)
class MediaUpload:
    """One attachment of a post: the file's bytes, its alt text, and the public URL it was fetched
    from (networks such as Instagram fetch media themselves and take that URL, not the bytes)."""

    filename: str
    content_type: str
    data: bytes
    description: str | None = None  # alt text
    source_url: str | None = None


@dataclass(frozen=True, slots=True)
class PublishRequest:
    """One attempt to publish a post or a reply on one channel.

    `idempotency_key` is recorded by the publisher before the call and stays the same across the
    retries and reconciliations of one publication. `attempted_at`, when given, is when the first
    attempt with this key started: `reconcile` then ignores older statuses that merely have the
    same text (a brand that posts the same words twice), and can look further back than one page.
    """

    idempotency_key: str
    text: str
    reply_to_external_id: str | None = None
    media: list[MediaUpload] = field(default_factory=list)
    visibility: str | None = None
    language: str | None = None
    attempted_at: datetime | None = None  # timezone-aware


# --- what an adapter answers ----------------------------------------------------------------------

OutcomeKind = Literal[
    "published", "hidden", "retryable", "rate_limited", "needs_reconnect", "rejected", "unknown"
]


@dataclass(frozen=True, slots=True)
class Budget:
    """What the network's rate-limit headers said about the account's budget."""

    remaining: int
    reset_at: datetime  # timezone-aware


@dataclass(frozen=True, slots=True)
class Published:
    """The network has the post: its id there and its public link, and (when the network says)
    the account's remaining rate-limit budget, which paces what follows."""

    kind: ClassVar[OutcomeKind] = "published"
    remote_id: str
    url: str | None
    # Not part of what was published: two answers about one post compare equal.
    budget: Budget | None = field(default=None, compare=False)


@dataclass(frozen=True, slots=True)
class Retryable:
    """Nothing happened on the network (the request never left, or it was clearly not processed):
    try again, with the same idempotency key, after `retry_after_s` if given."""

    kind: ClassVar[OutcomeKind] = "retryable"
    reason: str
    retry_after_s: float | None = None


@dataclass(frozen=True, slots=True)
class RateLimited:
    """The network refused for now; nothing was published. Try again after `retry_after_s`."""

    kind: ClassVar[OutcomeKind] = "rate_limited"
    retry_after_s: float


@dataclass(frozen=True, slots=True)
class NeedsReconnect:
    """The channel's token is invalid, revoked or lacks the scope: a person must reconnect it."""

    kind: ClassVar[OutcomeKind] = "needs_reconnect"
    reason: str


@dataclass(frozen=True, slots=True)
class Rejected:
    """The network refused this content (or the adapter cannot send it): retrying will not help.
    `network_message` is the network's own words, to show the author."""

    kind: ClassVar[OutcomeKind] = "rejected"
    reason: str
    network_message: str | None = None


@dataclass(frozen=True, slots=True)
class Unknown:
    """The request may have been applied and no answer says whether: reconcile before retrying."""

    kind: ClassVar[OutcomeKind] = "unknown"
    reason: str


@dataclass(frozen=True, slots=True)
class Hidden:
    """The network hides the comment `external_id` from everyone but its author (now, or it
    already did: hiding is a state, so asking twice is the same as asking once)."""

    kind: ClassVar[OutcomeKind] = "hidden"
    external_id: str


PublishOutcome = Published | Retryable | RateLimited | NeedsReconnect | Rejected | Unknown
# No `Unknown`: a hide sets a state, so when its answer is lost it is simply sent again.
HideOutcome = Hidden | Retryable | RateLimited | NeedsReconnect | Rejected


class ReconcileFailed(Exception):
    """`reconcile` could not read the network, so it cannot say whether the post exists.

    `outcome` is why, in the same terms as a publish: rate limited, token revoked, outage…
    """

    def __init__(
        self, outcome: Retryable | RateLimited | NeedsReconnect | Rejected | Unknown
    ) -> None:
        super().__init__(f"reconcile failed: {outcome}")
        self.outcome = outcome


@dataclass(frozen=True, slots=True)
class RefreshedCredentials:
    """A channel's credentials after a refresh, to persist in place of the old ones: the whole
    dict (what was kept plus the new tokens), and when the new access token lapses (None: it does
    not, or the network did not say)."""

    credentials: dict[str, Any]
    expires_at: datetime | None  # timezone-aware


class CredentialsRejected(Exception):
    """The network refused to renew the channel's credentials (revoked, expired for good, app
    password withdrawn): only a person reconnecting the channel can fix it."""

    def __init__(self, reason: str) -> None:
        super().__init__(reason)
        self.reason = reason


@dataclass(frozen=True, slots=True)
class Engagement:
    """A published post's counters and its channel's audience, as the network reports them now.
    Absolute numbers; None for what the network does not report (Bluesky has no views)."""

    likes: int | None = None
    reposts: int | None = None
    replies: int | None = None
    views: int | None = None
    followers: int | None = None


class EngagementUnavailable(Exception):
    """The network could not be read for a post's counters now. `outcome` says why, in publish
    terms: `Retryable` (outage, timeout), `RateLimited`, `NeedsReconnect` (the token was refused)
    or `Rejected` (the post is gone from the network: stop measuring it)."""

    def __init__(self, outcome: Retryable | RateLimited | NeedsReconnect | Rejected) -> None:
        super().__init__(f"engagement unavailable: {outcome}")
        self.outcome = outcome


# --- configuration and protocol ------------------------------------------------------------------


class ChannelConfig(BaseModel):
    """Base of each adapter's channel settings model (validated when a channel is connected)."""

    model_config = ConfigDict(extra="forbid", frozen=True)


class PublishAdapter(Protocol):
    """One network's write half. Knows the wire format; nothing about storage or scheduling."""

    network: ClassVar[str]
    config_model: ClassVar[type[ChannelConfig]]

    async def publish(
        self,
        client: httpx.AsyncClient,
        channel_config: Any,  # an instance of config_model
        credentials: dict[str, Any],
        request: PublishRequest,
    ) -> PublishOutcome: ...

    async def reconcile(
        self,
        client: httpx.AsyncClient,
        channel_config: Any,
        credentials: dict[str, Any],
        request: PublishRequest,
    ) -> Published | None:
        """What an earlier attempt of `request` created, or None if the network has no trace of
        it. Read-only; raises `ReconcileFailed` when the network cannot be read."""
        ...


@runtime_checkable
class CredentialRefresher(Protocol):
    """The optional half of an adapter whose tokens expire (check with `isinstance`)."""

    async def refresh_credentials(
        self,
        client: httpx.AsyncClient,
        channel_config: Any,  # an instance of the adapter's config_model
        credentials: dict[str, Any],
    ) -> RefreshedCredentials:
        """Fresh credentials for the channel. Raises `CredentialsRejected` when the network
        refuses them (the channel needs reconnecting) and `httpx.HTTPError` when it cannot tell:
        a `TransportError`, an `HTTPStatusError` for a rate limit or an outage (its `response`
        carries the network's wait headers), a `DecodingError` for an answer without tokens. The
        stored credentials are still the ones to use then: try again later."""
        ...


@runtime_checkable
class CommentHider(Protocol):
    """The optional half of an adapter whose network lets a brand hide comments on its own posts
    (check with `isinstance`, or call `hide_comment`)."""

    async def hide(
        self,
        client: httpx.AsyncClient,
        channel_config: Any,  # an instance of the adapter's config_model
        credentials: dict[str, Any],
        external_id: str,
    ) -> HideOutcome:
        """Hide the comment `external_id` (the network's id, as ingest gave it). `Hidden` also
        when it was hidden already; whatever leaves the outcome open is `Retryable`, since
        sending the same hide again is harmless."""
        ...


@runtime_checkable
class EngagementReader(Protocol):
    """The optional half of an adapter whose network reports a post's engagement and the
    channel's audience (check with `isinstance`)."""

    async def fetch_engagement(
        self,
        client: httpx.AsyncClient,
        channel_config: Any,  # an instance of the adapter's config_model
        credentials: dict[str, Any],
        external_id: str,
    ) -> Engagement:
        """The counters of our post `external_id` (the id `publish` returned) and the
        channel's follower count. Read-only; raises `EngagementUnavailable` when the network
        cannot be read."""
        ...


def cannot_hide(network: str) -> Rejected:
    """What a network without comment hiding answers: a permanent refusal, never retried."""
    return Rejected("hide_unsupported", f"network {network} does not let a brand hide comments")


async def hide_comment(
    adapter: PublishAdapter,
    client: httpx.AsyncClient,
    channel_config: Any,
    credentials: dict[str, Any],
    external_id: str,
) -> HideOutcome:
    """Hide a comment through `adapter`, or `cannot_hide` when its network does not allow it."""
    if isinstance(adapter, CommentHider):
        return await adapter.hide(client, channel_config, credentials, external_id)
    return cannot_hide(adapter.network)


# --- helpers every adapter uses ------------------------------------------------------------------


def retry_after_seconds(response: httpx.Response) -> float | None:
    """How long a refusal asks to wait: `Retry-After` (seconds or an HTTP date), else the
    `X-RateLimit-Reset` time (ISO 8601, as Mastodon sends it, or Unix seconds)."""
    now = datetime.now(UTC)
    value = response.headers.get("retry-after", "").strip()
    if value:
        try:
            return max(float(value), 0.0)
        except ValueError:
            pass
        try:
            return max((parsedate_to_datetime(value) - now).total_seconds(), 0.0)
        except (TypeError, ValueError):
            pass
    reset = response.headers.get("x-ratelimit-reset", "").strip()
    if reset:
        try:
            when = (
                datetime.fromtimestamp(float(reset), UTC)
                if reset.replace(".", "", 1).isdigit()
                else datetime.fromisoformat(reset)
            )
        except ValueError:
            return None
        if when.tzinfo is None:
            when = when.replace(tzinfo=UTC)
        return max((when - now).total_seconds(), 0.0)
    return None
