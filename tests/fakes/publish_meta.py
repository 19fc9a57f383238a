"""A local Graph API for one Facebook Page: `POST /{page_id}/feed`
(https://developers.facebook.com/docs/graph-api/reference/page/feed#publish), `POST
/{object_id}/comments` (https://developers.facebook.com/docs/graph-api/reference/object/comments),
their reads with `fields`, `since`, `limit` and `paging.next`, hiding a comment with `POST
/{comment-id}` and `is_hidden` (https://developers.facebook.com/docs/graph-api/reference/comment#updating),
the long-lived token exchange
`GET /oauth/access_token?grant_type=fb_exchange_token`
(https://developers.facebook.com/docs/facebook-login/guides/access-tokens/get-long-lived), and Graph
errors (https://developers.facebook.com/docs/graph-api/guides/error-handling)."""

from __future__ import annotations

import asyncio
import itertools
import secrets
from dataclasses import dataclass, field
from datetime import UTC, datetime
from typing import Any
from urllib.parse import parse_qsl, urlencode

from starlette.applications import Starlette
from starlette.requests import Request
from starlette.responses import JSONResponse, PlainTextResponse, Response
from starlette.routing import Route


@dataclass
class GraphFaults:
    """What the next writes meet. `errors` are (HTTP status, code, message, extra headers)
    answered before anything is written; `http_status` answers a bare status before anything is
    written; `delay_s` applies the write, then holds the answer that long."""

    errors: list[tuple[int, int, str, dict[str, str]]] = field(default_factory=list)
    http_status: int | None = None
    delay_s: float = 0.0


APP_ID = "1234567890123"
APP_SECRET = "0123456789abcdef0123456789abcdef"
LONG_LIVED_S = 5_183_944  # the documented example's `expires_in`: about 60 days


class FakeGraphPage:
    """One Page (`page_id`, reachable with `token` and the tokens exchanged from it). Tests add
    others' posts and comments with `add`, set `faults` (writes, hides included) and
    `exchange_errors` (token exchanges), revoke every token with `revoke_tokens`, and read `items`
    (every post and comment, by id, a comment's `is_hidden` among its fields), `hide_calls` and
    `exchanges`."""

    def __init__(
        self,
        token: str,
        page_id: str,
        version: str = "v21.0",
        app_id: str = APP_ID,
        app_secret: str = APP_SECRET,
    ) -> None:
        self.token = token
        self.tokens = {token}  # exchanging a token leaves the old one valid until it expires
        self.page_id = page_id
        self.version = version
        self.app_id = app_id
        self.app_secret = app_secret
        self.token_lifetime_s: int | None = LONG_LIVED_S  # None: tokens that never expire
        self.exchanges = 0
        self.hide_calls = 0
        self.exchange_errors: list[tuple[int, int, str, dict[str, str]]] = []
        self.items: dict[str, dict[str, Any]] = {}
        self.faults = GraphFaults()
        self._ids = itertools.count(1000)
        self.app = Starlette(
            routes=[
                Route(f"/{version}/oauth/access_token", self._exchange, methods=["GET"]),
                Route(f"/{version}/{{object_id}}/{{edge}}", self._edge, methods=["GET", "POST"]),
                Route(f"/{version}/{{object_id}}", self._update, methods=["POST"]),
            ]
        )

    def revoke_tokens(self) -> None:
        """What a password change or removing the app does: every token stops working."""
        self.tokens.clear()

    def add(
        self,
        message: str,
        from_id: str,
        parent: str | None = None,
        created: datetime | None = None,
    ) -> dict[str, Any]:
        """A post on the Page (no `parent`) or a comment on `parent`."""
        number = next(self._ids)
        item_id = f"{self.page_id}_{number}" if parent is None else f"{number}_{number + 1}"
        item: dict[str, Any] = {
            "id": item_id,
            "message": message,
            "from": {"id": from_id, "name": "ACME" if from_id == self.page_id else "Kate"},
            "created_time": (created or datetime.now(UTC)).strftime("%Y-%m-%dT%H:%M:%S+0000"),
            "parent": parent,
        }
        if parent is not None:
            item["is_hidden"] = False
        self.items[item_id] = item
        return item

    def of(self, parent: str | None) -> list[dict[str, Any]]:
        return [i for i in self.items.values() if i["parent"] == parent]

    async def _edge(self, request: Request) -> Response:
        object_id, edge = request.path_params["object_id"], request.path_params["edge"]
        form = dict(parse_qsl((await request.body()).decode())) if request.method == "POST" else {}
        params = {**dict(request.query_params), **form}
        bearer = request.headers.get("authorization", "").removeprefix("Bearer ")
        if (params.get("access_token") or bearer) not in self.tokens:
            return _error(
                400, 190, "Error validating access token: The session has been invalidated"
            )
        parent = None if edge == "feed" else object_id
        if (edge == "feed" and object_id != self.page_id) or (
            edge == "comments" and object_id not in self.items
        ):
            return _error(400, 100, f"Unsupported {request.method} request. Object {object_id}")
        if edge not in ("feed", "comments"):
            return _error(400, 100, f"Tried accessing nonexisting field ({edge})")
        if request.method == "GET":
            return self._read(request, parent, params)
        if self.faults.http_status is not None:
            status, self.faults.http_status = self.faults.http_status, None
            return PlainTextResponse("Service Unavailable", status_code=status)
        if self.faults.errors:
            status, code, message, headers = self.faults.errors.pop(0)
            return _error(status, code, message, headers)
        if not params.get("message", "").strip():
            return _error(400, 100, "(#100) Missing message or attachment")
        item = self.add(params["message"], self.page_id, parent)
        delay, self.faults.delay_s = self.faults.delay_s, 0.0
        if delay:
            await asyncio.sleep(delay)  # written already; the answer is what is late
        return JSONResponse({"id": item["id"]})

    async def _update(self, request: Request) -> Response:
        """`POST /{comment-id}`: `is_hidden=true` hides the comment, `false` shows it again;
        either way the answer is `{"success": true}`, whatever the comment's state was."""
        object_id = request.path_params["object_id"]
        params = {**dict(request.query_params), **dict(parse_qsl((await request.body()).decode()))}
        bearer = request.headers.get("authorization", "").removeprefix("Bearer ")
        if (params.get("access_token") or bearer) not in self.tokens:
            return _error(
                400, 190, "Error validating access token: The session has been invalidated"
            )
        comment = self.items.get(object_id)
        if comment is None or comment["parent"] is None:
            return _error(
                400,
                100,
                f"Unsupported post request. Object with ID '{object_id}' does not exist, cannot "
                "be loaded due to missing permissions, or does not support this operation",
                subcode=33,
            )
        if self.faults.http_status is not None:
            status, self.faults.http_status = self.faults.http_status, None
            return PlainTextResponse("Service Unavailable", status_code=status)
        if self.faults.errors:
            status, code, message, headers = self.faults.errors.pop(0)
            return _error(status, code, message, headers)
        if params.get("is_hidden") not in ("true", "false"):
            return _error(400, 100, "(#100) Param is_hidden must be a boolean")
        self.hide_calls += 1
        comment["is_hidden"] = params["is_hidden"] == "true"
        delay, self.faults.delay_s = self.faults.delay_s, 0.0
        if delay:
            await asyncio.sleep(delay)  # hidden already; the answer is what is late
        return JSONResponse({"success": True})

    async def _exchange(self, request: Request) -> Response:
        params = request.query_params
        if self.exchange_errors:
            status, code, message, headers = self.exchange_errors.pop(0)
            return _error(status, code, message, headers)
        if params.get("grant_type") != "fb_exchange_token":
            return _error(400, 100, "Invalid grant_type")
        if params.get("client_id") != self.app_id:
            return _error(400, 101, "Error validating application. Invalid application ID.")
        if params.get("client_secret") != self.app_secret:
            return _error(400, 1, "Error validating client secret.")
        if params.get("fb_exchange_token") not in self.tokens:
            return _error(
                400,
                190,
                "Error validating access token: The session has been invalidated because the "
                "user changed their password or Facebook has changed the session for security "
                "reasons.",
            )
        token = "EAAB" + secrets.token_urlsafe(24)
        self.tokens.add(token)
        self.exchanges += 1
        body: dict[str, Any] = {"access_token": token, "token_type": "bearer"}
        if self.token_lifetime_s is not None:
            body["expires_in"] = self.token_lifetime_s
        return JSONResponse(body)

    def _read(self, request: Request, parent: str | None, params: dict[str, str]) -> Response:
        items = sorted(self.of(parent), key=lambda i: (i["created_time"], i["id"]), reverse=True)
        if params.get("since"):
            since = datetime.fromtimestamp(int(params["since"]), UTC)
            items = [i for i in items if datetime.fromisoformat(i["created_time"]) >= since]
        if parent is not None and params.get("order") != "reverse_chronological":
            items.reverse()  # comments default to chronological
        offset = int(params.get("offset", 0))
        limit = int(params.get("limit", 25))
        fields = params.get("fields", "id").split(",")
        page = [{k: v for k, v in i.items() if k in fields} for i in items[offset : offset + limit]]
        body: dict[str, Any] = {"data": page}
        if offset + limit < len(items):
            following = {k: v for k, v in params.items() if k != "access_token"}
            following["offset"] = str(offset + limit)
            body["paging"] = {"next": f"{str(request.url).split('?')[0]}?{urlencode(following)}"}
        return JSONResponse(body)


def _error(
    status: int,
    code: int,
    message: str,
    headers: dict[str, str] | None = None,
    *,
    subcode: int | None = None,
) -> Response:
    error = {
        "message": message,
        "type": "OAuthException",
        "code": code,
        "error_subcode": 460 if code == 190 else subcode,
        "fbtrace_id": "AbCdEfGh123",
    }
    return JSONResponse({"error": error}, status_code=status, headers=headers)
