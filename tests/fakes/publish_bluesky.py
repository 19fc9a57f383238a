"""A local Bluesky PDS speaking the XRPC write subset the publisher uses
(https://docs.bsky.app/docs/api/com-atproto-repo-create-record and neighbours): app-password
sessions with refresh (https://docs.bsky.app/docs/api/com-atproto-server-refresh-session: HS256
session JWTs as the reference PDS issues them, `at+jwt` for two hours and `refresh+jwt` for 90 days,
each refresh JWT good for one refresh), `uploadBlob` and `app.bsky.embed.images` embeds checked
against the lexicon (https://docs.bsky.app/docs/advanced-guides/posts#images-embeds: up to 4
images, alt text, blobs of at most 1,000,000 bytes), `createRecord` of posts under an explicit TID
rkey (one record per key, a taken key refused with a 500 as the reference PDS does today),
`getRecord`, `getPosts` (postViews with `likeCount`, `repostCount`, `replyCount`, `quoteCount`),
`app.bsky.actor.getProfile` (https://docs.bsky.app/docs/api/app-bsky-actor-get-profile:
`followersCount`) and `resolveHandle`, with switches for revoked passwords, expired tokens,
rate limits, outages and an answer held back after the write is applied."""

from __future__ import annotations

import asyncio
import hashlib
import secrets
import time
from dataclasses import dataclass, field
from datetime import UTC, datetime
from typing import Any

import jwt
import regex
from fastapi import FastAPI, Request
from fastapi.responses import JSONResponse, Response

BRAND_DID = "did:plc:4acmebrandq3n5x4lpzk7yq2"
BRAND_HANDLE = "acme.bsky.social"
APP_PASSWORD = "abcd-efgh-ijkl-mnop"
POST = "app.bsky.feed.post"
MAX_GRAPHEMES = 300  # lexicon app.bsky.feed.post: text maxGraphemes
IMAGES = "app.bsky.embed.images"
MAX_IMAGES = 4  # lexicon app.bsky.embed.images: images maxLength
MAX_IMAGE_BYTES = 1_000_000  # lexicon app.bsky.embed.images#image: image maxSize
ACCESS_LIFETIME_S = 2 * 3600
REFRESH_LIFETIME_S = 90 * 24 * 3600
_JWT_SECRET = secrets.token_hex(16)  # the PDS's own signing key: nobody else checks it
_TID = regex.compile(r"^[234567abcdefghij][234567abcdefghijklmnopqrstuvwxyz]{12}$")


def _error(status: int, error: str, message: str, **headers: str) -> JSONResponse:
    return JSONResponse({"error": error, "message": message}, status_code=status, headers=headers)


@dataclass
class FakeBlueskyPds:
    """One account's PDS (plus the AppView reads it proxies). Tests change the switches and read
    `records` (rkey -> the stored record) and `create_calls`."""

    identifier: str = BRAND_HANDLE
    password: str = APP_PASSWORD
    did: str = BRAND_DID
    handle: str = BRAND_HANDLE
    records: dict[str, dict[str, Any]] = field(default_factory=dict)
    others: dict[str, dict[str, Any]] = field(default_factory=dict)  # uri -> postView
    handles: dict[str, str] = field(default_factory=dict)  # handle -> did, for resolveHandle
    sign_ins: int = 0  # createSession calls that opened a session
    refreshes: int = 0  # refreshSession calls that opened a session
    create_calls: int = 0
    blobs: dict[str, tuple[str, bytes]] = field(default_factory=dict)  # cid -> (mimeType, bytes)
    upload_calls: int = 0
    upload_outage: bool = False  # uploadBlob answers 500 without storing anything
    password_revoked: bool = False
    rate_limited_for: int | None = None  # set: createRecord is 429, reset that many seconds ahead
    sessions_rate_limited: bool = False  # createSession and refreshSession answer 429
    outage: bool = False  # createRecord answers 500 before writing anything
    answer_delay_s: float | None = None  # createRecord writes, then holds its answer this long
    followers: int = 0  # the account's followersCount
    # rkey -> {"likeCount": n, ...}: what the AppView counts for our posts (absent: zeros)
    counts: dict[str, dict[str, int]] = field(default_factory=dict)
    reads_outage: bool = False  # getPosts and getProfile answer 502
    _access: dict[str, bool] = field(default_factory=dict)  # token -> expired
    _refresh: set[str] = field(default_factory=set)

    # --- test controls ---------------------------------------------------------------------------

    def add_post(self, rkey: str, text: str, *, did: str, handle: str, **record: Any) -> str:
        """Someone else's post, readable with getPosts; returns its uri."""
        uri = f"at://{did}/{POST}/{rkey}"
        self.others[uri] = {
            "uri": uri,
            "cid": f"bafyrei{rkey}",
            "author": {"did": did, "handle": handle},
            "record": {"$type": POST, "text": text, "createdAt": _now(), **record},
            "indexedAt": _now(),
        }
        return uri

    def expire_access_tokens(self) -> None:
        self._access = dict.fromkeys(self._access, True)

    def session_count(self) -> int:
        """Sessions opened, by sign-in or refresh: what a publish that reuses tokens avoids."""
        return self.sign_ins + self.refreshes

    def posts(self) -> list[dict[str, Any]]:
        return [r["value"] for r in self.records.values()]

    def image_files(self, post: dict[str, Any]) -> list[tuple[str, bytes, str]]:
        """(mimeType, bytes, alt) of each image a stored post embeds."""
        images = post["embed"]["images"]
        return [(*self.blobs[i["image"]["ref"]["$link"]], i["alt"]) for i in images]

    # --- plumbing --------------------------------------------------------------------------------

    def _jwt(self, kind: str, scope: str, lifetime_s: int) -> str:
        now = int(time.time())
        claims = {
            "scope": scope,
            "sub": self.did,
            "aud": "did:web:pds.example",
            "iat": now,
            "exp": now + lifetime_s,
            "jti": secrets.token_hex(8),  # two sessions opened in one second still differ
        }
        return jwt.encode(claims, _JWT_SECRET, algorithm="HS256", headers={"typ": kind})

    def _session(self) -> dict[str, Any]:
        access = self._jwt("at+jwt", "com.atproto.access", ACCESS_LIFETIME_S)
        refresh = self._jwt("refresh+jwt", "com.atproto.refresh", REFRESH_LIFETIME_S)
        self._access[access] = False
        self._refresh.add(refresh)
        return {"accessJwt": access, "refreshJwt": refresh, "handle": self.handle, "did": self.did}

    def _session_limit(self) -> JSONResponse:
        reset = str(int(time.time()) + 300)
        return _error(
            429,
            "RateLimitExceeded",
            "Rate Limit Exceeded",
            **{"RateLimit-Limit": "30", "RateLimit-Remaining": "0", "RateLimit-Reset": reset},
        )

    def _denied(self, request: Request) -> JSONResponse | None:
        token = request.headers.get("authorization", "").removeprefix("Bearer ")
        if token not in self._access:
            return _error(400, "InvalidToken", "Token could not be verified")
        if self._access[token]:
            return _error(400, "ExpiredToken", "Token has expired")
        return None

    def _view(self, rkey: str) -> dict[str, Any]:
        stored = self.records[rkey]
        counts = {"likeCount": 0, "repostCount": 0, "replyCount": 0, "quoteCount": 0}
        return {
            "uri": stored["uri"],
            "cid": stored["cid"],
            "author": {"did": self.did, "handle": self.handle},
            "record": stored["value"],
            **counts,
            **self.counts.get(rkey, {}),
            "indexedAt": stored["value"]["createdAt"],
        }

    async def _create(self, request: Request) -> Response:
        body = await request.json()
        rkey, record = body.get("rkey"), body.get("record")
        if body.get("repo") not in (self.did, self.handle) or body.get("collection") != POST:
            return _error(400, "InvalidRequest", "Unsupported repo or collection")
        if not isinstance(record, dict) or not isinstance(record.get("text"), str):
            return _error(400, "InvalidRequest", "Invalid app.bsky.feed.post record: text")
        if len(regex.findall(r"\X", record["text"])) > MAX_GRAPHEMES:
            return _error(
                400,
                "InvalidRequest",
                "Invalid app.bsky.feed.post record: Record/text must not be longer than "
                f"{MAX_GRAPHEMES} graphemes",
            )
        if not isinstance(rkey, str) or not _TID.match(rkey):
            return _error(400, "InvalidRequest", f"Invalid record key: {rkey!r}")
        embed = record.get("embed")
        if embed is not None:
            refused = self._check_images(embed)
            if refused is not None:
                return refused
        reply = record.get("reply")
        if reply is not None and not (
            isinstance(reply, dict) and {"root", "parent"} <= reply.keys()
        ):
            return _error(400, "InvalidRequest", "Invalid app.bsky.feed.post record: reply")
        if rkey in self.records:
            return _error(500, "InternalServerError", "Internal Server Error")
        uri = f"at://{self.did}/{POST}/{rkey}"
        self.records[rkey] = {"uri": uri, "cid": f"bafyrei{rkey}", "value": record}
        if self.answer_delay_s is not None:
            await asyncio.sleep(self.answer_delay_s)
        return JSONResponse({"uri": uri, "cid": f"bafyrei{rkey}", "validationStatus": "valid"})

    def _check_images(self, embed: Any) -> JSONResponse | None:
        """The reference PDS's checks of an images embed: the lexicon, then each blob's
        constraints (https://docs.bsky.app/docs/api/com-atproto-repo-upload-blob: restrictions are
        enforced when a record references the blob)."""
        invalid = "Invalid app.bsky.feed.post record: Record/embed"
        images = embed.get("images") if isinstance(embed, dict) else None
        if embed.get("$type") != IMAGES or not isinstance(images, list):
            return _error(400, "InvalidRequest", f"{invalid} must be an {IMAGES}")
        if len(images) > MAX_IMAGES:
            return _error(
                400, "InvalidRequest", f"{invalid}/images must not have more than 4 elements"
            )
        for index, image in enumerate(images):
            if not isinstance(image, dict) or not isinstance(image.get("alt"), str):
                return _error(400, "InvalidRequest", f'{invalid}/images/{index} must have "alt"')
            blob = image.get("image")
            ref = blob.get("ref") if isinstance(blob, dict) else None
            cid = ref.get("$link") if isinstance(ref, dict) else None
            if not isinstance(blob, dict) or blob.get("$type") != "blob" or cid is None:
                return _error(400, "InvalidRequest", f"{invalid}/images/{index}/image: blob")
            if cid not in self.blobs:
                return _error(400, "InvalidRequest", f"Could not find blob: {cid}")
            mime, data = self.blobs[cid]
            if not mime.startswith("image/"):
                return _error(
                    400,
                    "InvalidMimeType",
                    f"Wrong type of file. It is {mime} but it must match image/*.",
                )
            if len(data) > MAX_IMAGE_BYTES:
                return _error(
                    400,
                    "BlobTooLarge",
                    f"This file is too large. It is {len(data)} bytes but the maximum size is "
                    f"{MAX_IMAGE_BYTES} bytes.",
                )
        return None

    @property
    def app(self) -> FastAPI:
        app = FastAPI()

        @app.post("/xrpc/com.atproto.server.createSession")
        async def create_session(request: Request) -> JSONResponse:
            if self.sessions_rate_limited:
                return self._session_limit()
            body = await request.json()
            if (
                self.password_revoked
                or body.get("identifier") not in (self.identifier, self.did)
                or body.get("password") != self.password
            ):
                return _error(401, "AuthenticationRequired", "Invalid identifier or password")
            self.sign_ins += 1
            return JSONResponse(self._session())

        @app.post("/xrpc/com.atproto.server.refreshSession")
        async def refresh_session(request: Request) -> JSONResponse:
            if self.sessions_rate_limited:
                return self._session_limit()
            token = request.headers.get("authorization", "").removeprefix("Bearer ")
            if token not in self._refresh or self.password_revoked:
                return _error(400, "ExpiredToken", "Token has expired")
            self._refresh.discard(token)  # refresh tokens rotate: each is good for one refresh
            self.refreshes += 1
            return JSONResponse(self._session())

        @app.post("/xrpc/com.atproto.repo.createRecord")
        async def create_record(request: Request) -> Response:
            denied = self._denied(request)
            if denied is not None:
                return denied
            self.create_calls += 1
            if self.rate_limited_for is not None:
                reset = int(time.time()) + self.rate_limited_for
                return _error(
                    429,
                    "RateLimitExceeded",
                    "Rate Limit Exceeded",
                    **{"RateLimit-Limit": "5000", "RateLimit-Remaining": "0"},
                    **{"RateLimit-Reset": str(reset), "RateLimit-Policy": "5000;w=3600"},
                )
            if self.outage:
                return _error(500, "InternalServerError", "Internal Server Error")
            return await self._create(request)

        @app.post("/xrpc/com.atproto.repo.uploadBlob")
        async def upload_blob(request: Request) -> JSONResponse:
            denied = self._denied(request)
            if denied is not None:
                return denied
            self.upload_calls += 1
            if self.upload_outage:
                return _error(500, "InternalServerError", "Internal Server Error")
            data = await request.body()
            mime = request.headers.get("content-type", "application/octet-stream")
            cid = "bafkrei" + hashlib.sha256(data).hexdigest()[:52]
            self.blobs[cid] = (mime, data)
            blob = {"$type": "blob", "ref": {"$link": cid}, "mimeType": mime, "size": len(data)}
            return JSONResponse({"blob": blob})

        @app.get("/xrpc/com.atproto.repo.getRecord")
        async def get_record(request: Request) -> JSONResponse:
            params = request.query_params
            rkey = params.get("rkey", "")
            if params.get("repo") not in (self.did, self.handle) or rkey not in self.records:
                uri = f"at://{params.get('repo')}/{params.get('collection')}/{rkey}"
                return _error(400, "RecordNotFound", f"Could not locate record: {uri}")
            return JSONResponse(self.records[rkey])

        @app.get("/xrpc/app.bsky.feed.getPosts")
        async def get_posts(request: Request) -> JSONResponse:
            denied = self._denied(request)
            if denied is not None:
                return denied
            if self.reads_outage:
                return _error(502, "UpstreamFailure", "Upstream Failure")
            mine = {r["uri"]: self._view(k) for k, r in self.records.items()}
            known = {**self.others, **mine}
            wanted = request.query_params.getlist("uris")
            return JSONResponse({"posts": [known[u] for u in wanted if u in known]})

        @app.get("/xrpc/app.bsky.actor.getProfile")
        async def get_profile(request: Request) -> JSONResponse:
            denied = self._denied(request)
            if denied is not None:
                return denied
            if self.reads_outage:
                return _error(502, "UpstreamFailure", "Upstream Failure")
            if request.query_params.get("actor") not in (self.did, self.handle):
                return _error(400, "InvalidRequest", "Profile not found")
            return JSONResponse(
                {
                    "did": self.did,
                    "handle": self.handle,
                    "followersCount": self.followers,
                    "followsCount": 0,
                    "postsCount": len(self.records),
                    "indexedAt": _now(),
                }
            )

        @app.get("/xrpc/com.atproto.identity.resolveHandle")
        async def resolve_handle(request: Request) -> JSONResponse:
            handle = request.query_params.get("handle", "")
            if handle not in self.handles:
                return _error(400, "InvalidRequest", "Unable to resolve handle")
            return JSONResponse({"did": self.handles[handle]})

        return app


def _now() -> str:
    return datetime.now(UTC).isoformat(timespec="milliseconds").replace("+00:00", "Z")
