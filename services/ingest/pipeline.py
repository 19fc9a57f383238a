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
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from typing import Any

import orjson

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
    linked: int = 0  # mentions of replies linked to our post after they were received
    newest_created_at: datetime | None = None
    mention_ids: list[uuid.UUID] = field(default_factory=list)


def content_hash(m: FetchedMention, kind: str | None = None) -> str:
    """What makes an item 'changed': its text, its edit time and whether it was deleted.
    Engagement counts change constantly and are not edits. `kind` is the stored item's: the same
    status is a `mention` in the brand's notifications and a `reply` in its post's thread, and
    hearing it by the other route is not an edit."""
    parts = [m.text, m.edited_at.isoformat() if m.edited_at else None, m.deleted, kind or m.kind]
    try:
        # Byte for byte what `json.dumps(parts, ensure_ascii=False)` writes (stored hashes stay
        # valid), at a fraction of its cost: orjson escapes each value the same way.
        basis = b"[" + b", ".join(orjson.dumps(p) for p in parts) + b"]"
    except orjson.JSONEncodeError:  # text orjson refuses (a lone surrogate): the original way
        basis = json.dumps(parts, ensure_ascii=False).encode()
    return hashlib.sha256(basis).hexdigest()


def mention_kind(item_kind: str, replies_to_post_id: uuid.UUID | None) -> str:
    """What a brand sees: a reply to one of its published posts is a comment of that post."""
    if replies_to_post_id is not None and item_kind != "direct_message":
        return "comment"
    return item_kind


def reply_target(
    thread_ids: Sequence[str | None], ours: Mapping[str, dict[str, Any]]
) -> dict[str, Any] | None:
    """The tracked post (of `ours`, by external id) an item replies to: the first of its thread
    ids (roots before parents) that is one of our posts."""
    for external_id in thread_ids:
        if external_id is not None and external_id in ours:
            return ours[external_id]
    return None


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
        kind=mention_kind(row["kind"], replies_to_post_id),
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


def _updated(
    row: dict[str, Any], match: dict[str, Any], occurred_at: datetime, causation: uuid.UUID | None
) -> OutgoingEvent:
    """`mention.updated` for one brand's match of an item: the item's whole current state, with
    the match's link to our post, so consumers that replace their copy lose nothing."""
    payload = _payload(
        row,
        mention_id=match["mention_id"],
        source_id=match["source_id"],
        matches=match["matches"],
        replies_to_post_id=match["replies_to_post_id"],
    )
    event = envelope_for(
        payload,
        event_type="mention.updated",
        tenant_id=match["tenant_id"],
        brand_id=match["brand_id"],
        occurred_at=occurred_at,
        causation_id=causation,
    )
    return _event(match["tenant_id"], match["brand_id"], row["root_external_id"], event)


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
    # Until this transaction ends, a post.published of this tenant on these networks waits for
    # it (and it for one in flight): a reply stored here is either linked here or by that event.
    await repository.lock_reply_threads(
        conn, [(source.tenant_id, network) for network, _ in latest], exclusive=False
    )

    existing = await repository.existing_items(conn, list(latest))
    fresh_rows: list[dict[str, Any]] = []
    changed_rows: list[dict[str, Any]] = []
    rows_by_key: dict[tuple[str, str], dict[str, Any]] = {}
    # Where each item sits in its thread, as stored and as this fetch tells (a post's reply list
    # knows the root that a notification or a search result does not).
    thread_ids: dict[tuple[str, str], list[str | None]] = {}
    for key, m in latest.items():
        language = m.language or (detect_language(m.text) if m.text else None)
        stored = existing.get(key)
        item_id = stored.id if stored else uuid.uuid4()
        digest = content_hash(m, stored.kind if stored else None)
        row = _item_row(m, item_id, source.id, language, digest, raw_retention, now)
        if stored is not None:
            # The item as consumers know it: its first kind, and the thread its events are keyed
            # by (a different key could let an update overtake the mention it updates).
            row["kind"] = stored.kind
            row["root_external_id"] = stored.root_external_id
            row["parent_external_id"] = stored.parent_external_id
        rows_by_key[key] = row
        thread_ids[key] = [
            row["root_external_id"],
            m.root_external_id,
            row["parent_external_id"],
            m.parent_external_id,
        ]
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

    # Which brands of the source's tenant each live item belongs to.
    live = {k: r for k, r in rows_by_key.items() if r["deleted_at"] is None}
    ours: dict[str, dict[str, Any]] = {}
    for network in {r["network"] for r in live.values()}:
        candidates = [x for k, r in live.items() if r["network"] == network for x in thread_ids[k]]
        ours.update(
            await repository.tracked_posts_for(
                conn, source.tenant_id, network, [x for x in candidates if x]
            )
        )
    match_rows: list[dict[str, Any]] = []
    planned: dict[uuid.UUID, tuple[dict[str, Any], uuid.UUID | None, list[dict[str, Any]]]] = {}
    for key, row in live.items():
        brands: dict[str, list[dict[str, Any]]] = {}
        post = reply_target(thread_ids[key], ours)
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
                    "replies_to_post_id": replies_to,
                }
            )
    created = await repository.insert_matches(conn, match_rows)
    # A brand that heard a reply before we knew the post it replies to gets the link now.
    linked = await repository.link_matches(
        conn,
        [
            (m["item_id"], m["tenant_id"], m["brand_id"], m["replies_to_post_id"])
            for m in match_rows
            if m["mention_id"] not in created and m["replies_to_post_id"] is not None
        ],
    )

    events: list[OutgoingEvent] = []
    updated: set[uuid.UUID] = set()
    # Edits and deletions reach every brand that already had the item.
    if changed_rows:
        by_item = {r["id"]: r for r in changed_rows}
        for match in await repository.matches_of_items(conn, list(by_item)):
            if match["mention_id"] in created:
                continue  # its mention.received carries the new state
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
                events.append(
                    _event(match["tenant_id"], match["brand_id"], row["root_external_id"], event)
                )
            else:
                events.append(_updated(row, match, row["edited_at"] or now, None))
            updated.add(match["mention_id"])
    rows_by_item = {r["id"]: r for r in live.values()}
    for match in linked:
        if match["mention_id"] not in updated:
            events.append(_updated(rows_by_item[match["item_id"]], match, now, None))
            updated.add(match["mention_id"])
    outcome.linked = len(linked)

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


@dataclass(frozen=True)
class PublishedPost:
    """One of our posts that went out (`post.published`), to collect the replies of."""

    event_id: uuid.UUID
    tenant_id: str
    brand_id: str
    post_id: uuid.UUID
    channel_id: uuid.UUID
    network: str
    external_id: str
    url: str | None
    published_at: datetime
    track_until: datetime


async def track_posts(conn: Connection, posts: Sequence[PublishedPost]) -> int:
    """Track our published posts, and link the replies their brands heard before (a notification
    pulled, a webhook delivered before ingest consumed `post.published`): one `mention.updated`
    per newly linked mention; linked mentions are left alone, so a redelivery emits nothing.
    Returns how many mentions were linked."""
    if not posts:
        return 0
    # First, before any row lock: items being stored for these threads commit before the
    # lookup below, and items stored after this transaction see the tracked posts.
    await repository.lock_reply_threads(
        conn, [(p.tenant_id, p.network) for p in posts], exclusive=True
    )
    for p in posts:
        await repository.track_post(
            conn,
            {
                "network": p.network,
                "external_id": p.external_id,
                "tenant_id": p.tenant_id,
                "brand_id": p.brand_id,
                "post_id": p.post_id,
                "channel_id": p.channel_id,
                "url": p.url,
                "published_at": p.published_at,
                "track_until": p.track_until,
            },
        )
    linked = await repository.link_stored_replies(
        conn,
        [
            {
                "tenant_id": p.tenant_id,
                "network": p.network,
                "external_id": p.external_id,
                "brand_id": p.brand_id,
                "post_id": p.post_id,
            }
            for p in posts
        ],
    )
    cause = {(p.tenant_id, p.post_id): p.event_id for p in posts}
    now = datetime.now(UTC)
    await add_events(
        conn,
        [
            _updated(row, row, now, cause.get((row["tenant_id"], row["replies_to_post_id"])))
            for row in linked
        ],
    )
    return len(linked)
