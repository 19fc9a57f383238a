"""Mastodon read half: a brand account's mentions (notifications), a hashtag timeline, or a status
search, pulled one page per call after a persisted cursor `{"min_id": "<id>"}`.

Paging. Mastodon's lists are newest first and paged by id
(https://docs.joinmastodon.org/api/guidelines/#pagination): `max_id` pages back in time,
`since_id` returns the *newest* page above an id (so when more than a page of new items exists,
those in between would be skipped), and `min_id` returns the page *immediately* above an id. So the
connector always asks for `min_id=<cursor>`: a page is the oldest `page_limit` items newer than the
cursor, the next cursor is the newest id of that page (the id the `Link: rel="prev"` URL carries,
which is used when no item id can be read), and `more=True` when the page came back full, so the
next pull continues right above it. No item is skipped and none is fetched twice, however many
arrive between pulls.

The first pull (empty cursor) reads only the newest page, as a bounded backfill, and anchors the
cursor there (`"0"` when the listing is empty, so what arrives next is read from the start); a
source that wants the whole history starts with `{"min_id": "0"}`. Caveat: statuses from other
servers get ids from their own `created_at`, so in hashtag and search modes one that federates
late can land below the cursor; notifications are local and strictly ordered.

Thread roots come from the page alone (no request per status): a reply whose parent is in the
same page takes that parent's root, else its `in_reply_to_id` stands in for the root.
"""

from __future__ import annotations

import re
from collections.abc import Iterable
from datetime import datetime
from typing import Any, ClassVar, Literal
from urllib.parse import parse_qs, quote, urlsplit

import httpx
from pydantic import Field, field_validator, model_validator

from services.ingest.connectors.base import (
    AuthFailed,
    BadConfig,
    Engagement,
    FetchedAuthor,
    FetchedMention,
    Media,
    MentionKind,
    PullResult,
    RateLimit,
    SkippedItem,
    SourceConfig,
    TransientError,
    html_to_text,
    parse_time,
    raise_for_status,
)

NETWORK = "mastodon"
TIMELINE_MAX_LIMIT = 40  # tag timeline and search take at most 40 per page
NOTIFICATIONS_MAX_LIMIT = 80
_MEDIA_TYPES: dict[str, Literal["image", "video", "gif", "audio", "other"]] = {
    "image": "image",
    "gifv": "gif",
    "video": "video",
    "audio": "audio",
}
_PREV_LINK = re.compile(r'<([^>]+)>\s*;\s*rel="prev"')


class MastodonConfig(SourceConfig):
    """Which server and what to read: the token owner's mentions, a hashtag, or a search."""

    api_base: str = "https://mastodon.social"
    mode: Literal["notifications", "hashtag", "search"]
    hashtag: str | None = None
    query: str | None = None
    page_limit: int = Field(default=40, ge=1, le=NOTIFICATIONS_MAX_LIMIT)

    @field_validator("api_base")
    @classmethod
    def _api_base_is_http(cls, value: str) -> str:
        if not value.startswith(("https://", "http://")):
            raise ValueError("api_base must be an http(s) URL, e.g. https://mastodon.social")
        return value.rstrip("/")

    @field_validator("hashtag")
    @classmethod
    def _hashtag_is_one_word(cls, value: str | None) -> str | None:
        if value is None:
            return None
        tag = value.strip().removeprefix("#")
        if not tag or any(c.isspace() for c in tag):
            raise ValueError("hashtag must be one word, with or without the leading #")
        return tag

    @model_validator(mode="after")
    def _mode_has_its_field(self) -> MastodonConfig:
        if self.mode == "hashtag" and not self.hashtag:
            raise ValueError("mode 'hashtag' needs `hashtag`")
        if self.mode == "search" and not (self.query and self.query.strip()):
            raise ValueError("mode 'search' needs `query`")
        if self.mode != "notifications" and self.page_limit > TIMELINE_MAX_LIMIT:
            raise ValueError(f"page_limit is at most {TIMELINE_MAX_LIMIT} in mode {self.mode!r}")
        return self


# --- reading the answer -------------------------------------------------------------------------


def _rate_limit(response: httpx.Response) -> RateLimit | None:
    """`X-RateLimit-*`; Mastodon sends the reset as an ISO 8601 timestamp."""

    def number(name: str) -> int | None:
        value = response.headers.get(name, "")
        return int(value) if value.isdigit() else None

    reset_at: datetime | None = None
    reset = response.headers.get("x-ratelimit-reset", "")
    try:
        # ISO 8601 from Mastodon; a Unix time from servers that imitate other APIs.
        if reset.replace(".", "", 1).isdigit():
            reset_at = parse_time(float(reset))
        elif reset:
            reset_at = parse_time(reset)
    except (ValueError, OverflowError, OSError):
        reset_at = None
    limit, remaining = number("x-ratelimit-limit"), number("x-ratelimit-remaining")
    if limit is None and remaining is None and reset_at is None:
        return None
    return RateLimit(limit=limit, remaining=remaining, reset_at=reset_at)


def _id_order(value: str) -> tuple[int, str]:
    # Ids are decimal strings of growing length; compare them as numbers without parsing.
    return (len(value), value)


def _item_id(item: Any) -> str | None:
    value = item.get("id") if isinstance(item, dict) else None
    if isinstance(value, int) and not isinstance(value, bool):
        value = str(value)
    return value if isinstance(value, str) and value.isdigit() else None


def _prev_link_min_id(response: httpx.Response) -> str | None:
    match = _PREV_LINK.search(response.headers.get("link", ""))
    if match is None:
        return None
    values = parse_qs(urlsplit(match.group(1)).query).get("min_id")
    return values[0] if values and values[0].isdigit() else None


def _string(mapping: dict[str, Any], key: str) -> str:
    value = mapping.get(key)
    if not isinstance(value, str) or not value:
        raise ValueError(f"no {key}")
    return value


def _optional_string(mapping: dict[str, Any], key: str) -> str | None:
    value = mapping.get(key)
    return value if isinstance(value, str) and value else None


def _count(mapping: dict[str, Any], key: str) -> int | None:
    value = mapping.get(key)
    return value if isinstance(value, int) and not isinstance(value, bool) else None


def _media(attachments: Any) -> tuple[Media, ...]:
    found: list[Media] = []
    for attachment in attachments if isinstance(attachments, list) else []:
        if not isinstance(attachment, dict):
            continue
        url = (
            _optional_string(attachment, "url")
            or _optional_string(attachment, "remote_url")
            or _optional_string(attachment, "preview_url")
        )
        if url is not None:
            found.append(Media(type=_MEDIA_TYPES.get(attachment.get("type", ""), "other"), url=url))
    return tuple(found)


def _author(account: Any, server: str) -> FetchedAuthor:
    if not isinstance(account, dict):
        raise ValueError("no account")
    acct = _optional_string(account, "acct") or _string(account, "username")
    # Local accounts come without a domain; the full handle is what people see and search for.
    handle = acct if "@" in acct else f"{acct}@{server}"
    return FetchedAuthor(
        id=_string(account, "id"),
        handle=f"@{handle}",
        display_name=_optional_string(account, "display_name"),
        followers=_count(account, "followers_count"),
    )


def _thread_root(status_id: str, parent_id: str | None, parents: dict[str, str | None]) -> str:
    """The furthest ancestor this page knows of (no extra request per status)."""
    if parent_id is None:
        return status_id
    root, seen = parent_id, {status_id}
    while root not in seen:
        seen.add(root)
        grandparent = parents.get(root)
        if grandparent is None:
            break
        root = grandparent
    return root


def mention_from_status(
    status: Any,
    kind_hint: MentionKind | None,
    *,
    server: str,
    parents: dict[str, str | None] | None = None,
    raw: dict[str, Any] | None = None,
) -> FetchedMention:
    """A `FetchedMention` from Mastodon's Status entity; ValueError if it lacks what one needs."""
    if not isinstance(status, dict):
        raise ValueError("status is not an object")
    status_id = _item_id(status)
    if status_id is None:
        raise ValueError("no id")
    author = _author(status.get("account"), server)
    created_at = parse_time(_string(status, "created_at"))
    content = status.get("content")
    if not isinstance(content, str):
        raise ValueError("no content")
    text = html_to_text(content)
    spoiler = _optional_string(status, "spoiler_text")
    if spoiler:  # the content warning often says what the status is about
        text = f"{spoiler}\n{text}" if text else spoiler
    parent_id = _optional_string(status, "in_reply_to_id")
    kind: MentionKind = kind_hint or ("reply" if parent_id else "post")
    edited = _optional_string(status, "edited_at")
    return FetchedMention(
        network=NETWORK,
        external_id=status_id,
        kind=kind,
        text=text,
        created_at=created_at,
        author=author,
        root_external_id=_thread_root(status_id, parent_id, parents or {}),
        parent_external_id=parent_id,
        url=_optional_string(status, "url") or _optional_string(status, "uri"),
        language=_optional_string(status, "language"),
        media=_media(status.get("media_attachments")),
        engagement=Engagement(
            likes=_count(status, "favourites_count"),
            reposts=_count(status, "reblogs_count"),
            replies=_count(status, "replies_count"),
        ),
        edited_at=parse_time(edited) if edited else None,
        raw=raw if raw is not None else status,
    )


# --- the connector ------------------------------------------------------------------------------


class MastodonConnector:
    """Pulls a Mastodon source; see the module docstring for how the cursor works."""

    network: ClassVar[str] = NETWORK
    config_model: ClassVar[type[SourceConfig]] = MastodonConfig

    async def pull(
        self,
        client: httpx.AsyncClient,
        config: Any,
        credentials: dict[str, Any],
        cursor: dict[str, Any],
    ) -> PullResult:
        if not isinstance(config, MastodonConfig):
            raise BadConfig(f"mastodon: expected a MastodonConfig, got {type(config).__name__}")
        token = credentials.get("access_token")
        if not isinstance(token, str) or not token:
            if config.mode != "hashtag":  # tag timelines are public; the rest need a user
                raise AuthFailed("mastodon: the source has no access_token")
            token = None
        min_id = cursor.get("min_id")
        start = str(min_id) if isinstance(min_id, str | int) and str(min_id).isdigit() else None
        url, params = self._request(config, start)
        headers = {"Authorization": f"Bearer {token}"} if token else {}
        try:
            response = await client.get(url, params=tuple(params), headers=headers)
        except httpx.TransportError as exc:
            raise TransientError(f"mastodon: {type(exc).__name__} from {url}") from exc
        raise_for_status(response, NETWORK)
        items = self._items(response, config)
        mentions, skipped = self._normalise(items, config)
        newest = max((i for i in map(_item_id, items) if i), key=_id_order, default=None)
        newest = newest or _prev_link_min_id(response)
        if newest is not None and (start is None or _id_order(newest) > _id_order(start)):
            next_cursor = {"min_id": newest}
        else:
            next_cursor = {"min_id": start or "0"}
        return PullResult(
            mentions=mentions,
            cursor=next_cursor,
            # The first pull is a bounded backfill: older pages are history, not news.
            more=start is not None and len(items) >= config.page_limit and newest is not None,
            rate_limit=_rate_limit(response),
            skipped=skipped,
        )

    async def replies(
        self,
        client: httpx.AsyncClient,
        config: Any,
        credentials: dict[str, Any],
        post_external_id: str,
        cursor: dict[str, Any],
    ) -> PullResult:
        """Replies to one of our posts (its context's descendants) newer than the cursor."""
        if not isinstance(config, MastodonConfig):
            raise BadConfig(f"mastodon: expected a MastodonConfig, got {type(config).__name__}")
        token = credentials.get("access_token")
        headers = {"Authorization": f"Bearer {token}"} if isinstance(token, str) and token else {}
        url = f"{config.api_base}/api/v1/statuses/{quote(post_external_id, safe='')}/context"
        try:
            response = await client.get(url, headers=headers)
        except httpx.TransportError as exc:
            raise TransientError(f"mastodon: {type(exc).__name__} from {url}") from exc
        raise_for_status(response, NETWORK)
        try:
            body = response.json()
        except ValueError:
            raise BadConfig(f"mastodon: {url} answered with something that is not JSON") from None
        descendants = body.get("descendants") if isinstance(body, dict) else None
        if not isinstance(descendants, list):
            raise BadConfig(f"mastodon: unexpected context shape from {config.api_base}")
        seen = str(cursor.get("max_seen", "0"))
        fresh = [d for d in descendants if (i := _item_id(d)) and _id_order(i) > _id_order(seen)]
        parents = dict(_parent_links(descendants))
        parents[post_external_id] = None  # our post is the thread's root
        server = urlsplit(config.api_base).netloc
        mentions: list[FetchedMention] = []
        skipped: list[SkippedItem] = []
        for status in fresh:
            try:
                mentions.append(mention_from_status(status, None, server=server, parents=parents))
            except (ValueError, TypeError) as exc:
                skipped.append(SkippedItem(f"malformed status: {exc}", status))
        newest = max((i for i in map(_item_id, fresh) if i), key=_id_order, default=seen)
        return PullResult(
            mentions=sorted(mentions, key=lambda m: _id_order(m.external_id)),
            cursor={"max_seen": newest},
            rate_limit=_rate_limit(response),
            skipped=skipped,
        )

    def backfill_cursor(self, since: datetime) -> dict[str, Any]:
        """A cursor that re-reads from `since`: Mastodon ids are snowflakes whose top bits are
        the creation time in milliseconds."""
        return {"min_id": str(int(since.timestamp() * 1000) << 16)}

    @staticmethod
    def _request(config: MastodonConfig, min_id: str | None) -> tuple[str, list[tuple[str, str]]]:
        params = [("limit", str(config.page_limit))]
        if min_id is not None:
            params.append(("min_id", min_id))
        if config.mode == "notifications":
            return f"{config.api_base}/api/v1/notifications", [*params, ("types[]", "mention")]
        if config.mode == "hashtag":
            tag = quote(config.hashtag or "", safe="")
            return f"{config.api_base}/api/v1/timelines/tag/{tag}", params
        query = (config.query or "").strip()
        return f"{config.api_base}/api/v2/search", [*params, ("q", query), ("type", "statuses")]

    @staticmethod
    def _items(response: httpx.Response, config: MastodonConfig) -> list[Any]:
        try:
            body = response.json()
        except ValueError:
            raise BadConfig(
                f"mastodon: {config.api_base} answered with something that is not JSON; "
                "is api_base a Mastodon server?"
            ) from None
        items = body.get("statuses") if isinstance(body, dict) else body
        if not isinstance(items, list):
            raise BadConfig(f"mastodon: unexpected answer shape from {config.api_base}")
        return items

    @staticmethod
    def _normalise(
        items: list[Any], config: MastodonConfig
    ) -> tuple[list[FetchedMention], list[SkippedItem]]:
        server = urlsplit(config.api_base).netloc
        pairs: list[tuple[Any, Any]] = []  # (status, raw item)
        skipped: list[SkippedItem] = []
        for item in items:
            if config.mode != "notifications":
                pairs.append((item, item))
            elif not isinstance(item, dict):
                skipped.append(SkippedItem("notification is not an object", item))
            elif item.get("type") == "mention":
                pairs.append((item.get("status"), item))
            # Other notification types (favourites, follows…) are not conversation: ignored.
        parents = dict(_parent_links(status for status, _ in pairs))
        mentions: list[FetchedMention] = []
        kind_hint: MentionKind | None = "mention" if config.mode == "notifications" else None
        for status, raw in pairs:
            try:
                mention = mention_from_status(
                    status, kind_hint, server=server, parents=parents, raw=raw
                )
            except (ValueError, TypeError) as exc:
                skipped.append(SkippedItem(f"malformed status: {exc}", raw))
                continue
            mentions.append(mention)
        # Oldest first, so a reply never precedes its parent downstream.
        mentions.sort(key=lambda m: _id_order(m.external_id))
        return mentions, skipped


def _parent_links(statuses: Iterable[Any]) -> Iterable[tuple[str, str | None]]:
    for status in statuses:
        status_id = _item_id(status)
        if status_id is not None:
            parent = status.get("in_reply_to_id")
            yield status_id, parent if isinstance(parent, str) and parent else None
