"""The Reddit connector against a local Reddit that speaks the documented listing and OAuth wire
formats: normalisation, sweeping new pages with `after`, token reuse and refresh, rate limits."""

from __future__ import annotations

import socket
from collections.abc import AsyncIterator
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from typing import Any

import httpx
import pytest
from pydantic import ValidationError

from services.ingest.connectors.base import (
    AuthFailed,
    BadConfig,
    FetchedMention,
    Media,
    PullResult,
    RateLimited,
    TransientError,
)
from services.ingest.connectors.reddit import RedditConfig, RedditConnector
from tests.fakes.reddit import FakeReddit, fixture
from tests.fakes.server import serve

START = datetime(2026, 11, 18, 12, 0, tzinfo=UTC)


class ManualClock:
    """The time both the connector and the fake see; tests move it explicitly."""

    def __init__(self, start: datetime) -> None:
        self.moment = start

    def __call__(self) -> datetime:
        return self.moment

    def advance(self, **delta: float) -> None:
        self.moment += timedelta(**delta)


@dataclass
class Source:
    """What ingest keeps for one Reddit source between pulls."""

    connector: RedditConnector
    config: RedditConfig
    credentials: dict[str, Any]
    cursor: dict[str, Any] = field(default_factory=dict)

    async def pull(self, client: httpx.AsyncClient) -> PullResult:
        result = await self.connector.pull(client, self.config, self.credentials, self.cursor)
        self.cursor = result.cursor
        if result.credentials is not None:
            self.credentials = result.credentials
        return result

    async def sweep(self, client: httpx.AsyncClient) -> list[FetchedMention]:
        """Pull until Reddit has nothing more right now, as the scheduler does on `more`."""
        mentions: list[FetchedMention] = []
        for _ in range(50):
            result = await self.pull(client)
            mentions += result.mentions
            if not result.more:
                return mentions
        raise AssertionError("the sweep never ended")


@pytest.fixture
def clock() -> ManualClock:
    return ManualClock(START)


@pytest.fixture
async def reddit(clock: ManualClock) -> AsyncIterator[tuple[FakeReddit, str]]:
    fake = FakeReddit(clock, token_lifetime_s=3600)
    async with serve(fake.app) as base_url:
        yield fake, base_url


@pytest.fixture
async def client() -> AsyncIterator[httpx.AsyncClient]:
    async with httpx.AsyncClient(timeout=10.0) as http:
        yield http


def source(fake: FakeReddit, base_url: str, clock: ManualClock, **config: Any) -> Source:
    settings = {"mode": "search", "query": "acme", **config}
    return Source(
        RedditConnector(clock=clock),
        RedditConfig(auth_base=base_url, api_base=base_url, **settings),
        {"client_id": fake.client_id, "client_secret": fake.client_secret},
    )


def api_requests(fake: FakeReddit) -> list[dict[str, str]]:
    return [r.params for r in fake.requests if r.path != "/api/v1/access_token"]


async def test_search_posts_are_normalised_and_a_malformed_one_is_skipped(
    reddit: tuple[FakeReddit, str], clock: ManualClock, client: httpx.AsyncClient
) -> None:
    fake, base_url = reddit
    fake.load_listing("search_listing.json")
    listening = source(fake, base_url, clock)

    result = await listening.pull(client)

    assert [m.external_id for m in result.mentions] == ["t3_1gq2x7d", "t3_1gq2x7c", "t3_1gq2x7a"]
    assert [s.raw["data"]["name"] for s in result.skipped] == ["t3_1gq2x7b"]
    assert "created_utc" in result.skipped[0].reason
    sole, photo, removed = result.mentions
    # Title and body, with the author's own &, < and > (raw_json=1, not HTML-escaped).
    assert sole.text == (
        "Acme Sprint 3 sole coming apart after 40 km\n\n"
        "Bought the Acme Sprint 3 last week & the sole already <peels> at the toe. Anyone else?"
    )
    assert sole.kind == "post"
    assert sole.url == (
        "https://www.reddit.com/r/RunningShoes/comments/1gq2x7d/"
        "acme_sprint_3_sole_coming_apart_after_40_km/"
    )
    assert (sole.author.id, sole.author.handle) == ("t2_8xk2m", "trailhound")
    assert sole.created_at == datetime(2026, 11, 18, 11, 6, 40, tzinfo=UTC)
    assert sole.edited_at == datetime(2026, 11, 18, 11, 16, 40, tzinfo=UTC)
    assert sole.engagement is not None
    assert (sole.engagement.likes, sole.engagement.replies) == (57, 23)
    assert (sole.root_external_id, sole.parent_external_id) == ("t3_1gq2x7d", None)
    assert not sole.deleted
    assert photo.media == (Media("image", "https://i.redd.it/8k2mz0acmecourt.jpeg"),)
    assert removed.deleted
    assert removed.text == "Acme discount codes that actually work"

    [search] = api_requests(fake)
    assert search == {"q": "acme", "sort": "new", "type": "link", "limit": "100", "raw_json": "1"}
    assert {r.headers["user-agent"] for r in fake.requests} == {"opensmm/1.0 (by /u/opensmm)"}
    assert result.cursor == {"newest": {"fullname": "t3_1gq2x7d", "created_utc": 1795000000.0}}
    assert not result.more


async def test_subreddit_comments_carry_their_thread_and_deletions(
    reddit: tuple[FakeReddit, str], clock: ManualClock, client: httpx.AsyncClient
) -> None:
    fake, base_url = reddit
    fake.load_listing("comments_listing.json")
    listening = source(fake, base_url, clock, mode="subreddit_comments", subreddit="AcmeShoes")

    result = await listening.pull(client)

    assert [r.path for r in fake.requests][-1] == "/r/AcmeShoes/comments"
    by_id = {m.external_id: m for m in result.mentions}
    assert list(by_id) == ["t1_lx9c004", "t1_lx9c003", "t1_lx9c002"]
    assert [s.raw["data"]["name"] for s in result.skipped] == ["t1_lx9c002x"]
    reply, gone, top = by_id["t1_lx9c004"], by_id["t1_lx9c003"], by_id["t1_lx9c002"]
    assert reply.kind == "reply"
    assert (reply.parent_external_id, reply.root_external_id) == ("t1_lx9c002", "t3_1gr0a01")
    assert top.kind == "comment"
    assert (top.parent_external_id, top.root_external_id) == ("t3_1gr0a01", "t3_1gr0a01")
    assert top.text == "I'm a 10 in everything & a 10.5 in these."
    assert (
        top.url
        == "https://www.reddit.com/r/AcmeShoes/comments/1gr0a01/sizing_for_the_sprint_3/lx9c002/"
    )
    assert gone.deleted
    assert gone.text == ""
    assert gone.author.handle == "[deleted]"


async def test_new_pages_are_swept_with_after_until_the_cursor_without_gaps_or_duplicates(
    reddit: tuple[FakeReddit, str], clock: ManualClock, client: httpx.AsyncClient
) -> None:
    fake, base_url = reddit
    before_listening = [fake.add_post(f"acme old {i}") for i in range(3)]
    listening = source(fake, base_url, clock, limit=2)
    first = await listening.pull(client)
    # A new source starts with the newest page, it does not backfill Reddit's history.
    assert [m.external_id for m in first.mentions] == before_listening[:0:-1]

    clock.advance(minutes=5)
    burst = [fake.add_post(f"acme burst {i}") for i in range(5)]
    page1 = await listening.pull(client)
    assert page1.more
    clock.advance(seconds=2)
    # Posted while the sweep is still paging: the next sweep picks them up.
    during = [fake.add_post(f"acme during {i}") for i in range(2)]
    rest = await listening.sweep(client)
    next_sweep = await listening.sweep(client)
    quiet = await listening.pull(client)

    delivered = [m.external_id for m in page1.mentions + rest + next_sweep]
    assert sorted(delivered) == sorted(burst + during)
    assert len(delivered) == len(set(delivered))
    assert [m.external_id for m in next_sweep] == during[::-1]
    assert quiet.mentions == []
    assert not quiet.more
    afters = [p.get("after") for p in api_requests(fake)]
    # The second sweep's first page holds only new posts, so it looks one page further.
    assert afters == [None, None, burst[3], burst[1], None, during[0], None]


async def test_a_backfill_sweeps_back_to_its_start_time_and_then_listens_on(
    reddit: tuple[FakeReddit, str], clock: ManualClock, client: httpx.AsyncClient
) -> None:
    fake, base_url = reddit
    since = START - timedelta(hours=3)
    older = [
        fake.add_post(f"acme old {i}", created_at=since - timedelta(hours=2 - i)) for i in (0, 1)
    ]
    at_since = fake.add_post("acme at the start", created_at=since)
    later = [
        fake.add_post(f"acme later {i}", created_at=since + timedelta(hours=1 + i)) for i in (0, 1)
    ]
    listening = source(fake, base_url, clock, limit=2)
    # A new source takes the newest page only: the rest was never delivered.
    assert [m.external_id for m in (await listening.pull(client)).mentions] == later[::-1]

    listening.cursor = listening.connector.backfill_cursor(since)
    backfill = await listening.sweep(client)

    assert [m.external_id for m in backfill] == [*later[::-1], at_since]
    assert not set(older) & {m.external_id for m in backfill}
    clock.advance(minutes=1)
    fresh = fake.add_post("acme after the backfill")
    assert [m.external_id for m in await listening.sweep(client)] == [fresh]


async def test_a_deleted_cursor_item_still_bounds_the_next_sweep_by_time(
    reddit: tuple[FakeReddit, str], clock: ManualClock, client: httpx.AsyncClient
) -> None:
    fake, base_url = reddit
    # All in the same second: Reddit's sequential ids order them.
    fake.add_post("acme one")
    newest = fake.add_post("acme two")
    listening = source(fake, base_url, clock)
    await listening.pull(client)
    fake.things = [t for t in fake.things if t["data"]["name"] != newest]

    fresh = fake.add_post("acme three")
    result = await listening.pull(client)

    assert [m.external_id for m in result.mentions] == [fresh]


async def test_the_token_is_reused_until_shortly_before_it_expires(
    reddit: tuple[FakeReddit, str], clock: ManualClock, client: httpx.AsyncClient
) -> None:
    fake, base_url = reddit
    listening = source(fake, base_url, clock)

    first = await listening.pull(client)
    assert first.credentials is not None
    assert first.credentials["client_secret"] == fake.client_secret
    token = first.credentials["access_token"]
    assert first.credentials["expires_at"] == (START + timedelta(hours=1)).isoformat()

    clock.advance(minutes=30)
    reused = await listening.pull(client)
    assert reused.credentials is None
    assert fake.tokens_issued == 1

    clock.advance(minutes=29)  # one minute before expiry: too close to trust for a page
    renewed = await listening.pull(client)
    assert fake.tokens_issued == 2
    assert renewed.credentials is not None
    assert renewed.credentials["access_token"] != token
    bearers = [r.headers["authorization"] for r in fake.requests if r.path == "/search"]
    assert bearers == [f"bearer {token}"] * 2 + [f"bearer {renewed.credentials['access_token']}"]


async def test_a_revoked_token_is_replaced_once_and_the_page_still_arrives(
    reddit: tuple[FakeReddit, str], clock: ManualClock, client: httpx.AsyncClient
) -> None:
    fake, base_url = reddit
    listening = source(fake, base_url, clock)
    await listening.pull(client)
    old_token = listening.credentials["access_token"]
    fake.revoke_tokens()
    post = fake.add_post("acme after revocation")

    result = await listening.pull(client)

    assert [m.external_id for m in result.mentions] == [post]
    assert result.credentials is not None
    assert result.credentials["access_token"] != old_token
    assert fake.tokens_issued == 2


async def test_revoked_app_credentials_or_a_rejected_fresh_token_fail_auth(
    reddit: tuple[FakeReddit, str], clock: ManualClock, client: httpx.AsyncClient
) -> None:
    fake, base_url = reddit
    listening = source(fake, base_url, clock)
    listening.credentials = {**listening.credentials, "client_secret": "rotated-away"}
    with pytest.raises(AuthFailed):
        await listening.pull(client)
    assert fake.tokens_issued == 0

    listening = source(fake, base_url, clock)
    fake.reject_all_tokens = True
    with pytest.raises(AuthFailed):
        await listening.pull(client)
    assert fake.tokens_issued == 2  # the first token and exactly one replacement


async def test_rate_limit_headers_are_reported_and_429_waits_for_the_window_reset(
    reddit: tuple[FakeReddit, str], clock: ManualClock, client: httpx.AsyncClient
) -> None:
    fake, base_url = reddit
    listening = source(fake, base_url, clock)

    result = await listening.pull(client)
    assert result.rate_limit is not None
    assert (result.rate_limit.limit, result.rate_limit.remaining) == (600, 599)
    assert result.rate_limit.reset_at == START + timedelta(seconds=420)

    fake.ratelimit_remaining = 0
    fake.ratelimit_reset_s = 37
    with pytest.raises(RateLimited) as limited:
        await listening.pull(client)
    assert limited.value.retry_after_s == 37


async def test_outages_and_closed_subreddits_are_told_apart(
    reddit: tuple[FakeReddit, str], clock: ManualClock, client: httpx.AsyncClient
) -> None:
    fake, base_url = reddit
    errors = fixture("errors.json")
    listening = source(fake, base_url, clock, mode="subreddit_comments", subreddit="AcmeShoes")

    fake.fail_next.append((500, errors["500"]))
    with pytest.raises(TransientError):
        await listening.pull(client)
    fake.fail_next.append((403, errors["403_private"]))
    with pytest.raises(BadConfig, match="private"):
        await listening.pull(client)

    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        closed_port = probe.getsockname()[1]
    unreachable = source(fake, f"http://127.0.0.1:{closed_port}", clock)
    with pytest.raises(TransientError):
        await unreachable.pull(client)


@pytest.mark.parametrize(
    "settings",
    [
        {"mode": "search"},
        {"mode": "search", "query": "  "},
        {"mode": "subreddit_comments"},
        {"mode": "subreddit_comments", "subreddit": "r/AcmeShoes"},
        {"mode": "search", "query": "acme", "limit": 101},
    ],
)
def test_a_source_that_cannot_work_is_refused_when_created(settings: dict[str, Any]) -> None:
    with pytest.raises(ValidationError):
        RedditConfig.model_validate(settings)
