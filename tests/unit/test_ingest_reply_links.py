"""How ingest tells an edit from an item heard again, and which of our posts a reply answers."""

from __future__ import annotations

import uuid
from datetime import UTC, datetime
from typing import Any

from services.ingest.connectors.base import FetchedAuthor, FetchedMention, MentionKind
from services.ingest.pipeline import content_hash, mention_kind, reply_target


def _status(kind: MentionKind, text: str = "@acme love the coat", **thread: Any) -> FetchedMention:
    return FetchedMention(
        network="mastodon",
        external_id="110",
        kind=kind,
        text=text,
        created_at=datetime(2026, 11, 1, tzinfo=UTC),
        author=FetchedAuthor(id="7", handle="@fan@example.social"),
        root_external_id=thread.get("root", "100"),
        parent_external_id=thread.get("parent", "100"),
    )


def test_a_reply_heard_in_the_notifications_and_again_in_the_posts_thread_is_not_an_edit() -> None:
    stored = content_hash(_status("mention"))
    assert content_hash(_status("reply"), "mention") == stored
    assert content_hash(_status("reply", "@acme love the coat!"), "mention") != stored


def test_a_reply_to_a_reply_belongs_to_our_post_its_thread_root_names() -> None:
    post = {"post_id": uuid.uuid4(), "brand_id": "acme"}
    # Heard first by a search, its stored root is only its parent; the post's thread knows more.
    thread = ["111", "100", "111", "111"]
    assert reply_target(thread, {"100": post}) is post
    assert reply_target(["111", None, "111", None], {"100": post}) is None


def test_a_reply_to_our_post_reads_as_a_comment_but_a_direct_message_stays_one() -> None:
    post_id = uuid.uuid4()
    assert mention_kind("mention", post_id) == "comment"
    assert mention_kind("reply", None) == "reply"
    assert mention_kind("direct_message", post_id) == "direct_message"
