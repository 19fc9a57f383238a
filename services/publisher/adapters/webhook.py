"""Outgoing signed webhook: publish a post or reply by POSTing it, signed with the channel secret,
to a channel's own endpoint, for systems that have no network adapter of their own.

The request: `POST <url>` with the JSON body `{"idempotency_key", "text", "reply_to",
"visibility", "language", "attempted_at"}` (compact, keys sorted), `Idempotency-Key: <key>` and
`X-SMM-Signature: sha256=<hex HMAC-SHA256 of the raw body with the channel secret>` — the same
signature scheme as the incoming generic webhook. A 2xx answer `{"id", "url"}` is `Published`.

Receivers are required to dedupe on the key: a repeat of a key they have seen answers the item the
first request made. That makes `reconcile` a re-send of the same body with the same key (not a
read, unlike every other adapter): it answers what exists, and publishes only when the first
attempt never arrived, which, for a receiver that dedupes, is the same outcome a retry would have.
So reconcile never returns None; when the re-send fails it raises `ReconcileFailed`.

Media: not sent (the body has nowhere for bytes); a request with media is
`Rejected("media_unsupported")`.
"""

from __future__ import annotations

import hashlib
import hmac
import json
from typing import Any, ClassVar

import httpx
from pydantic import field_validator

from services.publisher.adapters.base import (
    ChannelConfig,
    NeedsReconnect,
    Published,
    PublishOutcome,
    PublishRequest,
    RateLimited,
    ReconcileFailed,
    Rejected,
    Retryable,
    Unknown,
    retry_after_seconds,
)

NETWORK = "webhook"
SIGNATURE_HEADER = "X-SMM-Signature"
_PREFIX = "sha256="
RATE_WINDOW_S = 60.0  # a 429 without Retry-After: try again in a minute


class WebhookChannel(ChannelConfig):
    """Where the channel's posts are delivered."""

    url: str

    @field_validator("url")
    @classmethod
    def _url_is_http(cls, value: str) -> str:
        if not value.startswith(("https://", "http://")):
            raise ValueError("url must be an http(s) URL, e.g. https://cms.example.com/smm")
        return value


class WebhookPublisher:
    """Delivers posts and replies to one endpoint, signed with `credentials["secret"]`."""

    network: ClassVar[str] = NETWORK
    config_model: ClassVar[type[ChannelConfig]] = WebhookChannel

    async def publish(
        self,
        client: httpx.AsyncClient,
        channel_config: WebhookChannel,
        credentials: dict[str, Any],
        request: PublishRequest,
    ) -> PublishOutcome:
        if request.media:
            return Rejected("media_unsupported", "Attachments cannot be sent by webhook yet")
        try:
            response = await _deliver(client, channel_config, credentials, request)
        except (httpx.ConnectError, httpx.ConnectTimeout, httpx.PoolTimeout) as exc:
            return Retryable(f"not sent: {type(exc).__name__}: {exc}")
        except httpx.TransportError as exc:
            return Unknown(f"no answer after sending: {type(exc).__name__}: {exc}")
        return _outcome(response)

    async def reconcile(
        self,
        client: httpx.AsyncClient,
        channel_config: WebhookChannel,
        credentials: dict[str, Any],
        request: PublishRequest,
    ) -> Published | None:
        outcome = await self.publish(client, channel_config, credentials, request)
        if isinstance(outcome, Published):
            return outcome
        raise ReconcileFailed(outcome)


def signature(secret: str, body: bytes) -> str:
    """The `X-SMM-Signature` value of `body`."""
    return _PREFIX + hmac.new(secret.encode(), body, hashlib.sha256).hexdigest()


def payload(request: PublishRequest) -> bytes:
    """The body for `request`: the same bytes on every attempt, so a re-send is a true repeat."""
    document = {
        "idempotency_key": request.idempotency_key,
        "text": request.text,
        "reply_to": request.reply_to_external_id,
        "visibility": request.visibility,
        "language": request.language,
        "attempted_at": request.attempted_at.isoformat() if request.attempted_at else None,
    }
    return json.dumps(document, sort_keys=True, separators=(",", ":")).encode()


async def _deliver(
    client: httpx.AsyncClient,
    config: WebhookChannel,
    credentials: dict[str, Any],
    request: PublishRequest,
) -> httpx.Response:
    body = payload(request)
    headers = {
        "Content-Type": "application/json",
        "Idempotency-Key": request.idempotency_key,
        SIGNATURE_HEADER: signature(str(credentials["secret"]), body),
    }
    return await client.post(config.url, content=body, headers=headers)


def _outcome(response: httpx.Response) -> PublishOutcome:
    status = response.status_code
    body = _json_object(response)
    if response.is_success:
        remote_id = body.get("id") if body else None
        url = body.get("url") if body else None
        if isinstance(remote_id, str | int) and not isinstance(remote_id, bool):
            return Published(str(remote_id), url if isinstance(url, str) else None)
        return Unknown(f"HTTP {status} without an id")
    message = _message(body) or (response.text[:200] or None)
    detail = f"HTTP {status}" + (f": {message}" if message else "")
    if status == 429:
        return RateLimited(retry_after_seconds(response) or RATE_WINDOW_S)
    if status in (401, 403):
        # The receiver refuses our signature: the shared secret changed on one side.
        return NeedsReconnect(detail)
    if status >= 500:
        return Unknown(detail)
    return Rejected(detail, message)


def _json_object(response: httpx.Response) -> dict[str, Any] | None:
    try:
        body = json.loads(response.content)
    except ValueError:
        return None
    return body if isinstance(body, dict) else None


def _message(body: dict[str, Any] | None) -> str | None:
    """The receiver's reason, from `{"error": ...}`, `{"message": ...}` or `{"detail": ...}`."""
    for key in ("error", "message", "detail"):
        value = body.get(key) if body else None
        if isinstance(value, str):
            return value
    return None
