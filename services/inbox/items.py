"""Inbox items as the API shows them."""

from __future__ import annotations

import uuid
from datetime import datetime

from pydantic import BaseModel


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


class ItemPage(BaseModel):
    items: list[InboxItem]
    next_cursor: str | None
