"""Meta webhooks connector: comments and posts on a Facebook Page's feed, comments and @mentions
of an Instagram professional account (webhook half only)."""

from __future__ import annotations

import hashlib
import hmac
import json
from collections.abc import Iterator
from datetime import datetime
from typing import Any, ClassVar

from pydantic import BaseModel, ConfigDict, Field, ValidationError

from services.ingest.connectors.base import (
    FetchedAuthor,
    FetchedMention,
    MentionKind,
    SignatureInvalid,
    SkippedItem,
    SourceConfig,
    WebhookReply,
    WebhookRequest,
    WebhookResult,
    parse_time,
)

NETWORK = "meta"
SIGNATURE_HEADER = "x-hub-signature-256"
_SIGNATURE_PREFIX = "sha256="
# Page feed items that are a post (a text post is "status", a photo post "photo"…).
_POST_ITEMS = frozenset({"post", "status", "photo", "video"})
# Instagram fields whose value is one comment.
_IG_COMMENT_FIELDS = frozenset({"comments", "live_comments"})
# Meta names no author for an Instagram @mention or some removals; the Graph API has it.
_UNKNOWN_AUTHOR = FetchedAuthor(id="unknown", handle="unknown")


class MetaConfig(SourceConfig):
    # Entries for other Pages or accounts the app is subscribed to are not this source's.
    page_id: str | None = None
    instagram_account_id: str | None = None


# --- Meta's wire format (the subset we read) ---------------------------------------------------


class _Wire(BaseModel):
    model_config = ConfigDict(extra="ignore", frozen=True, coerce_numbers_to_str=True)


class _From(_Wire):
    id: str
    name: str | None = None
    username: str | None = None


class _PostRef(_Wire):
    id: str | None = None
    permalink_url: str | None = None


class _FeedChange(_Wire):
    """A `feed` change: https://developers.facebook.com/docs/graph-api/webhooks/reference/page/#feed"""

    item: str
    verb: str
    sender: _From | None = Field(default=None, alias="from")
    post_id: str
    comment_id: str | None = None
    parent_id: str | None = None
    message: str = ""
    created_time: int | str
    post: _PostRef | None = None
    permalink_url: str | None = None


class _IgMedia(_Wire):
    id: str


class _IgComment(_Wire):
    id: str
    text: str = ""
    sender: _From = Field(alias="from")
    media: _IgMedia
    parent_id: str | None = None


class _IgMention(_Wire):
    media_id: str
    comment_id: str | None = None


# --- the connector -----------------------------------------------------------------------------


class MetaConnector:
    """Webhook half: the `hub.challenge` handshake, `X-Hub-Signature-256`, Page and Instagram
    change notifications."""

    network: ClassVar[str] = NETWORK
    config_model: ClassVar[type[SourceConfig]] = MetaConfig

    def handshake(
        self, request: WebhookRequest, config: MetaConfig, secrets: dict[str, Any]
    ) -> WebhookReply | None:
        if request.method.upper() != "GET" or "hub.mode" not in request.query:
            return None
        expected = secrets.get("verify_token")
        given = request.query.get("hub.verify_token")
        if (
            request.query.get("hub.mode") != "subscribe"
            or not isinstance(expected, str)
            or not expected
            or given is None
            or not hmac.compare_digest(given.encode(), expected.encode())
        ):
            raise SignatureInvalid("meta: verification request with a wrong hub.verify_token")
        challenge = request.query.get("hub.challenge")
        if not challenge:
            raise SignatureInvalid("meta: verification request without hub.challenge")
        return WebhookReply(200, challenge.encode(), "text/plain")

    def verify(self, request: WebhookRequest, config: MetaConfig, secrets: dict[str, Any]) -> None:
        app_secret = secrets.get("app_secret")
        if not isinstance(app_secret, str) or not app_secret:
            raise SignatureInvalid("meta: the source has no app_secret to check against")
        given = request.headers.get(SIGNATURE_HEADER, "")
        expected = (
            _SIGNATURE_PREFIX
            + hmac.new(app_secret.encode(), request.body, hashlib.sha256).hexdigest()
        )
        if not hmac.compare_digest(given.strip().encode(), expected.encode()):
            raise SignatureInvalid("meta: X-Hub-Signature-256 missing or wrong")

    def parse(self, request: WebhookRequest, config: MetaConfig) -> WebhookResult:
        try:
            body = json.loads(request.body)
        except ValueError:
            body = None
        if not isinstance(body, dict):
            return WebhookResult([], [SkippedItem("meta: body is not a JSON object")])
        platform = body.get("object")
        if platform not in ("page", "instagram"):
            return WebhookResult([])  # users, permissions, WhatsApp…: not heard here
        wanted = config.page_id if platform == "page" else config.instagram_account_id
        entries = body.get("entry")
        mentions: list[FetchedMention] = []
        skipped: list[SkippedItem] = []
        for entry in entries if isinstance(entries, list) else []:
            if not isinstance(entry, dict) or not isinstance(entry.get("id"), str | int):
                skipped.append(SkippedItem("meta: entry without an id", entry))
                continue
            if wanted is not None and str(entry["id"]) != wanted:
                continue
            for field, value in _changes(entry):
                try:
                    if platform == "page":
                        mention = _page_change(entry, field, value)
                    else:
                        mention = _instagram_change(entry, field, value)
                except (ValidationError, ValueError, TypeError) as exc:
                    reason = _first_error(exc) if isinstance(exc, ValidationError) else str(exc)
                    skipped.append(SkippedItem(f"meta: malformed {field} change: {reason}", value))
                    continue
                if mention is not None:
                    mentions.append(mention)
        return WebhookResult(mentions, skipped)


# --- normalising -------------------------------------------------------------------------------


def _changes(entry: dict[str, Any]) -> Iterator[tuple[str, Any]]:
    changes = entry.get("changes")
    # Some Instagram examples put one change's field and value on the entry itself.
    if changes is None and "field" in entry:
        changes = [{"field": entry["field"], "value": entry.get("value")}]
    for change in changes if isinstance(changes, list) else []:
        if isinstance(change, dict) and isinstance(change.get("field"), str):
            yield change["field"], change.get("value")


def _page_change(entry: dict[str, Any], field: str, value: Any) -> FetchedMention | None:
    if field != "feed" or not isinstance(value, dict):
        return None  # Messenger, ratings, Page settings…
    if value.get("item") != "comment" and value.get("item") not in _POST_ITEMS:
        return None  # reactions, likes, shares
    change = _FeedChange.model_validate(value)
    if change.verb not in ("add", "edited", "remove"):
        return None  # hide/unhide, block/unblock
    page_id = str(entry["id"])
    thread_url = (change.post.permalink_url if change.post else None) or change.permalink_url
    thread_url = thread_url or f"https://www.facebook.com/{change.post_id}"
    kind: MentionKind
    if change.item == "comment":
        if not change.comment_id:
            raise ValueError("a comment change without comment_id")
        external_id, kind = change.comment_id, "comment"
        parent: str | None = change.parent_id or change.post_id
    else:
        # A post on the Page by someone else speaks about the brand; the Page's own is its post.
        author_id = change.sender.id if change.sender else None
        external_id, parent = change.post_id, None
        kind = "post" if author_id == page_id else "mention"
    return FetchedMention(
        network="facebook",
        external_id=external_id,
        kind=kind,
        text=change.message,
        created_at=parse_time(change.created_time),
        author=_fb_author(change.sender),
        root_external_id=change.post_id,
        parent_external_id=parent,
        # The thread's address: a comment has no public address of its own in the payload.
        url=thread_url,
        edited_at=_entry_time(entry) if change.verb == "edited" else None,
        deleted=change.verb == "remove",
        raw=value,
    )


def _instagram_change(entry: dict[str, Any], field: str, value: Any) -> FetchedMention | None:
    if field in _IG_COMMENT_FIELDS:
        comment = _IgComment.model_validate(value)
        handle = comment.sender.username or comment.sender.id
        return FetchedMention(
            network="instagram",
            external_id=comment.id,
            kind="comment",
            text=comment.text,
            # Instagram sends no comment time; the notification follows the comment at once.
            created_at=_entry_time(entry),
            author=FetchedAuthor(id=comment.sender.id, handle=f"@{handle}"),
            root_external_id=comment.media.id,
            parent_external_id=comment.parent_id or comment.media.id,
            raw=value,
        )
    if field == "mentions":
        # Only ids: the text and author are for a Graph API read of mentioned_comment/_media.
        mention = _IgMention.model_validate(value)
        return FetchedMention(
            network="instagram",
            external_id=mention.comment_id or mention.media_id,
            kind="mention",
            text="",
            created_at=_entry_time(entry),
            author=_UNKNOWN_AUTHOR,
            root_external_id=mention.media_id,
            parent_external_id=mention.media_id if mention.comment_id else None,
            raw=value,
        )
    return None  # story insights, messaging…


def _fb_author(sender: _From | None) -> FetchedAuthor:
    if sender is None:
        return _UNKNOWN_AUTHOR
    # Facebook has no public usernames in webhooks: the name is the handle people recognise.
    return FetchedAuthor(id=sender.id, handle=sender.name or sender.id, display_name=sender.name)


def _entry_time(entry: dict[str, Any]) -> datetime:
    value = entry.get("time")
    if not isinstance(value, int | float) or isinstance(value, bool):
        raise ValueError("entry without a time")
    # Page and Instagram entries carry seconds; Messenger-style entries milliseconds.
    return parse_time(value / 1000 if value > 10**11 else value)


def _first_error(exc: ValidationError) -> str:
    error = exc.errors()[0]
    where = ".".join(str(p) for p in error["loc"])
    return f"{where}: {error['msg']}"
