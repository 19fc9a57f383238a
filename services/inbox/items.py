"""Inbox items as the API shows them, and the opaque cursor of newest-first pagination."""

from __future__ import annotations

import base64
import binascii
import json
import uuid
from datetime import datetime

from pydantic import BaseModel


class ItemAuthor(BaseModel):
    id: str
    handle: str
    display_name: str | None
    followers: int | None


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


class ItemPage(BaseModel):
    items: list[InboxItem]
    next_cursor: str | None


class BadCursor(ValueError):
    pass


def encode_cursor(created_at: datetime, item_id: uuid.UUID) -> str:
    raw = json.dumps([created_at.isoformat(), str(item_id)]).encode()
    return base64.urlsafe_b64encode(raw).decode().rstrip("=")


def decode_cursor(cursor: str) -> tuple[datetime, uuid.UUID]:
    try:
        raw = base64.urlsafe_b64decode(cursor + "=" * (-len(cursor) % 4))
        created_at, item_id = json.loads(raw)
        parsed = datetime.fromisoformat(created_at)
        if parsed.tzinfo is None:
            raise ValueError("naive timestamp")
        return parsed, uuid.UUID(item_id)
    except (ValueError, TypeError, binascii.Error) as exc:
        raise BadCursor("cursor is not one this API returned") from exc
