"""Prometheus instruments every service has, in one registry per process, and the sampler that
turns Kafka's committed and end offsets into a consumer-lag gauge.

Names follow `smm_<service>_<thing>_<unit>`. Labels are bounded: topic, group, reason, route,
status, network, kind, outcome; never a tenant or brand on these high-volume series.
docs/observability.md lists every metric and what it means.
"""

from __future__ import annotations

import asyncio
import logging
from collections.abc import Mapping
from typing import Any

from aiokafka import AIOKafkaConsumer
from aiokafka.admin import AIOKafkaAdminClient
from aiokafka.structs import TopicPartition
from prometheus_client import CollectorRegistry, Counter, Gauge, Histogram

log = logging.getLogger("opensmm.metrics")

LATENCY_BUCKETS = (0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 2.5, 5, 10, 30, 60, 300)
# Publication lateness is read in seconds to hours: a scheduler that is a minute late matters.
LATENESS_BUCKETS = (0.5, 1, 2.5, 5, 10, 30, 60, 120, 300, 600, 1800, 3600, 7200)


class ServiceMetrics:
    def __init__(self, service: str, registry: CollectorRegistry | None = None) -> None:
        self.service = service
        self.registry = registry or CollectorRegistry(auto_describe=True)
        p = f"smm_{service}_"
        r = self.registry
        self.events_consumed = Counter(
            p + "events_consumed_total", "Events applied by a consumer.", ["topic"], registry=r
        )
        self.events_duplicate = Counter(
            p + "events_duplicate_total",
            "Redelivered events skipped because their effect was already committed.",
            ["topic"],
            registry=r,
        )
        self.events_ignored = Counter(
            p + "events_ignored_total",
            "Events of a type this consumer does not handle.",
            ["topic"],
            registry=r,
        )
        self.events_failed = Counter(
            p + "events_failed_total",
            "Failed attempts to decode or apply an event.",
            ["topic", "reason"],
            registry=r,
        )
        self.dlq_events = Counter(
            p + "dlq_events_total", "Events sent to a dead-letter topic.", ["topic"], registry=r
        )
        self.events_produced = Counter(
            p + "events_produced_total", "Events published to Kafka.", ["topic"], registry=r
        )
        self.batch_size = Histogram(
            p + "consumer_batch_size",
            "Records per consumed batch.",
            ["topic"],
            buckets=(1, 5, 10, 50, 100, 250, 500, 1000, 5000),
            registry=r,
        )
        self.handler_seconds = Histogram(
            p + "handler_seconds",
            "Time to apply one consumed batch.",
            ["topic"],
            buckets=LATENCY_BUCKETS,
            registry=r,
        )
        self.end_to_end_seconds = Histogram(
            p + "end_to_end_latency_seconds",
            "From when an event happened in the world to when this service applied it.",
            ["topic"],
            buckets=LATENCY_BUCKETS,
            registry=r,
        )
        self.consumer_lag = Gauge(
            p + "consumer_lag_records",
            "Records a consumer group has yet to consume: end offsets minus committed offsets,"
            " summed over the topic's partitions.",
            ["group", "topic"],
            registry=r,
        )
        self.consumer_lag_sampled = Gauge(
            p + "consumer_lag_sampled_timestamp_seconds",
            "When the consumer lag was last read from Kafka (Unix time).",
            registry=r,
        )
        self.outbox_backlog = Gauge(
            p + "outbox_backlog", "Outbox rows not yet published.", registry=r
        )
        self.outbox_relay_seconds = Histogram(
            p + "outbox_relay_latency_seconds",
            "From an outbox row's commit to its publication.",
            buckets=LATENCY_BUCKETS,
            registry=r,
        )
        self.http_requests = Counter(
            p + "http_requests_total",
            "HTTP requests served.",
            ["method", "route", "status"],
            registry=r,
        )
        self.http_seconds = Histogram(
            p + "http_request_seconds",
            "HTTP request latency.",
            ["method", "route"],
            buckets=LATENCY_BUCKETS,
            registry=r,
        )
        # Service-specific instruments: each service only ever touches its own, so the others
        # export their help text and no samples.
        self.publish_outcomes = Counter(
            p + "publish_outcomes_total",
            "Attempts to publish, reply or hide on a network, by how they ended: published,"
            " failed (for good), retried (scheduled again) or unknown (to be reconciled).",
            ["network", "kind", "outcome"],
            registry=r,
        )
        self.scheduler_lateness = Histogram(
            p + "scheduler_lateness_seconds",
            "From a delivery's due time to its publication on the network.",
            ["network", "kind"],
            buckets=LATENESS_BUCKETS,
            registry=r,
        )
        self.sla_breaches = Counter(
            p + "sla_breaches_total",
            "Conversations whose response SLA ran out (kind: first or next response).",
            ["kind"],
            registry=r,
        )
        self.sla_near_breaches = Counter(
            p + "sla_near_breaches_total",
            "Conversations that entered the amber near-breach window of their SLA.",
            ["kind"],
            registry=r,
        )
        self.webhook_rejections = Counter(
            p + "webhook_rejections_total",
            "Webhook deliveries refused, by network and reason (the API error code).",
            ["network", "reason"],
            registry=r,
        )


_process_metrics: ServiceMetrics | None = None


def for_process(service: str) -> ServiceMetrics:
    """The one ServiceMetrics of this process (a process runs one service), made on first use.

    The runtime creates it; parts wired without the runtime at hand find the same instruments.
    """
    global _process_metrics
    if _process_metrics is None or _process_metrics.service != service:
        _process_metrics = ServiceMetrics(service)
    return _process_metrics


def lag_by_topic(
    ends: Mapping[TopicPartition, int],
    committed: Mapping[TopicPartition, Any],
    beginnings: Mapping[TopicPartition, int],
) -> dict[str, int]:
    """Records behind per topic. A partition the group never committed counts from its
    beginning, since the services' consumers start at the earliest offset."""
    lag: dict[str, int] = {}
    for tp, end in ends.items():
        mark = committed.get(tp)
        offset = getattr(mark, "offset", -1) if mark is not None else -1
        start = offset if offset >= 0 else beginnings.get(tp, 0)
        lag[tp.topic] = lag.get(tp.topic, 0) + max(end - start, 0)
    return lag


class ConsumerLagSampler:
    """Reads every watched group's committed offsets and the topics' end offsets from Kafka
    every `interval_s` and sets `consumer_lag_records`. It reads, never joins, the groups."""

    def __init__(
        self,
        *,
        bootstrap_servers: str,
        metrics: ServiceMetrics,
        interval_s: float = 15.0,
        client_id: str = "opensmm-lag",
        topic_prefix: str = "",
    ) -> None:
        self._bootstrap = bootstrap_servers
        self._metrics = metrics
        self._interval_s = interval_s
        self._client_id = client_id
        # Labels carry registry names (no deployment prefix), like every other topic label.
        self._prefix = topic_prefix
        self._groups: dict[str, set[str]] = {}

    def watch(self, group: str, topic: str) -> None:
        self._groups.setdefault(group, set()).add(topic)

    @property
    def groups(self) -> dict[str, set[str]]:
        return {g: set(t) for g, t in self._groups.items()}

    async def sample_once(self, admin: Any, offsets: Any) -> None:
        """One reading through a started admin client and a started group-less consumer."""
        topics = sorted({t for watched in self._groups.values() for t in watched})
        described = await admin.describe_topics(topics)
        partitions = [
            TopicPartition(d["topic"], p["partition"])
            for d in described
            if not d["error_code"]
            for p in d["partitions"]
        ]
        if not partitions:
            return
        ends = await offsets.end_offsets(partitions)
        beginnings = await offsets.beginning_offsets(partitions)
        for group, watched in self._groups.items():
            committed = await admin.list_consumer_group_offsets(group)
            mine = {tp: end for tp, end in ends.items() if tp.topic in watched}
            for topic, lag in lag_by_topic(mine, committed, beginnings).items():
                self._metrics.consumer_lag.labels(
                    group.removeprefix(self._prefix), topic.removeprefix(self._prefix)
                ).set(lag)
        self._metrics.consumer_lag_sampled.set_to_current_time()

    async def run(self) -> None:
        if not self._groups:
            return
        admin = AIOKafkaAdminClient(bootstrap_servers=self._bootstrap, client_id=self._client_id)
        offsets = AIOKafkaConsumer(
            bootstrap_servers=self._bootstrap, client_id=self._client_id, group_id=None
        )
        started: list[Any] = []
        try:
            while True:
                try:
                    for client in (admin, offsets):
                        if client not in started:
                            await client.start()
                            started.append(client)
                    await self.sample_once(admin, offsets)
                except asyncio.CancelledError:
                    raise
                except Exception as exc:
                    # Lag is an observation; a broker hiccup must not take the service down.
                    log.warning("consumer lag: could not read offsets: %r", exc)
                await asyncio.sleep(self._interval_s)
        finally:
            for client in (offsets, admin):
                if client in started:
                    stop = client.stop if client is offsets else client.close
                    try:
                        await stop()
                    except Exception:
                        log.debug("consumer lag: closing a Kafka client failed", exc_info=True)
