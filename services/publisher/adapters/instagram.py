"""Instagram write half for a professional account: publish a post (one image or video, or a
carousel of 2 to 10) through a media container, reply to a comment, hide a comment, and settle an
unknown outcome.

Wire format (https://developers.facebook.com/docs/instagram-platform/content-publishing):
`POST /{ig-user-id}/media` makes a container from a public `image_url` or `video_url` (Instagram
downloads the file itself, so each `MediaUpload` must carry its `source_url`) and the caption; a
carousel first makes one container per item with `is_carousel_item=true`, then a `CAROUSEL`
container naming them in `children`. The container is polled with `GET /{container-id}
?fields=status_code,status` until `FINISHED` (at most `container_wait_s`; `ERROR` is a refusal),
then `POST /{ig-user-id}/media_publish` with `creation_id` answers the media id, and
`GET /{media-id}?fields=permalink` its link. A reply is `POST /{ig-comment-id}/replies` with
`message` (https://developers.facebook.com/docs/instagram-platform/instagram-graph-api/reference/ig-comment/replies).
Hiding a comment is `POST /{ig-comment-id}` with `hide=true`, answered `{"success": true}`
(https://developers.facebook.com/docs/instagram-platform/instagram-graph-api/reference/ig-comment,
"Updating"); it sets a state, so it is sent again rather than reconciled.
Errors are Graph errors, read as the Meta Page adapter reads them, plus Instagram's own codes
(https://developers.facebook.com/docs/instagram-platform/instagram-graph-api/reference/error-codes).

Only `media_publish` (and a reply) makes anything people see. Containers are invisible and expire
unpublished after 24 hours, so every failure before `media_publish` is safe to retry: a retried
publication simply makes new containers. For the same reason the container id is no idempotency
guarantee: it is not kept between attempts, and Meta does not document that publishing one
container twice is refused. There is no idempotency key either, so an unknown outcome is settled by
`reconcile`, which reads `GET /{ig-user-id}/media?fields=id,caption,timestamp,permalink` (the
account's own media, newest first) and matches the caption since `attempted_at` less
`CLOCK_SKEW`; a reply is looked for among the comment's `replies` written by the account's
username. Without `attempted_at` only the newest page is read.
"""

from __future__ import annotations

import asyncio
import time
from datetime import datetime
from typing import Any, ClassVar

import httpx

from services.publisher.adapters.base import (
    ChannelConfig,
    HideOutcome,
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
from services.publisher.adapters.meta import (
    CLOCK_SKEW,
    RECONCILE_PAGES,
    GraphChannel,
    _json_object,
    _read,
    comparable_text,
    update_comment,
)
from services.publisher.adapters.meta import _refusal as _graph_refusal

NETWORK = "instagram"
MAX_CAROUSEL_ITEMS = 10
CONTAINER_WAIT_S = 60.0  # how long a publish waits for Instagram to process its containers
CONTAINER_POLL_S = 1.0  # the first pause between polls of a container (doubling, up to 5 s)
MEDIA_PAGE_LIMIT = 50
# https://developers.facebook.com/docs/instagram-platform/instagram-graph-api/reference/error-codes
PUBLISHING_LIMIT_ERROR = 9  # 2207042: the account's posts per rolling 24 hours are used up
PUBLISHING_LIMIT_WINDOW_S = 24 * 3600.0
SPAM_SUBCODE = 2207051  # code 4 here is "restricted as spam", a refusal rather than a rate limit
# -1 (Instagram server error) and -2 (media download timed out): "try again".
SERVER_ERRORS = frozenset({-1, -2})
NOT_READY_ERROR = 9007  # 2207027: `media_publish` before the container finished processing
_MEDIA_FIELDS = "id,caption,timestamp,permalink"
_REPLY_FIELDS = "id,text,timestamp,username"


class InstagramChannel(GraphChannel):
    """The Instagram professional account (its IG user id) and the Graph API host and version:
    `graph.facebook.com` with Facebook Login, `graph.instagram.com` with Instagram Login."""

    ig_user_id: str


class InstagramPublisher:
    """Publishes posts and comment replies, and hides comments (`credentials["access_token"]`, a
    user token with `instagram_content_publish` and `instagram_manage_comments`, or their
    Instagram Login twins).

    A reply's `reply_to_external_id`, like a hidden comment's id, is an IG comment id. Instagram
    needs media: a post without it is `Rejected("media_required")`, and media without a
    `source_url` is `Rejected("media_url_required")`.
    """

    network: ClassVar[str] = NETWORK
    config_model: ClassVar[type[ChannelConfig]] = InstagramChannel

    def __init__(
        self,
        *,
        container_wait_s: float = CONTAINER_WAIT_S,
        container_poll_s: float = CONTAINER_POLL_S,
    ) -> None:
        self.container_wait_s = container_wait_s
        self.container_poll_s = container_poll_s

    async def publish(
        self,
        client: httpx.AsyncClient,
        channel_config: InstagramChannel,
        credentials: dict[str, Any],
        request: PublishRequest,
    ) -> PublishOutcome:
        if request.reply_to_external_id is not None:
            if request.media:
                return Rejected("media_unsupported", "Replies to comments on Instagram are text")
            url = channel_config.url(f"{request.reply_to_external_id}/replies")
            return await _create(client, url, credentials, {"message": request.text})
        refused = _unpublishable(request.media)
        if refused is not None:
            return refused
        container = await self._container(client, channel_config, credentials, request)
        if not isinstance(container, str):
            return container
        published = await _create(
            client,
            channel_config.url(f"{channel_config.ig_user_id}/media_publish"),
            credentials,
            {"creation_id": container},
        )
        if not isinstance(published, Published):
            return published
        return Published(
            published.remote_id,
            await _permalink(client, channel_config, credentials, published.remote_id),
        )

    async def reconcile(
        self,
        client: httpx.AsyncClient,
        channel_config: InstagramChannel,
        credentials: dict[str, Any],
        request: PublishRequest,
    ) -> Published | None:
        cutoff = request.attempted_at - CLOCK_SKEW if request.attempted_at else None
        wanted = comparable_text(request.text)
        username: str | None = None
        if request.reply_to_external_id is None:
            url: str | None = channel_config.url(f"{channel_config.ig_user_id}/media")
            params: dict[str, str | int] = {"fields": _MEDIA_FIELDS, "limit": MEDIA_PAGE_LIMIT}
            text_field = "caption"
        else:
            account = await _read(
                client,
                channel_config.url(channel_config.ig_user_id),
                credentials,
                {"fields": "username"},
            )
            username = str(account.get("username") or "")
            if not username:
                raise ReconcileFailed(Retryable("the account answered without a username"))
            url = channel_config.url(f"{request.reply_to_external_id}/replies")
            params = {"fields": _REPLY_FIELDS, "limit": MEDIA_PAGE_LIMIT}
            text_field = "text"
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
                if cutoff is not None and _timestamp(item) < cutoff:
                    # Media come newest first, so nothing further is recent enough; replies come
                    # in Instagram's own order, so only this one is skipped.
                    if username is None:
                        return None
                    continue
                if username is not None and item.get("username") != username:
                    continue
                if comparable_text(str(item.get(text_field) or "")) == wanted:
                    return _found(item)
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
        channel_config: InstagramChannel,
        credentials: dict[str, Any],
        external_id: str,
    ) -> HideOutcome:
        """Hide a comment on one of the account's media."""
        return await update_comment(
            client,
            channel_config.url(external_id),
            {"hide": "true"},
            external_id,
            headers=_auth(credentials),
            refusal=_refusal,
        )

    # --- containers ------------------------------------------------------------------------------

    async def _container(
        self,
        client: httpx.AsyncClient,
        config: InstagramChannel,
        credentials: dict[str, Any],
        request: PublishRequest,
    ) -> str | PublishOutcome:
        """The id of a FINISHED container holding the post, or why there is none."""
        caption = {"caption": request.text} if request.text.strip() else {}
        if len(request.media) == 1:
            form = {**_media_fields(request.media[0], carousel_item=False), **caption}
            return await self._ready_container(client, config, credentials, form)
        children: list[str] = []
        for item in request.media:
            form = _media_fields(item, carousel_item=True)
            child = await self._ready_container(client, config, credentials, form)
            if not isinstance(child, str):
                return child
            children.append(child)
        form = {"media_type": "CAROUSEL", "children": ",".join(children), **caption}
        return await self._ready_container(client, config, credentials, form)

    async def _ready_container(
        self,
        client: httpx.AsyncClient,
        config: InstagramChannel,
        credentials: dict[str, Any],
        form: dict[str, str],
    ) -> str | PublishOutcome:
        created = await _create(client, config.url(f"{config.ig_user_id}/media"), credentials, form)
        if not isinstance(created, Published):
            return _invisible(created)
        failed = await self._finished(client, config, credentials, created.remote_id)
        return created.remote_id if failed is None else failed

    async def _finished(
        self,
        client: httpx.AsyncClient,
        config: InstagramChannel,
        credentials: dict[str, Any],
        container_id: str,
    ) -> PublishOutcome | None:
        """None once the container is FINISHED; an outcome if it fails, expires or takes longer
        than `container_wait_s` (the dispatcher's lease bounds a publish, so the wait must be)."""
        deadline = time.monotonic() + self.container_wait_s
        pause = self.container_poll_s
        while True:
            try:
                response = await client.get(
                    config.url(container_id),
                    params={"fields": "status_code,status"},
                    headers=_auth(credentials),
                )
            except httpx.TransportError as exc:
                return Retryable(f"container {container_id}: {type(exc).__name__}: {exc}")
            body = _json_object(response)
            if not response.is_success or body is None:
                return _invisible(_refusal(response, body))
            status_code = body.get("status_code")
            status = str(body.get("status") or status_code)
            if status_code == "FINISHED":
                return None
            if status_code == "ERROR":
                return Rejected(f"container {container_id} ERROR: {status}", status)
            if status_code != "IN_PROGRESS":
                # EXPIRED, or PUBLISHED by someone else: this container cannot be used; a new
                # attempt makes a new one.
                return Retryable(f"container {container_id} is {status_code}: {status}")
            if time.monotonic() >= deadline:
                return Retryable(
                    f"container {container_id} still IN_PROGRESS after {self.container_wait_s:g} s",
                    retry_after_s=self.container_wait_s,
                )
            await asyncio.sleep(min(pause, max(deadline - time.monotonic(), 0.0)))
            pause = min(pause * 2, 5.0)


# --- wire helpers --------------------------------------------------------------------------------


def _unpublishable(media: list[MediaUpload]) -> Rejected | None:
    if not media:
        return Rejected("media_required", "Instagram posts need at least one image or video")
    if len(media) > MAX_CAROUSEL_ITEMS:
        return Rejected(
            "too_many_media", f"An Instagram carousel holds at most {MAX_CAROUSEL_ITEMS} items"
        )
    for item in media:
        if not item.source_url:
            return Rejected(
                "media_url_required", f"{item.filename}: Instagram fetches media from a public URL"
            )
        if not item.content_type.startswith(("image/", "video/")):
            return Rejected(
                "media_type_unsupported", f"{item.filename}: {item.content_type} is not supported"
            )
    return None


def _media_fields(item: MediaUpload, *, carousel_item: bool) -> dict[str, str]:
    url = str(item.source_url)
    if item.content_type.startswith("video/"):
        # A lone video is published as a reel (VIDEO is no longer accepted outside carousels).
        fields = {"media_type": "VIDEO" if carousel_item else "REELS", "video_url": url}
    else:
        fields = {"image_url": url}
    if carousel_item:
        fields["is_carousel_item"] = "true"
    return fields


def _auth(credentials: dict[str, Any]) -> dict[str, str]:
    return {"Authorization": f"Bearer {credentials['access_token']}"}


async def _create(
    client: httpx.AsyncClient, url: str, credentials: dict[str, Any], form: dict[str, str]
) -> Published | Retryable | RateLimited | NeedsReconnect | Rejected | Unknown:
    """A POST that answers `{"id": …}`: `Published(id, None)` on success (for a container, an id
    nobody sees yet)."""
    try:
        response = await client.post(url, data=form, headers=_auth(credentials))
    except (httpx.ConnectError, httpx.ConnectTimeout, httpx.PoolTimeout) as exc:
        return Retryable(f"not sent: {type(exc).__name__}: {exc}")
    except httpx.TransportError as exc:
        # The request (or part of it) left: Instagram may have acted on it.
        return Unknown(f"no answer after sending: {type(exc).__name__}: {exc}")
    body = _json_object(response)
    if response.is_success and body is not None:
        created = body.get("id")
        if isinstance(created, str | int) and str(created):
            return Published(str(created), None)
        return Unknown(f"HTTP {response.status_code} without an id")
    return _refusal(response, body)


def _refusal(
    response: httpx.Response, body: dict[str, Any] | None
) -> RateLimited | NeedsReconnect | Rejected | Unknown | Retryable:
    """A Graph refusal, with Instagram's codes read before the generic ones."""
    error = body.get("error") if body is not None else None
    if isinstance(error, dict):
        code, subcode = error.get("code"), error.get("error_subcode")
        message = str(error.get("message") or "no message")
        detail = f"HTTP {response.status_code}: Graph error {code}/{subcode}: {message}"
        if code == PUBLISHING_LIMIT_ERROR:
            return RateLimited(retry_after_seconds(response) or PUBLISHING_LIMIT_WINDOW_S)
        if subcode == SPAM_SUBCODE:
            return Rejected(detail, str(error.get("error_user_msg") or message))
        if code == NOT_READY_ERROR:
            return Retryable(detail)
        if code in SERVER_ERRORS:
            return Unknown(detail)
    return _graph_refusal(response, body)


def _invisible(
    outcome: Retryable | RateLimited | NeedsReconnect | Rejected | Unknown,
) -> PublishOutcome:
    """A container's failure: nobody can see a container, so "maybe made" is plainly retryable."""
    return Retryable(f"container: {outcome.reason}") if isinstance(outcome, Unknown) else outcome


async def _permalink(
    client: httpx.AsyncClient,
    config: InstagramChannel,
    credentials: dict[str, Any],
    media_id: str,
) -> str | None:
    """The post's link; None when it cannot be read (the post exists either way)."""
    try:
        response = await client.get(
            config.url(media_id), params={"fields": "permalink"}, headers=_auth(credentials)
        )
    except httpx.TransportError:
        return None
    body = _json_object(response)
    link = body.get("permalink") if response.is_success and body is not None else None
    return link if isinstance(link, str) and link else None


def _timestamp(item: dict[str, Any]) -> datetime:
    # Graph times look like `2024-05-01T10:00:00+0000`; Python 3.11 reads them.
    return datetime.fromisoformat(str(item.get("timestamp", "")))


def _found(item: dict[str, Any]) -> Published | None:
    remote_id = item.get("id")
    if not isinstance(remote_id, str) or not remote_id:
        return None
    link = item.get("permalink")
    return Published(remote_id, link if isinstance(link, str) and link else None)
