"""The Prometheus instruments: names per service, bounded labels, topic labels without the
deployment's prefix, and consumer lag computed from Kafka's offsets."""

from __future__ import annotations

import asyncio
from collections.abc import Awaitable
from typing import Any, cast

import asyncpg
from aiokafka.structs import OffsetAndMetadata, TopicPartition
from faststream.kafka import KafkaBroker
from prometheus_client import generate_latest
from pydantic import BaseModel

from shared.consumer import IdempotentBatchConsumer, Record
from shared.metrics import ConsumerLagSampler, ServiceMetrics, for_process, lag_by_topic

BOUNDED = {"topic", "group", "reason", "method", "route", "status", "network", "kind", "outcome"}


def tp(topic: str, partition: int) -> TopicPartition:
    return TopicPartition(topic, partition)


def test_lag_counts_from_the_committed_offset_or_the_beginning_and_never_below_zero() -> None:
    ends = {tp("m", 0): 120, tp("m", 1): 40, tp("m", 2): 7, tp("p", 0): 5}
    committed = {
        tp("m", 0): OffsetAndMetadata(100, ""),
        tp("m", 1): OffsetAndMetadata(-1, ""),  # the group never committed here
        tp("m", 2): OffsetAndMetadata(9, ""),  # ahead of a stale end offset
    }
    beginnings = {tp("m", 1): 30, tp("p", 0): 0}
    assert lag_by_topic(ends, committed, beginnings) == {"m": 20 + 10 + 0, "p": 5}


def test_every_series_is_named_for_its_service_and_labelled_without_tenants() -> None:
    metrics = ServiceMetrics("inbox")
    metrics.sla_breaches.labels("first").inc()
    metrics.consumer_lag.labels("opensmm.inbox.mentions", "smm.mentions.v1").set(3)
    for family in metrics.registry.collect():
        assert family.name.startswith("smm_inbox_"), family.name
        for sample in family.samples:
            assert set(sample.labels) - {"le"} <= BOUNDED, (sample.name, sample.labels)
    text = generate_latest(metrics.registry).decode()
    assert 'smm_inbox_sla_breaches_total{kind="first"} 1.0' in text
    assert "smm_inbox_outbox_backlog 0.0" in text  # unlabelled gauges are there from the start


def test_the_process_has_one_set_of_instruments() -> None:
    assert for_process("publisher") is for_process("publisher")
    assert for_process("publisher").service == "publisher"


class _Event(BaseModel):
    type: str


class _Broker:
    """Takes dead letters the way FastStream's broker does (publish returns an awaitable)."""

    def __init__(self) -> None:
        self.sent: list[tuple[bytes, str]] = []

    async def publish(self, body: bytes, topic: str, **_: Any) -> Awaitable[None]:
        self.sent.append((body, topic))
        done: asyncio.Future[None] = asyncio.get_running_loop().create_future()
        done.set_result(None)
        return done


async def test_topic_labels_are_registry_names_in_every_deployment() -> None:
    metrics = ServiceMetrics("inbox")
    broker = _Broker()

    async def effect(conn: Any, events: Any) -> None:
        raise AssertionError("poison never reaches the effect")

    consumer = IdempotentBatchConsumer[_Event](
        name="inbox.mentions",
        pool_provider=lambda: cast(asyncpg.Pool, None),
        broker=cast(KafkaBroker, broker),
        metrics=metrics,
        models={"x": _Event},
        effect=effect,
        topic_prefix="staging.",
    )
    poison = Record("staging.smm.mentions.v1", 0, 7, b"k", b"{not json", ())
    await consumer.handle([poison])
    assert broker.sent == [(b"{not json", "staging.smm.mentions.v1.dlq")]
    sample = metrics.registry.get_sample_value
    assert sample("smm_inbox_dlq_events_total", {"topic": "smm.mentions.v1"}) == 1
    assert sample("smm_inbox_events_failed_total", {"topic": "smm.mentions.v1", "reason": "decode"})
    assert sample("smm_inbox_consumer_batch_size_count", {"topic": "smm.mentions.v1"}) == 1


class _Admin:
    async def describe_topics(self, topics: list[str]) -> list[dict[str, Any]]:
        return [
            {"topic": t, "error_code": 0, "partitions": [{"partition": 0}, {"partition": 1}]}
            for t in topics
        ]

    async def list_consumer_group_offsets(self, group: str) -> dict[TopicPartition, Any]:
        if group == "staging.opensmm.inbox.mentions":
            return {tp("staging.smm.mentions.v1", 0): OffsetAndMetadata(8, "")}
        return {}


class _Offsets:
    async def end_offsets(self, tps: list[TopicPartition]) -> dict[TopicPartition, int]:
        return {p: 10 for p in tps}

    async def beginning_offsets(self, tps: list[TopicPartition]) -> dict[TopicPartition, int]:
        return {p: 0 for p in tps}


async def test_the_sampler_sets_lag_per_group_and_topic() -> None:
    metrics = ServiceMetrics("inbox")
    sampler = ConsumerLagSampler(
        bootstrap_servers="unused:9092", metrics=metrics, topic_prefix="staging."
    )
    sampler.watch("staging.opensmm.inbox.mentions", "staging.smm.mentions.v1")
    sampler.watch("staging.opensmm.inbox.publisher-outcomes", "staging.smm.posts.v1")
    await sampler.sample_once(_Admin(), _Offsets())
    lag = metrics.registry.get_sample_value
    name = "smm_inbox_consumer_lag_records"
    # Partition 0 committed at 8 (2 behind); partition 1 never committed (10 from the start).
    assert lag(name, {"group": "opensmm.inbox.mentions", "topic": "smm.mentions.v1"}) == 12
    assert lag(name, {"group": "opensmm.inbox.publisher-outcomes", "topic": "smm.posts.v1"}) == 20
    assert lag("smm_inbox_consumer_lag_sampled_timestamp_seconds") is not None
