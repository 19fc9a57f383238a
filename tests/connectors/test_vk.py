"""The VK connector against fixture Callback API events (webhook) and a local VK API
(newsfeed.search for pull, wall.getComments for replies to our posts)."""

from __future__ import annotations

import json
from collections.abc import AsyncIterator
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import httpx
import pytest

from services.ingest.connectors.base import (
    AuthFailed,
    BadConfig,
    ConnectorError,
    Engagement,
    FetchedMention,
    Media,
    RateLimited,
    SignatureInvalid,
    TransientError,
    WebhookRequest,
)
from services.ingest.connectors.vk import VkConfig, VkConnector
from tests.fakes.server import serve
from tests.fakes.vk import FakeVkApi

FIXTURES = Path(__file__).parents[1] / "fixtures/vk"
CALLBACK = json.loads((FIXTURES / "callback_events.json").read_text())
EVENTS: dict[str, dict[str, Any]] = CALLBACK["events"]
SEARCH_INDEX = json.loads((FIXTURES / "newsfeed_search.json").read_text())
COMMENTS = json.loads((FIXTURES / "wall_get_comments.json").read_text())
OUR_POST: str = COMMENTS["post"]
GROUP_ID: int = CALLBACK["group_id"]
SECRET = "callback-secret-key"
CODE = "a1b2c3d4"
TOKEN = "vk1.a.fake-service-token-for-tests"
CONNECTOR = VkConnector()
CALLBACK_CONFIG = VkConfig(group_id=GROUP_ID, confirmation_code=CODE)


def delivery(event: dict[str, Any], secret: str | None = SECRET) -> WebhookRequest:
    body = dict(event)
    if secret is not None:
        body["secret"] = secret
    return WebhookRequest(
        "POST", {"content-type": "application/json"}, {}, json.dumps(body).encode()
    )


def parse_one(name: str) -> FetchedMention:
    result = CONNECTOR.parse(delivery(EVENTS[name]), CALLBACK_CONFIG)
    assert result.skipped == []
    assert len(result.mentions) == 1, name
    assert result.reply.body == b"ok"
    return result.mentions[0]


# --- Callback API: confirmation and the secret key ---------------------------------------------


def test_the_confirmation_request_is_answered_with_exactly_the_code() -> None:
    reply = CONNECTOR.handshake(delivery(EVENTS["confirmation"], None), CALLBACK_CONFIG, {})
    assert reply is not None
    assert (reply.status, reply.body, reply.content_type) == (200, CODE.encode(), "text/plain")
    # With a secret key set, VK sends it in the confirmation too; the right one passes.
    secured = CONNECTOR.handshake(
        delivery(EVENTS["confirmation"]), CALLBACK_CONFIG, {"secret": SECRET}
    )
    assert secured is not None
    assert secured.body == CODE.encode()


def test_a_confirmation_for_another_community_or_with_a_wrong_secret_is_refused() -> None:
    other = {**EVENTS["confirmation"], "group_id": GROUP_ID + 1}
    with pytest.raises(SignatureInvalid):
        CONNECTOR.handshake(delivery(other, None), CALLBACK_CONFIG, {})
    with pytest.raises(SignatureInvalid):
        CONNECTOR.handshake(
            delivery(EVENTS["confirmation"], "wrong"), CALLBACK_CONFIG, {"secret": SECRET}
        )


def test_a_confirmation_without_a_code_configured_is_a_configuration_error() -> None:
    with pytest.raises(BadConfig):
        CONNECTOR.handshake(delivery(EVENTS["confirmation"], None), VkConfig(group_id=GROUP_ID), {})


def test_events_are_not_handshakes() -> None:
    assert CONNECTOR.handshake(delivery(EVENTS["wall_reply_new"]), CALLBACK_CONFIG, {}) is None


def test_an_event_with_the_right_secret_key_is_accepted() -> None:
    CONNECTOR.verify(delivery(EVENTS["wall_reply_new"]), CALLBACK_CONFIG, {"secret": SECRET})


@pytest.mark.parametrize(
    ("event", "secret", "secrets"),
    [
        (EVENTS["wall_reply_new"], None, {"secret": SECRET}),
        (EVENTS["wall_reply_new"], "wrong", {"secret": SECRET}),
        (EVENTS["wall_reply_new"], SECRET, {}),
        ({**EVENTS["wall_reply_new"], "group_id": 1}, SECRET, {"secret": SECRET}),
    ],
    ids=["missing", "wrong", "unconfigured", "other-community"],
)
def test_an_event_without_the_right_secret_key_is_refused(
    event: dict[str, Any], secret: str | None, secrets: dict[str, Any]
) -> None:
    with pytest.raises(SignatureInvalid):
        CONNECTOR.verify(delivery(event, secret), CALLBACK_CONFIG, secrets)


def test_a_body_that_is_not_json_is_refused_by_verify() -> None:
    with pytest.raises(SignatureInvalid):
        CONNECTOR.verify(
            WebhookRequest("POST", {}, {}, b"secret=" + SECRET.encode()),
            CALLBACK_CONFIG,
            {"secret": SECRET},
        )


# --- Callback API: what each event becomes -----------------------------------------------------


def test_a_new_wall_post_is_a_post_with_its_photo() -> None:
    post = parse_one("wall_post_new")
    assert post.kind == "post"
    assert post.external_id == post.root_external_id == "-215000000_120"
    assert post.url == "https://vk.com/wall-215000000_120"
    assert post.author.id == "-215000000"
    assert post.author.handle == "club215000000"
    assert post.media == (Media("image", "https://sun9-1.userapi.com/s/v1/ig2/large.jpg"),)
    assert post.engagement == Engagement(likes=0, reposts=0, replies=0, views=1)


def test_a_comment_threads_under_its_post() -> None:
    comment = parse_one("wall_reply_new")
    assert comment.kind == "comment"
    assert comment.external_id == "-215000000_120_501"
    assert comment.root_external_id == comment.parent_external_id == "-215000000_120"
    assert comment.text == "Когда будет доставка в Казань?"
    assert comment.author.id == "3141592"
    assert comment.author.handle == "id3141592"
    assert comment.url == "https://vk.com/wall-215000000_120?reply=501"
    assert comment.created_at == datetime.fromtimestamp(1762000300, UTC)
    assert not comment.deleted
    assert comment.edited_at is None


def test_a_reply_to_a_comment_names_that_comment_as_parent() -> None:
    reply = parse_one("wall_reply_new_to_comment")
    assert reply.parent_external_id == "-215000000_120_501"
    assert reply.root_external_id == "-215000000_120"
    assert reply.author.id == "-215000000"  # the community answered
    assert reply.url == "https://vk.com/wall-215000000_120?reply=502&thread=501"


def test_an_edited_comment_keeps_its_id_and_is_marked_edited() -> None:
    edited = parse_one("wall_reply_edit")
    assert edited.external_id == parse_one("wall_reply_new").external_id
    assert edited.text == "Когда будет доставка в Казань и Уфу?"
    assert edited.edited_at is not None


def test_a_deleted_comment_is_a_tombstone_for_the_same_id() -> None:
    deleted = parse_one("wall_reply_delete")
    assert deleted.deleted
    assert deleted.external_id == parse_one("wall_reply_new").external_id
    assert deleted.root_external_id == "-215000000_120"


def test_other_event_types_are_acknowledged_with_ok_and_ignored() -> None:
    result = CONNECTOR.parse(delivery(EVENTS["group_join"]), CALLBACK_CONFIG)
    assert (result.mentions, result.skipped) == ([], [])
    assert (result.reply.status, result.reply.body) == (200, b"ok")


@pytest.mark.parametrize(
    "body", [json.dumps(EVENTS["wall_reply_new_without_post"]).encode(), b"<xml/>"]
)
def test_a_malformed_event_is_skipped_and_still_acknowledged(body: bytes) -> None:
    result = CONNECTOR.parse(WebhookRequest("POST", {}, {}, body), CALLBACK_CONFIG)
    assert result.mentions == []
    assert len(result.skipped) == 1
    assert result.reply.body == b"ok"


# --- pull: newsfeed.search against the local VK API --------------------------------------------


@pytest.fixture
async def vk_api() -> AsyncIterator[tuple[FakeVkApi, VkConfig]]:
    fake = FakeVkApi(TOKEN)
    fake.posts = [dict(p) for p in SEARCH_INDEX["posts"]]
    fake.profiles = SEARCH_INDEX["profiles"]
    fake.groups = SEARCH_INDEX["groups"]
    async with serve(fake.app) as base_url:
        yield fake, VkConfig(api_base=f"{base_url}/method", query="acme", page_size=2)


@pytest.fixture
async def client() -> AsyncIterator[httpx.AsyncClient]:
    async with httpx.AsyncClient(timeout=10.0) as http:
        yield http


CREDENTIALS = {"access_token": TOKEN}


async def sweep(
    client: httpx.AsyncClient, config: VkConfig, cursor: dict[str, Any]
) -> tuple[list[list[str]], dict[str, Any]]:
    """Pull pages until the connector says there is no more; the ids of each page."""
    pages: list[list[str]] = []
    for _ in range(10):
        page = await CONNECTOR.pull(client, config, CREDENTIALS, cursor)
        pages.append([m.external_id for m in page.mentions])
        cursor = page.cursor
        if not page.more:
            return pages, cursor
    raise AssertionError("the sweep never ended")


async def test_a_sweep_pages_with_next_from_newest_first(
    vk_api: tuple[FakeVkApi, VkConfig], client: httpx.AsyncClient
) -> None:
    fake, config = vk_api
    pages, cursor = await sweep(client, config, {})
    assert pages == [["3141592_901", "-3000001_55"], ["3141592_902", "2718281_17"], ["2718281_18"]]
    assert [r["form"].get("start_from") for r in fake.requests] == [None, "2/fake", "4/fake"]
    assert cursor["since"] == 1762003600
    # The token travels in the form body, never in a URL that a log might keep.
    assert all("access_token" not in r["query"] for r in fake.requests)
    assert {r["form"]["v"] for r in fake.requests} == {"5.199"}


async def test_the_next_sweep_hears_only_new_posts_even_in_the_same_second(
    vk_api: tuple[FakeVkApi, VkConfig], client: httpx.AsyncClient
) -> None:
    fake, config = vk_api
    _, cursor = await sweep(client, config, {})
    # One post in the very second of the previous sweep's newest, two later ones.
    fake.posts += [
        {"id": 903, "owner_id": 3141592, "from_id": 3141592, "date": 1762003600, "text": "acme!"},
        {"id": 20, "owner_id": 2718281, "from_id": 2718281, "date": 1762004000, "text": "ACME"},
        {"id": 21, "owner_id": 2718281, "from_id": 2718281, "date": 1762005000, "text": "acme"},
    ]
    pages, cursor = await sweep(client, config, cursor)
    heard = [external_id for page in pages for external_id in page]
    assert sorted(heard) == ["2718281_20", "2718281_21", "3141592_903"]
    assert fake.requests[-1]["form"]["start_time"] == "1762003600"
    nothing_new, _ = await sweep(client, config, cursor)
    assert nothing_new == [[]]


async def test_a_crash_mid_sweep_resumes_from_the_saved_page(
    vk_api: tuple[FakeVkApi, VkConfig], client: httpx.AsyncClient
) -> None:
    _, config = vk_api
    first = await CONNECTOR.pull(client, config, CREDENTIALS, {})
    # The second page was fetched but ingest died before saving its cursor: it comes again.
    lost = await CONNECTOR.pull(client, config, CREDENTIALS, first.cursor)
    again = await CONNECTOR.pull(client, config, CREDENTIALS, first.cursor)
    assert [m.external_id for m in again.mentions] == [m.external_id for m in lost.mentions]
    rest, _ = await sweep(client, config, again.cursor)
    assert rest == [["2718281_18"]]


async def test_a_backfill_searches_again_from_its_start_time_and_then_listens_on(
    vk_api: tuple[FakeVkApi, VkConfig], client: httpx.AsyncClient
) -> None:
    fake, config = vk_api
    _, cursor = await sweep(client, config, {})
    # Posted since the last sweep, not pulled yet.
    fake.posts.append(
        {"id": 30, "owner_id": 2718281, "from_id": 2718281, "date": 1762004000, "text": "acme"}
    )

    # Half a second before 902's date: the bound is the next whole second, 902's own.
    since = datetime.fromtimestamp(1762001999.5, UTC)
    pages, cursor = await sweep(client, config, CONNECTOR.backfill_cursor(since))

    heard = [external_id for page in pages for external_id in page]
    assert sorted(heard) == ["-3000001_55", "2718281_30", "3141592_901", "3141592_902"]
    assert len(pages) == 2  # paged with next_from
    assert fake.requests[-1]["form"]["start_time"] == "1762002000"
    fake.posts.append(
        {"id": 31, "owner_id": 2718281, "from_id": 2718281, "date": 1762005000, "text": "acme"}
    )
    after, _ = await sweep(client, config, cursor)
    assert after == [["2718281_31"]]


async def test_posts_carry_authors_links_and_counts(
    vk_api: tuple[FakeVkApi, VkConfig], client: httpx.AsyncClient
) -> None:
    _, config = vk_api
    page = await CONNECTOR.pull(client, config, CREDENTIALS, {})
    person, community = page.mentions
    assert person.kind == "post"
    assert person.text == "Купил ботинки ACME, очень довольна"
    assert person.url == "https://vk.com/wall3141592_901"
    assert (person.author.id, person.author.handle) == ("3141592", "masha_iv")
    assert person.author.display_name == "Мария Иванова"
    assert (person.author.followers, person.author.verified) == (310, False)
    assert person.engagement == Engagement(likes=12, reposts=1, replies=3, views=450)
    assert person.created_at == datetime.fromtimestamp(1762003600, UTC)
    assert (community.author.id, community.author.handle) == ("-3000001", "shoe_review")
    assert (community.author.followers, community.author.verified) == (48000, True)
    assert community.media == (Media("link", "https://example.org/review"),)


async def test_a_malformed_post_is_skipped_and_the_page_goes_on(
    vk_api: tuple[FakeVkApi, VkConfig], client: httpx.AsyncClient
) -> None:
    fake, config = vk_api
    fake.posts.append({"id": 999, "owner_id": 5, "date": 1762009999, "text": "acme, no author"})
    page = await CONNECTOR.pull(client, config, CREDENTIALS, {})
    assert [m.external_id for m in page.mentions] == ["3141592_901"]
    assert [s.raw["id"] for s in page.skipped] == [999]


@pytest.mark.parametrize(
    ("code", "error"),
    [
        (5, AuthFailed),
        (6, RateLimited),
        (9, RateLimited),
        (29, RateLimited),
        (10, TransientError),
        (100, BadConfig),
    ],
)
async def test_vk_errors_in_a_200_answer_are_told_apart(
    vk_api: tuple[FakeVkApi, VkConfig],
    client: httpx.AsyncClient,
    code: int,
    error: type[ConnectorError],
) -> None:
    fake, config = vk_api
    fake.errors.append((code, "from the fake"))
    with pytest.raises(error, match=f"error {code}"):
        await CONNECTOR.pull(client, config, CREDENTIALS, {})


async def test_a_rate_limit_says_how_long_to_wait(
    vk_api: tuple[FakeVkApi, VkConfig], client: httpx.AsyncClient
) -> None:
    fake, config = vk_api
    fake.errors.append((6, "Too many requests per second"))
    with pytest.raises(RateLimited) as caught:
        await CONNECTOR.pull(client, config, CREDENTIALS, {})
    assert caught.value.retry_after_s > 0
    assert len((await CONNECTOR.pull(client, config, CREDENTIALS, {})).mentions) == 2


async def test_a_revoked_token_asks_for_reconnection(
    vk_api: tuple[FakeVkApi, VkConfig], client: httpx.AsyncClient
) -> None:
    _, config = vk_api
    with pytest.raises(AuthFailed, match="reconnect"):
        await CONNECTOR.pull(client, config, {"access_token": "revoked"}, {})


async def test_an_unavailable_api_is_transient(
    vk_api: tuple[FakeVkApi, VkConfig], client: httpx.AsyncClient
) -> None:
    fake, config = vk_api
    fake.http_status = 503
    with pytest.raises(TransientError):
        await CONNECTOR.pull(client, config, CREDENTIALS, {})


async def test_searching_without_a_query_is_a_configuration_error(
    vk_api: tuple[FakeVkApi, VkConfig], client: httpx.AsyncClient
) -> None:
    fake, config = vk_api
    with pytest.raises(BadConfig):
        await CONNECTOR.pull(client, config.model_copy(update={"query": None}), CREDENTIALS, {})
    assert fake.requests == []


# --- replies: wall.getComments under one of our posts ------------------------------------------


@pytest.fixture
async def comments_api() -> AsyncIterator[tuple[FakeVkApi, VkConfig]]:
    fake = FakeVkApi(TOKEN)
    fake.comments = {OUR_POST: [dict(c) for c in COMMENTS["comments"]]}
    fake.profiles = COMMENTS["profiles"]
    fake.groups = COMMENTS["groups"]
    async with serve(fake.app) as base_url:
        yield fake, VkConfig(api_base=f"{base_url}/method", group_id=GROUP_ID)


def comment(
    comment_id: int, text: str, *, thread: int | None = None, answers: int | None = None
) -> dict[str, Any]:
    """A comment as VK stores it on our post; `thread` is the top-level comment it sits under."""
    return {
        "id": comment_id,
        "from_id": 2718281,
        "date": 1762001000 + comment_id,
        "text": text,
        "post_id": 120,
        "owner_id": -215000000,
        "parents_stack": [thread] if thread else [],
        **({"reply_to_comment": answers} if answers else {}),
    }


def threads(mentions: list[FetchedMention]) -> list[tuple[str, str, str | None]]:
    return [(m.external_id, m.root_external_id, m.parent_external_id) for m in mentions]


async def test_the_first_call_returns_every_reply_oldest_first_with_its_parent(
    comments_api: tuple[FakeVkApi, VkConfig], client: httpx.AsyncClient
) -> None:
    fake, config = comments_api
    result = await CONNECTOR.replies(client, config, CREDENTIALS, OUR_POST, {})
    post = OUR_POST
    assert threads(result.mentions) == [
        (f"{post}_501", post, post),
        (f"{post}_502", post, f"{post}_501"),
        (f"{post}_503", post, post),
        (f"{post}_504", post, f"{post}_502"),  # a reply to a reply
        (f"{post}_506", post, f"{post}_505"),  # under a comment since deleted
    ]
    assert result.skipped == []
    first = result.mentions[0]
    assert (first.kind, first.text) == ("comment", "Когда будет доставка в Казань?")
    assert first.created_at == datetime.fromtimestamp(1762000300, UTC)
    assert (first.author.handle, first.author.display_name) == ("masha_iv", "Мария Иванова")
    assert result.mentions[1].author.handle == "acme_shoes"  # our community answered
    assert result.mentions[1].url == "https://vk.com/wall-215000000_120?reply=502&thread=501"
    # One call: comments oldest first with their threads inlined, authors included.
    assert fake.methods == ["wall.getComments"]
    sent = fake.requests[0]["form"]
    assert (sent["owner_id"], sent["post_id"], sent["sort"]) == ("-215000000", "120", "asc")
    assert (sent["thread_items_count"], sent["extended"]) == ("10", "1")
    assert all("access_token" not in r["query"] for r in fake.requests)


async def test_replies_have_the_ids_the_callback_api_gives_them(
    comments_api: tuple[FakeVkApi, VkConfig], client: httpx.AsyncClient
) -> None:
    _, config = comments_api
    result = await CONNECTOR.replies(client, config, CREDENTIALS, OUR_POST, {})
    by_id = {m.external_id: m for m in result.mentions}
    for event in ("wall_reply_new", "wall_reply_new_to_comment"):
        heard = parse_one(event)
        polled = by_id[heard.external_id]
        assert (polled.root_external_id, polled.parent_external_id, polled.text) == (
            heard.root_external_id,
            heard.parent_external_id,
            heard.text,
        )


async def test_the_next_call_returns_only_new_replies_wherever_they_landed(
    comments_api: tuple[FakeVkApi, VkConfig], client: httpx.AsyncClient
) -> None:
    fake, config = comments_api
    first = await CONNECTOR.replies(client, config, CREDENTIALS, OUR_POST, {})
    fake.comments[OUR_POST] += [
        comment(507, "И в Самару?", thread=501, answers=504),  # deep in an old thread
        comment(508, "Спасибо за ответ"),
    ]
    second = await CONNECTOR.replies(client, config, CREDENTIALS, OUR_POST, first.cursor)
    assert threads(second.mentions) == [
        (f"{OUR_POST}_507", OUR_POST, f"{OUR_POST}_504"),
        (f"{OUR_POST}_508", OUR_POST, OUR_POST),
    ]
    third = await CONNECTOR.replies(client, config, CREDENTIALS, OUR_POST, second.cursor)
    assert third.mentions == []
    assert third.cursor == second.cursor


async def test_long_threads_and_many_comments_are_read_page_by_page(
    comments_api: tuple[FakeVkApi, VkConfig], client: httpx.AsyncClient
) -> None:
    fake, config = comments_api
    config = config.model_copy(update={"page_size": 2})
    long_thread = [comment(600 + n, f"ответ {n}", thread=503, answers=503) for n in range(12)]
    fake.comments[OUR_POST] += long_thread
    first = await CONNECTOR.replies(client, config, CREDENTIALS, OUR_POST, {})
    ids = [m.external_id for m in first.mentions]
    assert ids == sorted(set(ids), key=lambda i: int(i.rsplit("_", 1)[1]))
    assert {f"{OUR_POST}_{c['id']}" for c in long_thread} <= set(ids)
    assert len(ids) == 5 + len(long_thread)
    assert {m.parent_external_id for m in first.mentions[-12:]} == {f"{OUR_POST}_503"}

    # A new reply at the end of the long thread: its thread is read newest first and reading
    # stops at what was already delivered instead of re-reading all of it.
    fake.comments[OUR_POST].append(comment(700, "ещё вопрос", thread=503, answers=611))
    before = len(fake.requests)
    second = await CONNECTOR.replies(client, config, CREDENTIALS, OUR_POST, first.cursor)
    assert [m.external_id for m in second.mentions] == [f"{OUR_POST}_700"]
    thread_reads = [r["form"] for r in fake.requests[before:] if "comment_id" in r["form"]]
    assert [(r["comment_id"], r["sort"]) for r in thread_reads] == [("503", "desc")]


async def test_a_malformed_reply_is_skipped_and_the_rest_delivered(
    comments_api: tuple[FakeVkApi, VkConfig], client: httpx.AsyncClient
) -> None:
    fake, config = comments_api
    broken = comment(509, "без автора и даты", thread=501, answers=501)
    del broken["from_id"], broken["date"]
    fake.comments[OUR_POST].append(broken)
    result = await CONNECTOR.replies(client, config, CREDENTIALS, OUR_POST, {})
    assert [s.raw["id"] for s in result.skipped] == [509]
    assert len(result.mentions) == 5
    # Skipped once, not on every poll after.
    again = await CONNECTOR.replies(client, config, CREDENTIALS, OUR_POST, result.cursor)
    assert (again.mentions, again.skipped) == ([], [])


@pytest.mark.parametrize(
    ("code", "error"),
    [(5, AuthFailed), (6, RateLimited), (9, RateLimited), (10, TransientError)],
)
async def test_vk_errors_while_reading_replies_are_told_apart(
    comments_api: tuple[FakeVkApi, VkConfig],
    client: httpx.AsyncClient,
    code: int,
    error: type[ConnectorError],
) -> None:
    fake, config = comments_api
    fake.errors.append((code, "from the fake"))
    with pytest.raises(error, match=f"error {code}"):
        await CONNECTOR.replies(client, config, CREDENTIALS, OUR_POST, {})


@pytest.mark.parametrize(
    ("status", "error"),
    [(401, AuthFailed), (403, AuthFailed), (429, RateLimited), (503, TransientError)],
)
async def test_http_errors_while_reading_replies_are_mapped(
    comments_api: tuple[FakeVkApi, VkConfig],
    client: httpx.AsyncClient,
    status: int,
    error: type[ConnectorError],
) -> None:
    fake, config = comments_api
    fake.http_status = status
    with pytest.raises(error):
        await CONNECTOR.replies(client, config, CREDENTIALS, OUR_POST, {})


async def test_a_revoked_token_or_a_rate_limit_leaves_the_cursor_to_retry(
    comments_api: tuple[FakeVkApi, VkConfig], client: httpx.AsyncClient
) -> None:
    fake, config = comments_api
    with pytest.raises(AuthFailed, match="reconnect"):
        await CONNECTOR.replies(client, config, {"access_token": "revoked"}, OUR_POST, {})
    with pytest.raises(AuthFailed):
        await CONNECTOR.replies(client, config, {}, OUR_POST, {})
    fake.errors.append((6, "Too many requests per second"))
    with pytest.raises(RateLimited) as caught:
        await CONNECTOR.replies(client, config, CREDENTIALS, OUR_POST, {})
    assert caught.value.retry_after_s > 0
    assert len((await CONNECTOR.replies(client, config, CREDENTIALS, OUR_POST, {})).mentions) == 5


async def test_replies_to_something_that_is_not_a_wall_post_id_are_a_configuration_error(
    comments_api: tuple[FakeVkApi, VkConfig], client: httpx.AsyncClient
) -> None:
    fake, config = comments_api
    for bad in ("120", "-215000000_120_501", "wall-215000000_120", "-2_1_2"):
        with pytest.raises(BadConfig):
            await CONNECTOR.replies(client, config, CREDENTIALS, bad, {})
    assert fake.requests == []
    with pytest.raises(BadConfig, match="error 100"):
        await CONNECTOR.replies(client, config, CREDENTIALS, "-215000000_999", {})
