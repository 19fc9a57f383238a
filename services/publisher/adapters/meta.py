"""Meta write half for a Facebook Page: publish a Page post or a comment reply with the Graph API,
and reconcile an unknown outcome by reading the Page's feed or the comments it answered.

Wire format: `POST /{page_id}/feed` (https://developers.facebook.com/docs/graph-api/reference/page/feed#publish)
and `POST /{object_id}/comments`
(https://developers.facebook.com/docs/graph-api/reference/object/comments#publish), each answering
`{"id": ...}`, with a Page access token. Errors are `{"error": {"message", "type", "code",
"error_subcode", "fbtrace_id"}}` (https://developers.facebook.com/docs/graph-api/guides/error-handling).

The Graph API has no idempotency key, so a blind retry can post twice: reconcile matters here.
It reads `GET /{page_id}/feed?fields=id,message,created_time,from&since=…` (or the target's
`/comments`, newest first) and matches the Page's own items by text, since `attempted_at` less
`CLOCK_SKEW`; without `attempted_at` only the newest page is read.

Hiding: `hide` sets `is_hidden=true` on a comment with `POST /{comment-id}`
(https://developers.facebook.com/docs/graph-api/reference/comment#updating), answered
`{"success": true}`; the comment stays visible to its author and their friends. Hiding is a state,
so a lost answer is simply sent again (Instagram's `hide` reuses `update_comment`).

Tokens: `refresh_credentials` trades the stored long-lived token for a fresh one with
`GET /oauth/access_token?grant_type=fb_exchange_token` and the app's id and secret
(https://developers.facebook.com/docs/facebook-login/guides/access-tokens/get-long-lived), which
answers `{"access_token", "token_type", "expires_in"}`; no `expires_in` means a token that does not
expire (a Page token taken from a long-lived user token).

Media and Instagram are left out: Instagram publishes through a container then `media_publish`,
a separate flow for a separate channel kind. A request with media is
`Rejected("media_unsupported")` rather than published without it.
"""

from __future__ import annotations

import json
from collections.abc import Callable
from datetime import UTC, datetime, timedelta
from typing import Any, ClassVar

import httpx
from pydantic import field_validator

from services.publisher.adapters.base import (
    ChannelConfig,
    CredentialsRejected,
    Hidden,
    HideOutcome,
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

NETWORK = "meta"
# https://developers.facebook.com/docs/graph-api/guides/error-handling#errorcodes
TOKEN_ERRORS = frozenset({102, 190})  # session or token invalid, expired, revoked
PERMISSION_ERRORS = frozenset({10, *range(200, 300)})  # the token lacks a permission
# App, user, Page and custom rate limits (https://developers.facebook.com/docs/graph-api/overview/rate-limiting).
RATE_LIMIT_ERRORS = frozenset({4, 17, 32, 613, 80001})
# "Unknown error" and "service temporarily unavailable": the post may exist behind them.
MAYBE_APPLIED_ERRORS = frozenset({1, 2})
# Limits are counted over a rolling hour; without a usage header that says less, wait it out.
RATE_WINDOW_S = 3600.0
FEED_PAGE_LIMIT = 100
RECONCILE_PAGES = 5
CLOCK_SKEW = timedelta(minutes=5)
_FIELDS = "id,message,created_time,from"


class GraphChannel(ChannelConfig):
    """The Graph API host and version a Meta channel speaks (Facebook Page or Instagram)."""

    graph_base: str = "https://graph.facebook.com"
    api_version: str = "v21.0"

    @field_validator("graph_base")
    @classmethod
    def _graph_base_is_http(cls, value: str) -> str:
        if not value.startswith(("https://", "http://")):
            raise ValueError("graph_base must be an http(s) URL, e.g. https://graph.facebook.com")
        return value.rstrip("/")

    def url(self, path: str) -> str:
        return f"{self.graph_base}/{self.api_version}/{path}"


class MetaPageChannel(GraphChannel):
    """The Facebook Page the channel publishes as, and the Graph API version to speak."""

    page_id: str


class MetaPagePublisher:
    """Publishes Page posts and comment replies, and hides comments (`credentials["access_token"]`,
    a Page token; `app_id` and `app_secret` of the Meta app too, for `refresh_credentials`).

    A reply's `reply_to_external_id`, like a hidden comment's id, is the Graph id ingest's Meta
    webhooks give.
    """

    network: ClassVar[str] = NETWORK
    config_model: ClassVar[type[ChannelConfig]] = MetaPageChannel

    async def publish(
        self,
        client: httpx.AsyncClient,
        channel_config: MetaPageChannel,
        credentials: dict[str, Any],
        request: PublishRequest,
    ) -> PublishOutcome:
        if request.media:
            return Rejected("media_unsupported", "Attachments cannot be published to Meta yet")
        edge = _edge(channel_config, request)
        form = {"message": request.text, "access_token": str(credentials["access_token"])}
        try:
            response = await client.post(channel_config.url(edge), data=form)
        except (httpx.ConnectError, httpx.ConnectTimeout, httpx.PoolTimeout) as exc:
            return Retryable(f"not sent: {type(exc).__name__}: {exc}")
        except httpx.TransportError as exc:
            # The request (or part of it) left: the Page may have the post.
            return Unknown(f"no answer after sending: {type(exc).__name__}: {exc}")
        body = _json_object(response)
        if response.is_success and body is not None:
            return _published(body) or Unknown(f"HTTP {response.status_code} without an id")
        return _refusal(response, body)

    async def reconcile(
        self,
        client: httpx.AsyncClient,
        channel_config: MetaPageChannel,
        credentials: dict[str, Any],
        request: PublishRequest,
    ) -> Published | None:
        cutoff = request.attempted_at - CLOCK_SKEW if request.attempted_at else None
        wanted = comparable_text(request.text)
        params: dict[str, str | int] = {"fields": _FIELDS, "limit": FEED_PAGE_LIMIT}
        if request.reply_to_external_id is None:
            if cutoff is not None:
                params["since"] = int(cutoff.timestamp())
        else:
            params["order"] = "reverse_chronological"
        url: str | None = channel_config.url(_edge(channel_config, request))
        for _ in range(RECONCILE_PAGES if cutoff else 1):
            if url is None:
                return None
            page = await _read(client, url, credentials, params)
            items = page.get("data")
            if not isinstance(items, list) or not items:
                return None
            for item in items:
                if not isinstance(item, dict):
                    continue
                if cutoff is not None and _created_at(item) < cutoff:
                    return None
                if _by_page(item, channel_config.page_id, wanted):
                    return _published(item)
            # `paging.next` is a whole URL carrying every parameter but the token.
            paging = page.get("paging")
            following = paging.get("next") if isinstance(paging, dict) else None
            url, params = (following, {}) if isinstance(following, str) else (None, {})
        if cutoff is None or url is None:
            return None
        raise ReconcileFailed(Retryable(f"more than {RECONCILE_PAGES} pages since the attempt"))

    async def hide(
        self,
        client: httpx.AsyncClient,
        channel_config: MetaPageChannel,
        credentials: dict[str, Any],
        external_id: str,
    ) -> HideOutcome:
        """Hide a comment on one of the Page's posts (a Page token with
        `pages_manage_engagement`)."""
        form = {"is_hidden": "true", "access_token": str(credentials["access_token"])}
        return await update_comment(client, channel_config.url(external_id), form, external_id)

    async def refresh_credentials(
        self,
        client: httpx.AsyncClient,
        channel_config: MetaPageChannel,
        credentials: dict[str, Any],
    ) -> RefreshedCredentials:
        """The credentials with a fresh long-lived `access_token`, expiring `expires_in` from
        now. Raises `CredentialsRejected` when Meta calls the token invalid, expired or revoked
        (code 190), or the credentials lack what the exchange needs."""
        needed = ("access_token", "app_id", "app_secret")
        missing = [k for k in needed if not credentials.get(k)]
        if missing:
            raise CredentialsRejected(f"cannot exchange the token without {', '.join(missing)}")
        params = {
            "grant_type": "fb_exchange_token",
            "client_id": str(credentials["app_id"]),
            "client_secret": str(credentials["app_secret"]),
            "fb_exchange_token": str(credentials["access_token"]),
        }
        response = await client.get(channel_config.url("oauth/access_token"), params=params)
        body = _json_object(response)
        if not response.is_success or body is None:
            refusal = _refusal(response, body)
            if isinstance(refusal, NeedsReconnect) and _graph_code(body) in TOKEN_ERRORS:
                raise CredentialsRejected(refusal.reason)
            raise httpx.HTTPStatusError(
                f"token exchange: {refusal}", request=response.request, response=response
            )
        token = body.get("access_token")
        if not isinstance(token, str) or not token:
            raise httpx.DecodingError(
                "token exchange answered without an access_token", request=response.request
            )
        return RefreshedCredentials({**credentials, "access_token": token}, _expiry(body))


# --- wire helpers --------------------------------------------------------------------------------

GraphRefusal = Callable[
    [httpx.Response, dict[str, Any] | None],
    RateLimited | NeedsReconnect | Rejected | Unknown | Retryable,
]


async def update_comment(
    client: httpx.AsyncClient,
    url: str,
    form: dict[str, str],
    external_id: str,
    *,
    headers: dict[str, str] | None = None,
    refusal: GraphRefusal | None = None,
) -> HideOutcome:
    """A comment node update that hides it, answered `{"success": true}`. Sending it again sets
    the same state, so an open outcome (no answer, a 5xx, "unknown error") is `Retryable`."""
    try:
        response = await client.post(url, data=form, headers=headers)
    except httpx.TransportError as exc:
        return Retryable(f"hide {external_id}: {type(exc).__name__}: {exc}")
    body = _json_object(response)
    if response.is_success and body is not None:
        if body.get("success") is True:
            return Hidden(external_id)
        return Retryable(f"hide {external_id}: HTTP {response.status_code} without success")
    outcome = (refusal or _refusal)(response, body)
    return Retryable(outcome.reason) if isinstance(outcome, Unknown) else outcome


def _edge(config: MetaPageChannel, request: PublishRequest) -> str:
    if request.reply_to_external_id is None:
        return f"{config.page_id}/feed"
    return f"{request.reply_to_external_id}/comments"


def _expiry(body: dict[str, Any]) -> datetime | None:
    """When an exchanged token lapses: `expires_in` seconds from now (Meta sends a number, some
    proxies a numeric string); None when the token does not expire."""
    try:
        seconds = float(body["expires_in"])
    except (KeyError, TypeError, ValueError):
        return None
    return datetime.now(UTC) + timedelta(seconds=seconds)


def _graph_code(body: dict[str, Any] | None) -> object:
    error = body.get("error") if body is not None else None
    return error.get("code") if isinstance(error, dict) else None


def _json_object(response: httpx.Response) -> dict[str, Any] | None:
    try:
        body = json.loads(response.content)
    except ValueError:
        return None
    return body if isinstance(body, dict) else None


def _refusal(
    response: httpx.Response, body: dict[str, Any] | None
) -> RateLimited | NeedsReconnect | Rejected | Unknown:
    status = response.status_code
    error = body.get("error") if body is not None else None
    if not isinstance(error, dict):
        if status == 429:
            return RateLimited(retry_after_seconds(response) or RATE_WINDOW_S)
        if status in (401, 403):
            return NeedsReconnect(f"HTTP {status}")
        # A 5xx or a proxy's page: the post may have been saved before it.
        return Unknown(f"HTTP {status} without a Graph API error")
    code = error.get("code")
    message = str(error.get("message") or "no message")
    detail = f"HTTP {status}: Graph error {code}: {message}"
    if code in TOKEN_ERRORS or code in PERMISSION_ERRORS:
        return NeedsReconnect(detail)
    if code in RATE_LIMIT_ERRORS or status == 429:
        return RateLimited(_regain_access_s(response) or RATE_WINDOW_S)
    if code in MAYBE_APPLIED_ERRORS or error.get("is_transient") is True or status >= 500:
        return Unknown(detail)
    # 100 (invalid parameter), 368 (blocked for policy), 506 (duplicate post)…: processed, refused.
    return Rejected(detail, message)


def _regain_access_s(response: httpx.Response) -> float | None:
    """How long Meta says to wait: `Retry-After`, else the longest
    `estimated_time_to_regain_access` (minutes) in `X-Business-Use-Case-Usage`."""
    waited = retry_after_seconds(response)
    if waited is not None:
        return waited
    try:
        usage = json.loads(response.headers.get("x-business-use-case-usage", ""))
    except ValueError:
        return None
    minutes = [
        entry.get("estimated_time_to_regain_access")
        for entries in (usage.values() if isinstance(usage, dict) else [])
        if isinstance(entries, list)
        for entry in entries
        if isinstance(entry, dict)
    ]
    known = [float(m) for m in minutes if isinstance(m, int | float) and m > 0]
    return max(known) * 60 if known else None


async def _read(
    client: httpx.AsyncClient,
    url: str,
    credentials: dict[str, Any],
    params: dict[str, str | int],
) -> dict[str, Any]:
    """A GET for reconcile; any failure is a `ReconcileFailed` (a read is always safe to repeat)."""
    try:
        # The token as a bearer header, so `paging.next` URLs can be followed as they are.
        response = await client.get(
            url,
            params=params or None,
            headers={"Authorization": f"Bearer {credentials['access_token']}"},
        )
    except httpx.TransportError as exc:
        raise ReconcileFailed(Retryable(f"{type(exc).__name__}: {exc}")) from exc
    body = _json_object(response)
    if not response.is_success or body is None:
        refusal = _refusal(response, body)
        raise ReconcileFailed(
            Retryable(refusal.reason) if isinstance(refusal, Unknown) else refusal
        )
    return body


def _published(item: dict[str, Any]) -> Published | None:
    remote_id = item.get("id")
    if not isinstance(remote_id, str) or not remote_id:
        return None
    # facebook.com/<id> opens a post (`<page>_<post>`) or a comment by its Graph id.
    return Published(remote_id, f"https://www.facebook.com/{remote_id}")


def _created_at(item: dict[str, Any]) -> datetime:
    # Graph times look like `2024-05-01T10:00:00+0000`; Python 3.11 reads them.
    return datetime.fromisoformat(str(item.get("created_time", "")))


def _by_page(item: dict[str, Any], page_id: str, wanted: str) -> bool:
    author = item.get("from")
    if not isinstance(author, dict) or str(author.get("id")) != page_id:
        return False
    return comparable_text(str(item.get("message") or "")) == wanted


def comparable_text(text: str) -> str:
    """Text with whitespace collapsed, to match a request with what the Page shows."""
    return " ".join(text.split())
