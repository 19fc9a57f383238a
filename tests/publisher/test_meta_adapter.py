"""The Meta (Facebook Page) publish adapter against a local Graph API: what each answer means for
the publisher, replies land as comments, an attempt whose answer was lost is reconciled into
exactly one post (the Graph API has no idempotency key, so reconcile is what prevents a second),
and a customer's comment is hidden on request, once or twice alike."""

from __future__ import annotations

import json
import socket
from collections.abc import AsyncIterator
from datetime import UTC, datetime, timedelta
from typing import Any

import httpx
import pytest

from services.publisher.adapters.base import (
    CredentialRefresher,
    CredentialsRejected,
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
from services.publisher.adapters.meta import MetaPageChannel, MetaPagePublisher
from tests.fakes.publish_meta import APP_ID, APP_SECRET, LONG_LIVED_S, FakeGraphPage
from tests.fakes.server import serve
from tests.support import wait_until

READ_TIMEOUT_S = 0.3
PAGE_ID = "104857600123456"
TOKEN = "EAAB-page-token"
CREDENTIALS = {"access_token": TOKEN}
CUSTOMER = "5550001"
REFRESHABLE = {**CREDENTIALS, "app_id": APP_ID, "app_secret": APP_SECRET}

adapter = MetaPagePublisher()


@pytest.fixture
async def page() -> AsyncIterator[tuple[FakeGraphPage, MetaPageChannel]]:
    fake = FakeGraphPage(TOKEN, PAGE_ID)
    async with serve(fake.app) as url:
        yield fake, MetaPageChannel(page_id=PAGE_ID, graph_base=url)


@pytest.fixture
async def client() -> AsyncIterator[httpx.AsyncClient]:
    async with httpx.AsyncClient(timeout=httpx.Timeout(5.0, read=READ_TIMEOUT_S)) as http:
        yield http


def request(text: str, key: str = "attempt-1", **extra: Any) -> PublishRequest:
    return PublishRequest(idempotency_key=key, text=text, **extra)


async def page_posts(fake: FakeGraphPage, count: int) -> list[dict[str, Any]]:
    """The Page's own posts once there are `count` of them."""

    async def enough() -> list[dict[str, Any]]:
        ours = [i for i in fake.of(None) if i["from"]["id"] == PAGE_ID]
        return ours if len(ours) >= count else []

    return await wait_until(enough, timeout_s=5, interval_s=0.02, what=f"{count} posts")


# --- publishing ----------------------------------------------------------------------------------


async def test_publish_creates_one_page_post_with_its_id_and_link(
    page: tuple[FakeGraphPage, MetaPageChannel], client: httpx.AsyncClient
) -> None:
    fake, channel = page

    outcome = await adapter.publish(client, channel, CREDENTIALS, request("Spring sale today"))

    assert isinstance(outcome, Published)
    [post] = fake.of(None)
    assert outcome == Published(post["id"], f"https://www.facebook.com/{post['id']}")
    assert post["message"] == "Spring sale today"
    assert post["from"]["id"] == PAGE_ID


async def test_a_reply_is_a_comment_on_the_customers_comment(
    page: tuple[FakeGraphPage, MetaPageChannel], client: httpx.AsyncClient
) -> None:
    fake, channel = page
    post = fake.add("New arrivals", PAGE_ID)
    question = fake.add("Where is my order?", CUSTOMER, parent=post["id"])

    outcome = await adapter.publish(
        client,
        channel,
        CREDENTIALS,
        request("It ships tomorrow", reply_to_external_id=question["id"]),
    )

    assert isinstance(outcome, Published)
    [reply] = fake.of(question["id"])
    assert outcome.remote_id == reply["id"]
    assert reply["from"]["id"] == PAGE_ID
    assert len(fake.of(None)) == 1  # no new post on the Page


async def test_a_message_meta_refuses_is_rejected_with_metas_words(
    page: tuple[FakeGraphPage, MetaPageChannel], client: httpx.AsyncClient
) -> None:
    fake, channel = page

    outcome = await adapter.publish(client, channel, CREDENTIALS, request("  "))

    message = "(#100) Missing message or attachment"
    assert outcome == Rejected(f"HTTP 400: Graph error 100: {message}", message)
    assert fake.items == {}


async def test_an_expired_page_token_needs_reconnecting(
    page: tuple[FakeGraphPage, MetaPageChannel], client: httpx.AsyncClient
) -> None:
    fake, channel = page

    outcome = await adapter.publish(client, channel, {"access_token": "expired"}, request("Hi"))

    assert isinstance(outcome, NeedsReconnect)
    assert "Graph error 190" in outcome.reason
    assert fake.items == {}


async def test_a_rate_limit_waits_as_long_as_meta_estimates(
    page: tuple[FakeGraphPage, MetaPageChannel], client: httpx.AsyncClient
) -> None:
    fake, channel = page
    usage = {PAGE_ID: [{"type": "pages", "call_count": 100, "estimated_time_to_regain_access": 7}]}
    fake.faults.errors.append(
        (400, 32, "Page request limit reached", {"X-Business-Use-Case-Usage": json.dumps(usage)})
    )

    outcome = await adapter.publish(client, channel, CREDENTIALS, request("Hi"))

    assert outcome == RateLimited(7 * 60)
    assert fake.items == {}


async def test_a_429_is_rate_limited_for_as_long_as_retry_after_says(
    page: tuple[FakeGraphPage, MetaPageChannel], client: httpx.AsyncClient
) -> None:
    fake, channel = page
    fake.faults.errors.append((429, 4, "Application request limit reached", {"Retry-After": "30"}))

    outcome = await adapter.publish(client, channel, CREDENTIALS, request("Hi"))

    assert outcome == RateLimited(30)


async def test_a_refused_connection_is_retryable(client: httpx.AsyncClient) -> None:
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        port = probe.getsockname()[1]
    channel = MetaPageChannel(page_id=PAGE_ID, graph_base=f"http://127.0.0.1:{port}")

    outcome = await adapter.publish(client, channel, CREDENTIALS, request("Hi"))

    assert isinstance(outcome, Retryable)


async def test_media_is_refused_rather_than_published_without_it(
    page: tuple[FakeGraphPage, MetaPageChannel], client: httpx.AsyncClient
) -> None:
    fake, channel = page
    photo = MediaUpload("shoes.jpg", "image/jpeg", b"\xff\xd8\xff", "red shoes")

    outcome = await adapter.publish(client, channel, CREDENTIALS, request("Shoes", media=[photo]))

    assert isinstance(outcome, Rejected)
    assert outcome.reason == "media_unsupported"
    assert fake.items == {}


# --- unknown outcomes and reconciliation ---------------------------------------------------------


async def test_a_503_is_unknown_then_reconcile_finds_nothing_and_a_retry_publishes_once(
    page: tuple[FakeGraphPage, MetaPageChannel], client: httpx.AsyncClient
) -> None:
    fake, channel = page
    attempt = request("Launch day!", attempted_at=datetime.now(UTC))
    fake.faults.http_status = 503  # refused before the write

    first = await adapter.publish(client, channel, CREDENTIALS, attempt)
    found = await adapter.reconcile(client, channel, CREDENTIALS, attempt)
    retried = await adapter.publish(client, channel, CREDENTIALS, attempt)

    assert isinstance(first, Unknown)
    assert found is None
    assert isinstance(retried, Published)
    assert len(fake.items) == 1


async def test_no_answer_after_sending_is_unknown_and_reconcile_finds_the_post_instead_of_a_retry(
    page: tuple[FakeGraphPage, MetaPageChannel], client: httpx.AsyncClient
) -> None:
    fake, channel = page
    fake.add("Launch day!", PAGE_ID, created=datetime.now(UTC) - timedelta(days=1))
    fake.add("Launch day!", CUSTOMER)  # a visitor's post with the same words
    attempt = request("Launch day!", attempted_at=datetime.now(UTC))
    fake.faults.delay_s = 1.0

    first = await adapter.publish(client, channel, CREDENTIALS, attempt)
    [*_, created] = await page_posts(fake, 2)
    found = await adapter.reconcile(client, channel, CREDENTIALS, attempt)

    assert isinstance(first, Unknown)
    assert found == Published(created["id"], f"https://www.facebook.com/{created['id']}")
    # Found, so the publisher records it instead of publishing again: one launch post.
    launch = [i for i in fake.of(None) if i["from"]["id"] == PAGE_ID]
    assert len(launch) == 2  # yesterday's and today's, once


async def test_reconcile_finds_a_reply_among_the_comments_it_answered(
    page: tuple[FakeGraphPage, MetaPageChannel], client: httpx.AsyncClient
) -> None:
    fake, channel = page
    post = fake.add("New arrivals", PAGE_ID)
    question = fake.add("Do you ship abroad?", CUSTOMER, parent=post["id"])
    fake.add("Yes, we do", CUSTOMER, parent=question["id"])  # not the Page's words
    reply = request("Yes, we do", reply_to_external_id=question["id"])

    before = await adapter.reconcile(client, channel, CREDENTIALS, reply)
    fake.faults.delay_s = 1.0
    first = await adapter.publish(client, channel, CREDENTIALS, reply)
    after = await adapter.reconcile(client, channel, CREDENTIALS, reply)

    assert before is None
    assert isinstance(first, Unknown)
    ours = [c for c in fake.of(question["id"]) if c["from"]["id"] == PAGE_ID]
    assert len(ours) == 1
    assert after == Published(ours[0]["id"], f"https://www.facebook.com/{ours[0]['id']}")


async def test_reconcile_pages_back_to_the_attempt(
    page: tuple[FakeGraphPage, MetaPageChannel], client: httpx.AsyncClient
) -> None:
    fake, channel = page
    start = datetime.now(UTC) - timedelta(minutes=1)
    fake.add("The one we are looking for", PAGE_ID, created=start)
    for number in range(120):  # more than one page of newer posts
        fake.add(f"Update {number}", PAGE_ID, created=start + timedelta(seconds=number + 1))
    attempt = request("The one we are looking for", attempted_at=start)

    found = await adapter.reconcile(client, channel, CREDENTIALS, attempt)

    assert found is not None
    assert fake.items[found.remote_id]["message"] == "The one we are looking for"


async def test_reconcile_ignores_the_same_text_posted_before_the_attempt(
    page: tuple[FakeGraphPage, MetaPageChannel], client: httpx.AsyncClient
) -> None:
    fake, channel = page
    fake.add("Good morning!", PAGE_ID)

    later = request("Good morning!", attempted_at=datetime.now(UTC) + timedelta(days=1))

    assert await adapter.reconcile(client, channel, CREDENTIALS, later) is None


async def test_reconcile_that_cannot_read_the_page_raises_instead_of_saying_none(
    page: tuple[FakeGraphPage, MetaPageChannel], client: httpx.AsyncClient
) -> None:
    _, channel = page

    with pytest.raises(ReconcileFailed) as failed:
        await adapter.reconcile(client, channel, {"access_token": "expired"}, request("Hi"))

    assert isinstance(failed.value.outcome, NeedsReconnect)


# --- credential refresh --------------------------------------------------------------------------


async def test_refresh_exchanges_the_token_for_a_new_one_that_publishes_and_says_when_it_lapses(
    page: tuple[FakeGraphPage, MetaPageChannel], client: httpx.AsyncClient
) -> None:
    fake, channel = page
    before = datetime.now(UTC)

    refreshed = await adapter.refresh_credentials(client, channel, REFRESHABLE)

    assert isinstance(adapter, CredentialRefresher)
    fresh = refreshed.credentials
    assert fresh["access_token"] != TOKEN
    assert (fresh["app_id"], fresh["app_secret"]) == (APP_ID, APP_SECRET)
    assert refreshed.expires_at is not None
    lifetime = refreshed.expires_at - before
    assert timedelta(seconds=LONG_LIVED_S) <= lifetime <= timedelta(seconds=LONG_LIVED_S + 5)
    outcome = await adapter.publish(client, channel, fresh, request("Fresh token"))
    assert isinstance(outcome, Published)
    assert fake.exchanges == 1


async def test_a_token_that_never_expires_is_refreshed_without_an_expiry(
    page: tuple[FakeGraphPage, MetaPageChannel], client: httpx.AsyncClient
) -> None:
    fake, channel = page
    fake.token_lifetime_s = None  # Meta leaves out expires_in

    refreshed = await adapter.refresh_credentials(client, channel, REFRESHABLE)

    assert refreshed.expires_at is None
    assert refreshed.credentials["access_token"] != TOKEN


async def test_a_revoked_token_makes_refresh_say_the_channel_needs_reconnecting(
    page: tuple[FakeGraphPage, MetaPageChannel], client: httpx.AsyncClient
) -> None:
    fake, channel = page
    fake.revoke_tokens()

    with pytest.raises(CredentialsRejected) as rejected:
        await adapter.refresh_credentials(client, channel, REFRESHABLE)

    assert "Graph error 190" in rejected.value.reason
    assert fake.exchanges == 0


async def test_credentials_without_the_app_secret_cannot_be_refreshed(
    page: tuple[FakeGraphPage, MetaPageChannel], client: httpx.AsyncClient
) -> None:
    fake, channel = page

    with pytest.raises(CredentialsRejected) as rejected:
        await adapter.refresh_credentials(client, channel, CREDENTIALS)

    assert "app_id, app_secret" in rejected.value.reason
    assert fake.exchanges == 0


async def test_a_rate_limited_exchange_is_an_http_error_to_retry_not_a_rejection(
    page: tuple[FakeGraphPage, MetaPageChannel], client: httpx.AsyncClient
) -> None:
    fake, channel = page
    fake.exchange_errors.append(
        (400, 4, "(#4) Application request limit reached", {"Retry-After": "120"})
    )

    with pytest.raises(httpx.HTTPStatusError) as failed:
        await adapter.refresh_credentials(client, channel, REFRESHABLE)

    assert failed.value.response.headers["retry-after"] == "120"
    retried = await adapter.refresh_credentials(client, channel, REFRESHABLE)
    assert retried.credentials["access_token"] != TOKEN


# --- hiding comments -----------------------------------------------------------------------------


def customer_comment(fake: FakeGraphPage) -> dict[str, Any]:
    post = fake.add("New arrivals", PAGE_ID)
    return fake.add("Cheap followers at spam.example", CUSTOMER, parent=post["id"])


async def test_hiding_a_customers_comment_hides_it_on_the_page(
    page: tuple[FakeGraphPage, MetaPageChannel], client: httpx.AsyncClient
) -> None:
    fake, channel = page
    spam = customer_comment(fake)

    outcome = await adapter.hide(client, channel, CREDENTIALS, spam["id"])

    assert outcome == Hidden(spam["id"])
    assert fake.items[spam["id"]]["is_hidden"] is True
    assert len(fake.items) == 2  # hidden, not deleted, and nothing posted


async def test_hiding_a_comment_that_is_already_hidden_succeeds(
    page: tuple[FakeGraphPage, MetaPageChannel], client: httpx.AsyncClient
) -> None:
    fake, channel = page
    spam = customer_comment(fake)

    first = await adapter.hide(client, channel, CREDENTIALS, spam["id"])
    again = await adapter.hide(client, channel, CREDENTIALS, spam["id"])

    assert first == again == Hidden(spam["id"])
    assert fake.items[spam["id"]]["is_hidden"] is True


async def test_a_lost_answer_to_a_hide_is_retryable_and_the_retry_hides_it(
    page: tuple[FakeGraphPage, MetaPageChannel], client: httpx.AsyncClient
) -> None:
    fake, channel = page
    spam = customer_comment(fake)
    fake.faults.delay_s = 1.0  # hidden, then the answer comes too late

    first = await adapter.hide(client, channel, CREDENTIALS, spam["id"])
    retried = await adapter.hide(client, channel, CREDENTIALS, spam["id"])

    # Not `Unknown`: a hide sets a state, so the publisher sends it again instead of reconciling.
    assert isinstance(first, Retryable)
    assert retried == Hidden(spam["id"])
    assert fake.items[spam["id"]]["is_hidden"] is True


async def test_a_503_to_a_hide_is_retryable_not_unknown(
    page: tuple[FakeGraphPage, MetaPageChannel], client: httpx.AsyncClient
) -> None:
    fake, channel = page
    spam = customer_comment(fake)
    fake.faults.http_status = 503

    outcome = await adapter.hide(client, channel, CREDENTIALS, spam["id"])

    assert isinstance(outcome, Retryable)
    assert fake.items[spam["id"]]["is_hidden"] is False


async def test_hiding_a_comment_that_is_gone_is_rejected_with_metas_words(
    page: tuple[FakeGraphPage, MetaPageChannel], client: httpx.AsyncClient
) -> None:
    _, channel = page

    outcome = await adapter.hide(client, channel, CREDENTIALS, "111_222")

    assert isinstance(outcome, Rejected)
    assert "Graph error 100" in outcome.reason
    assert outcome.network_message is not None
    assert "'111_222' does not exist" in outcome.network_message


async def test_a_hide_with_an_expired_token_needs_reconnecting(
    page: tuple[FakeGraphPage, MetaPageChannel], client: httpx.AsyncClient
) -> None:
    fake, channel = page
    spam = customer_comment(fake)

    outcome = await adapter.hide(client, channel, {"access_token": "expired"}, spam["id"])

    assert isinstance(outcome, NeedsReconnect)
    assert fake.items[spam["id"]]["is_hidden"] is False


async def test_a_rate_limited_hide_waits_as_long_as_retry_after_says(
    page: tuple[FakeGraphPage, MetaPageChannel], client: httpx.AsyncClient
) -> None:
    fake, channel = page
    spam = customer_comment(fake)
    fake.faults.errors.append((400, 32, "Page request limit reached", {"Retry-After": "90"}))

    outcome = await adapter.hide(client, channel, CREDENTIALS, spam["id"])

    assert outcome == RateLimited(90)
    assert fake.items[spam["id"]]["is_hidden"] is False
