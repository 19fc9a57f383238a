"""Hiding a comment at the inbox's request, across networks: the networks that cannot hide refuse
for good without calling anyone, the outcome reaches the inbox as `comment.hidden` or
`comment.hide_failed`, and hides are not held back by a network's daily publishing quota."""

from __future__ import annotations

import uuid
from collections.abc import AsyncIterator
from datetime import UTC, datetime
from typing import Any

import httpx
import pytest

from services.publisher import events
from services.publisher.adapters import PUBLISH_ADAPTERS
from services.publisher.adapters.base import CommentHider, Rejected, cannot_hide, hide_comment
from services.publisher.ratelimit import AccountLimiter, Action
from shared.events import CommentHidden, CommentHideFailed
from shared.topics import POSTS

HIDERS = {"meta", "instagram"}
TENANT = "acme-agency"


@pytest.fixture
async def unreachable() -> AsyncIterator[tuple[httpx.AsyncClient, list[httpx.Request]]]:
    """A client that records what it was asked to send and sends nothing."""
    sent: list[httpx.Request] = []

    def refuse(request: httpx.Request) -> httpx.Response:
        sent.append(request)
        raise httpx.ConnectError("no network in this test", request=request)

    async with httpx.AsyncClient(transport=httpx.MockTransport(refuse)) as client:
        yield client, sent


def test_meta_pages_and_instagram_are_the_networks_that_hide_comments() -> None:
    hiders = {name for name, a in PUBLISH_ADAPTERS.items() if isinstance(a, CommentHider)}

    assert hiders == HIDERS


@pytest.mark.parametrize("network", sorted(set(PUBLISH_ADAPTERS) - HIDERS))
async def test_a_network_that_cannot_hide_refuses_for_good_without_a_call(
    network: str, unreachable: tuple[httpx.AsyncClient, list[httpx.Request]]
) -> None:
    client, sent = unreachable
    adapter = PUBLISH_ADAPTERS[network]

    outcome = await hide_comment(adapter, client, None, {}, "comment-1")

    assert outcome == Rejected(
        "hide_unsupported", f"network {network} does not let a brand hide comments"
    )
    assert outcome == cannot_hide(network)
    assert sent == []


def hide_delivery(**overrides: Any) -> dict[str, Any]:
    """A `hide` delivery as the dispatcher has it once claimed (the delivery joined with its
    channel's network and brand)."""
    return {
        "id": uuid.uuid4(),
        "tenant_id": TENANT,
        "brand_id": "acme",
        "post_id": None,
        "channel_id": uuid.uuid4(),
        "network": "instagram",
        "kind": "hide",
        "request_id": uuid.uuid4(),
        "target_external_id": "17900000000000042",
        "reply_to": None,
        **overrides,
    }


def test_a_hidden_comment_is_told_to_the_inbox_as_comment_hidden() -> None:
    delivery = hide_delivery()

    [outgoing] = events.delivery_done(delivery, "published", None, None, None)

    assert outgoing.topic == POSTS.name
    assert outgoing.key == f"{TENANT}:{delivery['request_id']}"
    hidden = CommentHidden.model_validate(outgoing.event)
    assert hidden.tenant_id == TENANT
    assert hidden.brand_id == "acme"
    assert hidden.payload.request_id == delivery["request_id"]
    assert hidden.payload.channel_id == delivery["channel_id"]
    assert hidden.payload.network == "instagram"
    assert hidden.payload.external_id == "17900000000000042"
    assert hidden.payload.error is None


def test_a_refused_hide_is_told_to_the_inbox_as_comment_hide_failed_with_the_reason() -> None:
    delivery = hide_delivery(network="telegram")
    refusal = cannot_hide("telegram")
    reason = f"{refusal.reason}: {refusal.network_message}"  # what the dispatcher records

    [outgoing] = events.delivery_done(delivery, "failed", None, None, reason)

    failed = CommentHideFailed.model_validate(outgoing.event)
    assert outgoing.key == f"{TENANT}:{delivery['request_id']}"
    assert failed.payload.external_id == delivery["target_external_id"]
    assert failed.payload.error == (
        "hide_unsupported: network telegram does not let a brand hide comments"
    )


def test_hiding_spam_is_not_held_back_by_instagrams_daily_publishing_quota() -> None:
    limiter = AccountLimiter()
    now = datetime(2025, 5, 1, 12, 0, tzinfo=UTC)
    while limiter.acquire("instagram", "acme-ig", now=now) == 0.0:
        pass  # the day's publishing burst is spent

    assert limiter.acquire("instagram", "acme-ig", now=now) > 60  # a post would wait
    assert limiter.acquire("instagram", "acme-ig", now=now, action=Action.MODERATE) == 0.0
