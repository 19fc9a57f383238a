"""Per-account pacing: buckets refill with time, every window of a network must allow a call,
headers and 429s reset a bucket, and one account's pacing never delays another's."""

from __future__ import annotations

from collections import deque
from datetime import UTC, datetime, timedelta

import pytest

from services.publisher.ratelimit import (
    AccountLimiter,
    Action,
    RatePolicy,
    RateWindow,
    UnknownNetworkError,
)

T0 = datetime(2025, 3, 14, 9, 0, tzinfo=UTC)


def at(seconds: float) -> datetime:
    return T0 + timedelta(seconds=seconds)


def spend(
    limiter: AccountLimiter,
    network: str,
    account: str,
    times: int,
    action: Action = Action.PUBLISH,
) -> None:
    for _ in range(times):
        assert limiter.acquire(network, account, now=T0, action=action) == 0.0


def test_a_mastodon_account_gets_its_300_requests_then_one_per_second() -> None:
    limiter = AccountLimiter()
    spend(limiter, "mastodon", "brand@social.example", 300)

    wait = limiter.acquire("mastodon", "brand@social.example", now=T0)
    assert wait == pytest.approx(1.0)  # 300 per 5 minutes refills one a second
    # Asking did not consume: the answer is the same, and the call goes once the time has come.
    assert limiter.acquire("mastodon", "brand@social.example", now=T0) == pytest.approx(1.0)
    assert limiter.acquire("mastodon", "brand@social.example", now=at(0.5)) == pytest.approx(0.5)
    assert limiter.acquire("mastodon", "brand@social.example", now=at(1.0)) == 0.0
    assert limiter.acquire("mastodon", "brand@social.example", now=at(1.0)) > 0.0

    # After a full period the bucket is full again, never fuller.
    spend_at = at(1000)
    for _ in range(300):
        assert limiter.acquire("mastodon", "brand@social.example", now=spend_at) == 0.0
    assert limiter.acquire("mastodon", "brand@social.example", now=spend_at) > 0.0


def test_pacing_one_account_never_delays_another() -> None:
    limiter = AccountLimiter()
    spend(limiter, "mastodon", "busy", 300)
    limiter.penalise("mastodon", "busy", 600, now=T0)

    assert limiter.acquire("mastodon", "busy", now=T0) >= 600
    assert limiter.acquire("mastodon", "quiet", now=T0) == 0.0
    # The same account name on another network is another account.
    assert limiter.acquire("bluesky", "busy", now=T0) == 0.0


def test_mastodon_media_uploads_have_their_own_window() -> None:
    limiter = AccountLimiter()
    spend(limiter, "mastodon", "brand", 30, action=Action.MEDIA_UPLOAD)

    # 30 per 30 minutes: the next upload waits a minute, a status can still go now.
    wait = limiter.acquire("mastodon", "brand", now=T0, action=Action.MEDIA_UPLOAD)
    assert wait == pytest.approx(60.0)
    assert limiter.acquire("mastodon", "brand", now=T0, action=Action.PUBLISH) == 0.0


def test_a_bluesky_create_costs_three_points() -> None:
    limiter = AccountLimiter()
    spend(limiter, "bluesky", "did:plc:brand", 1666)  # 4,998 of 5,000 points

    assert limiter.acquire("bluesky", "did:plc:brand", now=T0) > 0.0
    # A delete costs one point, so it still fits.
    assert limiter.acquire("bluesky", "did:plc:brand", now=T0, action=Action.DELETE) == 0.0
    # An applyWrites of five creates asks for 15 points in one go.
    later = at(3600)
    assert limiter.acquire("bluesky", "did:plc:brand", 15, now=later) == 0.0


def test_every_window_must_allow_the_call() -> None:
    limiter = AccountLimiter()
    # Bluesky's headers say the day's points are gone until tomorrow; the hour window is full.
    limiter.observe("bluesky", "did:plc:brand", 0, at(7200), now=T0, window="day")
    wait = limiter.acquire("bluesky", "did:plc:brand", now=T0)
    assert wait >= 7200


def test_a_bluesky_account_never_goes_over_its_daily_points() -> None:
    limiter = AccountLimiter()
    spent: deque[tuple[float, float]] = deque()
    now = 0.0
    in_day = 0.0
    worst_day = 0.0
    # Greedy sender for three days: posts whenever allowed, waits exactly as long as told.
    while now < 3 * 86_400:
        wait = limiter.acquire("bluesky", "did:plc:bot", now=at(now))
        if wait > 0:
            now += wait
            continue
        spent.append((now, 3))
        in_day += 3
        while spent and spent[0][0] <= now - 86_400:
            in_day -= spent.popleft()[1]
        worst_day = max(worst_day, in_day)
    assert worst_day <= 35_000
    # The hour window alone would allow 125,000 points a day: the day window is what bound it,
    # and it still lets through almost all of the daily quota.
    assert worst_day >= 30_000


def test_a_vk_wall_stays_within_fifty_posts_in_any_24_hours() -> None:
    limiter = AccountLimiter()
    posts: list[float] = []
    now = 0.0
    while now < 4 * 86_400:
        wait = limiter.acquire("vk", "-12345", now=at(now), credential="user:1")
        if wait > 0:
            now += wait
            continue
        posts.append(now)
    worst = max(sum(1 for p in posts if start <= p < start + 86_400) for start in posts)
    assert worst <= 50
    assert len(posts) >= 4 * 45  # the sustained rate stays close to the quota


def test_headers_adjust_the_bucket_but_never_above_its_capacity() -> None:
    limiter = AccountLimiter()
    # X-RateLimit-Remaining: 0, reset in two minutes: nothing goes before the reset.
    limiter.observe("mastodon", "brand", 0, at(120), now=T0)
    assert limiter.acquire("mastodon", "brand", now=at(60)) == pytest.approx(61.0)
    assert limiter.acquire("mastodon", "brand", now=at(121)) == 0.0

    # A network claiming more than the published limit does not widen it.
    limiter.observe("mastodon", "other", 1000, at(0), now=T0)
    spend(limiter, "mastodon", "other", 300)
    assert limiter.acquire("mastodon", "other", now=T0) > 0.0

    # Remaining below what we counted: we trust the network.
    limiter.observe("mastodon", "third", 2, at(300), now=T0)
    spend(limiter, "mastodon", "third", 2)
    assert limiter.acquire("mastodon", "third", now=T0) > 0.0


def test_a_429_empties_the_bucket_until_retry_after() -> None:
    limiter = AccountLimiter()
    assert limiter.acquire("mastodon", "brand", now=T0) == 0.0
    limiter.penalise("mastodon", "brand", 30, now=T0)

    assert limiter.acquire("mastodon", "brand", now=at(10)) >= 20
    # Refill starts only when the penalty ends, so the first call waits one token's time more.
    assert limiter.acquire("mastodon", "brand", now=at(30)) == pytest.approx(1.0)
    assert limiter.acquire("mastodon", "brand", now=at(31)) == 0.0
    assert limiter.acquire("mastodon", "brand", now=at(31)) > 0.0


def test_an_unlimited_webhook_still_honours_a_429() -> None:
    limiter = AccountLimiter()
    spend(limiter, "webhook", "https://hooks.example/brand", 10_000)
    limiter.penalise("webhook", "https://hooks.example/brand", 5, now=T0)
    assert limiter.acquire("webhook", "https://hooks.example/brand", now=at(2)) == pytest.approx(3)
    assert limiter.acquire("webhook", "https://hooks.example/brand", now=at(5)) == 0.0


def test_telegram_chats_share_their_bot_budget() -> None:
    limiter = AccountLimiter()
    for chat in range(30):
        assert limiter.acquire("telegram", f"chat:{chat}", now=T0, credential="bot:1") == 0.0
    # The bot's 30 messages a second are gone; another bot is unaffected.
    assert limiter.acquire("telegram", "chat:99", now=T0, credential="bot:1") > 0.0
    assert limiter.acquire("telegram", "chat:99", now=T0, credential="bot:2") == 0.0
    # One chat gets about one message a second.
    assert limiter.acquire("telegram", "chat:0", now=at(0.5), credential="bot:3") > 0.0
    assert limiter.acquire("telegram", "chat:0", now=at(1.0), credential="bot:3") == 0.0


def test_a_custom_policy_and_its_refusals() -> None:
    limiter = AccountLimiter(
        {"mastodon": RatePolicy(windows=(RateWindow("requests", limit=2, period_s=10),))}
    )
    spend(limiter, "mastodon", "small-instance", 2)
    assert limiter.acquire("mastodon", "small-instance", now=T0) == pytest.approx(5.0)

    with pytest.raises(ValueError, match="can never fit"):
        limiter.acquire("mastodon", "small-instance", 3, now=T0)
    with pytest.raises(UnknownNetworkError):
        limiter.acquire("myspace", "brand", now=T0)
    with pytest.raises(ValueError, match="timezone-aware"):
        limiter.acquire("mastodon", "brand", now=datetime(2025, 3, 14, 9, 0))
    with pytest.raises(ValueError, match="no rate window"):
        limiter.observe("mastodon", "brand", 1, at(1), now=T0, window="day")
    with pytest.raises(ValueError, match="burst"):
        RateWindow("bad", limit=5, period_s=1, burst=5)
