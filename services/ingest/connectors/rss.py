"""RSS/Atom read half: news sites, blogs and forums heard through their feeds, fetched with a
conditional GET (ETag / Last-Modified) and parsed by feedparser.

A feed is a window of recent entries, not a log, so the cursor keeps the validators of the last
answer plus the ids of recent entries (`seen`), and an entry is new when its id is not among them.
"""

from __future__ import annotations

import asyncio
import hashlib
import io
import time
from datetime import UTC, datetime
from typing import Any, ClassVar, Literal
from urllib.parse import urlsplit

import feedparser
import httpx
from pydantic import field_validator

from services.ingest.connectors.base import (
    BadConfig,
    Engagement,
    FetchedAuthor,
    FetchedMention,
    Media,
    PullResult,
    SkippedItem,
    SourceConfig,
    TransientError,
    html_to_text,
    raise_for_status,
)

NETWORK = "rss"
SEEN_MAX = 500  # ids remembered; a feed that lists more keeps all of its own
MAX_FEED_BYTES = 10 * 1024 * 1024
ACCEPT = (
    "application/rss+xml, application/atom+xml, application/feed+json;q=0.9, "
    "application/xml;q=0.9, text/xml;q=0.9, */*;q=0.1"
)
MediaType = Literal["image", "video", "gif", "audio", "link", "other"]
MEDIA_TYPES: dict[str, MediaType] = {
    "image": "image",
    "video": "video",
    "audio": "audio",
}


class RssConfig(SourceConfig):
    """One feed. `kind` says what the site is (news, a blog, a forum) for filtering and reports;
    every entry is a `post` whatever the kind."""

    feed_url: str
    kind: Literal["news", "blog", "forum"] = "news"

    @field_validator("feed_url")
    @classmethod
    def _feed_url_is_http(cls, value: str) -> str:
        parts = urlsplit(value)
        if parts.scheme not in ("http", "https") or not parts.netloc:
            raise ValueError("feed_url must be an http(s) URL")
        return value


def _plain(detail: Any) -> str:
    """Text of a feedparser text construct: markup dropped unless it was declared plain."""
    if not detail or not isinstance(detail.get("value"), str):
        return ""
    value: str = detail["value"]
    if detail.get("type") == "text/plain":
        return value.strip()
    return html_to_text(value)


def _when(value: Any) -> datetime | None:
    # feedparser's *_parsed values are struct_time already converted to UTC.
    if isinstance(value, time.struct_time):
        return datetime(*value[:6], tzinfo=UTC)
    return None


def _entry_id(entry: Any, title: str) -> str:
    for key in ("id", "link"):
        value = entry.get(key)
        if isinstance(value, str) and value.strip():
            return value.strip()
    if not title:
        raise ValueError("entry has no id/guid, link or title to tell it apart")
    published = entry.get("published") or dict.get(entry, "updated") or ""
    digest = hashlib.sha256(f"{title}\n{published}".encode()).hexdigest()
    return f"sha256:{digest[:32]}"


def _author(entry: Any, feed: Any, feed_url: str) -> FetchedAuthor:
    # RFC 4287 4.2.1: an entry without an author has the feed's author.
    for holder in (entry, feed):
        detail = holder.get("author_detail") or {}
        name = detail.get("name") or holder.get("author")
        if isinstance(name, str) and name.strip():
            ident = detail.get("href") or detail.get("email") or name.strip()
            return FetchedAuthor(id=str(ident), handle=name.strip())
    site = feed.get("link") or feed_url
    title = feed.get("title")
    handle = title.strip() if isinstance(title, str) and title.strip() else urlsplit(site).netloc
    return FetchedAuthor(id=str(site), handle=handle, display_name=None)


def _language(entry: Any, body: Any, feed: Any) -> str | None:
    for detail in (body, entry.get("title_detail")):
        if detail and isinstance(detail.get("language"), str) and detail["language"]:
            return str(detail["language"])
    language = feed.get("language")
    return language if isinstance(language, str) and language else None


def _media(entry: Any) -> tuple[Media, ...]:
    found: list[Media] = []
    for item in entry.get("enclosures") or ():
        kind = MEDIA_TYPES.get(str(item.get("type", "")).split("/")[0], "other")
        if isinstance(item.get("href"), str):
            found.append(Media(kind, item["href"]))
    for item in entry.get("media_content") or ():
        medium = item.get("medium") or str(item.get("type", "")).split("/")[0]
        if isinstance(item.get("url"), str):
            found.append(Media(MEDIA_TYPES.get(str(medium), "other"), item["url"]))
    return tuple(dict.fromkeys(found))  # a media:content often repeats the enclosure


def _jsonable(value: Any) -> Any:
    """feedparser's entry as plain JSON (its dates are struct_time)."""
    if isinstance(value, time.struct_time):
        return datetime(*value[:6], tzinfo=UTC).isoformat()
    if isinstance(value, dict):
        return {str(k): _jsonable(v) for k, v in value.items()}
    if isinstance(value, list | tuple):
        return [_jsonable(v) for v in value]
    if value is None or isinstance(value, str | int | float | bool):
        return value
    return str(value)


def mention_from_entry(entry: Any, feed: Any, feed_url: str) -> FetchedMention:
    """A FetchedMention from one feedparser entry; ValueError if it cannot be one."""
    title = _plain(entry.get("title_detail"))
    contents = [c for c in entry.get("content") or () if c.get("value")]
    body = contents[0] if contents else entry.get("summary_detail")
    text = "\n\n".join(part for part in (title, _plain(body)) if part)
    external_id = _entry_id(entry, title)
    if not text:
        raise ValueError("entry has neither title nor text")
    published = _when(entry.get("published_parsed"))
    # Read past FeedParserDict, which answers `updated_parsed` with the published date (and a
    # DeprecationWarning) when the entry has no update date of its own.
    updated = _when(dict.get(entry, "updated_parsed"))
    created_at = published or updated or datetime.now(UTC)
    comments = entry.get("slash_comments")
    link = entry.get("link")
    return FetchedMention(
        network=NETWORK,
        external_id=external_id,
        kind="post",
        text=text,
        created_at=created_at,
        author=_author(entry, feed, feed_url),
        root_external_id=external_id,
        url=link if isinstance(link, str) and link else None,
        language=_language(entry, body, feed),
        media=_media(entry),
        engagement=(
            Engagement(replies=int(comments))
            if isinstance(comments, str) and comments.strip().isdigit()
            else None
        ),
        edited_at=updated if published and updated and updated > published else None,
        raw=_jsonable(entry),
    )


class RssConnector:
    """Pulls a feed's entries that were not seen before."""

    network: ClassVar[str] = NETWORK
    config_model: ClassVar[type[SourceConfig]] = RssConfig

    def backfill_cursor(self, since: datetime) -> dict[str, Any]:
        """Forget what was seen so the whole feed is read again; stored items are not repeated
        (ingest keeps one item per entry id) and a feed holds no older history to fetch."""
        return {}

    async def pull(
        self,
        client: httpx.AsyncClient,
        config: Any,
        credentials: dict[str, Any],
        cursor: dict[str, Any],
    ) -> PullResult:
        if not isinstance(config, RssConfig):
            config = RssConfig.model_validate(config)
        response, content = await self._fetch(client, config.feed_url, cursor)
        if response.status_code == 304:
            return PullResult(mentions=[], cursor=dict(cursor))
        raise_for_status(response, NETWORK)

        # Parsing bytes from a file object: given bytes, feedparser would try them as a path.
        headers = {
            "content-type": response.headers.get("content-type", ""),
            "content-location": str(response.url),
            **(
                {"content-language": response.headers["content-language"]}
                if "content-language" in response.headers
                else {}
            ),
        }
        parsed = await asyncio.to_thread(
            feedparser.parse, io.BytesIO(content), response_headers=headers
        )
        if not parsed.get("version") and not parsed.get("entries"):
            reason = parsed.get("bozo_exception") or "no rss, feed or RDF root element"
            raise BadConfig(
                f"{NETWORK}: {config.feed_url} is not an RSS or Atom feed "
                f"(content-type {headers['content-type'] or 'none'!r}: {reason})"
            )

        seen = [str(i) for i in cursor.get("seen") or ()]
        known = set(seen)
        mentions: list[FetchedMention] = []
        skipped: list[SkippedItem] = []
        current: list[str] = []
        for entry in parsed.entries:
            try:
                mention = mention_from_entry(entry, parsed.feed, config.feed_url)
            except (ValueError, TypeError, AttributeError, KeyError) as exc:
                skipped.append(SkippedItem(f"malformed entry: {exc}", _jsonable(entry)))
                continue
            current.append(mention.external_id)
            if mention.external_id not in known:
                known.add(mention.external_id)
                mentions.append(mention)

        remembered = list(dict.fromkeys(current + seen))[: max(SEEN_MAX, len(current))]
        new_cursor: dict[str, Any] = {"seen": remembered}
        for key, header in (("etag", "etag"), ("last_modified", "last-modified")):
            if header in response.headers:
                new_cursor[key] = response.headers[header]
        return PullResult(mentions=mentions, cursor=new_cursor, skipped=skipped)

    async def _fetch(
        self, client: httpx.AsyncClient, url: str, cursor: dict[str, Any]
    ) -> tuple[httpx.Response, bytes]:
        headers = {"Accept": ACCEPT}
        if cursor.get("etag"):
            headers["If-None-Match"] = str(cursor["etag"])
        if cursor.get("last_modified"):
            headers["If-Modified-Since"] = str(cursor["last_modified"])
        try:
            async with client.stream(
                "GET", url, headers=headers, follow_redirects=True
            ) as response:
                content = bytearray()
                if response.status_code == 200:
                    async for chunk in response.aiter_bytes():
                        content += chunk
                        if len(content) > MAX_FEED_BYTES:
                            raise BadConfig(
                                f"{NETWORK}: {url} is larger than {MAX_FEED_BYTES} bytes"
                            )
                return response, bytes(content)
        except httpx.TransportError as exc:
            raise TransientError(f"{NETWORK}: {url}: {exc!r}") from exc
