"""Inbox's HTTP API for agents and other systems: the item list with filters and sorts, item and
conversation detail, and every action (status, assignment, claims, tags, notes, replies, hiding,
bulk). Everything is scoped to the caller's tenant."""

import base64
import binascii
import json
import uuid
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from datetime import UTC, datetime, timedelta
from typing import Annotated, Any, Literal

from fastapi import APIRouter, Depends, Query

from services.inbox import events, repository, settings_store, workflow
from services.inbox.assignment import ClaimState, claim, release
from services.inbox.config import brand_settings, roster
from services.inbox.conversations import Conversation as Conv
from services.inbox.items import (
    ActivityEntry,
    Assignment,
    Bulk,
    BulkOutcome,
    BulkResult,
    Claim,
    Conversation,
    ConversationDetail,
    HideRequest,
    InboxItem,
    ItemAuthor,
    ItemDetail,
    ItemPage,
    ItemTriage,
    NewHide,
    NewNote,
    NewReply,
    Note,
    PrioritySignal,
    Reply,
    StatusChange,
    TagChange,
)
from shared.auth import Principal
from shared.db import Connection
from shared.events import BrandId
from shared.http import ApiError, ErrorBody, require_role
from shared.runtime import Runtime
from shared.settings import InboxSettings

TRIAGE_COLUMNS = ("sentiment", "sentiment_score", "intent", "spam", "priority", "level", "signals")
HIDDEN_COLUMNS = ("event_id",)
READERS = ("admin", "manager", "agent", "service")
ACTORS = ("admin", "manager", "agent", "service")


def _item(r: dict[str, Any]) -> InboxItem:
    return InboxItem(
        **{
            k: v
            for k, v in r.items()
            if not k.startswith("author_") and k not in TRIAGE_COLUMNS and k not in HIDDEN_COLUMNS
        },
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


def _encode_cursor(key: list[Any]) -> str:
    raw = json.dumps(
        [v.isoformat() if isinstance(v, datetime) else str(v) if v else v for v in key]
    )
    return base64.urlsafe_b64encode(raw.encode()).decode().rstrip("=")


def _decode_cursor(cursor: str, sort: str) -> list[Any]:
    """The page key back from a cursor, checked against the sort it was made for."""
    try:
        raw = json.loads(base64.urlsafe_b64decode(cursor + "=" * (-len(cursor) % 4)))
        if not isinstance(raw, list):
            raise ValueError("not a list")
        if sort == "priority":
            priority, created, row_id = raw
            return [int(priority), _aware(created), uuid.UUID(row_id)]
        if sort == "due":
            due, row_id = raw
            return [_aware(due) if due is not None else None, uuid.UUID(row_id)]
        created, row_id = raw
        return [_aware(created), uuid.UUID(row_id)]
    except (ValueError, TypeError, binascii.Error) as exc:
        raise ApiError(422, "invalid_cursor", "cursor is not one this API returned") from exc


def _aware(value: Any) -> datetime:
    parsed = datetime.fromisoformat(str(value))
    if parsed.tzinfo is None:
        raise ValueError("naive timestamp")
    return parsed


def _not_found(what: str, ident: object) -> ApiError:
    return ApiError(404, "not_found", f"no {what} {ident}")


def build_api(rt: Runtime, settings: InboxSettings) -> APIRouter:
    router = APIRouter()
    Caller = Annotated[Principal, Depends(rt.authenticate)]
    claim_ttl = timedelta(seconds=settings.claim_ttl_s)

    def reader(caller: Principal) -> None:
        require_role(caller, READERS)

    def actor(caller: Principal) -> None:
        require_role(caller, ACTORS)

    @asynccontextmanager
    async def locked(
        caller: Principal, item_id: uuid.UUID
    ) -> AsyncIterator[tuple[Connection, Conv, dict[str, Any], workflow.Outcome]]:
        """A transaction holding the item's conversation (locked first, as the consumer does) and
        the item; what the block stages in the outcome commits with it."""
        async with rt.pool.acquire() as conn, conn.transaction():
            found = await repository.get_item(conn, caller.tenant_id, item_id)
            if found is None:
                raise _not_found("item", item_id)
            conv = await repository.lock_conversation(
                conn, found["conversation_id"], caller.tenant_id
            )
            rows = await repository.lock_items(conn, caller.tenant_id, [item_id])
            out = workflow.Outcome()
            yield conn, conv, rows[0], out
            await workflow.commit(conn, [conv], out)

    async def reassign(
        conn: Connection,
        conv: Conv,
        item: dict[str, Any],
        out: workflow.Outcome,
        who: str,
        body: Assignment,
    ) -> None:
        teams = await roster(conn, conv.tenant_id)
        if body.team_id is not None and body.team_id not in teams.teams:
            raise ApiError(422, "unknown_team", f"no team {body.team_id}", field="team_id")
        if body.member_id is not None and not await settings_store.existing_members(
            conn, conv.tenant_id, [body.member_id]
        ):
            raise ApiError(422, "unknown_member", f"no member {body.member_id}", field="member_id")
        if body.member_id is None and body.team_id is None:
            changed = conv.assignee_id is not None
            conv.assignee_id = None  # back to the team's queue
        else:
            changed = workflow.assign(
                conv,
                teams,
                team_id=body.team_id,
                member_id=body.member_id,
                language=item["language"],
            )
            if body.team_id and teams.last_assigned.get(body.team_id):
                await repository.set_last_assigned(
                    conn, conv.tenant_id, body.team_id, teams.last_assigned[body.team_id]
                )
        if changed:
            out.events.append(events.item_event("item.assigned", conv, item, actor=who))
            out.log(conv, "assigned", who, item["id"], team=conv.team_id, member=conv.assignee_id)

    def retag(item: dict[str, Any], add: list[str], remove: list[str]) -> list[str]:
        tags = [t for t in item["tags"] if t not in remove]
        return tags + [t for t in add if t not in tags]

    # --- reading -----------------------------------------------------------------------------

    @router.get("/items", response_model=ItemPage, tags=["items"])
    async def list_items(
        caller: Caller,
        sort: Annotated[
            Literal["newest", "priority", "due"],
            Query(
                description="newest first; most urgent first (negative reviews on top); or the "
                "soonest due first (items with nothing due last)"
            ),
        ] = "newest",
        brand_id: Annotated[list[BrandId] | None, Query()] = None,
        status: Annotated[
            list[Literal["new", "open", "pending", "snoozed", "closed"]] | None, Query()
        ] = None,
        level: Annotated[list[Literal["urgent", "high", "normal", "low"]] | None, Query()] = None,
        sentiment: Annotated[
            list[Literal["positive", "neutral", "negative"]] | None, Query()
        ] = None,
        intent: Annotated[
            list[Literal["question", "complaint", "praise", "purchase", "other"]] | None, Query()
        ] = None,
        network: Annotated[list[str] | None, Query(max_length=64)] = None,
        language: Annotated[list[str] | None, Query(max_length=16)] = None,
        sla_state: Annotated[
            list[Literal["none", "ok", "near_breach", "breached", "met"]] | None, Query()
        ] = None,
        assignee_id: Annotated[
            str | None,
            Query(max_length=128, description="A member id, `me`, or `none` for unassigned."),
        ] = None,
        team_id: Annotated[str | None, Query(max_length=128)] = None,
        tag: Annotated[str | None, Query(max_length=64)] = None,
        spam: Annotated[bool | None, Query()] = None,
        q: Annotated[str | None, Query(min_length=1, max_length=200, description="Words.")] = None,
        min_priority: Annotated[int | None, Query(ge=0, le=100)] = None,
        cursor: Annotated[str | None, Query(max_length=512)] = None,
        limit: Annotated[int, Query(ge=1, le=200)] = 50,
    ) -> ItemPage:
        reader(caller)
        who = caller.subject if assignee_id == "me" else assignee_id
        filters = repository.ItemFilter(
            brand_ids=brand_id or (),
            statuses=status or (),
            levels=level or (),
            sentiments=sentiment or (),
            intents=intent or (),
            networks=network or (),
            languages=language or (),
            sla_states=sla_state or (),
            assignee_id=None if who == "none" else who,
            unassigned=who == "none",
            team_id=team_id,
            tag=tag,
            spam=spam,
            text=q,
            min_priority=min_priority,
        )
        after = _decode_cursor(cursor, sort) if cursor else None
        async with rt.pool.acquire() as conn:
            rows = await repository.list_items(
                conn,
                tenant_id=caller.tenant_id,
                filters=filters,
                sort=sort,
                after=after,
                limit=limit + 1,
            )
        page, more = rows[:limit], len(rows) > limit
        next_cursor = _encode_cursor(repository.sort_key(sort, page[-1])) if more else None
        return ItemPage(items=[_item(r) for r in page], next_cursor=next_cursor)

    @router.get("/items/{item_id}", response_model=ItemDetail, tags=["items"])
    async def get_item(caller: Caller, item_id: uuid.UUID) -> ItemDetail:
        reader(caller)
        async with rt.pool.acquire() as conn:
            row = await repository.get_item(conn, caller.tenant_id, item_id)
            if row is None:
                raise _not_found("item", item_id)
            conv = await repository.get_conversation(conn, caller.tenant_id, row["conversation_id"])
            replies = await repository.replies(conn, item_id=item_id)
            hides = await repository.hide_requests(conn, item_id)
        assert conv is not None
        return ItemDetail(
            item=_item(row),
            conversation=Conversation(**conv),
            replies=[Reply(**r) for r in replies],
            hide_requests=[HideRequest(**h) for h in hides],
        )

    @router.get(
        "/conversations/{conversation_id}", response_model=ConversationDetail, tags=["items"]
    )
    async def get_conversation(caller: Caller, conversation_id: uuid.UUID) -> ConversationDetail:
        reader(caller)
        async with rt.pool.acquire() as conn:
            conv = await repository.get_conversation(conn, caller.tenant_id, conversation_id)
            if conv is None:
                raise _not_found("conversation", conversation_id)
            items = await repository.conversation_items(conn, conversation_id)
            notes = await repository.notes(conn, conversation_id)
            replies = await repository.replies(conn, conversation_id=conversation_id)
            activity = await repository.activity(conn, conversation_id)
        return ConversationDetail(
            conversation=Conversation(**conv),
            items=[_item(i) for i in items],
            notes=[Note(**n) for n in notes],
            replies=[Reply(**r) for r in replies],
            activity=[ActivityEntry(**a) for a in activity],
        )

    # --- actions -----------------------------------------------------------------------------

    @router.post("/items/{item_id}/status", response_model=Conversation, tags=["actions"])
    async def change_status(caller: Caller, item_id: uuid.UUID, body: StatusChange) -> Conversation:
        """Open, pend (waiting on the author), snooze until a time, or close the item's
        conversation."""
        actor(caller)
        if body.snoozed_until is not None and body.snoozed_until <= datetime.now(UTC):
            raise ApiError(
                422, "snooze_in_past", "snoozed_until must be in the future", field="snoozed_until"
            )
        async with locked(caller, item_id) as (_, conv, item, out):
            workflow.change_status(
                conv,
                body.status,
                item,
                out,
                actor=caller.subject,
                reason=body.reason,
                snoozed_until=body.snoozed_until,
            )
        return await _conversation(caller, conv.id)

    @router.post("/items/{item_id}/assign", response_model=Conversation, tags=["actions"])
    async def assign(caller: Caller, item_id: uuid.UUID, body: Assignment) -> Conversation:
        """Reassign the item's conversation by hand."""
        actor(caller)
        async with locked(caller, item_id) as (conn, conv, item, out):
            await reassign(conn, conv, item, out, caller.subject, body)
        return await _conversation(caller, conv.id)

    @router.post(
        "/items/{item_id}/claim",
        response_model=Claim,
        tags=["actions"],
        responses={409: {"model": ErrorBody, "description": "Another agent is answering it."}},
    )
    async def claim_item(caller: Caller, item_id: uuid.UUID) -> Claim:
        """Take the item while composing an answer, so nobody else answers it at the same time;
        claiming again renews it."""
        actor(caller)
        now = datetime.now(UTC)
        async with locked(caller, item_id) as (conn, conv, item, out):
            result = claim(_claim_of(item), caller.subject, now, claim_ttl)
            if not result.granted:
                assert result.claim is not None
                raise ApiError(
                    409,
                    "claimed",
                    f"{result.claim.member_id} is answering this item",
                    claimed_by=result.claim.member_id,
                    expires_at=result.claim.expires_at.isoformat(),
                )
            assert result.claim is not None
            await repository.set_claim(conn, item_id, result.claim)
            if result.outcome != "renewed":
                out.log(conv, "claimed", caller.subject, item_id, outcome=result.outcome)
            if conv.status == "new":
                # Someone is on it: it is no longer untouched.
                workflow.change_status(
                    conv, "open", item, out, actor=caller.subject, reason="claimed"
                )
        return Claim(
            item_id=item_id,
            claimed_by=result.claim.member_id,
            claimed_at=result.claim.claimed_at,
            expires_at=result.claim.expires_at,
            outcome=result.outcome,
        )

    @router.delete("/items/{item_id}/claim", response_model=Claim, tags=["actions"])
    async def release_item(caller: Caller, item_id: uuid.UUID) -> Claim:
        actor(caller)
        async with locked(caller, item_id) as (conn, conv, item, out):
            # A manager may free an item someone left claimed; an agent only their own.
            holder = _claim_of(item)
            if caller.role in ("admin", "manager") and holder is not None:
                result = release(holder, holder.member_id, datetime.now(UTC))
            else:
                result = release(holder, caller.subject, datetime.now(UTC))
            if not result.granted:
                raise ApiError(409, "claimed", f"{item['claimed_by']} is answering this item")
            await repository.set_claim(conn, item_id, None)
            if holder is not None:
                out.log(conv, "released", caller.subject, item_id, holder=holder.member_id)
        return Claim(item_id=item_id, claimed_by=None, expires_at=None, outcome="released")

    @router.post("/items/{item_id}/tags", response_model=InboxItem, tags=["actions"])
    async def tag_item(caller: Caller, item_id: uuid.UUID, body: TagChange) -> InboxItem:
        actor(caller)
        async with locked(caller, item_id) as (conn, conv, item, out):
            tags = retag(item, body.add, body.remove)
            await repository.set_tags(conn, item_id, tags)
            out.log(conv, "tagged", caller.subject, item_id, add=body.add, remove=body.remove)
        return await _item_now(caller, item_id)

    @router.post("/items/{item_id}/notes", response_model=Note, status_code=201, tags=["actions"])
    async def add_note(caller: Caller, item_id: uuid.UUID, body: NewNote) -> Note:
        """An internal note on the conversation: never sent to the network."""
        actor(caller)
        async with locked(caller, item_id) as (conn, conv, _, out):
            note = await repository.insert_note(
                conn,
                tenant_id=caller.tenant_id,
                conversation_id=conv.id,
                item_id=item_id,
                author_id=caller.subject,
                text=body.text,
            )
            out.log(conv, "note_added", caller.subject, item_id, note_id=str(note["id"]))
        return Note(**note)

    @router.post(
        "/items/{item_id}/replies",
        response_model=Reply,
        status_code=202,
        tags=["actions"],
        responses={409: {"model": ErrorBody, "description": "Another agent holds the item."}},
    )
    async def reply(caller: Caller, item_id: uuid.UUID, body: NewReply) -> Reply:
        """Answer the item on its network through the publisher: the reply shows as requested
        until the publisher reports it published (with its network id) or failed (with why)."""
        actor(caller)
        now = datetime.now(UTC)
        async with locked(caller, item_id) as (conn, conv, item, out):
            if item["deleted_at"] is not None:
                raise ApiError(409, "item_deleted", "the author deleted this item")
            held = claim(_claim_of(item), caller.subject, now, claim_ttl)
            if not held.granted:
                assert held.claim is not None
                raise ApiError(
                    409,
                    "claimed",
                    f"{held.claim.member_id} is answering this item",
                    claimed_by=held.claim.member_id,
                )
            assert held.claim is not None
            await repository.set_claim(conn, item_id, held.claim)
            brand = (await brand_settings(conn, caller.tenant_id, {conv.brand_id}))[conv.brand_id]
            try:
                channel = workflow.reply_channel(brand, conv.network, body.channel_id)
            except workflow.NoChannel as exc:
                raise ApiError(422, "no_reply_channel", str(exc), field="channel_id") from exc
            text, saved_id = body.text, None
            if body.saved_reply_id is not None:
                saved = await repository.saved_reply(conn, caller.tenant_id, body.saved_reply_id)
                if saved is None or saved["brand_id"] not in (None, conv.brand_id):
                    raise ApiError(
                        422,
                        "unknown_saved_reply",
                        f"no saved reply {body.saved_reply_id} for this brand",
                        field="saved_reply_id",
                    )
                text = workflow.render(
                    saved["text"], workflow.reply_variables(item, caller.subject)
                )
                saved_id = saved["id"]
            assert text is not None
            request_id = await workflow.request_reply(
                conn,
                conv,
                item,
                out,
                text=text,
                channel_id=channel,
                actor=caller.subject,
                saved_reply_id=saved_id,
            )
            replies = await repository.replies(conn, item_id=item_id)
        return Reply(**next(r for r in replies if r["id"] == request_id))

    @router.post(
        "/items/{item_id}/hide", response_model=HideRequest, status_code=202, tags=["actions"]
    )
    async def hide(caller: Caller, item_id: uuid.UUID, body: NewHide | None = None) -> HideRequest:
        """Hide the comment on its network (where the network lets a brand do that)."""
        actor(caller)
        async with locked(caller, item_id) as (conn, conv, item, out):
            brand = (await brand_settings(conn, caller.tenant_id, {conv.brand_id}))[conv.brand_id]
            try:
                channel = workflow.reply_channel(
                    brand, conv.network, body.channel_id if body else None
                )
            except workflow.NoChannel as exc:
                raise ApiError(422, "no_reply_channel", str(exc), field="channel_id") from exc
            request_id = await workflow.request_hide(
                conn, conv, item, out, channel_id=channel, actor=caller.subject
            )
            hides = await repository.hide_requests(conn, item_id)
        return HideRequest(**next(h for h in hides if h["id"] == request_id))

    @router.post("/items/bulk", response_model=BulkOutcome, tags=["actions"])
    async def bulk(caller: Caller, body: Bulk) -> BulkOutcome:
        """Assign, tag, untag, close or set the status of many items at once; each item succeeds
        or fails on its own (an unknown id is reported, not fatal)."""
        actor(caller)
        action = body.action
        results: list[BulkResult] = []
        for item_id in dict.fromkeys(body.item_ids):
            try:
                async with locked(caller, item_id) as (conn, conv, item, out):
                    if action.type == "assign":
                        await reassign(
                            conn,
                            conv,
                            item,
                            out,
                            caller.subject,
                            Assignment(member_id=action.member_id, team_id=action.team_id),
                        )
                    elif action.type in ("tag", "untag"):
                        add = action.tags if action.type == "tag" else []
                        remove = action.tags if action.type == "untag" else []
                        await repository.set_tags(conn, item_id, retag(item, add, remove))
                        out.log(conv, "tagged", caller.subject, item_id, add=add, remove=remove)
                    else:
                        status = "closed" if action.type == "close" else action.status
                        assert status is not None
                        workflow.change_status(
                            conv, status, item, out, actor=caller.subject, reason="bulk"
                        )
                results.append(BulkResult(item_id=item_id, ok=True))
            except ApiError as exc:
                results.append(BulkResult(item_id=item_id, ok=False, error=str(exc.detail)))
        return BulkOutcome(done=sum(r.ok for r in results), results=results)

    async def _conversation(caller: Principal, conversation_id: uuid.UUID) -> Conversation:
        async with rt.pool.acquire() as conn:
            conv = await repository.get_conversation(conn, caller.tenant_id, conversation_id)
        assert conv is not None
        return Conversation(**conv)

    async def _item_now(caller: Principal, item_id: uuid.UUID) -> InboxItem:
        async with rt.pool.acquire() as conn:
            row = await repository.get_item(conn, caller.tenant_id, item_id)
        assert row is not None
        return _item(row)

    return router


def _claim_of(item: dict[str, Any]) -> ClaimState | None:
    if item["claimed_by"] is None or item["claimed_at"] is None:
        return None
    return ClaimState(item["claimed_by"], item["claimed_at"], item["claim_expires_at"])
