"""The RSS/Atom connector against a local web server publishing feeds: RSS 2.0 and Atom
normalisation, conditional GET, resumption without repeats, and what a broken feed raises."""

from __future__ import annotations

import json
from collections.abc import AsyncIterator
from datetime import UTC, datetime
from typing import Any

import httpx
import pytest
from pydantic import ValidationError

from services.ingest.connectors.base import (
    BadConfig,
    FetchedMention,
    Media,
    PullResult,
    TransientError,
)
from services.ingest.connectors.rss import SEEN_MAX, RssConfig, RssConnector
from tests.fakes.rss import FakeFeeds
from tests.fakes.server import serve

NEW_ITEM = """<item>
  <title>Acme answers the recall questions</title>
  <link>https://news.example.com/2026/11/acme-answers</link>
  <guid isPermaLink="false">news.example.com/article/8840</guid>
  <pubDate>Wed, 04 Nov 2026 08:00:00 GMT</pubDate>
  <description>&lt;p&gt;Customers can swap at any store.&lt;/p&gt;</description>
</item>"""


@pytest.fixture
def fake() -> FakeFeeds:
    return FakeFeeds.with_fixtures()


@pytest.fixture
async def base_url(fake: FakeFeeds) -> AsyncIterator[str]:
    async with serve(fake.app) as url:
        yield url


async def pull(base_url: str, feed: str, cursor: dict[str, Any] | None = None) -> PullResult:
    """One pull by a fresh connector, the cursor round-tripped through JSON as ingest stores it."""
    config = RssConfig(feed_url=f"{base_url}/feeds/{feed}", kind="news")
    async with httpx.AsyncClient(timeout=5.0) as client:
        result = await RssConnector().pull(client, config, {}, json.loads(json.dumps(cursor or {})))
    json.dumps(result.cursor)  # must stay storable
    return result


def by_title(mentions: list[FetchedMention]) -> dict[str, FetchedMention]:
    return {m.text.split("\n")[0]: m for m in mentions}


async def test_rss_items_are_normalised_and_the_malformed_one_is_skipped(base_url: str) -> None:
    result = await pull(base_url, "rss2.xml")

    items = by_title(result.mentions)
    assert list(items) == [
        "Acme recalls running shoes",
        "Shoe prices rise & shoppers shrug",
        "Opinion: what Acme gets right",
    ]
    assert len(result.skipped) == 1
    assert "no id/guid, link or title" in result.skipped[0].reason

    recall = items["Acme recalls running shoes"]
    assert recall.network == "rss"
    assert recall.kind == "post"
    assert recall.external_id == "news.example.com/article/8812"  # the guid
    assert recall.root_external_id == recall.external_id
    assert recall.url == "https://news.example.com/2026/11/acme-recall"
    assert recall.text == (
        "Acme recalls running shoes\n\n"
        "Acme is recalling the Sprint\xa02 after complaints.\n"
        "Refunds & exchanges are offered."
    )
    assert recall.created_at == datetime(2026, 11, 3, 8, 30, tzinfo=UTC)  # +0100 in the feed
    assert recall.author.handle == "Jane Doe"
    assert recall.language == "en-gb"  # the channel's <language>
    assert recall.media == (Media("image", "https://news.example.com/img/sprint2.jpg"),)
    assert recall.engagement is not None
    assert recall.engagement.replies == 12

    prices = items["Shoe prices rise & shoppers shrug"]
    assert prices.external_id == "https://news.example.com/2026/11/prices"  # no guid: the link
    # content:encoded is the full text; it wins over the short description.
    assert prices.text.endswith("Prices at Acme and others rose 4%.\nShoppers did not mind.")
    assert (prices.author.handle, prices.author.id) == ("Retail Desk", "desk@news.example.com")

    opinion = items["Opinion: what Acme gets right"]
    assert opinion.external_id.startswith("sha256:")  # neither guid nor link
    assert opinion.url is None
    assert opinion.author.handle == "Daily Retail News"  # no author: the publication


async def test_atom_entries_are_normalised(base_url: str) -> None:
    result = await pull(base_url, "atom.xml")

    review, guest = result.mentions
    assert review.external_id == "tag:blog.example.fr,2026:post-41"
    assert review.url == "https://blog.example.fr/2026/11/avis-sprint-2"
    # The html title and content lose their markup; entities are decoded.
    assert review.text == "Acme Sprint 2 : notre avis\n\nLa Sprint 2 d\u2019Acme est légère."
    assert review.language == "fr"
    assert review.created_at == datetime(2026, 11, 3, 10, 0, tzinfo=UTC)
    assert review.edited_at == datetime(2026, 11, 3, 14, 30, tzinfo=UTC)
    assert (review.author.handle, review.author.id) == (
        "Marie Curie",
        "https://blog.example.fr/auteurs/marie",
    )

    assert guest.text == "An English guest post\n\nAcme runs true to size."
    assert guest.language == "en"  # the entry's own xml:lang
    assert guest.created_at == datetime(2026, 11, 2, 8, 0, tzinfo=UTC)  # only <updated>
    assert guest.author.handle == "Équipe du blog"  # the feed's author (RFC 4287 4.2.1)
    assert result.skipped == []


async def test_an_unchanged_feed_answers_304_and_the_cursor_stays(
    fake: FakeFeeds, base_url: str
) -> None:
    first = await pull(base_url, "atom.xml")
    assert first.cursor["etag"] == '"v1"'
    assert first.cursor["last_modified"].endswith("GMT")

    again = await pull(base_url, "atom.xml", first.cursor)

    asked = fake.requests[-1]
    assert asked.headers["if-none-match"] == '"v1"'
    assert asked.headers["if-modified-since"] == first.cursor["last_modified"]
    assert asked.status == 304
    assert again.mentions == []
    assert again.cursor == first.cursor


async def test_a_new_entry_is_the_only_thing_heard_on_the_next_pull(
    fake: FakeFeeds, base_url: str
) -> None:
    first = await pull(base_url, "rss2.xml")
    fake.add_entry("rss2.xml", NEW_ITEM)

    second = await pull(base_url, "rss2.xml", first.cursor)

    assert fake.requests[-1].status == 200
    assert [m.external_id for m in second.mentions] == ["news.example.com/article/8840"]
    assert second.mentions[0].text == (
        "Acme answers the recall questions\n\nCustomers can swap at any store."
    )
    assert second.cursor["etag"] == '"v2"'


async def test_without_validators_seen_ids_still_prevent_repeats(
    fake: FakeFeeds, base_url: str
) -> None:
    fake.conditional = False  # a server that never answers 304 nor sends validators
    first = await pull(base_url, "rss2.xml")
    assert "etag" not in first.cursor

    repeat = await pull(base_url, "rss2.xml", first.cursor)
    assert repeat.mentions == []
    fake.add_entry("rss2.xml", NEW_ITEM)
    after = await pull(base_url, "rss2.xml", repeat.cursor)
    assert [m.external_id for m in after.mentions] == ["news.example.com/article/8840"]


async def test_seen_ids_are_bounded(fake: FakeFeeds, base_url: str) -> None:
    old = [f"old-{i}" for i in range(SEEN_MAX)]
    result = await pull(base_url, "atom.xml", {"seen": old})

    assert len(result.cursor["seen"]) == SEEN_MAX
    # The feed's own entries are kept; the oldest remembered ids make room for them.
    assert result.cursor["seen"][:2] == [m.external_id for m in result.mentions]
    assert result.cursor["seen"][-1] == old[SEEN_MAX - 3]


async def test_a_web_page_instead_of_a_feed_is_bad_config(base_url: str) -> None:
    with pytest.raises(BadConfig, match=r"not an RSS or Atom feed \(content-type 'text/html"):
        await pull(base_url, "not_a_feed.html")


async def test_http_errors_map_to_bad_config_or_transient(fake: FakeFeeds, base_url: str) -> None:
    with pytest.raises(BadConfig, match="HTTP 404"):
        await pull(base_url, "moved-away.xml")
    fake.status["rss2.xml"] = 503
    with pytest.raises(TransientError, match="HTTP 503"):
        await pull(base_url, "rss2.xml")

    async with serve(FakeFeeds().app) as gone:
        pass  # stopped: nothing listens there now
    with pytest.raises(TransientError):
        await pull(gone, "rss2.xml")


def test_feed_url_must_be_http() -> None:
    with pytest.raises(ValidationError, match="http"):
        RssConfig(feed_url="file:///etc/passwd")
    with pytest.raises(ValidationError):
        RssConfig(feed_url="https://news.example.com/feed", kind="podcast")
