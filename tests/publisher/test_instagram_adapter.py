"""The Instagram publish adapter against a local Graph API: a post is a container then
`media_publish`, what each refusal means for the publisher, replies land under the comment, an
attempt whose answer was lost is reconciled into exactly one post, and a customer's comment is
hidden on request, once or twice alike."""

from __future__ import annotations

from collections.abc import AsyncIterator
from datetime import UTC, datetime, timedelta
from typing import Any

import httpx
import pytest

from services.publisher.adapters.base import (
    Hidden,
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
from services.publisher.adapters.instagram import InstagramChannel, InstagramPublisher
from tests.fakes.publish_instagram import FakeInstagramAccount
from tests.fakes.server import serve
from tests.support import wait_until

READ_TIMEOUT_S = 0.3
IG_USER_ID = "17841400000000001"
TOKEN = "EAAB-ig-user-token"
CREDENTIALS = {"access_token": TOKEN}
CDN = "https://cdn.example.com/acme"

adapter = InstagramPublisher(container_wait_s=2.0, container_poll_s=0.01)


@pytest.fixture
async def account() -> AsyncIterator[tuple[FakeInstagramAccount, InstagramChannel]]:
    fake = FakeInstagramAccount(TOKEN, IG_USER_ID)
    async with serve(fake.app) as url:
        yield fake, InstagramChannel(ig_user_id=IG_USER_ID, graph_base=url)


@pytest.fixture
async def client() -> AsyncIterator[httpx.AsyncClient]:
    async with httpx.AsyncClient(timeout=httpx.Timeout(5.0, read=READ_TIMEOUT_S)) as http:
        yield http


def photo(name: str, url: str | None = "default") -> MediaUpload:
    source = f"{CDN}/{name}" if url == "default" else url
    return MediaUpload(name, "image/jpeg", b"\xff\xd8\xff", f"{name} on a table", source)


def request(text: str, key: str = "attempt-1", **extra: Any) -> PublishRequest:
    return PublishRequest(idempotency_key=key, text=text, **extra)


# --- publishing ----------------------------------------------------------------------------------


async def test_one_image_is_published_with_its_caption_and_permalink(
    account: tuple[FakeInstagramAccount, InstagramChannel], client: httpx.AsyncClient
) -> None:
    fake, channel = account
    fake.faults.in_progress_polls = 2  # Instagram is still downloading the image at first

    outcome = await adapter.publish(
        client, channel, CREDENTIALS, request("Spring sale #shoes", media=[photo("red.jpg")])
    )

    [post] = fake.media.values()
    assert outcome == Published(post["id"], post["permalink"])
    assert post["caption"] == "Spring sale #shoes"
    assert post["media_type"] == "IMAGE"
    assert post["media_url"] == f"{CDN}/red.jpg"


async def test_three_images_are_one_carousel_post_in_order(
    account: tuple[FakeInstagramAccount, InstagramChannel], client: httpx.AsyncClient
) -> None:
    fake, channel = account
    shots = [photo("red.jpg"), photo("blue.jpg"), photo("green.jpg")]

    outcome = await adapter.publish(
        client, channel, CREDENTIALS, request("Three colours", media=shots)
    )

    [post] = fake.media.values()  # one post, not three
    assert outcome == Published(post["id"], post["permalink"])
    assert post["media_type"] == "CAROUSEL_ALBUM"
    assert post["caption"] == "Three colours"
    assert post["children"] == [f"{CDN}/red.jpg", f"{CDN}/blue.jpg", f"{CDN}/green.jpg"]


async def test_a_container_instagram_cannot_process_is_rejected_with_its_status(
    account: tuple[FakeInstagramAccount, InstagramChannel], client: httpx.AsyncClient
) -> None:
    fake, channel = account
    status = "Error: Media upload has failed with error code 2207009"  # aspect ratio
    fake.faults.broken_media[f"{CDN}/panorama.jpg"] = status

    outcome = await adapter.publish(
        client, channel, CREDENTIALS, request("Wide", media=[photo("panorama.jpg")])
    )

    assert isinstance(outcome, Rejected)
    assert outcome.network_message == status
    assert fake.media == {}


async def test_a_container_still_processing_at_the_deadline_is_retryable_and_publishes_nothing(
    account: tuple[FakeInstagramAccount, InstagramChannel], client: httpx.AsyncClient
) -> None:
    fake, channel = account
    fake.faults.in_progress_polls = 10_000
    impatient = InstagramPublisher(container_wait_s=0.1, container_poll_s=0.01)

    outcome = await impatient.publish(
        client, channel, CREDENTIALS, request("Slow", media=[photo("big.jpg")])
    )

    assert isinstance(outcome, Retryable)
    assert "IN_PROGRESS" in outcome.reason
    assert fake.media == {}


async def test_a_text_only_post_is_refused_before_calling_instagram(
    account: tuple[FakeInstagramAccount, InstagramChannel], client: httpx.AsyncClient
) -> None:
    fake, channel = account

    outcome = await adapter.publish(client, channel, CREDENTIALS, request("Just words"))

    assert isinstance(outcome, Rejected)
    assert outcome.reason == "media_required"
    assert fake.containers == {}


async def test_media_without_a_public_url_is_refused_rather_than_uploaded(
    account: tuple[FakeInstagramAccount, InstagramChannel], client: httpx.AsyncClient
) -> None:
    fake, channel = account

    outcome = await adapter.publish(
        client, channel, CREDENTIALS, request("Shoes", media=[photo("red.jpg", url=None)])
    )

    assert isinstance(outcome, Rejected)
    assert outcome.reason == "media_url_required"
    assert fake.containers == {}


async def test_a_reply_lands_under_the_customers_comment(
    account: tuple[FakeInstagramAccount, InstagramChannel], client: httpx.AsyncClient
) -> None:
    fake, channel = account
    post = fake.add_media("New arrivals")
    question = fake.add_comment("Do you ship to Spain?", "kate", parent=post["id"])

    outcome = await adapter.publish(
        client,
        channel,
        CREDENTIALS,
        request("Yes, in 3 days!", reply_to_external_id=question["id"]),
    )

    [reply] = fake.replies_to(question["id"])
    assert outcome == Published(reply["id"], None)
    assert (reply["text"], reply["username"]) == ("Yes, in 3 days!", "acme")
    assert len(fake.media) == 1  # no new post


async def test_an_invalid_token_needs_reconnecting(
    account: tuple[FakeInstagramAccount, InstagramChannel], client: httpx.AsyncClient
) -> None:
    fake, channel = account

    outcome = await adapter.publish(
        client, channel, {"access_token": "revoked"}, request("Hi", media=[photo("red.jpg")])
    )

    assert isinstance(outcome, NeedsReconnect)
    assert "Graph error 190" in outcome.reason
    assert fake.containers == {}


async def test_a_429_waits_as_long_as_retry_after_says(
    account: tuple[FakeInstagramAccount, InstagramChannel], client: httpx.AsyncClient
) -> None:
    fake, channel = account
    fake.faults.errors["media"] = [
        (429, 4, None, "Application request limit reached", {"Retry-After": "30"})
    ]

    outcome = await adapter.publish(
        client, channel, CREDENTIALS, request("Hi", media=[photo("red.jpg")])
    )

    assert outcome == RateLimited(30)
    assert fake.media == {}


async def test_the_daily_publishing_limit_waits_a_day_and_publishes_nothing(
    account: tuple[FakeInstagramAccount, InstagramChannel], client: httpx.AsyncClient
) -> None:
    fake, channel = account
    limit = (
        "You reached maximum number of posts that is allowed to be published by Content "
        "Publishing API."
    )
    fake.faults.errors["media_publish"] = [(400, 9, 2207042, limit, {})]

    outcome = await adapter.publish(
        client, channel, CREDENTIALS, request("Hi", media=[photo("red.jpg")])
    )

    assert outcome == RateLimited(24 * 3600)
    assert fake.media == {}


async def test_a_post_restricted_as_spam_is_rejected_not_retried_as_a_rate_limit(
    account: tuple[FakeInstagramAccount, InstagramChannel], client: httpx.AsyncClient
) -> None:
    fake, channel = account
    restricted = "We restrict certain activity to protect our community."
    fake.faults.errors["media_publish"] = [(400, 4, 2207051, restricted, {})]

    outcome = await adapter.publish(
        client, channel, CREDENTIALS, request("Buy now!!!", media=[photo("red.jpg")])
    )

    assert isinstance(outcome, Rejected)
    assert outcome.network_message == restricted


async def test_a_server_error_while_making_a_container_is_retryable(
    account: tuple[FakeInstagramAccount, InstagramChannel], client: httpx.AsyncClient
) -> None:
    fake, channel = account
    fake.faults.errors["media"] = [(400, -1, 2207001, "Instagram server error.", {})]

    outcome = await adapter.publish(
        client, channel, CREDENTIALS, request("Hi", media=[photo("red.jpg")])
    )

    # Containers are invisible: "maybe made" there cannot become a second post.
    assert isinstance(outcome, Retryable)


# --- unknown outcomes and reconciliation ---------------------------------------------------------


async def test_no_answer_to_media_publish_is_unknown_and_reconcile_finds_the_post(
    account: tuple[FakeInstagramAccount, InstagramChannel], client: httpx.AsyncClient
) -> None:
    fake, channel = account
    yesterday = fake.add_media("Launch day!", created=datetime.now(UTC) - timedelta(days=1))
    attempt = request("Launch day!", media=[photo("rocket.jpg")], attempted_at=datetime.now(UTC))
    fake.faults.publish_delay_s = 1.0

    first = await adapter.publish(client, channel, CREDENTIALS, attempt)

    async def published_today() -> list[dict[str, Any]]:
        return [m for m in fake.media.values() if m["id"] != yesterday["id"]]

    [created] = await wait_until(published_today, timeout_s=5, interval_s=0.02, what="the post")
    found = await adapter.reconcile(client, channel, CREDENTIALS, attempt)

    assert isinstance(first, Unknown)
    # Today's post, not yesterday's with the same caption: the publisher records it and stops.
    assert found == Published(created["id"], created["permalink"])
    assert len(fake.media) == 2


async def test_reconcile_without_a_trace_says_none_and_a_retry_publishes_once(
    account: tuple[FakeInstagramAccount, InstagramChannel], client: httpx.AsyncClient
) -> None:
    fake, channel = account
    attempt = request("Launch day!", media=[photo("rocket.jpg")], attempted_at=datetime.now(UTC))
    fake.faults.errors["media_publish"] = [(500, 2, None, "Service temporarily unavailable", {})]

    first = await adapter.publish(client, channel, CREDENTIALS, attempt)
    found = await adapter.reconcile(client, channel, CREDENTIALS, attempt)
    retried = await adapter.publish(client, channel, CREDENTIALS, attempt)

    assert isinstance(first, Unknown)
    assert found is None
    assert isinstance(retried, Published)
    assert len(fake.media) == 1


async def test_reconcile_pages_back_to_the_attempt(
    account: tuple[FakeInstagramAccount, InstagramChannel], client: httpx.AsyncClient
) -> None:
    fake, channel = account
    start = datetime.now(UTC) - timedelta(minutes=1)
    wanted = fake.add_media("The one we are looking for", created=start)
    for number in range(120):  # more than two pages of newer posts
        fake.add_media(f"Update {number}", created=start + timedelta(seconds=number + 1))
    attempt = request("The one we are looking for", attempted_at=start)

    found = await adapter.reconcile(client, channel, CREDENTIALS, attempt)

    assert found == Published(wanted["id"], wanted["permalink"])


async def test_reconcile_finds_the_accounts_reply_not_a_customers_with_the_same_words(
    account: tuple[FakeInstagramAccount, InstagramChannel], client: httpx.AsyncClient
) -> None:
    fake, channel = account
    post = fake.add_media("New arrivals")
    question = fake.add_comment("Do you ship abroad?", "kate", parent=post["id"])
    fake.add_comment("Yes, we do", "bob", parent=question["id"])
    reply = request(
        "Yes, we do", reply_to_external_id=question["id"], attempted_at=datetime.now(UTC)
    )

    before = await adapter.reconcile(client, channel, CREDENTIALS, reply)
    published = await adapter.publish(client, channel, CREDENTIALS, reply)
    after = await adapter.reconcile(client, channel, CREDENTIALS, reply)

    assert before is None
    assert isinstance(published, Published)
    assert after == published


async def test_reconcile_that_cannot_read_the_account_raises_instead_of_saying_none(
    account: tuple[FakeInstagramAccount, InstagramChannel], client: httpx.AsyncClient
) -> None:
    _, channel = account

    with pytest.raises(ReconcileFailed) as failed:
        await adapter.reconcile(client, channel, {"access_token": "revoked"}, request("Hi"))

    assert isinstance(failed.value.outcome, NeedsReconnect)


# --- hiding comments -----------------------------------------------------------------------------


def customer_comment(fake: FakeInstagramAccount) -> dict[str, Any]:
    post = fake.add_media("Spring drop")
    return fake.add_comment("Free followers, DM me", "spam.bot", post["id"])


async def test_hiding_a_customers_comment_hides_it_and_again_is_still_success(
    account: tuple[FakeInstagramAccount, InstagramChannel], client: httpx.AsyncClient
) -> None:
    fake, channel = account
    spam = customer_comment(fake)

    first = await adapter.hide(client, channel, CREDENTIALS, spam["id"])
    again = await adapter.hide(client, channel, CREDENTIALS, spam["id"])

    assert first == again == Hidden(spam["id"])
    assert fake.comments[spam["id"]]["hidden"] is True
    assert len(fake.comments) == 1  # hidden, not deleted, and no reply


async def test_a_lost_answer_to_a_hide_is_retryable_and_the_retry_hides_it(
    account: tuple[FakeInstagramAccount, InstagramChannel], client: httpx.AsyncClient
) -> None:
    fake, channel = account
    spam = customer_comment(fake)
    fake.faults.hide_delay_s = 1.0

    first = await adapter.hide(client, channel, CREDENTIALS, spam["id"])
    retried = await adapter.hide(client, channel, CREDENTIALS, spam["id"])

    assert isinstance(first, Retryable)
    assert retried == Hidden(spam["id"])
    assert fake.hide_calls == 2


async def test_an_instagram_server_error_on_a_hide_is_retryable_not_unknown(
    account: tuple[FakeInstagramAccount, InstagramChannel], client: httpx.AsyncClient
) -> None:
    fake, channel = account
    spam = customer_comment(fake)
    fake.faults.errors["comment"] = [(500, -1, None, "Unexpected error", {})]

    outcome = await adapter.hide(client, channel, CREDENTIALS, spam["id"])

    assert isinstance(outcome, Retryable)
    assert fake.comments[spam["id"]]["hidden"] is False


async def test_hiding_a_comment_that_is_gone_is_rejected(
    account: tuple[FakeInstagramAccount, InstagramChannel], client: httpx.AsyncClient
) -> None:
    _, channel = account

    outcome = await adapter.hide(client, channel, CREDENTIALS, "17900000000000999")

    assert isinstance(outcome, Rejected)
    assert "Graph error 100" in outcome.reason


async def test_a_hide_with_an_invalid_token_needs_reconnecting(
    account: tuple[FakeInstagramAccount, InstagramChannel], client: httpx.AsyncClient
) -> None:
    fake, channel = account
    spam = customer_comment(fake)

    outcome = await adapter.hide(client, channel, {"access_token": "revoked"}, spam["id"])

    assert isinstance(outcome, NeedsReconnect)
    assert fake.comments[spam["id"]]["hidden"] is False
