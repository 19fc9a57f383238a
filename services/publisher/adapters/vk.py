"""VK write half: publish a community wall post (`wall.post`) or a comment reply
(`wall.createComment`) with the idempotency key as VK's `guid`, and reconcile an unknown outcome by
reading the community's wall or the post's comments.

Wire format: https://dev.vk.com/ru/method/wall.post and
https://dev.vk.com/ru/method/wall.createComment, both form-encoded POSTs whose errors come in a
200 answer's `{"error": {"error_code", "error_msg"}}` (https://dev.vk.com/ru/reference/errors).
`wall.post` takes a *user* token of a community admin (VK hands the `wall` right out on request);
`wall.createComment` also takes the community's own token.

`guid` is documented only as a unique id that stops the same post from being sent twice; VK does
not document what a repeat answers (in practice the first post's id). So reconcile does not re-post
to find out: like Mastodon's, it only reads. Posts are found with `wall.get`
(https://dev.vk.com/ru/method/wall.get: the community's own posts, newest first, a pinned post on
top), comments with `wall.getComments` (newest first; a reply to a comment is looked for in that
comment's thread), matched by author (the community), text and, with `attempted_at`, date.

Media: not sent yet (it needs VK's upload-server dance per photo); a request with media is
`Rejected("media_unsupported")` rather than published without it.
"""

from __future__ import annotations

import json
import re
from datetime import datetime, timedelta
from typing import Any, ClassVar

import httpx
from pydantic import Field, field_validator

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

NETWORK = "vk"
# https://dev.vk.com/ru/reference/errors, grouped by what the publisher should do.
AUTH_ERRORS = frozenset({5, 27, 28})  # user / community / application authorisation failed
PERMISSION_ERRORS = frozenset({7, 15})  # the token lacks the right (e.g. `wall`)
# What to wait after each rate-limit error: 6 is per second, 9 flood control, 29 a daily quota.
RATE_LIMIT_WAIT_S = {6: 1.0, 9: 60.0, 29: 3600.0}
# 1 "unknown error" and 10 "internal server error": VK may have saved the post before failing.
MAYBE_APPLIED_ERRORS = frozenset({1, 10})
PAGE_SIZE = 100  # the most wall.get and wall.getComments return at once
RECONCILE_PAGES = 5
CLOCK_SKEW = timedelta(minutes=5)  # our clock against VK's `date`
_REPLY_TARGET = re.compile(r"(?P<owner>-?[0-9]+)_(?P<post>[0-9]+)(?:_(?P<comment>[0-9]+))?")


class VkChannel(ChannelConfig):
    """The community (by its positive id) whose wall the channel publishes to."""

    group_id: int = Field(ge=1)
    api_base: str = "https://api.vk.com/method"
    api_version: str = "5.199"

    @field_validator("api_base")
    @classmethod
    def _api_base_is_http(cls, value: str) -> str:
        if not value.startswith(("https://", "http://")):
            raise ValueError("api_base must be an http(s) URL, e.g. https://api.vk.com/method")
        return value.rstrip("/")


class VkPublisher:
    """Publishes posts and comment replies as one VK community (`credentials["access_token"]`).

    A reply's `reply_to_external_id` is what ingest gives VK items: `<owner>_<post>` to comment on
    a post, `<owner>_<post>_<comment>` to answer a comment.
    """

    network: ClassVar[str] = NETWORK
    config_model: ClassVar[type[ChannelConfig]] = VkChannel

    async def publish(
        self,
        client: httpx.AsyncClient,
        channel_config: VkChannel,
        credentials: dict[str, Any],
        request: PublishRequest,
    ) -> PublishOutcome:
        if request.media:
            return Rejected("media_unsupported", "Attachments cannot be published to VK yet")
        if request.reply_to_external_id is None:
            form = {
                "owner_id": str(-channel_config.group_id),
                "from_group": "1",
                "message": request.text,
                "guid": request.idempotency_key,
            }
            method = "wall.post"
        else:
            target = _reply_target(request.reply_to_external_id)
            if target is None:
                return Rejected(
                    "bad_reply_target",
                    f"{request.reply_to_external_id!r} is not a VK post or comment id",
                )
            owner, post, comment = target
            form = {
                "owner_id": str(owner),
                "post_id": str(post),
                "from_group": str(channel_config.group_id),
                "message": request.text,
                "guid": request.idempotency_key,
            }
            if comment is not None:
                form["reply_to_comment"] = str(comment)
            method = "wall.createComment"
        try:
            response = await client.post(
                _method_url(channel_config, method), data=_signed(form, channel_config, credentials)
            )
        except (httpx.ConnectError, httpx.ConnectTimeout, httpx.PoolTimeout) as exc:
            return Retryable(f"not sent: {type(exc).__name__}: {exc}")
        except httpx.TransportError as exc:
            # The request (or part of it) left: VK may have created the post.
            return Unknown(f"no answer after sending: {type(exc).__name__}: {exc}")
        body = _json_object(response)
        if not response.is_success or body is None:
            return _http_refusal(response)
        error = body.get("error")
        if isinstance(error, dict):
            return _api_refusal(method, error)
        result = body.get("response")
        published = (
            _published_post(channel_config.group_id, result)
            if method == "wall.post"
            else _published_comment(form, result)
        )
        return published or Unknown(f"vk: {method} answered without an id")

    async def reconcile(
        self,
        client: httpx.AsyncClient,
        channel_config: VkChannel,
        credentials: dict[str, Any],
        request: PublishRequest,
    ) -> Published | None:
        cutoff = request.attempted_at - CLOCK_SKEW if request.attempted_at else None
        wanted = comparable_text(request.text)
        if request.reply_to_external_id is None:
            return await self._find_post(client, channel_config, credentials, wanted, cutoff)
        target = _reply_target(request.reply_to_external_id)
        if target is None:
            raise ReconcileFailed(Rejected("bad_reply_target", request.reply_to_external_id))
        return await self._find_comment(client, channel_config, credentials, target, wanted, cutoff)

    async def _find_post(
        self,
        client: httpx.AsyncClient,
        config: VkChannel,
        credentials: dict[str, Any],
        wanted: str,
        cutoff: datetime | None,
    ) -> Published | None:
        community = -config.group_id
        form = {"owner_id": str(community), "filter": "owner", "count": str(PAGE_SIZE)}
        for page in range(RECONCILE_PAGES if cutoff else 1):
            form["offset"] = str(page * PAGE_SIZE)
            items = await _read(client, config, credentials, "wall.get", form)
            if not items:
                return None
            for post in items:
                # A pinned post heads the wall whatever its age.
                too_old = cutoff is not None and _date(post) < cutoff.timestamp()
                if too_old and not post.get("is_pinned"):
                    return None
                if not too_old and _by_us(post, community, wanted):
                    return _published_post(config.group_id, {"post_id": post.get("id")})
            if len(items) < PAGE_SIZE:
                return None
        if cutoff is None:
            return None
        raise ReconcileFailed(Retryable(f"more than {RECONCILE_PAGES} pages of posts since then"))

    async def _find_comment(
        self,
        client: httpx.AsyncClient,
        config: VkChannel,
        credentials: dict[str, Any],
        target: tuple[int, int, int | None],
        wanted: str,
        cutoff: datetime | None,
    ) -> Published | None:
        owner, post, comment = target
        form = {
            "owner_id": str(owner),
            "post_id": str(post),
            "sort": "desc",
            "count": str(PAGE_SIZE),
            "preview_length": "0",  # whole texts, to compare them
        }
        if comment is not None:
            form["comment_id"] = str(comment)  # the thread the reply went into
        for page in range(RECONCILE_PAGES if cutoff else 1):
            form["offset"] = str(page * PAGE_SIZE)
            items = await _read(client, config, credentials, "wall.getComments", form)
            if not items:
                return None
            for item in items:
                if cutoff is not None and _date(item) < cutoff.timestamp():
                    return None
                if _by_us(item, -config.group_id, wanted) and _answers(item, comment):
                    created = {**form, "reply_to_comment": str(comment) if comment else ""}
                    return _published_comment(created, {"comment_id": item.get("id"), **item})
            if len(items) < PAGE_SIZE:
                return None
        if cutoff is None:
            return None
        raise ReconcileFailed(Retryable(f"more than {RECONCILE_PAGES} pages of comments"))


# --- wire helpers --------------------------------------------------------------------------------


def _method_url(config: VkChannel, method: str) -> str:
    return f"{config.api_base}/{method}"


def _signed(form: dict[str, str], config: VkChannel, credentials: dict[str, Any]) -> dict[str, str]:
    # In the form body, not the query string, so no log of URLs holds the token.
    return {**form, "access_token": str(credentials["access_token"]), "v": config.api_version}


def _reply_target(external_id: str) -> tuple[int, int, int | None] | None:
    match = _REPLY_TARGET.fullmatch(external_id)
    if match is None:
        return None
    comment = match["comment"]
    return int(match["owner"]), int(match["post"]), int(comment) if comment else None


def _json_object(response: httpx.Response) -> dict[str, Any] | None:
    try:
        body = json.loads(response.content)
    except ValueError:
        return None
    return body if isinstance(body, dict) else None


def _http_refusal(response: httpx.Response) -> RateLimited | Unknown:
    """VK answers its API errors with 200; anything else is a proxy's or the edge's answer."""
    status = response.status_code
    if status == 429:
        return RateLimited(retry_after_seconds(response) or RATE_LIMIT_WAIT_S[6])
    # A 5xx, or a 200 that is not VK's JSON: the call may have been applied behind it.
    return Unknown(f"vk: HTTP {status} without an API answer")


def _api_refusal(
    method: str, error: dict[str, Any]
) -> NeedsReconnect | RateLimited | Rejected | Unknown:
    code = error.get("error_code")
    message = str(error.get("error_msg") or "no message")
    detail = f"vk: {method}: error {code}: {message}"
    if code in AUTH_ERRORS or code in PERMISSION_ERRORS:
        return NeedsReconnect(detail)
    if isinstance(code, int) and code in RATE_LIMIT_WAIT_S:
        return RateLimited(RATE_LIMIT_WAIT_S[code])
    if code in MAYBE_APPLIED_ERRORS:
        return Unknown(detail)
    # 100 (invalid parameter), 214/213 (posting or commenting closed), 222 (links forbidden)…:
    # VK processed the call and said no.
    return Rejected(detail, message)


async def _read(
    client: httpx.AsyncClient,
    config: VkChannel,
    credentials: dict[str, Any],
    method: str,
    form: dict[str, str],
) -> list[dict[str, Any]]:
    """The `items` of a read for reconcile; any failure is a `ReconcileFailed`."""
    try:
        response = await client.post(
            _method_url(config, method), data=_signed(form, config, credentials)
        )
    except httpx.TransportError as exc:
        raise ReconcileFailed(Retryable(f"vk: {method}: {type(exc).__name__}: {exc}")) from exc
    body = _json_object(response)
    if not response.is_success or body is None:
        refusal = _http_refusal(response)
        # A failed read changed nothing: unlike a publish, it is plainly retryable.
        raise ReconcileFailed(
            Retryable(refusal.reason) if isinstance(refusal, Unknown) else refusal
        )
    error = body.get("error")
    if isinstance(error, dict):
        failure = _api_refusal(method, error)
        raise ReconcileFailed(
            Retryable(failure.reason) if isinstance(failure, Unknown) else failure
        )
    result = body.get("response")
    items = result.get("items") if isinstance(result, dict) else None
    if not isinstance(items, list):
        raise ReconcileFailed(Retryable(f"vk: {method} answered without items"))
    return [item for item in items if isinstance(item, dict)]


def _published_post(group_id: int, result: Any) -> Published | None:
    post_id = result.get("post_id") if isinstance(result, dict) else None
    if not isinstance(post_id, int) or isinstance(post_id, bool):
        return None
    remote_id = f"{-group_id}_{post_id}"
    return Published(remote_id, f"https://vk.com/wall{remote_id}")


def _published_comment(form: dict[str, str], result: Any) -> Published | None:
    comment_id = result.get("comment_id") if isinstance(result, dict) else None
    if not isinstance(comment_id, int) or isinstance(comment_id, bool):
        return None
    post = f"{form['owner_id']}_{form['post_id']}"
    url = f"https://vk.com/wall{post}?reply={comment_id}"
    stack = result.get("parents_stack")
    if isinstance(stack, list) and stack:
        url += f"&thread={stack[0]}"
    elif form.get("reply_to_comment"):
        url += f"&thread={form['reply_to_comment']}"
    return Published(f"{post}_{comment_id}", url)


def _date(item: dict[str, Any]) -> int:
    date = item.get("date")
    return date if isinstance(date, int) else 0


def _by_us(item: dict[str, Any], community: int, wanted: str) -> bool:
    return item.get("from_id") == community and comparable_text(str(item.get("text", ""))) == wanted


def _answers(comment: dict[str, Any], reply_to_comment: int | None) -> bool:
    # A comment on the post itself answers no comment; a reply names the one it answers.
    return comment.get("reply_to_comment") == reply_to_comment


def comparable_text(text: str) -> str:
    """Text with whitespace collapsed: VK trims and keeps line breaks, which may not round-trip."""
    return " ".join(text.split())
