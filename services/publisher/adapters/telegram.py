"""Telegram (Bot API) write half: post a text message to the channel's chat, or reply to a message,
with `sendMessage`; an unknown outcome cannot be reconciled and goes to a person.

Wire format: https://core.telegram.org/bots/api#sendmessage (`reply_parameters` for replies) and
https://core.telegram.org/bots/api#making-requests (errors: `{"ok": false, "error_code",
"description", "parameters": {"retry_after"}}`).

The guarantee is at most once, never a duplicate. The Bot API takes no idempotency key, and a bot
cannot read a chat's history (no method lists messages; a bot gets no updates for its own
messages), so after a timeout or a 5xx nothing the adapter can read says whether the message was
sent. `reconcile` therefore always raises `ReconcileFailed(Rejected("unreconcilable"))`: the
publisher marks the delivery as needing attention and a person looks at the chat, instead of a
retry that might post the message twice. Outcomes that say nothing was sent (connection refused,
429, 4xx) stay `Retryable`/`RateLimited`/`Rejected` and are safe to retry.

Remote ids are `<chat_id>:<message_id>`, as ingest names Telegram messages, so a reply target from
the inbox (`reply_to_external_id`) names its chat: the reply goes to that chat.

Photos: one goes with `sendPhoto`, two to ten as an album with `sendMediaGroup`
(https://core.telegram.org/bots/api#sendphoto, #sendmediagroup), uploaded as multipart files (an
album names its files with `attach://`), the text as the caption (of the first photo of an album),
and replies as for messages. An album's remote id is its first message, the one with the caption.
Telegram has no alt text, so descriptions are not sent. Captions over 1,024 characters, videos and
GIFs are refused rather than published cut or without them.
"""

from __future__ import annotations

import json
from typing import Any, ClassVar

import httpx
from pydantic import field_validator

from services.publisher.adapters.base import (
    ChannelConfig,
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

NETWORK = "telegram"
FLOOD_WAIT_S = 30.0  # when a 429 names no retry_after
MAX_CAPTION = 1024  # UTF-16 code units of a caption, after entities parsing
MAX_ALBUM = 10  # sendMediaGroup: 2-10 items
# 400 descriptions that mean the bot lost the chat: a person must re-add it or fix the channel.
CHAT_LOST = ("chat not found", "group chat was upgraded", "have no rights", "not enough rights")


class TelegramChannel(ChannelConfig):
    """The chat the bot posts to: a channel's `@username` or a numeric chat id (`-100…`)."""

    api_base: str = "https://api.telegram.org"
    chat_id: int | str

    @field_validator("api_base")
    @classmethod
    def _api_base_is_http(cls, value: str) -> str:
        if not value.startswith(("https://", "http://")):
            raise ValueError("api_base must be an http(s) URL, e.g. https://api.telegram.org")
        return value.rstrip("/")

    @field_validator("chat_id")
    @classmethod
    def _chat_id_is_id_or_username(cls, value: int | str) -> int | str:
        if isinstance(value, str) and not value.startswith("@"):
            try:
                return int(value)
            except ValueError:
                raise ValueError("chat_id must be a numeric id or a @channelusername") from None
        return value


class TelegramPublisher:
    """Sends messages and replies as one bot (`credentials["bot_token"]`)."""

    network: ClassVar[str] = NETWORK
    config_model: ClassVar[type[ChannelConfig]] = TelegramChannel

    async def publish(
        self,
        client: httpx.AsyncClient,
        channel_config: TelegramChannel,
        credentials: dict[str, Any],
        request: PublishRequest,
    ) -> PublishOutcome:
        if request.media:
            unsendable = _unsendable(request.media, request.text)
            if unsendable is not None:
                return unsendable
        chat_id: int | str = channel_config.chat_id
        reply_parameters: dict[str, int] | None = None
        if request.reply_to_external_id is not None:
            target = _reply_target(request.reply_to_external_id)
            if target is None:
                return Rejected(
                    "bad_reply_target",
                    f"{request.reply_to_external_id!r} is not a Telegram message id",
                )
            reply_chat, message_id = target
            if reply_chat is not None:
                chat_id = reply_chat  # a reply is sent in the chat of the message
            reply_parameters = {"message_id": message_id}
        api = f"{channel_config.api_base}/bot{credentials['bot_token']}"
        try:
            if not request.media:
                body: dict[str, Any] = {"chat_id": chat_id, "text": request.text}
                if reply_parameters is not None:
                    body["reply_parameters"] = reply_parameters
                response = await client.post(f"{api}/sendMessage", json=body)
            else:
                # Multipart fields are strings: objects go JSON-serialized, as the Bot API asks.
                fields = {"chat_id": str(chat_id)}
                if reply_parameters is not None:
                    fields["reply_parameters"] = json.dumps(reply_parameters)
                response = await _send_photos(client, api, fields, request)
        except (httpx.ConnectError, httpx.ConnectTimeout, httpx.PoolTimeout) as exc:
            return Retryable(f"not sent: {type(exc).__name__}: {exc}")
        except httpx.TransportError as exc:
            # The request (or part of it) left: Telegram may have sent the message.
            return Unknown(f"no answer after sending: {type(exc).__name__}: {exc}")
        answer = _json(response)
        if response.is_success and isinstance(answer, dict) and answer.get("ok") is True:
            result = answer.get("result")
            # An album answers with its messages; the first carries the caption.
            first = result[0] if isinstance(result, list) and result else result
            published = _published(first)
            return published or Unknown(f"HTTP {response.status_code} without a message id")
        return _refusal(response, answer)

    async def reconcile(
        self,
        client: httpx.AsyncClient,
        channel_config: TelegramChannel,
        credentials: dict[str, Any],
        request: PublishRequest,
    ) -> Published | None:
        raise ReconcileFailed(
            Rejected(
                "unreconcilable",
                "Telegram's Bot API cannot read the chat to tell whether this message was sent: "
                "check the chat, then mark the post published or send it again",
            )
        )


# --- wire helpers --------------------------------------------------------------------------------


def _unsendable(media: list[MediaUpload], caption: str) -> Rejected | None:
    """Why these photos and this caption cannot go out as Telegram sends them, if they cannot."""
    # A GIF sent as a photo arrives as a still; animations need sendAnimation, not built yet.
    if any(m.content_type.startswith("video/") or m.content_type == "image/gif" for m in media):
        return Rejected("video_unsupported", "Videos and GIFs cannot be published to Telegram yet")
    others = sorted({m.content_type for m in media if not m.content_type.startswith("image/")})
    if others:
        return Rejected("media_type_unsupported", f"Telegram posts take photos, not {others}")
    if len(media) > MAX_ALBUM:
        return Rejected("too_many_images", f"A Telegram album takes at most {MAX_ALBUM} photos")
    units = len(caption.encode("utf-16-le")) // 2
    if units > MAX_CAPTION:
        return Rejected(
            "caption_too_long",
            f"A Telegram caption takes at most {MAX_CAPTION} characters; this one has {units}",
        )
    return None


async def _send_photos(
    client: httpx.AsyncClient, api: str, fields: dict[str, str], request: PublishRequest
) -> httpx.Response:
    """`sendPhoto` for one photo, `sendMediaGroup` for an album, the text as the caption."""
    files = [(m.filename, m.data, m.content_type) for m in request.media]
    if len(files) == 1:
        if request.text:
            fields["caption"] = request.text
        return await client.post(f"{api}/sendPhoto", data=fields, files={"photo": files[0]})
    album: list[dict[str, str]] = [
        {"type": "photo", "media": f"attach://photo{index}"} for index in range(len(files))
    ]
    if request.text:
        album[0]["caption"] = request.text
    fields["media"] = json.dumps(album)
    parts = [(f"photo{index}", file) for index, file in enumerate(files)]
    return await client.post(f"{api}/sendMediaGroup", data=fields, files=parts)


def _json(response: httpx.Response) -> Any:
    try:
        return response.json()
    except ValueError:
        return None


def _reply_target(external_id: str) -> tuple[int | None, int] | None:
    """(chat id, message id) of `<chat_id>:<message_id>`; a bare message id is in the channel."""
    chat, _, message = external_id.rpartition(":")
    try:
        return (int(chat) if chat else None), int(message)
    except ValueError:
        return None


def _published(message: Any) -> Published | None:
    if not isinstance(message, dict) or not isinstance(message.get("message_id"), int):
        return None
    chat = message.get("chat")
    if not isinstance(chat, dict) or not isinstance(chat.get("id"), int):
        return None
    message_id, chat_id = message["message_id"], chat["id"]
    username = chat.get("username")
    if isinstance(username, str) and username:
        url: str | None = f"https://t.me/{username}/{message_id}"
    elif str(chat_id).startswith("-100"):
        # A private channel or supergroup: the link opens for its members.
        url = f"https://t.me/c/{str(chat_id).removeprefix('-100')}/{message_id}"
    else:
        url = None  # a private chat or a basic group has no message links
    return Published(f"{chat_id}:{message_id}", url)


def _refusal(
    response: httpx.Response, answer: Any
) -> RateLimited | NeedsReconnect | Rejected | Unknown:
    error = answer if isinstance(answer, dict) else {}
    code = error.get("error_code")
    status = code if isinstance(code, int) else response.status_code
    description = error.get("description")
    message = description if isinstance(description, str) else None
    detail = f"HTTP {status}" + (f": {message}" if message else "")
    if status == 429:
        parameters = error.get("parameters")
        wait = parameters.get("retry_after") if isinstance(parameters, dict) else None
        if isinstance(wait, int | float):
            return RateLimited(float(wait))
        return RateLimited(retry_after_seconds(response) or FLOOD_WAIT_S)
    if status in (401, 403):
        # 401: the token was revoked; 403: the bot was removed from the chat or blocked.
        return NeedsReconnect(detail)
    if status == 400 and message and any(part in message.lower() for part in CHAT_LOST):
        return NeedsReconnect(detail)
    if status >= 500 or not error:
        # A 5xx, or an answer that is not the Bot API's (a proxy's page): it may have been sent.
        return Unknown(detail)
    return Rejected(detail, message)
