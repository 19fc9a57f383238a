"""Inbox's HTTP API: the item list (newest or most urgent first), scoped to the caller's tenant."""

import uuid
from datetime import datetime
from typing import Annotated, Any, Literal

from fastapi import APIRouter, Depends, Query

from services.inbox import repository
from services.inbox.items import InboxItem, ItemAuthor, ItemPage, ItemTriage, PrioritySignal
from shared.auth import Principal
from shared.events import BrandId
from shared.http import ApiError
from shared.pagination import BadCursor, decode_cursor, encode_cursor
from shared.runtime import Runtime

TRIAGE_COLUMNS = ("sentiment", "sentiment_score", "intent", "spam", "priority", "level", "signals")


def _item(r: dict[str, Any]) -> InboxItem:
    return InboxItem(
        **{k: v for k, v in r.items() if not k.startswith("author_") and k not in TRIAGE_COLUMNS},
        author=ItemAuthor(
            id=r["author_id"],
            handle=r["author_handle"],
            display_name=r["author_display_name"],
            followers=r["author_followers"],
        ),
        triage=ItemTriage(
            sentiment=r["sentiment"],
            sentiment_score=r["sentiment_score"],
            intent=r["intent"],
            spam=r["spam"],
            priority=r["priority"],
            level=r["level"],
            signals=[PrioritySignal(**s) for s in r["signals"]],
        ),
    )


def build_api(rt: Runtime) -> APIRouter:
    router = APIRouter()
    Caller = Annotated[Principal, Depends(rt.authenticate)]

    @router.get("/items", response_model=ItemPage, tags=["items"])
    async def list_items(
        caller: Caller,
        brand_id: Annotated[BrandId | None, Query(description="Only this brand's items.")] = None,
        sort: Annotated[
            Literal["newest", "priority"],
            Query(description="newest first, or most urgent first (negative reviews on top)"),
        ] = "newest",
        sentiment: Annotated[Literal["positive", "neutral", "negative"] | None, Query()] = None,
        level: Annotated[Literal["urgent", "high", "normal", "low"] | None, Query()] = None,
        spam: Annotated[bool | None, Query()] = None,
        cursor: Annotated[str | None, Query(max_length=512)] = None,
        limit: Annotated[int, Query(ge=1, le=200)] = 50,
    ) -> ItemPage:
        by_priority = sort == "priority"
        after_priority: int | None = None
        after: tuple[datetime, uuid.UUID] | None = None
        try:
            if cursor and by_priority:
                # A priority page resumes after (priority, created_at, id).
                head, _, rest = cursor.partition(".")
                after_priority, after = int(head), decode_cursor(rest)
            else:
                after = decode_cursor(cursor) if cursor else None
        except (BadCursor, ValueError) as exc:
            raise ApiError(422, "invalid_cursor", "cursor is not one this API returned") from exc
        async with rt.pool.acquire() as conn:
            rows = await repository.list_items(
                conn,
                tenant_id=caller.tenant_id,
                brand_id=brand_id,
                after=after,
                limit=limit + 1,
                by_priority=by_priority,
                after_priority=after_priority,
                sentiment=sentiment,
                level=level,
                spam=spam,
            )
        page, more = rows[:limit], len(rows) > limit
        last = page[-1] if page else None
        next_cursor = None
        if more and last:
            next_cursor = encode_cursor(last["created_at"], last["id"])
            if by_priority:
                next_cursor = f"{last['priority']}.{next_cursor}"
        return ItemPage(items=[_item(r) for r in page], next_cursor=next_cursor)

    return router
