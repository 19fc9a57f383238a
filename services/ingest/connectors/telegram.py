"""Telegram Bot API connector: channel posts, comments in a channel's discussion group and group
messages, pulled with `getUpdates` or pushed to a webhook."""

from __future__ import annotations

import hmac
import json
from datetime import UTC, datetime
from typing import Any, ClassVar, NoReturn

import httpx
from pydantic import BaseModel, ConfigDict, Field, ValidationError

from services.ingest.connectors.base import (
    AuthFailed,
    BadConfig,
    FetchedAuthor,
    FetchedMention,
    MentionKind,
    PullResult,
    RateLimited,
    SignatureInvalid,
    SkippedItem,
    SourceConfig,
    TransientError,
    WebhookReply,
    WebhookRequest,
    WebhookResult,
    parse_time,
    retry_after_seconds,
)

NETWORK = "telegram"
VERIFY_HEADER = "x-telegram-bot-api-secret-token"
# The update types that carry a Message; everything else (callback queries, member changes…)
# is acknowledged and ignored.
MESSAGE_UPDATES = ("message", "edited_message", "channel_post", "edited_channel_post")
# A message with one of these but no text or caption is still something a person said.
_CONTENT_KEYS = frozenset(
    {"photo", "video", "animation", "audio", "voice", "video_note", "document", "sticker", "poll"}
)


class TelegramConfig(SourceConfig):
    api_base: str = "https://api.telegram.org"
    # The channel whose discussion-group comments we want, and its linked discussion group.
    channel_id: int | None = None
    discussion_group_id: int | None = None
    # Further chats to hear; when nothing at all is listed, every chat the bot is in is heard.
    allowed_chat_ids: list[int] = Field(default_factory=list)
    # getUpdates long-polling wait; 0 answers at once.
    poll_timeout_s: int = Field(default=25, ge=0, le=50)
    page_size: int = Field(default=100, ge=1, le=100)


# --- the Bot API's wire format (the subset we read) ----------------------------------------------


class _Wire(BaseModel):
    model_config = ConfigDict(extra="ignore", frozen=True)


class _User(_Wire):
    id: int
    first_name: str = ""
    last_name: str | None = None
    username: str | None = None


class _Chat(_Wire):
    id: int
    type: str
    title: str | None = None
    username: str | None = None
    first_name: str | None = None
    last_name: str | None = None


class _Origin(_Wire):
    """`forward_origin` (Bot API 7.0+); only the channel variant names a post."""

    type: str
    chat: _Chat | None = None
    message_id: int | None = None


class _Message(_Wire):
    message_id: int
    date: int
    chat: _Chat
    sender: _User | None = Field(default=None, alias="from")
    sender_chat: _Chat | None = None
    text: str | None = None
    caption: str | None = None
    edit_date: int | None = None
    message_thread_id: int | None = None
    is_automatic_forward: bool = False
    forward_origin: _Origin | None = None
    # Before Bot API 7.0 a forward named its source with these two.
    forward_from_chat: _Chat | None = None
    forward_from_message_id: int | None = None
    reply_to_message: _Message | None = None


# --- the connector -----------------------------------------------------------------------------


class TelegramConnector:
    """Both halves: `pull` long-polls getUpdates; `verify`/`parse` take a webhook's Update."""

    network: ClassVar[str] = NETWORK
    config_model: ClassVar[type[SourceConfig]] = TelegramConfig

    async def pull(
        self,
        client: httpx.AsyncClient,
        config: TelegramConfig,
        credentials: dict[str, Any],
        cursor: dict[str, Any],
    ) -> PullResult:
        token = credentials.get("bot_token")
        if not isinstance(token, str) or not token:
            raise AuthFailed("telegram: the source has no bot_token")
        params: dict[str, Any] = {
            "timeout": config.poll_timeout_s,
            "limit": config.page_size,
            "allowed_updates": list(MESSAGE_UPDATES),
        }
        offset = cursor.get("offset")
        if isinstance(offset, int):
            # Asking from `offset` confirms every earlier update: Telegram forgets them.
            params["offset"] = offset
        url = f"{config.api_base.rstrip('/')}/bot{token}/getUpdates"
        try:
            response = await client.post(
                url, json=params, timeout=httpx.Timeout(config.poll_timeout_s + 10.0)
            )
        except httpx.TransportError as exc:
            # The URL holds the bot token: name the failure, never the address.
            raise TransientError(f"telegram: getUpdates failed ({type(exc).__name__})") from None
        body = _json(response.content)
        if not isinstance(body, dict) or body.get("ok") is not True:
            _raise_api_error(response, body)
        updates = body.get("result")
        if not isinstance(updates, list):
            raise BadConfig("telegram: getUpdates answered without a list of updates")

        mentions: list[FetchedMention] = []
        skipped: list[SkippedItem] = []
        last_id: int | None = None
        for raw in updates:
            update_id = raw.get("update_id") if isinstance(raw, dict) else None
            if isinstance(update_id, int) and not isinstance(update_id, bool):
                last_id = update_id if last_id is None else max(last_id, update_id)
            _collect(raw, config, mentions, skipped)
        new_cursor = {"offset": last_id + 1} if last_id is not None else dict(cursor)
        return PullResult(
            mentions=mentions,
            cursor=new_cursor,
            more=len(updates) >= config.page_size,
            skipped=skipped,
        )

    def handshake(
        self, request: WebhookRequest, config: TelegramConfig, secrets: dict[str, Any]
    ) -> WebhookReply | None:
        return None  # setWebhook needs no handshake

    def verify(
        self, request: WebhookRequest, config: TelegramConfig, secrets: dict[str, Any]
    ) -> None:
        expected = secrets.get("secret_token")
        if not isinstance(expected, str) or not expected:
            raise SignatureInvalid("telegram: the source has no secret_token to check against")
        given = request.headers.get(VERIFY_HEADER)
        if given is None or not hmac.compare_digest(given.encode(), expected.encode()):
            raise SignatureInvalid("telegram: X-Telegram-Bot-Api-Secret-Token missing or wrong")

    def parse(self, request: WebhookRequest, config: TelegramConfig) -> WebhookResult:
        body = _json(request.body)
        if body is None:
            return WebhookResult([], [SkippedItem("telegram: body is not JSON")])
        mentions: list[FetchedMention] = []
        skipped: list[SkippedItem] = []
        _collect(body, config, mentions, skipped)
        return WebhookResult(mentions, skipped)


# --- normalising -------------------------------------------------------------------------------


def _collect(
    raw: Any, config: TelegramConfig, mentions: list[FetchedMention], skipped: list[SkippedItem]
) -> None:
    """Add one Update's mention (if it carries one) to `mentions`, or record why it could not."""
    if not isinstance(raw, dict) or not isinstance(raw.get("update_id"), int):
        skipped.append(SkippedItem("telegram: not an Update", raw))
        return
    kind = next((k for k in MESSAGE_UPDATES if k in raw), None)
    if kind is None:
        return
    payload = raw[kind]
    try:
        message = _Message.model_validate(payload)
    except ValidationError as exc:
        skipped.append(SkippedItem(f"telegram: malformed {kind}: {_first_error(exc)}", raw))
        return
    mention = _mention(kind, message, payload, config)
    if mention is not None:
        mentions.append(mention)


def _mention(
    update_kind: str, message: _Message, raw: dict[str, Any], config: TelegramConfig
) -> FetchedMention | None:
    chat = message.chat
    if not _heard(chat.id, config):
        return None
    text = message.text if message.text is not None else message.caption
    if text is None and not _CONTENT_KEYS.intersection(raw):
        return None  # a service message: someone joined, a pin, a title change
    external_id = _message_id(chat.id, message.message_id)
    url = _url(chat, message.message_id)
    parent: str | None = None
    kind: MentionKind
    forwarded_post = _channel_post_of(message) if message.is_automatic_forward else None
    if update_kind in ("channel_post", "edited_channel_post") or chat.type == "channel":
        kind, root = "post", external_id
    elif forwarded_post is not None:
        # The discussion group's copy of a channel post: report it as that post, so the dedup
        # ledger sees one item whether the bot hears the channel, the group or both.
        kind = "post"
        external_id = root = _message_id(*forwarded_post)
        origin_chat = _origin_chat(message)
        url = _url(origin_chat, forwarded_post[1]) if origin_chat else None
    elif message.reply_to_message is not None:
        replied = message.reply_to_message
        commented_post = _channel_post_of(replied) if replied.is_automatic_forward else None
        if commented_post is not None:
            kind = "comment"
            root = parent = _message_id(*commented_post)
        else:
            kind = "reply"
            parent = _message_id(chat.id, replied.message_id)
            # A reply names only its parent; the supergroup thread it belongs to is the best
            # root a single update gives (in a discussion group, the group's copy of the post).
            root = (
                _message_id(chat.id, message.message_thread_id)
                if message.message_thread_id is not None
                else parent
            )
    elif chat.type == "private":
        kind, root = "direct_message", external_id
    else:
        kind, root = "mention", external_id
    edited = update_kind.startswith("edited_")
    edited_at = (
        parse_time(message.edit_date)
        if message.edit_date is not None
        else (datetime.now(UTC) if edited else None)
    )
    return FetchedMention(
        network=NETWORK,
        external_id=external_id,
        kind=kind,
        text=text or "",
        created_at=parse_time(message.date),
        author=_author(message),
        root_external_id=root,
        parent_external_id=parent,
        url=url,
        edited_at=edited_at,
        raw=raw,
    )


def _heard(chat_id: int, config: TelegramConfig) -> bool:
    listed = {*config.allowed_chat_ids}
    listed.update(c for c in (config.channel_id, config.discussion_group_id) if c is not None)
    return not listed or chat_id in listed


def _channel_post_of(message: _Message) -> tuple[int, int] | None:
    """(channel id, post id) of the channel post this message is an automatic forward of."""
    origin = message.forward_origin
    if origin is not None and origin.chat is not None and origin.message_id is not None:
        return origin.chat.id, origin.message_id
    if message.forward_from_chat is not None and message.forward_from_message_id is not None:
        return message.forward_from_chat.id, message.forward_from_message_id
    return None


def _origin_chat(message: _Message) -> _Chat | None:
    if message.forward_origin is not None and message.forward_origin.chat is not None:
        return message.forward_origin.chat
    return message.forward_from_chat


def _author(message: _Message) -> FetchedAuthor:
    # A message sent on behalf of a chat (a channel, an anonymous admin) carries a placeholder
    # user in `from`; the chat is the real author.
    if message.sender_chat is not None:
        return _chat_author(message.sender_chat)
    if message.sender is not None:
        user = message.sender
        name = " ".join(p for p in (user.first_name, user.last_name) if p) or None
        handle = f"@{user.username}" if user.username else str(user.id)
        return FetchedAuthor(id=str(user.id), handle=handle, display_name=name)
    return _chat_author(message.chat)


def _chat_author(chat: _Chat) -> FetchedAuthor:
    name = chat.title or " ".join(p for p in (chat.first_name, chat.last_name) if p) or None
    handle = f"@{chat.username}" if chat.username else str(chat.id)
    return FetchedAuthor(id=str(chat.id), handle=handle, display_name=name)


def _message_id(chat_id: int, message_id: int) -> str:
    return f"{chat_id}:{message_id}"


def _url(chat: _Chat, message_id: int) -> str | None:
    # Only public chats have an address anyone can open.
    return f"https://t.me/{chat.username}/{message_id}" if chat.username else None


# --- errors ------------------------------------------------------------------------------------


def _raise_api_error(response: httpx.Response, body: Any) -> NoReturn:
    """Map a Bot API error (`ok: false`) or a non-API answer to the connector errors."""
    error = body if isinstance(body, dict) else {}
    code = error.get("error_code")
    if not isinstance(code, int):
        code = response.status_code
    description = error.get("description") or f"HTTP {response.status_code}"
    detail = f"telegram: getUpdates: {description}"
    if code == 429:
        parameters = error.get("parameters")
        retry_after = parameters.get("retry_after") if isinstance(parameters, dict) else None
        if not isinstance(retry_after, int | float):
            retry_after = retry_after_seconds(response) or 60.0
        raise RateLimited(detail, float(retry_after))
    if code in (401, 403):
        raise AuthFailed(f"{detail} (the bot token was revoked or is wrong: reconnect the bot)")
    if code == 409:
        raise BadConfig(
            f"{detail} (a webhook is set for this bot, or another poller uses the same token: "
            "a bot is either polled or pushed to a webhook, not both)"
        )
    if code >= 500:
        raise TransientError(detail)
    raise BadConfig(detail)


def _json(raw: bytes) -> Any:
    try:
        return json.loads(raw)
    except ValueError:
        return None


def _first_error(exc: ValidationError) -> str:
    error = exc.errors()[0]
    where = ".".join(str(p) for p in error["loc"])
    return f"{where}: {error['msg']}"
