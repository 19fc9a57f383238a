"""A local YouTube Data API v3 for connector tests: `commentThreads.list` for one channel with
`pageToken` paging, a daily quota that resets at midnight Pacific time, and Google's error bodies
(`{"error": {"code", "message", "errors": [{"reason"}]}}`) for quota, key and access errors.

Wire formats follow https://developers.google.com/youtube/v3/docs/commentThreads/list and
https://developers.google.com/youtube/v3/docs/errors; the JSON shapes come from
`tests/fixtures/youtube/`. Threads are listed newest activity first (a new reply brings its thread
to the top), which is the order the connector is built for; page tokens are positional, so pages
shift when new comments arrive between calls, as offset-based tokens do.
"""

from __future__ import annotations

import base64
import copy
import itertools
import json
from collections.abc import Callable
from datetime import date, datetime
from pathlib import Path
from typing import Any
from zoneinfo import ZoneInfo

from starlette.applications import Starlette
from starlette.requests import Request
from starlette.responses import JSONResponse, Response
from starlette.routing import Route

FIXTURES = Path(__file__).resolve().parent.parent / "fixtures" / "youtube"
PACIFIC = ZoneInfo("America/Los_Angeles")
CHANNEL_ID = "UCAcmeShoes0000000000001"


def fixture(name: str) -> dict[str, Any]:
    """A fixture file as a dict (its `_doc` names the page it follows)."""
    data: dict[str, Any] = json.loads((FIXTURES / name).read_text())
    return data


def error_body(reason: str) -> tuple[int, dict[str, Any]]:
    """Google's error body for `reason`, and its HTTP status, from the errors fixture."""
    body: dict[str, Any] = fixture("errors.json")[reason]
    return int(body["error"]["code"]), body


def _iso(moment: datetime) -> str:
    return moment.strftime("%Y-%m-%dT%H:%M:%SZ")


class FakeYoutube:
    """The channel's comment threads, the API key, the quota counter, and the ASGI app."""

    def __init__(
        self,
        now: Callable[[], datetime],
        *,
        api_key: str = "AIzaSyTest-opensmm-key",
        channel_id: str = CHANNEL_ID,
        daily_quota: int = 10_000,
    ) -> None:
        self.now = now
        self.api_key = api_key
        self.channel_id = channel_id
        self.daily_quota = daily_quota
        self.threads: list[dict[str, Any]] = []
        self.calls: list[dict[str, str]] = []
        self.quota_used = 0
        self._quota_day: date | None = None
        self.comments_disabled = False
        self.fail_next: list[str] = []  # reasons from errors.json to answer with, in order
        self._ids = itertools.count(1)
        self.app = Starlette(routes=[Route("/commentThreads", self._comment_threads)])

    # --- making content ----------------------------------------------------------------------

    def load_threads(self, name: str = "comment_threads.json") -> None:
        self.threads.extend(copy.deepcopy(fixture(name)["items"]))

    def add_thread(
        self,
        text: str,
        *,
        video_id: str = "vid00000001",
        author: str = "@viewer",
        published_at: datetime | None = None,
    ) -> str:
        """A new top-level comment on `video_id`; returns the thread (and comment) id."""
        thread_id = f"Ugz{next(self._ids):020d}AaABAg"
        comment = self._comment(thread_id, text, video_id, author, published_at or self.now())
        self.threads.append(
            {
                "kind": "youtube#commentThread",
                "etag": f"etag-{thread_id}",
                "id": thread_id,
                "snippet": {
                    "channelId": self.channel_id,
                    "videoId": video_id,
                    "topLevelComment": comment,
                    "canReply": True,
                    "totalReplyCount": 0,
                    "isPublic": True,
                },
            }
        )
        return thread_id

    def add_reply(
        self,
        thread_id: str,
        text: str,
        *,
        author: str = "@replier",
        published_at: datetime | None = None,
    ) -> str:
        """A reply to the thread's top-level comment; returns the reply's id."""
        thread = next(t for t in self.threads if t["id"] == thread_id)
        reply_id = f"{thread_id}.{next(self._ids):011d}"
        video_id = thread["snippet"]["videoId"]
        reply = self._comment(reply_id, text, video_id, author, published_at or self.now())
        reply["snippet"]["parentId"] = thread_id
        thread.setdefault("replies", {"comments": []})["comments"].append(reply)
        thread["snippet"]["totalReplyCount"] += 1
        return reply_id

    def _comment(
        self, comment_id: str, text: str, video_id: str, author: str, published_at: datetime
    ) -> dict[str, Any]:
        return {
            "kind": "youtube#comment",
            "etag": f"etag-{comment_id}",
            "id": comment_id,
            "snippet": {
                "channelId": self.channel_id,
                "videoId": video_id,
                "textDisplay": text,
                "textOriginal": text,
                "authorDisplayName": author,
                "authorChannelUrl": f"http://www.youtube.com/{author}",
                "authorChannelId": {"value": f"UC{author.strip('@'):_<22}"[:24]},
                "canRate": True,
                "viewerRating": "none",
                "likeCount": 0,
                "publishedAt": _iso(published_at),
                "updatedAt": _iso(published_at),
            },
        }

    # --- the endpoint ------------------------------------------------------------------------

    async def _comment_threads(self, request: Request) -> Response:
        params = dict(request.query_params)
        self.calls.append(params)
        key = params.get("key")
        if not key:
            return self._error("forbidden")
        if key != self.api_key:
            return self._error("keyInvalid")
        today = self.now().astimezone(PACIFIC).date()
        if self._quota_day != today:
            self._quota_day, self.quota_used = today, 0
        if self.quota_used + 1 > self.daily_quota:
            return self._error("quotaExceeded")
        self.quota_used += 1
        if self.fail_next:
            return self._error(self.fail_next.pop(0))
        if params.get("allThreadsRelatedToChannelId") != self.channel_id:
            return self._error("channelNotFound")
        if self.comments_disabled:
            return self._error("commentsDisabled")
        max_results = int(params.get("maxResults", "20"))
        try:
            offset = _offset(params.get("pageToken"))
        except ValueError:
            return self._error("invalidPageToken")
        ordered = sorted(self.threads, key=_activity, reverse=True)
        page = ordered[offset : offset + max_results]
        body: dict[str, Any] = {
            "kind": "youtube#commentThreadListResponse",
            "etag": f"etag-page-{offset}",
            "pageInfo": {"totalResults": len(ordered), "resultsPerPage": max_results},
            "items": copy.deepcopy(page),
        }
        if offset + max_results < len(ordered):
            body["nextPageToken"] = _token(offset + max_results)
        return JSONResponse(body)

    def _error(self, reason: str) -> Response:
        status, body = error_body(reason)
        return JSONResponse(body, status_code=status)


def _activity(thread: dict[str, Any]) -> str:
    """The newest publishedAt in a thread (ISO strings in UTC sort as times)."""
    snippet = thread.get("snippet", {})
    stamps = [snippet.get("topLevelComment", {}).get("snippet", {}).get("publishedAt", "")]
    for reply in thread.get("replies", {}).get("comments", []):
        stamps.append(reply.get("snippet", {}).get("publishedAt", ""))
    return max(str(stamp) for stamp in stamps)


def _token(offset: int) -> str:
    return base64.urlsafe_b64encode(f"CAoQAA:{offset}".encode()).decode().rstrip("=")


def _offset(token: str | None) -> int:
    if not token:
        return 0
    try:
        raw = base64.urlsafe_b64decode(token + "=" * (-len(token) % 4)).decode()
    except (ValueError, UnicodeDecodeError) as exc:
        raise ValueError(token) from exc
    prefix, _, number = raw.partition(":")
    if prefix != "CAoQAA" or not number.isdigit():
        raise ValueError(token)
    return int(number)
