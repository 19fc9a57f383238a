"""The Mastodon publish adapter against the sandbox network run in-process: what each answer means
for the publisher, and that an attempt whose outcome is unknown is reconciled into exactly one
status, never a second one."""

from __future__ import annotations

import socket
from collections.abc import AsyncIterator
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from typing import Any

import httpx
import pytest

from devstack.sandbox import SandboxConfig, create_app
from services.publisher.adapters import adapter_for
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
from services.publisher.adapters.mastodon import MastodonChannel, MastodonPublisher
from tests.fakes.server import serve
from tests.support import wait_until

# The adapter's own read timeout: short, so "the answer never came" takes a fraction of a second.
READ_TIMEOUT_S = 0.3


@dataclass
class Brand:
    """A brand's Mastodon account on the sandbox, as a connected channel."""

    id: str
    token: str
    channel: MastodonChannel

    @property
    def credentials(self) -> dict[str, Any]:
        return {"access_token": self.token}


@dataclass
class Network:
    """The sandbox served on loopback, and what a test does to it besides publishing."""

    url: str
    admin: httpx.AsyncClient

    async def brand(self, username: str, **extra: Any) -> Brand:
        created = await self.admin.post(
            f"{self.url}/sandbox/accounts", json={"username": username, **extra}
        )
        created.raise_for_status()
        body = created.json()
        return Brand(body["id"], body["access_token"], MastodonChannel(api_base=self.url))

    async def post(self, token: str, text: str) -> dict[str, Any]:
        posted = await self.admin.post(
            f"{self.url}/api/v1/statuses",
            json={"status": text},
            headers={"Authorization": f"Bearer {token}"},
        )
        posted.raise_for_status()
        status: dict[str, Any] = posted.json()
        return status

    async def fault(self, **spec: Any) -> None:
        (await self.admin.post(f"{self.url}/sandbox/faults", json=spec)).raise_for_status()

    async def statuses_of(self, brand: Brand) -> list[dict[str, Any]]:
        found = await self.admin.get(f"{self.url}/sandbox/accounts/{brand.id}/statuses")
        found.raise_for_status()
        statuses: list[dict[str, Any]] = found.json()
        return statuses

    async def stats_of(self, brand: Brand) -> dict[str, Any]:
        stats = await self.admin.get(f"{self.url}/sandbox/stats")
        stats.raise_for_status()
        mine: dict[str, Any] = stats.json()["accounts"][brand.id]
        return mine

    async def wait_for_statuses(self, brand: Brand, count: int) -> list[dict[str, Any]]:
        """The brand's statuses once there are `count` of them (the server applies a write a
        moment after the client has given up on the answer)."""

        async def enough() -> list[dict[str, Any]]:
            statuses = await self.statuses_of(brand)
            return statuses if len(statuses) >= count else []

        return await wait_until(enough, timeout_s=5, interval_s=0.02, what=f"{count} statuses")


@pytest.fixture
async def network() -> AsyncIterator[Network]:
    app = create_app(SandboxConfig())
    async with serve(app) as url, httpx.AsyncClient() as admin:
        yield Network(url, admin)


@pytest.fixture
async def client() -> AsyncIterator[httpx.AsyncClient]:
    """The publisher's HTTP client."""
    async with httpx.AsyncClient(timeout=httpx.Timeout(5.0, read=READ_TIMEOUT_S)) as http:
        yield http


adapter = MastodonPublisher()


def request(text: str, key: str = "attempt-1", **extra: Any) -> PublishRequest:
    return PublishRequest(idempotency_key=key, text=text, **extra)


# --- publishing ----------------------------------------------------------------------------------


async def test_publish_creates_one_status_and_returns_its_id_and_link(
    network: Network, client: httpx.AsyncClient
) -> None:
    brand = await network.brand("acme")

    outcome = await adapter.publish(
        client,
        brand.channel,
        brand.credentials,
        request("Spring sale starts today #acme", visibility="unlisted", language="en"),
    )

    assert isinstance(outcome, Published)
    statuses = await network.statuses_of(brand)
    assert [s["id"] for s in statuses] == [outcome.remote_id]
    assert outcome.url == f"{network.url}/@acme/{outcome.remote_id}"
    assert statuses[0]["visibility"] == "unlisted"
    assert statuses[0]["language"] == "en"
    assert isinstance(adapter_for("mastodon"), MastodonPublisher)


async def test_a_reply_is_posted_in_reply_to_the_customer(
    network: Network, client: httpx.AsyncClient
) -> None:
    brand = await network.brand("acme")
    customer = await network.brand("kate")
    question = await network.post(customer.token, "@acme where is my order?")

    outcome = await adapter.publish(
        client,
        brand.channel,
        brand.credentials,
        request("@kate it ships tomorrow", reply_to_external_id=question["id"]),
    )

    assert isinstance(outcome, Published)
    reply = (await client.get(f"{network.url}/api/v1/statuses/{outcome.remote_id}")).json()
    assert reply["in_reply_to_id"] == question["id"]
    assert reply["in_reply_to_account_id"] == customer.id


async def test_blank_text_is_rejected_with_mastodons_message(
    network: Network, client: httpx.AsyncClient
) -> None:
    brand = await network.brand("acme")

    outcome = await adapter.publish(client, brand.channel, brand.credentials, request("   "))

    assert outcome == Rejected(
        "HTTP 422: Validation failed: Text can't be blank",
        "Validation failed: Text can't be blank",
    )
    assert await network.statuses_of(brand) == []


async def test_a_revoked_token_needs_reconnecting(
    network: Network, client: httpx.AsyncClient
) -> None:
    brand = await network.brand("acme")
    await network.admin.post(f"{network.url}/sandbox/accounts/{brand.id}/revoke")

    outcome = await adapter.publish(client, brand.channel, brand.credentials, request("Hello"))

    assert isinstance(outcome, NeedsReconnect)
    assert "401" in outcome.reason
    assert await network.statuses_of(brand) == []


async def test_429_is_rate_limited_for_as_long_as_retry_after_says(
    network: Network, client: httpx.AsyncClient
) -> None:
    brand = await network.brand("acme")
    await network.fault(kind="rate_limit", retry_after_s=17, method="POST")

    outcome = await adapter.publish(client, brand.channel, brand.credentials, request("Hello"))

    assert outcome == RateLimited(17)
    assert await network.statuses_of(brand) == []


async def test_429_without_retry_after_waits_until_the_rate_limit_window_resets(
    network: Network, client: httpx.AsyncClient
) -> None:
    brand = await network.brand("acme", rate_limit=1)
    first = await adapter.publish(client, brand.channel, brand.credentials, request("One", "k1"))

    second = await adapter.publish(client, brand.channel, brand.credentials, request("Two", "k2"))

    assert isinstance(first, Published)
    assert isinstance(second, RateLimited)
    assert 0 < second.retry_after_s <= 300  # Mastodon's five-minute window
    assert len(await network.statuses_of(brand)) == 1


async def test_a_refused_connection_is_retryable(client: httpx.AsyncClient) -> None:
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        port = probe.getsockname()[1]
    channel = MastodonChannel(api_base=f"http://127.0.0.1:{port}")

    outcome = await adapter.publish(client, channel, {"access_token": "t"}, request("Hello"))

    assert isinstance(outcome, Retryable)


# --- media ---------------------------------------------------------------------------------------

PHOTO_BYTES = b"\xff\xd8\xff\xe0" + bytes(range(256)) * 40  # binary, with CR and LF bytes in it


def photo(name: str, alt: str | None) -> MediaUpload:
    return MediaUpload(name, "image/jpeg", PHOTO_BYTES, alt)


def record_calls(client: httpx.AsyncClient) -> list[tuple[str, str, int]]:
    """(method, path, status) of every answer the client receives from now on."""
    calls: list[tuple[str, str, int]] = []

    async def remember(response: httpx.Response) -> None:
        calls.append((response.request.method, response.request.url.path, response.status_code))

    client.event_hooks["response"].append(remember)
    return calls


async def test_a_post_with_two_images_is_published_with_both_and_their_descriptions(
    network: Network, client: httpx.AsyncClient
) -> None:
    brand = await network.brand("acme")
    images = [photo("red.jpg", "Red trail shoes"), photo("blue.jpg", "Blue trail shoes")]

    outcome = await adapter.publish(
        client, brand.channel, brand.credentials, request("New colours!", media=images)
    )

    assert isinstance(outcome, Published)
    statuses = await network.statuses_of(brand)
    assert [s["id"] for s in statuses] == [outcome.remote_id]
    attachments = statuses[0]["media_attachments"]
    assert [(m["type"], m["description"]) for m in attachments] == [
        ("image", "Red trail shoes"),
        ("image", "Blue trail shoes"),
    ]
    assert all(m["url"] for m in attachments)


async def test_a_video_is_attached_once_the_server_has_processed_it(
    network: Network, client: httpx.AsyncClient
) -> None:
    brand = await network.brand("acme")
    video = MediaUpload("teaser.mp4", "video/mp4", b"\x00\x00\x00\x18ftypmp42" * 100, None)
    calls = record_calls(client)

    outcome = await MastodonPublisher(media_poll_s=0.01).publish(
        client, brand.channel, brand.credentials, request("Watch the teaser", media=[video])
    )

    assert isinstance(outcome, Published)
    [status] = await network.statuses_of(brand)
    assert [m["type"] for m in status["media_attachments"]] == ["video"]
    media_id = status["media_attachments"][0]["id"]
    # Uploaded (202, processing), polled until done (206, then 200), and only then attached.
    assert calls == [
        ("POST", "/api/v2/media", 202),
        ("GET", f"/api/v1/media/{media_id}", 206),
        ("GET", f"/api/v1/media/{media_id}", 200),
        ("POST", "/api/v1/statuses", 200),
    ]


async def test_an_upload_the_server_refuses_is_rejected_and_nothing_is_posted(
    network: Network, client: httpx.AsyncClient
) -> None:
    brand = await network.brand("acme")
    brochure = MediaUpload("brochure.pdf", "application/pdf", b"%PDF-1.7", "Price list")

    outcome = await adapter.publish(
        client,
        brand.channel,
        brand.credentials,
        request("Our prices", media=[photo("shop.jpg", "The shop"), brochure]),
    )

    assert isinstance(outcome, Rejected)
    assert outcome.network_message == "Validation failed: File content type is invalid"
    assert "brochure.pdf" in outcome.reason
    assert await network.statuses_of(brand) == []


@pytest.mark.parametrize(
    ("fault", "expected"),
    [
        pytest.param({"kind": "server_error", "status": 503}, Retryable, id="5xx"),
        pytest.param({"kind": "timeout_after_send", "drop": True}, Retryable, id="connection-cut"),
        pytest.param({"kind": "rate_limit", "retry_after_s": 42}, RateLimited, id="429"),
    ],
)
async def test_a_failed_upload_is_retried_later_since_no_status_exists_yet(
    network: Network, client: httpx.AsyncClient, fault: dict[str, Any], expected: type[Any]
) -> None:
    brand = await network.brand("acme")
    await network.fault(path_prefix="/api/v2/media", **fault)
    attempt = request("New colours!", media=[photo("red.jpg", "Red trail shoes")])

    first = await adapter.publish(client, brand.channel, brand.credentials, attempt)
    retried = await adapter.publish(client, brand.channel, brand.credentials, attempt)

    assert isinstance(first, expected)
    if isinstance(first, RateLimited):
        assert first.retry_after_s == 42
    assert isinstance(retried, Published)
    [status] = await network.statuses_of(brand)
    assert [m["description"] for m in status["media_attachments"]] == ["Red trail shoes"]


async def test_an_upload_with_a_revoked_token_needs_reconnecting(
    network: Network, client: httpx.AsyncClient
) -> None:
    brand = await network.brand("acme")
    await network.admin.post(f"{network.url}/sandbox/accounts/{brand.id}/revoke")

    outcome = await adapter.publish(
        client, brand.channel, brand.credentials, request("Hi", media=[photo("a.jpg", None)])
    )

    assert isinstance(outcome, NeedsReconnect)
    assert "401" in outcome.reason


async def test_a_lost_answer_to_a_post_with_media_is_reconciled_without_a_second_status(
    network: Network, client: httpx.AsyncClient
) -> None:
    brand = await network.brand("acme")
    images = [photo("red.jpg", "Red trail shoes"), photo("blue.jpg", "Blue trail shoes")]
    attempt = request("New colours!", media=images, attempted_at=datetime.now(UTC))
    # Only the status POST loses its answer; the uploads before it go through.
    await network.fault(kind="timeout_after_send", path_prefix="/api/v1/statuses", drop=True)

    first = await adapter.publish(client, brand.channel, brand.credentials, attempt)
    [created] = await network.wait_for_statuses(brand, 1)
    found = await adapter.reconcile(client, brand.channel, brand.credentials, attempt)
    # Had reconcile come too early, the retry uploads again; the key still yields one status.
    retried = await adapter.publish(client, brand.channel, brand.credentials, attempt)

    assert isinstance(first, Unknown)
    assert found == Published(created["id"], created["url"])
    assert retried == found
    statuses = await network.statuses_of(brand)
    assert [s["id"] for s in statuses] == [created["id"]]
    assert len(statuses[0]["media_attachments"]) == 2
    stats = await network.stats_of(brand)
    assert stats["statuses"] == 1
    assert stats["duplicates_by_idempotency_key"] == 0


# --- unknown outcomes and reconciliation ---------------------------------------------------------


async def test_a_500_is_unknown_then_reconcile_finds_nothing_and_a_retry_publishes_once(
    network: Network, client: httpx.AsyncClient
) -> None:
    brand = await network.brand("acme")
    await network.post(brand.token, "An older post")
    attempt = request("Launch day!", attempted_at=datetime.now(UTC))
    # The sandbox's 500 answers before the request reaches the network: nothing is written.
    await network.fault(kind="server_error", status=500, method="POST")

    first = await adapter.publish(client, brand.channel, brand.credentials, attempt)
    found = await adapter.reconcile(client, brand.channel, brand.credentials, attempt)
    retried = await adapter.publish(client, brand.channel, brand.credentials, attempt)

    assert isinstance(first, Unknown)
    assert found is None
    assert isinstance(retried, Published)
    launch = [s for s in await network.statuses_of(brand) if s["id"] == retried.remote_id]
    assert len(launch) == 1
    stats = await network.stats_of(brand)
    assert stats["statuses"] == 2  # the older post and the launch, once
    assert stats["duplicates_by_idempotency_key"] == 0


@pytest.mark.parametrize(
    "fault",
    [
        pytest.param({"delay_ms": 1500}, id="answer-held-past-the-timeout"),
        pytest.param({"drop": True}, id="connection-cut-after-the-write"),
    ],
)
async def test_no_answer_after_sending_is_unknown_and_reconcile_finds_the_status(
    network: Network, client: httpx.AsyncClient, fault: dict[str, Any]
) -> None:
    brand = await network.brand("acme")
    attempt = request("Launch day!", attempted_at=datetime.now(UTC))
    await network.fault(kind="timeout_after_send", method="POST", **fault)

    first = await adapter.publish(client, brand.channel, brand.credentials, attempt)
    created = await network.wait_for_statuses(brand, 1)
    found = await adapter.reconcile(client, brand.channel, brand.credentials, attempt)

    assert isinstance(first, Unknown)
    assert len(created) == 1
    assert found == Published(created[0]["id"], created[0]["url"])
    stats = await network.stats_of(brand)
    assert stats["statuses"] == 1
    assert stats["duplicates_by_idempotency_key"] == 0


async def test_a_retry_after_an_unknown_outcome_never_creates_a_second_status(
    network: Network, client: httpx.AsyncClient
) -> None:
    brand = await network.brand("acme")
    attempt = request("Launch day!")
    await network.fault(kind="timeout_after_send", method="POST", drop=True)

    first = await adapter.publish(client, brand.channel, brand.credentials, attempt)
    await network.wait_for_statuses(brand, 1)
    retried = await adapter.publish(client, brand.channel, brand.credentials, attempt)
    again = await adapter.publish(client, brand.channel, brand.credentials, attempt)

    assert isinstance(first, Unknown)
    assert isinstance(retried, Published)
    assert again == retried
    assert [s["id"] for s in await network.statuses_of(brand)] == [retried.remote_id]
    stats = await network.stats_of(brand)
    assert stats["idempotent_replays"] == 2
    assert stats["duplicates_by_idempotency_key"] == 0


async def test_reconcile_matches_the_reply_target_not_only_the_text(
    network: Network, client: httpx.AsyncClient
) -> None:
    brand = await network.brand("acme")
    customer = await network.brand("kate")
    question = await network.post(customer.token, "@acme do you ship abroad?")
    await network.post(brand.token, "Thanks!")  # the same words, but not a reply
    reply = request("Thanks!", reply_to_external_id=question["id"])

    before = await adapter.reconcile(client, brand.channel, brand.credentials, reply)
    published = await adapter.publish(client, brand.channel, brand.credentials, reply)
    after = await adapter.reconcile(client, brand.channel, brand.credentials, reply)

    assert before is None
    assert isinstance(published, Published)
    assert after == published


async def test_reconcile_recognises_text_as_mastodon_renders_it(
    network: Network, client: httpx.AsyncClient
) -> None:
    brand = await network.brand("acme")
    await network.brand("kate")
    text = (
        "Hi @kate and @ann@remote.example!\n\nOur guide: "
        "https://example.com/guides/choosing-running-shoes-for-trails?ref=masto #Running <3"
    )
    published = await adapter.publish(client, brand.channel, brand.credentials, request(text))

    found = await adapter.reconcile(client, brand.channel, brand.credentials, request(text))

    assert isinstance(published, Published)
    assert found == published


async def test_reconcile_ignores_the_same_text_posted_before_the_attempt(
    network: Network, client: httpx.AsyncClient
) -> None:
    brand = await network.brand("acme")
    await network.post(brand.token, "Good morning!")
    tomorrow = datetime.now(UTC) + timedelta(days=1)

    later_attempt = request("Good morning!", attempted_at=tomorrow)
    found = await adapter.reconcile(client, brand.channel, brand.credentials, later_attempt)

    assert found is None


async def test_reconcile_pages_back_to_the_attempt(
    network: Network, client: httpx.AsyncClient
) -> None:
    brand = await network.brand("acme", rate_limit=0)
    attempt = request("The one we are looking for", attempted_at=datetime.now(UTC))
    published = await adapter.publish(client, brand.channel, brand.credentials, attempt)
    for number in range(45):  # more than one page of newer statuses
        await network.post(brand.token, f"Update {number}")

    found = await adapter.reconcile(client, brand.channel, brand.credentials, attempt)

    assert isinstance(published, Published)
    assert found == published


async def test_reconcile_that_cannot_read_the_account_raises_instead_of_saying_none(
    network: Network, client: httpx.AsyncClient
) -> None:
    brand = await network.brand("acme")
    await network.admin.post(f"{network.url}/sandbox/accounts/{brand.id}/revoke")

    with pytest.raises(ReconcileFailed) as failed:
        await adapter.reconcile(client, brand.channel, brand.credentials, request("Hello"))

    assert isinstance(failed.value.outcome, NeedsReconnect)


async def test_published_carries_the_budget_the_rate_limit_headers_state(
    network: Network, client: httpx.AsyncClient
) -> None:
    brand = await network.brand("budget_brand")
    outcome = await MastodonPublisher().publish(
        client, brand.channel, brand.credentials, request("Budget check")
    )
    assert isinstance(outcome, Published)
    assert outcome.budget is not None
    assert 0 <= outcome.budget.remaining < 300
    assert outcome.budget.reset_at.tzinfo is not None
