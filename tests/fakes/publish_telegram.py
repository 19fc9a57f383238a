"""A local Telegram Bot API answering `sendMessage` as https://core.telegram.org/bots/api#sendmessage
describes it: chats with per-chat message ids, replies via `reply_parameters`, the Bot API's error
bodies (`ok: false`, `error_code`, `description`, `parameters.retry_after`), and switches for a
revoked token, a bot removed from the chat, flood waits, outages and an answer held back after
the message was sent."""

from __future__ import annotations

import asyncio
import time
from dataclasses import dataclass, field
from typing import Any

from starlette.applications import Starlette
from starlette.requests import Request
from starlette.responses import JSONResponse, Response
from starlette.routing import Route

MAX_TEXT = 4096  # a text message's limit in UTF-16 code units; the fake counts characters


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
        self.app = Starlette(
            routes=[Route("/bot{token}/sendMessage", self._send_message, methods=["POST"])]
        )

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

    async def _send_message(self, request: Request) -> Response:
        self.send_calls += 1
        if request.path_params["token"] != self.token or self.revoked:
            return _error(401, "Unauthorized")
        params: dict[str, Any] = await request.json()
        if self.flood_wait_s is not None:
            wait = self.flood_wait_s
            return _error(429, f"Too Many Requests: retry after {wait}", retry_after=wait)
        if self.outage:
            return _error(500, "Internal Server Error")
        chat = self._chat(params.get("chat_id"))
        if chat is None:
            return _error(400, "Bad Request: chat not found")
        if chat.bot_removed:
            return _error(403, f"Forbidden: bot was kicked from the {chat.type} chat")
        text = str(params.get("text") or "")
        if not text.strip():
            return _error(400, "Bad Request: message text is empty")
        if len(text) > MAX_TEXT:
            return _error(400, "Bad Request: message is too long")
        message: dict[str, Any] = {
            "message_id": len(chat.messages) + 1,
            "date": int(time.time()),
            "chat": chat.as_api(),
            "text": text,
        }
        if chat.type == "channel":
            message["sender_chat"] = chat.as_api()
        reply = params.get("reply_parameters")
        if isinstance(reply, dict):
            replied = next(
                (m for m in chat.messages if m["message_id"] == reply.get("message_id")), None
            )
            if replied is None:
                return _error(400, "Bad Request: message to be replied not found")
            message["reply_to_message"] = replied
        chat.messages.append(message)
        if self.answer_delay_s is not None:
            await asyncio.sleep(self.answer_delay_s)
        return JSONResponse({"ok": True, "result": message})


def _error(code: int, description: str, retry_after: int | None = None) -> Response:
    body: dict[str, Any] = {"ok": False, "error_code": code, "description": description}
    if retry_after is not None:
        body["parameters"] = {"retry_after": retry_after}
    return JSONResponse(body, status_code=code)
