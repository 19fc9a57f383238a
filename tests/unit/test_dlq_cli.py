"""`smm dlq`: what `list` shows of a dead letter and what `replay` decides to send again, on
records shaped as shared/consumer.py writes them (no Kafka needed)."""

from __future__ import annotations

import json
import uuid
from collections.abc import Sequence
from datetime import UTC, datetime, timedelta
from typing import Any

import pytest
from aiokafka import TopicPartition
from typer.testing import CliRunner

from smmctl import dlq
from smmctl.dlq import DeadLetter, ReplayState, plan_replay
from smmctl.main import app

DLQ = "p.smm.mentions.v1.dlq"


def letter(
    offset: int,
    *,
    event_id: str | None = None,
    source_offset: int = 7,
    consumer: str = "inbox.mentions",
    value: bytes | None = None,
    reason: str = "handler",
) -> DeadLetter:
    body: dict[str, Any] = {"event_id": event_id, "type": "mention.received", "payload": {}}
    failed_at = datetime.now(UTC) - timedelta(minutes=5)
    return DeadLetter(
        topic=DLQ,
        partition=0,
        offset=offset,
        key=b"t:b:root",
        value=value if value is not None else json.dumps(body).encode(),
        headers=(
            ("traceparent", b"00-abc-01"),
            ("smm-error", b"ValueError: no such channel"),
            ("smm-error-reason", reason.encode()),
            ("smm-source-topic", b"p.smm.mentions.v1"),
            ("smm-source-partition", b"3"),
            ("smm-source-offset", str(source_offset).encode()),
            ("smm-attempts", b"3"),
            ("smm-consumer", consumer.encode()),
            ("smm-failed-at", failed_at.isoformat().encode()),
        ),
        timestamp_ms=int(failed_at.timestamp() * 1000),
    )


def test_replay_sends_the_original_headers_without_the_error_ones() -> None:
    headers = dict(letter(4, event_id="e").replay_headers())
    assert headers == {"traceparent": b"00-abc-01", "smm-replayed-from": DLQ.encode() + b":0:4"}


def test_one_copy_per_source_record_and_undecodable_letters_are_set_aside() -> None:
    a, b = str(uuid.uuid4()), str(uuid.uuid4())
    letters = [
        letter(0, event_id=a, source_offset=1),
        letter(1, event_id=a, source_offset=1, consumer="metrics.mentions"),
        letter(2, value=b"\x00\xff", source_offset=2, reason="decode"),
        letter(3, event_id=b, source_offset=3),
    ]
    plan = plan_replay(letters, {}, event_ids=None)
    assert [x.offset for x in plan.send] == [0, 3]
    assert [x.offset for x in plan.duplicate_copies] == [1]
    assert [x.offset for x in plan.unreplayable] == [2]


def test_replayed_letters_are_not_sent_again_and_a_chosen_one_leaves_the_rest_pending() -> None:
    ids = [str(uuid.uuid4()) for _ in range(4)]
    letters = [letter(i, event_id=ids[i], source_offset=i) for i in range(4)]
    state = ReplayState()
    chosen = plan_replay(letters, {TopicPartition(DLQ, 0): state}, event_ids={ids[2]})
    assert [x.offset for x in chosen.send] == [2]
    state.mark(2)
    # Stored and read back as Kafka keeps it: the committed offset and its metadata.
    stored = ReplayState.parse(state.committed, state.metadata())
    assert (stored.committed, stored.done) == (0, {2})
    rest = plan_replay(letters, {TopicPartition(DLQ, 0): stored}, event_ids=None)
    assert [x.offset for x in rest.send] == [0, 1, 3]
    assert [x.offset for x in rest.already_replayed] == [2]
    for x in rest.send:
        stored.mark(x.offset)
    assert (stored.committed, stored.done, stored.metadata()) == (4, set(), "")
    again = plan_replay(letters, {TopicPartition(DLQ, 0): stored}, event_ids=None)
    assert again.send == []
    assert len(again.already_replayed) == 4


def _fake_kafka(monkeypatch: pytest.MonkeyPatch, letters: list[DeadLetter]) -> None:
    async def read(bootstrap: str, topics: Sequence[str], *, last: int | None = None) -> Any:
        assert topics == ["p.smm.mentions.v1.dlq"]
        return letters

    async def flags(bootstrap: str, prefix: str, found: Sequence[DeadLetter]) -> list[bool]:
        return [x.offset == 0 for x in found]

    monkeypatch.setattr(dlq, "read_dead_letters", read)
    monkeypatch.setattr(dlq, "replayed_flags", flags)
    monkeypatch.setenv("SMM_TOPIC_PREFIX", "p.")


def test_list_shows_source_event_error_attempts_age_and_replay_state(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    event_id = str(uuid.uuid4())
    _fake_kafka(monkeypatch, [letter(0, event_id="old"), letter(1, event_id=event_id)])
    result = CliRunner().invoke(app, ["dlq", "list", "--topic", "smm.mentions.v1"])
    assert result.exit_code == 0, result.output
    header, first, second = result.output.splitlines()
    assert header.split() == [
        "DLQ",
        "OFFSET",
        "SOURCE",
        "TYPE",
        "EVENT_ID",
        "REASON",
        "ATTEMPTS",
        "CONSUMER",
        "AGE",
        "REPLAYED",
        "ERROR",
    ]
    assert second.split()[:10] == [
        "smm.mentions.v1.dlq",
        "1",
        "smm.mentions.v1[3]@7",
        "mention.received",
        event_id,
        "handler",
        "3",
        "inbox.mentions",
        "5.0m",
        "no",
    ]
    assert second.endswith("ValueError: no such channel")
    assert first.split()[9] == "yes"

    as_json = CliRunner().invoke(app, ["dlq", "list", "--topic", "smm.mentions.v1", "--json"])
    rows = [json.loads(line) for line in as_json.output.splitlines()]
    assert rows[1]["error"] == "ValueError: no such channel"
    assert rows[1]["headers"]["smm-consumer"] == "inbox.mentions"
    assert (rows[1]["source_partition"], rows[1]["source_offset"]) == (3, 7)


def test_replay_needs_a_choice_and_a_known_topic(monkeypatch: pytest.MonkeyPatch) -> None:
    _fake_kafka(monkeypatch, [])
    runner = CliRunner()
    assert runner.invoke(app, ["dlq", "replay"]).exit_code == 2
    assert runner.invoke(app, ["dlq", "replay", "--all", "--event-id", "x"]).exit_code == 2
    unknown = runner.invoke(app, ["dlq", "list", "--topic", "smm.nope.v1"])
    assert unknown.exit_code == 2
