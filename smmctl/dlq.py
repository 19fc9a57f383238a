"""`smm dlq …`: list the dead letters the consumers wrote and replay them to their source topic
once the cause is fixed, each at most once per replay group (see docs/operations.md)."""

from __future__ import annotations

import asyncio
import json
import time
from collections.abc import Iterable, Sequence
from dataclasses import dataclass, field
from datetime import datetime
from typing import Annotated, Any

import typer
from aiokafka import AIOKafkaConsumer, AIOKafkaProducer, TopicPartition
from aiokafka.admin import AIOKafkaAdminClient

from shared.consumer import HEADER_PREFIX
from shared.settings import PlatformSettings
from shared.topics import DLQ_SUFFIX, TOPICS, dlq_name

dlq_app = typer.Typer(
    name="dlq",
    help="Dead letters: list them, replay them to their source topic.",
    no_args_is_help=True,
    add_completion=False,
)

# The consumer group whose committed offsets (and their metadata) record what was replayed.
REPLAY_GROUP = "smm.dlq-replay"
# What the consumer adds when it dead-letters a record; a replay sends the record without them.
ERROR_HEADERS: frozenset[str] = frozenset(
    HEADER_PREFIX + name
    for name in (
        "error",
        "error-reason",
        "source-topic",
        "source-partition",
        "source-offset",
        "attempts",
        "consumer",
        "failed-at",
    )
)
REPLAYED_FROM = HEADER_PREFIX + "replayed-from"
# Kafka's default `offset.metadata.max.bytes`.
MAX_METADATA_BYTES = 4096


@dataclass(frozen=True)
class DeadLetter:
    """One record of a `<topic>.dlq` topic."""

    topic: str
    partition: int
    offset: int
    key: bytes | None
    value: bytes
    headers: tuple[tuple[str, bytes], ...]
    timestamp_ms: int

    def header(self, name: str) -> str | None:
        for key, value in reversed(self.headers):
            if key == name:
                return value.decode("utf-8", "replace")
        return None

    @property
    def body(self) -> dict[str, Any] | None:
        try:
            parsed = json.loads(self.value)
        except (ValueError, UnicodeDecodeError):
            return None
        return parsed if isinstance(parsed, dict) else None

    @property
    def event_id(self) -> str | None:
        body = self.body
        found = body.get("event_id") if body else None
        return found if isinstance(found, str) else None

    @property
    def event_type(self) -> str | None:
        body = self.body
        found = body.get("type") if body else None
        return found if isinstance(found, str) else None

    @property
    def source_topic(self) -> str:
        return self.header(HEADER_PREFIX + "source-topic") or self.topic.removesuffix(DLQ_SUFFIX)

    def _int_header(self, name: str) -> int | None:
        raw = self.header(HEADER_PREFIX + name)
        return int(raw) if raw is not None and raw.lstrip("-").isdigit() else None

    @property
    def source_partition(self) -> int | None:
        return self._int_header("source-partition")

    @property
    def source_offset(self) -> int | None:
        return self._int_header("source-offset")

    @property
    def attempts(self) -> int | None:
        return self._int_header("attempts")

    def age_s(self, now: float) -> float:
        failed_at = self.header(HEADER_PREFIX + "failed-at")
        try:
            at = datetime.fromisoformat(failed_at).timestamp() if failed_at else None
        except ValueError:
            at = None
        return max(0.0, now - (at if at is not None else self.timestamp_ms / 1000))

    def replay_headers(self) -> list[tuple[str, bytes]]:
        """The original headers without the error ones, plus where the replay came from."""
        kept = [(k, v) for k, v in self.headers if k not in ERROR_HEADERS and k != REPLAYED_FROM]
        return [*kept, (REPLAYED_FROM, f"{self.topic}:{self.partition}:{self.offset}".encode())]

    def as_json(self, now: float, replayed: bool) -> dict[str, Any]:
        return {
            "dlq_topic": self.topic,
            "dlq_partition": self.partition,
            "dlq_offset": self.offset,
            "source_topic": self.source_topic,
            "source_partition": self.source_partition,
            "source_offset": self.source_offset,
            "event_type": self.event_type,
            "event_id": self.event_id,
            "reason": self.header(HEADER_PREFIX + "error-reason"),
            "error": self.header(HEADER_PREFIX + "error"),
            "attempts": self.attempts,
            "consumer": self.header(HEADER_PREFIX + "consumer"),
            "failed_at": self.header(HEADER_PREFIX + "failed-at"),
            "age_s": round(self.age_s(now), 1),
            "replayed": replayed,
            "headers": {k: v.decode("utf-8", "replace") for k, v in self.headers},
        }


@dataclass
class ReplayState:
    """What one DLQ partition has had replayed: every offset below `committed`, and `done` above.

    Stored as the replay group's committed offset; `done` goes in the commit's metadata, so
    replaying a few chosen events does not mark the ones before them as replayed.
    """

    committed: int = 0
    done: set[int] = field(default_factory=set)

    def replayed(self, offset: int) -> bool:
        return offset < self.committed or offset in self.done

    def mark(self, offset: int) -> None:
        if offset >= self.committed:
            self.done.add(offset)
        while self.committed in self.done:
            self.done.discard(self.committed)
            self.committed += 1

    def metadata(self) -> str:
        ranges: list[list[int]] = []
        for offset in sorted(self.done):
            if ranges and ranges[-1][1] == offset - 1:
                ranges[-1][1] = offset
            else:
                ranges.append([offset, offset])
        encoded = json.dumps(ranges, separators=(",", ":")) if ranges else ""
        if len(encoded) > MAX_METADATA_BYTES:
            raise ValueError(
                "too many scattered replayed offsets to record; replay the rest with --all"
            )
        return encoded

    @classmethod
    def parse(cls, offset: int, metadata: str | None) -> ReplayState:
        state = cls(committed=max(offset, 0))
        if metadata:
            for start, end in json.loads(metadata):
                state.done.update(range(start, end + 1))
        return state


@dataclass
class ReplayPlan:
    send: list[DeadLetter] = field(default_factory=list)
    already_replayed: list[DeadLetter] = field(default_factory=list)
    duplicate_copies: list[DeadLetter] = field(default_factory=list)
    unreplayable: list[DeadLetter] = field(default_factory=list)

    def summary(self) -> dict[str, int]:
        return {
            "replayed": len(self.send),
            "already_replayed": len(self.already_replayed),
            "duplicate_copies": len(self.duplicate_copies),
            "unreplayable": len(self.unreplayable),
        }


def plan_replay(
    letters: Iterable[DeadLetter],
    states: dict[TopicPartition, ReplayState],
    *,
    event_ids: set[str] | None,
) -> ReplayPlan:
    """Which dead letters to send again: the selected ones (all when `event_ids` is None) not
    replayed yet, one per source record (each consumer group of a topic writes its own copy, and
    one copy back on the topic reaches them all). Letters that are not an event with an id can
    never be consumed, so they are set aside rather than sent."""
    plan = ReplayPlan()
    seen: set[tuple[str, int | None, int | None] | str] = set()
    for letter in letters:
        state = states.get(TopicPartition(letter.topic, letter.partition), ReplayState())
        event_id = letter.event_id
        if event_ids is not None and event_id not in event_ids:
            continue
        if state.replayed(letter.offset):
            plan.already_replayed.append(letter)
            continue
        if event_id is None:
            plan.unreplayable.append(letter)
            continue
        identity = (letter.source_topic, letter.source_partition, letter.source_offset)
        if identity in seen or event_id in seen:
            plan.duplicate_copies.append(letter)
        else:
            plan.send.append(letter)
        seen.update((identity, event_id))
    return plan


# --- Kafka ------------------------------------------------------------------------------------


def dlq_topics(prefix: str, topic: str | None) -> list[str]:
    """The prefixed DLQ names to read: one registered topic's (by its name or its DLQ's) or all."""
    if topic is None:
        return [dlq_name(spec, prefix) for spec in TOPICS]
    name = topic.removeprefix(prefix).removesuffix(DLQ_SUFFIX)
    for spec in TOPICS:
        if spec.name == name:
            return [dlq_name(spec, prefix)]
    known = ", ".join(spec.name for spec in TOPICS)
    raise typer.BadParameter(f"unknown topic {topic!r}; expected one of {known}")


async def _partitions(bootstrap: str, topics: Sequence[str]) -> list[TopicPartition]:
    """The partitions of those of `topics` that exist."""
    admin = AIOKafkaAdminClient(bootstrap_servers=bootstrap)
    await admin.start()
    try:
        described = await admin.describe_topics(list(topics))
    finally:
        await admin.close()
    return [
        TopicPartition(t["topic"], p["partition"])
        for t in described
        if t["error_code"] == 0
        for p in sorted(t["partitions"], key=lambda p: int(p["partition"]))
    ]


async def read_dead_letters(
    bootstrap: str, topics: Sequence[str], *, last: int | None = None
) -> list[DeadLetter]:
    """Every record now in `topics` (or the `last` ones of each partition), oldest first."""
    partitions = await _partitions(bootstrap, topics)
    letters: list[DeadLetter] = []
    if not partitions:
        return letters
    consumer = AIOKafkaConsumer(
        bootstrap_servers=bootstrap, enable_auto_commit=False, auto_offset_reset="earliest"
    )
    await consumer.start()
    try:
        consumer.assign(partitions)
        ends: dict[TopicPartition, int] = await consumer.end_offsets(partitions)
        starts: dict[TopicPartition, int] = await consumer.beginning_offsets(partitions)
        pending = {tp for tp in partitions if ends[tp] > starts[tp]}
        for tp in partitions:
            first = starts[tp] if last is None else max(starts[tp], ends[tp] - last)
            consumer.seek(tp, first)
        while pending:
            batch = await consumer.getmany(*pending, timeout_ms=1000)
            for tp, records in batch.items():
                for r in records:
                    if r.offset < ends[tp]:
                        letters.append(
                            DeadLetter(
                                topic=r.topic,
                                partition=r.partition,
                                offset=r.offset,
                                key=r.key,
                                value=r.value or b"",
                                headers=tuple(r.headers or ()),
                                timestamp_ms=r.timestamp,
                            )
                        )
            pending = {tp for tp in pending if await consumer.position(tp) < ends[tp]}
    finally:
        await consumer.stop()
    return letters


async def load_states(
    bootstrap: str, group: str, letters: Iterable[DeadLetter]
) -> dict[TopicPartition, ReplayState]:
    partitions = sorted({TopicPartition(x.topic, x.partition) for x in letters})
    if not partitions:
        return {}
    admin = AIOKafkaAdminClient(bootstrap_servers=bootstrap)
    await admin.start()
    try:
        committed = await admin.list_consumer_group_offsets(group, partitions=partitions)
    finally:
        await admin.close()
    return {
        tp: ReplayState.parse(committed[tp].offset, committed[tp].metadata)
        if tp in committed
        else ReplayState()
        for tp in partitions
    }


async def replay(
    bootstrap: str,
    prefix: str,
    topics: Sequence[str],
    *,
    event_ids: set[str] | None,
    dry_run: bool = False,
) -> ReplayPlan:
    """Send the planned dead letters back to their source partitions, then record them as
    replayed. A crash between the two sends them again next time; consumers de-duplicate by
    event id, so that is a redelivery, not a duplicate effect."""
    group = prefix + REPLAY_GROUP
    letters = await read_dead_letters(bootstrap, topics)
    states = await load_states(bootstrap, group, letters)
    plan = plan_replay(letters, states, event_ids=event_ids)
    if dry_run:
        return plan
    producer = AIOKafkaProducer(bootstrap_servers=bootstrap, acks="all", enable_idempotence=True)
    await producer.start()
    try:
        sent = [
            await producer.send(
                letter.source_topic,
                letter.value,
                key=letter.key,
                partition=letter.source_partition,
                headers=letter.replay_headers(),
            )
            for letter in plan.send
        ]
        await asyncio.gather(*sent)
    finally:
        await producer.stop()
    handled = [*plan.send, *plan.duplicate_copies, *plan.unreplayable]
    if not handled:
        return plan
    for letter in handled:
        states[TopicPartition(letter.topic, letter.partition)].mark(letter.offset)
    commit = AIOKafkaConsumer(bootstrap_servers=bootstrap, group_id=group, enable_auto_commit=False)
    await commit.start()
    try:
        commit.assign(list(states))
        await commit.commit({tp: (s.committed, s.metadata()) for tp, s in states.items()})
    finally:
        await commit.stop()
    return plan


async def replayed_flags(bootstrap: str, prefix: str, letters: Sequence[DeadLetter]) -> list[bool]:
    states = await load_states(bootstrap, prefix + REPLAY_GROUP, letters)
    return [
        states.get(TopicPartition(x.topic, x.partition), ReplayState()).replayed(x.offset)
        for x in letters
    ]


# --- output ------------------------------------------------------------------------------------


def _age(seconds: float) -> str:
    for unit, size in (("d", 86_400), ("h", 3600), ("m", 60)):
        if seconds >= size:
            return f"{seconds / size:.1f}{unit}"
    return f"{seconds:.0f}s"


def format_table(
    letters: Sequence[DeadLetter], replayed: Sequence[bool], now: float, prefix: str
) -> str:
    rows = [
        (
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
        )
    ]
    for letter, done in zip(letters, replayed, strict=True):
        source = (
            f"{letter.source_topic.removeprefix(prefix)}[{letter.source_partition}]"
            f"@{letter.source_offset}"
        )
        error = (letter.header(HEADER_PREFIX + "error") or "").replace("\n", " ")
        rows.append(
            (
                letter.topic.removeprefix(prefix),
                str(letter.offset),
                source,
                letter.event_type or "-",
                letter.event_id or "-",
                letter.header(HEADER_PREFIX + "error-reason") or "-",
                str(letter.attempts if letter.attempts is not None else "-"),
                letter.header(HEADER_PREFIX + "consumer") or "-",
                _age(letter.age_s(now)),
                "yes" if done else "no",
                error[:120],
            )
        )
    widths = [max(len(row[i]) for row in rows) for i in range(len(rows[0]) - 1)]
    return "\n".join(
        "  ".join([*(cell.ljust(w) for cell, w in zip(row, widths, strict=False)), row[-1]])
        for row in rows
    )


def _settings() -> tuple[str, str]:
    settings = PlatformSettings()
    return settings.kafka_bootstrap_servers, settings.topic_prefix


TopicOption = Annotated[
    str | None,
    typer.Option(help="A registered topic (e.g. smm.mentions.v1) or its DLQ; default: all."),
]


@dlq_app.command("list")
def list_command(
    topic: TopicOption = None,
    limit: Annotated[int, typer.Option(min=1, help="The last N dead letters of each DLQ.")] = 50,
    as_json: Annotated[
        bool, typer.Option("--json", help="One JSON object per dead letter.")
    ] = False,
) -> None:
    """Show dead letters: source, event, error, attempts, age and whether they were replayed."""
    bootstrap, prefix = _settings()

    async def run() -> tuple[list[DeadLetter], list[bool]]:
        letters = await read_dead_letters(bootstrap, dlq_topics(prefix, topic), last=limit)
        return letters, await replayed_flags(bootstrap, prefix, letters)

    letters, replayed = asyncio.run(run())
    now = time.time()
    if as_json:
        for letter, done in zip(letters, replayed, strict=True):
            typer.echo(json.dumps(letter.as_json(now, done)))
    elif not letters:
        typer.echo("no dead letters")
    else:
        typer.echo(format_table(letters, replayed, now, prefix))


@dlq_app.command("replay")
def replay_command(
    topic: TopicOption = None,
    event_id: Annotated[
        list[str] | None, typer.Option("--event-id", help="Replay this event (repeatable).")
    ] = None,
    replay_all: Annotated[
        bool, typer.Option("--all", help="Replay every dead letter not replayed yet.")
    ] = False,
    dry_run: Annotated[bool, typer.Option("--dry-run", help="Show, send nothing.")] = False,
    as_json: Annotated[bool, typer.Option("--json", help="Print the outcome as JSON.")] = False,
) -> None:
    """Send dead letters back to their source partition (same key, value and headers, without the
    error headers) once the cause is fixed; a dead letter is replayed at most once."""
    if not replay_all and not event_id:
        raise typer.BadParameter("name the events with --event-id, or replay them all with --all")
    if replay_all and event_id:
        raise typer.BadParameter("--all and --event-id exclude each other")
    bootstrap, prefix = _settings()
    plan = asyncio.run(
        replay(
            bootstrap,
            prefix,
            dlq_topics(prefix, topic),
            event_ids=set(event_id) if event_id else None,
            dry_run=dry_run,
        )
    )
    summary = {"dry_run": dry_run, **plan.summary()}
    if as_json:
        typer.echo(
            json.dumps({**summary, "event_ids": [x.event_id for x in plan.send]}, sort_keys=True)
        )
        return
    verb = "would replay" if dry_run else "replayed"
    for letter in plan.send:
        typer.echo(
            f"{verb} {letter.event_type} {letter.event_id} -> "
            f"{letter.source_topic}[{letter.source_partition}]"
        )
    typer.echo(
        f"{verb} {summary['replayed']}; skipped {summary['already_replayed']} already replayed, "
        f"{summary['duplicate_copies']} copies of the same event, "
        f"{summary['unreplayable']} that are not events (nothing can consume them)"
    )
