from __future__ import annotations

import json
import uuid

import pytest
from pydantic import ValidationError

from services.ingest.webhooks import (
    SourceRef,
    WebhookBody,
    new_signing_secret,
    normalise,
    sign,
    signature_matches,
)

SOURCE = SourceRef(uuid.uuid4(), "acme", "shoes", "generic")


def body(*items: dict[str, object]) -> WebhookBody:
    return WebhookBody.model_validate({"mentions": list(items)})


def item(external_id: str, **extra: object) -> dict[str, object]:
    return {
        "external_id": external_id,
        "text": "hi",
        "author": {"id": "u", "handle": "@u"},
        "created_at": "2026-11-01T10:00:00+03:00",
        **extra,
    }


def test_signature_round_trip_and_tampering() -> None:
    secret = new_signing_secret()
    raw = json.dumps({"mentions": [item("1")]}).encode()
    header = sign(secret, raw)
    assert header.startswith("sha256=")
    assert len(header) == 7 + 64
    assert signature_matches(secret, raw, header)
    assert not signature_matches(secret, raw + b" ", header)
    assert not signature_matches("other", raw, header)
    assert not signature_matches(secret, raw, None)
    assert not signature_matches(secret, raw, header.replace("sha256=", "sha1="))
    assert not signature_matches(secret, raw, header.upper())


def test_normalise_keeps_the_first_of_repeated_ids_and_threads_replies() -> None:
    mentions = normalise(
        SOURCE, body(item("1"), item("2", in_reply_to="1"), item("1", text="again"))
    )
    assert [m.payload.external_id for m in mentions] == ["1", "2"]
    first, reply = mentions
    assert first.payload.kind == "mention"
    assert first.payload.thread.root_external_id == "1"
    assert reply.payload.kind == "reply"
    assert reply.payload.thread.parent_external_id == "1"
    assert first.payload.network == "generic"
    assert first.payload.source_id == SOURCE.id
    assert first.payload.created_at.utcoffset() is not None
    assert first.raw["text"] == "hi"


@pytest.mark.parametrize(
    ("change", "where"),
    [
        ({"created_at": "2026-11-01T10:00:00"}, ("mentions", 0, "created_at")),
        ({"language": "English"}, ("mentions", 0, "language")),
        ({"author": {"id": "", "handle": "x"}}, ("mentions", 0, "author", "id")),
    ],
)
def test_invalid_fields_are_located(change: dict[str, object], where: tuple[object, ...]) -> None:
    with pytest.raises(ValidationError) as caught:
        body({**item("1"), **change})
    assert where in [e["loc"] for e in caught.value.errors()]


def test_at_most_1000_mentions_per_request() -> None:
    body(*[item(str(i)) for i in range(1000)])
    with pytest.raises(ValidationError):
        body(*[item(str(i)) for i in range(1001)])
