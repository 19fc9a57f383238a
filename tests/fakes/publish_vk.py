"""A local VK API for the publisher: `wall.post` (https://dev.vk.com/ru/method/wall.post) and
`wall.createComment` (https://dev.vk.com/ru/method/wall.createComment), both honouring `guid`, and
the reads reconcile uses, `wall.get` (https://dev.vk.com/ru/method/wall.get) and
`wall.getComments` (https://dev.vk.com/ru/method/wall.getComments), with errors in a 200 answer's
`error` object (https://dev.vk.com/ru/reference/errors)."""

from __future__ import annotations

import asyncio
import time
from dataclasses import dataclass, field
from typing import Any
from urllib.parse import parse_qsl

from starlette.applications import Starlette
from starlette.requests import Request
from starlette.responses import JSONResponse, PlainTextResponse, Response
from starlette.routing import Route


@dataclass
class WriteFaults:
    """What the next write calls meet. `errors` are VK error (code, message) pairs answered
    before anything is written; `http_status` answers that HTTP status with no API body, before
    anything is written; `delay_s` applies the write, then holds the answer that long."""

    errors: list[tuple[int, str]] = field(default_factory=list)
    http_status: int | None = None
    delay_s: float = 0.0


class FakeVkWall:
    """One community's wall (`group_id`) and the comments on it. Tests add posts and comments
    of others with `add_post` / `add_comment`, set `faults`, and read `posts`, `comments` and
    `guid_replays` (writes answered with an earlier write's id because their guid repeated)."""

    def __init__(self, token: str, group_id: int) -> None:
        self.token = token
        self.group_id = group_id
        self.posts: list[dict[str, Any]] = []  # oldest first
        self.comments: list[dict[str, Any]] = []  # on any post of the wall, oldest first
        self.faults = WriteFaults()
        self.guid_replays = 0
        self._by_guid: dict[tuple[str, str], dict[str, Any]] = {}
        self._next_id = 1
        self.app = Starlette(
            routes=[
                Route("/method/wall.post", self._post, methods=["POST"]),
                Route("/method/wall.createComment", self._comment, methods=["POST"]),
                Route("/method/wall.get", self._wall, methods=["POST"]),
                Route("/method/wall.getComments", self._comments, methods=["POST"]),
            ]
        )

    def add_post(self, text: str, from_id: int, date: int | None = None) -> dict[str, Any]:
        post = {
            "id": self._new_id(),
            "owner_id": -self.group_id,
            "from_id": from_id,
            "date": date if date is not None else int(time.time()),
            "text": text,
            "post_type": "post",
        }
        self.posts.append(post)
        return post

    def add_comment(
        self, post_id: int, text: str, from_id: int, reply_to_comment: int | None = None
    ) -> dict[str, Any]:
        comment: dict[str, Any] = {
            "id": self._new_id(),
            "owner_id": -self.group_id,
            "post_id": post_id,
            "from_id": from_id,
            "date": int(time.time()),
            "text": text,
            "parents_stack": [],
        }
        if reply_to_comment is not None:
            parent = next(c for c in self.comments if c["id"] == reply_to_comment)
            # VK keeps two levels: a reply sits in the thread of its top-level comment.
            comment["parents_stack"] = parent["parents_stack"][:1] or [parent["id"]]
            comment["reply_to_comment"] = reply_to_comment
        self.comments.append(comment)
        return comment

    def _new_id(self) -> int:
        self._next_id += 1
        return self._next_id

    async def _accept(self, request: Request) -> dict[str, str] | Response:
        params = dict(parse_qsl((await request.body()).decode(), keep_blank_values=True))
        if params.get("access_token") != self.token:
            return _error(5, "User authorization failed: invalid access_token (4).")
        if not params.get("v"):
            return _error(8, "Invalid request: v (version) is required")
        return params

    async def _write_fault(self) -> Response | None:
        if self.faults.http_status is not None:
            status, self.faults.http_status = self.faults.http_status, None
            return PlainTextResponse("upstream unavailable", status_code=status)
        if self.faults.errors:
            code, message = self.faults.errors.pop(0)
            return _error(code, message)
        return None

    async def _answer(self, result: dict[str, Any]) -> Response:
        delay, self.faults.delay_s = self.faults.delay_s, 0.0
        if delay:
            await asyncio.sleep(delay)  # written already; the answer is what is late
        return JSONResponse({"response": result})

    async def _post(self, request: Request) -> Response:
        params = await self._accept(request)
        if isinstance(params, Response):
            return params
        refused = await self._write_fault()
        if refused is not None:
            return refused
        if params.get("owner_id") != str(-self.group_id):
            return _error(214, "Access to adding post denied")
        if not params.get("message", "").strip():
            return _error(100, "One of the parameters specified was missing or invalid: message")
        replay = self._replay("wall.post", params)
        if replay is not None:
            return JSONResponse({"response": {"post_id": replay["id"]}})
        author = -self.group_id if params.get("from_group") == "1" else 1
        post = self.add_post(params["message"], author)
        self._remember("wall.post", params, post)
        return await self._answer({"post_id": post["id"]})

    async def _comment(self, request: Request) -> Response:
        params = await self._accept(request)
        if isinstance(params, Response):
            return params
        refused = await self._write_fault()
        if refused is not None:
            return refused
        post_id = int(params.get("post_id", 0))
        if params.get("owner_id") != str(-self.group_id) or not any(
            p["id"] == post_id for p in self.posts
        ):
            return _error(100, "One of the parameters specified was missing or invalid: post_id")
        reply_to = params.get("reply_to_comment")
        if reply_to and not any(c["id"] == int(reply_to) for c in self.comments):
            invalid = "One of the parameters specified was missing or invalid: reply_to_comment"
            return _error(100, invalid)
        if not params.get("message", "").strip():
            return _error(100, "One of the parameters specified was missing or invalid: message")
        replay = self._replay("wall.createComment", params)
        if replay is not None:
            return JSONResponse(
                {"response": {"comment_id": replay["id"], "parents_stack": replay["parents_stack"]}}
            )
        author = -int(params["from_group"]) if params.get("from_group") else 1
        comment = self.add_comment(
            post_id, params["message"], author, int(reply_to) if reply_to else None
        )
        self._remember("wall.createComment", params, comment)
        return await self._answer(
            {"comment_id": comment["id"], "parents_stack": comment["parents_stack"]}
        )

    def _replay(self, method: str, params: dict[str, str]) -> dict[str, Any] | None:
        guid = params.get("guid")
        earlier = self._by_guid.get((method, guid)) if guid else None
        if earlier is not None:
            self.guid_replays += 1
        return earlier

    def _remember(self, method: str, params: dict[str, str], item: dict[str, Any]) -> None:
        if params.get("guid"):
            self._by_guid[(method, params["guid"])] = item

    async def _wall(self, request: Request) -> Response:
        params = await self._accept(request)
        if isinstance(params, Response):
            return params
        newest_first = sorted(self.posts, key=lambda p: (p["date"], p["id"]), reverse=True)
        if params.get("filter") == "owner":
            newest_first = [p for p in newest_first if p["from_id"] == -self.group_id]
        pinned = [p for p in newest_first if p.get("is_pinned")]
        ordered = pinned + [p for p in newest_first if not p.get("is_pinned")]
        return JSONResponse({"response": _page(ordered, params)})

    async def _comments(self, request: Request) -> Response:
        params = await self._accept(request)
        if isinstance(params, Response):
            return params
        post_id = int(params.get("post_id", 0))
        if not any(p["id"] == post_id for p in self.posts):
            return _error(100, "One of the parameters specified was missing or invalid: post_id")
        on_post = [c for c in self.comments if c["post_id"] == post_id]
        thread = int(params["comment_id"]) if params.get("comment_id") else None
        level = [c for c in on_post if (c["parents_stack"][:1] or [None])[0] == thread]
        level.sort(key=lambda c: int(c["id"]), reverse=params.get("sort") == "desc")
        return JSONResponse({"response": _page(level, params)})


def _page(items: list[dict[str, Any]], params: dict[str, str]) -> dict[str, Any]:
    offset = int(params.get("offset", 0))
    count = max(1, min(int(params.get("count", 20)), 100))
    return {"count": len(items), "items": items[offset : offset + count]}


def _error(code: int, message: str) -> Response:
    return JSONResponse({"error": {"error_code": code, "error_msg": message}})
