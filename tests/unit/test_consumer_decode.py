"""How the batch consumer turns records into events: bad input is named precisely, an event
without its id is poison (a made-up id would defeat exactly-once), another consumer's type is
skipped, and one event twice in a batch is applied once."""

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


def record(body: dict[str, Any], offset: int = 0) -> Record:
    return Record("smm.mentions.v1", 0, offset, b"t-1", json.dumps(body).encode(), ())


def test_an_event_decodes_with_the_id_it_was_sent_with() -> None:
    body = received()
    decoded, poison = consumer()._decode([record(body)])
    assert poison == []
    assert [d.event_id for d in decoded] == [uuid.UUID(body["event_id"])]
    assert decoded[0].event.payload.text == "Where is my parcel?"


def test_another_consumers_event_type_is_skipped_not_poison() -> None:
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
    assert consumer()._decode([record(deleted)]) == ([], [])


def test_bad_events_are_poison_named_for_what_is_wrong() -> None:
    cases = {
        "schema-invalid event": received(tenant_id=""),
        "event has no valid 'event_id'": {k: v for k, v in received().items() if k != "event_id"},
        "unsupported schema_version 9": received(schema_version=9),
        "event has no string 'type'": received(type=None),
    }
    for expected, body in cases.items():
        decoded, poison = consumer()._decode([record(body)])
        assert decoded == []
        assert len(poison) == 1
        assert poison[0].reason == "schema"
        assert poison[0].error.startswith(expected), poison[0].error
    undecodable = Record("smm.mentions.v1", 0, 0, b"t-1", b"{not json", ())
    _, poison = consumer()._decode([undecodable])
    assert [p.reason for p in poison] == ["decode"]


def test_one_event_twice_in_a_batch_is_applied_once() -> None:
    body = received()
    decoded, poison = consumer()._decode([record(body, 0), record(body, 1)])
    assert poison == []
    assert [d.record.offset for d in decoded] == [0]
