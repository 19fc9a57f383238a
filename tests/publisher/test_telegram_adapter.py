"""The Telegram publish adapter against a local Bot API: what each answer means for the publisher,
and that an outcome it cannot know is handed to a person instead of being sent twice."""

from __future__ import annotations

import socket
from collections.abc import AsyncIterator
from dataclasses import dataclass
from typing import Any

import httpx
import pytest

from services.publisher.adapters.base import (
    MediaUpload,
    NeedsReconnect,
    Published,
    PublishRequest,
    RateLimited,
    ReconcileFailed,
    Rejected,
    Retryable,
    Unknown,
)
from services.publisher.adapters.telegram import TelegramChannel, TelegramPublisher
from tests.fakes.publish_telegram import FakeChat, FakeTelegramSender
from tests.fakes.server import serve

READ_TIMEOUT_S = 0.3
TOKEN = "123456:ABC-bot-token"
CREDENTIALS = {"bot_token": TOKEN}
CHANNEL_ID = -1001234567890
GROUP_ID = -1009876543210


@dataclass
class BotApi:
    fake: FakeTelegramSender
    url: str
    channel: FakeChat
    group: FakeChat

    def config(self, chat_id: int | str = CHANNEL_ID) -> TelegramChannel:
        return TelegramChannel(api_base=self.url, chat_id=chat_id)


@pytest.fixture
async def bot_api() -> AsyncIterator[BotApi]:
    fake = FakeTelegramSender(TOKEN)
    channel = fake.add_chat(FakeChat(CHANNEL_ID, "channel", "Acme", "acme_news"))
    group = fake.add_chat(FakeChat(GROUP_ID, "supergroup", "Acme chat"))
    async with serve(fake.app) as url:
        yield BotApi(fake, url, channel, group)


@pytest.fixture
async def client() -> AsyncIterator[httpx.AsyncClient]:
    async with httpx.AsyncClient(timeout=httpx.Timeout(5.0, read=READ_TIMEOUT_S)) as http:
        yield http


adapter = TelegramPublisher()


def request(text: str, key: str = "attempt-1", **extra: Any) -> PublishRequest:
    return PublishRequest(idempotency_key=key, text=text, **extra)


def texts(chat: FakeChat) -> list[str]:
    return [m["text"] for m in chat.messages]


async def test_publish_sends_one_message_and_returns_its_id_and_link(
    bot_api: BotApi, client: httpx.AsyncClient
) -> None:
    outcome = await adapter.publish(
        client, bot_api.config(), CREDENTIALS, request("Spring sale starts today")
    )

    assert outcome == Published(f"{CHANNEL_ID}:1", "https://t.me/acme_news/1")
    assert texts(bot_api.channel) == ["Spring sale starts today"]


async def test_a_channel_named_by_username_and_a_private_supergroup_link(
    bot_api: BotApi, client: httpx.AsyncClient
) -> None:
    by_name = await adapter.publish(
        client, bot_api.config("@acme_news"), CREDENTIALS, request("One")
    )
    private = await adapter.publish(client, bot_api.config(GROUP_ID), CREDENTIALS, request("Two"))

    assert by_name == Published(f"{CHANNEL_ID}:1", "https://t.me/acme_news/1")
    assert private == Published(f"{GROUP_ID}:1", "https://t.me/c/9876543210/1")


async def test_a_reply_is_sent_in_the_customers_chat_as_a_reply(
    bot_api: BotApi, client: httpx.AsyncClient
) -> None:
    question = bot_api.fake.add_message(bot_api.group, "Where is my order?")

    outcome = await adapter.publish(
        client,
        bot_api.config(),
        CREDENTIALS,
        request("It ships tomorrow", reply_to_external_id=f"{GROUP_ID}:{question['message_id']}"),
    )

    assert outcome == Published(f"{GROUP_ID}:2", "https://t.me/c/9876543210/2")
    reply = bot_api.group.messages[-1]
    assert reply["text"] == "It ships tomorrow"
    assert reply["reply_to_message"]["message_id"] == question["message_id"]
    assert bot_api.channel.messages == []


async def test_a_reply_to_a_deleted_message_is_rejected_with_telegrams_words(
    bot_api: BotApi, client: httpx.AsyncClient
) -> None:
    outcome = await adapter.publish(
        client, bot_api.config(), CREDENTIALS, request("Hi", reply_to_external_id=f"{GROUP_ID}:99")
    )

    assert outcome == Rejected(
        "HTTP 400: Bad Request: message to be replied not found",
        "Bad Request: message to be replied not found",
    )
    assert bot_api.group.messages == []


async def test_empty_text_is_rejected_with_telegrams_message(
    bot_api: BotApi, client: httpx.AsyncClient
) -> None:
    outcome = await adapter.publish(client, bot_api.config(), CREDENTIALS, request("  "))

    assert isinstance(outcome, Rejected)
    assert outcome.network_message == "Bad Request: message text is empty"
    assert bot_api.channel.messages == []


@pytest.mark.parametrize("revoke", ["token", "kicked", "chat_gone"])
async def test_a_bot_that_lost_its_token_or_chat_needs_reconnecting(
    bot_api: BotApi, client: httpx.AsyncClient, revoke: str
) -> None:
    config = bot_api.config()
    if revoke == "token":
        bot_api.fake.revoked = True
    elif revoke == "kicked":
        bot_api.channel.bot_removed = True
    else:
        config = bot_api.config(-1000000000001)

    outcome = await adapter.publish(client, config, CREDENTIALS, request("Hello"))

    assert isinstance(outcome, NeedsReconnect)
    assert bot_api.channel.messages == []


async def test_429_is_rate_limited_for_as_long_as_retry_after_says(
    bot_api: BotApi, client: httpx.AsyncClient
) -> None:
    bot_api.fake.flood_wait_s = 23

    outcome = await adapter.publish(client, bot_api.config(), CREDENTIALS, request("Hello"))

    assert outcome == RateLimited(23)
    assert bot_api.channel.messages == []


async def test_a_refused_connection_is_retryable(client: httpx.AsyncClient) -> None:
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        port = probe.getsockname()[1]
    config = TelegramChannel(api_base=f"http://127.0.0.1:{port}", chat_id=CHANNEL_ID)

    outcome = await adapter.publish(client, config, CREDENTIALS, request("Hello"))

    assert isinstance(outcome, Retryable)


async def test_media_is_refused_rather_than_published_without_it(
    bot_api: BotApi, client: httpx.AsyncClient
) -> None:
    photo = MediaUpload("shoes.jpg", "image/jpeg", b"\xff\xd8\xff", "red shoes")

    outcome = await adapter.publish(
        client, bot_api.config(), CREDENTIALS, request("New shoes", media=[photo])
    )

    assert isinstance(outcome, Rejected)
    assert outcome.reason == "media_unsupported"
    assert bot_api.fake.send_calls == 0


async def test_a_500_is_unknown(bot_api: BotApi, client: httpx.AsyncClient) -> None:
    bot_api.fake.outage = True

    outcome = await adapter.publish(client, bot_api.config(), CREDENTIALS, request("Hello"))

    assert outcome == Unknown("HTTP 500: Internal Server Error")


async def test_no_answer_after_sending_is_unknown_and_reconcile_hands_it_to_a_person(
    bot_api: BotApi, client: httpx.AsyncClient
) -> None:
    bot_api.fake.answer_delay_s = 1.5  # Telegram sends, then answers after the client gave up
    attempt = request("Launch day!")

    first = await adapter.publish(client, bot_api.config(), CREDENTIALS, attempt)
    with pytest.raises(ReconcileFailed) as failed:
        await adapter.reconcile(client, bot_api.config(), CREDENTIALS, attempt)

    assert isinstance(first, Unknown)
    # Not retryable: the publisher stops here rather than risk sending the message twice.
    assert isinstance(failed.value.outcome, Rejected)
    assert failed.value.outcome.reason == "unreconcilable"
    assert texts(bot_api.channel) == ["Launch day!"]
    assert bot_api.fake.send_calls == 1
