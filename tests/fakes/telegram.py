"""A local Telegram Bot API that answers `getUpdates` the way https://core.telegram.org/bots/api
describes it: an update queue, offsets that confirm updates, long polling and error answers."""

from __future__ import annotations

import asyncio
import contextlib
import json
from typing import Any
from urllib.parse import parse_qsl

from starlette.applications import Starlette
from starlette.requests import Request
from starlette.responses import JSONResponse, PlainTextResponse, Response
from starlette.routing import Route

WEBHOOK_CONFLICT = (
    "Conflict: can't use getUpdates method while webhook is active; "
    "use deleteWebhook to delete the webhook first"
)


class FakeTelegramBotApi:
    """One bot. Tests push updates, flip failure modes and read `requests` (the parameters of
    every getUpdates call, in order)."""

    def __init__(self, token: str) -> None:
        self.token = token
        self.pending: list[dict[str, Any]] = []
        self.requests: list[dict[str, Any]] = []
        self.revoked = False
        self.webhook_url: str | None = None
        self.flood_wait_s: int | None = None  # the next call answers 429 with this retry_after
        self.outage = False  # answer like a broken proxy in front of the API
        self._arrived = asyncio.Event()
        self.long_polling = asyncio.Event()  # set while a getUpdates call waits for updates
        self.app = Starlette(
            routes=[
                Route("/bot{token}/getUpdates", self._get_updates, methods=["GET", "POST"]),
            ]
        )

    def push(self, *updates: dict[str, Any]) -> None:
        self.pending.extend(updates)
        self._arrived.set()

    async def _get_updates(self, request: Request) -> Response:
        params = await _params(request)
        self.requests.append(params)
        if request.path_params["token"] != self.token or self.revoked:
            return _error(401, "Unauthorized")
        if self.outage:
            return PlainTextResponse("<html>502 Bad Gateway</html>", status_code=502)
        if self.flood_wait_s is not None:
            wait, self.flood_wait_s = self.flood_wait_s, None
            return _error(429, f"Too Many Requests: retry after {wait}", retry_after=wait)
        if self.webhook_url is not None:
            return _error(409, WEBHOOK_CONFLICT)

        offset = int(params.get("offset", 0))
        limit = max(1, min(int(params.get("limit", 100)), 100))
        timeout = max(0, int(params.get("timeout", 0)))
        allowed = params.get("allowed_updates")
        # Asking from an offset confirms every earlier update: Telegram forgets it for good.
        self.pending = [u for u in self.pending if int(u.get("update_id", 0)) >= offset]
        loop = asyncio.get_running_loop()
        deadline = loop.time() + timeout
        while True:
            ready = [u for u in self.pending if _wanted(u, allowed)][:limit]
            remaining = deadline - loop.time()
            if ready or remaining <= 0:
                return JSONResponse({"ok": True, "result": ready})
            self._arrived.clear()
            self.long_polling.set()
            try:
                with contextlib.suppress(TimeoutError):
                    await asyncio.wait_for(self._arrived.wait(), remaining)
            finally:
                self.long_polling.clear()


async def _params(request: Request) -> dict[str, Any]:
    """Bot API parameters come in the query string, a form or a JSON body."""
    params: dict[str, Any] = dict(request.query_params)
    if request.method == "POST":
        if request.headers.get("content-type", "").startswith("application/json"):
            params.update(await request.json())
        else:
            params.update(parse_qsl((await request.body()).decode()))
    if isinstance(params.get("allowed_updates"), str):
        params["allowed_updates"] = json.loads(params["allowed_updates"])
    return params


def _wanted(update: dict[str, Any], allowed: Any) -> bool:
    if not allowed:
        return True
    return any(kind in update for kind in allowed)


def _error(code: int, description: str, retry_after: int | None = None) -> Response:
    body: dict[str, Any] = {"ok": False, "error_code": code, "description": description}
    if retry_after is not None:
        body["parameters"] = {"retry_after": retry_after}
    return JSONResponse(body, status_code=code)
