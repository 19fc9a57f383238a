"""Publisher wiring: the API, the dispatcher, the credential and engagement jobs and the
subscriber to the inbox's requests."""

from __future__ import annotations

import logging
from pathlib import Path

from fastapi import APIRouter

from services.publisher.adapters import PUBLISH_ADAPTERS
from services.publisher.api import build_api
from services.publisher.credentials import keep_fresh
from services.publisher.dispatcher import Dispatcher
from services.publisher.engagement import EngagementMonitor
from services.publisher.handlers import subscribe
from services.publisher.ratelimit import AccountLimiter
from shared.crypto import SecretBox
from shared.runtime import Runtime
from shared.settings import PublisherSettings

MIGRATIONS = Path(__file__).with_name("migrations")


def wire(rt: Runtime) -> APIRouter:
    if rt.platform.encryption_keys is None:
        raise RuntimeError("SMM_ENCRYPTION_KEYS is not set: channel credentials are encrypted")
    box = SecretBox(rt.platform.encryption_keys.get_secret_value())
    settings = rt.settings
    assert isinstance(settings, PublisherSettings)
    subscribe(rt)
    # One INFO line per network call cost ~4 % of a replica's CPU in a burst; outcomes are
    # logged by the dispatcher, and httpx's warnings still show.
    logging.getLogger("httpx").setLevel(logging.WARNING)
    # One budget per account in this process: publishing and measuring draw on the same limits.
    limiter = AccountLimiter()
    if settings.dispatcher_enabled:
        dispatcher = Dispatcher(
            pool_provider=lambda: rt.pool,
            adapters=PUBLISH_ADAPTERS,
            box=box,
            lease_s=settings.dispatch_lease_s,
            batch=settings.dispatch_batch,
            network_concurrency=settings.dispatch_network_calls,
            network_timeout_s=settings.network_timeout_s,
            limiter=limiter,
            metrics=rt.metrics,
            # A post just out has no engagement yet; reading it at once would spend two requests
            # of the account's budget per publish in the middle of a burst (profiled: a third
            # of a replica's CPU in a 50,000-post burst went to those reads).
            engagement_first_check_s=settings.engagement_interval_s,
        )
        rt.background.append(dispatcher.run)
        rt.background.append(lambda: keep_fresh(lambda: rt.pool, PUBLISH_ADAPTERS, box))
    if settings.engagement_enabled:
        monitor = EngagementMonitor(
            pool_provider=lambda: rt.pool,
            adapters=PUBLISH_ADAPTERS,
            box=box,
            interval_s=settings.engagement_interval_s,
            window_days=settings.engagement_window_days,
            lease_s=settings.engagement_lease_s,
            batch=settings.engagement_batch,
            network_timeout_s=settings.network_timeout_s,
            limiter=limiter,
        )
        rt.background.append(monitor.run)
    return build_api(rt, box=box, adapters=PUBLISH_ADAPTERS)
