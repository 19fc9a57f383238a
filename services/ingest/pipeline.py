"""From fetched items to stored items, brand matches and outbox events, in the caller's transaction.

Every source — pulled, pushed, or replies to our own posts — goes through `ingest_items`:

1. one stored item per (network, external id), whichever source or tenant heard it;
2. an edit or a deletion (a changed content hash) updates the item and emits `mention.updated` or
   `mention.deleted` to every brand it matched;
3. the item is matched for the tenant whose source heard it: to the source's brand (owned
   sources), to the brand of our post it replies to, and to every brand whose listening query
   matches; each (item, brand) pair that is new emits one `mention.received`.
"""

from __future__ import annotations

import hashlib
import json
import uuid
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from typing import Any

from services.ingest import repository
from services.ingest.connectors.base import FetchedMention
from services.ingest.listening import MatchInput
from services.ingest.matching import QueryIndex
from shared.db import Connection
from shared.events import (
    Author,
    Engagement,
    MediaRef,
    MentionDeletedPayload,
    MentionPayload,
    QueryMatch,
    Thread,
    envelope_for,
)
from shared.outbox import OutgoingEvent, add_events
from shared.topics import MENTIONS

LanguageDetector = Callable[[str], str | None]


@dataclass(frozen=True)
class SourceContext:
    id: uuid.UUID
    tenant_id: str
    brand_id: str | None
    match_mode: str  # 'brand': everything belongs to the brand; 'queries': only query matches


@dataclass
class IngestOutcome:
    received: int = 0  # distinct items in the input
    new_items: int = 0
    changed_items: int = 0
    new_matches: int = 0
    events: int = 0
    newest_created_at: datetime | None = None
    mention_ids: list[uuid.UUID] = field(default_factory=list)


def content_hash(m: FetchedMention) -> str:
    """What makes an item 'changed': its text, its edit time and whether it was deleted.
    Engagement counts change constantly and are not edits."""
    basis = json.dumps(
        [m.text, m.edited_at.isoformat() if m.edited_at else None, m.deleted, m.kind],
        ensure_ascii=False,
    )
    return hashlib.sha256(basis.encode()).hexdigest()


def _author_json(m: FetchedMention) -> dict[str, Any]:
    a = m.author
    return {
        "id": a.id,
        "handle": a.handle,
        "display_name": a.display_name,
        "followers": a.followers,
        "verified": a.verified,
    }


def _item_row(
    m: FetchedMention,
    item_id: uuid.UUID,
    source_id: uuid.UUID,
    language: str | None,
    digest: str,
    raw_retention: timedelta,
    now: datetime,
) -> dict[str, Any]:
    engagement = m.engagement
    return {
        "id": item_id,
        "network": m.network,
        "external_id": m.external_id,
        "kind": m.kind,
        "text": m.text,
        "url": m.url,
        "language": language,
        "created_at": m.created_at,
        "edited_at": m.edited_at,
        "deleted_at": now if m.deleted else None,
        "author": _author_json(m),
        "root_external_id": m.root_external_id,
        "parent_external_id": m.parent_external_id,
        "media": [{"type": x.type, "url": x.url} for x in m.media],
        "engagement": (
            None
            if engagement is None
            else {
                "likes": engagement.likes,
                "reposts": engagement.reposts,
                "replies": engagement.replies,
                "views": engagement.views,
            }
        ),
        "content_hash": digest,
        "first_source_id": source_id,
        "raw": m.raw or None,
        "raw_expires_at": now + raw_retention if m.raw else None,
    }


def _payload(
    row: dict[str, Any],
    *,
    mention_id: uuid.UUID,
    source_id: uuid.UUID,
    matches: Sequence[dict[str, Any]],
    replies_to_post_id: uuid.UUID | None,
) -> MentionPayload:
    author = row["author"]
    engagement = row["engagement"]
    return MentionPayload(
        mention_id=mention_id,
        item_id=row["id"],
        source_id=source_id,
        network=row["network"],
        external_id=row["external_id"],
        kind="comment" if replies_to_post_id and row["kind"] != "direct_message" else row["kind"],
        url=row["url"],
        text=row["text"],
        language=row["language"],
        created_at=row["created_at"],
        edited_at=row["edited_at"],
        author=Author(
            id=author["id"],
            handle=author["handle"],
            display_name=author.get("display_name"),
            followers=author.get("followers"),
            verified=author.get("verified"),
        ),
        thread=Thread(
            root_external_id=row["root_external_id"],
            parent_external_id=row["parent_external_id"],
        ),
        replies_to_post_id=replies_to_post_id,
        media=[MediaRef(type=x["type"], url=x["url"]) for x in row["media"]],
        engagement=Engagement(**engagement) if engagement else None,
        matches=[QueryMatch.model_validate(x) for x in matches],
    )


def _event(tenant_id: str, brand_id: str, root: str, event: dict[str, Any]) -> OutgoingEvent:
    return OutgoingEvent(topic=MENTIONS.name, key=f"{tenant_id}:{brand_id}:{root}", event=event)


async def ingest_items(
    conn: Connection,
    source: SourceContext,
    fetched: Sequence[FetchedMention],
    *,
    queries: QueryIndex,
    detect_language: LanguageDetector,
    raw_retention: timedelta = timedelta(days=90),
) -> IngestOutcome:
    outcome = IngestOutcome()
    now = datetime.now(UTC)
    # The last state of each item in this batch wins (a page may hold an item and its edit).
    latest: dict[tuple[str, str], FetchedMention] = {}
    for m in fetched:
        latest[(m.network, m.external_id)] = m
    outcome.received = len(latest)
    if not latest:
        return outcome
    await queries.refresh(conn)

    existing = await repository.existing_items(conn, list(latest))
    fresh_rows: list[dict[str, Any]] = []
    changed_rows: list[dict[str, Any]] = []
    rows_by_key: dict[tuple[str, str], dict[str, Any]] = {}
    for key, m in latest.items():
        digest = content_hash(m)
        language = m.language or (detect_language(m.text) if m.text else None)
        stored = existing.get(key)
        item_id = stored.id if stored else uuid.uuid4()
        row = _item_row(m, item_id, source.id, language, digest, raw_retention, now)
        rows_by_key[key] = row
        if stored is None:
            fresh_rows.append(row)
        elif stored.content_hash != digest:
            changed_rows.append(row)
    inserted = await repository.insert_items(conn, fresh_rows)
    lost_race = [r for r in fresh_rows if r["id"] not in inserted]
    if lost_race:
        # Another replica stored these items between our read and our insert: use its ids.
        again = await repository.existing_items(
            conn, [(r["network"], r["external_id"]) for r in lost_race]
        )
        for r in lost_race:
            r["id"] = again[(r["network"], r["external_id"])].id
    await repository.update_items(conn, changed_rows)
    outcome.new_items = len(inserted)
    outcome.changed_items = len(changed_rows)

    events: list[OutgoingEvent] = []
    # Edits and deletions reach every brand that already has the item.
    if changed_rows:
        by_item = {r["id"]: r for r in changed_rows}
        for match in await repository.matches_of_items(conn, list(by_item)):
            row = by_item[match["item_id"]]
            if row["deleted_at"] is not None:
                deleted = MentionDeletedPayload(
                    mention_id=match["mention_id"],
                    network=row["network"],
                    external_id=row["external_id"],
                    deleted_at=row["deleted_at"],
                )
                event = envelope_for(
                    deleted,
                    tenant_id=match["tenant_id"],
                    brand_id=match["brand_id"],
                    occurred_at=row["deleted_at"],
                )
            else:
                payload = _payload(
                    row,
                    mention_id=match["mention_id"],
                    source_id=match["source_id"],
                    matches=match["matches"],
                    replies_to_post_id=None,
                )
                event = envelope_for(
                    payload,
                    event_type="mention.updated",
                    tenant_id=match["tenant_id"],
                    brand_id=match["brand_id"],
                    occurred_at=row["edited_at"] or now,
                )
            events.append(
                _event(match["tenant_id"], match["brand_id"], row["root_external_id"], event)
            )

    # Which brands of the source's tenant each live item belongs to.
    live = [r for r in rows_by_key.values() if r["deleted_at"] is None]
    thread_ids = [x for r in live for x in (r["root_external_id"], r["parent_external_id"]) if x]
    ours: dict[str, dict[str, Any]] = {}
    for network in {r["network"] for r in live}:
        ours.update(await repository.tracked_posts_for(conn, source.tenant_id, network, thread_ids))
    match_rows: list[dict[str, Any]] = []
    planned: dict[uuid.UUID, tuple[dict[str, Any], uuid.UUID | None, list[dict[str, Any]]]] = {}
    for row in live:
        brands: dict[str, list[dict[str, Any]]] = {}
        post = ours.get(row["root_external_id"]) or ours.get(row["parent_external_id"] or "")
        if post is not None:
            brands.setdefault(post["brand_id"], [])
        if source.match_mode == "brand" and source.brand_id is not None:
            brands.setdefault(source.brand_id, [])
        hits = queries.match(
            source.tenant_id,
            MatchInput(
                text=row["text"],
                language=row["language"],
                network=row["network"],
                author_handle=row["author"]["handle"],
                url=row["url"],
            ),
        )
        for hit in hits:
            brands.setdefault(hit.brand_id, []).append(
                {
                    "query_id": str(hit.id),
                    "version": hit.version,
                    "role": hit.role,
                    "competitor": hit.competitor,
                }
            )
        for brand_id, matches in brands.items():
            mention_id = uuid.uuid4()
            replies_to = post["post_id"] if post and post["brand_id"] == brand_id else None
            planned[mention_id] = (row, replies_to, matches)
            match_rows.append(
                {
                    "item_id": row["id"],
                    "tenant_id": source.tenant_id,
                    "brand_id": brand_id,
                    "mention_id": mention_id,
                    "source_id": source.id,
                    "matches": matches,
                    "created_at": row["created_at"],
                }
            )
    created = await repository.insert_matches(conn, match_rows)
    for match in match_rows:
        if match["mention_id"] not in created:
            continue  # the brand already has this item (a redelivery, another source)
        row, replies_to, matches = planned[match["mention_id"]]
        payload = _payload(
            row,
            mention_id=match["mention_id"],
            source_id=source.id,
            matches=matches,
            replies_to_post_id=replies_to,
        )
        event = envelope_for(
            payload,
            tenant_id=source.tenant_id,
            brand_id=match["brand_id"],
            occurred_at=row["created_at"],
        )
        events.append(_event(source.tenant_id, match["brand_id"], row["root_external_id"], event))
        outcome.mention_ids.append(match["mention_id"])
        created_at: datetime = row["created_at"]
        if outcome.newest_created_at is None or created_at > outcome.newest_created_at:
            outcome.newest_created_at = created_at
    outcome.new_matches = len(created)
    await add_events(conn, events)
    outcome.events = len(events)
    return outcome
