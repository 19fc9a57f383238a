"""Reading what a published post achieved: the Mastodon adapter against the sandbox network (run
in-process) and the Bluesky adapter against the fake PDS, each giving the post's counters and the
channel's followers, and saying when the network cannot be read or no longer has the post."""

from __future__ import annotations

import socket
from collections.abc import AsyncIterator
from typing import Any

import httpx
import pytest

from devstack.sandbox import SandboxConfig, create_app
from services.publisher.adapters import PUBLISH_ADAPTERS
from services.publisher.adapters.base import (
    Engagement,
    EngagementReader,
    EngagementUnavailable,
    NeedsReconnect,
    Published,
    PublishRequest,
    RateLimited,
    Rejected,
    Retryable,
)
from services.publisher.adapters.bluesky import BlueskyChannel, BlueskyPublisher
from services.publisher.adapters.mastodon import MastodonChannel, MastodonPublisher
from tests.fakes.publish_bluesky import APP_PASSWORD, BRAND_HANDLE, FakeBlueskyPds
from tests.fakes.server import serve


@pytest.fixture
async def client() -> AsyncIterator[httpx.AsyncClient]:
    async with httpx.AsyncClient(timeout=5.0) as http:
        yield http


def test_the_networks_that_report_engagement_are_mastodon_and_bluesky() -> None:
    readers = sorted(n for n, a in PUBLISH_ADAPTERS.items() if isinstance(a, EngagementReader))
    assert readers == ["bluesky", "mastodon"]


# --- Mastodon ------------------------------------------------------------------------------------


class Sandbox:
    def __init__(self, url: str, http: httpx.AsyncClient) -> None:
        self.url, self.http = url, http

    async def account(self, username: str, **extra: Any) -> tuple[str, str]:
        created = await self.http.post(
            f"{self.url}/sandbox/accounts", json={"username": username, **extra}
        )
        created.raise_for_status()
        return created.json()["id"], created.json()["access_token"]

    async def act(self, token: str, path: str, **body: Any) -> dict[str, Any]:
        response = await self.http.post(
            f"{self.url}{path}", json=body, headers={"Authorization": f"Bearer {token}"}
        )
        response.raise_for_status()
        answer: dict[str, Any] = response.json()
        return answer


@pytest.fixture
async def sandbox() -> AsyncIterator[Sandbox]:
    async with serve(create_app(SandboxConfig())) as url, httpx.AsyncClient() as http:
        yield Sandbox(url, http)


async def test_mastodon_counts_favourites_reblogs_replies_and_the_accounts_followers(
    sandbox: Sandbox, client: httpx.AsyncClient
) -> None:
    brand_id, brand = await sandbox.account("acme", followers_count=120)
    fans = [(await sandbox.account(name))[1] for name in ("ann", "bob", "cid")]
    adapter = MastodonPublisher()
    channel = MastodonChannel(api_base=sandbox.url, account_id=brand_id)
    published = await adapter.publish(
        client, channel, {"access_token": brand}, PublishRequest("k-1", "Spring sale!")
    )
    assert isinstance(published, Published)
    status = published.remote_id
    for fan in fans:
        await sandbox.act(fan, f"/api/v1/statuses/{status}/favourite")
    await sandbox.act(fans[0], f"/api/v1/statuses/{status}/favourite")  # counted once
    await sandbox.act(fans[1], f"/api/v1/statuses/{status}/reblog")
    await sandbox.act(fans[2], "/api/v1/statuses", status="Love it", in_reply_to_id=status)
    await sandbox.act(fans[0], f"/api/v1/accounts/{brand_id}/follow")

    measured = await adapter.fetch_engagement(client, channel, {"access_token": brand}, status)

    assert measured == Engagement(likes=3, reposts=1, replies=1, views=None, followers=121)


async def test_mastodon_without_an_account_id_reads_followers_from_verify_credentials(
    sandbox: Sandbox, client: httpx.AsyncClient
) -> None:
    _, brand = await sandbox.account("acme", followers_count=7)
    status = await sandbox.act(brand, "/api/v1/statuses", status="Hello")
    channel = MastodonChannel(api_base=sandbox.url)

    measured = await MastodonPublisher().fetch_engagement(
        client, channel, {"access_token": brand}, status["id"]
    )

    assert measured == Engagement(likes=0, reposts=0, replies=0, followers=7)


async def test_mastodon_a_deleted_status_is_gone_and_a_revoked_token_needs_reconnecting(
    sandbox: Sandbox, client: httpx.AsyncClient
) -> None:
    brand_id, brand = await sandbox.account("acme")
    status = await sandbox.act(brand, "/api/v1/statuses", status="Oops")
    deleted = await sandbox.http.delete(
        f"{sandbox.url}/api/v1/statuses/{status['id']}",
        headers={"Authorization": f"Bearer {brand}"},
    )
    deleted.raise_for_status()
    channel = MastodonChannel(api_base=sandbox.url, account_id=brand_id)
    adapter = MastodonPublisher()

    with pytest.raises(EngagementUnavailable) as gone:
        await adapter.fetch_engagement(client, channel, {"access_token": brand}, status["id"])
    assert isinstance(gone.value.outcome, Rejected)

    await sandbox.http.post(f"{sandbox.url}/sandbox/accounts/{brand_id}/revoke")
    with pytest.raises(EngagementUnavailable) as refused:
        await adapter.fetch_engagement(client, channel, {"access_token": brand}, "1")
    assert isinstance(refused.value.outcome, NeedsReconnect)


async def test_mastodon_rate_limit_and_outage_are_retried_later(
    sandbox: Sandbox, client: httpx.AsyncClient
) -> None:
    brand_id, brand = await sandbox.account("acme")
    status = await sandbox.act(brand, "/api/v1/statuses", status="Hi")
    channel = MastodonChannel(api_base=sandbox.url, account_id=brand_id)
    adapter = MastodonPublisher()
    faults: list[tuple[dict[str, Any], type]] = [
        ({"kind": "rate_limit", "retry_after_s": 40}, RateLimited),
        ({"kind": "server_error", "status": 503}, Retryable),
    ]
    for fault, expected in faults:
        added = await sandbox.http.post(
            f"{sandbox.url}/sandbox/faults", json={**fault, "path_prefix": "/api/v1/statuses"}
        )
        added.raise_for_status()
        with pytest.raises(EngagementUnavailable) as failed:
            await adapter.fetch_engagement(client, channel, {"access_token": brand}, status["id"])
        assert isinstance(failed.value.outcome, expected)
        if isinstance(failed.value.outcome, RateLimited):
            assert failed.value.outcome.retry_after_s == pytest.approx(40, abs=1)


async def test_mastodon_an_unreachable_server_is_retryable(client: httpx.AsyncClient) -> None:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        port = sock.getsockname()[1]
    channel = MastodonChannel(api_base=f"http://127.0.0.1:{port}", account_id="1")
    with pytest.raises(EngagementUnavailable) as failed:
        await MastodonPublisher().fetch_engagement(client, channel, {"access_token": "t"}, "1")
    assert isinstance(failed.value.outcome, Retryable)


# --- Bluesky -------------------------------------------------------------------------------------


@pytest.fixture
async def pds() -> AsyncIterator[tuple[FakeBlueskyPds, BlueskyChannel]]:
    fake = FakeBlueskyPds(followers=250)
    async with serve(fake.app) as url:
        yield fake, BlueskyChannel(service=url)


CREDENTIALS = {"identifier": BRAND_HANDLE, "app_password": APP_PASSWORD}


async def test_bluesky_counts_likes_reposts_with_quotes_replies_and_followers(
    pds: tuple[FakeBlueskyPds, BlueskyChannel], client: httpx.AsyncClient
) -> None:
    fake, channel = pds
    adapter = BlueskyPublisher()
    published = await adapter.publish(
        client, channel, CREDENTIALS, PublishRequest("k-1", "Spring sale!")
    )
    assert isinstance(published, Published)
    rkey = published.remote_id.rsplit("/", 1)[-1]
    fake.counts[rkey] = {"likeCount": 12, "repostCount": 3, "replyCount": 4, "quoteCount": 2}

    measured = await adapter.fetch_engagement(client, channel, CREDENTIALS, published.remote_id)

    assert measured == Engagement(likes=12, reposts=5, replies=4, views=None, followers=250)


async def test_bluesky_a_post_that_is_gone_stops_and_an_outage_is_retryable(
    pds: tuple[FakeBlueskyPds, BlueskyChannel], client: httpx.AsyncClient
) -> None:
    fake, channel = pds
    adapter = BlueskyPublisher()
    gone_uri = f"at://{fake.did}/app.bsky.feed.post/3kgonepost222"
    with pytest.raises(EngagementUnavailable) as gone:
        await adapter.fetch_engagement(client, channel, CREDENTIALS, gone_uri)
    assert isinstance(gone.value.outcome, Rejected)

    fake.reads_outage = True
    with pytest.raises(EngagementUnavailable) as outage:
        await adapter.fetch_engagement(client, channel, CREDENTIALS, gone_uri)
    assert isinstance(outage.value.outcome, Retryable)


async def test_bluesky_a_revoked_app_password_needs_reconnecting(
    pds: tuple[FakeBlueskyPds, BlueskyChannel], client: httpx.AsyncClient
) -> None:
    fake, channel = pds
    fake.password_revoked = True
    with pytest.raises(EngagementUnavailable) as refused:
        await BlueskyPublisher().fetch_engagement(
            client, channel, CREDENTIALS, f"at://{fake.did}/app.bsky.feed.post/3kabc"
        )
    assert isinstance(refused.value.outcome, NeedsReconnect)
