"""A local Reddit for connector tests: the app-only OAuth token endpoint and the two listings the
connector reads (`/search`, `/r/<sub>/comments`), with `after`/`before` paging, the X-Ratelimit-*
headers, 429 when the request budget is spent, and 401 for unknown, expired or revoked tokens.

Wire formats follow https://www.reddit.com/dev/api/ and
https://github.com/reddit-archive/reddit/wiki/OAuth2; the JSON shapes come from
`tests/fixtures/reddit/`. One server plays both www.reddit.com and oauth.reddit.com.
"""

from __future__ import annotations

import base64
import binascii
import copy
import json
import secrets
import urllib.parse
from collections.abc import Callable
from dataclasses import dataclass
from datetime import datetime, timedelta
from pathlib import Path
from typing import Any

from starlette.applications import Starlette
from starlette.requests import Request
from starlette.responses import JSONResponse, Response
from starlette.routing import Route

FIXTURES = Path(__file__).resolve().parent.parent / "fixtures" / "reddit"
APP_ID = "opensmm-app-id"
APP_SECRET = "opensmm-app-secret"


def fixture(name: str) -> dict[str, Any]:
    """A fixture file as a dict (its `_doc` names the page it follows)."""
    data: dict[str, Any] = json.loads((FIXTURES / name).read_text())
    return data


@dataclass
class SeenRequest:
    """What the fake was asked, for assertions on the connector's requests."""

    path: str
    params: dict[str, str]
    headers: dict[str, str]


class FakeReddit:
    """Reddit's state (things, tokens, rate-limit window) plus the ASGI app serving it."""

    def __init__(
        self,
        now: Callable[[], datetime],
        *,
        client_id: str = APP_ID,
        client_secret: str = APP_SECRET,
        token_lifetime_s: int = 86_400,
    ) -> None:
        self.now = now
        self.client_id = client_id
        self.client_secret = client_secret
        self.token_lifetime_s = token_lifetime_s
        self.tokens: dict[str, datetime] = {}
        self.tokens_issued = 0
        # Every listing is newest first: new things go to the front, as on Reddit.
        self.things: list[dict[str, Any]] = []
        self.requests: list[SeenRequest] = []
        self.reject_all_tokens = False
        self.ratelimit_used = 0
        self.ratelimit_remaining = 600.0
        self.ratelimit_reset_s = 420
        self.fail_next: list[tuple[int, dict[str, Any]]] = []
        self._next_id = int("1gs0000", 36)
        self.app = Starlette(
            routes=[
                Route("/api/v1/access_token", self._access_token, methods=["POST"]),
                Route("/search", self._search, methods=["GET"]),
                Route("/r/{subreddit}/comments", self._subreddit_comments, methods=["GET"]),
            ]
        )

    # --- making content ----------------------------------------------------------------------

    def load_listing(self, name: str) -> list[str]:
        """Append a fixture Listing's children (kept as they are, malformed ones included)."""
        children = copy.deepcopy(fixture(name)["data"]["children"])
        self.things.extend(children)
        return [str(c["data"].get("name")) for c in children]

    def add_post(
        self,
        title: str,
        selftext: str = "",
        *,
        author: str = "alice",
        subreddit: str = "AcmeShoes",
        created_at: datetime | None = None,
    ) -> str:
        """A new self post, newest in every listing; returns its fullname."""
        post_id = self._new_id()
        slug = "_".join(title.lower().split())[:50]
        self.things.insert(
            0,
            {
                "kind": "t3",
                "data": {
                    "subreddit": subreddit,
                    "selftext": selftext,
                    "author_fullname": f"t2_{author}",
                    "title": title,
                    "name": f"t3_{post_id}",
                    "score": 1,
                    "is_self": True,
                    "created_utc": (created_at or self.now()).timestamp(),
                    "edited": False,
                    "num_comments": 0,
                    "id": post_id,
                    "author": author,
                    "permalink": f"/r/{subreddit}/comments/{post_id}/{slug}/",
                    "url": f"https://www.reddit.com/r/{subreddit}/comments/{post_id}/{slug}/",
                    "removed_by_category": None,
                },
            },
        )
        return f"t3_{post_id}"

    def add_comment(
        self,
        post: str,
        body: str,
        *,
        parent: str | None = None,
        author: str = "bob",
        subreddit: str = "AcmeShoes",
        created_at: datetime | None = None,
    ) -> str:
        """A new comment on `post` (a t3 fullname), under `parent` if any; returns its fullname."""
        comment_id = self._new_id()
        post_id = post.removeprefix("t3_")
        self.things.insert(
            0,
            {
                "kind": "t1",
                "data": {
                    "subreddit": subreddit,
                    "link_id": post,
                    "author_fullname": f"t2_{author}",
                    "author": author,
                    "body": body,
                    "parent_id": parent or post,
                    "name": f"t1_{comment_id}",
                    "id": comment_id,
                    "score": 1,
                    "created_utc": (created_at or self.now()).timestamp(),
                    "edited": False,
                    "permalink": f"/r/{subreddit}/comments/{post_id}/post/{comment_id}/",
                },
            },
        )
        return f"t1_{comment_id}"

    def revoke_tokens(self) -> None:
        """Reddit invalidated every issued token (the app's credentials still work)."""
        self.tokens.clear()

    def _new_id(self) -> str:
        self._next_id += 1
        digits, n = "", self._next_id
        while n:
            n, r = divmod(n, 36)
            digits = "0123456789abcdefghijklmnopqrstuvwxyz"[r] + digits
        return digits

    # --- endpoints ---------------------------------------------------------------------------

    async def _access_token(self, request: Request) -> Response:
        self._record(request)
        if not self._basic_auth_ok(request.headers.get("authorization", "")):
            return JSONResponse(fixture("errors.json")["401"], status_code=401)
        form = urllib.parse.parse_qs((await request.body()).decode())
        if form.get("grant_type") != ["client_credentials"]:
            return JSONResponse({"error": "unsupported_grant_type"}, status_code=400)
        token = secrets.token_urlsafe(16)
        self.tokens[token] = self.now() + timedelta(seconds=self.token_lifetime_s)
        self.tokens_issued += 1
        body = {k: v for k, v in fixture("token.json").items() if k != "_doc"}
        return JSONResponse({**body, "access_token": token, "expires_in": self.token_lifetime_s})

    async def _search(self, request: Request) -> Response:
        refusal = self._refuse(request)
        if refusal is not None:
            return refusal
        query = request.query_params.get("q", "").lower()
        posts = [
            t
            for t in self.things
            if t.get("kind") == "t3"
            and query
            in (str(t["data"].get("title", "")) + str(t["data"].get("selftext", ""))).lower()
        ]
        return self._listing(request, posts)

    async def _subreddit_comments(self, request: Request) -> Response:
        refusal = self._refuse(request)
        if refusal is not None:
            return refusal
        subreddit = request.path_params["subreddit"].lower()
        comments = [
            t
            for t in self.things
            if t.get("kind") == "t1" and str(t["data"].get("subreddit", "")).lower() == subreddit
        ]
        return self._listing(request, comments)

    # --- behaviour shared by the API endpoints ----------------------------------------------

    def _record(self, request: Request) -> None:
        self.requests.append(
            SeenRequest(request.url.path, dict(request.query_params), dict(request.headers))
        )

    def _basic_auth_ok(self, header: str) -> bool:
        scheme, _, encoded = header.partition(" ")
        if scheme.lower() != "basic":
            return False
        try:
            user, _, password = base64.b64decode(encoded).decode().partition(":")
        except (binascii.Error, UnicodeDecodeError):
            return False
        return secrets.compare_digest(user, self.client_id) and secrets.compare_digest(
            password, self.client_secret
        )

    def _refuse(self, request: Request) -> Response | None:
        """401 for a bad token, 429 when the window's budget is spent, or a queued failure."""
        self._record(request)
        scheme, _, token = request.headers.get("authorization", "").partition(" ")
        expiry = self.tokens.get(token)
        if (
            scheme.lower() != "bearer"
            or expiry is None
            or expiry <= self.now()
            or self.reject_all_tokens
        ):
            return JSONResponse(
                fixture("errors.json")["401"],
                status_code=401,
                headers={"www-authenticate": 'Bearer realm="reddit", error="invalid_token"'},
            )
        if self.ratelimit_remaining < 1:
            return JSONResponse(
                fixture("errors.json")["429"], status_code=429, headers=self._ratelimit_headers()
            )
        self.ratelimit_used += 1
        self.ratelimit_remaining -= 1
        if self.fail_next:
            status, body = self.fail_next.pop(0)
            return JSONResponse(body, status_code=status, headers=self._ratelimit_headers())
        return None

    def _ratelimit_headers(self) -> dict[str, str]:
        return {
            "x-ratelimit-used": str(self.ratelimit_used),
            "x-ratelimit-remaining": f"{self.ratelimit_remaining:.1f}",
            "x-ratelimit-reset": str(self.ratelimit_reset_s),
        }

    def _listing(self, request: Request, things: list[dict[str, Any]]) -> Response:
        """One page of a newest-first Listing, positioned by `after` or `before` fullnames."""
        limit = min(int(request.query_params.get("limit", "25")), 100)
        names = [t["data"].get("name") for t in things]
        after, before = request.query_params.get("after"), request.query_params.get("before")
        if after:
            # An anchor that is gone (deleted) yields an empty page, as on Reddit.
            start = names.index(after) + 1 if after in names else len(things)
        elif before:
            end = names.index(before) if before in names else 0
            start = max(end - limit, 0)
        else:
            start = 0
        page = things[start : start + limit]
        if before and before in names:
            page = things[start : names.index(before)]
        end_index = start + len(page)
        if request.query_params.get("raw_json") != "1":
            page = [_legacy_escaped(t) for t in page]
        body = {
            "kind": "Listing",
            "data": {
                "after": page[-1]["data"].get("name") if page and end_index < len(things) else None,
                "before": page[0]["data"].get("name") if page and start > 0 else None,
                "dist": len(page),
                "modhash": "",
                "geo_filter": "",
                "children": page,
            },
        }
        return JSONResponse(body, headers=self._ratelimit_headers())


def _legacy_escaped(thing: dict[str, Any]) -> dict[str, Any]:
    """Reddit's default JSON HTML-escapes &, < and > in text; `raw_json=1` turns that off."""
    escaped = copy.deepcopy(thing)
    for key in ("title", "selftext", "body"):
        value = escaped["data"].get(key)
        if isinstance(value, str):
            escaped["data"][key] = (
                value.replace("&", "&amp;").replace("<", "&lt;").replace(">", "&gt;")
            )
    return escaped
