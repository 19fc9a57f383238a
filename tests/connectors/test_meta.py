"""The Meta webhooks connector against fixture Page-feed and Instagram notifications, signed
here the way Meta signs them."""

from __future__ import annotations

import hashlib
import hmac
import json
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import pytest

from services.ingest.connectors.base import FetchedMention, SignatureInvalid, WebhookRequest
from services.ingest.connectors.meta import MetaConfig, MetaConnector

FIXTURES = Path(__file__).parents[1] / "fixtures/meta"
PAGE = json.loads((FIXTURES / "page_feed.json").read_text())
INSTAGRAM = json.loads((FIXTURES / "instagram.json").read_text())
PAGE_ID: str = PAGE["page_id"]
IG_ID: str = INSTAGRAM["instagram_account_id"]
APP_SECRET = "0f1e2d3c4b5a69788796a5b4c3d2e1f0"
VERIFY_TOKEN = "meatyhamhock"
SECRETS = {"app_secret": APP_SECRET, "verify_token": VERIFY_TOKEN}
CONNECTOR = MetaConnector()
CONFIG = MetaConfig(page_id=PAGE_ID, instagram_account_id=IG_ID)


def signed(payload: Any, secret: str = APP_SECRET) -> WebhookRequest:
    body = json.dumps(payload).encode()
    signature = "sha256=" + hmac.new(secret.encode(), body, hashlib.sha256).hexdigest()
    headers = {"content-type": "application/json", "x-hub-signature-256": signature}
    return WebhookRequest("POST", headers, {}, body)


def by_id(mentions: list[FetchedMention]) -> dict[str, FetchedMention]:
    return {m.external_id: m for m in mentions}


# --- the verification handshake ----------------------------------------------------------------


def verification(**query: str) -> WebhookRequest:
    return WebhookRequest("GET", {}, query, b"")


def test_the_verification_request_is_answered_with_exactly_the_challenge() -> None:
    request = verification(
        **{"hub.mode": "subscribe", "hub.challenge": "1158201444", "hub.verify_token": VERIFY_TOKEN}
    )
    reply = CONNECTOR.handshake(request, CONFIG, SECRETS)
    assert reply is not None
    assert (reply.status, reply.body, reply.content_type) == (200, b"1158201444", "text/plain")


@pytest.mark.parametrize(
    ("query", "secrets"),
    [
        ({"hub.mode": "subscribe", "hub.challenge": "1", "hub.verify_token": "guess"}, SECRETS),
        ({"hub.mode": "subscribe", "hub.challenge": "1"}, SECRETS),
        (
            {"hub.mode": "unsubscribe", "hub.challenge": "1", "hub.verify_token": VERIFY_TOKEN},
            SECRETS,
        ),
        ({"hub.mode": "subscribe", "hub.challenge": "1", "hub.verify_token": VERIFY_TOKEN}, {}),
    ],
    ids=["wrong-token", "no-token", "wrong-mode", "unconfigured"],
)
def test_a_verification_request_without_the_right_token_is_refused(
    query: dict[str, str], secrets: dict[str, Any]
) -> None:
    with pytest.raises(SignatureInvalid):
        CONNECTOR.handshake(verification(**query), CONFIG, secrets)


def test_notifications_are_not_handshakes() -> None:
    assert CONNECTOR.handshake(signed(PAGE["deliveries"]["comment_add"]), CONFIG, SECRETS) is None


# --- X-Hub-Signature-256 -----------------------------------------------------------------------


def test_a_notification_signed_with_the_app_secret_is_accepted() -> None:
    CONNECTOR.verify(signed(PAGE["deliveries"]["comment_add"]), CONFIG, SECRETS)


def test_a_notification_with_a_missing_or_wrong_signature_is_refused() -> None:
    good = signed(PAGE["deliveries"]["comment_add"])
    forged = signed(PAGE["deliveries"]["comment_add"], secret="not-the-app-secret")
    tampered = WebhookRequest(good.method, good.headers, {}, good.body.replace(b"wide", b"WIDE"))
    unsigned = WebhookRequest(good.method, {"content-type": "application/json"}, {}, good.body)
    sha1 = WebhookRequest(
        good.method,
        {"x-hub-signature-256": good.headers["x-hub-signature-256"].replace("sha256=", "sha1=")},
        {},
        good.body,
    )
    for request in (forged, tampered, unsigned, sha1):
        with pytest.raises(SignatureInvalid):
            CONNECTOR.verify(request, CONFIG, SECRETS)
    with pytest.raises(SignatureInvalid):
        CONNECTOR.verify(good, CONFIG, {"verify_token": VERIFY_TOKEN})  # no app secret set


# --- the Page feed -----------------------------------------------------------------------------


def test_a_new_comment_threads_under_its_post() -> None:
    result = CONNECTOR.parse(signed(PAGE["deliveries"]["comment_add"]), CONFIG)
    assert result.skipped == []
    (comment,) = result.mentions
    assert comment.network == "facebook"
    assert comment.kind == "comment"
    assert comment.external_id == "900000000000001_1200000000000001"
    assert (
        comment.root_external_id
        == comment.parent_external_id
        == ("104857600123456_900000000000001")
    )
    assert comment.text == "Do these come in wide fit?"
    assert (comment.author.id, comment.author.display_name) == ("7012345678901234", "Anna Kovacs")
    assert comment.created_at == datetime.fromtimestamp(1762000128, UTC)
    assert comment.url == "https://www.facebook.com/acme/posts/pfbid0abc"
    assert (comment.edited_at, comment.deleted) == (None, False)


def test_a_batch_parses_what_it_can_skips_the_malformed_and_ignores_the_rest() -> None:
    result = CONNECTOR.parse(signed(PAGE["deliveries"]["batch"]), CONFIG)
    mentions = by_id(result.mentions)
    # The Page's reply to Anna, and a visitor's post on the Page; the reaction is not speech and
    # the entry for another Page is not this source's.
    assert set(mentions) == {"900000000000001_1200000000000002", "104857600123456_900000000000077"}
    reply = mentions["900000000000001_1200000000000002"]
    assert reply.parent_external_id == "900000000000001_1200000000000001"
    assert reply.root_external_id == "104857600123456_900000000000001"
    visitor_post = mentions["104857600123456_900000000000077"]
    assert visitor_post.kind == "mention"
    assert visitor_post.root_external_id == visitor_post.external_id
    assert visitor_post.url == "https://www.facebook.com/104857600123456_900000000000077"
    assert [s.raw["message"] for s in result.skipped] == ["a comment without its comment_id"]


def test_an_edited_comment_keeps_its_id_and_carries_the_notification_time() -> None:
    (edited,) = CONNECTOR.parse(signed(PAGE["deliveries"]["comment_edited"]), CONFIG).mentions
    assert edited.external_id == "900000000000001_1200000000000001"
    assert edited.text == "Do these come in wide fit? Size 42?"
    assert edited.edited_at == datetime.fromtimestamp(1762000700, UTC)
    assert not edited.deleted


def test_a_removed_comment_is_a_tombstone_for_the_same_id() -> None:
    (removed,) = CONNECTOR.parse(signed(PAGE["deliveries"]["comment_removed"]), CONFIG).mentions
    assert removed.external_id == "900000000000001_1200000000000001"
    assert removed.deleted
    assert removed.text == ""


def test_the_pages_own_post_is_a_post() -> None:
    (post,) = CONNECTOR.parse(signed(PAGE["deliveries"]["page_own_post"]), CONFIG).mentions
    assert post.kind == "post"
    assert post.text == "Winter sale starts Friday."


def test_without_a_page_configured_every_page_is_heard() -> None:
    result = CONNECTOR.parse(signed(PAGE["deliveries"]["batch"]), MetaConfig())
    assert "1_2" in by_id(result.mentions)


@pytest.mark.parametrize(
    "payload",
    [
        PAGE["deliveries"]["messenger"],
        {"object": "user", "entry": [{"id": "1", "time": 1, "changed_fields": ["email"]}]},
        {"object": "page", "entry": []},
    ],
    ids=["messenger", "other-object", "empty"],
)
def test_notifications_that_are_no_comment_or_mention_are_acknowledged(payload: Any) -> None:
    result = CONNECTOR.parse(signed(payload), CONFIG)
    assert (result.mentions, result.skipped) == ([], [])
    assert result.reply.status == 200


def test_a_body_that_is_not_a_json_object_is_skipped() -> None:
    result = CONNECTOR.parse(WebhookRequest("POST", {}, {}, b"[]"), CONFIG)
    assert result.mentions == []
    assert len(result.skipped) == 1


# --- Instagram ---------------------------------------------------------------------------------


def test_an_instagram_comment_threads_under_its_media() -> None:
    (comment,) = CONNECTOR.parse(signed(INSTAGRAM["deliveries"]["comment"]), CONFIG).mentions
    assert comment.network == "instagram"
    assert comment.kind == "comment"
    assert comment.external_id == "17865799348089039"
    assert comment.root_external_id == comment.parent_external_id == "17900000000000001"
    assert (comment.author.id, comment.author.handle) == ("232323232323", "@anna.k")
    assert comment.text == "Need these in black!"
    assert comment.created_at == datetime.fromtimestamp(1762000200, UTC)


def test_instagram_replies_and_mentions_parse_and_the_malformed_is_skipped() -> None:
    result = CONNECTOR.parse(signed(INSTAGRAM["deliveries"]["reply_and_mentions"]), CONFIG)
    mentions = by_id(result.mentions)
    assert set(mentions) == {"17865799348089040", "17870000000000333", "17900000000000444"}
    assert mentions["17865799348089040"].parent_external_id == "17865799348089039"
    in_comment = mentions["17870000000000333"]
    assert (in_comment.kind, in_comment.root_external_id) == ("mention", "17900000000000222")
    assert in_comment.parent_external_id == "17900000000000222"
    in_caption = mentions["17900000000000444"]
    assert (in_caption.kind, in_caption.parent_external_id) == ("mention", None)
    # story_insights is acknowledged; the comment without media or author is skipped.
    assert [s.raw["id"] for s in result.skipped] == ["17865799348089041"]


def test_live_comments_are_comments() -> None:
    (live,) = CONNECTOR.parse(signed(INSTAGRAM["deliveries"]["live_comment"]), CONFIG).mentions
    assert (live.kind, live.root_external_id) == ("comment", "17900000000000999")


def test_entries_for_another_instagram_account_are_not_this_sources() -> None:
    config = MetaConfig(instagram_account_id="17841499999999999")
    result = CONNECTOR.parse(signed(INSTAGRAM["deliveries"]["comment"]), config)
    assert (result.mentions, result.skipped) == ([], [])
