"""The Bluesky publish adapter against a local PDS: what each answer means for the publisher, and
that an attempt whose outcome is unknown ends as exactly one post, because every attempt of one
publication writes under the same record key."""

from __future__ import annotations

import socket
from collections.abc import AsyncIterator
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from typing import Any

import httpx
import pytest

from services.publisher.adapters.base import (
    CredentialRefresher,
    CredentialsRejected,
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
from services.publisher.adapters.bluesky import (
    TID_ALPHABET,
    BlueskyChannel,
    BlueskyPublisher,
    record_key,
)
from tests.fakes.publish_bluesky import (
    ACCESS_LIFETIME_S,
    APP_PASSWORD,
    BRAND_DID,
    BRAND_HANDLE,
    FakeBlueskyPds,
)
from tests.fakes.server import serve

READ_TIMEOUT_S = 0.3  # the publisher's read timeout: "no answer" takes a fraction of a second
CREDENTIALS = {"identifier": BRAND_HANDLE, "app_password": APP_PASSWORD}
FAN_DID = "did:plc:fan00000000000000000000a"


@dataclass
class Pds:
    fake: FakeBlueskyPds
    channel: BlueskyChannel


@pytest.fixture
async def pds() -> AsyncIterator[Pds]:
    fake = FakeBlueskyPds()
    async with serve(fake.app) as url:
        yield Pds(fake, BlueskyChannel(service=url))


@pytest.fixture
async def client() -> AsyncIterator[httpx.AsyncClient]:
    async with httpx.AsyncClient(timeout=httpx.Timeout(5.0, read=READ_TIMEOUT_S)) as http:
        yield http


@pytest.fixture
def adapter() -> BlueskyPublisher:
    return BlueskyPublisher()


def request(text: str, key: str = "attempt-1", **extra: Any) -> PublishRequest:
    return PublishRequest(idempotency_key=key, text=text, **extra)


def rkey_of(outcome: Published) -> str:
    return outcome.remote_id.rsplit("/", 1)[-1]


# --- publishing ----------------------------------------------------------------------------------


async def test_publish_creates_one_post_with_facets_and_returns_its_uri_and_link(
    pds: Pds, client: httpx.AsyncClient, adapter: BlueskyPublisher
) -> None:
    pds.fake.handles["kate.bsky.social"] = FAN_DID
    text = "Spring sale with @kate.bsky.social https://acme.com/spring #Sale"

    outcome = await adapter.publish(client, pds.channel, CREDENTIALS, request(text, language="en"))

    assert isinstance(outcome, Published)
    [post] = pds.fake.posts()
    assert outcome.remote_id == f"at://{BRAND_DID}/app.bsky.feed.post/{rkey_of(outcome)}"
    assert outcome.url == f"https://bsky.app/profile/{BRAND_HANDLE}/post/{rkey_of(outcome)}"
    assert post["text"] == text
    assert post["langs"] == ["en"]
    features = [f["features"][0] for f in post["facets"]]
    assert features == [
        {"$type": "app.bsky.richtext.facet#mention", "did": FAN_DID},
        {"$type": "app.bsky.richtext.facet#link", "uri": "https://acme.com/spring"},
        {"$type": "app.bsky.richtext.facet#tag", "tag": "Sale"},
    ]
    assert "reply" not in post


async def test_the_session_is_reused_and_refreshed_not_signed_in_again(
    pds: Pds, client: httpx.AsyncClient, adapter: BlueskyPublisher
) -> None:
    first = await adapter.publish(client, pds.channel, CREDENTIALS, request("One", "k1"))
    pds.fake.expire_access_tokens()
    second = await adapter.publish(client, pds.channel, CREDENTIALS, request("Two", "k2"))

    assert isinstance(first, Published)
    assert isinstance(second, Published)
    assert [p["text"] for p in pds.fake.posts()] == ["One", "Two"]
    assert pds.fake.sign_ins == 1


async def test_a_reply_names_the_parent_and_the_threads_root(
    pds: Pds, client: httpx.AsyncClient, adapter: BlueskyPublisher
) -> None:
    root = pds.fake.add_post("3kroot0000000", "New sneakers!", did=BRAND_DID, handle=BRAND_HANDLE)
    question = pds.fake.add_post(
        "3kquestion000",
        "@acme.bsky.social where is my order?",
        did=FAN_DID,
        handle="kate.bsky.social",
        reply={"root": {"uri": root, "cid": "bafyrei3kroot0000000"}, "parent": {"uri": root}},
    )

    outcome = await adapter.publish(
        client,
        pds.channel,
        CREDENTIALS,
        request("It ships tomorrow", reply_to_external_id=question),
    )

    assert isinstance(outcome, Published)
    [reply] = pds.fake.posts()
    assert reply["reply"] == {
        "root": {"uri": root, "cid": "bafyrei3kroot0000000"},
        "parent": {"uri": question, "cid": "bafyrei3kquestion000"},
    }


async def test_a_reply_to_a_top_level_post_uses_it_as_root_and_parent(
    pds: Pds, client: httpx.AsyncClient, adapter: BlueskyPublisher
) -> None:
    post = pds.fake.add_post("3kpost0000000", "Hi @acme", did=FAN_DID, handle="kate.bsky.social")

    outcome = await adapter.publish(
        client, pds.channel, CREDENTIALS, request("Hello!", reply_to_external_id=post)
    )

    assert isinstance(outcome, Published)
    ref = {"uri": post, "cid": "bafyrei3kpost0000000"}
    assert pds.fake.posts()[0]["reply"] == {"root": ref, "parent": ref}


async def test_a_reply_to_a_post_that_is_gone_is_rejected(
    pds: Pds, client: httpx.AsyncClient, adapter: BlueskyPublisher
) -> None:
    gone = f"at://{FAN_DID}/app.bsky.feed.post/3kdeleted0000"

    outcome = await adapter.publish(
        client, pds.channel, CREDENTIALS, request("Hello!", reply_to_external_id=gone)
    )

    assert isinstance(outcome, Rejected)
    assert outcome.reason == "reply_target_not_found"
    assert pds.fake.posts() == []


async def test_text_over_the_limit_is_rejected_with_the_pds_message(
    pds: Pds, client: httpx.AsyncClient, adapter: BlueskyPublisher
) -> None:
    outcome = await adapter.publish(client, pds.channel, CREDENTIALS, request("a" * 301))

    assert isinstance(outcome, Rejected)
    assert outcome.network_message == (
        "Invalid app.bsky.feed.post record: Record/text must not be longer than 300 graphemes"
    )
    assert pds.fake.posts() == []


async def test_a_revoked_app_password_needs_reconnecting(
    pds: Pds, client: httpx.AsyncClient, adapter: BlueskyPublisher
) -> None:
    pds.fake.password_revoked = True

    outcome = await adapter.publish(client, pds.channel, CREDENTIALS, request("Hello"))

    assert isinstance(outcome, NeedsReconnect)
    assert "AuthenticationRequired" in outcome.reason
    assert pds.fake.posts() == []


async def test_429_is_rate_limited_until_the_ratelimit_reset(
    pds: Pds, client: httpx.AsyncClient, adapter: BlueskyPublisher
) -> None:
    pds.fake.rate_limited_for = 17

    outcome = await adapter.publish(client, pds.channel, CREDENTIALS, request("Hello"))

    assert isinstance(outcome, RateLimited)
    assert 15 <= outcome.retry_after_s <= 17
    assert pds.fake.posts() == []


async def test_a_refused_connection_is_retryable(
    client: httpx.AsyncClient, adapter: BlueskyPublisher
) -> None:
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        port = probe.getsockname()[1]
    channel = BlueskyChannel(service=f"http://127.0.0.1:{port}")

    outcome = await adapter.publish(client, channel, CREDENTIALS, request("Hello"))

    assert isinstance(outcome, Retryable)


# --- images --------------------------------------------------------------------------------------

SHOES = MediaUpload("shoes.jpg", "image/jpeg", b"\xff\xd8\xff shoes", "Red running shoes")
BOX = MediaUpload("box.png", "image/png", b"\x89PNG box")  # no alt text written


async def test_images_are_uploaded_and_embedded_with_their_alt_text(
    pds: Pds, client: httpx.AsyncClient, adapter: BlueskyPublisher
) -> None:
    outcome = await adapter.publish(
        client, pds.channel, CREDENTIALS, request("New shoes", media=[SHOES, BOX])
    )

    assert isinstance(outcome, Published)
    [post] = pds.fake.posts()
    assert post["text"] == "New shoes"
    assert post["embed"]["$type"] == "app.bsky.embed.images"
    assert pds.fake.image_files(post) == [
        ("image/jpeg", SHOES.data, "Red running shoes"),
        ("image/png", BOX.data, ""),
    ]


async def test_an_expired_session_during_an_upload_is_refreshed(
    pds: Pds, client: httpx.AsyncClient, adapter: BlueskyPublisher
) -> None:
    await adapter.publish(client, pds.channel, CREDENTIALS, request("One", "k1"))
    pds.fake.expire_access_tokens()

    outcome = await adapter.publish(
        client, pds.channel, CREDENTIALS, request("Two", "k2", media=[SHOES])
    )

    assert isinstance(outcome, Published)
    assert pds.fake.image_files(pds.fake.posts()[-1]) == [
        ("image/jpeg", SHOES.data, "Red running shoes")
    ]
    assert pds.fake.sign_ins == 1


async def test_a_reply_with_a_photo_keeps_the_thread_and_the_image(
    pds: Pds, client: httpx.AsyncClient, adapter: BlueskyPublisher
) -> None:
    question = pds.fake.add_post(
        "3kquestion000", "Which colours?", did=FAN_DID, handle="kate.bsky.social"
    )

    outcome = await adapter.publish(
        client,
        pds.channel,
        CREDENTIALS,
        request("This red one", media=[SHOES], reply_to_external_id=question),
    )

    assert isinstance(outcome, Published)
    [reply] = pds.fake.posts()
    ref = {"uri": question, "cid": "bafyrei3kquestion000"}
    assert reply["reply"] == {"root": ref, "parent": ref}
    assert pds.fake.image_files(reply) == [("image/jpeg", SHOES.data, "Red running shoes")]


@pytest.mark.parametrize(
    ("media", "reason"),
    [
        ([MediaUpload("launch.mp4", "video/mp4", b"\x00\x00\x00\x18ftyp")], "video_unsupported"),
        ([MediaUpload("dance.gif", "image/gif", b"GIF89a")], "video_unsupported"),
        ([MediaUpload("terms.pdf", "application/pdf", b"%PDF-1.7")], "media_type_unsupported"),
        ([SHOES] * 5, "too_many_images"),
    ],
)
async def test_media_bluesky_cannot_embed_is_refused_rather_than_posted_without_it(
    pds: Pds,
    client: httpx.AsyncClient,
    adapter: BlueskyPublisher,
    media: list[MediaUpload],
    reason: str,
) -> None:
    outcome = await adapter.publish(
        client, pds.channel, CREDENTIALS, request("Watch this", media=media)
    )

    assert isinstance(outcome, Rejected)
    assert outcome.reason == reason
    assert pds.fake.upload_calls == 0
    assert pds.fake.posts() == []


async def test_an_image_over_the_size_limit_is_rejected_with_the_pds_message(
    pds: Pds, client: httpx.AsyncClient, adapter: BlueskyPublisher
) -> None:
    poster = MediaUpload("poster.jpg", "image/jpeg", b"\xff" * 1_000_001, "Poster")

    outcome = await adapter.publish(
        client, pds.channel, CREDENTIALS, request("Poster", media=[poster])
    )

    assert isinstance(outcome, Rejected)
    assert outcome.network_message == (
        "This file is too large. It is 1000001 bytes but the maximum size is 1000000 bytes."
    )
    assert pds.fake.posts() == []


async def test_a_failed_upload_is_retryable_and_posts_nothing(
    pds: Pds, client: httpx.AsyncClient, adapter: BlueskyPublisher
) -> None:
    pds.fake.upload_outage = True
    attempt = request("New shoes", media=[SHOES], attempted_at=datetime.now(UTC))

    first = await adapter.publish(client, pds.channel, CREDENTIALS, attempt)
    pds.fake.upload_outage = False
    retried = await adapter.publish(client, pds.channel, CREDENTIALS, attempt)

    assert isinstance(first, Retryable)
    assert pds.fake.create_calls == 1  # only the retry got as far as the post
    assert isinstance(retried, Published)
    assert len(pds.fake.posts()) == 1


# --- unknown outcomes and reconciliation ---------------------------------------------------------


async def test_a_500_is_unknown_then_reconcile_finds_nothing_and_a_retry_publishes_once(
    pds: Pds, client: httpx.AsyncClient, adapter: BlueskyPublisher
) -> None:
    attempt = request("Launch day!", attempted_at=datetime.now(UTC))
    pds.fake.outage = True

    first = await adapter.publish(client, pds.channel, CREDENTIALS, attempt)
    found = await adapter.reconcile(client, pds.channel, CREDENTIALS, attempt)
    pds.fake.outage = False
    retried = await adapter.publish(client, pds.channel, CREDENTIALS, attempt)

    assert isinstance(first, Unknown)
    assert found is None
    assert isinstance(retried, Published)
    assert [p["text"] for p in pds.fake.posts()] == ["Launch day!"]


async def test_no_answer_after_the_write_is_unknown_and_reconcile_finds_the_post(
    pds: Pds, client: httpx.AsyncClient, adapter: BlueskyPublisher
) -> None:
    attempt = request("Launch day!", attempted_at=datetime.now(UTC))
    pds.fake.answer_delay_s = 1.5  # the PDS writes, then answers after the client gave up

    first = await adapter.publish(client, pds.channel, CREDENTIALS, attempt)
    found = await adapter.reconcile(client, pds.channel, CREDENTIALS, attempt)

    assert isinstance(first, Unknown)
    [(rkey, stored)] = pds.fake.records.items()
    assert found == Published(stored["uri"], f"https://bsky.app/profile/{BRAND_HANDLE}/post/{rkey}")


async def test_a_retry_after_an_unknown_outcome_never_creates_a_second_post(
    pds: Pds, client: httpx.AsyncClient, adapter: BlueskyPublisher
) -> None:
    attempt = request("Launch day!", attempted_at=datetime.now(UTC))
    pds.fake.answer_delay_s = 1.5

    first = await adapter.publish(client, pds.channel, CREDENTIALS, attempt)
    pds.fake.answer_delay_s = None
    retried = await adapter.publish(client, pds.channel, CREDENTIALS, attempt)
    again = await adapter.publish(client, pds.channel, CREDENTIALS, attempt)

    assert isinstance(first, Unknown)
    assert isinstance(retried, Published)
    assert again == retried
    assert pds.fake.create_calls == 3  # each retry reached the PDS and was refused the key
    assert [p["text"] for p in pds.fake.posts()] == ["Launch day!"]


async def test_no_answer_after_posting_images_is_reconciled_and_a_retry_adds_no_second_post(
    pds: Pds, client: httpx.AsyncClient, adapter: BlueskyPublisher
) -> None:
    attempt = request("New shoes", media=[SHOES, BOX], attempted_at=datetime.now(UTC))
    pds.fake.answer_delay_s = 1.5  # the PDS writes the post, then answers after the client gave up

    first = await adapter.publish(client, pds.channel, CREDENTIALS, attempt)
    found = await adapter.reconcile(client, pds.channel, CREDENTIALS, attempt)
    pds.fake.answer_delay_s = None
    retried = await adapter.publish(client, pds.channel, CREDENTIALS, attempt)

    assert isinstance(first, Unknown)
    assert isinstance(found, Published)
    assert retried == found
    [post] = pds.fake.posts()
    assert pds.fake.image_files(post) == [
        ("image/jpeg", SHOES.data, "Red running shoes"),
        ("image/png", BOX.data, ""),
    ]
    assert pds.fake.upload_calls == 4  # the retry uploaded again; the unused blobs are harmless


async def test_reconcile_that_cannot_sign_in_raises_instead_of_saying_none(
    pds: Pds, client: httpx.AsyncClient, adapter: BlueskyPublisher
) -> None:
    pds.fake.password_revoked = True

    with pytest.raises(ReconcileFailed) as failed:
        await adapter.reconcile(client, pds.channel, CREDENTIALS, request("Hello"))

    assert isinstance(failed.value.outcome, NeedsReconnect)


# --- credential refresh --------------------------------------------------------------------------


async def test_refresh_rotates_the_stored_session_and_says_when_the_access_token_lapses(
    pds: Pds, client: httpx.AsyncClient, adapter: BlueskyPublisher
) -> None:
    stored = (await adapter.refresh_credentials(client, pds.channel, CREDENTIALS)).credentials
    before = datetime.now(UTC)

    refreshed = await BlueskyPublisher().refresh_credentials(client, pds.channel, stored)

    assert isinstance(adapter, CredentialRefresher)
    assert (pds.fake.sign_ins, pds.fake.refreshes) == (1, 1)  # the second one used refresh_jwt
    fresh = refreshed.credentials
    assert fresh["access_jwt"] != stored["access_jwt"]
    assert fresh["refresh_jwt"] != stored["refresh_jwt"]
    assert (fresh["did"], fresh["handle"]) == (BRAND_DID, BRAND_HANDLE)
    assert (fresh["identifier"], fresh["app_password"]) == (BRAND_HANDLE, APP_PASSWORD)
    assert refreshed.expires_at is not None
    lifetime = refreshed.expires_at - before
    assert timedelta(seconds=ACCESS_LIFETIME_S - 5) <= lifetime
    assert lifetime <= timedelta(seconds=ACCESS_LIFETIME_S + 1)


async def test_refresh_signs_in_again_when_the_refresh_token_is_spent(
    pds: Pds, client: httpx.AsyncClient, adapter: BlueskyPublisher
) -> None:
    stored = (await adapter.refresh_credentials(client, pds.channel, CREDENTIALS)).credentials
    await BlueskyPublisher().refresh_credentials(client, pds.channel, stored)

    # Another copy of the same, older credentials: its refresh token was used up just above.
    refreshed = await BlueskyPublisher().refresh_credentials(client, pds.channel, stored)

    assert pds.fake.sign_ins == 2
    outcome = await BlueskyPublisher().publish(
        client, pds.channel, refreshed.credentials, request("Hi")
    )
    assert isinstance(outcome, Published)


async def test_a_revoked_app_password_makes_refresh_say_the_channel_needs_reconnecting(
    pds: Pds, client: httpx.AsyncClient, adapter: BlueskyPublisher
) -> None:
    stored = (await adapter.refresh_credentials(client, pds.channel, CREDENTIALS)).credentials
    pds.fake.password_revoked = True  # revoking an app password ends its sessions too

    with pytest.raises(CredentialsRejected) as rejected:
        await BlueskyPublisher().refresh_credentials(client, pds.channel, stored)

    assert "AuthenticationRequired" in rejected.value.reason


async def test_a_spent_refresh_token_without_an_app_password_needs_reconnecting(
    pds: Pds, client: httpx.AsyncClient, adapter: BlueskyPublisher
) -> None:
    stored = (await adapter.refresh_credentials(client, pds.channel, CREDENTIALS)).credentials
    tokens_only = {k: v for k, v in stored.items() if k != "app_password"}
    await BlueskyPublisher().refresh_credentials(client, pds.channel, tokens_only)

    with pytest.raises(CredentialsRejected) as rejected:
        await BlueskyPublisher().refresh_credentials(client, pds.channel, tokens_only)

    assert "app password" in rejected.value.reason


async def test_a_rate_limited_refresh_is_an_http_error_to_retry_not_a_rejection(
    pds: Pds, client: httpx.AsyncClient, adapter: BlueskyPublisher
) -> None:
    stored = (await adapter.refresh_credentials(client, pds.channel, CREDENTIALS)).credentials
    pds.fake.sessions_rate_limited = True

    with pytest.raises(httpx.HTTPStatusError) as failed:
        await BlueskyPublisher().refresh_credentials(client, pds.channel, stored)

    assert failed.value.response.status_code == 429
    assert failed.value.response.headers["ratelimit-reset"]
    pds.fake.sessions_rate_limited = False
    # Nothing was spent: the same stored credentials refresh once the limit passes.
    again = await BlueskyPublisher().refresh_credentials(client, pds.channel, stored)
    assert again.credentials["refresh_jwt"] != stored["refresh_jwt"]
    assert pds.fake.sign_ins == 1


async def test_publish_after_a_restart_uses_the_refreshed_tokens_without_a_new_session(
    pds: Pds, client: httpx.AsyncClient, adapter: BlueskyPublisher
) -> None:
    refreshed = await adapter.refresh_credentials(client, pds.channel, CREDENTIALS)
    opened = pds.fake.session_count()

    restarted = BlueskyPublisher()
    outcome = await restarted.publish(client, pds.channel, refreshed.credentials, request("Hi"))

    assert isinstance(outcome, Published)
    assert [p["text"] for p in pds.fake.posts()] == ["Hi"]
    assert pds.fake.session_count() == opened


async def test_a_running_publisher_takes_tokens_refreshed_elsewhere_over_its_spent_session(
    pds: Pds, client: httpx.AsyncClient, adapter: BlueskyPublisher
) -> None:
    refresh_job = BlueskyPublisher()
    first = (await refresh_job.refresh_credentials(client, pds.channel, CREDENTIALS)).credentials
    await adapter.publish(client, pds.channel, first, request("One", "k1"))
    pds.fake.expire_access_tokens()
    # The job spends the publisher's refresh token; the publisher gets the result next time.
    second = (await refresh_job.refresh_credentials(client, pds.channel, first)).credentials

    outcome = await adapter.publish(client, pds.channel, second, request("Two", "k2"))

    assert isinstance(outcome, Published)
    assert [p["text"] for p in pds.fake.posts()] == ["One", "Two"]
    assert (pds.fake.sign_ins, pds.fake.refreshes) == (1, 1)  # no sign-in to recover


def test_the_record_key_is_a_tid_of_the_attempt_and_differs_per_publication() -> None:
    at = datetime(2026, 3, 1, 9, 30, 15, 123000, tzinfo=UTC)
    one = record_key(request("Hi", "post-1:channel-7", attempted_at=at))
    decoded = 0
    for char in one:
        decoded = decoded * 32 + TID_ALPHABET.index(char)

    assert len(one) == 13
    assert one[0] in TID_ALPHABET[:16]  # a TID's top bit is 0
    assert one == record_key(request("Edited text", "post-1:channel-7", attempted_at=at))
    assert (decoded >> 10) // 1000 == int(at.timestamp() * 1000)
    assert one != record_key(request("Hi", "post-2:channel-7", attempted_at=at))
    assert record_key(request("Hi", "k")) == record_key(request("Hi", "k"))
