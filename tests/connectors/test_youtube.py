"""The YouTube connector against a local YouTube Data API that speaks the documented
commentThreads.list and error formats: normalisation, resuming without duplicates or gaps,
per-Pacific-day quota accounting, and error mapping."""

from __future__ import annotations

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
    PullResult,
    RateLimited,
    TransientError,
)
from services.ingest.connectors.youtube import YoutubeConfig, YoutubeConnector
from tests.fakes.server import serve
from tests.fakes.youtube import CHANNEL_ID, FakeYoutube

START = datetime(2026, 11, 18, 12, 0, tzinfo=UTC)
TOP = "UgzJ1u2l3k4m5n6o7p8qAaABAg"


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
    """What ingest keeps for one YouTube source between pulls."""

    connector: YoutubeConnector
    config: YoutubeConfig
    credentials: dict[str, Any]
    cursor: dict[str, Any] = field(default_factory=dict)

    async def pull(self, client: httpx.AsyncClient) -> PullResult:
        result = await self.connector.pull(client, self.config, self.credentials, self.cursor)
        self.cursor = result.cursor
        return result

    async def sweep(self, client: httpx.AsyncClient) -> list[FetchedMention]:
        """Pull until YouTube has nothing more right now, as the scheduler does on `more`."""
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
async def youtube(clock: ManualClock) -> AsyncIterator[tuple[FakeYoutube, str]]:
    fake = FakeYoutube(clock)
    async with serve(fake.app) as base_url:
        yield fake, base_url


@pytest.fixture
async def client() -> AsyncIterator[httpx.AsyncClient]:
    async with httpx.AsyncClient(timeout=10.0) as http:
        yield http


def source(fake: FakeYoutube, base_url: str, clock: ManualClock, **config: Any) -> Source:
    return Source(
        YoutubeConnector(clock=clock),
        YoutubeConfig.model_validate({"api_base": base_url, "channel_id": CHANNEL_ID, **config}),
        {"api_key": fake.api_key},
    )


def ago(clock: ManualClock, **delta: float) -> datetime:
    return clock() - timedelta(**delta)


async def test_threads_become_comments_and_replies_and_malformed_ones_are_skipped(
    youtube: tuple[FakeYoutube, str], clock: ManualClock, client: httpx.AsyncClient
) -> None:
    fake, base_url = youtube
    fake.load_threads()
    listening = source(fake, base_url, clock)

    result = await listening.pull(client)

    assert [m.external_id for m in result.mentions] == [
        TOP,
        f"{TOP}.9xYzAbCdEf1",
        "UgyQ7r8s9t0u1v2w3x4y5zAaABAg",
    ]
    assert sorted(s.reason for s in result.skipped) == [
        "comment thread without top-level comment id or videoId",
        "comment without text",
    ]
    question, answer, complaint = result.mentions
    assert question.kind == "comment"
    assert question.text == "Do the Sprint 3 run true to size? I'm between a 9 & a 9.5"
    assert (question.root_external_id, question.parent_external_id) == (
        "dQw4w9WgXcA",
        "dQw4w9WgXcA",
    )
    assert (question.author.id, question.author.handle) == (
        "UCm1lesAhead00000000000A",
        "@milesahead",
    )
    assert question.url == f"https://www.youtube.com/watch?v=dQw4w9WgXcA&lc={TOP}"
    assert question.created_at == datetime(2026, 11, 18, 10, 0, tzinfo=UTC)
    assert question.edited_at == datetime(2026, 11, 18, 10, 5, tzinfo=UTC)
    assert question.engagement is not None
    assert (question.engagement.likes, question.engagement.replies) == (12, 2)
    assert answer.kind == "reply"
    assert (answer.root_external_id, answer.parent_external_id) == ("dQw4w9WgXcA", TOP)
    assert answer.text == "They run small, go half a size up."  # from textDisplay, tags stripped
    assert answer.url == f"https://www.youtube.com/watch?v=dQw4w9WgXcA&lc={TOP}.9xYzAbCdEf1"
    assert complaint.text == "Sole peeled after two weeks.\nNot impressed & support never answered."

    assert result.quota_used == 1
    [call] = fake.calls
    assert call == {
        "part": "snippet,replies",
        "allThreadsRelatedToChannelId": CHANNEL_ID,
        "order": "time",
        "maxResults": "100",
        "key": fake.api_key,
    }


async def test_new_threads_and_replies_arrive_once_across_pages_and_sweeps(
    youtube: tuple[FakeYoutube, str], clock: ManualClock, client: httpx.AsyncClient
) -> None:
    fake, base_url = youtube
    oldest = fake.add_thread("before listening", published_at=ago(clock, hours=3))
    middle = fake.add_thread("a while ago", published_at=ago(clock, hours=2))
    recent = fake.add_thread("recently", published_at=ago(clock, hours=1))
    listening = source(fake, base_url, clock, max_results=2)
    first = await listening.pull(client)
    # A new source starts with the newest page; older threads are history, not new mentions.
    assert [m.external_id for m in first.mentions] == [recent, middle]
    assert not first.more

    clock.advance(minutes=10)
    expected = [
        fake.add_reply(oldest, "late reply to an old thread", published_at=ago(clock, minutes=9))
    ]
    expected += [fake.add_reply(middle, "reply", published_at=ago(clock, minutes=8))]
    expected += [
        fake.add_thread(f"new {i}", published_at=ago(clock, minutes=7 - i)) for i in range(4)
    ]
    page1 = await listening.pull(client)
    assert page1.more

    # While the sweep pages on, a new thread pushes every thread one place down, and a thread the
    # sweep has already handled gets a reply and jumps to the top.
    clock.advance(minutes=1)
    expected.append(fake.add_thread("arrived mid-sweep"))
    handled_thread = page1.mentions[0].external_id
    expected.append(fake.add_reply(handled_thread, "reply mid-sweep"))
    rest = await listening.sweep(client)
    follow_up = await listening.sweep(client)
    quiet = await listening.pull(client)

    delivered = [m.external_id for m in page1.mentions + rest + follow_up]
    assert len(delivered) == len(set(delivered)), "a comment was delivered twice"
    assert sorted(delivered) == sorted(expected)
    assert sorted(m.external_id for m in follow_up) == sorted(expected[-2:])
    assert quiet.mentions == []
    assert not quiet.more


async def test_a_backfill_sweeps_back_to_its_start_time_and_then_listens_on(
    youtube: tuple[FakeYoutube, str], clock: ManualClock, client: httpx.AsyncClient
) -> None:
    fake, base_url = youtube
    since = ago(clock, hours=3)
    old = fake.add_thread("before the start", published_at=ago(clock, hours=5))
    older = fake.add_thread("long before the start", published_at=ago(clock, hours=6))
    # An old thread's reply after the start is heard; its top-level comment is not.
    late_reply = fake.add_reply(old, "late reply", published_at=ago(clock, hours=2, minutes=30))
    at_since = fake.add_thread("at the start", published_at=since)
    later = [fake.add_thread(f"later {i}", published_at=ago(clock, hours=2 - i)) for i in (0, 1)]
    listening = source(fake, base_url, clock, max_results=2)
    # A new source takes the newest page only: the rest was never delivered.
    assert [m.external_id for m in (await listening.pull(client)).mentions] == later[::-1]

    listening.cursor = listening.connector.backfill_cursor(since)
    backfill = await listening.sweep(client)

    delivered = [m.external_id for m in backfill]
    assert sorted(delivered) == sorted([*later, late_reply, at_since])
    assert not {old, older} & set(delivered)
    clock.advance(minutes=1)
    fresh = fake.add_thread("after the backfill")
    assert [m.external_id for m in await listening.sweep(client)] == [fresh]


async def test_quota_is_counted_per_pacific_day_and_resets_at_pacific_midnight(
    youtube: tuple[FakeYoutube, str], clock: ManualClock, client: httpx.AsyncClient
) -> None:
    fake, base_url = youtube
    clock.moment = datetime(2026, 3, 7, 23, 30, tzinfo=UTC)  # 15:30 on 7 March in Los Angeles
    listening = source(fake, base_url, clock, daily_quota=2)

    first = await listening.pull(client)
    assert listening.cursor["quota"] == {"day": "2026-03-07", "used": 1}
    assert first.rate_limit is not None
    assert first.rate_limit.remaining == 1
    assert first.rate_limit.reset_at == datetime(2026, 3, 8, 8, 0, tzinfo=UTC)

    clock.advance(hours=2)  # a new day in UTC, still 7 March in Los Angeles
    await listening.pull(client)
    assert listening.cursor["quota"] == {"day": "2026-03-07", "used": 2}
    with pytest.raises(RateLimited) as limited:
        await listening.pull(client)
    assert limited.value.retry_after_s == timedelta(hours=6, minutes=30).total_seconds()
    assert len(fake.calls) == 2, "a call past the daily quota reached YouTube"

    clock.moment = datetime(2026, 3, 8, 8, 0, tzinfo=UTC)  # midnight in Los Angeles
    again = await listening.pull(client)
    assert again.quota_used == 1
    assert listening.cursor["quota"] == {"day": "2026-03-08", "used": 1}


async def test_youtube_quota_errors_wait_until_pacific_midnight_and_rate_limits_briefly(
    youtube: tuple[FakeYoutube, str], clock: ManualClock, client: httpx.AsyncClient
) -> None:
    fake, base_url = youtube
    # 03:00 PDT on the day clocks go forward: the next midnight is 21 hours away, not 22.
    clock.moment = datetime(2026, 3, 8, 10, 0, tzinfo=UTC)
    listening = source(fake, base_url, clock)

    fake.fail_next.append("quotaExceeded")
    with pytest.raises(RateLimited) as quota:
        await listening.pull(client)
    assert quota.value.retry_after_s == timedelta(hours=21).total_seconds()

    fake.fail_next.append("rateLimitExceeded")
    with pytest.raises(RateLimited) as burst:
        await listening.pull(client)
    assert burst.value.retry_after_s == 60.0


async def test_key_access_channel_and_outage_errors_are_told_apart(
    youtube: tuple[FakeYoutube, str], clock: ManualClock, client: httpx.AsyncClient
) -> None:
    fake, base_url = youtube
    listening = source(fake, base_url, clock)

    listening.credentials = {"api_key": "AIzaSy-revoked"}
    with pytest.raises(AuthFailed, match="keyInvalid"):
        await listening.pull(client)
    listening.credentials = {"api_key": fake.api_key}

    fake.fail_next.append("forbidden")
    with pytest.raises(AuthFailed, match="forbidden"):
        await listening.pull(client)

    fake.comments_disabled = True
    with pytest.raises(BadConfig, match="disabled"):
        await listening.pull(client)
    fake.comments_disabled = False

    elsewhere = source(fake, base_url, clock, channel_id="UCSomeoneElse00000000000")
    with pytest.raises(BadConfig, match="channelNotFound"):
        await elsewhere.pull(client)

    fake.fail_next.append("backendError")
    with pytest.raises(TransientError):
        await listening.pull(client)


async def test_a_stale_page_token_restarts_the_sweep_without_losing_comments(
    youtube: tuple[FakeYoutube, str], clock: ManualClock, client: httpx.AsyncClient
) -> None:
    fake, base_url = youtube
    fake.add_thread("seen", published_at=ago(clock, hours=1))
    listening = source(fake, base_url, clock, max_results=1)
    await listening.pull(client)
    new = [fake.add_thread(f"new {i}", published_at=ago(clock, minutes=30 - i)) for i in range(3)]
    await listening.pull(client)
    listening.cursor["sweep"]["page_token"] = "expired-token"

    restarted = await listening.pull(client)
    assert restarted.mentions == []
    assert restarted.more
    delivered = await listening.sweep(client)
    assert set(new) <= {m.external_id for m in delivered}


def test_a_channel_id_that_is_not_one_is_refused_when_created() -> None:
    with pytest.raises(ValidationError):
        YoutubeConfig(channel_id="@AcmeShoes")
    with pytest.raises(ValidationError):
        YoutubeConfig(channel_id=CHANNEL_ID, max_results=101)
