"""Prometheus instruments every service has, in one registry per process.

Names follow `smm_<service>_<thing>_<unit>`. Labels are bounded: topic, reason, route, status;
never a tenant or brand on these high-volume series.
"""

from __future__ import annotations

from prometheus_client import CollectorRegistry, Counter, Gauge, Histogram

LATENCY_BUCKETS = (0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 2.5, 5, 10, 30, 60, 300)


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
