"""The event envelope and the event schemas: the single source of truth for what flows on Kafka.

Compatibility within a major version is additive only: new fields are optional, consumers ignore
fields they do not know. A breaking change is a new topic version.
"""

from __future__ import annotations

import uuid
from datetime import UTC, datetime
from typing import Annotated, Any, ClassVar, Generic, Literal, TypeVar

from pydantic import BaseModel, ConfigDict, Field, StringConstraints

TenantId = Annotated[str, StringConstraints(pattern=r"^[A-Za-z0-9][A-Za-z0-9_.-]{0,63}$")]
BrandId = Annotated[str, StringConstraints(pattern=r"^[A-Za-z0-9][A-Za-z0-9_.-]{0,63}$")]


def utcnow() -> datetime:
    return datetime.now(UTC)


class EventModel(BaseModel):
    """Base for payloads: unknown fields are ignored, so producers may add optional fields."""

    model_config = ConfigDict(extra="ignore", frozen=True)

    EVENT_TYPE: ClassVar[str] = ""
    SCHEMA_VERSION: ClassVar[int] = 1


P = TypeVar("P", bound=EventModel)


class Envelope(BaseModel, Generic[P]):
    """The one envelope every event travels in."""

    model_config = ConfigDict(extra="ignore", frozen=True)

    event_id: uuid.UUID = Field(default_factory=uuid.uuid4)
    type: str
    schema_version: int = Field(ge=1)
    tenant_id: TenantId
    brand_id: BrandId | None = None
    occurred_at: datetime
    produced_at: datetime = Field(default_factory=utcnow)
    causation_id: uuid.UUID | None = None
    correlation_id: uuid.UUID | None = None
    payload: P


# --- smm.mentions.v1 -------------------------------------------------------------------------

MentionKind = Literal["mention", "comment", "reply", "direct_message", "review", "post"]


class Author(EventModel):
    id: str = Field(min_length=1, max_length=256)
    handle: str = Field(min_length=1, max_length=256)
    display_name: str | None = Field(default=None, max_length=512)
    followers: int | None = Field(default=None, ge=0)
    verified: bool | None = None


class Thread(EventModel):
    root_external_id: str
    parent_external_id: str | None = None


class MediaRef(EventModel):
    type: str
    url: str


class Engagement(EventModel):
    likes: int | None = None
    reposts: int | None = None
    replies: int | None = None
    views: int | None = None


class QueryMatch(EventModel):
    """A listening query that matched; `role` tells a brand's own query from a competitor's."""

    query_id: uuid.UUID
    version: int
    role: Literal["brand", "competitor"] = "brand"
    competitor: str | None = None


class MentionPayload(EventModel):
    """A mention, comment or reply heard on a network, normalised by ingest for one brand.

    `mention.received` carries it when the brand first hears of the item, `mention.updated` with
    the item's new state when the network reports an edit.
    """

    EVENT_TYPE: ClassVar[str] = "mention.received"
    SCHEMA_VERSION: ClassVar[int] = 1

    mention_id: uuid.UUID
    source_id: uuid.UUID
    network: str
    external_id: str
    kind: MentionKind = "mention"
    url: str | None = None
    text: str
    language: str | None = None
    created_at: datetime
    author: Author
    thread: Thread
    # Added in schema version 1 as optional fields (older producers omit them).
    item_id: uuid.UUID | None = None  # ingest's id of the item, shared by every brand it matched
    replies_to_post_id: uuid.UUID | None = None  # our published post this replies to
    media: list[MediaRef] = Field(default_factory=list)
    engagement: Engagement | None = None
    edited_at: datetime | None = None
    # Empty when the brand's own source delivered it (its account's mentions, a brand webhook).
    matches: list[QueryMatch] = Field(default_factory=list)


class MentionReceived(Envelope[MentionPayload]):
    type: Literal["mention.received"] = "mention.received"
    schema_version: Literal[1] = 1


class MentionUpdated(Envelope[MentionPayload]):
    type: Literal["mention.updated"] = "mention.updated"
    schema_version: Literal[1] = 1


class MentionDeletedPayload(EventModel):
    EVENT_TYPE: ClassVar[str] = "mention.deleted"
    SCHEMA_VERSION: ClassVar[int] = 1

    mention_id: uuid.UUID
    network: str
    external_id: str
    deleted_at: datetime


class MentionDeleted(Envelope[MentionDeletedPayload]):
    type: Literal["mention.deleted"] = "mention.deleted"
    schema_version: Literal[1] = 1


# --- smm.posts.v1 ----------------------------------------------------------------------------


class PostPublishedPayload(EventModel):
    """A post or reply of ours went out on a network (publisher); ingest tracks its comments."""

    EVENT_TYPE: ClassVar[str] = "post.published"
    SCHEMA_VERSION: ClassVar[int] = 1

    post_id: uuid.UUID
    channel_id: uuid.UUID
    network: str
    external_id: str  # the network's id of the published item
    url: str | None = None
    published_at: datetime
    # Until when ingest should collect replies to it (None: the platform default window).
    track_replies_until: datetime | None = None
    # When this delivery was due (its run of a recurring post), for on-time rates and lateness.
    scheduled_at: datetime | None = None


class PostPublished(Envelope[PostPublishedPayload]):
    type: Literal["post.published"] = "post.published"
    schema_version: Literal[1] = 1


class PostLifecyclePayload(EventModel):
    """A post's other lifecycle steps: `post.scheduled`, `post.approved`, `post.rejected`,
    `post.failed` (one channel could not publish it) and `post.cancelled`."""

    post_id: uuid.UUID
    channel_id: uuid.UUID | None = None
    network: str | None = None
    scheduled_at: datetime | None = None
    actor: str | None = None
    comment: str | None = None
    error: str | None = None


# --- smm.inbox.v1 ----------------------------------------------------------------------------


class PostEngagementPayload(EventModel):
    """`post.engagement_updated` (smm.posts.v1): the latest counters of a post of ours as its
    network reports them, and the channel's audience at that moment. Counters are absolute
    (not deltas); a field the network does not report is null."""

    EVENT_TYPE: ClassVar[str] = "post.engagement_updated"
    SCHEMA_VERSION: ClassVar[int] = 1

    post_id: uuid.UUID
    channel_id: uuid.UUID
    network: str
    external_id: str
    measured_at: datetime
    likes: int | None = Field(default=None, ge=0)
    reposts: int | None = Field(default=None, ge=0)
    replies: int | None = Field(default=None, ge=0)
    views: int | None = Field(default=None, ge=0)
    followers: int | None = Field(default=None, ge=0)


class PostEngagementUpdated(Envelope[PostEngagementPayload]):
    type: Literal["post.engagement_updated"] = "post.engagement_updated"
    schema_version: Literal[1] = 1


class ReplyRequestedPayload(EventModel):
    """The inbox asks the publisher to answer an item on a network through a channel."""

    EVENT_TYPE: ClassVar[str] = "reply.requested"
    SCHEMA_VERSION: ClassVar[int] = 1

    request_id: uuid.UUID
    channel_id: uuid.UUID
    reply_to_external_id: str
    text: str = Field(min_length=1, max_length=65_536)
    requested_by: str | None = None


class ReplyRequested(Envelope[ReplyRequestedPayload]):
    type: Literal["reply.requested"] = "reply.requested"
    schema_version: Literal[1] = 1


class ReplyOutcomePayload(EventModel):
    """`reply.published` (with the reply's network id) or `reply.failed` (with the reason)."""

    request_id: uuid.UUID
    channel_id: uuid.UUID
    network: str
    reply_to_external_id: str
    external_id: str | None = None
    url: str | None = None
    error: str | None = None


class ReplyPublished(Envelope[ReplyOutcomePayload]):
    type: Literal["reply.published"] = "reply.published"
    schema_version: Literal[1] = 1


class ReplyFailed(Envelope[ReplyOutcomePayload]):
    type: Literal["reply.failed"] = "reply.failed"
    schema_version: Literal[1] = 1


class HideRequestedPayload(EventModel):
    """The inbox asks the publisher to hide a comment on a network that allows it (a reply-side
    action through the brand's channel). The outcome comes back as `comment.hidden` or
    `comment.hide_failed` (`HideOutcomePayload`) on smm.posts.v1."""

    EVENT_TYPE: ClassVar[str] = "comment.hide_requested"
    SCHEMA_VERSION: ClassVar[int] = 1

    request_id: uuid.UUID
    channel_id: uuid.UUID
    network: str
    external_id: str = Field(min_length=1, max_length=512)
    requested_by: str | None = None


class HideRequested(Envelope[HideRequestedPayload]):
    type: Literal["comment.hide_requested"] = "comment.hide_requested"
    schema_version: Literal[1] = 1


class HideOutcomePayload(EventModel):
    """`comment.hidden`, or `comment.hide_failed` with the reason (e.g. the network cannot hide)."""

    request_id: uuid.UUID
    channel_id: uuid.UUID
    network: str
    external_id: str
    error: str | None = None


class CommentHidden(Envelope[HideOutcomePayload]):
    type: Literal["comment.hidden"] = "comment.hidden"
    schema_version: Literal[1] = 1


class CommentHideFailed(Envelope[HideOutcomePayload]):
    type: Literal["comment.hide_failed"] = "comment.hide_failed"
    schema_version: Literal[1] = 1


InboxEventType = Literal[
    "item.created",
    "item.triaged",
    "item.assigned",
    "item.status_changed",
    "item.replied",
    "item.sla_near_breach",
    "item.sla_breached",
]


class InboxItemEventPayload(EventModel):
    """What happened to an inbox item (and its conversation), for other systems and metrics.

    One payload for every `item.*` event on smm.inbox.v1; fields that do not apply are null.
    """

    SCHEMA_VERSION: ClassVar[int] = 1

    item_id: uuid.UUID
    conversation_id: uuid.UUID
    network: str
    status: str
    priority: int
    level: str
    sentiment: str | None = None
    intent: str | None = None
    spam: bool = False
    assignee_id: str | None = None
    team_id: str | None = None
    due_at: datetime | None = None
    previous_status: str | None = None
    actor: str | None = None
    reason: str | None = None
    reply_external_id: str | None = None
    first_response_s: float | None = None
    sla_state: str | None = None
    # On item.replied: which answer this was ("first" or "next") and how long it took from the
    # message that started the clock, in wall-clock seconds.
    response_kind: str | None = None
    response_s: float | None = None


class InboxItemEvent(Envelope[InboxItemEventPayload]):
    type: InboxEventType
    schema_version: Literal[1] = 1


def envelope_for(
    payload: P,
    *,
    event_type: str | None = None,
    tenant_id: str,
    brand_id: str | None,
    occurred_at: datetime,
    causation_id: uuid.UUID | None = None,
    correlation_id: uuid.UUID | None = None,
) -> dict[str, Any]:
    """Build the JSON-ready envelope for a payload class that declares its type and version."""
    return {
        "event_id": str(uuid.uuid4()),
        "type": event_type or type(payload).EVENT_TYPE,
        "schema_version": type(payload).SCHEMA_VERSION,
        "tenant_id": tenant_id,
        "brand_id": brand_id,
        "occurred_at": occurred_at.isoformat(),
        "produced_at": utcnow().isoformat(),
        "causation_id": str(causation_id) if causation_id else None,
        "correlation_id": str(correlation_id) if correlation_id else None,
        "payload": payload.model_dump(mode="json"),
    }
