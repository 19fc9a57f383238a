"""YouTube read half: comments and replies on a brand's channel, pulled from the YouTube Data API v3
`commentThreads.list` (https://developers.google.com/youtube/v3/docs/commentThreads/list).

How the cursor works. With `order=time` threads come newest first; this connector takes a thread's
time to be its latest activity (its top comment or its newest listed reply), so a thread with a new
reply counts as new. The cursor's high-water `mark` is the newest `publishedAt` handed to ingest
plus the ids of the comments published at that instant (ties). A *sweep* starts at the first page
and follows `nextPageToken` until a thread has nothing past the mark; each pull returns one page and
sets `more` while the sweep goes on. Between pulls of one sweep the pages can shift (page tokens
are positional), so the sweep remembers the threads it has handled and leaves comments newer than
its first page to the next sweep. The first pull of a new source takes the newest page only.

Known limits: `part=replies` carries only some of a busy thread's replies (the rest need
`comments.list`); a thread that gets a reply in the middle of a multi-page sweep, before the sweep
reached it, jumps above the sweep and its older unseen replies are missed.

Quota: every list call costs `QUOTA_UNITS_PER_CALL`. The cursor counts units per Pacific-time day
(YouTube resets quotas at midnight PT), and a pull that would pass `daily_quota` raises
RateLimited until that midnight without calling YouTube.

Backfill: the mark is set to the start time with no ids, so the next sweep pages back to threads
with nothing from that time on. `backfill_cursor` is given only the time, not the current cursor,
so the day's quota count starts again from zero and forgets the units already spent today; if the
real quota runs out first, YouTube answers `quotaExceeded`, which waits for midnight PT all the
same, so the loss costs one refused call, not a flood.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from datetime import UTC, date, datetime, time, timedelta
from typing import Any, ClassVar
from zoneinfo import ZoneInfo

import httpx
from pydantic import Field

from services.ingest.connectors.base import (
    AuthFailed,
    BadConfig,
    Engagement,
    FetchedAuthor,
    FetchedMention,
    PullResult,
    RateLimit,
    RateLimited,
    SkippedItem,
    SourceConfig,
    TransientError,
    html_to_text,
    parse_time,
    retry_after_seconds,
)

NETWORK = "youtube"
PACIFIC = ZoneInfo("America/Los_Angeles")
QUOTA_UNITS_PER_CALL = 1
DEFAULT_RETRY_AFTER_S = 60.0
WATCH_URL = "https://www.youtube.com/watch"

DAILY_QUOTA_REASONS = frozenset({"quotaExceeded", "dailyLimitExceeded"})
SHORT_RATE_LIMIT_REASONS = frozenset({"rateLimitExceeded", "userRateLimitExceeded"})
KEY_REASONS = frozenset({"keyInvalid", "keyExpired", "API_KEY_INVALID", "API_KEY_EXPIRED"})
ACCESS_REASONS = frozenset({"forbidden", "accessNotConfigured", "ipRefererBlocked"})


class YoutubeConfig(SourceConfig):
    """The channel whose videos' comments a YouTube source listens to."""

    api_base: str = "https://www.googleapis.com/youtube/v3"
    channel_id: str = Field(pattern=r"^UC[A-Za-z0-9_-]{22}$")
    daily_quota: int = Field(default=10_000, ge=1)
    max_results: int = Field(default=100, ge=1, le=100)


@dataclass(frozen=True)
class _Mark:
    """A point in the comment stream: a publishedAt and the comments published at that instant."""

    at: datetime
    ids: frozenset[str]

    def to_json(self) -> dict[str, Any]:
        return {"published_at": self.at.isoformat(), "comment_ids": sorted(self.ids)}

    @classmethod
    def from_json(cls, value: Any) -> _Mark | None:
        if not isinstance(value, dict):
            return None
        at, ids = value.get("published_at"), value.get("comment_ids", [])
        if not isinstance(at, str) or not isinstance(ids, list):
            return None
        try:
            return cls(parse_time(at), frozenset(i for i in ids if isinstance(i, str)))
        except ValueError:
            return None

    def covers(self, at: datetime, comment_id: str) -> bool:
        """True if a comment at `at` is at or before this mark (already handed to ingest)."""
        return at < self.at or (at == self.at and comment_id in self.ids)

    @staticmethod
    def advance(mark: _Mark | None, at: datetime, comment_id: str) -> _Mark:
        if mark is None or at > mark.at:
            return _Mark(at, frozenset({comment_id}))
        if at == mark.at:
            return _Mark(at, mark.ids | {comment_id})
        return mark


@dataclass(frozen=True)
class _QuotaDay:
    day: date
    used: int

    @classmethod
    def current(cls, cursor: dict[str, Any], now: datetime) -> _QuotaDay:
        today = now.astimezone(PACIFIC).date()
        stored = cursor.get("quota")
        if isinstance(stored, dict) and stored.get("day") == today.isoformat():
            used = stored.get("used")
            if isinstance(used, int) and not isinstance(used, bool):
                return cls(today, used)
        return cls(today, 0)

    def to_json(self) -> dict[str, Any]:
        return {"day": self.day.isoformat(), "used": self.used}


def next_pacific_midnight(now: datetime) -> datetime:
    """When YouTube's daily quota resets after `now` (midnight in Los Angeles, DST-aware)."""
    tomorrow = now.astimezone(PACIFIC).date() + timedelta(days=1)
    return datetime.combine(tomorrow, time(0), tzinfo=PACIFIC).astimezone(UTC)


class YoutubeConnector:
    """Pulls one page of a channel's comment threads per call; see the module docstring."""

    network: ClassVar[str] = NETWORK
    config_model: ClassVar[type[SourceConfig]] = YoutubeConfig

    def __init__(self, clock: Callable[[], datetime] | None = None) -> None:
        self._clock = clock or (lambda: datetime.now(UTC))

    async def pull(
        self,
        client: httpx.AsyncClient,
        config: Any,
        credentials: dict[str, Any],
        cursor: dict[str, Any],
    ) -> PullResult:
        cfg = config if isinstance(config, YoutubeConfig) else YoutubeConfig.model_validate(config)
        api_key = credentials.get("api_key")
        if not isinstance(api_key, str) or not api_key:
            raise AuthFailed("youtube: credentials need an api_key")

        now = self._clock()
        quota = _QuotaDay.current(cursor, now)
        if quota.used + QUOTA_UNITS_PER_CALL > cfg.daily_quota:
            raise RateLimited(
                f"youtube: daily quota of {cfg.daily_quota} units used up",
                (next_pacific_midnight(now) - now).total_seconds(),
            )

        mark = _Mark.from_json(cursor.get("mark"))
        sweep = cursor.get("sweep") if isinstance(cursor.get("sweep"), dict) else None
        page_token = sweep.get("page_token") if sweep else None
        response = await self._list_threads(
            client, cfg, api_key, page_token if isinstance(page_token, str) else None
        )
        quota = _QuotaDay(quota.day, quota.used + QUOTA_UNITS_PER_CALL)
        rate_limit = RateLimit(
            limit=cfg.daily_quota,
            remaining=max(cfg.daily_quota - quota.used, 0),
            reset_at=next_pacific_midnight(now),
        )

        stale_token = bool(page_token) and response.status_code == 400
        if stale_token and "invalidPageToken" in _error_reasons(response):
            # The sweep's page token went stale: start the sweep again from the first page.
            return PullResult(
                mentions=[],
                cursor=_cursor(mark, None, quota),
                more=True,
                rate_limit=rate_limit,
                quota_used=QUOTA_UNITS_PER_CALL,
            )
        _raise_for_status(response, now)

        body = _json(response)
        items = body.get("items")
        if not isinstance(items, list):
            raise TransientError("youtube: commentThreadListResponse without items")
        next_token = body.get("nextPageToken")

        stop = _Mark.from_json(sweep.get("stop")) if sweep else mark
        # Past the first page of a sweep its newest comment bounds it: anything newer arrived
        # while the sweep ran and waits at the top for the next sweep.
        bound = _Mark.from_json(sweep.get("top")) if sweep else None
        # Starting from the stop mark keeps its tie ids when the newest comment shares its instant.
        top = bound if sweep else stop
        handled: set[str] = set(sweep.get("handled", [])) if sweep else set()

        mentions: list[FetchedMention] = []
        skipped: list[SkippedItem] = []
        reached_stop = False
        for item in items:
            thread_id = item.get("id") if isinstance(item, dict) else None
            if isinstance(thread_id, str) and thread_id in handled:
                continue  # shifted down from a page this sweep already handled
            comments, bad = _thread(item)
            skipped.extend(bad)
            if not comments:
                continue
            if stop is not None:
                comments = [c for c in comments if not stop.covers(c.created_at, c.external_id)]
                if not comments:
                    # Nothing past the mark: this thread and all below it were handed over.
                    reached_stop = True
                    break
            for comment in comments:
                if bound is not None and comment.created_at > bound.at:
                    continue
                mentions.append(comment)
                top = _Mark.advance(top, comment.created_at, comment.external_id)
            if isinstance(thread_id, str):
                handled.add(thread_id)

        sweep_goes_on = (
            stop is not None and not reached_stop and bool(items) and isinstance(next_token, str)
        )
        if sweep_goes_on:
            next_sweep: dict[str, Any] | None = {
                "page_token": next_token,
                "stop": stop.to_json() if stop else None,
                "top": top.to_json() if top else None,
                "handled": sorted(handled),
            }
            committed = mark
        else:
            next_sweep = None
            committed = top
        return PullResult(
            mentions=mentions,
            cursor=_cursor(committed, next_sweep, quota),
            more=sweep_goes_on,
            rate_limit=rate_limit,
            skipped=skipped,
            quota_used=QUOTA_UNITS_PER_CALL,
        )

    def backfill_cursor(self, since: datetime) -> dict[str, Any]:
        """A cursor whose next sweep pages back to the first thread with nothing at or after
        `since` (commentThreads.list cannot start at a time). The day's quota count is lost: see
        the module docstring."""
        return {"mark": _Mark(since.astimezone(UTC), frozenset()).to_json()}

    async def _list_threads(
        self,
        client: httpx.AsyncClient,
        config: YoutubeConfig,
        api_key: str,
        page_token: str | None,
    ) -> httpx.Response:
        params: dict[str, str | int] = {
            "part": "snippet,replies",
            "allThreadsRelatedToChannelId": config.channel_id,
            "order": "time",
            "maxResults": config.max_results,
            "key": api_key,
        }
        if page_token:
            params["pageToken"] = page_token
        try:
            return await client.get(f"{config.api_base.rstrip('/')}/commentThreads", params=params)
        except httpx.TransportError as exc:
            raise TransientError(f"youtube: request failed: {exc!r}") from exc


def _cursor(mark: _Mark | None, sweep: dict[str, Any] | None, quota: _QuotaDay) -> dict[str, Any]:
    cursor: dict[str, Any] = {"mark": mark.to_json() if mark else None, "quota": quota.to_json()}
    if sweep is not None:
        cursor["sweep"] = sweep
    return cursor


# --- wire format -----------------------------------------------------------------------------


class _Malformed(Exception):
    """A comment that cannot be normalised; it is skipped, the page goes on."""


def _error_reasons(response: httpx.Response) -> set[str]:
    """Reasons in Google's error body: `error.errors[].reason` and `error.details[].reason`."""
    try:
        body = response.json()
    except ValueError:
        return set()
    error = body.get("error") if isinstance(body, dict) else None
    if not isinstance(error, dict):
        return set()
    reasons: set[str] = set()
    for key in ("errors", "details"):
        entries = error.get(key)
        if isinstance(entries, list):
            reasons.update(
                e["reason"]
                for e in entries
                if isinstance(e, dict) and isinstance(e.get("reason"), str)
            )
    return reasons


def _raise_for_status(response: httpx.Response, now: datetime) -> None:
    status = response.status_code
    if status < 400:
        return
    reasons = _error_reasons(response)
    detail = f"youtube: HTTP {status} ({', '.join(sorted(reasons)) or 'no reason'})"
    if reasons & DAILY_QUOTA_REASONS:
        raise RateLimited(detail, (next_pacific_midnight(now) - now).total_seconds())
    if reasons & SHORT_RATE_LIMIT_REASONS or status == 429:
        raise RateLimited(detail, retry_after_seconds(response) or DEFAULT_RETRY_AFTER_S)
    if "commentsDisabled" in reasons:
        raise BadConfig(f"{detail}: comments are disabled")
    if reasons & KEY_REASONS or reasons & ACCESS_REASONS or status in (401, 403):
        raise AuthFailed(detail)
    if status >= 500:
        raise TransientError(detail)
    raise BadConfig(detail)


def _json(response: httpx.Response) -> dict[str, Any]:
    try:
        body = response.json()
    except ValueError as exc:
        raise TransientError("youtube: answer is not JSON") from exc
    if not isinstance(body, dict):
        raise TransientError("youtube: answer is not a JSON object")
    return body


def _thread(item: Any) -> tuple[list[FetchedMention], list[SkippedItem]]:
    """A commentThread's top-level comment and listed replies, normalised one by one."""
    snippet = item.get("snippet") if isinstance(item, dict) else None
    if not isinstance(snippet, dict):
        return [], [SkippedItem("comment thread without snippet", item)]
    top = snippet.get("topLevelComment")
    top_id = top.get("id") if isinstance(top, dict) else None
    video_id = snippet.get("videoId")
    if not isinstance(top_id, str) or not top_id or not isinstance(video_id, str) or not video_id:
        return [], [SkippedItem("comment thread without top-level comment id or videoId", item)]
    comments: list[FetchedMention] = []
    skipped: list[SkippedItem] = []
    total_replies = snippet.get("totalReplyCount")
    replies = item.get("replies")
    raw_replies = replies.get("comments") if isinstance(replies, dict) else None
    candidates: list[tuple[Any, str | None]] = [(top, None)]
    if isinstance(raw_replies, list):
        candidates += [(reply, top_id) for reply in raw_replies]
    for raw, parent in candidates:
        try:
            comments.append(
                _comment(raw, video_id, parent, total_replies if parent is None else None)
            )
        except _Malformed as exc:
            skipped.append(SkippedItem(str(exc), raw))
    return comments, skipped


def _comment(raw: Any, video_id: str, parent: str | None, replies: Any) -> FetchedMention:
    snippet = raw.get("snippet") if isinstance(raw, dict) else None
    comment_id = raw.get("id") if isinstance(raw, dict) else None
    if not isinstance(snippet, dict) or not isinstance(comment_id, str) or not comment_id:
        raise _Malformed("comment without id or snippet")
    published = snippet.get("publishedAt")
    if not isinstance(published, str):
        raise _Malformed("comment without publishedAt")
    try:
        created_at = parse_time(published)
    except ValueError as exc:
        raise _Malformed(f"unreadable publishedAt {published!r}") from exc
    original, display = snippet.get("textOriginal"), snippet.get("textDisplay")
    if isinstance(original, str):
        text = original
    elif isinstance(display, str):
        text = html_to_text(display)
    else:
        raise _Malformed("comment without text")
    name = snippet.get("authorDisplayName")
    channel = snippet.get("authorChannelId")
    channel_id = channel.get("value") if isinstance(channel, dict) else None
    if not isinstance(name, str) or not name:
        raise _Malformed("comment without authorDisplayName")
    updated = snippet.get("updatedAt")
    edited_at = None
    if isinstance(updated, str) and updated != published:
        try:
            edited_at = parse_time(updated)
        except ValueError:
            edited_at = None
    likes = snippet.get("likeCount")
    return FetchedMention(
        network=NETWORK,
        external_id=comment_id,
        kind="comment" if parent is None else "reply",
        text=text,
        created_at=created_at,
        author=FetchedAuthor(
            id=channel_id if isinstance(channel_id, str) and channel_id else name,
            handle=name,
            display_name=name,
        ),
        root_external_id=video_id,
        parent_external_id=parent or video_id,
        url=f"{WATCH_URL}?v={video_id}&lc={comment_id}",
        engagement=Engagement(
            likes=likes if isinstance(likes, int) else None,
            replies=replies if isinstance(replies, int) else None,
        ),
        edited_at=edited_at,
        raw=raw,
    )
