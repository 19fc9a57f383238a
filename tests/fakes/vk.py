"""A local VK API that answers `newsfeed.search` (https://dev.vk.com/ru/method/newsfeed.search:
newest first, `next_from` paging, `start_time`) and `wall.getComments`
(https://dev.vk.com/ru/method/wall.getComments: threads, `start_comment_id` and `offset` paging,
`sort`), with extended authors and errors in a 200 answer's `error` object."""

from __future__ import annotations

from typing import Any
from urllib.parse import parse_qsl

from starlette.applications import Starlette
from starlette.requests import Request
from starlette.responses import JSONResponse, PlainTextResponse, Response
from starlette.routing import Route


class FakeVkApi:
    """Tests fill `posts` (the search index), `comments` (by post, `<owner>_<post>`: VK comment
    objects, a reply carrying `parents_stack` [its top-level comment]), `profiles` and `groups`,
    queue `errors` (code, message) for the next calls, and read `requests` (what each call
    sent, in its query string and form) and `methods` (which method each call named)."""

    def __init__(self, token: str) -> None:
        self.token = token
        self.posts: list[dict[str, Any]] = []
        self.comments: dict[str, list[dict[str, Any]]] = {}
        self.profiles: list[dict[str, Any]] = []
        self.groups: list[dict[str, Any]] = []
        self.errors: list[tuple[int, str]] = []
        self.http_status: int | None = None  # answer this HTTP status with no API body
        self.requests: list[dict[str, dict[str, str]]] = []
        self.methods: list[str] = []
        self.app = Starlette(
            routes=[
                Route("/method/newsfeed.search", self._search, methods=["GET", "POST"]),
                Route("/method/wall.getComments", self._comments, methods=["GET", "POST"]),
            ]
        )

    async def _accept(self, request: Request, method: str) -> dict[str, str] | Response:
        """The call's parameters, or the answer VK gives a call it refuses."""
        query = dict(request.query_params)
        # A form body parsed with the standard library: the fake needs no multipart parser.
        form = dict(parse_qsl((await request.body()).decode())) if request.method == "POST" else {}
        self.requests.append({"query": query, "form": form})
        self.methods.append(method)
        params = {**query, **form}
        if self.http_status is not None:
            return PlainTextResponse("upstream unavailable", status_code=self.http_status)
        if params.get("access_token") != self.token:
            return _error(5, "User authorization failed: invalid access_token (4).", params, method)
        if not params.get("v"):
            return _error(8, "Invalid request: v (version) is required", params, method)
        if self.errors:
            code, message = self.errors.pop(0)
            return _error(code, message, params, method)
        return params

    async def _search(self, request: Request) -> Response:
        params = await self._accept(request, "newsfeed.search")
        if isinstance(params, Response):
            return params
        q = params.get("q", "").lower()
        start_time = int(params.get("start_time", 0))
        matches = [
            p
            for p in self.posts
            if q in str(p.get("text", "")).lower() and int(p.get("date", 0)) >= start_time
        ]
        matches.sort(key=lambda p: (int(p.get("date", 0)), int(p.get("id", 0))), reverse=True)
        offset = int(params.get("start_from", "0").split("/")[0] or 0)
        count = max(1, min(int(params.get("count", 30)), 200))
        page = matches[offset : offset + count]
        body: dict[str, Any] = {"items": page, "count": len(page), "total_count": len(matches)}
        if offset + count < len(matches):
            # VK's next_from is opaque; this one only has to round-trip.
            body["next_from"] = f"{offset + count}/fake"
        if params.get("extended") == "1":
            body.update(self._authors({int(p["from_id"]) for p in page if "from_id" in p}))
        return JSONResponse({"response": body})

    async def _comments(self, request: Request) -> Response:
        params = await self._accept(request, "wall.getComments")
        if isinstance(params, Response):
            return params
        on_post = self.comments.get(f"{params.get('owner_id')}_{params.get('post_id')}")
        if on_post is None:
            invalid = "One of the parameters specified was missing or invalid: post_id"
            return _error(100, invalid, params, "wall.getComments")
        thread_of = params.get("comment_id")
        level = [c for c in on_post if _thread_root(c) == (int(thread_of) if thread_of else None)]
        descending = params.get("sort") == "desc"
        level.sort(key=lambda c: int(c.get("id", 0)), reverse=descending)
        # With start_comment_id the offset counts from that comment's place (or the nearest
        # earlier one's, if it is gone), as the method's page describes.
        start = int(params.get("offset", 0))
        if "start_comment_id" in params:
            anchor = int(params["start_comment_id"])
            before = [
                i
                for i, c in enumerate(level)
                if (int(c["id"]) >= anchor if descending else int(c["id"]) <= anchor)
            ]
            start += before[-1] if before else 0
        start = max(start, 0)
        count = max(1, min(int(params.get("count", 10)), 100))
        preview = max(0, min(int(params.get("thread_items_count", 0)), 10))
        items: list[dict[str, Any]] = []
        for comment in level[start : start + count]:
            item = dict(comment)
            if thread_of is None:
                replies = sorted(
                    (c for c in on_post if _thread_root(c) == comment.get("id")),
                    key=lambda c: int(c.get("id", 0)),
                )
                item["thread"] = {
                    "count": len(replies),
                    "items": [dict(r) for r in replies[:preview]],
                    "can_post": True,
                    "show_reply_button": True,
                    "groups_can_post": True,
                }
            items.append(item)
        body: dict[str, Any] = {
            "count": len(on_post),
            "current_level_count": len(level),
            "can_post": True,
            "show_reply_button": True,
            "groups_can_post": True,
            "real_offset": start,
            "items": items,
        }
        if params.get("extended") == "1":
            shown = items + [r for i in items for r in i.get("thread", {}).get("items", [])]
            body.update(self._authors({int(c["from_id"]) for c in shown if "from_id" in c}))
        return JSONResponse({"response": body})

    def _authors(self, ids: set[int]) -> dict[str, list[dict[str, Any]]]:
        return {
            "profiles": [u for u in self.profiles if u["id"] in ids],
            "groups": [g for g in self.groups if -g["id"] in ids],
        }


def _thread_root(comment: dict[str, Any]) -> int | None:
    stack = comment.get("parents_stack")
    return int(stack[0]) if isinstance(stack, list) and stack else None


def _error(code: int, message: str, params: dict[str, str], method: str) -> Response:
    shown = [{"key": k, "value": v} for k, v in params.items() if k != "access_token"]
    shown.append({"key": "method", "value": method})
    return JSONResponse(
        {"error": {"error_code": code, "error_msg": message, "request_params": shown}}
    )
