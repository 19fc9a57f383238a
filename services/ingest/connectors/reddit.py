"""Reddit read half: posts matching a brand's search and a subreddit's comment stream, pulled with
application-only OAuth from Reddit's listing API (https://www.reddit.com/dev/api/).

How the cursor works. Reddit listings are newest first and page backwards with `after=<fullname>`
anchors, which do not shift when new items arrive. The cursor keeps the newest item already handed
to ingest (`newest`: fullname and `created_utc`). A *sweep* starts at the top of the listing and
pages with `after` until it meets that item (or one created before it, in case it was deleted).
When more than one page is new, the sweep's state (`after` anchor, the item it stops at, and the
newest item of its first page) is kept in the cursor between pulls and `more` is set, so each pull
returns one page and nothing is skipped; only when the sweep ends does `newest` move to the top of
its first page. The first pull of a new source takes the newest page only (it starts listening
now rather than backfilling Reddit's history); a backfill instead sets `newest` to a bare time (no
fullname), so the next sweep pages back to the first item created before it. Known limit: if
the `after` anchor itself is deleted in the middle of a sweep, Reddit answers an empty page and the
sweep ends there.
"""

from __future__ import annotations

import re
from collections.abc import Callable
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from typing import Any, ClassVar, Literal

import httpx
from pydantic import Field, model_validator

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
    retry_after_seconds,
)

NETWORK = "reddit"
WEB_BASE = "https://www.reddit.com"
# A token this close to its expiry is replaced before use, so a page never fails half-way.
TOKEN_REFRESH_MARGIN = timedelta(minutes=2)
DEFAULT_RETRY_AFTER_S = 60.0
# What Reddit puts in place of the author and the text of a deleted or removed item.
DELETED_MARKERS = frozenset({"[deleted]", "[removed]"})
# 403 answers that name why a subreddit is closed to us: reconnecting will not help.
CLOSED_SUBREDDIT_REASONS = frozenset({"private", "banned", "quarantined", "gold_only"})
SUBREDDIT_NAME = re.compile(r"^[A-Za-z0-9][A-Za-z0-9_]{1,20}(\+[A-Za-z0-9][A-Za-z0-9_]{1,20})*$")


class RedditConfig(SourceConfig):
    """What one Reddit source listens to: a search across Reddit, or one subreddit's comments."""

    auth_base: str = WEB_BASE
    api_base: str = "https://oauth.reddit.com"
    mode: Literal["search", "subreddit_comments"]
    query: str | None = None
    subreddit: str | None = None
    # Reddit throttles clients without a descriptive User-Agent.
    user_agent: str = "opensmm/1.0 (by /u/opensmm)"
    limit: int = Field(default=100, ge=1, le=100)

    @model_validator(mode="after")
    def _mode_has_its_target(self) -> RedditConfig:
        if self.mode == "search" and not (self.query and self.query.strip()):
            raise ValueError("search mode needs a non-empty query")
        if self.mode == "subreddit_comments" and not SUBREDDIT_NAME.match(self.subreddit or ""):
            raise ValueError("subreddit_comments mode needs a subreddit name (without r/)")
        return self


@dataclass(frozen=True)
class _Anchor:
    """A listing position: an item's fullname and creation time."""

    fullname: str
    created_utc: float

    def to_json(self) -> dict[str, Any]:
        return {"fullname": self.fullname, "created_utc": self.created_utc}

    @classmethod
    def from_json(cls, value: Any) -> _Anchor | None:
        if not isinstance(value, dict):
            return None
        fullname, created = value.get("fullname"), value.get("created_utc")
        if not isinstance(fullname, str) or not isinstance(created, int | float):
            return None
        return cls(fullname, float(created))

    def covers(self, other: _Anchor) -> bool:
        """True if `other` is this item or older, i.e. already handed to ingest."""
        if other.fullname == self.fullname or other.created_utc < self.created_utc:
            return True
        if other.created_utc > self.created_utc:
            return False
        # Same second: ids are base-36 sequence numbers per kind, so the smaller one is older.
        mine, theirs = _sequence(self.fullname), _sequence(other.fullname)
        return mine is not None and theirs is not None and mine[0] == theirs[0] and theirs < mine


def _sequence(fullname: str) -> tuple[str, int] | None:
    kind, _, id36 = fullname.partition("_")
    try:
        return kind, int(id36, 36)
    except ValueError:
        return None


class _Token:
    """The app-only bearer token for one pull: reused while valid, fetched when not."""

    def __init__(self, credentials: dict[str, Any], clock: Callable[[], datetime]) -> None:
        client_id, secret = credentials.get("client_id"), credentials.get("client_secret")
        if not isinstance(client_id, str) or not isinstance(secret, str):
            raise AuthFailed("reddit: credentials need client_id and client_secret")
        self._credentials = credentials
        self._basic = httpx.BasicAuth(client_id, secret)
        self._clock = clock
        self.access_token: str | None = credentials.get("access_token") or None
        self.expires_at: datetime | None = _expiry(credentials.get("expires_at"))
        self.changed = False

    def usable(self) -> bool:
        return (
            self.access_token is not None
            and self.expires_at is not None
            and self.expires_at - TOKEN_REFRESH_MARGIN > self._clock()
        )

    async def fetch(self, client: httpx.AsyncClient, config: RedditConfig) -> None:
        url = f"{config.auth_base.rstrip('/')}/api/v1/access_token"
        try:
            response = await client.post(
                url,
                data={"grant_type": "client_credentials"},
                auth=self._basic,
                headers={"User-Agent": config.user_agent},
            )
        except httpx.TransportError as exc:
            raise TransientError(f"reddit: token request failed: {exc!r}") from exc
        if response.status_code in (400, 401, 403):
            raise AuthFailed(f"reddit: client credentials rejected (HTTP {response.status_code})")
        _raise_for_status(response, now=self._clock())
        body = _json(response)
        token, lifetime = body.get("access_token"), body.get("expires_in")
        if "error" in body or not isinstance(token, str) or not token:
            raise AuthFailed(f"reddit: no token granted ({body.get('error', 'no access_token')})")
        seconds = float(lifetime) if isinstance(lifetime, int | float) else 3600.0
        self.access_token = token
        self.expires_at = self._clock() + timedelta(seconds=seconds)
        self.changed = True

    def credentials(self) -> dict[str, Any] | None:
        if not self.changed or self.expires_at is None:
            return None
        return {
            **self._credentials,
            "access_token": self.access_token,
            "expires_at": self.expires_at.isoformat(),
        }


class RedditConnector:
    """Pulls one page of a Reddit listing per call; see the module docstring for the cursor."""

    network: ClassVar[str] = NETWORK
    config_model: ClassVar[type[SourceConfig]] = RedditConfig

    def __init__(self, clock: Callable[[], datetime] | None = None) -> None:
        self._clock = clock or (lambda: datetime.now(UTC))

    async def pull(
        self,
        client: httpx.AsyncClient,
        config: Any,
        credentials: dict[str, Any],
        cursor: dict[str, Any],
    ) -> PullResult:
        cfg = config if isinstance(config, RedditConfig) else RedditConfig.model_validate(config)
        token = _Token(credentials, self._clock)
        newest = _Anchor.from_json(cursor.get("newest"))
        sweep = cursor.get("sweep") if isinstance(cursor.get("sweep"), dict) else None
        after = sweep.get("after") if sweep else None
        stop = _Anchor.from_json(sweep.get("stop")) if sweep else newest
        top = _Anchor.from_json(sweep.get("top")) if sweep else None

        response = await self._get_listing(
            client, cfg, token, after if isinstance(after, str) else None
        )
        rate_limit = _rate_limit(response, self._clock())
        children, next_after = _listing(response)

        mentions: list[FetchedMention] = []
        skipped: list[SkippedItem] = []
        reached_stop = False
        for child in children:
            anchor = _anchor_of(child)
            if anchor is not None:
                if stop is not None and stop.covers(anchor):
                    reached_stop = True
                    break
                top = top or anchor
            try:
                mentions.append(_normalise(child))
            except _Malformed as exc:
                skipped.append(SkippedItem(str(exc), child))

        sweep_goes_on = (
            stop is not None and not reached_stop and bool(children) and next_after is not None
        )
        if sweep_goes_on:
            next_cursor: dict[str, Any] = {
                "newest": stop.to_json() if stop else None,
                "sweep": {
                    "after": next_after,
                    "stop": stop.to_json() if stop else None,
                    "top": top.to_json() if top else None,
                },
            }
        else:
            committed = top or stop
            next_cursor = {"newest": committed.to_json() if committed else None}
        return PullResult(
            mentions=mentions,
            cursor=next_cursor,
            more=sweep_goes_on,
            rate_limit=rate_limit,
            skipped=skipped,
            credentials=token.credentials(),
        )

    def backfill_cursor(self, since: datetime) -> dict[str, Any]:
        """A cursor whose next sweep pages back to the first item created before `since`.

        Listings cannot start at a time, only walk back from the newest, so `since` becomes the
        stop mark: an anchor with an empty fullname matches no item and ties with none."""
        return {"newest": _Anchor("", since.timestamp()).to_json()}

    async def _get_listing(
        self,
        client: httpx.AsyncClient,
        config: RedditConfig,
        token: _Token,
        after: str | None,
    ) -> httpx.Response:
        base = config.api_base.rstrip("/")
        # raw_json=1: without it Reddit HTML-escapes &, < and > inside the JSON strings.
        params: dict[str, str | int] = {"limit": config.limit, "raw_json": 1}
        if config.mode == "search":
            url = f"{base}/search"
            params.update({"q": config.query or "", "sort": "new", "type": "link"})
        else:
            url = f"{base}/r/{config.subreddit}/comments"
        if after:
            params["after"] = after

        if not token.usable():
            await token.fetch(client, config)
        response = await self._send(client, url, params, config, token)
        if response.status_code == 401:
            # A token can be revoked before it expires: get a new one once, then give up.
            await token.fetch(client, config)
            response = await self._send(client, url, params, config, token)
            if response.status_code == 401:
                raise AuthFailed("reddit: a freshly granted token was rejected (HTTP 401)")
        _raise_for_status(response, now=self._clock())
        return response

    async def _send(
        self,
        client: httpx.AsyncClient,
        url: str,
        params: dict[str, str | int],
        config: RedditConfig,
        token: _Token,
    ) -> httpx.Response:
        headers = {"Authorization": f"bearer {token.access_token}", "User-Agent": config.user_agent}
        try:
            return await client.get(url, params=params, headers=headers)
        except httpx.TransportError as exc:
            raise TransientError(f"reddit: request failed: {exc!r}") from exc


# --- wire format -----------------------------------------------------------------------------


class _Malformed(Exception):
    """An item that cannot be normalised; it is skipped, the page goes on."""


def _raise_for_status(response: httpx.Response, now: datetime) -> None:
    status = response.status_code
    if status < 300:
        return
    where = response.request.url.copy_with(query=None)
    detail = f"reddit: HTTP {status} from {where}"
    if status < 400:
        # Reddit redirects an unknown subreddit to its subreddit search.
        raise BadConfig(f"{detail} (redirected: does the subreddit exist?)")
    if status == 429:
        raise RateLimited(detail, _retry_after(response, now))
    if status == 403:
        reason = _json_or_empty(response).get("reason")
        if reason in CLOSED_SUBREDDIT_REASONS:
            raise BadConfig(f"{detail}: subreddit is {reason}")
        raise AuthFailed(detail)
    if status == 401:
        raise AuthFailed(detail)
    if status >= 500:
        raise TransientError(detail)
    raise BadConfig(detail)


def _retry_after(response: httpx.Response, now: datetime) -> float:
    rate_limit = _rate_limit(response, now)
    if rate_limit is not None and rate_limit.reset_at is not None:
        return max((rate_limit.reset_at - now).total_seconds(), 0.0)
    if "retry-after" in response.headers:
        return retry_after_seconds(response) or DEFAULT_RETRY_AFTER_S
    return DEFAULT_RETRY_AFTER_S


def _rate_limit(response: httpx.Response, now: datetime) -> RateLimit | None:
    """Reddit's headers: requests used and remaining in the window, seconds until it resets."""
    used = _float_header(response, "x-ratelimit-used")
    remaining = _float_header(response, "x-ratelimit-remaining")
    reset = _float_header(response, "x-ratelimit-reset")
    if used is None and remaining is None and reset is None:
        return None
    return RateLimit(
        limit=int(used + remaining) if used is not None and remaining is not None else None,
        remaining=int(remaining) if remaining is not None else None,
        reset_at=now + timedelta(seconds=reset) if reset is not None else None,
    )


def _float_header(response: httpx.Response, name: str) -> float | None:
    try:
        return float(response.headers[name])
    except (KeyError, ValueError):
        return None


def _json(response: httpx.Response) -> dict[str, Any]:
    try:
        body = response.json()
    except ValueError as exc:
        raise TransientError(f"reddit: answer is not JSON (HTTP {response.status_code})") from exc
    if not isinstance(body, dict):
        raise TransientError("reddit: answer is not a JSON object")
    return body


def _json_or_empty(response: httpx.Response) -> dict[str, Any]:
    try:
        body = response.json()
    except ValueError:
        return {}
    return body if isinstance(body, dict) else {}


def _listing(response: httpx.Response) -> tuple[list[Any], str | None]:
    body = _json(response)
    data = body.get("data")
    if body.get("kind") != "Listing" or not isinstance(data, dict):
        raise TransientError("reddit: answer is not a Listing")
    children = data.get("children")
    if not isinstance(children, list):
        raise TransientError("reddit: Listing without children")
    after = data.get("after")
    return children, after if isinstance(after, str) and after else None


def _anchor_of(child: Any) -> _Anchor | None:
    data = child.get("data") if isinstance(child, dict) else None
    if not isinstance(data, dict):
        return None
    name, created = data.get("name"), data.get("created_utc")
    if not isinstance(name, str) or not isinstance(created, int | float):
        return None
    return _Anchor(name, float(created))


def _expiry(value: Any) -> datetime | None:
    if not isinstance(value, str | int | float) or isinstance(value, bool):
        return None
    try:
        return parse_time(value)
    except (ValueError, OverflowError, OSError):
        return None


def _required_str(data: dict[str, Any], key: str) -> str:
    value = data.get(key)
    if not isinstance(value, str) or not value:
        raise _Malformed(f"missing {key}")
    return value


def _optional_int(data: dict[str, Any], key: str) -> int | None:
    value = data.get(key)
    return value if isinstance(value, int) and not isinstance(value, bool) else None


def _normalise(child: Any) -> FetchedMention:
    if not isinstance(child, dict) or not isinstance(child.get("data"), dict):
        raise _Malformed("not a thing with data")
    kind, data = child.get("kind"), child["data"]
    if kind not in ("t1", "t3"):
        raise _Malformed(f"unexpected kind {kind!r}")
    fullname = _required_str(data, "name")
    permalink = _required_str(data, "permalink")
    created = data.get("created_utc")
    if not isinstance(created, int | float) or isinstance(created, bool):
        raise _Malformed("missing created_utc")
    author_name = _required_str(data, "author")
    author_id = data.get("author_fullname")
    author = FetchedAuthor(
        id=author_id if isinstance(author_id, str) and author_id else author_name,
        handle=author_name,
    )
    edited = data.get("edited")
    common: dict[str, Any] = {
        "network": NETWORK,
        "external_id": fullname,
        "created_at": parse_time(created),
        "author": author,
        "url": WEB_BASE + permalink,
        "edited_at": parse_time(edited) if isinstance(edited, int | float) and edited else None,
        "raw": child,
    }
    if kind == "t3":
        return _post(data, common)
    return _comment(data, common)


def _post(data: dict[str, Any], common: dict[str, Any]) -> FetchedMention:
    title = _required_str(data, "title")
    selftext = data.get("selftext") or ""
    if not isinstance(selftext, str):
        raise _Malformed("selftext is not text")
    # A removed post keeps its title; only the body is replaced by a marker.
    deleted = selftext in DELETED_MARKERS or bool(data.get("removed_by_category"))
    body = "" if selftext in DELETED_MARKERS else selftext
    media: tuple[Media, ...] = ()
    link = data.get("url")
    if not data.get("is_self", True) and isinstance(link, str) and link:
        if data.get("is_video"):
            media = (Media("video", link),)
        elif data.get("post_hint") == "image":
            media = (Media("image", link),)
        else:
            media = (Media("link", link),)
    return FetchedMention(
        kind="post",
        text=f"{title}\n\n{body}" if body else title,
        root_external_id=common["external_id"],
        media=media,
        engagement=Engagement(
            likes=_optional_int(data, "score"), replies=_optional_int(data, "num_comments")
        ),
        deleted=deleted,
        **common,
    )


def _comment(data: dict[str, Any], common: dict[str, Any]) -> FetchedMention:
    body = data.get("body")
    if not isinstance(body, str):
        raise _Malformed("missing body")
    parent = _required_str(data, "parent_id")
    root = _required_str(data, "link_id")
    kind: MentionKind = "reply" if parent.startswith("t1_") else "comment"
    deleted = body in DELETED_MARKERS
    return FetchedMention(
        kind=kind,
        text="" if deleted else body,
        root_external_id=root,
        parent_external_id=parent,
        engagement=Engagement(likes=_optional_int(data, "score")),
        deleted=deleted,
        **common,
    )
