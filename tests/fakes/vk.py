"""A local VK API that answers `newsfeed.search` the way https://dev.vk.com/ru/method/newsfeed.search
describes it: newest first, `next_from` paging, `start_time`, extended authors, and errors in a
200 answer's `error` object."""

from __future__ import annotations

from typing import Any
from urllib.parse import parse_qsl

from starlette.applications import Starlette
from starlette.requests import Request
from starlette.responses import JSONResponse, PlainTextResponse, Response
from starlette.routing import Route


class FakeVkApi:
    """Tests fill `posts`, `profiles` and `groups`, queue `errors` (code, message) for the next
    calls, and read `requests` (what each call sent, in its query string and form)."""

    def __init__(self, token: str) -> None:
        self.token = token
        self.posts: list[dict[str, Any]] = []
        self.profiles: list[dict[str, Any]] = []
        self.groups: list[dict[str, Any]] = []
        self.errors: list[tuple[int, str]] = []
        self.http_status: int | None = None  # answer this HTTP status with no API body
        self.requests: list[dict[str, dict[str, str]]] = []
        self.app = Starlette(
            routes=[Route("/method/newsfeed.search", self._search, methods=["GET", "POST"])]
        )

    async def _search(self, request: Request) -> Response:
        query = dict(request.query_params)
        # A form body parsed with the standard library: the fake needs no multipart parser.
        form = dict(parse_qsl((await request.body()).decode())) if request.method == "POST" else {}
        self.requests.append({"query": query, "form": form})
        params = {**query, **form}
        if self.http_status is not None:
            return PlainTextResponse("upstream unavailable", status_code=self.http_status)
        if params.get("access_token") != self.token:
            return _error(5, "User authorization failed: invalid access_token (4).", params)
        if not params.get("v"):
            return _error(8, "Invalid request: v (version) is required", params)
        if self.errors:
            code, message = self.errors.pop(0)
            return _error(code, message, params)

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
            authors = {int(p["from_id"]) for p in page if "from_id" in p}
            body["profiles"] = [u for u in self.profiles if u["id"] in authors]
            body["groups"] = [g for g in self.groups if -g["id"] in authors]
        return JSONResponse({"response": body})


def _error(code: int, message: str, params: dict[str, str]) -> Response:
    shown = [{"key": k, "value": v} for k, v in params.items() if k != "access_token"]
    shown.append({"key": "method", "value": "newsfeed.search"})
    return JSONResponse(
        {"error": {"error_code": code, "error_msg": message, "request_params": shown}}
    )
