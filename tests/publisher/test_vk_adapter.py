"""The VK publish adapter against a local VK API: what each answer means for the publisher, replies
land as comments, and an attempt whose outcome is unknown is reconciled into exactly one post."""

from __future__ import annotations

import socket
from collections.abc import AsyncIterator
from datetime import UTC, datetime, timedelta
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
from services.publisher.adapters.vk import VkChannel, VkPublisher
from tests.fakes.publish_vk import FakeVkWall
from tests.fakes.server import serve
from tests.support import wait_until

READ_TIMEOUT_S = 0.3
GROUP_ID = 4242
COMMUNITY = -GROUP_ID
TOKEN = "vk1.a.admin-token"
CREDENTIALS = {"access_token": TOKEN}
CUSTOMER = 777

adapter = VkPublisher()


@pytest.fixture
async def wall() -> AsyncIterator[tuple[FakeVkWall, VkChannel]]:
    fake = FakeVkWall(TOKEN, GROUP_ID)
    async with serve(fake.app) as url:
        yield fake, VkChannel(group_id=GROUP_ID, api_base=f"{url}/method")


@pytest.fixture
async def client() -> AsyncIterator[httpx.AsyncClient]:
    async with httpx.AsyncClient(timeout=httpx.Timeout(5.0, read=READ_TIMEOUT_S)) as http:
        yield http


def request(text: str, key: str = "attempt-1", **extra: Any) -> PublishRequest:
    return PublishRequest(idempotency_key=key, text=text, **extra)


async def posts_by_us(fake: FakeVkWall, count: int) -> list[dict[str, Any]]:
    """The community's own posts once there are `count` of them."""

    async def enough() -> list[dict[str, Any]]:
        ours = [p for p in fake.posts if p["from_id"] == COMMUNITY]
        return ours if len(ours) >= count else []

    return await wait_until(enough, timeout_s=5, interval_s=0.02, what=f"{count} posts")


# --- publishing ----------------------------------------------------------------------------------


async def test_publish_creates_one_community_post_with_its_id_and_link(
    wall: tuple[FakeVkWall, VkChannel], client: httpx.AsyncClient
) -> None:
    fake, channel = wall

    outcome = await adapter.publish(client, channel, CREDENTIALS, request("Spring sale today"))

    assert isinstance(outcome, Published)
    [post] = fake.posts
    assert outcome.remote_id == f"{COMMUNITY}_{post['id']}"
    assert outcome.url == f"https://vk.com/wall{COMMUNITY}_{post['id']}"
    assert post["from_id"] == COMMUNITY  # as the community, not the admin
    assert post["text"] == "Spring sale today"


async def test_a_reply_to_a_post_is_a_comment_by_the_community(
    wall: tuple[FakeVkWall, VkChannel], client: httpx.AsyncClient
) -> None:
    fake, channel = wall
    post = fake.add_post("New arrivals", COMMUNITY)

    outcome = await adapter.publish(
        client,
        channel,
        CREDENTIALS,
        request("Thanks for asking!", reply_to_external_id=f"{COMMUNITY}_{post['id']}"),
    )

    assert isinstance(outcome, Published)
    [comment] = fake.comments
    assert comment["from_id"] == COMMUNITY
    assert outcome.remote_id == f"{COMMUNITY}_{post['id']}_{comment['id']}"
    assert outcome.url == f"https://vk.com/wall{COMMUNITY}_{post['id']}?reply={comment['id']}"


async def test_a_reply_to_a_customers_comment_answers_that_comment(
    wall: tuple[FakeVkWall, VkChannel], client: httpx.AsyncClient
) -> None:
    fake, channel = wall
    post = fake.add_post("New arrivals", COMMUNITY)
    question = fake.add_comment(post["id"], "Where is my order?", CUSTOMER)

    outcome = await adapter.publish(
        client,
        channel,
        CREDENTIALS,
        request(
            "It ships tomorrow",
            reply_to_external_id=f"{COMMUNITY}_{post['id']}_{question['id']}",
        ),
    )

    assert isinstance(outcome, Published)
    reply = fake.comments[-1]
    assert reply["reply_to_comment"] == question["id"]
    assert reply["parents_stack"] == [question["id"]]
    assert outcome.url == (
        f"https://vk.com/wall{COMMUNITY}_{post['id']}?reply={reply['id']}&thread={question['id']}"
    )


async def test_blank_text_is_rejected_with_vks_message(
    wall: tuple[FakeVkWall, VkChannel], client: httpx.AsyncClient
) -> None:
    fake, channel = wall

    outcome = await adapter.publish(client, channel, CREDENTIALS, request("   "))

    message = "One of the parameters specified was missing or invalid: message"
    assert outcome == Rejected(f"vk: wall.post: error 100: {message}", message)
    assert fake.posts == []


async def test_a_revoked_token_needs_reconnecting(
    wall: tuple[FakeVkWall, VkChannel], client: httpx.AsyncClient
) -> None:
    fake, channel = wall

    outcome = await adapter.publish(client, channel, {"access_token": "revoked"}, request("Hi"))

    assert isinstance(outcome, NeedsReconnect)
    assert "error 5" in outcome.reason
    assert fake.posts == []


@pytest.mark.parametrize(("code", "wait_s"), [(6, 1.0), (9, 60.0), (29, 3600.0)])
async def test_vks_rate_limit_errors_wait_as_long_as_each_limit_lasts(
    wall: tuple[FakeVkWall, VkChannel], client: httpx.AsyncClient, code: int, wait_s: float
) -> None:
    fake, channel = wall
    fake.faults.errors.append((code, "Too many requests"))

    outcome = await adapter.publish(client, channel, CREDENTIALS, request("Hi"))

    assert outcome == RateLimited(wait_s)
    assert fake.posts == []


async def test_an_http_429_is_rate_limited_for_as_long_as_retry_after_says(
    wall: tuple[FakeVkWall, VkChannel], client: httpx.AsyncClient
) -> None:
    fake, channel = wall
    fake.faults.http_status = 429

    outcome = await adapter.publish(client, channel, CREDENTIALS, request("Hi"))

    # The fake's edge sends no Retry-After: VK's per-second limit is what is left to wait.
    assert outcome == RateLimited(1.0)


async def test_a_refused_connection_is_retryable(client: httpx.AsyncClient) -> None:
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        port = probe.getsockname()[1]
    channel = VkChannel(group_id=GROUP_ID, api_base=f"http://127.0.0.1:{port}/method")

    outcome = await adapter.publish(client, channel, CREDENTIALS, request("Hi"))

    assert isinstance(outcome, Retryable)


async def test_media_is_refused_rather_than_published_without_it(
    wall: tuple[FakeVkWall, VkChannel], client: httpx.AsyncClient
) -> None:
    fake, channel = wall
    photo = MediaUpload("shoes.jpg", "image/jpeg", b"\xff\xd8\xff", "red shoes")

    outcome = await adapter.publish(
        client, channel, CREDENTIALS, request("New shoes", media=[photo])
    )

    assert isinstance(outcome, Rejected)
    assert outcome.reason == "media_unsupported"
    assert fake.posts == []


# --- unknown outcomes and reconciliation ---------------------------------------------------------


async def test_a_502_is_unknown_then_reconcile_finds_nothing_and_a_retry_publishes_once(
    wall: tuple[FakeVkWall, VkChannel], client: httpx.AsyncClient
) -> None:
    fake, channel = wall
    attempt = request("Launch day!", attempted_at=datetime.now(UTC))
    fake.faults.http_status = 502  # refused at the edge: nothing written

    first = await adapter.publish(client, channel, CREDENTIALS, attempt)
    found = await adapter.reconcile(client, channel, CREDENTIALS, attempt)
    retried = await adapter.publish(client, channel, CREDENTIALS, attempt)

    assert isinstance(first, Unknown)
    assert found is None
    assert isinstance(retried, Published)
    assert len(fake.posts) == 1


async def test_vks_internal_error_is_unknown(
    wall: tuple[FakeVkWall, VkChannel], client: httpx.AsyncClient
) -> None:
    fake, channel = wall
    fake.faults.errors.append((10, "Internal server error"))

    outcome = await adapter.publish(client, channel, CREDENTIALS, request("Hi"))

    assert isinstance(outcome, Unknown)


async def test_no_answer_after_sending_is_unknown_and_reconcile_finds_the_post(
    wall: tuple[FakeVkWall, VkChannel], client: httpx.AsyncClient
) -> None:
    fake, channel = wall
    fake.add_post("Launch day!", COMMUNITY, date=int(datetime.now(UTC).timestamp()) - 86400)
    fake.add_post("Launch day!", CUSTOMER)  # a fan's post with the same words
    attempt = request("Launch day!", attempted_at=datetime.now(UTC))
    fake.faults.delay_s = 1.0

    first = await adapter.publish(client, channel, CREDENTIALS, attempt)
    [_, created] = await posts_by_us(fake, 2)
    found = await adapter.reconcile(client, channel, CREDENTIALS, attempt)

    assert isinstance(first, Unknown)
    assert found == Published(
        f"{COMMUNITY}_{created['id']}", f"https://vk.com/wall{COMMUNITY}_{created['id']}"
    )


async def test_a_retry_with_the_same_key_returns_the_first_post_instead_of_a_second(
    wall: tuple[FakeVkWall, VkChannel], client: httpx.AsyncClient
) -> None:
    fake, channel = wall
    attempt = request("Launch day!")
    fake.faults.delay_s = 1.0

    first = await adapter.publish(client, channel, CREDENTIALS, attempt)
    [created] = await posts_by_us(fake, 1)
    retried = await adapter.publish(client, channel, CREDENTIALS, attempt)

    assert isinstance(first, Unknown)
    assert retried == Published(
        f"{COMMUNITY}_{created['id']}", f"https://vk.com/wall{COMMUNITY}_{created['id']}"
    )
    assert len(fake.posts) == 1
    assert fake.guid_replays == 1


async def test_reconcile_finds_a_reply_whose_answer_was_lost(
    wall: tuple[FakeVkWall, VkChannel], client: httpx.AsyncClient
) -> None:
    fake, channel = wall
    post = fake.add_post("New arrivals", COMMUNITY)
    question = fake.add_comment(post["id"], "Do you ship abroad?", CUSTOMER)
    target = f"{COMMUNITY}_{post['id']}_{question['id']}"
    fake.add_comment(post["id"], "Yes, we do", COMMUNITY)  # same words, not an answer to it
    reply = request("Yes, we do", reply_to_external_id=target, attempted_at=datetime.now(UTC))

    before = await adapter.reconcile(client, channel, CREDENTIALS, reply)
    fake.faults.delay_s = 1.0
    first = await adapter.publish(client, channel, CREDENTIALS, reply)
    after = await adapter.reconcile(client, channel, CREDENTIALS, reply)

    assert before is None
    assert isinstance(first, Unknown)
    created = fake.comments[-1]
    assert after == Published(
        f"{target.rsplit('_', 1)[0]}_{created['id']}",
        f"https://vk.com/wall{COMMUNITY}_{post['id']}?reply={created['id']}"
        f"&thread={question['id']}",
    )


async def test_reconcile_ignores_the_same_text_posted_before_the_attempt(
    wall: tuple[FakeVkWall, VkChannel], client: httpx.AsyncClient
) -> None:
    fake, channel = wall
    fake.add_post("Good morning!", COMMUNITY)

    later = request("Good morning!", attempted_at=datetime.now(UTC) + timedelta(days=1))

    assert await adapter.reconcile(client, channel, CREDENTIALS, later) is None


async def test_reconcile_that_cannot_read_the_wall_raises_instead_of_saying_none(
    wall: tuple[FakeVkWall, VkChannel], client: httpx.AsyncClient
) -> None:
    _, channel = wall

    with pytest.raises(ReconcileFailed) as failed:
        await adapter.reconcile(client, channel, {"access_token": "revoked"}, request("Hi"))

    assert isinstance(failed.value.outcome, NeedsReconnect)
