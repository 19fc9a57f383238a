"""The outgoing signed webhook adapter against a local receiver that checks signatures and dedupes
on the idempotency key: what each answer means for the publisher, and that reconcile's re-send of
the same body never creates a second item."""

from __future__ import annotations

import json
import socket
from collections.abc import AsyncIterator
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
from services.publisher.adapters.webhook import WebhookChannel, WebhookPublisher, signature
from tests.fakes.publish_webhook import FakeWebhookReceiver
from tests.fakes.server import serve
from tests.support import wait_until

READ_TIMEOUT_S = 0.3
SECRET = "whsec-7f3a"
CREDENTIALS = {"secret": SECRET}

adapter = WebhookPublisher()


@pytest.fixture
async def receiver() -> AsyncIterator[tuple[FakeWebhookReceiver, WebhookChannel]]:
    fake = FakeWebhookReceiver(SECRET)
    async with serve(fake.app) as url:
        yield fake, WebhookChannel(url=f"{url}/hooks/smm")


@pytest.fixture
async def client() -> AsyncIterator[httpx.AsyncClient]:
    async with httpx.AsyncClient(timeout=httpx.Timeout(5.0, read=READ_TIMEOUT_S)) as http:
        yield http


def request(text: str, key: str = "attempt-1", **extra: Any) -> PublishRequest:
    return PublishRequest(idempotency_key=key, text=text, **extra)


async def stored(fake: FakeWebhookReceiver, count: int) -> list[dict[str, Any]]:
    async def enough() -> list[dict[str, Any]]:
        return fake.items if len(fake.items) >= count else []

    return await wait_until(enough, timeout_s=5, interval_s=0.02, what=f"{count} items")


async def test_publish_delivers_one_signed_item_and_returns_its_id_and_link(
    receiver: tuple[FakeWebhookReceiver, WebhookChannel], client: httpx.AsyncClient
) -> None:
    fake, channel = receiver

    outcome = await adapter.publish(
        client, channel, CREDENTIALS, request("Spring sale", language="en")
    )

    assert outcome == Published("item-1", "https://cms.example.com/posts/item-1")
    [item] = fake.items
    assert item["idempotency_key"] == "attempt-1"
    assert item["text"] == "Spring sale"
    assert item["language"] == "en"
    assert item["reply_to"] is None


async def test_a_reply_names_what_it_answers(
    receiver: tuple[FakeWebhookReceiver, WebhookChannel], client: httpx.AsyncClient
) -> None:
    fake, channel = receiver

    outcome = await adapter.publish(
        client, channel, CREDENTIALS, request("Thanks!", reply_to_external_id="ticket-88")
    )

    assert isinstance(outcome, Published)
    assert fake.items[0]["reply_to"] == "ticket-88"


def test_the_signature_is_the_hmac_sha256_of_the_exact_body() -> None:
    # The published HMAC-SHA256 test vector, so a receiver in any language can check against it.
    body = b"The quick brown fox jumps over the lazy dog"

    assert signature("key", body) == (
        "sha256=f7bc83f430538424b13298e6aa6fb143ef4d59a14946175997479dbc2d1a3cd8"
    )


async def test_a_refused_item_is_rejected_with_the_receivers_message(
    receiver: tuple[FakeWebhookReceiver, WebhookChannel], client: httpx.AsyncClient
) -> None:
    fake, channel = receiver

    outcome = await adapter.publish(client, channel, CREDENTIALS, request("  "))

    assert outcome == Rejected("HTTP 422: text must not be blank", "text must not be blank")
    assert fake.items == []


async def test_a_wrong_secret_needs_reconnecting(
    receiver: tuple[FakeWebhookReceiver, WebhookChannel], client: httpx.AsyncClient
) -> None:
    fake, channel = receiver

    outcome = await adapter.publish(client, channel, {"secret": "rotated"}, request("Hi"))

    assert isinstance(outcome, NeedsReconnect)
    assert "signature does not match" in outcome.reason
    assert fake.items == []


async def test_429_is_rate_limited_for_as_long_as_retry_after_says(
    receiver: tuple[FakeWebhookReceiver, WebhookChannel], client: httpx.AsyncClient
) -> None:
    fake, channel = receiver
    fake.faults.http_status, fake.faults.retry_after = 429, "12"

    outcome = await adapter.publish(client, channel, CREDENTIALS, request("Hi"))

    assert outcome == RateLimited(12)
    assert fake.items == []


async def test_a_refused_connection_is_retryable(client: httpx.AsyncClient) -> None:
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        port = probe.getsockname()[1]
    channel = WebhookChannel(url=f"http://127.0.0.1:{port}/hooks/smm")

    outcome = await adapter.publish(client, channel, CREDENTIALS, request("Hi"))

    assert isinstance(outcome, Retryable)


async def test_media_is_refused_rather_than_delivered_without_it(
    receiver: tuple[FakeWebhookReceiver, WebhookChannel], client: httpx.AsyncClient
) -> None:
    fake, channel = receiver
    photo = MediaUpload("shoes.jpg", "image/jpeg", b"\xff\xd8\xff")

    outcome = await adapter.publish(client, channel, CREDENTIALS, request("Hi", media=[photo]))

    assert isinstance(outcome, Rejected)
    assert outcome.reason == "media_unsupported"
    assert fake.deliveries == []


async def test_a_500_is_unknown_and_reconcile_delivers_it_once(
    receiver: tuple[FakeWebhookReceiver, WebhookChannel], client: httpx.AsyncClient
) -> None:
    fake, channel = receiver
    fake.faults.http_status = 500

    first = await adapter.publish(client, channel, CREDENTIALS, request("Launch day!"))
    found = await adapter.reconcile(client, channel, CREDENTIALS, request("Launch day!"))

    assert isinstance(first, Unknown)
    assert found == Published("item-1", "https://cms.example.com/posts/item-1")
    assert len(fake.items) == 1


async def test_no_answer_after_sending_is_unknown_and_reconcile_returns_the_first_item(
    receiver: tuple[FakeWebhookReceiver, WebhookChannel], client: httpx.AsyncClient
) -> None:
    fake, channel = receiver
    attempt = request("Launch day!")
    fake.faults.delay_s = 1.0

    first = await adapter.publish(client, channel, CREDENTIALS, attempt)
    [created] = await stored(fake, 1)
    found = await adapter.reconcile(client, channel, CREDENTIALS, attempt)
    retried = await adapter.publish(client, channel, CREDENTIALS, attempt)

    assert isinstance(first, Unknown)
    assert found == Published(created["id"], f"https://cms.example.com/posts/{created['id']}")
    assert retried == found
    assert len(fake.items) == 1
    assert fake.replays == 2
    # Every attempt carried the very same bytes, so the receiver could tell them apart from none.
    assert len(set(fake.deliveries)) == 1
    assert json.loads(fake.deliveries[0])["idempotency_key"] == "attempt-1"


async def test_reconcile_that_cannot_deliver_raises_instead_of_saying_none(
    receiver: tuple[FakeWebhookReceiver, WebhookChannel], client: httpx.AsyncClient
) -> None:
    _, channel = receiver

    with pytest.raises(ReconcileFailed) as failed:
        await adapter.reconcile(client, channel, {"secret": "rotated"}, request("Hi"))

    assert isinstance(failed.value.outcome, NeedsReconnect)
