"""The Kafka broker factory: one FastStream broker per process, idempotent producer, acks=all."""

from __future__ import annotations

import logging

from faststream.kafka import KafkaBroker
from faststream.kafka.prometheus import KafkaPrometheusMiddleware

from shared.metrics import ServiceMetrics
from shared.settings import PlatformSettings


def create_broker(platform: PlatformSettings, service: str, metrics: ServiceMetrics) -> KafkaBroker:
    return KafkaBroker(
        platform.kafka_bootstrap_servers,
        client_id=f"opensmm-{service}",
        # A retried send never duplicates or reorders within a partition, and a send is only
        # confirmed once every in-sync replica has it.
        enable_idempotence=True,
        acks="all",
        linger_ms=5,
        # Topics exist before services start; a typo must fail, not create a topic.
        allow_auto_create_topics=False,
        middlewares=[
            KafkaPrometheusMiddleware(
                registry=metrics.registry,
                app_name=f"opensmm-{service}",
                metrics_prefix=f"smm_{service}_faststream",
            )
        ],
        logger=logging.getLogger(f"opensmm.{service}.kafka"),
        graceful_timeout=15.0,
    )
