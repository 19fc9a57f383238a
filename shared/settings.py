"""Settings read from the environment (and a local `.env`), one class per service.

Platform-wide values use the `SMM_` prefix; each service has its own prefix (`SMM_INGEST_`, …)
for what only it needs. A service-level `SMM_<SERVICE>_DATABASE_URL` overrides `SMM_DATABASE_URL`.
Nothing here is read at import time: call `load_settings`.
"""

from __future__ import annotations

from typing import Literal

from pydantic import Field, SecretStr
from pydantic_settings import BaseSettings, SettingsConfigDict

ServiceName = Literal["ingest", "publisher", "inbox", "metrics"]
SERVICE_NAMES: tuple[ServiceName, ...] = ("ingest", "publisher", "inbox", "metrics")
DEFAULT_HTTP_PORTS: dict[ServiceName, int] = {
    "ingest": 8001,
    "publisher": 8002,
    "inbox": 8003,
    "metrics": 8004,
}


class PlatformSettings(BaseSettings):
    """What every service and the operator CLI need (prefix `SMM_`)."""

    model_config = SettingsConfigDict(env_prefix="SMM_", env_file=".env", extra="ignore")

    kafka_bootstrap_servers: str = "127.0.0.1:9092"
    database_url: SecretStr | None = None
    topic_prefix: str = Field(
        default="",
        pattern=r"^[a-z0-9._-]*$",
        description="Prepended to every topic and consumer group (isolates test runs).",
    )
    auth_secret: SecretStr | None = Field(
        default=None, description="HMAC key that signs and verifies bearer tokens (HS256)."
    )
    auth_issuer: str = "opensmm"
    encryption_keys: SecretStr | None = Field(
        default=None,
        description="Comma-separated Fernet keys for secrets at rest; the first one encrypts.",
    )
    log_level: str = "INFO"
    log_format: Literal["json", "console"] = "json"


class ServiceSettings(BaseSettings):
    """Per-service settings; subclasses set the env prefix."""

    model_config = SettingsConfigDict(env_file=".env", extra="ignore")

    http_host: str = "127.0.0.1"
    http_port: int = Field(default=0, ge=0, le=65535)
    database_url: SecretStr | None = None
    db_pool_min_size: int = Field(default=1, ge=0)
    db_pool_max_size: int = Field(default=10, ge=1)
    db_plan_cache_mode: Literal["auto", "force_custom_plan", "force_generic_plan"] = Field(
        default="auto", description="Postgres plan_cache_mode on the service's connections."
    )
    # Under a backlog, bigger batches cost less per event (fixed per-batch and per-statement
    # work); a quiet topic still delivers within consumer_batch_timeout_ms.
    consumer_max_records: int = Field(default=2000, ge=1, le=10_000)
    consumer_batch_timeout_ms: int = Field(default=100, ge=1)
    consumer_max_attempts: int = Field(
        default=3, ge=1, le=20, description="Tries of a failing event before it goes to the DLQ."
    )
    outbox_batch_size: int = Field(default=2000, ge=1, le=10_000)
    outbox_poll_interval_s: float = Field(default=1.0, gt=0)
    max_body_bytes: int = Field(default=2 * 1024 * 1024, ge=1024)


class IngestSettings(ServiceSettings):
    model_config = SettingsConfigDict(env_prefix="SMM_INGEST_", env_file=".env", extra="ignore")
    http_port: int = DEFAULT_HTTP_PORTS["ingest"]
    scheduler_enabled: bool = Field(default=True, description="Poll pull sources in this replica.")
    scheduler_concurrency: int = Field(default=16, ge=1, le=512)
    source_lease_s: float = Field(default=120.0, ge=10)
    pull_timeout_s: float = Field(default=60.0, ge=1)
    raw_retention_days: int = Field(default=90, ge=1, description="Audit copies kept this long.")
    reply_tracking_days: int = Field(
        default=7, ge=1, description="How long replies to a published post are collected."
    )
    webhook_rate_per_s: float = Field(
        default=100.0,
        ge=0,
        description="Webhook deliveries per second one source may send (token bucket); 0 = off.",
    )
    webhook_burst: int = Field(
        default=200, ge=1, description="Deliveries a source may send at once above its rate."
    )
    webhook_unknown_rate_per_s: float = Field(
        default=5.0,
        ge=0,
        description="Deliveries per second one client IP may send to unknown sources; 0 = off.",
    )
    webhook_unknown_burst: int = Field(default=20, ge=1)
    webhook_timestamp_tolerance_s: float = Field(
        default=300.0,
        ge=1,
        description="A signed delivery timestamp further than this from now is refused (replay).",
    )


class PublisherSettings(ServiceSettings):
    model_config = SettingsConfigDict(env_prefix="SMM_PUBLISHER_", env_file=".env", extra="ignore")
    http_port: int = DEFAULT_HTTP_PORTS["publisher"]
    dispatcher_enabled: bool = Field(default=True, description="Publish due posts here.")
    dispatch_lease_s: float = Field(
        default=60.0, ge=2, description="A claimed delivery's lease; a dead replica's expires."
    )
    dispatch_batch: int = Field(default=50, ge=1, le=1000)
    dispatch_network_calls: int = Field(
        default=48,
        ge=1,
        le=1000,
        description="Network calls open at once per replica; raise it when networks answer slowly.",
    )
    network_timeout_s: float = Field(
        default=20.0, gt=0, description="Past this, a publish call's outcome is unknown."
    )
    engagement_enabled: bool = Field(
        default=True, description="Measure published posts' engagement and channels' audience."
    )
    engagement_interval_s: float = Field(
        default=900.0, ge=0.2, description="How often each recent post is measured again."
    )
    engagement_window_days: float = Field(
        default=7.0, gt=0, le=365, description="Posts published this many days back are measured."
    )
    engagement_batch: int = Field(default=50, ge=1, le=1000)
    engagement_lease_s: float = Field(
        default=60.0, ge=2, description="A claimed measurement's lease; a dead replica's expires."
    )


class InboxSettings(ServiceSettings):
    model_config = SettingsConfigDict(env_prefix="SMM_INBOX_", env_file=".env", extra="ignore")
    http_port: int = DEFAULT_HTTP_PORTS["inbox"]
    # The agent list's filters (search words, tags) need plans made for their values.
    db_plan_cache_mode: Literal["auto", "force_custom_plan", "force_generic_plan"] = Field(
        default="force_custom_plan",
        description="Postgres plan_cache_mode on the inbox's connections (see benchmarks.md).",
    )
    sla_tick_s: float = Field(
        default=5.0, gt=0, le=300, description="How often SLA states, escalations and snoozes move."
    )
    claim_ttl_s: float = Field(
        default=300.0, ge=10, description="How long an agent's claim on an item holds unrenewed."
    )


class MetricsSettings(ServiceSettings):
    model_config = SettingsConfigDict(env_prefix="SMM_METRICS_", env_file=".env", extra="ignore")
    http_port: int = DEFAULT_HTTP_PORTS["metrics"]


SETTINGS_CLASSES: dict[ServiceName, type[ServiceSettings]] = {
    "ingest": IngestSettings,
    "publisher": PublisherSettings,
    "inbox": InboxSettings,
    "metrics": MetricsSettings,
}


class ConfigError(RuntimeError):
    """A setting is missing or wrong; the message names it."""


def load_settings(service: ServiceName) -> tuple[PlatformSettings, ServiceSettings]:
    """Read the platform and the service settings; fail with a message naming what is missing."""
    platform = PlatformSettings()
    own = SETTINGS_CLASSES[service]()
    if own.database_url is None:
        if platform.database_url is None:
            raise ConfigError(
                f"no database: set SMM_{service.upper()}_DATABASE_URL or SMM_DATABASE_URL"
            )
        own.database_url = platform.database_url
    if platform.auth_secret is None:
        raise ConfigError("SMM_AUTH_SECRET is not set: services cannot verify bearer tokens")
    return platform, own
