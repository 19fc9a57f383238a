"""Bluesky (AT Protocol) read half: a brand account's mentions, replies and quotes, or a post
search, pulled over XRPC with an app-password session that is reused and refreshed, not recreated.

Both listings the connector reads are newest first with a cursor that pages back in time
(`app.bsky.notification.listNotifications`, `app.bsky.feed.searchPosts?sort=latest`). So each
pass is a *walk*: it starts at the top, remembers the newest item it met (`walk.newest`), pages
back one page per `pull` (`more=True`), and ends at the first item at or before the newest item of
the previous walk (`newest`, the high-water mark by `indexedAt`, with the URIs at exactly that
instant so ties are neither lost nor repeated). Only then does `walk.newest` become `newest`.
A backfill sets `newest` to the start time with no URIs, so the next walk reads down to it.
Items that arrive during a walk sit above its start and are picked up by the next walk, so none is
missed; a listing that shifts under an offset cursor is absorbed by skipping anything at or above
the oldest item already taken in this walk (`walk.oldest`), so none is repeated.

Replies to one of our posts come from `app.bsky.feed.getPostThread`, which does not page: the
whole reply tree is read every time (branches cut off at the depth limit are read again from
where they were cut), and only replies above the high-water mark of the last read are returned.
"""

from __future__ import annotations

from dataclasses import dataclass, field, replace
from datetime import UTC, datetime, timedelta
from typing import Any, ClassVar, Literal

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
    RateLimited,
    SkippedItem,
    SourceConfig,
    TransientError,
    parse_time,
    raise_for_status,
    retry_after_seconds,
)

NETWORK = "bluesky"
POST_COLLECTION = "app.bsky.feed.post"
# Notification reasons that are someone talking to or about the account; likes, reposts and
# follows are engagement, not conversation.
MENTION_REASONS: dict[str, MentionKind] = {
    "mention": "mention",
    "reply": "reply",
    "quote": "mention",
}
GET_POSTS_MAX = 25  # app.bsky.feed.getPosts takes at most 25 URIs
THREAD_DEPTH = 50  # reply levels per getPostThread; deeper branches are read in a follow-up call
# getPostThread calls per replies poll, so that one huge thread cannot hold up ingest.
THREAD_CALLS_MAX = 20
# AppView instances stamp `indexedAt` with their own clocks and the firehose is not strictly
# ordered, so a reply may become visible with a stamp slightly below the last high-water mark.
# Replies stamped within this window of the mark are told apart by URI instead of by time.
REPLY_LATE_WINDOW = timedelta(minutes=10)
THREAD_VIEW = "app.bsky.feed.defs#threadViewPost"
# XRPC error names that mean "this token no longer works" rather than "this request is wrong".
TOKEN_ERRORS = frozenset({"ExpiredToken", "InvalidToken", "AuthenticationRequired"})
# createSession refusals that only a person can fix (new app password, 2FA, appeal).
LOGIN_ERRORS = frozenset(
    {"AuthenticationRequired", "AccountTakedown", "AuthFactorTokenRequired", "InvalidToken"}
)


class BlueskyConfig(SourceConfig):
    """Where and what to read. `service` is the account's PDS or the entryway; `appview`, when
    set, is the `atproto-proxy` service reference (e.g. `did:web:api.bsky.app#bsky_appview`) the
    PDS should forward `app.bsky.*` reads to instead of its default AppView."""

    service: str = "https://bsky.social"
    appview: str | None = None
    mode: Literal["notifications", "search"]
    query: str | None = None
    limit: int = Field(default=50, ge=1, le=100)

    @field_validator("service")
    @classmethod
    def _service_is_http(cls, value: str) -> str:
        if not value.startswith(("https://", "http://")):
            raise ValueError("service must be an http(s) URL, e.g. https://bsky.social")
        return value.rstrip("/")

    @field_validator("appview")
    @classmethod
    def _appview_is_service_ref(cls, value: str | None) -> str | None:
        if value is not None and not (value.startswith("did:") and "#" in value):
            raise ValueError("appview must be a service reference like did:web:host#bsky_appview")
        return value

    @model_validator(mode="after")
    def _search_needs_query(self) -> BlueskyConfig:
        if self.mode == "search" and not (self.query and self.query.strip()):
            raise ValueError("mode 'search' needs a non-empty query")
        return self


# --- session -----------------------------------------------------------------------------------


@dataclass
class _Session:
    """The account's tokens for one pull; `changed` says whether ingest must persist new ones."""

    identifier: str | None
    app_password: str | None
    access_jwt: str | None
    refresh_jwt: str | None
    did: str | None
    extra: dict[str, Any] = field(default_factory=dict)
    changed: bool = False

    @classmethod
    def from_credentials(cls, credentials: dict[str, Any]) -> _Session:
        known = {"identifier", "app_password", "access_jwt", "refresh_jwt", "did"}
        return cls(
            identifier=credentials.get("identifier"),
            app_password=credentials.get("app_password"),
            access_jwt=credentials.get("access_jwt"),
            refresh_jwt=credentials.get("refresh_jwt"),
            did=credentials.get("did"),
            extra={k: v for k, v in credentials.items() if k not in known},
        )

    def adopt(self, body: dict[str, Any]) -> None:
        """Take the tokens of a createSession/refreshSession answer."""
        access, refresh = body.get("accessJwt"), body.get("refreshJwt")
        if not isinstance(access, str) or not isinstance(refresh, str):
            raise TransientError(f"{NETWORK}: session answer without accessJwt/refreshJwt")
        self.access_jwt, self.refresh_jwt = access, refresh
        if isinstance(body.get("did"), str):
            self.did = body["did"]
        self.changed = True

    def as_credentials(self) -> dict[str, Any]:
        values = {
            "identifier": self.identifier,
            "app_password": self.app_password,
            "access_jwt": self.access_jwt,
            "refresh_jwt": self.refresh_jwt,
            "did": self.did,
        }
        return {**self.extra, **{k: v for k, v in values.items() if v is not None}}


def _xrpc_error(response: httpx.Response) -> tuple[str, str]:
    """The `error` name and `message` of an XRPC error body (empty when absent)."""
    try:
        body = response.json()
    except ValueError:
        return "", ""
    if not isinstance(body, dict):
        return "", ""
    return str(body.get("error") or ""), str(body.get("message") or "")


def _rate_limit(response: httpx.Response) -> RateLimit | None:
    """Bluesky's `RateLimit-*` headers; `RateLimit-Reset` is a Unix time in seconds."""
    headers = response.headers
    if not any(h in headers for h in ("ratelimit-limit", "ratelimit-remaining", "ratelimit-reset")):
        return None

    def number(name: str) -> int | None:
        try:
            return int(headers[name])
        except (KeyError, ValueError):
            return None

    reset = number("ratelimit-reset")
    return RateLimit(
        limit=number("ratelimit-limit"),
        remaining=number("ratelimit-remaining"),
        reset_at=datetime.fromtimestamp(reset, UTC) if reset is not None else None,
    )


def _raise_for_xrpc(response: httpx.Response) -> None:
    """Map an XRPC failure, naming the XRPC error so the source's status says what went wrong."""
    if response.status_code == 429:
        limits = _rate_limit(response)
        if limits is not None and limits.reset_at is not None:
            # A reset already past (clock skew) still deserves a short pause, not a hot loop.
            wait = max((limits.reset_at - datetime.now(UTC)).total_seconds(), 1.0)
        else:
            wait = retry_after_seconds(response) or 60.0
        raise RateLimited(f"{NETWORK}: rate limited on {response.url.path}", wait)
    if response.status_code >= 400:
        error, message = _xrpc_error(response)
        if error and response.status_code < 500 and response.status_code not in (401, 403):
            raise BadConfig(f"{NETWORK}: {error}: {message} ({response.url.path})")
    raise_for_status(response, NETWORK)


class _Xrpc:
    """XRPC calls for one pull: session creation only when there is none, refresh on expiry."""

    def __init__(self, client: httpx.AsyncClient, config: BlueskyConfig, session: _Session) -> None:
        self.client = client
        self.config = config
        self.session = session
        self.rate_limit: RateLimit | None = None

    async def _send(
        self,
        method: str,
        nsid: str,
        *,
        token: str | None = None,
        params: dict[str, Any] | None = None,
        body: dict[str, Any] | None = None,
    ) -> httpx.Response:
        headers = {"Accept": "application/json"}
        if token is not None:
            headers["Authorization"] = f"Bearer {token}"
        if self.config.appview and nsid.startswith("app.bsky."):
            headers["atproto-proxy"] = self.config.appview
        try:
            response = await self.client.request(
                method,
                f"{self.config.service}/xrpc/{nsid}",
                params=params,
                json=body,
                headers=headers,
            )
        except httpx.TransportError as exc:
            raise TransientError(f"{NETWORK}: {nsid}: {exc!r}") from exc
        limits = _rate_limit(response)
        if limits is not None:
            self.rate_limit = limits
        return response

    @staticmethod
    def _json(response: httpx.Response) -> dict[str, Any]:
        try:
            body = response.json()
        except ValueError as exc:
            raise BadConfig(
                f"{NETWORK}: {response.url} did not answer JSON; is `service` an atproto PDS?"
            ) from exc
        if not isinstance(body, dict):
            raise BadConfig(f"{NETWORK}: {response.url} answered {type(body).__name__}, not object")
        return body

    async def create_session(self) -> None:
        if not self.session.identifier or not self.session.app_password:
            raise AuthFailed(f"{NETWORK}: no identifier/app password to sign in with")
        response = await self._send(
            "POST",
            "com.atproto.server.createSession",
            body={"identifier": self.session.identifier, "password": self.session.app_password},
        )
        error, message = _xrpc_error(response)
        status = response.status_code
        if status in (401, 403) or (status == 400 and error in LOGIN_ERRORS):
            raise AuthFailed(
                f"{NETWORK}: sign-in as {self.session.identifier!r} refused: "
                f"{error or response.status_code} {message}".rstrip()
            )
        _raise_for_xrpc(response)
        self.session.adopt(self._json(response))

    async def renew_session(self) -> None:
        """Refresh the session (createSession is rate-limited hard); sign in again only when the
        refresh token itself is no longer accepted."""
        if self.session.refresh_jwt:
            response = await self._send(
                "POST", "com.atproto.server.refreshSession", token=self.session.refresh_jwt
            )
            if response.status_code < 400:
                self.session.adopt(self._json(response))
                return
            if not _token_rejected(response):
                _raise_for_xrpc(response)
        await self.create_session()

    async def query(self, nsid: str, params: dict[str, Any]) -> dict[str, Any]:
        if not self.session.access_jwt:
            await self.create_session()
        response = await self._send("GET", nsid, token=self.session.access_jwt, params=params)
        if _token_rejected(response):
            await self.renew_session()
            response = await self._send("GET", nsid, token=self.session.access_jwt, params=params)
            if _token_rejected(response):
                error, message = _xrpc_error(response)
                raise AuthFailed(f"{NETWORK}: a fresh session was refused: {error} {message}")
        _raise_for_xrpc(response)
        return self._json(response)


def _token_rejected(response: httpx.Response) -> bool:
    if response.status_code == 401:
        return True
    return response.status_code == 400 and _xrpc_error(response)[0] in TOKEN_ERRORS


# --- the walk over a newest-first listing ------------------------------------------------------


@dataclass(frozen=True)
class _Mark:
    """A point in a listing: an `indexedAt` instant and the URIs taken at exactly that instant."""

    at: datetime
    uris: frozenset[str]

    @classmethod
    def load(cls, value: Any) -> _Mark | None:
        if not isinstance(value, dict) or not isinstance(value.get("at"), str):
            return None
        return cls(parse_time(value["at"]), frozenset(str(u) for u in value.get("uris") or ()))

    def dump(self) -> dict[str, Any]:
        return {"at": self.at.isoformat(), "uris": sorted(self.uris)}

    def covers(self, at: datetime, uri: str) -> bool:
        """Whether an item is at or before this mark (already handled)."""
        return at < self.at or (at == self.at and uri in self.uris)

    def below(self, at: datetime, uri: str) -> bool:
        """Whether an item is at or above this mark (already handled when this is a floor)."""
        return at > self.at or (at == self.at and uri in self.uris)


def _newer(mark: _Mark | None, at: datetime, uri: str) -> _Mark:
    if mark is None or at > mark.at:
        return _Mark(at, frozenset({uri}))
    if at == mark.at:
        return _Mark(at, mark.uris | {uri})
    return mark


def _older(mark: _Mark | None, at: datetime, uri: str) -> _Mark:
    if mark is None or at < mark.at:
        return _Mark(at, frozenset({uri}))
    if at == mark.at:
        return _Mark(at, mark.uris | {uri})
    return mark


@dataclass
class _Walk:
    newest: _Mark | None  # high-water mark of the last finished walk
    page_cursor: str | None = None  # the listing's own cursor for the next (older) page
    walk_newest: _Mark | None = None
    walk_oldest: _Mark | None = None

    @classmethod
    def load(cls, cursor: dict[str, Any]) -> _Walk:
        walk = cursor.get("walk") if isinstance(cursor.get("walk"), dict) else None
        return cls(
            newest=_Mark.load(cursor.get("newest")),
            page_cursor=str(walk["cursor"]) if walk and walk.get("cursor") else None,
            walk_newest=_Mark.load(walk.get("newest")) if walk else None,
            walk_oldest=_Mark.load(walk.get("oldest")) if walk else None,
        )

    def take(self, items: list[tuple[datetime, str, dict[str, Any]]]) -> tuple[list[Any], bool]:
        """The items of one page not seen before, and whether the walk reached known ground."""
        fresh: list[dict[str, Any]] = []
        reached = False
        floor = self.walk_oldest  # from earlier pages only: one page need not be sorted
        for at, uri, item in items:
            if self.newest is not None and self.newest.covers(at, uri):
                reached = True
                continue
            if floor is not None and floor.below(at, uri):
                continue
            fresh.append(item)
            self.walk_newest = _newer(self.walk_newest, at, uri)
            self.walk_oldest = _older(self.walk_oldest, at, uri)
        return fresh, reached

    def finish_or_continue(
        self, next_cursor: str | None, done: bool
    ) -> tuple[dict[str, Any], bool]:
        """The cursor to persist and whether another page should be pulled right away."""
        if done or not next_cursor or next_cursor == self.page_cursor:
            newest = self.newest
            if self.walk_newest is not None:
                newest = self.walk_newest
                if self.newest is not None and self.newest.at == newest.at:
                    newest = _Mark(newest.at, newest.uris | self.newest.uris)
            return ({"newest": newest.dump()} if newest else {}), False
        state: dict[str, Any] = {"cursor": next_cursor}
        if self.walk_newest is not None:
            state["newest"] = self.walk_newest.dump()
        if self.walk_oldest is not None:
            state["oldest"] = self.walk_oldest.dump()
        cursor: dict[str, Any] = {"walk": state}
        if self.newest is not None:
            cursor["newest"] = self.newest.dump()
        return cursor, True


# --- normalising -------------------------------------------------------------------------------


def _text(mapping: Any, key: str) -> str:
    if not isinstance(mapping, dict):
        raise ValueError(f"expected an object holding {key!r}")
    value = mapping.get(key)
    if not isinstance(value, str):
        raise ValueError(f"{key!r} missing or not a string")
    return value


def _position(item: Any) -> tuple[datetime, str]:
    """Where an item sits in a newest-first listing: its `indexedAt` and `uri`."""
    uri = _text(item, "uri")
    if not uri.startswith("at://"):
        raise ValueError(f"uri {uri!r} is not an at:// URI")
    return parse_time(_text(item, "indexedAt")), uri


def _post_url(uri: str, author_did: str, handle: str) -> str | None:
    # at://<did>/app.bsky.feed.post/<rkey>; bsky.app links by handle, by DID if the handle is broken
    parts = uri.removeprefix("at://").split("/")
    if len(parts) != 3 or parts[1] != POST_COLLECTION:
        return None
    who = handle if handle and handle != "handle.invalid" else author_did
    return f"https://bsky.app/profile/{who}/post/{parts[2]}"


def _media(embed: Any) -> tuple[Media, ...]:
    """Media of a post view's embed (the hydrated `#view` forms carry CDN URLs)."""
    if not isinstance(embed, dict):
        return ()
    kind = str(embed.get("$type", ""))
    if kind.startswith("app.bsky.embed.recordWithMedia"):
        return _media(embed.get("media"))
    if kind.startswith("app.bsky.embed.images"):
        return tuple(
            Media("image", image["fullsize"])
            for image in embed.get("images") or ()
            if isinstance(image, dict) and isinstance(image.get("fullsize"), str)
        )
    if kind.startswith("app.bsky.embed.video") and isinstance(embed.get("playlist"), str):
        return (Media("video", embed["playlist"]),)
    if kind.startswith("app.bsky.embed.external"):
        external = embed.get("external")
        if isinstance(external, dict) and isinstance(external.get("uri"), str):
            return (Media("link", external["uri"]),)
    return ()


def _count(post: dict[str, Any], key: str) -> int | None:
    value = post.get(key)
    return value if isinstance(value, int) and not isinstance(value, bool) else None


def mention_from_post(post: Any, kind: MentionKind, raw: dict[str, Any]) -> FetchedMention:
    """A FetchedMention from an `app.bsky.feed.defs#postView`; ValueError if it is malformed."""
    uri = _text(post, "uri")
    if not uri.startswith("at://"):
        raise ValueError(f"uri {uri!r} is not an at:// URI")
    author = post.get("author")
    did, handle = _text(author, "did"), _text(author, "handle")
    record = post.get("record")
    text = _text(record, "text")
    created_at = parse_time(_text(record, "createdAt"))
    langs = record.get("langs")
    language = langs[0] if isinstance(langs, list) and langs and isinstance(langs[0], str) else None
    reply = record.get("reply")
    root, parent = uri, None
    if isinstance(reply, dict):
        root, parent = _text(reply.get("root"), "uri"), _text(reply.get("parent"), "uri")
    counts = {key: _count(post, key) for key in ("likeCount", "repostCount", "replyCount")}
    display_name = author.get("displayName")
    return FetchedMention(
        network=NETWORK,
        external_id=uri,
        kind=kind,
        text=text,
        created_at=created_at,
        author=FetchedAuthor(
            id=did,
            handle=handle,
            display_name=display_name if isinstance(display_name, str) and display_name else None,
        ),
        root_external_id=root,
        parent_external_id=parent,
        url=_post_url(uri, did, handle),
        language=language,
        media=_media(post.get("embed")),
        engagement=(
            Engagement(
                likes=counts["likeCount"],
                reposts=counts["repostCount"],
                replies=counts["replyCount"],
            )
            if any(v is not None for v in counts.values())
            else None
        ),
        raw=raw,
    )


def _positioned(
    items: Any, skipped: list[SkippedItem]
) -> list[tuple[datetime, str, dict[str, Any]]]:
    if not isinstance(items, list):
        raise BadConfig(f"{NETWORK}: listing answer without an item array")
    placed = []
    for item in items:
        try:
            at, uri = _position(item)
        except ValueError as exc:
            skipped.append(SkippedItem(f"unplaceable item: {exc}", item))
            continue
        placed.append((at, uri, item))
    return placed


# --- replies to one of our posts ---------------------------------------------------------------


@dataclass(frozen=True)
class _Reply:
    post: dict[str, Any]
    parent_uri: str  # the node the thread view nests this reply under


def _thread_replies(
    node: dict[str, Any],
    node_uri: str,
    depth: int,
    cut_depth: int,
    found: list[_Reply],
    cut: list[str],
) -> None:
    """Collect the readable replies below a threadViewPost at `depth`; note the nodes at
    `cut_depth` (the request's depth limit) whose replies the answer left out.

    Blocked and not-found nodes (and any node type this connector does not know) carry no post
    to read and hide their subtree, so they are passed over."""
    replies = node.get("replies")
    if not isinstance(replies, list):
        post = node.get("post")
        # No `replies` at the depth limit means "not shown", not "none": read that branch again.
        if depth == cut_depth and isinstance(post, dict) and post.get("replyCount") != 0:
            cut.append(node_uri)
        return
    for child in replies:
        if not isinstance(child, dict) or child.get("$type", THREAD_VIEW) != THREAD_VIEW:
            continue
        post = child.get("post")
        if not isinstance(post, dict):
            continue
        found.append(_Reply(post, node_uri))
        uri = post.get("uri")
        if isinstance(uri, str):
            _thread_replies(child, uri, depth + 1, cut_depth, found, cut)


def _require_post_uri(uri: str) -> None:
    """BadConfig unless `uri` is an at://<did>/app.bsky.feed.post/<rkey> URI."""
    parts = uri.removeprefix("at://").split("/") if uri.startswith("at://") else []
    if len(parts) != 3 or parts[1] != POST_COLLECTION or not parts[0] or not parts[2]:
        raise BadConfig(f"{NETWORK}: {uri!r} is not an at://<did>/{POST_COLLECTION}/<rkey> URI")


@dataclass(frozen=True)
class _SeenReplies:
    """The replies cursor: the newest `indexedAt` read and the URIs read within the late window
    below it. A reply is new if it is above the window or in it but not among those URIs."""

    newest: datetime | None
    recent: frozenset[str]

    @classmethod
    def load(cls, cursor: dict[str, Any]) -> _SeenReplies:
        newest = cursor.get("newest")
        try:
            at = parse_time(newest) if isinstance(newest, str) else None
        except ValueError:
            at = None
        recent = cursor.get("recent")
        uris = frozenset(str(u) for u in recent) if isinstance(recent, list) else frozenset()
        return cls(at, uris)

    def is_new(self, at: datetime, uri: str) -> bool:
        if self.newest is None:
            return True
        return at > self.newest or (at > self.newest - REPLY_LATE_WINDOW and uri not in self.recent)

    def after(self, placed: list[tuple[datetime, str]]) -> _SeenReplies:
        """The cursor after a read of the thread that found `placed` replies (all, not only new)."""
        newest = max((at for at, _ in placed), default=None)
        if self.newest is not None and (newest is None or self.newest > newest):
            newest = self.newest
        if newest is None:
            return self
        floor = newest - REPLY_LATE_WINDOW
        # Rebuilt from this read: a reply deleted since needs no remembering.
        return _SeenReplies(newest, frozenset(uri for at, uri in placed if at > floor))

    def dump(self) -> dict[str, Any]:
        if self.newest is None:
            return {}
        return {"newest": self.newest.isoformat(), "recent": sorted(self.recent)}


def _parents_first(mentions: list[FetchedMention]) -> list[FetchedMention]:
    """Oldest first, but never a reply before the reply it answers (clocks can disagree)."""
    by_id = {m.external_id: m for m in mentions}
    ordered: list[FetchedMention] = []
    placed: set[str] = set()

    for mention in sorted(mentions, key=lambda m: (m.created_at, m.external_id)):
        # Its ancestors not yet placed, nearest first; a loop (never in a real thread) ends it.
        chain: list[FetchedMention] = []
        current: FetchedMention | None = mention
        while current is not None and current.external_id not in placed:
            placed.add(current.external_id)
            chain.append(current)
            current = by_id.get(current.parent_external_id or "")
        ordered.extend(reversed(chain))
    return ordered


# --- the connector -----------------------------------------------------------------------------


class BlueskyConnector:
    """Pulls one page of a Bluesky account's mentions/replies/quotes, or of a post search."""

    network: ClassVar[str] = NETWORK
    config_model: ClassVar[type[SourceConfig]] = BlueskyConfig

    async def pull(
        self,
        client: httpx.AsyncClient,
        config: Any,
        credentials: dict[str, Any],
        cursor: dict[str, Any],
    ) -> PullResult:
        if not isinstance(config, BlueskyConfig):
            config = BlueskyConfig.model_validate(config)
        session = _Session.from_credentials(credentials)
        xrpc = _Xrpc(client, config, session)
        walk = _Walk.load(cursor)
        skipped: list[SkippedItem] = []
        if config.mode == "notifications":
            mentions, next_cursor, reached = await self._notifications(xrpc, config, walk, skipped)
        else:
            mentions, next_cursor, reached = await self._search(xrpc, config, walk, skipped)
        new_cursor, more = walk.finish_or_continue(next_cursor, reached)
        return PullResult(
            mentions=mentions,
            cursor=new_cursor,
            more=more,
            rate_limit=xrpc.rate_limit,
            skipped=skipped,
            credentials=session.as_credentials() if session.changed else None,
        )

    def backfill_cursor(self, since: datetime) -> dict[str, Any]:
        """A cursor whose next walk reads back to `since`: the high-water mark stands at that
        instant with no URIs, so an item indexed exactly then is still taken.

        Both listings are ordered by `indexedAt`, not by the client-set `createdAt`, so the walk
        stops by it; indexing follows creation, so a post created before `since` but indexed
        after it may come too, which costs nothing (ingest keeps one item per URI)."""
        return {"newest": _Mark(since.astimezone(UTC), frozenset()).dump()}

    async def replies(
        self,
        client: httpx.AsyncClient,
        config: Any,
        credentials: dict[str, Any],
        post_external_id: str,
        cursor: dict[str, Any],
    ) -> PullResult:
        """Replies at any depth below one of our posts (its at:// URI) not returned before."""
        if not isinstance(config, BlueskyConfig):
            config = BlueskyConfig.model_validate(config)
        _require_post_uri(post_external_id)
        session = _Session.from_credentials(credentials)
        xrpc = _Xrpc(client, config, session)
        seen = _SeenReplies.load(cursor)
        skipped: list[SkippedItem] = []
        found: list[_Reply] = []
        branches, calls = [(post_external_id, 0)], 0
        while branches:
            uri, depth = branches.pop(0)
            if calls == THREAD_CALLS_MAX:
                skipped.append(
                    SkippedItem(f"thread continues below reply level {depth}; not read", uri)
                )
                continue
            calls += 1
            params = {"uri": uri, "depth": THREAD_DEPTH, "parentHeight": 0}
            page = await xrpc.query("app.bsky.feed.getPostThread", params)
            thread = page.get("thread")
            if not isinstance(thread, dict) or thread.get("$type", THREAD_VIEW) != THREAD_VIEW:
                if uri == post_external_id:
                    raise BadConfig(f"{NETWORK}: the thread of {uri} is not readable (blocked?)")
                continue  # a branch deleted or blocked since it was listed
            cut: list[str] = []
            _thread_replies(thread, uri, depth, depth + THREAD_DEPTH, found, cut)
            branches += [(branch, depth + THREAD_DEPTH) for branch in cut]
        placed: list[tuple[datetime, str]] = []
        mentions: list[FetchedMention] = []
        for reply in found:
            try:
                at, uri = _position(reply.post)
            except ValueError as exc:
                skipped.append(SkippedItem(f"unplaceable reply: {exc}", reply.post))
                continue
            placed.append((at, uri))
            if not seen.is_new(at, uri):
                continue
            try:
                mention = mention_from_post(reply.post, "reply", reply.post)
            except (ValueError, TypeError, AttributeError) as exc:
                skipped.append(SkippedItem(f"malformed reply: {exc}", reply.post))
                continue
            # The thread is our post's, even when our post itself answers someone else's.
            mentions.append(
                replace(
                    mention,
                    root_external_id=post_external_id,
                    parent_external_id=mention.parent_external_id or reply.parent_uri,
                )
            )
        return PullResult(
            mentions=_parents_first(mentions),
            cursor=seen.after(placed).dump(),
            rate_limit=xrpc.rate_limit,
            skipped=skipped,
            credentials=session.as_credentials() if session.changed else None,
        )

    async def _notifications(
        self, xrpc: _Xrpc, config: BlueskyConfig, walk: _Walk, skipped: list[SkippedItem]
    ) -> tuple[list[FetchedMention], str | None, bool]:
        params: dict[str, Any] = {"limit": config.limit, "reasons": list(MENTION_REASONS)}
        if walk.page_cursor:
            params["cursor"] = walk.page_cursor
        page = await xrpc.query("app.bsky.notification.listNotifications", params)
        fresh, reached = walk.take(_positioned(page.get("notifications"), skipped))
        # The filter is a hint to the server; an older server sends every reason.
        wanted = [n for n in fresh if n.get("reason") in MENTION_REASONS]
        posts = await self._hydrate(xrpc, [str(n["uri"]) for n in wanted])
        mentions = []
        for notification in wanted:
            # A post deleted since it was notified is not in getPosts: its notification still
            # carries the record, only counts and media views are missing.
            post = posts.get(notification["uri"]) or {
                key: notification.get(key) for key in ("uri", "cid", "author", "record")
            }
            raw = {"notification": notification, "post": posts.get(notification["uri"])}
            try:
                mentions.append(
                    mention_from_post(post, MENTION_REASONS[notification["reason"]], raw)
                )
            except (ValueError, TypeError, AttributeError) as exc:
                skipped.append(SkippedItem(f"malformed notification: {exc}", notification))
        return mentions, _page_cursor(page), reached

    async def _hydrate(self, xrpc: _Xrpc, uris: list[str]) -> dict[str, dict[str, Any]]:
        """Post views (counts, embed views) for notified posts, via app.bsky.feed.getPosts."""
        posts: dict[str, dict[str, Any]] = {}
        for start in range(0, len(uris), GET_POSTS_MAX):
            page = await xrpc.query(
                "app.bsky.feed.getPosts", {"uris": uris[start : start + GET_POSTS_MAX]}
            )
            for post in page.get("posts") or ():
                if isinstance(post, dict) and isinstance(post.get("uri"), str):
                    posts[post["uri"]] = post
        return posts

    async def _search(
        self, xrpc: _Xrpc, config: BlueskyConfig, walk: _Walk, skipped: list[SkippedItem]
    ) -> tuple[list[FetchedMention], str | None, bool]:
        params: dict[str, Any] = {"q": config.query, "sort": "latest", "limit": config.limit}
        if walk.page_cursor:
            params["cursor"] = walk.page_cursor
        page = await xrpc.query("app.bsky.feed.searchPosts", params)
        fresh, reached = walk.take(_positioned(page.get("posts"), skipped))
        mentions = []
        for post in fresh:
            try:
                mentions.append(mention_from_post(post, "post", post))
            except (ValueError, TypeError, AttributeError) as exc:
                skipped.append(SkippedItem(f"malformed post: {exc}", post))
        return mentions, _page_cursor(page), reached


def _page_cursor(page: dict[str, Any]) -> str | None:
    value = page.get("cursor")
    return str(value) if value else None
