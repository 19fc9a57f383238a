"""Every tenant's active listening queries compiled into one matcher, refreshed when they change."""

from __future__ import annotations

import asyncio
import logging
import time
import uuid
from collections.abc import Sequence
from dataclasses import dataclass
from datetime import datetime

from services.ingest import repository
from services.ingest.listening import Matcher, MatchInput, QueryParseError, parse
from shared.db import Connection

log = logging.getLogger("opensmm.ingest.matching")


@dataclass(frozen=True)
class QueryInfo:
    id: uuid.UUID
    version: int
    tenant_id: str
    brand_id: str
    role: str
    competitor: str | None


class QueryIndex:
    """Holds the compiled matcher; `refresh` rebuilds it when the queries table changed.

    Built from all tenants at once so a mention is tokenised and pre-filtered once; results are
    then restricted to the tenant whose source heard the mention.
    """

    def __init__(self, min_refresh_interval_s: float = 2.0) -> None:
        self._matcher: Matcher[uuid.UUID] = Matcher([])
        self._info: dict[uuid.UUID, QueryInfo] = {}
        self._fingerprint: tuple[datetime | None, int] | None = None
        self._checked_at = 0.0
        self._interval = min_refresh_interval_s
        self._lock = asyncio.Lock()

    @property
    def size(self) -> int:
        return len(self._info)

    def invalidate(self) -> None:
        """Force a rebuild at the next refresh (this replica just changed a query)."""
        self._checked_at = 0.0
        self._fingerprint = None

    async def refresh(self, conn: Connection) -> None:
        if time.monotonic() - self._checked_at < self._interval:
            return
        async with self._lock:
            if time.monotonic() - self._checked_at < self._interval:
                return
            fingerprint = await repository.queries_fingerprint(conn)
            self._checked_at = time.monotonic()
            if fingerprint == self._fingerprint:
                return
            rows = await repository.active_queries(conn)
            started = time.perf_counter()
            compiled = []
            info: dict[uuid.UUID, QueryInfo] = {}
            for row in rows:
                try:
                    compiled.append((row.id, parse(row.expression)))
                except QueryParseError:
                    # Stored queries were validated on write; a grammar change must not stop
                    # ingestion for everyone.
                    log.error("stored query %s no longer parses; skipped", row.id)
                    continue
                info[row.id] = QueryInfo(
                    row.id, row.version, row.tenant_id, row.brand_id, row.role, row.competitor
                )
            matcher = await asyncio.to_thread(Matcher, compiled)
            self._matcher, self._info, self._fingerprint = matcher, info, fingerprint
            log.info(
                "listening matcher rebuilt: %d queries in %.2fs",
                len(info),
                time.perf_counter() - started,
            )

    def match(self, tenant_id: str, mention: MatchInput) -> Sequence[QueryInfo]:
        out = []
        for key in self._matcher.match(mention):
            info = self._info.get(key)
            if info is not None and info.tenant_id == tenant_id:
                out.append(info)
        return out
