"""Bluesky (AT Protocol) write half: publish a post or a reply with `com.atproto.repo.createRecord`
under a record key derived from the attempt's idempotency key, and reconcile by reading that key.

Wire format: https://docs.bsky.app/docs/api/com-atproto-repo-create-record, posts and replies as
https://docs.bsky.app/docs/advanced-guides/posts describes them (text, createdAt, langs, facets,
`reply: {root, parent}` strong refs resolved with `app.bsky.feed.getPosts`).

Exactly once without an idempotency header: `createRecord` accepts an explicit `rkey`, and a
repository holds one record per key. So every attempt of one publication writes to the same key,
`record_key(request)`: a TID (https://atproto.com/specs/tid), 13 base32-sortable characters, whose
time part is the first attempt's `attempted_at` (to the millisecond, so the key sorts as a post of
that moment) and whose last 20 bits come from SHA-256 of the idempotency key; without
`attempted_at`, all of its bits come from the hash. A retry whose first attempt did land cannot
make a second post: the PDS refuses the existing key (the reference PDS answers a 500 today,
bluesky-social/atproto#3718; a named error is on its way, #4728). Whatever the refusal, the adapter
then reads the key back with `com.atproto.repo.getRecord` and, when the record is there, answers
`Published` with it. `reconcile` does the same read: the PDS is the repository's source of truth
and answers its own writes at once, so "no record under this key" is a definite None.

Sessions: app-password sign-in (`createSession`) is rate-limited hard, so the access JWT is reused
across calls (kept in the adapter per PDS and identifier) and renewed with `refreshSession` when the
PDS calls it expired; only a refused sign-in needs a person. A session in `credentials` that the
adapter has not seen yet wins over the one it keeps: it is what a refresh job persisted, and
refresh tokens rotate, so the kept one's may be spent. `refresh_credentials` is that job's half:
`refreshSession` with the stored refresh JWT (or a sign-in with the app password when there is
none, or the PDS refuses it), expiring when the new access JWT's `exp` says.

Images: each (up to four) goes up with `com.atproto.repo.uploadBlob` (the raw bytes, with their
Content-Type) before the post, and the record embeds the blobs as `app.bsky.embed.images` with the
alt text (https://docs.bsky.app/docs/advanced-guides/posts#images-embeds). A blob that no record
references is dropped by the PDS after a while, so a retry that uploads again is harmless; the post
itself keeps its record key. Videos and GIFs (which go through the separate video service) and
other kinds of file are refused rather than published without them.

Engagement: `app.bsky.feed.getPosts` (https://docs.bsky.app/docs/api/app-bsky-feed-get-posts: a
postView's `likeCount`, `repostCount`, `replyCount`, `quoteCount`; quotes count as reposts, since
both share the post) and the account's `followersCount` from `app.bsky.actor.getProfile`
(https://docs.bsky.app/docs/api/app-bsky-actor-get-profile), both AppView reads the PDS proxies.
Bluesky reports no views. A post getPosts no longer returns was deleted: the post is gone.
"""

from __future__ import annotations

import asyncio
import hashlib
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import Any, ClassVar

import httpx
import jwt
from pydantic import field_validator

from services.publisher.adapters.base import (
    ChannelConfig,
    CredentialsRejected,
    Engagement,
    EngagementUnavailable,
    MediaUpload,
    NeedsReconnect,
    Published,
    PublishOutcome,
    PublishRequest,
    RateLimited,
    ReconcileFailed,
    RefreshedCredentials,
    Rejected,
    Retryable,
    Unknown,
    retry_after_seconds,
)
from services.publisher.validation import compute_facets

NETWORK = "bluesky"
POST_COLLECTION = "app.bsky.feed.post"
TID_ALPHABET = "234567abcdefghijklmnopqrstuvwxyz"  # base32-sortable
RATE_WINDOW_S = 300.0  # Bluesky's rate-limit window, when a 429 names no reset time
# XRPC error names that mean "this token no longer works" rather than "this request is wrong".
TOKEN_ERRORS = frozenset({"ExpiredToken", "InvalidToken", "AuthenticationRequired"})
# createSession refusals that only a person can fix (new app password, 2FA, takedown).
LOGIN_ERRORS = frozenset(
    {"AuthenticationRequired", "AccountTakedown", "AuthFactorTokenRequired", "InvalidToken"}
)
RECORD_NOT_FOUND = "RecordNotFound"
IMAGES_EMBED = "app.bsky.embed.images"
MAX_IMAGES = 4  # lexicon app.bsky.embed.images: images maxLength 4


class BlueskyChannel(ChannelConfig):
    """The PDS (or entryway) the brand's account signs in to."""

    service: str = "https://bsky.social"

    @field_validator("service")
    @classmethod
    def _service_is_http(cls, value: str) -> str:
        if not value.startswith(("https://", "http://")):
            raise ValueError("service must be an http(s) URL, e.g. https://bsky.social")
        return value.rstrip("/")


def record_key(request: PublishRequest) -> str:
    """The TID every attempt of `request` writes its post under (see the module docstring)."""
    digest = int.from_bytes(hashlib.sha256(request.idempotency_key.encode()).digest()[:8], "big")
    if request.attempted_at is None:
        value = digest >> 1  # the top bit of a TID is always 0
    else:
        millis = int(request.attempted_at.timestamp() * 1000)
        micros = millis * 1000 + (digest >> 10) % 1000
        value = (micros << 10) | (digest & 0x3FF)
    return "".join(TID_ALPHABET[(value >> shift) & 31] for shift in range(60, -1, -5))


def post_url(handle: str, uri: str) -> str:
    return f"https://bsky.app/profile/{handle}/post/{uri.rsplit('/', 1)[-1]}"


@dataclass
class _Session:
    access_jwt: str
    refresh_jwt: str
    did: str
    handle: str


class _Refused(Exception):
    """An XRPC call that ends the publish (or the reconcile) with `outcome`."""

    def __init__(self, outcome: Retryable | RateLimited | NeedsReconnect | Rejected | Unknown):
        super().__init__(str(outcome))
        self.outcome = outcome


class BlueskyPublisher:
    """Publishes posts and replies for one Bluesky account (`credentials["identifier"]`,
    `credentials["app_password"]`; optionally `access_jwt`, `refresh_jwt`, `did`, `handle` of a
    session already open, as `refresh_credentials` returns them)."""

    network: ClassVar[str] = NETWORK
    config_model: ClassVar[type[ChannelConfig]] = BlueskyChannel

    def __init__(self) -> None:
        # Open sessions by (PDS, identifier), so each publish does not sign in again.
        self._sessions: dict[tuple[str, str], _Session] = {}
        self._locks: dict[tuple[str, str], asyncio.Lock] = {}
        # The refresh JWT of the last session adopted from `credentials`, by (PDS, identifier):
        # credentials carrying another one were refreshed since, by this adapter or another.
        self._adopted: dict[tuple[str, str], str] = {}

    async def publish(
        self,
        client: httpx.AsyncClient,
        channel_config: BlueskyChannel,
        credentials: dict[str, Any],
        request: PublishRequest,
    ) -> PublishOutcome:
        unsendable = _unsendable(request.media)
        if unsendable is not None:
            return unsendable
        xrpc = _Xrpc(self, client, channel_config, credentials)
        rkey = record_key(request)
        try:
            session = await xrpc.session()
            record: dict[str, Any] = {
                "$type": POST_COLLECTION,
                "text": request.text,
                "createdAt": datetime.now(UTC)
                .isoformat(timespec="milliseconds")
                .replace("+00:00", "Z"),
            }
            if request.language is not None:
                record["langs"] = [request.language]
            facets = await xrpc.facets(request.text)
            if facets:
                record["facets"] = facets
            if request.reply_to_external_id is not None:
                record["reply"] = await xrpc.reply_refs(request.reply_to_external_id)
            if request.media:
                record["embed"] = {
                    "$type": IMAGES_EMBED,
                    "images": [
                        {"image": await xrpc.upload_blob(image), "alt": image.description or ""}
                        for image in request.media
                    ],
                }
            body = {
                "repo": session.did,
                "collection": POST_COLLECTION,
                "rkey": rkey,
                "record": record,
            }
            try:
                response = await xrpc.send("POST", "com.atproto.repo.createRecord", body=body)
            except (httpx.ConnectError, httpx.ConnectTimeout, httpx.PoolTimeout) as exc:
                return Retryable(f"not sent: {type(exc).__name__}: {exc}")
            except httpx.TransportError as exc:
                # The request (or part of it) left: the PDS may have written the record.
                return Unknown(f"no answer after sending: {type(exc).__name__}: {exc}")
            if response.is_success:
                created = _json(response)
                uri = created.get("uri") if isinstance(created, dict) else None
                if not isinstance(uri, str):
                    return Unknown(f"HTTP {response.status_code} without a record uri")
                return Published(uri, post_url(session.handle, uri))
            refusal = _refusal(response)
            if isinstance(refusal, Unknown | Rejected):
                # Perhaps a retry of an attempt that did land: the key is taken by our own post.
                try:
                    existing = await self._existing(xrpc, rkey)
                except (_Refused, httpx.TransportError):
                    existing = None  # unreadable: the refusal stands, reconcile reads later
                if existing is not None:
                    return existing
            return refusal
        except _Refused as refused:
            return refused.outcome
        except (httpx.ConnectError, httpx.ConnectTimeout, httpx.PoolTimeout) as exc:
            return Retryable(f"not sent: {type(exc).__name__}: {exc}")
        except httpx.TransportError as exc:
            # A failed sign-in, read or blob upload before the post: no post was written.
            return Retryable(f"{type(exc).__name__}: {exc}")

    async def reconcile(
        self,
        client: httpx.AsyncClient,
        channel_config: BlueskyChannel,
        credentials: dict[str, Any],
        request: PublishRequest,
    ) -> Published | None:
        xrpc = _Xrpc(self, client, channel_config, credentials)
        try:
            return await self._existing(xrpc, record_key(request))
        except _Refused as refused:
            outcome = refused.outcome
            # A failed read changed nothing: unlike a publish, a 5xx is plainly retryable.
            raise ReconcileFailed(
                Retryable(outcome.reason) if isinstance(outcome, Unknown) else outcome
            ) from refused
        except httpx.TransportError as exc:
            raise ReconcileFailed(Retryable(f"{type(exc).__name__}: {exc}")) from exc

    async def fetch_engagement(
        self,
        client: httpx.AsyncClient,
        channel_config: BlueskyChannel,
        credentials: dict[str, Any],
        external_id: str,
    ) -> Engagement:
        xrpc = _Xrpc(self, client, channel_config, credentials)
        try:
            session = await xrpc.session()
            found = await xrpc._read("app.bsky.feed.getPosts", {"uris": [external_id]})
            posts = found.get("posts")
            view = (
                next(
                    (p for p in posts if isinstance(p, dict) and p.get("uri") == external_id),
                    None,
                )
                if isinstance(posts, list)
                else None
            )
            if view is None:
                raise _Refused(Rejected("post_gone", f"{external_id} is no longer on Bluesky"))
            profile = await xrpc._read("app.bsky.actor.getProfile", {"actor": session.did})
        except _Refused as refused:
            outcome = refused.outcome
            raise EngagementUnavailable(
                Retryable(outcome.reason) if isinstance(outcome, Unknown) else outcome
            ) from refused
        except httpx.TransportError as exc:
            raise EngagementUnavailable(Retryable(f"{type(exc).__name__}: {exc}")) from exc
        reposts, quotes = _count(view, "repostCount"), _count(view, "quoteCount")
        return Engagement(
            likes=_count(view, "likeCount"),
            reposts=None if reposts is None and quotes is None else (reposts or 0) + (quotes or 0),
            replies=_count(view, "replyCount"),
            followers=_count(profile, "followersCount"),
        )

    async def refresh_credentials(
        self,
        client: httpx.AsyncClient,
        channel_config: BlueskyChannel,
        credentials: dict[str, Any],
    ) -> RefreshedCredentials:
        """A new session for the account, as credentials to persist: those given, with the new
        `access_jwt`, `refresh_jwt`, `did` and `handle`; expiring with the access JWT. Raises
        `CredentialsRejected` when neither the refresh JWT nor the app password is accepted."""
        fresh = await _Xrpc(self, client, channel_config, credentials).replace_session()
        renewed = {
            **credentials,
            "access_jwt": fresh.access_jwt,
            "refresh_jwt": fresh.refresh_jwt,
            "did": fresh.did,
            "handle": fresh.handle,
        }
        return RefreshedCredentials(renewed, access_expiry(fresh.access_jwt))

    async def _existing(self, xrpc: _Xrpc, rkey: str) -> Published | None:
        session = await xrpc.session()
        params = {"repo": session.did, "collection": POST_COLLECTION, "rkey": rkey}
        response = await xrpc.send("GET", "com.atproto.repo.getRecord", params=params)
        if response.status_code == 400 and _xrpc_error(response)[0] == RECORD_NOT_FOUND:
            return None
        if not response.is_success:
            raise _Refused(_refusal(response))
        found = _json(response)
        uri = found.get("uri") if isinstance(found, dict) else None
        if not isinstance(uri, str):
            raise _Refused(Retryable(f"getRecord HTTP {response.status_code} without a uri"))
        return Published(uri, post_url(session.handle, uri))


class _Xrpc:
    """XRPC calls of one publish or reconcile, with the account's session."""

    def __init__(
        self,
        adapter: BlueskyPublisher,
        client: httpx.AsyncClient,
        config: BlueskyChannel,
        credentials: dict[str, Any],
    ) -> None:
        self.adapter = adapter
        self.client = client
        self.config = config
        self.credentials = credentials
        self.key = (config.service, str(credentials.get("identifier", "")))

    async def session(self) -> _Session:
        return self._current() or await self._renew(None)

    def _current(self) -> _Session | None:
        """The session to use: one in `credentials` not adopted before (refreshed since), else
        the one kept (perhaps renewed from the adopted one), else the one in `credentials`."""
        given = _given_session(self.credentials)
        kept = self.adapter._sessions.get(self.key)
        if given is not None and (
            kept is None or given.refresh_jwt != self.adapter._adopted.get(self.key)
        ):
            self.adapter._sessions[self.key] = given
            self.adapter._adopted[self.key] = given.refresh_jwt
            return given
        return kept or given

    async def replace_session(self) -> _Session:
        """A new session for `refresh_credentials`: refreshed with the current refresh JWT, else
        signed in. Raises `CredentialsRejected` when both are refused, `httpx.HTTPError` when the
        PDS cannot say (a rate limit, an outage, an unreadable answer)."""
        lock = self.adapter._locks.setdefault(self.key, asyncio.Lock())
        async with lock:
            current = self._current()
            fresh: _Session | None = None
            if current is not None:
                nsid = "com.atproto.server.refreshSession"
                response = await self._call("POST", nsid, token=current.refresh_jwt)
                if response.is_success:
                    fresh = _session_or_raise(nsid, response)
                elif not _token_rejected(response):
                    _raise_for(nsid, response)
            if fresh is None:
                nsid = "com.atproto.server.createSession"
                response = await self._create_session()
                if _sign_in_refused(response):
                    error, message = _xrpc_error(response)
                    raise CredentialsRejected(f"sign-in refused: {error} {message}".strip())
                if not response.is_success:
                    _raise_for(nsid, response)
                fresh = _session_or_raise(nsid, response)
            self.adapter._sessions[self.key] = fresh
            # Persisted by the caller: when it comes back in `credentials`, it is already ours.
            self.adapter._adopted[self.key] = fresh.refresh_jwt
            return fresh

    async def _renew(self, stale: _Session | None) -> _Session:
        """A fresh session: refreshed when there is a refresh token, else signed in."""
        lock = self.adapter._locks.setdefault(self.key, asyncio.Lock())
        async with lock:
            current = self.adapter._sessions.get(self.key)
            if current is not None and current is not stale:
                return current  # another call renewed it meanwhile
            fresh: _Session | None = None
            if stale is not None:
                response = await self._call(
                    "POST", "com.atproto.server.refreshSession", token=stale.refresh_jwt
                )
                if response.is_success:
                    fresh = _session_of(response)
                elif not _token_rejected(response):
                    raise _Refused(_refusal(response))
            if fresh is None:
                fresh = await self._sign_in()
            self.adapter._sessions[self.key] = fresh
            return fresh

    async def _sign_in(self) -> _Session:
        try:
            response = await self._create_session()
        except CredentialsRejected as rejected:
            raise _Refused(NeedsReconnect(rejected.reason)) from rejected
        if _sign_in_refused(response):
            self.adapter._sessions.pop(self.key, None)
            error, message = _xrpc_error(response)
            raise _Refused(NeedsReconnect(f"sign-in refused: {error} {message}".strip()))
        if not response.is_success:
            raise _Refused(_refusal(response))
        return _session_of(response)

    async def _create_session(self) -> httpx.Response:
        identifier = self.credentials.get("identifier")
        password = self.credentials.get("app_password")
        if not identifier or not password:
            raise CredentialsRejected("no identifier/app password to sign in with")
        return await self._call(
            "POST",
            "com.atproto.server.createSession",
            body={"identifier": identifier, "password": password},
        )

    async def send(
        self,
        method: str,
        nsid: str,
        *,
        params: dict[str, Any] | None = None,
        body: dict[str, Any] | None = None,
        upload: MediaUpload | None = None,
    ) -> httpx.Response:
        """A call with the access token, renewed once if the PDS says it expired. A refused token
        means the PDS did nothing, so sending again (even a createRecord) is safe."""
        session = await self.session()
        response = await self._call(
            method, nsid, token=session.access_jwt, params=params, body=body, upload=upload
        )
        if _token_rejected(response):
            session = await self._renew(session)
            response = await self._call(
                method, nsid, token=session.access_jwt, params=params, body=body, upload=upload
            )
            if _token_rejected(response):
                error, message = _xrpc_error(response)
                raise _Refused(NeedsReconnect(f"a fresh session was refused: {error} {message}"))
        return response

    async def _call(
        self,
        method: str,
        nsid: str,
        *,
        token: str | None = None,
        params: dict[str, Any] | None = None,
        body: dict[str, Any] | None = None,
        upload: MediaUpload | None = None,
    ) -> httpx.Response:
        headers = {"Accept": "application/json"}
        if token is not None:
            headers["Authorization"] = f"Bearer {token}"
        url = f"{self.config.service}/xrpc/{nsid}"
        if upload is not None:
            # uploadBlob takes the file itself as the body; its type names the blob's mimeType.
            headers["Content-Type"] = upload.content_type
            return await self.client.request(method, url, content=upload.data, headers=headers)
        return await self.client.request(method, url, params=params, json=body, headers=headers)

    async def _read(self, nsid: str, params: dict[str, Any]) -> dict[str, Any]:
        return _answer(nsid, await self.send("GET", nsid, params=params))

    async def upload_blob(self, image: MediaUpload) -> dict[str, Any]:
        """The blob ref (`$type`, `ref`, `mimeType`, `size`) the PDS gives the uploaded image."""
        nsid = "com.atproto.repo.uploadBlob"
        uploaded = _answer(nsid, await self.send("POST", nsid, upload=image))
        blob = uploaded.get("blob")
        if not isinstance(blob, dict):
            raise _Refused(Retryable(f"{nsid}: answer without a blob"))
        return blob

    async def facets(self, text: str) -> list[dict[str, Any]]:
        """Links and hashtags as computed; mentions only when the handle resolves to a DID (an
        unknown handle stays plain text, as the reference client leaves it)."""
        facets: list[dict[str, Any]] = []
        for facet in compute_facets(text):
            feature = facet["features"][0]
            if feature["$type"] != "app.bsky.richtext.facet#mention":
                facets.append(facet)
                continue
            response = await self.send(
                "GET", "com.atproto.identity.resolveHandle", params={"handle": feature["handle"]}
            )
            resolved = _json(response) if response.is_success else None
            did = resolved.get("did") if isinstance(resolved, dict) else None
            if isinstance(did, str):
                mention = {"$type": feature["$type"], "did": did}
                facets.append({**facet, "features": [mention]})
        return facets

    async def reply_refs(self, parent_uri: str) -> dict[str, Any]:
        """`reply.root` and `reply.parent` strong refs for a reply to `parent_uri`."""
        found = await self._read("app.bsky.feed.getPosts", {"uris": [parent_uri]})
        posts = found.get("posts")
        parent = posts[0] if isinstance(posts, list) and posts else None
        if not isinstance(parent, dict) or not isinstance(parent.get("cid"), str):
            raise _Refused(
                Rejected("reply_target_not_found", f"The post {parent_uri} cannot be found")
            )
        parent_ref = {"uri": parent["uri"], "cid": parent["cid"]}
        record = parent.get("record")
        thread = record.get("reply") if isinstance(record, dict) else None
        root = thread.get("root") if isinstance(thread, dict) else None
        if not (isinstance(root, dict) and isinstance(root.get("cid"), str)):
            root = parent_ref  # the parent starts the thread
        return {"root": {"uri": root["uri"], "cid": root["cid"]}, "parent": parent_ref}


# --- wire helpers --------------------------------------------------------------------------------


def _json(response: httpx.Response) -> Any:
    try:
        return response.json()
    except ValueError:
        return None


def _answer(nsid: str, response: httpx.Response) -> dict[str, Any]:
    """The JSON body of a call made before the post is written, or the refusal it ends with."""
    if not response.is_success:
        refusal = _refusal(response)
        # No post was written yet (at most a blob nobody references): a 5xx is simply retryable.
        raise _Refused(Retryable(refusal.reason) if isinstance(refusal, Unknown) else refusal)
    body = _json(response)
    if not isinstance(body, dict):
        raise _Refused(Retryable(f"{nsid}: HTTP {response.status_code} without JSON"))
    return body


def _count(view: dict[str, Any], name: str) -> int | None:
    value = view.get(name)
    return value if isinstance(value, int) and not isinstance(value, bool) and value >= 0 else None


def _unsendable(media: list[MediaUpload]) -> Rejected | None:
    """Why these attachments cannot go to Bluesky as an images embed, if they cannot."""
    # Bluesky shows a GIF in an images embed as a still: like its apps, treat it as a video.
    if any(m.content_type.startswith("video/") or m.content_type == "image/gif" for m in media):
        return Rejected("video_unsupported", "Videos and GIFs cannot be published to Bluesky yet")
    others = sorted({m.content_type for m in media if not m.content_type.startswith("image/")})
    if others:
        return Rejected("media_type_unsupported", f"Bluesky posts take images, not {others}")
    if len(media) > MAX_IMAGES:
        return Rejected("too_many_images", f"A Bluesky post takes at most {MAX_IMAGES} images")
    return None


def _xrpc_error(response: httpx.Response) -> tuple[str, str]:
    """The `error` name and `message` of an XRPC error body (empty when absent)."""
    body = _json(response)
    if not isinstance(body, dict):
        return "", ""
    return str(body.get("error") or ""), str(body.get("message") or "")


def _session_of(response: httpx.Response) -> _Session:
    body = _json(response)
    if not isinstance(body, dict) or not all(
        isinstance(body.get(k), str) for k in ("accessJwt", "refreshJwt", "did")
    ):
        raise _Refused(Retryable("session answer without accessJwt/refreshJwt/did"))
    return _Session(
        body["accessJwt"], body["refreshJwt"], body["did"], str(body.get("handle") or body["did"])
    )


def _given_session(credentials: dict[str, Any]) -> _Session | None:
    if not all(isinstance(credentials.get(k), str) for k in ("access_jwt", "refresh_jwt", "did")):
        return None
    return _Session(
        credentials["access_jwt"],
        credentials["refresh_jwt"],
        credentials["did"],
        str(credentials.get("handle") or credentials["did"]),
    )


def _session_or_raise(nsid: str, response: httpx.Response) -> _Session:
    try:
        return _session_of(response)
    except _Refused as refused:
        raise httpx.DecodingError(f"{nsid}: {refused.outcome}", request=response.request) from None


def _raise_for(nsid: str, response: httpx.Response) -> None:
    """A refusal of a refresh: the channel needs a person, or the PDS cannot say now."""
    refusal = _refusal(response)
    if isinstance(refusal, NeedsReconnect):
        raise CredentialsRejected(refusal.reason)
    raise httpx.HTTPStatusError(f"{nsid}: {refusal}", request=response.request, response=response)


def access_expiry(access_jwt: str) -> datetime | None:
    """When an access JWT lapses, from its `exp` claim (None when it has none or is no JWT). The
    signature is the PDS's business: only the PDS that issued the token checks it."""
    try:
        claims = jwt.decode(access_jwt, options={"verify_signature": False})
    except jwt.InvalidTokenError:
        return None
    exp = claims.get("exp")
    return datetime.fromtimestamp(exp, UTC) if isinstance(exp, int | float) else None


def _sign_in_refused(response: httpx.Response) -> bool:
    """A createSession refusal that only a person can fix (see LOGIN_ERRORS)."""
    status = response.status_code
    return status in (401, 403) or (status == 400 and _xrpc_error(response)[0] in LOGIN_ERRORS)


def _token_rejected(response: httpx.Response) -> bool:
    if response.status_code == 401:
        return True
    return response.status_code == 400 and _xrpc_error(response)[0] in TOKEN_ERRORS


def _wait(response: httpx.Response) -> float:
    """Bluesky's `RateLimit-Reset` (Unix seconds), else `Retry-After`, else the whole window."""
    reset = response.headers.get("ratelimit-reset", "").strip()
    if reset.isdigit():
        # A reset already past (clock skew) still deserves a short pause, not a hot loop.
        return max(int(reset) - datetime.now(UTC).timestamp(), 1.0)
    return retry_after_seconds(response) or RATE_WINDOW_S


def _refusal(response: httpx.Response) -> RateLimited | NeedsReconnect | Rejected | Unknown:
    status = response.status_code
    error, message = _xrpc_error(response)
    detail = (
        f"HTTP {status}" + (f": {error}" if error else "") + (f": {message}" if message else "")
    )
    if status == 429:
        return RateLimited(_wait(response))
    if status in (401, 403) or error in LOGIN_ERRORS | {"AccountDeactivated"}:
        return NeedsReconnect(detail)
    if status >= 500 or status < 400:
        # The PDS may have written the record before failing to answer.
        return Unknown(detail)
    return Rejected(detail, message or error or None)
