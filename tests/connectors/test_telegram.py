"""The Telegram connector against fixture Updates (webhook) and a local Bot API (getUpdates)."""

from __future__ import annotations

import asyncio
import json
from collections.abc import AsyncIterator
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import httpx
import pytest

from services.ingest.connectors.base import (
    AuthFailed,
    BadConfig,
    FetchedMention,
    RateLimited,
    SignatureInvalid,
    TransientError,
    WebhookRequest,
)
from services.ingest.connectors.telegram import TelegramConfig, TelegramConnector
from tests.fakes.server import serve
from tests.fakes.telegram import FakeTelegramBotApi

FIXTURE = json.loads((Path(__file__).parents[1] / "fixtures/telegram/updates.json").read_text())
UPDATES: dict[str, dict[str, Any]] = FIXTURE["updates"]
CHANNEL, GROUP = -1001234567890, -1009876543210
TOKEN = "7000000001:AAH-fake-token-for-tests-only"
SECRET = "s3cr3t-token_for-webhooks"
CONNECTOR = TelegramConnector()
# Nothing listed: every chat the bot is in is heard.
EVERYTHING = TelegramConfig(poll_timeout_s=0)


def delivery(update: Any, secret: str | None = SECRET) -> WebhookRequest:
    headers = {"content-type": "application/json"}
    if secret is not None:
        headers["x-telegram-bot-api-secret-token"] = secret
    return WebhookRequest("POST", headers, {}, json.dumps(update).encode())


def parse_one(name: str, config: TelegramConfig = EVERYTHING) -> FetchedMention:
    result = CONNECTOR.parse(delivery(UPDATES[name]), config)
    assert result.skipped == []
    assert len(result.mentions) == 1, name
    return result.mentions[0]


# --- webhook: authenticity ---------------------------------------------------------------------


def test_the_configured_secret_token_is_accepted() -> None:
    CONNECTOR.verify(delivery(UPDATES["comment"]), EVERYTHING, {"secret_token": SECRET})


@pytest.mark.parametrize(
    ("header", "secrets"),
    [
        (None, {"secret_token": SECRET}),
        ("wrong", {"secret_token": SECRET}),
        (SECRET + "x", {"secret_token": SECRET}),
        (SECRET, {}),  # a source without a secret cannot tell real deliveries from forged ones
    ],
    ids=["missing", "wrong", "longer", "unconfigured"],
)
def test_a_missing_or_wrong_secret_token_is_refused(
    header: str | None, secrets: dict[str, Any]
) -> None:
    with pytest.raises(SignatureInvalid):
        CONNECTOR.verify(delivery(UPDATES["comment"], header), EVERYTHING, secrets)


def test_telegram_has_no_handshake() -> None:
    assert CONNECTOR.handshake(delivery(UPDATES["comment"]), EVERYTHING, {}) is None


# --- webhook: what each Update becomes ---------------------------------------------------------


def test_a_channel_post_is_a_post_with_its_public_link() -> None:
    post = parse_one("channel_post")
    assert post.kind == "post"
    assert post.external_id == f"{CHANNEL}:42"
    assert post.root_external_id == post.external_id
    assert post.url == "https://t.me/acme_news/42"
    assert post.author.display_name == "ACME News"
    assert post.author.handle == "@acme_news"
    assert post.created_at == datetime.fromtimestamp(1762000000, UTC)
    assert post.edited_at is None


def test_a_comment_in_the_discussion_group_threads_under_the_channel_post() -> None:
    comment = parse_one("comment")
    assert comment.kind == "comment"
    assert comment.external_id == f"{GROUP}:311"
    assert comment.root_external_id == f"{CHANNEL}:42"  # the channel post, not the group copy
    assert comment.parent_external_id == f"{CHANNEL}:42"
    assert comment.text == "Love them! When do they arrive in Berlin?"
    assert comment.url == "https://t.me/acme_chat/311"
    assert (comment.author.id, comment.author.handle) == ("5551234", "@anna_k")
    assert comment.author.display_name == "Anna Kovacs"


def test_a_comment_from_before_bot_api_7_threads_the_same_way() -> None:
    comment = parse_one("comment_before_bot_api_7")
    assert comment.kind == "comment"
    assert comment.root_external_id == f"{CHANNEL}:42"
    assert comment.author.handle == "5552000"  # no username: the id is the handle


def test_the_group_copy_of_a_channel_post_is_reported_as_that_post() -> None:
    copy = parse_one("automatic_forward")
    original = parse_one("channel_post")
    assert copy.kind == "post"
    assert copy.external_id == original.external_id
    assert copy.url == original.url


def test_a_reply_to_a_comment_names_its_parent_and_thread() -> None:
    reply = parse_one("reply_to_comment")
    assert reply.kind == "reply"
    assert reply.parent_external_id == f"{GROUP}:311"
    assert reply.root_external_id == f"{GROUP}:310"


def test_a_group_message_with_a_photo_is_a_mention_with_its_caption() -> None:
    mention = parse_one("group_mention_with_photo")
    assert mention.kind == "mention"
    assert mention.text == "Spotted these in the wild, @acme_news"
    assert mention.parent_external_id is None


def test_an_anonymous_admin_speaks_as_the_group_not_the_placeholder_bot() -> None:
    mention = parse_one("anonymous_admin")
    assert mention.author.id == str(GROUP)
    assert mention.author.display_name == "ACME Chat"


def test_edits_keep_the_item_id_and_carry_the_edit_time() -> None:
    comment = parse_one("edited_comment")
    assert comment.external_id == parse_one("comment").external_id
    assert comment.kind == "comment"
    assert comment.text.endswith("Berlin and Hamburg?")
    assert comment.edited_at == datetime.fromtimestamp(1762000500, UTC)
    assert comment.created_at == datetime.fromtimestamp(1762000120, UTC)
    post = parse_one("edited_channel_post")
    assert post.external_id == f"{CHANNEL}:42"
    assert post.edited_at == datetime.fromtimestamp(1762000600, UTC)


def test_a_private_chat_is_a_direct_message_and_a_private_group_has_no_link() -> None:
    assert parse_one("direct_message").kind == "direct_message"
    assert parse_one("private_group_message").url is None


@pytest.mark.parametrize("name", ["member_joined", "callback_query"])
def test_service_messages_and_other_update_types_are_acknowledged_and_ignored(name: str) -> None:
    result = CONNECTOR.parse(delivery(UPDATES[name]), EVERYTHING)
    assert (result.mentions, result.skipped) == ([], [])
    assert result.reply.status == 200


@pytest.mark.parametrize(
    "body", [json.dumps(UPDATES["message_without_chat"]).encode(), b"not json", b"[1, 2]"]
)
def test_a_malformed_update_is_skipped_not_raised(body: bytes) -> None:
    result = CONNECTOR.parse(WebhookRequest("POST", {}, {}, body), EVERYTHING)
    assert result.mentions == []
    assert len(result.skipped) == 1
    assert result.skipped[0].reason.startswith("telegram:")


def test_only_the_configured_chats_are_heard() -> None:
    config = TelegramConfig(channel_id=CHANNEL, discussion_group_id=GROUP)
    assert CONNECTOR.parse(delivery(UPDATES["comment"]), config).mentions
    assert CONNECTOR.parse(delivery(UPDATES["channel_post"]), config).mentions
    for name in ("direct_message", "private_group_message"):
        assert CONNECTOR.parse(delivery(UPDATES[name]), config).mentions == []
    widened = TelegramConfig(channel_id=CHANNEL, allowed_chat_ids=[-1005550000001])
    assert CONNECTOR.parse(delivery(UPDATES["private_group_message"]), widened).mentions


# --- pull: getUpdates against the local Bot API ------------------------------------------------


@pytest.fixture
async def bot_api() -> AsyncIterator[tuple[FakeTelegramBotApi, TelegramConfig]]:
    fake = FakeTelegramBotApi(TOKEN)
    async with serve(fake.app) as base_url:
        yield fake, TelegramConfig(api_base=base_url, poll_timeout_s=0, page_size=3)


@pytest.fixture
async def client() -> AsyncIterator[httpx.AsyncClient]:
    async with httpx.AsyncClient(timeout=10.0) as http:
        yield http


CREDENTIALS = {"bot_token": TOKEN}
STREAM = [
    "channel_post",
    "automatic_forward",
    "comment",
    "reply_to_comment",
    "callback_query",
    "edited_comment",
    "direct_message",
]


async def test_pages_follow_the_offset_and_confirmed_updates_never_come_back(
    bot_api: tuple[FakeTelegramBotApi, TelegramConfig], client: httpx.AsyncClient
) -> None:
    fake, config = bot_api
    fake.push(*(UPDATES[name] for name in STREAM))
    cursor: dict[str, Any] = {}
    pages: list[list[str]] = []
    for _ in range(5):
        page = await CONNECTOR.pull(client, config, CREDENTIALS, cursor)
        pages.append([m.external_id for m in page.mentions])
        cursor = page.cursor
        if not page.more:
            break
    # callback_query is not asked for (allowed_updates), so 6 updates arrive in pages of 3.
    assert fake.requests[0]["allowed_updates"] == [
        "message",
        "edited_message",
        "channel_post",
        "edited_channel_post",
    ]
    assert pages == [
        [f"{CHANNEL}:42", f"{CHANNEL}:42", f"{GROUP}:311"],
        [f"{GROUP}:313", f"{GROUP}:311", "5554444:77"],
        [],
    ]
    assert cursor == {"offset": UPDATES["direct_message"]["update_id"] + 1}
    # Telegram forgot what the offset confirmed: a fresh poll from the cursor hears nothing old.
    again = await CONNECTOR.pull(client, config, CREDENTIALS, cursor)
    assert again.mentions == []
    assert again.cursor == cursor


async def test_a_crash_before_the_cursor_was_saved_repeats_the_page_without_gaps(
    bot_api: tuple[FakeTelegramBotApi, TelegramConfig], client: httpx.AsyncClient
) -> None:
    fake, config = bot_api
    fake.push(UPDATES["channel_post"], UPDATES["comment"])
    first = await CONNECTOR.pull(client, config, CREDENTIALS, {})
    # Ingest died before persisting `first.cursor`: the same updates are still there.
    retried = await CONNECTOR.pull(client, config, CREDENTIALS, {})
    assert [m.external_id for m in retried.mentions] == [m.external_id for m in first.mentions]
    fake.push(UPDATES["reply_to_comment"])
    following = await CONNECTOR.pull(client, config, CREDENTIALS, retried.cursor)
    assert [m.external_id for m in following.mentions] == [f"{GROUP}:313"]
    assert fake.requests[-1]["offset"] == UPDATES["comment"]["update_id"] + 1


async def test_a_malformed_update_is_skipped_and_still_confirmed(
    bot_api: tuple[FakeTelegramBotApi, TelegramConfig], client: httpx.AsyncClient
) -> None:
    fake, config = bot_api
    fake.push(UPDATES["comment"], UPDATES["message_without_chat"], UPDATES["direct_message"])
    page = await CONNECTOR.pull(client, config, CREDENTIALS, {})
    assert [m.external_id for m in page.mentions] == [f"{GROUP}:311", "5554444:77"]
    assert [s.raw["update_id"] for s in page.skipped] == [870014]
    assert page.cursor == {"offset": 870014 + 1}


async def test_a_long_poll_returns_as_soon_as_an_update_arrives(
    bot_api: tuple[FakeTelegramBotApi, TelegramConfig], client: httpx.AsyncClient
) -> None:
    fake, config = bot_api
    waiting = asyncio.create_task(
        CONNECTOR.pull(client, config.model_copy(update={"poll_timeout_s": 30}), CREDENTIALS, {})
    )
    async with asyncio.timeout(5):
        await fake.long_polling.wait()
    assert fake.requests[0]["timeout"] == 30
    fake.push(UPDATES["comment"])
    async with asyncio.timeout(5):
        page = await waiting
    assert [m.external_id for m in page.mentions] == [f"{GROUP}:311"]


async def test_flood_control_is_a_rate_limit_with_telegrams_retry_after(
    bot_api: tuple[FakeTelegramBotApi, TelegramConfig], client: httpx.AsyncClient
) -> None:
    fake, config = bot_api
    fake.push(UPDATES["comment"])
    fake.flood_wait_s = 17
    with pytest.raises(RateLimited) as caught:
        await CONNECTOR.pull(client, config, CREDENTIALS, {})
    assert caught.value.retry_after_s == 17.0
    assert len((await CONNECTOR.pull(client, config, CREDENTIALS, {})).mentions) == 1


async def test_a_revoked_token_asks_for_reconnection_without_leaking_the_token(
    bot_api: tuple[FakeTelegramBotApi, TelegramConfig], client: httpx.AsyncClient
) -> None:
    fake, config = bot_api
    fake.revoked = True
    with pytest.raises(AuthFailed) as caught:
        await CONNECTOR.pull(client, config, CREDENTIALS, {})
    assert "Unauthorized" in str(caught.value)
    assert TOKEN not in str(caught.value)


async def test_polling_a_bot_that_has_a_webhook_is_a_configuration_error(
    bot_api: tuple[FakeTelegramBotApi, TelegramConfig], client: httpx.AsyncClient
) -> None:
    fake, config = bot_api
    fake.webhook_url = "https://ingest.example/webhooks/telegram"
    with pytest.raises(BadConfig, match="webhook"):
        await CONNECTOR.pull(client, config, CREDENTIALS, {})


async def test_an_outage_is_transient(
    bot_api: tuple[FakeTelegramBotApi, TelegramConfig], client: httpx.AsyncClient
) -> None:
    fake, config = bot_api
    fake.outage = True
    with pytest.raises(TransientError):
        await CONNECTOR.pull(client, config, CREDENTIALS, {})


async def test_an_unreachable_api_is_transient_and_does_not_leak_the_token(
    client: httpx.AsyncClient,
) -> None:
    fake = FakeTelegramBotApi(TOKEN)
    async with serve(fake.app) as base_url:
        pass  # the server is gone again: its port refuses connections
    config = TelegramConfig(api_base=base_url, poll_timeout_s=0)
    with pytest.raises(TransientError) as caught:
        await CONNECTOR.pull(client, config, CREDENTIALS, {})
    assert TOKEN not in str(caught.value)
    assert caught.value.__cause__ is None
