"""How ingest tells an edit from an item heard again, and which of our posts a reply answers."""

from __future__ import annotations

import dataclasses
import hashlib
import json
import uuid
from datetime import UTC, datetime
from typing import Any

from hypothesis import given, settings
from hypothesis import strategies as st

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


@settings(max_examples=300, deadline=None)
@given(text=st.text(), edited=st.booleans(), deleted=st.booleans())
def test_the_content_hash_is_the_one_stored_items_were_hashed_with(
    text: str, edited: bool, deleted: bool
) -> None:
    """Hashes already stored were computed over `json.dumps(..., ensure_ascii=False)`; a new way
    of writing the same basis must give the same hash, or every stored item would read as edited."""
    at = datetime(2026, 11, 2, 8, 30, tzinfo=UTC) if edited else None
    m = dataclasses.replace(_status("mention", text), deleted=deleted, edited_at=at)
    parts = [m.text, m.edited_at.isoformat() if m.edited_at else None, m.deleted, m.kind]
    try:
        basis = json.dumps(parts, ensure_ascii=False).encode()
    except UnicodeEncodeError:  # a lone surrogate: neither way can hash it
        return
    assert content_hash(m) == hashlib.sha256(basis).hexdigest()


def test_the_content_hash_survives_quotes_escapes_and_control_characters() -> None:
    text = 'say "hi" \\ back\n\ttab \x00\x1f\x7f é 😀 \u2028 </script>'
    basis = json.dumps([text, None, False, "mention"], ensure_ascii=False).encode()
    assert content_hash(_status("mention", text)) == hashlib.sha256(basis).hexdigest()
