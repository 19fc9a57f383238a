"""Inbox's HTTP API: the item list, newest first, scoped to the caller's tenant."""

from typing import Annotated

from fastapi import APIRouter, Depends, Query

from services.inbox import repository
from services.inbox.items import InboxItem, ItemAuthor, ItemPage
from shared.auth import Principal
from shared.events import BrandId
from shared.http import ApiError
from shared.pagination import BadCursor, decode_cursor, encode_cursor
from shared.runtime import Runtime


def build_api(rt: Runtime) -> APIRouter:
    router = APIRouter()
    Caller = Annotated[Principal, Depends(rt.authenticate)]

    @router.get("/items", response_model=ItemPage, tags=["items"])
    async def list_items(
        caller: Caller,
        brand_id: Annotated[BrandId | None, Query(description="Only this brand's items.")] = None,
        cursor: Annotated[str | None, Query(max_length=512)] = None,
        limit: Annotated[int, Query(ge=1, le=200)] = 50,
    ) -> ItemPage:
        try:
            after = decode_cursor(cursor) if cursor else None
        except BadCursor as exc:
            raise ApiError(422, "invalid_cursor", str(exc)) from exc
        async with rt.pool.acquire() as conn:
            rows = await repository.list_items(
                conn, tenant_id=caller.tenant_id, brand_id=brand_id, after=after, limit=limit + 1
            )
        page, more = rows[:limit], len(rows) > limit
        items = [
            InboxItem(
                **{k: v for k, v in r.items() if not k.startswith("author_")},
                author=ItemAuthor(
                    id=r["author_id"],
                    handle=r["author_handle"],
                    display_name=r["author_display_name"],
                    followers=r["author_followers"],
                ),
            )
            for r in page
        ]
        last = page[-1] if page else None
        next_cursor = encode_cursor(last["created_at"], last["id"]) if more and last else None
        return ItemPage(items=items, next_cursor=next_cursor)

    return router
