from __future__ import annotations

import json

import pytest
from pydantic import ValidationError

from services.ingest.connectors.base import SignatureInvalid, WebhookRequest
from services.ingest.connectors.generic import (
    GenericWebhookConfig,
    GenericWebhookConnector,
    new_signing_secret,
    sign,
    signature_matches,
)

CONNECTOR = GenericWebhookConnector()


def item(external_id: str, **extra: object) -> dict[str, object]:
    return {
        "external_id": external_id,
        "text": "hi",
        "author": {"id": "u", "handle": "@u"},
        "created_at": "2026-11-01T10:00:00+03:00",
        **extra,
    }


def delivery(*items: dict[str, object], key: str = "s3cret") -> WebhookRequest:
    body = json.dumps({"mentions": list(items)}).encode()
    return WebhookRequest("POST", {"x-smm-signature": sign(key, body)}, {}, body)


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


def test_verify_uses_the_source_secret() -> None:
    request = delivery(item("1"))
    CONNECTOR.verify(request, GenericWebhookConfig(), {"signing_secret": "s3cret"})
    with pytest.raises(SignatureInvalid):
        CONNECTOR.verify(request, GenericWebhookConfig(), {"signing_secret": "other"})
    with pytest.raises(SignatureInvalid):
        CONNECTOR.verify(request, GenericWebhookConfig(), {})


def test_parse_threads_replies_and_keeps_the_raw_item() -> None:
    result = CONNECTOR.parse(
        delivery(item("1"), item("2", in_reply_to="1")), GenericWebhookConfig(network="forum")
    )
    first, reply = result.mentions
    assert first.kind == "mention"
    assert first.root_external_id == "1"
    assert reply.kind == "reply"
    assert reply.parent_external_id == "1"
    assert first.network == "forum"
    assert first.created_at.utcoffset() is not None
    assert first.raw["text"] == "hi"
    assert result.reply.status == 202


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
        CONNECTOR.parse(delivery({**item("1"), **change}), GenericWebhookConfig())
    assert where in [e["loc"] for e in caught.value.errors()]


def test_at_most_1000_mentions_per_request() -> None:
    assert (
        len(CONNECTOR.parse(delivery(*[item(str(i)) for i in range(1000)]), None).mentions) == 1000
    )
    with pytest.raises(ValidationError):
        CONNECTOR.parse(delivery(*[item(str(i)) for i in range(1001)]), None)
