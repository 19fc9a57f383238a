"""The Mastodon connector against the sandbox network (the dev stack's Mastodon API subset) run
in-process: paging, cursor resumption, normalisation, and the errors the scheduler acts on."""

from __future__ import annotations

import json
from collections.abc import AsyncIterator
from dataclasses import dataclass, field
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import httpx
import pytest
from pydantic import ValidationError
from starlette.applications import Starlette
from starlette.requests import Request
from starlette.responses import JSONResponse
from starlette.routing import Route

from devstack.sandbox import SandboxConfig, create_app
from services.ingest.connectors.base import (
    AuthFailed,
    FetchedMention,
    Media,
    PullResult,
    RateLimited,
    TransientError,
)
from services.ingest.connectors.mastodon import (
    MastodonConfig,
    MastodonConnector,
    mention_from_status,
)
from tests.fakes.server import serve

FIXTURES = Path(__file__).resolve().parents[1] / "fixtures" / "mastodon"


def load_fixture(name: str) -> dict[str, Any]:
    data: dict[str, Any] = json.loads((FIXTURES / name).read_text())
    return data


@dataclass
class Network:
    """The sandbox served on loopback, and the calls a test makes to set the scene."""

    url: str
    http: httpx.AsyncClient

    async def account(self, username: str, **extra: Any) -> tuple[str, str]:
        """A new account; its id and access token."""
        created = await self.http.post(
            f"{self.url}/sandbox/accounts", json={"username": username, **extra}
        )
        created.raise_for_status()
        body = created.json()
        return body["id"], body["access_token"]

    async def post(self, token: str, text: str, **extra: Any) -> dict[str, Any]:
        posted = await self.http.post(
            f"{self.url}/api/v1/statuses",
            json={"status": text, **extra},
            headers={"Authorization": f"Bearer {token}"},
        )
        posted.raise_for_status()
        status: dict[str, Any] = posted.json()
        return status

    async def fault(self, **spec: Any) -> None:
        (await self.http.post(f"{self.url}/sandbox/faults", json=spec)).raise_for_status()


@pytest.fixture
async def network() -> AsyncIterator[Network]:
    async with serve(create_app(SandboxConfig())) as url, httpx.AsyncClient() as http:
        yield Network(url, http)


@dataclass
class Source:
    """What ingest keeps for a source between pulls: config, credentials, cursor (as JSON)."""

    api_base: str
    config: dict[str, Any]
    token: str | None
    cursor: str = "{}"
    results: list[PullResult] = field(default_factory=list)

    async def pull(self, timeout_s: float = 5.0) -> PullResult:
        # A new connector and client each time: only the persisted dicts survive between pulls.
        config = MastodonConfig.model_validate({"api_base": self.api_base, **self.config})
        credentials = {"access_token": self.token} if self.token else {}
        async with httpx.AsyncClient(timeout=timeout_s) as client:
            result = await MastodonConnector().pull(
                client, config, credentials, json.loads(self.cursor)
            )
        self.cursor = json.dumps(result.cursor)
        self.results.append(result)
        return result

    async def drain(self) -> list[FetchedMention]:
        """Pull until the source says nothing more is available right now."""
        mentions: list[FetchedMention] = []
        for _ in range(50):
            result = await self.pull()
            mentions += result.mentions
            if not result.more:
                return mentions
        raise AssertionError("the source never ran dry")


async def brand_with_fan(network: Network, **brand: Any) -> tuple[Source, str]:
    """A brand account listening to its mentions, and a fan's token to mention it with."""
    _, brand_token = await network.account("demo_sneakers", **brand)
    _, fan_token = await network.account("runner_kate")
    source = Source(network.url, {"mode": "notifications"}, brand_token)
    return source, fan_token


async def test_mentions_spanning_several_pages_arrive_once_each_in_order(
    network: Network,
) -> None:
    source, fan = await brand_with_fan(network)
    source.config["page_limit"] = 40
    first = await source.pull()
    assert first.mentions == []
    assert first.more is False

    posted = [await network.post(fan, f"@demo_sneakers question number {i}") for i in range(95)]
    mentions = await source.drain()

    assert [len(r.mentions) for r in source.results[1:]] == [40, 40, 15]
    assert [r.more for r in source.results[1:]] == [True, True, False]
    assert [m.external_id for m in mentions] == [p["id"] for p in posted]
    assert {m.kind for m in mentions} == {"mention"}
    assert mentions[0].text == "@demo_sneakers question number 0"
    assert (await source.pull()).mentions == []


async def test_a_later_pull_returns_only_what_is_new(network: Network) -> None:
    source, fan = await brand_with_fan(network)
    before = [await network.post(fan, f"@demo_sneakers first wave {i}") for i in range(3)]
    first = await source.pull()
    assert sorted(m.external_id for m in first.mentions) == sorted(p["id"] for p in before)

    after = [await network.post(fan, f"@demo_sneakers second wave {i}") for i in range(2)]
    second = await source.pull()
    assert [m.external_id for m in second.mentions] == [p["id"] for p in after]

    third = await source.pull()
    assert third.mentions == []
    assert third.cursor == second.cursor


async def test_the_first_pull_backfills_only_the_newest_page(network: Network) -> None:
    source, fan = await brand_with_fan(network)
    source.config["page_limit"] = 10
    posted = [await network.post(fan, f"@demo_sneakers old news {i}") for i in range(25)]

    first = await source.pull()
    newer = await network.post(fan, "@demo_sneakers fresh news")
    second = await source.pull()

    assert [m.external_id for m in first.mentions] == [p["id"] for p in posted[-10:]]
    assert first.more is False
    assert [m.external_id for m in second.mentions] == [newer["id"]]


async def test_rate_limit_headers_are_read_and_a_429_raises_rate_limited(
    network: Network,
) -> None:
    source, _ = await brand_with_fan(network, rate_limit=2)

    first = await source.pull()
    second = await source.pull()
    with pytest.raises(RateLimited) as refused:
        await source.pull()

    assert first.rate_limit is not None
    assert (first.rate_limit.limit, first.rate_limit.remaining) == (2, 1)
    assert second.rate_limit is not None
    assert second.rate_limit.remaining == 0
    reset_at = first.rate_limit.reset_at
    assert reset_at is not None
    until_reset = (reset_at - datetime.now(UTC)).total_seconds()
    assert 0 < until_reset <= 300
    # Mastodon's windows are five-minute slots on the clock.
    assert reset_at.minute % 5 == 0
    assert reset_at.second == 0
    assert refused.value.retry_after_s == pytest.approx(until_reset, abs=2)


async def test_a_429_with_retry_after_is_honoured(network: Network) -> None:
    source, _ = await brand_with_fan(network)
    await network.fault(kind="rate_limit", retry_after_s=17)
    with pytest.raises(RateLimited) as refused:
        await source.pull()
    assert refused.value.retry_after_s == 17


async def test_a_revoked_token_fails_authentication(network: Network) -> None:
    brand_id, brand_token = await network.account("demo_sneakers")
    source = Source(network.url, {"mode": "notifications"}, brand_token)
    await source.pull()
    (
        await network.http.post(f"{network.url}/sandbox/accounts/{brand_id}/revoke")
    ).raise_for_status()

    with pytest.raises(AuthFailed):
        await source.pull()
    with pytest.raises(AuthFailed):
        await Source(network.url, {"mode": "search", "query": "shoes"}, None).pull()


async def test_server_errors_and_broken_connections_are_transient(network: Network) -> None:
    source, fan = await brand_with_fan(network)
    await source.pull()
    mention = await network.post(fan, "@demo_sneakers are you there?")
    cursor = source.cursor

    await network.fault(kind="server_error", status=503)
    with pytest.raises(TransientError):
        await source.pull()
    await network.fault(kind="timeout_after_send", drop=True)
    with pytest.raises(TransientError):
        await source.pull()
    await network.fault(kind="delay", delay_ms=300)
    with pytest.raises(TransientError):
        await source.pull(timeout_s=0.05)

    # Nothing was lost: the cursor did not move, and the next pull gets the mention.
    assert source.cursor == cursor
    assert [m.external_id for m in (await source.pull()).mentions] == [mention["id"]]


async def test_a_malformed_status_is_skipped_and_the_rest_of_the_page_kept(
    network: Network,
) -> None:
    source, fan = await brand_with_fan(network)
    await source.pull()
    posted = [await network.post(fan, f"@demo_sneakers hello {i}") for i in range(4)]
    # The page is newest first: the newest status comes without its account.
    await network.fault(kind="malformed", field="account", path_prefix="/api/v1/notifications")

    result = await source.pull()

    assert [m.external_id for m in result.mentions] == [p["id"] for p in posted[:3]]
    assert len(result.skipped) == 1
    assert "account" in result.skipped[0].reason
    assert result.skipped[0].raw["status"]["id"] == posted[3]["id"]
    # The cursor moved past the bad item, so it is not fetched again and again.
    assert (await source.pull()).mentions == []


async def test_html_becomes_plain_text(network: Network) -> None:
    source, fan = await brand_with_fan(network)
    await source.pull()
    text = (
        '@demo_sneakers 5 < 6 & "quotes" stay #DemoSneakers '
        "https://example.com/reviews/a-very-long-path-that-mastodon-shortens\nsecond line"
    )
    posted = await network.post(fan, text)

    [mention] = (await source.pull()).mentions

    assert "<" in mention.raw["status"]["content"]
    assert mention.text == text
    assert mention.external_id == posted["id"]


async def test_hashtag_mode_reads_the_tag_timeline_with_threads(network: Network) -> None:
    _, kate = await network.account("runner_kate", followers_count=120_000)
    _, max_ = await network.account("angry_max", bot=True)
    source = Source(network.url, {"mode": "hashtag", "hashtag": "#DemoSneakers"}, kate)
    await source.pull()

    untagged = await network.post(max_, "Where is my order?")
    root = await network.post(kate, "New drop! #DemoSneakers")
    reply = await network.post(
        max_, "@runner_kate looks great #demosneakers", in_reply_to_id=root["id"]
    )
    nested = await network.post(
        kate, "@angry_max thanks! #DemoSneakers", in_reply_to_id=reply["id"]
    )
    orphan = await network.post(
        kate, "@angry_max so sorry #DemoSneakers", in_reply_to_id=untagged["id"]
    )
    await network.post(kate, "Nothing about the tag here")

    mentions = {m.external_id: m for m in await source.drain()}

    assert set(mentions) == {root["id"], reply["id"], nested["id"], orphan["id"]}
    assert mentions[root["id"]].kind == "post"
    assert mentions[root["id"]].root_external_id == root["id"]
    assert mentions[nested["id"]].kind == "reply"
    assert mentions[nested["id"]].parent_external_id == reply["id"]
    assert mentions[nested["id"]].root_external_id == root["id"]
    assert mentions[orphan["id"]].root_external_id == untagged["id"]
    author = mentions[root["id"]].author
    assert author.handle == f"@runner_kate@{network.url.removeprefix('http://')}"
    assert author.followers == 120_000
    assert mentions[reply["id"]].raw["account"]["bot"] is True


async def test_search_mode_finds_matching_statuses_and_resumes(network: Network) -> None:
    _, kate = await network.account("runner_kate")
    _, brand = await network.account("demo_sneakers")
    source = Source(network.url, {"mode": "search", "query": "refund"}, brand)
    complaint = await network.post(kate, "Still waiting for my refund, Demo Sneakers")
    await network.post(kate, "Lovely weather for a run")

    first = await source.pull()
    later = await network.post(kate, "Refund arrived today, thanks!")
    second = await source.pull()

    assert [m.external_id for m in first.mentions] == [complaint["id"]]
    assert [m.external_id for m in second.mentions] == [later["id"]]
    assert second.mentions[0].kind == "post"


async def test_the_documented_status_shape_is_normalised() -> None:
    status = load_fixture("status.json")
    mention = mention_from_status(status, None, server="mastodon.social")

    assert mention.network == "mastodon"
    assert mention.external_id == "103270115826048975"
    assert mention.kind == "post"
    assert mention.root_external_id == mention.external_id
    assert mention.parent_external_id is None
    assert mention.text == (
        '"Best running shoes I\'ve owned" & they arrived in two days\n'
        "https://www.example.com/reviews/2019/dec/07/demo-sneakers-trail-runner-long-term-review"
    )
    assert mention.created_at == datetime(2019, 12, 8, 3, 48, 33, 901000, tzinfo=UTC)
    assert mention.author.id == "1"
    assert mention.author.handle == "@runner_kate@mastodon.social"
    assert mention.author.display_name == "Kate"
    assert mention.author.followers == 322930
    assert mention.url == "https://mastodon.social/@runner_kate/103270115826048975"
    assert mention.language == "en"
    assert mention.media == (Media("image", status["media_attachments"][0]["url"]),)
    assert mention.engagement is not None
    assert (mention.engagement.likes, mention.engagement.reposts) == (11, 6)
    assert mention.engagement.replies == 5
    assert mention.edited_at is None
    assert mention.raw is status


async def test_the_documented_mention_notification_is_normalised() -> None:
    notification = load_fixture("notification.json")
    favourite = {**notification, "id": "34975535", "type": "favourite"}

    async def notifications(request: Request) -> JSONResponse:
        return JSONResponse([notification, favourite])

    app = Starlette(routes=[Route("/api/v1/notifications", notifications)])
    async with serve(app) as url:
        result = await Source(url, {"mode": "notifications"}, "token").pull()

    [mention] = result.mentions
    assert mention.kind == "mention"
    assert mention.external_id == "103186126728896492"
    assert mention.text == "delivery\n@demo_sneakers still waiting for my order\nany news?"
    assert mention.parent_external_id == "103186038209478945"
    assert mention.root_external_id == "103186038209478945"
    assert mention.author.handle == "@zsc@mastodon.example"
    assert mention.edited_at == datetime(2019, 11, 23, 7, 52, 10, tzinfo=UTC)
    assert mention.raw["type"] == "mention"
    assert result.skipped == []
    assert result.cursor == {"min_id": "34975861"}


def test_each_mode_needs_its_own_setting() -> None:
    with pytest.raises(ValidationError, match="hashtag"):
        MastodonConfig(mode="hashtag")
    with pytest.raises(ValidationError, match="query"):
        MastodonConfig(mode="search", query="  ")
    with pytest.raises(ValidationError, match="page_limit"):
        MastodonConfig(mode="hashtag", hashtag="x", page_limit=80)
    with pytest.raises(ValidationError, match="api_base"):
        MastodonConfig(mode="notifications", api_base="mastodon.social")
    config = MastodonConfig(mode="hashtag", hashtag="#DemoSneakers")
    assert config.hashtag == "DemoSneakers"
    assert config.api_base == "https://mastodon.social"
