"""A conversation (one thread of a brand on a network) as the workflow changes it."""

from __future__ import annotations

import uuid
from dataclasses import dataclass, field, fields
from datetime import UTC, datetime
from typing import Any


@dataclass
class Conversation:
    """A working copy of one locked conversation row; `repository.save_conversations` writes it
    back."""

    id: uuid.UUID
    tenant_id: str
    brand_id: str
    network: str
    thread_root_id: str
    status: str = "new"
    snoozed_until: datetime | None = None
    assignee_id: str | None = None
    team_id: str | None = None
    priority: int = 0
    level: str = "normal"
    sla_kind: str | None = None
    sla_started_at: datetime | None = None
    near_due_at: datetime | None = None
    due_at: datetime | None = None
    sla_state: str = "none"
    first_response_at: datetime | None = None
    first_response_s: float | None = None
    last_author_at: datetime | None = None
    last_reply_at: datetime | None = None
    item_count: int = 0
    created_at: datetime = field(default_factory=lambda: datetime.now(UTC))
    is_new: bool = field(default=False, compare=False)
    # False until `save_conversations` has inserted the row: a new thread's conversation is
    # written once, with its state, instead of inserted empty and updated in the same batch.
    stored: bool = field(default=True, compare=False)

    @classmethod
    def from_row(cls, row: Any, *, is_new: bool = False) -> Conversation:
        names = {f.name for f in fields(cls)} - {"is_new", "stored"}
        return cls(**{k: row[k] for k in names}, is_new=is_new)

    @property
    def clock_running(self) -> bool:
        return self.sla_state in ("ok", "near_breach", "breached") and self.due_at is not None
