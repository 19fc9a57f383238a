"""The sandbox network's HTTP face: the subset of Mastodon's REST API that OpenSMM's connector and
publisher use (https://docs.joinmastodon.org/methods/), plus admin endpoints under `/sandbox/` for
tests, demos and benchmarks (accounts and tokens, injected faults, traffic, stats).

Every `/api/` response carries Mastodon's `X-RateLimit-*` headers for the caller's token (or
address, without one); faults are injected into `/api/` requests only.
"""

from __future__ import annotations

import asyncio
import contextlib
import json
import logging
import re
import time
from collections import deque
from collections.abc import AsyncIterator, Sequence
from dataclasses import dataclass, field
from email import policy
from email.parser import BytesParser
from typing import Annotated, Any, Literal
from urllib.parse import parse_qsl, urlencode

from fastapi import APIRouter, Body, Depends, FastAPI, Request
from fastapi.exception_handlers import request_validation_exception_handler
from fastapi.exceptions import RequestValidationError
from fastapi.responses import JSONResponse, Response
from pydantic import BaseModel, ConfigDict, Field, ValidationError
from starlette.datastructures import Headers, MutableHeaders
from starlette.exceptions import HTTPException as StarletteHTTPException
from starlette.types import ASGIApp, Message, Receive, Scope, Send

from devstack.sandbox import entities
from devstack.sandbox.limits import FaultBook, FaultSpec, RateLimiter, reset_header
from devstack.sandbox.network import (
    VISIBILITIES,
    Account,
    MediaType,
    Network,
    NetworkError,
    NotFound,
    Page,
    ValidationFailed,
)
from devstack.sandbox.traffic import TrafficProfile, TrafficRunner

log = logging.getLogger("devstack.sandbox")

# Limits per endpoint, as documented (default, maximum).
NOTIFICATIONS_LIMIT = (40, 80)
STATUSES_LIMIT = (20, 40)
SEARCH_LIMIT = (20, 40)
MAX_DESCRIPTION_CHARS = 1500  # a media description's limit
# What Mastodon makes of an upload, by its content type: images are ready at once (200), the rest
# is transcoded in the background (202, then `GET /api/v1/media/:id` until 200).
UPLOAD_TYPES: dict[str, MediaType] = {
    "image/jpeg": "image",
    "image/png": "image",
    "image/webp": "image",
    "image/heic": "image",
    "image/heif": "image",
    "image/avif": "image",
    "image/gif": "gifv",  # Mastodon turns GIFs into looping silent videos
    "video/mp4": "video",
    "video/webm": "video",
    "video/quicktime": "video",
    "audio/mpeg": "audio",
    "audio/ogg": "audio",
    "audio/wav": "audio",
    "audio/flac": "audio",
}
PARSE_ERROR = "Error occurred while parsing request parameters"
INVALID_TOKEN = "The access token is invalid"  # noqa: S105  # an error message
TOO_MANY_REQUESTS = "Too many requests"
SERVER_ERROR = "We're sorry, but something went wrong on our end."
REQUEST_LOG_SIZE = 100_000


class Unauthorized(NetworkError):
    status = 401

    def __init__(self) -> None:
        super().__init__(INVALID_TOKEN)


@dataclass
class SandboxConfig:
    rate_limit: int = 300  # requests per token per window; 0 = unlimited
    rate_period_s: int = 300
    max_statuses: int = 500_000
    admin_token: str | None = None  # when set, /sandbox/* needs `Authorization: Bearer <it>`
    public_url: str | None = None  # base of links in entities; default: the request's own URL
    # What POST /sandbox/traffic fills in for the fields its body leaves out.
    traffic_defaults: TrafficProfile = field(default_factory=TrafficProfile)


class Sandbox:
    """Everything one sandbox process holds."""

    def __init__(self, config: SandboxConfig) -> None:
        self.config = config
        self.network = Network(max_statuses=config.max_statuses)
        self.limiter = RateLimiter(config.rate_period_s)
        self.faults = FaultBook()
        self.traffic = TrafficRunner(self.network)
        self.requests = 0
        # When each `/api/` request came, from which account, and what fault answered it: fault
        # tests check from it that a client waited out a `Retry-After`.
        self.request_log: deque[dict[str, Any]] = deque(maxlen=REQUEST_LOG_SIZE)

    def budget(self, account: Account | None) -> int:
        if account is not None and account.rate_limit is not None:
            return account.rate_limit
        return self.config.rate_limit


def bearer_token(headers: Headers) -> str | None:
    scheme, _, value = headers.get("authorization", "").partition(" ")
    if scheme.lower() != "bearer":
        return None
    return value.strip() or None


# --- middleware: rate limits and faults ---------------------------------------------------------


def _corrupt(body: bytes, field: str) -> bytes:
    """Remove `field` from the first status in a JSON answer (a status list, notifications or a
    search result), the way a buggy or newer server might send it."""
    try:
        data = json.loads(body)
    except ValueError:
        return body
    target: Any = None
    if isinstance(data, list) and data and isinstance(data[0], dict):
        first = data[0]
        target = first["status"] if isinstance(first.get("status"), dict) else first
    elif isinstance(data, dict):
        statuses = data.get("statuses")
        target = statuses[0] if isinstance(statuses, list) and statuses else data
    if isinstance(target, dict):
        target.pop(field, None)
    return json.dumps(data).encode()


class SandboxMiddleware:
    """Applies injected faults and Mastodon's per-token rate limit to `/api/` requests."""

    def __init__(self, app: ASGIApp, sandbox: Sandbox) -> None:
        self.app = app
        self.sandbox = sandbox

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http" or not scope["path"].startswith("/api/"):
            await self.app(scope, receive, send)
            return
        sandbox = self.sandbox
        sandbox.requests += 1
        token = bearer_token(Headers(scope=scope))
        account = sandbox.network.account_for_token(token) if token else None
        budget = sandbox.budget(account)
        fault = sandbox.faults.take(scope["method"], scope["path"])
        sandbox.request_log.append(
            {
                "at": time.time(),
                "method": scope["method"],
                "path": scope["path"],
                "account_id": str(account.id) if account is not None else None,
                "fault": fault.kind if fault is not None else None,
            }
        )
        if fault is not None and fault.kind == "rate_limit":
            headers = {
                "Retry-After": str(fault.retry_after_s),
                "X-RateLimit-Limit": str(budget or 300),
                "X-RateLimit-Remaining": "0",
                "X-RateLimit-Reset": reset_header(time.time() + fault.retry_after_s),
            }
            reply = JSONResponse({"error": TOO_MANY_REQUESTS}, 429, headers)
            await reply(scope, receive, send)
            return
        if fault is not None and fault.kind == "connection_reset":
            # An ASGI app cannot send a TCP reset; a status line promising a body it never sends
            # makes the server close the connection, which the client sees the same way: a
            # transport error and no answer.
            log.warning("fault: resetting the connection of %s %s", scope["method"], scope["path"])
            await send(
                {
                    "type": "http.response.start",
                    "status": 502,
                    "headers": [(b"content-length", b"1")],
                }
            )
            return
        if fault is not None and fault.kind == "server_error":
            await JSONResponse({"error": SERVER_ERROR}, fault.status)(scope, receive, send)
            return
        if fault is not None and fault.kind == "delay":
            await asyncio.sleep(fault.delay_ms / 1000)
        rate_headers: dict[str, str] = {}
        if budget > 0:
            client = scope.get("client") or ("unknown", 0)
            # Unauthenticated (or bad-token) requests share the caller's address bucket.
            key = f"token:{token}" if account is not None else f"ip:{client[0]}"
            decision = sandbox.limiter.hit(key, budget)
            rate_headers = decision.headers()
            if not decision.allowed:
                reply = JSONResponse({"error": TOO_MANY_REQUESTS}, 429, rate_headers)
                await reply(scope, receive, send)
                return

        async def send_with_headers(message: Message) -> None:
            if message["type"] == "http.response.start":
                headers = MutableHeaders(scope=message)
                for name, value in rate_headers.items():
                    headers[name] = value
            await send(message)

        if fault is None or fault.kind == "delay":
            await self.app(scope, receive, send_with_headers)
            return
        captured: list[Message] = []

        async def capture(message: Message) -> None:
            captured.append(message)

        await self.app(scope, receive, capture)
        if fault.kind == "malformed":
            captured = self._corrupted(captured, fault.field)
        elif fault.drop:
            # Returning after the status line without the body makes the server close the
            # connection: the client sees it cut mid-answer, after the write happened.
            log.warning("fault: dropping the connection of %s %s", scope["method"], scope["path"])
            await send_with_headers(captured[0])
            return
        else:
            await asyncio.sleep(fault.delay_ms / 1000)
        for message in captured:
            await send_with_headers(message)

    @staticmethod
    def _corrupted(captured: list[Message], field: str) -> list[Message]:
        start = captured[0]
        body = b"".join(m.get("body", b"") for m in captured[1:])
        corrupted = _corrupt(body, field)
        headers = MutableHeaders(scope=start)
        headers["content-length"] = str(len(corrupted))
        return [start, {"type": "http.response.body", "body": corrupted, "more_body": False}]


# --- request helpers ----------------------------------------------------------------------------


def _sandbox(request: Request) -> Sandbox:
    found: Sandbox = request.app.state.sandbox
    return found


def _base(request: Request) -> str:
    return _sandbox(request).config.public_url or str(request.base_url).rstrip("/")


def optional_account(request: Request) -> Account | None:
    """The token's account; no token is anonymous, a bad or revoked one is a 401."""
    token = bearer_token(request.headers)
    if token is None:
        return None
    account = _sandbox(request).network.account_for_token(token)
    if account is None:
        raise Unauthorized()
    return account


def current_account(request: Request) -> Account:
    account = optional_account(request)
    if account is None:
        raise Unauthorized()
    return account


CurrentAccount = Annotated[Account, Depends(current_account)]
Viewer = Annotated[Account | None, Depends(optional_account)]


def _id(value: str | None) -> int | None:
    """An id parameter read as Rails does (`"12abc".to_i` is 12, junk is 0)."""
    if value is None or value == "":
        return None
    digits = re.match(r"\s*(\d+)", value)
    return int(digits.group(1)) if digits else 0


def _status_id(value: str) -> int:
    if not value.isdigit():
        raise NotFound()
    return int(value)


def _page(request: Request, limits: tuple[int, int]) -> Page:
    params = request.query_params
    default, maximum = limits
    limit = default
    if params.get("limit"):
        try:
            limit = min(abs(int(params["limit"])), maximum)
        except ValueError:
            limit = default
    return Page(
        limit=limit,
        max_id=_id(params.get("max_id")),
        since_id=_id(params.get("since_id")),
        min_id=_id(params.get("min_id")),
    )


def _array(request: Request, name: str) -> list[str]:
    params = request.query_params
    return [*params.getlist(f"{name}[]"), *params.getlist(name)]


def _link_header(request: Request, newest: str, oldest: str, keep: Sequence[str]) -> str:
    """Mastodon's pagination links: `next` pages back in time, `prev` forward from the newest."""
    url = str(request.url.replace(query=""))
    kept = [(k, v) for k, v in request.query_params.multi_items() if k in keep]
    older = urlencode([*kept, ("max_id", oldest)])
    newer = urlencode([*kept, ("min_id", newest)])
    return f'<{url}?{older}>; rel="next", <{url}?{newer}>; rel="prev"'


def _paged(request: Request, items: list[dict[str, Any]], keep: Sequence[str]) -> JSONResponse:
    headers = {}
    if items:
        headers["Link"] = _link_header(request, items[0]["id"], items[-1]["id"], keep)
    return JSONResponse(items, headers=headers)


@dataclass(frozen=True)
class FormPart:
    """One field of a multipart/form-data body; `filename` is set for a file."""

    name: str
    data: bytes
    filename: str | None = None
    content_type: str = "text/plain"

    @property
    def text(self) -> str:
        return self.data.decode(errors="replace")


def _multipart(content_type: str, raw: bytes) -> list[FormPart]:
    """The parts of a multipart/form-data body (RFC 7578), read with the standard library's MIME
    parser, which keeps binary file contents byte for byte."""
    message = BytesParser(policy=policy.HTTP).parsebytes(
        b"Content-Type: " + content_type.encode("latin-1") + b"\r\n\r\n" + raw
    )
    if not message.is_multipart() or message.defects:
        raise NetworkError(PARSE_ERROR)
    parts = []
    for part in message.iter_parts():
        name = part.get_param("name", header="content-disposition")
        payload = part.get_payload(decode=True)
        if not isinstance(name, str) or not isinstance(payload, bytes):
            raise NetworkError(PARSE_ERROR)
        filename = part.get_filename()
        parts.append(FormPart(name, payload, filename, part.get_content_type()))
    return parts


async def _form(request: Request) -> dict[str, Any]:
    """Form, multipart or JSON parameters, as Rails merges them (`name[]` collects into a list);
    files are left out."""
    header = request.headers.get("content-type", "")
    content_type = header.split(";")[0].strip().lower()
    raw = await request.body()
    data: dict[str, Any] = {}

    def collect(pairs: Sequence[tuple[str, str]]) -> None:
        for key, value in pairs:
            if key.endswith("[]"):
                data.setdefault(key[:-2], []).append(value)
            else:
                data[key] = value

    collect(request.query_params.multi_items())
    if content_type == "application/json":
        try:
            body = json.loads(raw or b"{}")
        except ValueError:
            raise NetworkError("Error occurred while parsing request parameters") from None
        if not isinstance(body, dict):
            raise NetworkError("Error occurred while parsing request parameters")
        data.update(body)
    elif content_type in ("", "application/x-www-form-urlencoded"):
        collect(parse_qsl(raw.decode(errors="replace"), keep_blank_values=True))
    elif content_type == "multipart/form-data":
        collect([(p.name, p.text) for p in _multipart(header, raw) if p.filename is None])
    else:
        raise NetworkError(f"the sandbox reads JSON or form parameters, not {content_type}")
    return data


class StatusForm(BaseModel):
    """The parameters of POST /api/v1/statuses the sandbox honours."""

    model_config = ConfigDict(extra="ignore")

    status: str = ""
    in_reply_to_id: str | int | None = None  # clients send ids as strings or numbers
    visibility: str | None = None
    spoiler_text: str = ""
    sensitive: bool = False
    language: str | None = None
    media_ids: list[str | int] = Field(default_factory=list)
    scheduled_at: str | None = None


# --- the Mastodon API ---------------------------------------------------------------------------

api = APIRouter()


@api.get("/api/v1/accounts/verify_credentials")
async def verify_credentials(request: Request, account: CurrentAccount) -> JSONResponse:
    return JSONResponse(entities.credential_account_json(account, _base(request)))


@api.post("/api/v1/statuses")
async def post_status(request: Request, account: CurrentAccount) -> JSONResponse:
    try:
        form = StatusForm.model_validate(await _form(request))
    except ValidationError as exc:
        first = exc.errors()[0]
        raise ValidationFailed(f"{'.'.join(map(str, first['loc']))} {first['msg']}") from None
    if form.scheduled_at:
        raise NetworkError("the sandbox does not schedule statuses (scheduled_at)")
    visibility = form.visibility or "public"
    if visibility not in VISIBILITIES:
        raise ValidationFailed("Visibility is not included in the list")
    media_ids = []
    for media_id in map(str, form.media_ids):
        if not media_id.isdigit():
            raise NetworkError(f"Media attachment(s) {media_id} not found")
        media_ids.append(int(media_id))
    status, _ = _sandbox(request).network.create_status(
        account,
        form.status,
        visibility=visibility,
        in_reply_to_id=_id(None if form.in_reply_to_id is None else str(form.in_reply_to_id)),
        spoiler_text=form.spoiler_text,
        sensitive=form.sensitive,
        language=form.language or account.language,
        media_ids=media_ids,
        idempotency_key=request.headers.get("idempotency-key") or None,
        application="OpenSMM",
    )
    return JSONResponse(entities.status_json(status, _base(request)))


@api.post("/api/v2/media")
async def upload_media_v2(request: Request, account: CurrentAccount) -> JSONResponse:
    """Upload a file to attach to a status (https://docs.joinmastodon.org/methods/media/#v2):
    an image answers 200, ready; video, GIF and audio answer 202 with no `url` yet."""
    header = request.headers.get("content-type", "")
    if header.split(";")[0].strip().lower() != "multipart/form-data":
        raise ValidationFailed("File can't be blank")
    parts = _multipart(header, await request.body())
    file = next((p for p in parts if p.name == "file" and p.filename is not None), None)
    if file is None or not file.data:
        raise ValidationFailed("File can't be blank")
    kind = UPLOAD_TYPES.get(file.content_type)
    if kind is None:
        raise ValidationFailed("File content type is invalid")
    description = next((p.text for p in parts if p.name == "description"), None) or None
    if description is not None and len(description) > MAX_DESCRIPTION_CHARS:
        raise ValidationFailed(
            f"Description is too long (maximum is {MAX_DESCRIPTION_CHARS} characters)"
        )
    processing = kind != "image"
    media = _sandbox(request).network.upload_media(
        account, kind, description, processing=processing
    )
    rendered = entities.media_json(media, _base(request), processing=processing)
    return JSONResponse(rendered, 202 if processing else 200)


@api.get("/api/v1/media/{media_id}")
async def get_media(request: Request, media_id: str, account: CurrentAccount) -> JSONResponse:
    """An unattached upload (https://docs.joinmastodon.org/methods/media/#get): 206 while it is
    still processing, 200 once it can be attached."""
    if not media_id.isdigit():
        raise NotFound()
    media, processing = _sandbox(request).network.uploaded_media(account, int(media_id))
    rendered = entities.media_json(media, _base(request), processing=processing)
    return JSONResponse(rendered, 206 if processing else 200)


@api.get("/api/v1/statuses/{status_id}")
async def get_status(request: Request, status_id: str, viewer: Viewer) -> JSONResponse:
    status = _sandbox(request).network.status(_status_id(status_id), viewer)
    return JSONResponse(entities.status_json(status, _base(request)))


@api.delete("/api/v1/statuses/{status_id}")
async def delete_status(request: Request, status_id: str, account: CurrentAccount) -> JSONResponse:
    status = _sandbox(request).network.delete_status(_status_id(status_id), account)
    return JSONResponse(entities.status_json(status, _base(request), with_source=True))


@api.post("/api/v1/statuses/{status_id}/favourite")
async def favourite_status(
    request: Request, status_id: str, account: CurrentAccount
) -> JSONResponse:
    """https://docs.joinmastodon.org/methods/statuses/#favourite: the status, favourited."""
    status = _sandbox(request).network.favourite(_status_id(status_id), account)
    rendered = entities.status_json(status, _base(request))
    rendered["favourited"] = True
    return JSONResponse(rendered)


@api.post("/api/v1/statuses/{status_id}/reblog")
async def reblog_status(request: Request, status_id: str, account: CurrentAccount) -> JSONResponse:
    """https://docs.joinmastodon.org/methods/statuses/#boost: the reblog, a status of the booster
    whose `reblog` is the original."""
    reblog_id, status = _sandbox(request).network.reblog(_status_id(status_id), account)
    return JSONResponse(entities.reblog_json(reblog_id, account, status, _base(request)))


@api.get("/api/v1/statuses/{status_id}/context")
async def status_context(request: Request, status_id: str, viewer: Viewer) -> JSONResponse:
    ancestors, descendants = _sandbox(request).network.context(_status_id(status_id), viewer)
    base = _base(request)
    return JSONResponse(
        {
            "ancestors": [entities.status_json(s, base) for s in ancestors],
            "descendants": [entities.status_json(s, base) for s in descendants],
        }
    )


@api.get("/api/v1/notifications")
async def notifications(request: Request, account: CurrentAccount) -> JSONResponse:
    found = _sandbox(request).network.notifications(
        account,
        _page(request, NOTIFICATIONS_LIMIT),
        types=_array(request, "types"),
        exclude_types=_array(request, "exclude_types"),
    )
    base = _base(request)
    items = [entities.notification_json(n, s, base) for n, s in found]
    return _paged(request, items, ("limit", "account_id", "types[]", "exclude_types[]"))


@api.get("/api/v1/accounts/{account_id}")
async def get_account(request: Request, account_id: str, viewer: Viewer) -> JSONResponse:
    """An account with its counts (https://docs.joinmastodon.org/methods/accounts/#get); the
    publisher reads a channel's `followers_count` here."""
    account = _account_by_id(request, account_id)
    return JSONResponse(entities.account_json(account, _base(request)))


@api.post("/api/v1/accounts/{account_id}/follow")
async def follow_account(
    request: Request, account_id: str, account: CurrentAccount
) -> JSONResponse:
    """https://docs.joinmastodon.org/methods/accounts/#follow: the Relationship, following."""
    if not account_id.isdigit():
        raise NotFound()
    followed = _sandbox(request).network.follow(int(account_id), account)
    return JSONResponse(
        {
            "id": str(followed.id),
            "following": True,
            "showing_reblogs": True,
            "notifying": False,
            "followed_by": False,
            "blocking": False,
            "blocked_by": False,
            "muting": False,
            "muting_notifications": False,
            "requested": False,
            "domain_blocking": False,
            "endorsed": False,
            "note": "",
        }
    )


@api.get("/api/v1/accounts/{account_id}/statuses")
async def list_account_statuses(request: Request, account_id: str, viewer: Viewer) -> JSONResponse:
    """An account's statuses, newest first (https://docs.joinmastodon.org/methods/accounts/#statuses);
    the publisher reads it to reconcile a post whose outcome it did not see."""
    if not account_id.isdigit():
        raise NotFound()
    network = _sandbox(request).network
    account = network.account(int(account_id))
    page = _page(request, STATUSES_LIMIT)
    max_id = page.max_id
    found = [
        s
        for s in network.statuses_of(account)
        if (max_id is None or s.id < max_id) and s.visible_to(viewer)
    ][: page.limit]
    base = _base(request)
    return _paged(request, [entities.status_json(s, base) for s in found], ("limit",))


@api.get("/api/v1/timelines/tag/{hashtag}")
async def tag_timeline(request: Request, hashtag: str, viewer: Viewer) -> JSONResponse:
    only_media = request.query_params.get("only_media", "").lower() in ("1", "true")
    found = _sandbox(request).network.tag_timeline(
        hashtag, _page(request, STATUSES_LIMIT), only_media=only_media
    )
    base = _base(request)
    items = [entities.status_json(s, base) for s in found]
    return _paged(request, items, ("local", "limit", "only_media"))


@api.get("/api/v2/search")
async def search(request: Request, viewer: Viewer) -> JSONResponse:
    params = request.query_params
    query = params.get("q", "").strip()
    if not query:
        return JSONResponse({"error": "param is missing or the value is empty: q"}, 400)
    kind = params.get("type")
    page = _page(request, SEARCH_LIMIT)
    network, base = _sandbox(request).network, _base(request)
    offset = int(params["offset"]) if params.get("offset", "").isdigit() and viewer else 0
    result: dict[str, list[dict[str, Any]]] = {"accounts": [], "statuses": [], "hashtags": []}
    if kind in (None, "accounts"):
        result["accounts"] = [
            entities.account_json(a, base) for a in network.search_accounts(query, page.limit)
        ]
    if kind in (None, "statuses"):
        found = network.search_statuses(
            query, page, viewer, author_id=_id(params.get("account_id")), offset=offset
        )
        result["statuses"] = [entities.status_json(s, base) for s in found]
    if kind in (None, "hashtags"):
        result["hashtags"] = [
            entities.tag_json(t, base) for t in network.search_tags(query, page.limit)
        ]
    return JSONResponse(result)


# --- admin --------------------------------------------------------------------------------------


def require_admin(request: Request) -> None:
    expected = _sandbox(request).config.admin_token
    if expected is not None and bearer_token(request.headers) != expected:
        raise Unauthorized()


admin = APIRouter(prefix="/sandbox", dependencies=[Depends(require_admin)])


class AccountRequest(BaseModel):
    model_config = ConfigDict(extra="forbid")

    username: str | None = Field(default=None, description="Default: a generated one")
    display_name: str | None = None
    followers_count: int = Field(default=0, ge=0)
    following_count: int = Field(default=0, ge=0)
    bot: bool = False
    note: str = ""
    language: str = "en"
    rate_limit: int | None = Field(
        default=None, ge=0, description="Requests per window for this account's tokens"
    )


class MediaRequest(BaseModel):
    model_config = ConfigDict(extra="forbid")

    type: MediaType = "image"
    description: str | None = None


class ConfigUpdate(BaseModel):
    model_config = ConfigDict(extra="forbid")

    rate_limit: int = Field(ge=0, description="Requests per token per window; 0 = unlimited")


def _account_by_id(request: Request, account_id: str) -> Account:
    if not account_id.isdigit():
        raise NotFound()
    return _sandbox(request).network.account(int(account_id))


@admin.post("/accounts")
async def create_account(request: Request, body: AccountRequest) -> JSONResponse:
    network = _sandbox(request).network
    username = body.username or f"user{len(network.accounts) + 1}"
    account = network.create_account(
        username,
        display_name=body.display_name,
        followers_count=body.followers_count,
        following_count=body.following_count,
        bot=body.bot,
        note=body.note,
        language=body.language,
        rate_limit=body.rate_limit,
    )
    token = network.issue_token(account.id)
    return JSONResponse(
        {
            "id": str(account.id),
            "username": account.username,
            "access_token": token,
            "account": entities.account_json(account, _base(request)),
        }
    )


@admin.post("/accounts/{account_id}/revoke")
async def revoke(request: Request, account_id: str) -> JSONResponse:
    account = _account_by_id(request, account_id)
    return JSONResponse({"revoked": _sandbox(request).network.revoke_tokens(account.id)})


@admin.post("/accounts/{account_id}/tokens")
async def new_token(request: Request, account_id: str) -> JSONResponse:
    account = _account_by_id(request, account_id)
    return JSONResponse({"access_token": _sandbox(request).network.issue_token(account.id)})


@admin.post("/accounts/{account_id}/media")
async def upload_media(request: Request, account_id: str, body: MediaRequest) -> JSONResponse:
    account = _account_by_id(request, account_id)
    media = _sandbox(request).network.upload_media(account, body.type, body.description)
    return JSONResponse(entities.media_json(media, _base(request)))


@admin.get("/accounts/{account_id}/statuses")
async def account_statuses(
    request: Request, account_id: str, limit: int | None = None
) -> JSONResponse:
    account = _account_by_id(request, account_id)
    base = _base(request)
    found = _sandbox(request).network.statuses_of(account, limit)
    return JSONResponse([entities.status_json(s, base) for s in found])


@admin.get("/stats")
async def stats(request: Request) -> JSONResponse:
    sandbox = _sandbox(request)
    return JSONResponse(
        {
            **sandbox.network.stats(),
            "requests": sandbox.requests,
            "rate_limited": sandbox.limiter.refused,
            "faults_applied": sandbox.faults.applied,
            "traffic": sandbox.traffic.status(),
        }
    )


@admin.get("/requests")
async def request_log(
    request: Request, account_id: str | None = None, since: float = 0.0
) -> JSONResponse:
    """The last `/api/` requests (time, method, path, account, injected fault), oldest first."""
    found = [
        r
        for r in list(_sandbox(request).request_log)
        if r["at"] >= since and (account_id is None or r["account_id"] == account_id)
    ]
    return JSONResponse({"requests": found})


@admin.get("/config")
async def get_config(request: Request) -> JSONResponse:
    config = _sandbox(request).config
    return JSONResponse({"rate_limit": config.rate_limit, "rate_period_s": config.rate_period_s})


@admin.put("/config")
async def put_config(request: Request, body: ConfigUpdate) -> JSONResponse:
    _sandbox(request).config.rate_limit = body.rate_limit
    return await get_config(request)


@admin.post("/faults")
async def add_fault(request: Request, spec: FaultSpec) -> JSONResponse:
    faults = _sandbox(request).faults
    faults.add(spec)
    return JSONResponse({"pending": faults.pending()})


@admin.get("/faults")
async def list_faults(request: Request) -> JSONResponse:
    return JSONResponse({"pending": _sandbox(request).faults.pending()})


@admin.delete("/faults")
async def reset_faults(request: Request) -> JSONResponse:
    return JSONResponse({"cleared": _sandbox(request).faults.reset()})


@admin.post("/traffic")
async def start_traffic(
    request: Request, body: Annotated[dict[str, Any] | None, Body()] = None
) -> JSONResponse:
    """Start (or restart) traffic; fields the body leaves out come from the sandbox's defaults."""
    sandbox = _sandbox(request)
    try:
        profile = TrafficProfile.model_validate(
            {**sandbox.config.traffic_defaults.model_dump(), **(body or {})}
        )
    except ValidationError as exc:
        return JSONResponse({"detail": json.loads(exc.json(include_url=False))}, 422)
    await sandbox.traffic.start(profile)
    return JSONResponse(sandbox.traffic.status())


@admin.get("/traffic")
async def traffic_status(request: Request) -> JSONResponse:
    return JSONResponse(_sandbox(request).traffic.status())


@admin.delete("/traffic")
async def stop_traffic(request: Request) -> JSONResponse:
    traffic = _sandbox(request).traffic
    await traffic.stop()
    return JSONResponse(traffic.status())


# --- the application ----------------------------------------------------------------------------


def _error_headers(exc: NetworkError) -> dict[str, str]:
    if isinstance(exc, Unauthorized):
        return {
            "WWW-Authenticate": 'Bearer realm="Doorkeeper", error="invalid_token", '
            f'error_description="{INVALID_TOKEN}"'
        }
    return {}


async def _network_error(request: Request, exc: Exception) -> Response:
    assert isinstance(exc, NetworkError)
    return JSONResponse({"error": exc.message}, exc.status, headers=_error_headers(exc))


async def _validation_error(request: Request, exc: Exception) -> Response:
    assert isinstance(exc, RequestValidationError)
    if not request.url.path.startswith("/api/"):
        return await request_validation_exception_handler(request, exc)
    first = exc.errors()[0] if exc.errors() else {"loc": (), "msg": "invalid"}
    return JSONResponse({"error": f"Validation failed: {first['msg']}"}, 422)


async def _http_error(request: Request, exc: Exception) -> Response:
    assert isinstance(exc, StarletteHTTPException)
    message = "Record not found" if exc.status_code == 404 else str(exc.detail)
    return JSONResponse({"error": message}, exc.status_code)


def create_app(config: SandboxConfig | None = None, *, start_traffic: bool = False) -> FastAPI:
    """The sandbox app; with `start_traffic`, the default traffic profile runs from server start
    (through the lifespan, so only under a server that runs it)."""
    sandbox = Sandbox(config or SandboxConfig())

    @contextlib.asynccontextmanager
    async def lifespan(app: FastAPI) -> AsyncIterator[None]:
        if start_traffic:
            await sandbox.traffic.start(sandbox.config.traffic_defaults)
        try:
            yield
        finally:
            await sandbox.traffic.stop()

    app = FastAPI(
        title="OpenSMM sandbox network (Mastodon API subset)",
        lifespan=lifespan,
        docs_url="/sandbox/docs",
        openapi_url="/sandbox/openapi.json",
        redoc_url=None,
    )
    app.state.sandbox = sandbox
    app.add_middleware(SandboxMiddleware, sandbox=sandbox)
    app.add_exception_handler(NetworkError, _network_error)
    app.add_exception_handler(RequestValidationError, _validation_error)
    app.add_exception_handler(StarletteHTTPException, _http_error)

    @app.get("/healthz")
    @app.get("/readyz")
    async def healthz() -> dict[str, Literal["ok"]]:
        return {"status": "ok"}

    app.include_router(api)
    app.include_router(admin)
    return app
