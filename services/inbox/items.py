"""Inbox items, conversations and agent actions as the API shows and takes them."""

from __future__ import annotations

import uuid
from datetime import datetime
from typing import Annotated, Any, Literal

from pydantic import BaseModel, ConfigDict, Field, model_validator

Status = Literal["new", "open", "pending", "snoozed", "closed"]
SlaState = Literal["none", "ok", "near_breach", "breached", "met"]
Tag = Annotated[str, Field(min_length=1, max_length=64, pattern=r"^[^\s,][^,]*$")]


class ItemAuthor(BaseModel):
    id: str
    handle: str
    display_name: str | None
    followers: int | None


class PrioritySignal(BaseModel):
    name: str
    weight: float
    detail: str


class ItemTriage(BaseModel):
    """What triage decided, and the signals that add up to the priority."""

    sentiment: str | None
    sentiment_score: float | None
    intent: str | None
    spam: bool
    priority: int
    level: str
    signals: list[PrioritySignal]


class InboxItem(BaseModel):
    id: uuid.UUID
    tenant_id: str
    brand_id: str
    source_id: uuid.UUID
    network: str
    external_id: str
    kind: str
    text: str
    url: str | None
    language: str | None
    author: ItemAuthor
    thread_root_id: str
    parent_external_id: str | None
    created_at: datetime
    received_at: datetime
    edited_at: datetime | None = None
    deleted_at: datetime | None = None
    triage: ItemTriage | None = None
    conversation_id: uuid.UUID
    status: Status
    assignee_id: str | None
    team_id: str | None
    due_at: datetime | None = Field(description="When the conversation's next answer is due.")
    sla_state: SlaState
    tags: list[str]
    rule_ids: list[str] = Field(description="The rules that acted on this item when it arrived.")
    hidden_at: datetime | None
    claimed_by: str | None = Field(description="The agent answering it right now, if any.")
    claimed_at: datetime | None
    claim_expires_at: datetime | None


class ItemPage(BaseModel):
    items: list[InboxItem]
    next_cursor: str | None


class Reply(BaseModel):
    id: uuid.UUID
    item_id: uuid.UUID
    channel_id: uuid.UUID | None
    text: str
    requested_by: str
    saved_reply_id: str | None
    status: Literal["requested", "published", "failed"]
    external_id: str | None
    url: str | None
    error: str | None
    requested_at: datetime
    completed_at: datetime | None


class HideRequest(BaseModel):
    id: uuid.UUID
    channel_id: uuid.UUID | None
    requested_by: str
    status: Literal["requested", "hidden", "failed"]
    error: str | None
    requested_at: datetime
    completed_at: datetime | None


class Note(BaseModel):
    id: uuid.UUID
    item_id: uuid.UUID | None
    author_id: str
    text: str
    created_at: datetime


class ActivityEntry(BaseModel):
    id: int
    item_id: uuid.UUID | None
    at: datetime
    actor: str
    kind: str
    detail: dict[str, Any]


class Conversation(BaseModel):
    id: uuid.UUID
    tenant_id: str
    brand_id: str
    network: str
    thread_root_id: str
    status: Status
    snoozed_until: datetime | None
    assignee_id: str | None
    team_id: str | None
    priority: int
    level: str
    sla_kind: Literal["first", "next"] | None
    sla_started_at: datetime | None
    near_due_at: datetime | None
    due_at: datetime | None
    sla_state: SlaState
    first_response_at: datetime | None
    first_response_s: float | None = Field(description="Seconds from arrival to the first answer.")
    last_author_at: datetime | None
    last_reply_at: datetime | None
    item_count: int
    created_at: datetime


class ItemDetail(BaseModel):
    item: InboxItem
    conversation: Conversation
    replies: list[Reply]
    hide_requests: list[HideRequest]


class ConversationDetail(BaseModel):
    conversation: Conversation
    items: list[InboxItem]
    notes: list[Note]
    replies: list[Reply]
    activity: list[ActivityEntry] = Field(description="Newest first, up to 200 entries.")


# --- actions ---------------------------------------------------------------------------------


class _Body(BaseModel):
    model_config = ConfigDict(extra="forbid")


class StatusChange(_Body):
    status: Literal["open", "pending", "snoozed", "closed"]
    snoozed_until: datetime | None = Field(default=None, description="Required to snooze.")
    reason: Annotated[str, Field(max_length=500)] | None = None

    @model_validator(mode="after")
    def _snooze_needs_a_time(self) -> StatusChange:
        if self.status == "snoozed" and self.snoozed_until is None:
            raise ValueError("snoozed_until is required to snooze")
        if self.snoozed_until is not None and self.snoozed_until.tzinfo is None:
            raise ValueError("snoozed_until needs a time zone (e.g. 2026-11-26T15:00:00Z)")
        return self


class Assignment(_Body):
    """A member (the team follows them), a team (its strategy picks the member), or neither to
    hand the conversation back to its team's queue."""

    member_id: Annotated[str, Field(min_length=1, max_length=128)] | None = None
    team_id: Annotated[str, Field(min_length=1, max_length=128)] | None = None


class TagChange(_Body):
    add: Annotated[list[Tag], Field(max_length=50)] = Field(default_factory=list)
    remove: Annotated[list[Tag], Field(max_length=50)] = Field(default_factory=list)


class NewNote(_Body):
    text: Annotated[str, Field(min_length=1, max_length=10_000)]


class NewReply(_Body):
    """Reply text, or a saved reply rendered with the item's variables."""

    text: Annotated[str, Field(min_length=1, max_length=10_000)] | None = None
    saved_reply_id: Annotated[str, Field(min_length=1, max_length=128)] | None = None
    channel_id: uuid.UUID | None = Field(
        default=None, description="Defaults to the brand's reply channel for the network."
    )

    @model_validator(mode="after")
    def _one_source(self) -> NewReply:
        if (self.text is None) == (self.saved_reply_id is None):
            raise ValueError("give either text or saved_reply_id")
        return self


class NewHide(_Body):
    channel_id: uuid.UUID | None = None


class Claim(BaseModel):
    item_id: uuid.UUID
    claimed_by: str | None
    claimed_at: datetime | None = None
    expires_at: datetime | None
    outcome: Literal["claimed", "renewed", "taken_over", "released"]


class BulkAction(_Body):
    type: Literal["assign", "tag", "untag", "close", "status"]
    member_id: str | None = None
    team_id: str | None = None
    tags: Annotated[list[Tag], Field(max_length=50)] = Field(default_factory=list)
    status: Literal["open", "pending", "closed"] | None = None

    @model_validator(mode="after")
    def _complete(self) -> BulkAction:
        if self.type in ("tag", "untag") and not self.tags:
            raise ValueError(f"{self.type} needs tags")
        if self.type == "status" and self.status is None:
            raise ValueError("status needs a status")
        return self


class Bulk(_Body):
    item_ids: Annotated[list[uuid.UUID], Field(min_length=1, max_length=500)]
    action: BulkAction


class BulkResult(BaseModel):
    item_id: uuid.UUID
    ok: bool
    error: str | None = None


class BulkOutcome(BaseModel):
    done: int
    results: list[BulkResult]
