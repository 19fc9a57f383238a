from __future__ import annotations

import uuid
from datetime import UTC, datetime

import pytest

from shared.events import Author, MentionPayload, MentionReceived, Thread, envelope_for
from shared.pagination import BadCursor, decode_cursor, encode_cursor


def payload() -> MentionPayload:
    return MentionPayload(
        mention_id=uuid.uuid4(),
        source_id=uuid.uuid4(),
        network="generic",
        external_id="x1",
        text="hello",
        created_at=datetime(2026, 11, 1, tzinfo=UTC),
        author=Author(id="a", handle="@a"),
        thread=Thread(root_external_id="x1"),
    )


def test_envelope_round_trip_ignores_unknown_fields() -> None:
    event = envelope_for(payload(), tenant_id="acme", brand_id="b", occurred_at=datetime.now(UTC))
    event["added_later"] = {"by": "a newer producer"}
    event["payload"]["also_new"] = 1
    parsed = MentionReceived.model_validate(event)
    assert parsed.type == "mention.received"
    assert parsed.schema_version == 1
    assert parsed.payload.external_id == "x1"
    assert str(parsed.event_id) == event["event_id"]


def test_envelope_rejects_a_bad_tenant() -> None:
    event = envelope_for(payload(), tenant_id="acme", brand_id="b", occurred_at=datetime.now(UTC))
    with pytest.raises(ValueError, match="tenant_id"):
        MentionReceived.model_validate({**event, "tenant_id": "../etc"})


def test_cursor_round_trip_and_garbage() -> None:
    when, item = datetime(2026, 11, 1, 12, tzinfo=UTC), uuid.uuid4()
    assert decode_cursor(encode_cursor(when, item)) == (when, item)
    for bad in ["zzz", "", "W10", encode_cursor(when, item)[:-3]]:
        with pytest.raises(BadCursor):
            decode_cursor(bad)
