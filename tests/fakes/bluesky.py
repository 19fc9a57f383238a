"""A local Bluesky PDS speaking the XRPC subset the connector uses (https://docs.bsky.app/docs/api/):
app-password sessions with refresh, notifications, post search, getPosts and getPostThread (reply
trees cut at the requested depth, with blocked and not-found nodes), `RateLimit-*` headers, and
switches for expired tokens, rate limiting and outages."""

from __future__ import annotations

import json
import secrets
import time
from collections import Counter
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from fastapi import FastAPI, Request
from fastapi.responses import JSONResponse

FIXTURES = Path(__file__).resolve().parent.parent / "fixtures" / "bluesky"
BRAND_DID = "did:plc:4acmebrandq3n5x4lpzk7yq2"
BRAND_HANDLE = "acme.bsky.social"
APP_PASSWORD = "abcd-efgh-ijkl-mnop"


def load_fixture(name: str) -> dict[str, Any]:
    data: dict[str, Any] = json.loads((FIXTURES / name).read_text())
    return data


def post_view(
    rkey: str,
    text: str,
    indexed_at: str,
    *,
    did: str = "did:plc:fan00000000000000000000a",
    handle: str = "fan.bsky.social",
    reply_to: str | None = None,
    root: str | None = None,
    langs: tuple[str, ...] = ("en",),
    likes: int = 0,
) -> dict[str, Any]:
    """An `app.bsky.feed.defs#postView` as the AppView returns it; a reply to `reply_to` in the
    thread of `root` (the parent itself unless given)."""
    record: dict[str, Any] = {
        "$type": "app.bsky.feed.post",
        "text": text,
        "createdAt": indexed_at,
        "langs": list(langs),
    }
    if reply_to is not None:
        record["reply"] = {
            "root": {"uri": root or reply_to, "cid": "bafyreiroot"},
            "parent": {"uri": reply_to, "cid": "bafyreiroot"},
        }
    return {
        "uri": f"at://{did}/app.bsky.feed.post/{rkey}",
        "cid": f"bafyrei{rkey}",
        "author": {"did": did, "handle": handle, "displayName": handle.split(".")[0], "labels": []},
        "record": record,
        "replyCount": 0,
        "repostCount": 0,
        "likeCount": likes,
        "quoteCount": 0,
        "indexedAt": indexed_at,
        "labels": [],
    }


def notification_for(post: dict[str, Any], reason: str) -> dict[str, Any]:
    """The `app.bsky.notification.listNotifications#notification` announcing `post`."""
    return {
        "uri": post["uri"],
        "cid": post["cid"],
        "author": post["author"],
        "reason": reason,
        "record": post["record"],
        "isRead": False,
        "indexedAt": post["indexedAt"],
        "labels": [],
    }


def _error(status: int, error: str, message: str) -> JSONResponse:
    return JSONResponse({"error": error, "message": message}, status_code=status)


@dataclass(frozen=True)
class SeenRequest:
    method: str  # the XRPC method (NSID)
    headers: dict[str, str]
    params: list[tuple[str, str]]


@dataclass
class FakeBluesky:
    """State of the fake PDS; tests change it directly and read its counters."""

    identifier: str = BRAND_HANDLE
    password: str = APP_PASSWORD
    did: str = BRAND_DID
    notifications: list[dict[str, Any]] = field(default_factory=list)
    posts: list[dict[str, Any]] = field(default_factory=list)  # the search corpus and getPosts
    # Thread nodes without a readable post (blockedPost, notFoundPost) by URI, and the parent of
    # each node as a loaded thread fixture nests it (else a post's `record.reply.parent`).
    hidden: dict[str, dict[str, Any]] = field(default_factory=dict)
    thread_parents: dict[str, str] = field(default_factory=dict)
    honour_reasons: bool = True  # False: answer every reason, like an older server
    rate_limited_for: int | None = None  # set: every call is 429, reset that many seconds ahead
    outage: bool = False  # every call is a 500
    rate_limit: int = 3000
    calls: Counter[str] = field(default_factory=Counter)  # XRPC method -> requests received
    requests: list[SeenRequest] = field(default_factory=list)
    _access: dict[str, bool] = field(default_factory=dict)  # token -> expired
    _refresh: dict[str, bool] = field(default_factory=dict)
    _window_reset: int = 0
    _used: int = 0

    # --- test controls -------------------------------------------------------------------------

    def add_posts(self, *posts: dict[str, Any], notify: str | None = None) -> None:
        """Index posts (searchable, hydratable); with `notify`, also notify the brand of them."""
        self.posts.extend(posts)
        if notify is not None:
            self.notifications.extend(notification_for(p, notify) for p in posts)

    def add_thread(self, thread: dict[str, Any]) -> None:
        """Index every node of a getPostThread answer's `thread`, keeping its nesting."""
        post = thread["post"]
        self.posts.append(post)
        for child in thread.get("replies", ()):
            if child.get("$type") == "app.bsky.feed.defs#threadViewPost":
                self.thread_parents[child["post"]["uri"]] = post["uri"]
                self.add_thread(child)
            else:
                self.thread_parents[child["uri"]] = post["uri"]
                self.hidden[child["uri"]] = child

    def expire_access_tokens(self) -> None:
        self._access = dict.fromkeys(self._access, True)

    def expire_refresh_tokens(self) -> None:
        self._refresh = dict.fromkeys(self._refresh, True)

    # --- plumbing ------------------------------------------------------------------------------

    def _headers(self) -> dict[str, str]:
        now = int(time.time())
        if self.rate_limited_for is not None:
            reset, remaining = now + self.rate_limited_for, 0
        else:
            if now >= self._window_reset:
                self._window_reset, self._used = now + 300, 0
            self._used += 1
            reset, remaining = self._window_reset, max(self.rate_limit - self._used, 0)
        return {
            "RateLimit-Limit": str(self.rate_limit),
            "RateLimit-Remaining": str(remaining),
            "RateLimit-Reset": str(reset),
            "RateLimit-Policy": f"{self.rate_limit};w=300",
        }

    def _check_access(self, request: Request) -> JSONResponse | None:
        header = request.headers.get("authorization", "")
        if not header.startswith("Bearer "):
            return _error(401, "AuthenticationRequired", "Authentication Required")
        token = header.removeprefix("Bearer ")
        if token in self._refresh:
            return _error(400, "InvalidToken", "Bad token scope")
        if token not in self._access:
            return _error(400, "InvalidToken", "Token could not be verified")
        if self._access[token]:
            return _error(400, "ExpiredToken", "Token has expired")
        return None

    def _session(self) -> dict[str, Any]:
        access, refresh = "acc-" + secrets.token_hex(8), "ref-" + secrets.token_hex(8)
        self._access[access], self._refresh[refresh] = False, False
        return {
            "accessJwt": access,
            "refreshJwt": refresh,
            "handle": self.identifier,
            "did": self.did,
            "active": True,
        }

    def _notifications(self, request: Request) -> dict[str, Any]:
        params = request.query_params
        reasons = set(params.getlist("reasons"))
        items = sorted(self.notifications, key=lambda n: (n["indexedAt"], n["uri"]), reverse=True)
        if reasons and self.honour_reasons:
            items = [n for n in items if n["reason"] in reasons]
        # Keyset cursor, as the real service pages by sort time: strictly older than the last.
        if "cursor" in params:
            at, _, uri = params["cursor"].partition("::")
            items = [n for n in items if (n["indexedAt"], n["uri"]) < (at, uri)]
        page = items[: int(params.get("limit", 50))]
        body: dict[str, Any] = {"notifications": page, "priority": False}
        if len(page) < len(items):
            body["cursor"] = f"{page[-1]['indexedAt']}::{page[-1]['uri']}"
        return body

    def _search(self, request: Request) -> dict[str, Any]:
        params = request.query_params
        query = params["q"].lower()

        def matches(post: dict[str, Any]) -> bool:
            record = post.get("record") or {}
            haystack = [str(record.get("text", ""))] + [str(t) for t in record.get("tags", ())]
            return any(query in part.lower() for part in haystack)

        hits = sorted(
            (p for p in self.posts if matches(p)), key=lambda p: str(p["indexedAt"]), reverse=True
        )
        # An offset cursor, as the search service uses: new hits shift older ones down.
        offset = int(params.get("cursor", 0))
        limit = int(params.get("limit", 25))
        page = hits[offset : offset + limit]
        body: dict[str, Any] = {"posts": page, "hitsTotal": len(hits)}
        if offset + limit < len(hits):
            body["cursor"] = str(offset + limit)
        return body

    def _parent_of(self, uri: str, post: dict[str, Any] | None) -> str | None:
        if uri in self.thread_parents:
            return self.thread_parents[uri]
        record = (post or {}).get("record")
        reply = record.get("reply") if isinstance(record, dict) else None
        return reply["parent"]["uri"] if isinstance(reply, dict) else None

    def _thread_node(self, post: dict[str, Any], depth: int) -> dict[str, Any]:
        posts = [p for p in self.posts if self._parent_of(str(p.get("uri")), p) == post["uri"]]
        hidden = [h for u, h in self.hidden.items() if self._parent_of(u, None) == post["uri"]]
        # The AppView counts replies when it serves the post, including those it does not show.
        node: dict[str, Any] = {
            "$type": "app.bsky.feed.defs#threadViewPost",
            "post": {**post, "replyCount": len(posts) + len(hidden)},
        }
        if depth <= 0:
            return node  # past the requested depth the AppView leaves `replies` out
        children = [(str(p.get("indexedAt", "")), self._thread_node(p, depth - 1)) for p in posts]
        children += [("", h) for h in hidden]
        # Not oldest first, as the AppView ranks replies by its own measure.
        node["replies"] = [child for _, child in sorted(children, key=lambda c: c[0], reverse=True)]
        return node

    def _thread(self, request: Request) -> JSONResponse:
        params = request.query_params
        uri = params["uri"]
        post = next((p for p in self.posts if p.get("uri") == uri), None)
        if post is None:
            return _error(400, "NotFound", f"Post not found: {uri}")
        return JSONResponse({"thread": self._thread_node(post, int(params.get("depth", 6)))})

    @property
    def app(self) -> FastAPI:
        app = FastAPI()

        @app.middleware("http")
        async def limits(request: Request, call_next: Any) -> Any:
            self.requests.append(
                SeenRequest(
                    request.url.path.removeprefix("/xrpc/"),
                    dict(request.headers),
                    list(request.query_params.multi_items()),
                )
            )
            self.calls[request.url.path.removeprefix("/xrpc/")] += 1
            headers = self._headers()
            if self.rate_limited_for is not None:
                response = _error(429, "RateLimitExceeded", "Rate Limit Exceeded")
            elif self.outage:
                response = _error(500, "InternalServerError", "Internal Server Error")
            else:
                response = await call_next(request)
            response.headers.update(headers)
            return response

        @app.post("/xrpc/com.atproto.server.createSession")
        async def create_session(request: Request) -> JSONResponse:
            body = await request.json()
            if body.get("identifier") not in (self.identifier, self.did) or (
                body.get("password") != self.password
            ):
                return _error(401, "AuthenticationRequired", "Invalid identifier or password")
            return JSONResponse(self._session())

        @app.post("/xrpc/com.atproto.server.refreshSession")
        async def refresh_session(request: Request) -> JSONResponse:
            token = request.headers.get("authorization", "").removeprefix("Bearer ")
            if token not in self._refresh:
                return _error(400, "InvalidToken", "Token could not be verified")
            if self._refresh[token]:
                return _error(400, "ExpiredToken", "Token has expired")
            del self._refresh[token]  # refresh tokens rotate: each is good for one refresh
            return JSONResponse(self._session())

        @app.get("/xrpc/app.bsky.notification.listNotifications")
        async def list_notifications(request: Request) -> JSONResponse:
            return self._check_access(request) or JSONResponse(self._notifications(request))

        @app.get("/xrpc/app.bsky.feed.searchPosts")
        async def search_posts(request: Request) -> JSONResponse:
            return self._check_access(request) or JSONResponse(self._search(request))

        @app.get("/xrpc/app.bsky.feed.getPosts")
        async def get_posts(request: Request) -> JSONResponse:
            denied = self._check_access(request)
            if denied:
                return denied
            wanted = request.query_params.getlist("uris")
            by_uri = {p["uri"]: p for p in self.posts}
            return JSONResponse({"posts": [by_uri[u] for u in wanted if u in by_uri]})

        @app.get("/xrpc/app.bsky.feed.getPostThread")
        async def get_post_thread(request: Request) -> JSONResponse:
            return self._check_access(request) or self._thread(request)

        return app
