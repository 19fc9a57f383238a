"""Mastodon write half: publish a status or a reply with `Idempotency-Key`, and reconcile an attempt
whose outcome is unknown by reading the account's own recent statuses.

Wire format: https://docs.joinmastodon.org/methods/statuses/#create (`Idempotency-Key` is kept by
the server for one hour: a repeat with the same key returns the status the first request made).

Reconcile is read-only by choice. Re-sending the POST with the same key would also answer "what
happened", but only within the key's hour, and when the first attempt did not happen it publishes
instead of answering, which the publisher must decide, not the adapter. So `reconcile` reads
`GET /api/v1/accounts/:id/statuses` (https://docs.joinmastodon.org/methods/accounts/#statuses),
available on every server without a search index, and looks for a status with the request's text
and reply target, newest first. With `attempted_at` it pages back (at most `RECONCILE_PAGES`) until
statuses older than the attempt (less `CLOCK_SKEW`) and ignores those; without it, only the newest
page is read. Text is compared as Mastodon renders it: HTML flattened, whitespace collapsed, and
remote mentions without their domain (`@ann@example.org` is shown as `@ann`).

Media (https://docs.joinmastodon.org/methods/media/#v2): each file is uploaded first with
`POST /api/v2/media`; an image answers 200, a video 202 and is polled with `GET /api/v1/media/:id`
(206 while processing) for at most `media_wait_s`; then the status names them in `media_ids`. An
upload creates nothing anyone sees, so every failure before the status POST is safe to retry: a
retried publication uploads again and the earlier, never-attached uploads are simply left unused.

Engagement: `GET /api/v1/statuses/:id` (https://docs.joinmastodon.org/entities/Status/:
`favourites_count`, `reblogs_count`, `replies_count`; Mastodon counts no views) and the channel
account's `followers_count` from `GET /api/v1/accounts/:id`
(https://docs.joinmastodon.org/methods/accounts/#get), or `verify_credentials` when the channel's
`account_id` is unset. A status that answers 404 was deleted: the post is gone.
"""

from __future__ import annotations

import asyncio
import dataclasses
import re
import time
from datetime import UTC, datetime, timedelta
from html.parser import HTMLParser
from typing import Any, ClassVar

import httpx
from pydantic import field_validator

from services.publisher.adapters.base import (
    Budget,
    ChannelConfig,
    Engagement,
    EngagementUnavailable,
    MediaUpload,
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

NETWORK = "mastodon"
STATUSES_PAGE_LIMIT = 40  # the most one page of an account's statuses holds
RECONCILE_PAGES = 5
CLOCK_SKEW = timedelta(minutes=5)  # our clock against the server's `created_at`
RATE_WINDOW_S = 300.0  # Mastodon's rate-limit window, when a 429 names no reset time
MEDIA_WAIT_S = 30.0  # how long a publish waits for uploaded videos to be processed
MEDIA_POLL_S = 0.25  # the first pause between polls of a processing upload (doubling, up to 2 s)
_REMOTE_MENTION = re.compile(r"(?<![\w@/])@(\w+)@[\w.-]+\.\w+")


class MastodonChannel(ChannelConfig):
    """Which server the channel's account lives on, and (optionally) the account's id there."""

    api_base: str = "https://mastodon.social"
    # The token owner's id; when unset, reconcile asks verify_credentials.
    account_id: str | None = None

    @field_validator("api_base")
    @classmethod
    def _api_base_is_http(cls, value: str) -> str:
        if not value.startswith(("https://", "http://")):
            raise ValueError("api_base must be an http(s) URL, e.g. https://mastodon.social")
        return value.rstrip("/")


class MastodonPublisher:
    """Publishes statuses and replies to one Mastodon account (`credentials["access_token"]`)."""

    network: ClassVar[str] = NETWORK
    config_model: ClassVar[type[ChannelConfig]] = MastodonChannel

    def __init__(self, *, media_wait_s: float = MEDIA_WAIT_S, media_poll_s: float = MEDIA_POLL_S):
        self.media_wait_s = media_wait_s
        self.media_poll_s = media_poll_s

    async def publish(
        self,
        client: httpx.AsyncClient,
        channel_config: MastodonChannel,
        credentials: dict[str, Any],
        request: PublishRequest,
    ) -> PublishOutcome:
        media_ids: list[str] = []
        for upload in request.media:
            uploaded = await self._upload(client, channel_config, credentials, upload)
            if not isinstance(uploaded, str):
                return uploaded
            media_ids.append(uploaded)
        form: dict[str, str | list[str]] = {"status": request.text}
        if media_ids:
            form["media_ids"] = media_ids
        if request.reply_to_external_id is not None:
            form["in_reply_to_id"] = request.reply_to_external_id
        if request.visibility is not None:
            form["visibility"] = request.visibility
        if request.language is not None:
            form["language"] = request.language
        headers = {**_auth(credentials), "Idempotency-Key": request.idempotency_key}
        try:
            response = await client.post(
                f"{channel_config.api_base}/api/v1/statuses", json=form, headers=headers
            )
        except (httpx.ConnectError, httpx.ConnectTimeout, httpx.PoolTimeout) as exc:
            return Retryable(f"not sent: {type(exc).__name__}: {exc}")
        except httpx.TransportError as exc:
            # The request (or part of it) left: the server may have created the status.
            return Unknown(f"no answer after sending: {type(exc).__name__}: {exc}")
        if response.is_success:
            published = _published(response.json() if _is_json(response) else None)
            if published is None:
                return Unknown(f"HTTP {response.status_code} without a status id")
            return dataclasses.replace(published, budget=_budget(response))
        return _refusal(response)

    async def reconcile(
        self,
        client: httpx.AsyncClient,
        channel_config: MastodonChannel,
        credentials: dict[str, Any],
        request: PublishRequest,
    ) -> Published | None:
        account_id = channel_config.account_id or await self._account_id(
            client, channel_config, credentials
        )
        wanted_text = comparable_text(request.text)
        cutoff = request.attempted_at - CLOCK_SKEW if request.attempted_at else None
        url = f"{channel_config.api_base}/api/v1/accounts/{account_id}/statuses"
        params: dict[str, str | int] = {"limit": STATUSES_PAGE_LIMIT, "exclude_reblogs": "true"}
        for _ in range(RECONCILE_PAGES if cutoff else 1):
            page = await _read(client, url, credentials, params)
            if not isinstance(page, list) or not page:
                return None
            for status in page:
                if not isinstance(status, dict):
                    continue
                if cutoff is not None and _created_at(status) < cutoff:
                    return None
                if _same_post(status, wanted_text, request.reply_to_external_id):
                    return _published(status)
            params["max_id"] = str(page[-1].get("id", ""))
        if cutoff is None:
            return None
        raise ReconcileFailed(
            Retryable(f"more than {RECONCILE_PAGES} pages of statuses since the attempt")
        )

    async def fetch_engagement(
        self,
        client: httpx.AsyncClient,
        channel_config: MastodonChannel,
        credentials: dict[str, Any],
        external_id: str,
    ) -> Engagement:
        api = channel_config.api_base
        status = await _measure(client, f"{api}/api/v1/statuses/{external_id}", credentials)
        account_url = (
            f"{api}/api/v1/accounts/{channel_config.account_id}"
            if channel_config.account_id
            else f"{api}/api/v1/accounts/verify_credentials"
        )
        account = await _measure(client, account_url, credentials)
        return Engagement(
            likes=_count(status, "favourites_count"),
            reposts=_count(status, "reblogs_count"),
            replies=_count(status, "replies_count"),
            followers=_count(account, "followers_count"),
        )

    async def _upload(
        self,
        client: httpx.AsyncClient,
        config: MastodonChannel,
        credentials: dict[str, Any],
        upload: MediaUpload,
    ) -> str | PublishOutcome:
        """The id of `upload` on the server once it can be attached, or why it cannot be."""
        form = {"description": upload.description} if upload.description else {}
        try:
            response = await client.post(
                f"{config.api_base}/api/v2/media",
                data=form,
                files={"file": (upload.filename, upload.data, upload.content_type)},
                headers=_auth(credentials),
            )
        except httpx.TransportError as exc:
            return Retryable(f"media {upload.filename} not uploaded: {type(exc).__name__}: {exc}")
        if not response.is_success:
            return _upload_refusal(response, upload)
        media = response.json() if _is_json(response) else None
        if not isinstance(media, dict) or not isinstance(media.get("id"), str | int):
            return Retryable(f"media {upload.filename}: HTTP {response.status_code} without an id")
        media_id = str(media["id"])
        if response.status_code == 202:
            ready = await self._processed(client, config, credentials, media_id, upload)
            if ready is not None:
                return ready
        return media_id

    async def _processed(
        self,
        client: httpx.AsyncClient,
        config: MastodonChannel,
        credentials: dict[str, Any],
        media_id: str,
        upload: MediaUpload,
    ) -> PublishOutcome | None:
        """None once the server has processed the upload; an outcome if it fails or takes longer
        than `media_wait_s` (the dispatcher's lease bounds a publish, so the wait is bounded)."""
        deadline = time.monotonic() + self.media_wait_s
        pause = self.media_poll_s
        while True:
            await asyncio.sleep(min(pause, max(deadline - time.monotonic(), 0.0)))
            try:
                response = await client.get(
                    f"{config.api_base}/api/v1/media/{media_id}", headers=_auth(credentials)
                )
            except httpx.TransportError as exc:
                return Retryable(f"media {upload.filename}: {type(exc).__name__}: {exc}")
            if response.status_code == 200:
                return None
            if response.status_code != 206:
                return _upload_refusal(response, upload)
            if time.monotonic() >= deadline:
                return Retryable(
                    f"media {upload.filename} still processing after {self.media_wait_s:g} s",
                    retry_after_s=self.media_wait_s,
                )
            pause = min(pause * 2, 2.0)

    async def _account_id(
        self, client: httpx.AsyncClient, config: MastodonChannel, credentials: dict[str, Any]
    ) -> str:
        url = f"{config.api_base}/api/v1/accounts/verify_credentials"
        account = await _read(client, url, credentials, {})
        if not isinstance(account, dict) or not account.get("id"):
            raise ReconcileFailed(Retryable("verify_credentials answered without an account id"))
        return str(account["id"])


# --- wire helpers --------------------------------------------------------------------------------


def _auth(credentials: dict[str, Any]) -> dict[str, str]:
    return {"Authorization": f"Bearer {credentials['access_token']}"}


def _is_json(response: httpx.Response) -> bool:
    content_type = str(response.headers.get("content-type", ""))
    return content_type.split(";")[0].strip().lower() == "application/json"


def _error_message(response: httpx.Response) -> str | None:
    """Mastodon's `{"error": "..."}` text, if the answer has one (a proxy's HTML page has not)."""
    if not _is_json(response):
        return None
    try:
        body = response.json()
    except ValueError:
        return None
    message = body.get("error") if isinstance(body, dict) else None
    return message if isinstance(message, str) else None


def _refusal(response: httpx.Response) -> RateLimited | NeedsReconnect | Rejected | Unknown:
    status = response.status_code
    message = _error_message(response)
    detail = f"HTTP {status}" + (f": {message}" if message else "")
    if status == 429:
        return RateLimited(retry_after_seconds(response) or RATE_WINDOW_S)
    if status in (401, 403):
        return NeedsReconnect(detail)
    if status >= 500:
        # The server may have saved the status before failing to answer.
        return Unknown(detail)
    return Rejected(detail, message)


def _upload_refusal(
    response: httpx.Response, upload: MediaUpload
) -> RateLimited | NeedsReconnect | Rejected | Retryable:
    """An upload's or a poll's refusal: no status exists yet, so a server error is retryable."""
    refusal = _refusal(response)
    if isinstance(refusal, Unknown):
        return Retryable(f"media {upload.filename}: {refusal.reason}")
    if isinstance(refusal, Rejected):
        return Rejected(f"media {upload.filename}: {refusal.reason}", refusal.network_message)
    return refusal


async def _read(
    client: httpx.AsyncClient,
    url: str,
    credentials: dict[str, Any],
    params: dict[str, str | int],
) -> Any:
    """A GET for reconcile; any failure is a `ReconcileFailed` (a read is always safe to repeat)."""
    try:
        response = await client.get(url, params=params, headers=_auth(credentials))
    except httpx.TransportError as exc:
        raise ReconcileFailed(Retryable(f"{type(exc).__name__}: {exc}")) from exc
    if not response.is_success:
        refusal = _refusal(response)
        # A 5xx to a read changed nothing: unlike a publish, it is plainly retryable.
        raise ReconcileFailed(
            Retryable(refusal.reason) if isinstance(refusal, Unknown) else refusal
        )
    if not _is_json(response):
        raise ReconcileFailed(Retryable(f"HTTP {response.status_code} without JSON"))
    return response.json()


async def _measure(
    client: httpx.AsyncClient, url: str, credentials: dict[str, Any]
) -> dict[str, Any]:
    """A GET for the engagement job: the JSON object, or `EngagementUnavailable` saying why not."""
    try:
        response = await client.get(url, headers=_auth(credentials))
    except httpx.TransportError as exc:
        raise EngagementUnavailable(Retryable(f"{type(exc).__name__}: {exc}")) from exc
    if not response.is_success:
        refusal = _refusal(response)
        # A read changed nothing: a 5xx is plainly retryable.
        raise EngagementUnavailable(
            Retryable(refusal.reason) if isinstance(refusal, Unknown) else refusal
        )
    body = response.json() if _is_json(response) else None
    if not isinstance(body, dict):
        raise EngagementUnavailable(Retryable(f"HTTP {response.status_code} without a JSON object"))
    return body


def _count(entity: dict[str, Any], name: str) -> int | None:
    value = entity.get(name)
    return value if isinstance(value, int) and not isinstance(value, bool) and value >= 0 else None


def _budget(response: httpx.Response) -> Budget | None:
    """Mastodon's `X-RateLimit-Remaining` and `X-RateLimit-Reset` (ISO 8601)."""
    remaining, reset = (
        response.headers.get("x-ratelimit-remaining"),
        response.headers.get("x-ratelimit-reset"),
    )
    if remaining is None or reset is None or not remaining.isdigit():
        return None
    try:
        reset_at = datetime.fromisoformat(reset.replace("Z", "+00:00"))
    except ValueError:
        return None
    return Budget(int(remaining), reset_at if reset_at.tzinfo else reset_at.replace(tzinfo=UTC))


def _published(status: Any) -> Published | None:
    if not isinstance(status, dict) or not isinstance(status.get("id"), str | int):
        return None
    url = status.get("url")
    return Published(str(status["id"]), url if isinstance(url, str) else None)


def _created_at(status: dict[str, Any]) -> datetime:
    # Python 3.11's fromisoformat reads Mastodon's `2024-05-01T10:00:00.000Z`.
    return datetime.fromisoformat(str(status.get("created_at", "")))


def _same_post(status: dict[str, Any], wanted_text: str, reply_to: str | None) -> bool:
    parent = status.get("in_reply_to_id")
    if (str(parent) if parent is not None else None) != reply_to:
        return False
    return comparable_text(html_text(str(status.get("content") or ""))) == wanted_text


class _TextCollector(HTMLParser):
    def __init__(self) -> None:
        super().__init__(convert_charrefs=True)
        self.parts: list[str] = []

    def handle_starttag(self, tag: str, attrs: list[tuple[str, str | None]]) -> None:
        if tag in ("br", "p"):
            self.parts.append("\n")

    def handle_data(self, data: str) -> None:
        self.parts.append(data)


def html_text(content: str) -> str:
    """A status's `content` HTML as plain text; links keep their hidden (`invisible`) parts."""
    collector = _TextCollector()
    collector.feed(content)
    collector.close()
    return "".join(collector.parts).strip()


def comparable_text(text: str) -> str:
    """Text reduced to what survives Mastodon's rendering, to match a request with a status."""
    return " ".join(_REMOTE_MENTION.sub(r"@\1", text).split())
