"""The Bluesky connector against a local PDS that speaks XRPC: sessions, paging, resumption,
normalisation and the errors the scheduler acts on."""

from __future__ import annotations

import json
from collections.abc import AsyncIterator
from dataclasses import dataclass, field, replace
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
from services.ingest.connectors.bluesky import THREAD_DEPTH, BlueskyConfig, BlueskyConnector
from tests.fakes.bluesky import (
    APP_PASSWORD,
    BRAND_HANDLE,
    FakeBluesky,
    load_fixture,
    post_view,
)
from tests.fakes.server import serve

CREATE = "com.atproto.server.createSession"
REFRESH = "com.atproto.server.refreshSession"
NOTIFICATIONS = "app.bsky.notification.listNotifications"
SEARCH = "app.bsky.feed.searchPosts"
T0 = datetime(2026, 11, 10, 12, 0, tzinfo=UTC)


def stamp(seconds: int) -> str:
    return (T0 + timedelta(seconds=seconds)).strftime("%Y-%m-%dT%H:%M:%S.000Z")


@dataclass
class Source:
    """What ingest persists for a source between pulls: config, credentials, cursor (as JSON)."""

    base_url: str
    config: dict[str, Any]
    credentials: dict[str, Any] = field(
        default_factory=lambda: {"identifier": BRAND_HANDLE, "app_password": APP_PASSWORD}
    )
    cursor: str = "{}"
    results: list[PullResult] = field(default_factory=list)

    async def pull(self) -> PullResult:
        # A new connector and client each time: nothing may survive but the persisted dicts.
        config = BlueskyConfig.model_validate({"service": self.base_url, **self.config})
        async with httpx.AsyncClient(timeout=5.0) as client:
            result = await BlueskyConnector().pull(
                client, config, dict(self.credentials), json.loads(self.cursor)
            )
        self.cursor = json.dumps(result.cursor)
        if result.credentials is not None:
            self.credentials = result.credentials
        self.results.append(result)
        return result

    async def drain(self) -> list[FetchedMention]:
        """Pull until the source says there is nothing more right now."""
        mentions: list[FetchedMention] = []
        for _ in range(50):
            result = await self.pull()
            mentions += result.mentions
            if not result.more:
                return mentions
        raise AssertionError("the walk never ended")


@pytest.fixture
def fake() -> FakeBluesky:
    return FakeBluesky()


@pytest.fixture
async def base_url(fake: FakeBluesky) -> AsyncIterator[str]:
    async with serve(fake.app) as url:
        yield url


def ids(mentions: list[FetchedMention]) -> list[str]:
    return [m.external_id for m in mentions]


async def test_notifications_become_mentions_with_thread_engagement_and_media(
    fake: FakeBluesky, base_url: str
) -> None:
    fake.notifications = load_fixture("list_notifications.json")["notifications"]
    fake.posts = load_fixture("get_posts.json")["posts"]
    fake.honour_reasons = False  # the server sends likes and follows too

    result = await Source(base_url, {"mode": "notifications"}).pull()

    listing = next(r for r in fake.requests if r.method == NOTIFICATIONS)
    assert sorted(v for k, v in listing.params if k == "reasons") == ["mention", "quote", "reply"]
    mention, reply, quote = result.mentions
    assert [m.kind for m in result.mentions] == ["mention", "reply", "mention"]
    assert result.skipped == []

    alice = "did:plc:alice4x7kq2m3n5p6r7s8t9u"
    assert mention.network == "bluesky"
    assert mention.external_id == f"at://{alice}/app.bsky.feed.post/3lbxmention01"
    assert mention.url == "https://bsky.app/profile/alice.example.com/post/3lbxmention01"
    assert mention.text == "Hey @acme.bsky.social my order #1042 never arrived"
    assert mention.language == "en"
    assert mention.created_at == datetime(2026, 11, 3, 10, 4, 58, 412000, tzinfo=UTC)
    assert (mention.author.id, mention.author.handle, mention.author.display_name) == (
        alice,
        "alice.example.com",
        "Alice Martin",
    )
    assert mention.root_external_id == mention.external_id
    assert mention.parent_external_id is None
    assert mention.engagement is not None
    assert (mention.engagement.likes, mention.engagement.reposts, mention.engagement.replies) == (
        17,
        4,
        1,
    )
    assert mention.media == (
        Media(
            "image",
            f"https://cdn.bsky.app/img/feed_fullsize/plain/{alice}/bafkreiporchimage@jpeg",
        ),
    )
    assert mention.raw["notification"]["reason"] == "mention"

    launch = "at://did:plc:4acmebrandq3n5x4lpzk7yq2/app.bsky.feed.post/3lbwlaunch001"
    assert (reply.root_external_id, reply.parent_external_id) == (launch, launch)
    assert reply.language == "de"
    assert reply.author.display_name is None  # an empty display name is no name

    # The quoted post was deleted after the notification: it still arrives, from the
    # notification's own record, without counts.
    assert quote.text == "This launch is worth a look"
    assert quote.engagement is None
    assert quote.language is None


async def test_notifications_page_back_and_resume_after_restart_without_gaps_or_duplicates(
    fake: FakeBluesky, base_url: str
) -> None:
    fake.add_posts(*(post_view(f"old{i}", f"hi {i}", stamp(i)) for i in range(7)), notify="mention")
    # Notified at the same instant as old4, and sorted before it: the first page ends between
    # two notifications of equal time.
    fake.add_posts(post_view("tie-a", "tie a", stamp(4)), notify="reply")
    source = Source(base_url, {"mode": "notifications", "limit": 3})

    first = await source.pull()
    assert first.more
    assert [m.text for m in first.mentions] == ["hi 6", "hi 5", "tie a"]
    # Arrives while the walk is paging back: not in this walk, but in the next one.
    fake.add_posts(post_view("mid", "during the walk", stamp(100)), notify="mention")
    walk = first.mentions + await source.drain()
    assert sorted(ids(walk)) == sorted(n["uri"] for n in fake.notifications[:8])
    assert fake.calls[CREATE] == 1

    fake.add_posts(post_view("new", "after", stamp(200)), notify="mention")
    second = await source.drain()
    assert sorted(m.text for m in second) == ["after", "during the walk"]

    # At exactly the instant the high-water mark stands on, but not yet seen.
    fake.add_posts(post_view("tie-b", "same instant", stamp(200)), notify="quote")
    third = await source.drain()
    assert [m.text for m in third] == ["same instant"]

    quiet = await source.pull()
    assert (quiet.mentions, quiet.more) == ([], False)
    everything = walk + second + third
    assert len(set(ids(everything))) == len(everything) == len(fake.notifications)


async def test_search_skips_what_an_offset_cursor_shifts_and_stops_at_seen_posts(
    fake: FakeBluesky, base_url: str
) -> None:
    fake.add_posts(*(post_view(f"p{i}", f"acme shoes {i}", stamp(i)) for i in range(5)))
    fake.add_posts(post_view("other", "unrelated", stamp(3)))
    source = Source(base_url, {"mode": "search", "query": "ACME", "limit": 3})

    first = await source.pull()
    assert [m.text for m in first.mentions] == ["acme shoes 4", "acme shoes 3", "acme shoes 2"]
    assert first.more
    # Two new hits push everything down by two: the next offset page repeats two posts.
    fake.add_posts(*(post_view(f"n{i}", f"acme news {i}", stamp(50 + i)) for i in range(2)))
    rest = await source.drain()
    assert [m.text for m in rest] == ["acme shoes 1", "acme shoes 0"]

    searches_before = fake.calls[SEARCH]
    second = await source.pull()
    assert [m.text for m in second.mentions] == ["acme news 1", "acme news 0"]
    assert not second.more  # the first page already reached a seen post
    assert fake.calls[SEARCH] == searches_before + 1
    assert all(m.kind == "post" for m in first.mentions + rest + second.mentions)
    search = next(r for r in fake.requests if r.method == SEARCH)
    assert ("sort", "latest") in search.params


async def test_a_backfill_walks_back_to_its_start_time_and_then_listens_on(
    fake: FakeBluesky, base_url: str
) -> None:
    fake.add_posts(
        *(post_view(f"p{i}", f"hi {i}", stamp(10 * i)) for i in range(8)), notify="mention"
    )
    source = Source(base_url, {"mode": "notifications", "limit": 3})
    assert len(await source.drain()) == 8
    # Notified since the last walk, not pulled yet.
    fake.add_posts(post_view("unheard", "not pulled yet", stamp(100)), notify="reply")

    source.cursor = json.dumps(BlueskyConnector().backfill_cursor(T0 + timedelta(seconds=30)))
    backfill = await source.drain()

    # From the post at exactly the start time on, across pages; nothing older.
    assert sorted(m.text for m in backfill) == [
        "hi 3",
        "hi 4",
        "hi 5",
        "hi 6",
        "hi 7",
        "not pulled yet",
    ]
    assert len(source.results) > 2  # the walk paged back
    fake.add_posts(post_view("later", "after the backfill", stamp(200)), notify="mention")
    assert [m.text for m in await source.drain()] == ["after the backfill"]


async def test_search_results_are_normalised(fake: FakeBluesky, base_url: str) -> None:
    fake.posts = load_fixture("search_posts.json")["posts"]

    review, refund, unboxing = (
        await Source(base_url, {"mode": "search", "query": "acme"}).pull()
    ).mentions

    assert review.media == (Media("link", "https://blog.example.org/acme-review"),)
    assert review.engagement is not None
    assert review.engagement.reposts == 1
    # A broken handle cannot make a working link; the DID can.
    assert refund.url == (
        "https://bsky.app/profile/did:plc:gina0d3qw8s9t1v2x4y5z6a7/post/3lbysearch002"
    )
    assert refund.root_external_id.endswith("/3lbythread01")
    assert refund.parent_external_id is not None
    assert refund.parent_external_id.endswith("/3lbythread02")
    assert unboxing.language == "en"
    assert [m.type for m in unboxing.media] == ["image"]
    assert unboxing.media[0].url.endswith("/bafkreibox@jpeg")


async def test_malformed_posts_are_skipped_and_the_rest_of_the_page_is_kept(
    fake: FakeBluesky, base_url: str
) -> None:
    fake.posts = load_fixture("search_posts_malformed.json")["posts"]
    source = Source(base_url, {"mode": "search", "query": "acme"})

    result = await source.pull()

    assert sorted(m.text for m in result.mentions) == ["Acme after", "Acme before"]
    assert len(result.skipped) == 4
    assert all(s.reason and s.raw for s in result.skipped)
    assert not result.more
    assert (await source.pull()).mentions == []


async def test_the_session_is_created_once_and_reused_across_pulls(
    fake: FakeBluesky, base_url: str
) -> None:
    fake.add_posts(post_view("a", "hello", stamp(1)), notify="mention")
    source = Source(base_url, {"mode": "notifications"})

    first = await source.pull()
    assert first.credentials is not None
    assert first.credentials["did"] == fake.did
    assert first.credentials["access_jwt"]
    assert first.credentials["refresh_jwt"]
    assert first.credentials["app_password"] == APP_PASSWORD  # still there to sign in again

    for _ in range(3):
        assert (await source.pull()).credentials is None  # nothing new to persist
    assert fake.calls[CREATE] == 1
    assert fake.calls[REFRESH] == 0
    assert fake.calls[NOTIFICATIONS] == 4


async def test_an_expired_access_token_is_refreshed_and_the_new_tokens_returned(
    fake: FakeBluesky, base_url: str
) -> None:
    fake.add_posts(post_view("a", "hello", stamp(1)), notify="mention")
    source = Source(base_url, {"mode": "notifications"})
    await source.pull()
    old = dict(source.credentials)

    fake.expire_access_tokens()
    fake.add_posts(post_view("b", "still heard", stamp(2)), notify="mention")
    result = await source.pull()

    assert [m.text for m in result.mentions] == ["still heard"]
    assert result.credentials is not None
    assert result.credentials["access_jwt"] != old["access_jwt"]
    assert result.credentials["refresh_jwt"] != old["refresh_jwt"]
    assert (fake.calls[CREATE], fake.calls[REFRESH]) == (1, 1)

    await source.pull()  # the refreshed token is used as it is
    assert (fake.calls[CREATE], fake.calls[REFRESH]) == (1, 1)


async def test_when_the_refresh_token_has_expired_too_it_signs_in_again(
    fake: FakeBluesky, base_url: str
) -> None:
    source = Source(base_url, {"mode": "notifications"})
    await source.pull()
    fake.expire_access_tokens()
    fake.expire_refresh_tokens()

    result = await source.pull()

    assert result.credentials is not None
    assert (fake.calls[CREATE], fake.calls[REFRESH]) == (2, 1)


async def test_a_wrong_app_password_is_auth_failed(fake: FakeBluesky, base_url: str) -> None:
    source = Source(base_url, {"mode": "notifications"})
    source.credentials["app_password"] = "wrong-pass-word-0000"

    with pytest.raises(AuthFailed, match="Invalid identifier or password"):
        await source.pull()
    assert fake.calls[NOTIFICATIONS] == 0


async def test_rate_limit_headers_are_reported_and_429_waits_until_reset(
    fake: FakeBluesky, base_url: str
) -> None:
    source = Source(base_url, {"mode": "notifications"})
    result = await source.pull()
    assert result.rate_limit is not None
    assert result.rate_limit.limit == 3000
    assert result.rate_limit.remaining is not None
    assert result.rate_limit.remaining < 3000
    assert result.rate_limit.reset_at is not None
    assert result.rate_limit.reset_at > datetime.now(UTC)

    fake.rate_limited_for = 120
    with pytest.raises(RateLimited) as caught:
        await source.pull()
    assert 100 < caught.value.retry_after_s <= 120


async def test_an_outage_or_an_unreachable_server_is_transient(
    fake: FakeBluesky, base_url: str
) -> None:
    fake.outage = True
    with pytest.raises(TransientError):
        await Source(base_url, {"mode": "notifications"}).pull()

    async with serve(FakeBluesky().app) as gone:
        pass  # the server has stopped: nothing listens on its port any more
    with pytest.raises(TransientError):
        await Source(gone, {"mode": "notifications"}).pull()


async def test_a_chosen_appview_is_asked_for_through_the_pds(
    fake: FakeBluesky, base_url: str
) -> None:
    appview = "did:web:api.bsky.app#bsky_appview"
    await Source(base_url, {"mode": "search", "query": "acme", "appview": appview}).pull()

    proxied = {r.method: r.headers.get("atproto-proxy") for r in fake.requests}
    assert proxied == {CREATE: None, SEARCH: appview}


def test_config_rejects_what_cannot_work() -> None:
    with pytest.raises(ValidationError, match="needs a non-empty query"):
        BlueskyConfig(mode="search", query="  ")
    with pytest.raises(ValidationError):
        BlueskyConfig(mode="notifications", limit=101)
    with pytest.raises(ValidationError, match="service reference"):
        BlueskyConfig(mode="notifications", appview="https://api.bsky.app")
    assert BlueskyConfig(mode="notifications").service == "https://bsky.social"


# --- replies to one of our posts ---------------------------------------------------------------

THREAD = "app.bsky.feed.getPostThread"
SPRING = "at://did:plc:4acmebrandq3n5x4lpzk7yq2/app.bsky.feed.post/3lcaspring001"


@dataclass
class TrackedPost:
    """What ingest persists for a tracked post between polls: its replies cursor (as JSON)."""

    base_url: str
    post: str = SPRING
    credentials: dict[str, Any] = field(
        default_factory=lambda: {"identifier": BRAND_HANDLE, "app_password": APP_PASSWORD}
    )
    cursor: str = "{}"

    async def poll(self) -> PullResult:
        config = BlueskyConfig.model_validate({"service": self.base_url, "mode": "notifications"})
        async with httpx.AsyncClient(timeout=5.0) as client:
            result = await BlueskyConnector().replies(
                client, config, dict(self.credentials), self.post, json.loads(self.cursor)
            )
        self.cursor = json.dumps(result.cursor)
        if result.credentials is not None:
            self.credentials = result.credentials
        return result


def spring_reply(rkey: str, text: str, at: datetime, parent: str, who: str = "eve") -> Any:
    return post_view(
        rkey,
        text,
        at.strftime("%Y-%m-%dT%H:%M:%S.%fZ"),
        did=f"did:plc:{who}000000000000000000000",
        handle=f"{who}.bsky.social",
        reply_to=parent,
        root=SPRING,
    )


def rkey_of(mention: FetchedMention) -> str:
    return mention.external_id.rsplit("/", 1)[-1]


async def test_replies_first_read_returns_the_whole_tree_oldest_first_threaded_to_our_post(
    fake: FakeBluesky, base_url: str
) -> None:
    fake.add_thread(load_fixture("get_post_thread.json")["thread"])

    result = await TrackedPost(base_url).poll()

    asked = [r.params for r in fake.requests if r.method == THREAD]
    assert asked == [[("uri", SPRING), ("depth", "50"), ("parentHeight", "0")]]
    # Blocked and deleted replies are passed over; the malformed one is skipped, not its reply.
    assert [rkey_of(m) for m in result.mentions] == [
        "3lcareply0001",
        "3lcareply0002",
        "3lcareply0003",
        "3lcareply0004",
        "3lcareply0005",
    ]
    alice, ours, carol, dave, bob = result.mentions
    assert {m.root_external_id for m in result.mentions} == {SPRING}
    assert [m.parent_external_id for m in result.mentions] == [
        SPRING,
        alice.external_id,
        ours.external_id,
        "at://did:plc:fred8b1ou6q7r9t0v2w3x4y5/app.bsky.feed.post/3lcabadreply1",
        SPRING,
    ]
    assert {m.kind for m in result.mentions} == {"reply"}
    assert (carol.text, carol.author.handle) == (
        "Wide 42 here, can confirm they fit",
        "carol.bsky.social",
    )
    assert carol.url == "https://bsky.app/profile/carol.bsky.social/post/3lcareply0003"
    assert alice.media == (
        Media(
            "image",
            "https://cdn.bsky.app/img/feed_fullsize/plain/"
            "did:plc:alice4x7kq2m3n5p6r7s8t9u/bafkreifeet@jpeg",
        ),
    )
    assert dave.language == "de"
    assert bob.engagement is not None
    assert bob.engagement.likes == 1
    assert [s.raw["uri"] for s in result.skipped] == [
        "at://did:plc:fred8b1ou6q7r9t0v2w3x4y5/app.bsky.feed.post/3lcabadreply1"
    ]
    assert "handle" in result.skipped[0].reason
    assert result.rate_limit is not None
    assert result.rate_limit.limit == 3000
    assert result.credentials is not None  # the session the first read created


async def test_replies_later_reads_return_only_new_replies_at_any_depth(
    fake: FakeBluesky, base_url: str
) -> None:
    fake.add_thread(load_fixture("get_post_thread.json")["thread"])
    tracked = TrackedPost(base_url)
    await tracked.poll()

    carol = "at://did:plc:carol6z9ms4o5p7r8t0u1v2w/app.bsky.feed.post/3lcareply0003"
    later = datetime(2026, 11, 12, 10, 0, tzinfo=UTC)
    fake.add_posts(
        spring_reply("3lcanew00001", "Any news on colours?", later, SPRING),
        spring_reply("3lcanew00002", "Mine fit too", later + timedelta(seconds=5), carol, "finn"),
    )
    second = await tracked.poll()
    assert [(m.text, m.parent_external_id) for m in second.mentions] == [
        ("Any news on colours?", SPRING),
        ("Mine fit too", carol),
    ]
    assert {m.root_external_id for m in second.mentions} == {SPRING}
    assert second.skipped == []  # the malformed reply was reported once, by the first read
    assert second.credentials is None  # the stored session was reused, not recreated
    assert fake.calls[CREATE] == 1

    # Indexed by another AppView a little behind the newest reply already read: still new.
    fake.add_posts(spring_reply("3lcalate0001", "late one", later - timedelta(minutes=2), SPRING))
    third = await tracked.poll()
    assert [m.text for m in third.mentions] == ["late one"]

    quiet = await tracked.poll()
    assert (quiet.mentions, quiet.skipped) == ([], [])


async def test_a_reply_heard_both_as_a_notification_and_in_the_thread_is_the_same_item(
    fake: FakeBluesky, base_url: str
) -> None:
    reply = spring_reply("3lcaboth0001", "Love the green pair", T0, SPRING)
    fake.add_posts(post_view("3lcaspring001", "Spring!", stamp(-60), did=fake.did))
    fake.add_posts(reply, notify="reply")

    (from_notifications,) = (await Source(base_url, {"mode": "notifications"}).pull()).mentions
    (from_thread,) = (await TrackedPost(base_url).poll()).mentions

    assert replace(from_thread, raw={}) == replace(from_notifications, raw={})


async def test_replies_below_the_depth_limit_are_read_from_where_the_thread_was_cut(
    fake: FakeBluesky, base_url: str
) -> None:
    fake.add_posts(post_view("3lcaspring001", "Spring!", stamp(0), did=fake.did))
    parent = SPRING
    for level in range(1, THREAD_DEPTH + 4):  # a long back-and-forth below our post
        post = spring_reply(
            f"3lcachain{level:03}", f"level {level}", T0 + timedelta(seconds=level), parent
        )
        fake.add_posts(post)
        parent = post["uri"]

    result = await TrackedPost(base_url).poll()

    assert [m.text for m in result.mentions] == [f"level {n}" for n in range(1, THREAD_DEPTH + 4)]
    assert [m.parent_external_id for m in result.mentions[1:]] == ids(result.mentions[:-1])
    asked = [dict(r.params)["uri"] for r in fake.requests if r.method == THREAD]
    assert asked == [SPRING, result.mentions[THREAD_DEPTH - 1].external_id]


async def test_replies_errors_are_the_ones_the_scheduler_acts_on(
    fake: FakeBluesky, base_url: str
) -> None:
    fake.add_thread(load_fixture("get_post_thread.json")["thread"])
    wrong = TrackedPost(base_url, credentials={"identifier": BRAND_HANDLE, "app_password": "x"})
    with pytest.raises(AuthFailed):
        await wrong.poll()

    tracked = TrackedPost(base_url)
    await tracked.poll()
    fake.rate_limited_for = 90
    with pytest.raises(RateLimited) as caught:
        await tracked.poll()
    assert 70 < caught.value.retry_after_s <= 90

    fake.rate_limited_for, fake.outage = None, True
    with pytest.raises(TransientError):
        await tracked.poll()

    fake.outage = False
    missing = "at://did:plc:4acmebrandq3n5x4lpzk7yq2/app.bsky.feed.post/3lcanothere1"
    with pytest.raises(BadConfig, match="NotFound"):
        await TrackedPost(base_url, post=missing).poll()
    threads_asked = fake.calls[THREAD]
    with pytest.raises(BadConfig, match="not an at://"):
        await TrackedPost(base_url, post="https://bsky.app/profile/acme/post/3lcaspring001").poll()
    assert fake.calls[THREAD] == threads_asked


async def test_replies_refresh_an_expired_session_and_hand_back_the_new_tokens(
    fake: FakeBluesky, base_url: str
) -> None:
    fake.add_thread(load_fixture("get_post_thread.json")["thread"])
    tracked = TrackedPost(base_url)
    await tracked.poll()
    old = dict(tracked.credentials)
    fake.expire_access_tokens()

    result = await tracked.poll()

    assert result.credentials is not None
    assert result.credentials["access_jwt"] != old["access_jwt"]
    assert result.credentials["app_password"] == APP_PASSWORD
    assert (fake.calls[CREATE], fake.calls[REFRESH]) == (1, 1)
