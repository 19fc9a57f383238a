"""Ingest wiring: the API, the pull scheduler, the posts subscriber and the audit-copy purge."""

from __future__ import annotations

import asyncio
import logging
from datetime import timedelta
from pathlib import Path

from fastapi import APIRouter

from services.ingest import repository
from services.ingest.api import build_api
from services.ingest.connectors.registry import pull_connectors, webhook_connectors
from services.ingest.handlers import subscribe
from services.ingest.language import detect_language
from services.ingest.matching import QueryIndex
from services.ingest.scheduler import PullScheduler
from shared.crypto import SecretBox
from shared.runtime import Runtime
from shared.settings import IngestSettings

MIGRATIONS = Path(__file__).with_name("migrations")
log = logging.getLogger("opensmm.ingest")


def wire(rt: Runtime) -> APIRouter:
    settings = rt.settings
    assert isinstance(settings, IngestSettings)
    if rt.platform.encryption_keys is None:
        raise RuntimeError("SMM_ENCRYPTION_KEYS is not set: ingest stores source secrets encrypted")
    box = SecretBox(rt.platform.encryption_keys.get_secret_value())
    queries = QueryIndex()
    raw_retention = timedelta(days=settings.raw_retention_days)
    pulls = pull_connectors()

    subscribe(rt, timedelta(days=settings.reply_tracking_days))
    if settings.scheduler_enabled:
        scheduler = PullScheduler(
            pool_provider=lambda: rt.pool,
            connectors=pulls,
            box=box,
            queries=queries,
            detect_language=detect_language,
            concurrency=settings.scheduler_concurrency,
            lease_s=settings.source_lease_s,
            pull_timeout_s=settings.pull_timeout_s,
            raw_retention=raw_retention,
        )
        rt.background.append(scheduler.run)

    async def purge_raw() -> None:
        while True:
            try:
                async with rt.pool.acquire() as conn:
                    while await repository.purge_expired_raw(conn) > 0:
                        pass
            except Exception:
                log.warning("audit-copy purge failed; retrying later", exc_info=True)
            await asyncio.sleep(3600)

    rt.background.append(purge_raw)
    return build_api(
        rt,
        box=box,
        queries=queries,
        detect_language=detect_language,
        pull_connectors=pulls,
        webhook_connectors=webhook_connectors(),
        raw_retention=raw_retention,
    )
