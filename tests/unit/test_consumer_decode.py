"""How the batch consumer turns records into events: the outbox's `smm-event-type` header lets
it parse bytes straight into the model, and whatever that header says, an event decodes to the
same thing and bad input is named the same way as without it."""

from __future__ import annotations

import json
import uuid
from datetime import UTC, datetime
from typing import Any, cast

import asyncpg
from faststream.kafka import KafkaBroker

from shared.consumer import IdempotentBatchConsumer, Record
from shared.events import MentionDeletedPayload, MentionReceived, envelope_for
from shared.metrics import ServiceMetrics
from tests.support import mention_event

MODELS: dict[str, type[Any]] = {"mention.received": MentionReceived}


def consumer() -> IdempotentBatchConsumer[Any]:
    async def effect(conn: Any, events: Any) -> None:
        raise AssertionError("decoding only")

    return IdempotentBatchConsumer[Any](
        name="test.decode",
        pool_provider=lambda: cast(asyncpg.Pool, None),
        broker=cast(KafkaBroker, None),
        metrics=ServiceMetrics("inbox"),
        models=MODELS,
        effect=effect,
    )


def received(**changes: Any) -> dict[str, Any]:
    return {**mention_event("t-1", "e-1", "Where is my parcel?"), **changes}


def record(body: dict[str, Any], header: str | None, offset: int = 0) -> Record:
    headers = (("smm-event-type", header.encode()),) if header is not None else ()
    return Record("smm.mentions.v1", 0, offset, b"t-1", json.dumps(body).encode(), headers)


def test_the_header_path_and_the_full_path_decode_the_same_event() -> None:
    body = received()
    fast, poison = consumer()._decode([record(body, "mention.received")])
    full, _ = consumer()._decode([record(body, None)])
    assert poison == []
    assert [d.event for d in fast] == [d.event for d in full]
    assert fast[0].event_id == uuid.UUID(body["event_id"])
    assert fast[0].event.payload.text == "Where is my parcel?"


def test_a_header_that_disagrees_with_the_body_is_not_trusted() -> None:
    body = received()
    # Named as a type this consumer does not read, or as another type: the body decides.
    for header in ("mention.deleted", "item.created", ""):
        decoded, poison = consumer()._decode([record(body, header)])
        assert poison == []
        assert [d.event_id for d in decoded] == [uuid.UUID(body["event_id"])]
    deleted = envelope_for(
        MentionDeletedPayload(
            mention_id=uuid.uuid4(),
            network="generic",
            external_id="e-1",
            deleted_at=datetime.now(UTC),
        ),
        tenant_id="t-1",
        brand_id="b",
        occurred_at=datetime.now(UTC),
    )
    decoded, poison = consumer()._decode([record(deleted, "mention.received")])
    assert (decoded, poison) == ([], [])  # not ours, whatever the header claims


def test_bad_events_are_named_exactly_with_or_without_the_header() -> None:
    cases = {
        "schema-invalid event": received(tenant_id=""),
        "event has no valid 'event_id'": {k: v for k, v in received().items() if k != "event_id"},
        "unsupported schema_version 9": received(schema_version=9),
    }
    for expected, body in cases.items():
        for header in ("mention.received", None):
            decoded, poison = consumer()._decode([record(body, header)])
            assert decoded == []
            assert len(poison) == 1
            assert poison[0].reason == "schema"
            assert poison[0].error.startswith(expected), (header, poison[0].error)


def test_one_event_twice_in_a_batch_is_applied_once() -> None:
    body = received()
    batch = [record(body, "mention.received", 0), record(body, None, 1)]
    decoded, poison = consumer()._decode(batch)
    assert poison == []
    assert [d.record.offset for d in decoded] == [0]
