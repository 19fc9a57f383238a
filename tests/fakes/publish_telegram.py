"""A local Telegram Bot API answering `sendMessage`, `sendPhoto` and `sendMediaGroup` as
https://core.telegram.org/bots/api describes them (#sendmessage, #sendphoto, #sendmediagroup:
multipart uploads, `attach://` names, captions of at most 1,024 characters, albums of 2-10): chats
with per-chat message ids, replies via `reply_parameters`, the Bot API's error bodies (`ok: false`,
`error_code`, `description`, `parameters.retry_after`), and switches for a revoked token, a bot
removed from the chat, flood waits, outages and an answer held back after the message was sent."""

from __future__ import annotations

import asyncio
import json
import secrets
import time
from dataclasses import dataclass, field
from typing import Any

from starlette.applications import Starlette
from starlette.datastructures import UploadFile
from starlette.requests import Request
from starlette.responses import JSONResponse, Response
from starlette.routing import Route

MAX_TEXT = 4096  # a text message's limit in UTF-16 code units; the fake counts characters
MAX_CAPTION = 1024
ALBUM_SIZES = range(2, 11)
# Photos Telegram can process: JPEG, PNG, WebP by their first bytes; anything else fails.
IMAGE_MAGIC = (b"\xff\xd8\xff", b"\x89PNG", b"RIFF")


@dataclass
class FakeChat:
    id: int
    type: str  # "channel", "supergroup", "group", "private"
    title: str | None = None
    username: str | None = None
    messages: list[dict[str, Any]] = field(default_factory=list)
    bot_removed: bool = False

    def as_api(self) -> dict[str, Any]:
        chat: dict[str, Any] = {"id": self.id, "type": self.type}
        if self.title is not None:
            chat["title"] = self.title
        if self.username is not None:
            chat["username"] = self.username
        return chat


class FakeTelegramSender:
    """One bot. Tests add chats (and others' messages), flip switches and read `chats`."""

    def __init__(self, token: str) -> None:
        self.token = token
        self.chats: dict[int, FakeChat] = {}
        self.send_calls = 0
        self.revoked = False
        self.flood_wait_s: int | None = None  # every sendMessage answers 429 with this wait
        self.outage = False  # sendMessage answers 500 without sending
        self.answer_delay_s: float | None = None  # send, then hold the answer this long
        self.files: dict[str, tuple[str, bytes]] = {}  # file_id -> (filename, bytes) uploaded
        self.app = Starlette(
            routes=[
                Route("/bot{token}/sendMessage", self._send_message, methods=["POST"]),
                Route("/bot{token}/sendPhoto", self._send_photo, methods=["POST"]),
                Route("/bot{token}/sendMediaGroup", self._send_media_group, methods=["POST"]),
            ]
        )

    def photo_files(self, message: dict[str, Any]) -> tuple[str, bytes]:
        """(filename, bytes) of the photo a message shows."""
        return self.files[message["photo"][-1]["file_id"]]

    def add_chat(self, chat: FakeChat) -> FakeChat:
        self.chats[chat.id] = chat
        return chat

    def add_message(self, chat: FakeChat, text: str, **extra: Any) -> dict[str, Any]:
        """A message someone else wrote in `chat`."""
        message = {
            "message_id": len(chat.messages) + 1,
            "date": int(time.time()),
            "chat": chat.as_api(),
            "text": text,
            **extra,
        }
        chat.messages.append(message)
        return message

    def _chat(self, chat_id: Any) -> FakeChat | None:
        if isinstance(chat_id, str) and chat_id.startswith("@"):
            return next((c for c in self.chats.values() if f"@{c.username}" == chat_id), None)
        try:
            return self.chats.get(int(chat_id))
        except (TypeError, ValueError):
            return None

    def _refused(self, request: Request) -> Response | None:
        """The answers that come before Telegram looks at the message: token, flood wait, outage."""
        self.send_calls += 1
        if request.path_params["token"] != self.token or self.revoked:
            return _error(401, "Unauthorized")
        if self.flood_wait_s is not None:
            wait = self.flood_wait_s
            return _error(429, f"Too Many Requests: retry after {wait}", retry_after=wait)
        if self.outage:
            return _error(500, "Internal Server Error")
        return None

    def _chat_of(self, params: dict[str, Any]) -> FakeChat | Response:
        chat = self._chat(params.get("chat_id"))
        if chat is None:
            return _error(400, "Bad Request: chat not found")
        if chat.bot_removed:
            return _error(403, f"Forbidden: bot was kicked from the {chat.type} chat")
        return chat

    def _message(self, chat: FakeChat, reply: Any, **content: Any) -> dict[str, Any] | Response:
        """A new message of the bot in `chat` (not stored yet), or the refusal of its reply."""
        message: dict[str, Any] = {
            "message_id": len(chat.messages) + 1,
            "date": int(time.time()),
            "chat": chat.as_api(),
            **content,
        }
        if chat.type == "channel":
            message["sender_chat"] = chat.as_api()
        if isinstance(reply, str):
            reply = json.loads(reply)  # multipart fields carry objects JSON-serialized
        if isinstance(reply, dict):
            replied = next(
                (m for m in chat.messages if m["message_id"] == reply.get("message_id")), None
            )
            if replied is None:
                return _error(400, "Bad Request: message to be replied not found")
            message["reply_to_message"] = replied
        return message

    async def _answer(self, result: Any) -> Response:
        if self.answer_delay_s is not None:
            await asyncio.sleep(self.answer_delay_s)
        return JSONResponse({"ok": True, "result": result})

    def _photo(self, upload: Any) -> list[dict[str, Any]] | None:
        """The PhotoSize list of an uploaded photo, or None when it is not an image."""
        if not isinstance(upload, UploadFile):
            return None
        data = upload.file.read()
        if not data.startswith(IMAGE_MAGIC):
            return None
        file_id = "AgACAgIAAx0" + secrets.token_hex(12)
        self.files[file_id] = (upload.filename or "", data)
        size = {"file_id": file_id, "file_unique_id": file_id[-12:], "file_size": len(data)}
        return [{**size, "width": 1280, "height": 960}]

    async def _send_message(self, request: Request) -> Response:
        refused = self._refused(request)
        if refused is not None:
            return refused
        params: dict[str, Any] = await request.json()
        chat = self._chat_of(params)
        if not isinstance(chat, FakeChat):
            return chat
        text = str(params.get("text") or "")
        if not text.strip():
            return _error(400, "Bad Request: message text is empty")
        if len(text) > MAX_TEXT:
            return _error(400, "Bad Request: message is too long")
        message = self._message(chat, params.get("reply_parameters"), text=text)
        if not isinstance(message, dict):
            return message
        chat.messages.append(message)
        return await self._answer(message)

    async def _send_photo(self, request: Request) -> Response:
        refused = self._refused(request)
        if refused is not None:
            return refused
        form = await request.form()
        chat = self._chat_of(dict(form))
        if not isinstance(chat, FakeChat):
            return chat
        caption = str(form.get("caption") or "")
        if len(caption) > MAX_CAPTION:
            return _error(400, "Bad Request: message caption is too long")
        photo = self._photo(form.get("photo"))
        if photo is None:
            return _error(400, "Bad Request: IMAGE_PROCESS_FAILED")
        content: dict[str, Any] = {"photo": photo}
        if caption:
            content["caption"] = caption
        message = self._message(chat, form.get("reply_parameters"), **content)
        if not isinstance(message, dict):
            return message
        chat.messages.append(message)
        return await self._answer(message)

    async def _send_media_group(self, request: Request) -> Response:
        refused = self._refused(request)
        if refused is not None:
            return refused
        form = await request.form()
        chat = self._chat_of(dict(form))
        if not isinstance(chat, FakeChat):
            return chat
        items = json.loads(str(form.get("media") or "[]"))
        if not isinstance(items, list) or len(items) not in ALBUM_SIZES:
            return _error(400, "Bad Request: wrong number of media in the group")
        group_id = str(secrets.randbits(62))
        album: list[dict[str, Any]] = []
        for item in items:
            caption = str(item.get("caption") or "")
            if len(caption) > MAX_CAPTION:
                return _error(400, "Bad Request: message caption is too long")
            name = str(item.get("media", "")).removeprefix("attach://")
            if item.get("type") != "photo" or name not in form:
                return _error(400, "Bad Request: wrong file identifier/HTTP URL specified")
            photo = self._photo(form.get(name))
            if photo is None:
                return _error(400, "Bad Request: IMAGE_PROCESS_FAILED")
            content: dict[str, Any] = {"media_group_id": group_id, "photo": photo}
            if caption:
                content["caption"] = caption
            message = self._message(chat, form.get("reply_parameters"), **content)
            if not isinstance(message, dict):
                return message
            message["message_id"] += len(album)
            album.append(message)
        chat.messages.extend(album)
        return await self._answer(album)


def _error(code: int, description: str, retry_after: int | None = None) -> Response:
    body: dict[str, Any] = {"ok": False, "error_code": code, "description": description}
    if retry_after is not None:
        body["parameters"] = {"retry_after": retry_after}
    return JSONResponse(body, status_code=code)
