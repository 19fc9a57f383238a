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


# --- photos --------------------------------------------------------------------------------------

SHOES = MediaUpload("shoes.jpg", "image/jpeg", b"\xff\xd8\xff shoes", "Red running shoes")
BOX = MediaUpload("box.png", "image/png", b"\x89PNG box")
LACES = MediaUpload("laces.webp", "image/webp", b"RIFF laces")


async def test_one_photo_is_sent_with_the_text_as_its_caption(
    bot_api: BotApi, client: httpx.AsyncClient
) -> None:
    outcome = await adapter.publish(
        client, bot_api.config(), CREDENTIALS, request("New shoes", media=[SHOES])
    )

    assert outcome == Published(f"{CHANNEL_ID}:1", "https://t.me/acme_news/1")
    [message] = bot_api.channel.messages
    assert message["caption"] == "New shoes"
    assert bot_api.fake.photo_files(message) == ("shoes.jpg", SHOES.data)


async def test_several_photos_go_as_one_album_captioned_on_its_first_photo(
    bot_api: BotApi, client: httpx.AsyncClient
) -> None:
    outcome = await adapter.publish(
        client,
        bot_api.config(),
        CREDENTIALS,
        request("The spring range", media=[SHOES, BOX, LACES]),
    )

    assert outcome == Published(f"{CHANNEL_ID}:1", "https://t.me/acme_news/1")
    album = bot_api.channel.messages
    assert [bot_api.fake.photo_files(m) for m in album] == [
        ("shoes.jpg", SHOES.data),
        ("box.png", BOX.data),
        ("laces.webp", LACES.data),
    ]
    assert [m.get("caption") for m in album] == ["The spring range", None, None]
    assert len({m["media_group_id"] for m in album}) == 1


@pytest.mark.parametrize("photos", [[SHOES], [SHOES, BOX]], ids=["photo", "album"])
async def test_a_reply_with_photos_is_sent_as_a_reply_in_the_customers_chat(
    bot_api: BotApi, client: httpx.AsyncClient, photos: list[MediaUpload]
) -> None:
    question = bot_api.fake.add_message(bot_api.group, "Which colours?")

    outcome = await adapter.publish(
        client,
        bot_api.config(),
        CREDENTIALS,
        request(
            "These two", media=photos, reply_to_external_id=f"{GROUP_ID}:{question['message_id']}"
        ),
    )

    assert outcome == Published(f"{GROUP_ID}:2", "https://t.me/c/9876543210/2")
    [_, reply, *_] = bot_api.group.messages
    assert reply["caption"] == "These two"
    assert reply["reply_to_message"]["message_id"] == question["message_id"]
    assert bot_api.fake.photo_files(reply) == ("shoes.jpg", SHOES.data)
    assert bot_api.channel.messages == []


@pytest.mark.parametrize(
    ("text", "media", "reason"),
    [
        # 513 emoji: 513 characters, but 1,026 UTF-16 code units, as Telegram counts them.
        ("\N{PARTY POPPER}" * 513, [SHOES], "caption_too_long"),
        (
            "Launch",
            [MediaUpload("launch.mp4", "video/mp4", b"\x00\x00\x00\x18ftyp")],
            "video_unsupported",
        ),
        ("Dance", [MediaUpload("dance.gif", "image/gif", b"GIF89a")], "video_unsupported"),
        (
            "Terms",
            [MediaUpload("terms.pdf", "application/pdf", b"%PDF-1.7")],
            "media_type_unsupported",
        ),
        ("Everything", [SHOES] * 11, "too_many_images"),
    ],
)
async def test_media_telegram_cannot_take_is_refused_rather_than_sent_without_it(
    bot_api: BotApi, client: httpx.AsyncClient, text: str, media: list[MediaUpload], reason: str
) -> None:
    outcome = await adapter.publish(
        client, bot_api.config(), CREDENTIALS, request(text, media=media)
    )

    assert isinstance(outcome, Rejected)
    assert outcome.reason == reason
    assert bot_api.fake.send_calls == 0


@pytest.mark.parametrize("photos", [[SHOES], [SHOES, BOX]], ids=["photo", "album"])
async def test_a_photo_telegram_cannot_process_is_rejected_with_telegrams_words(
    bot_api: BotApi, client: httpx.AsyncClient, photos: list[MediaUpload]
) -> None:
    broken = MediaUpload("broken.jpg", "image/jpeg", b"not an image")

    outcome = await adapter.publish(
        client, bot_api.config(), CREDENTIALS, request("Oops", media=[*photos, broken])
    )

    assert outcome == Rejected(
        "HTTP 400: Bad Request: IMAGE_PROCESS_FAILED", "Bad Request: IMAGE_PROCESS_FAILED"
    )
    assert bot_api.channel.messages == []


@pytest.mark.parametrize("photos", [[SHOES], [SHOES, BOX]], ids=["photo", "album"])
@pytest.mark.parametrize("answer", ["flood_wait", "revoked", "outage"])
async def test_refusals_of_a_photo_mean_what_they_mean_for_a_message(
    bot_api: BotApi, client: httpx.AsyncClient, photos: list[MediaUpload], answer: str
) -> None:
    if answer == "flood_wait":
        bot_api.fake.flood_wait_s = 23
    elif answer == "revoked":
        bot_api.fake.revoked = True
    else:
        bot_api.fake.outage = True

    outcome = await adapter.publish(
        client, bot_api.config(), CREDENTIALS, request("New shoes", media=photos)
    )

    expected = {
        "flood_wait": RateLimited(23),
        "revoked": NeedsReconnect("HTTP 401: Unauthorized"),
        "outage": Unknown("HTTP 500: Internal Server Error"),
    }
    assert outcome == expected[answer]
    assert bot_api.channel.messages == []


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


async def test_no_answer_after_sending_an_album_is_handed_to_a_person_not_sent_again(
    bot_api: BotApi, client: httpx.AsyncClient
) -> None:
    bot_api.fake.answer_delay_s = 1.5
    attempt = request("The spring range", media=[SHOES, BOX])

    first = await adapter.publish(client, bot_api.config(), CREDENTIALS, attempt)
    with pytest.raises(ReconcileFailed) as failed:
        await adapter.reconcile(client, bot_api.config(), CREDENTIALS, attempt)

    assert isinstance(first, Unknown)
    assert isinstance(failed.value.outcome, Rejected)
    assert [m.get("caption") for m in bot_api.channel.messages] == ["The spring range", None]
    assert bot_api.fake.send_calls == 1
