"""What the sandbox does to requests besides answering them: Mastodon's per-token rate limit
(fixed five-minute windows, as rack-attack counts them) and the faults tests inject."""

from __future__ import annotations

import threading
import time
from collections.abc import Callable
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import Literal

from pydantic import BaseModel, ConfigDict, Field

FaultKind = Literal[
    "rate_limit", "server_error", "delay", "timeout_after_send", "malformed", "connection_reset"
]


@dataclass(frozen=True)
class RateDecision:
    limit: int
    remaining: int
    reset_at: float  # Unix time the window ends
    allowed: bool

    def headers(self) -> dict[str, str]:
        return {
            "X-RateLimit-Limit": str(self.limit),
            "X-RateLimit-Remaining": str(self.remaining),
            "X-RateLimit-Reset": reset_header(self.reset_at),
        }


def reset_header(unix_time: float) -> str:
    """`X-RateLimit-Reset` as Mastodon sends it: ISO 8601 UTC with microseconds."""
    return datetime.fromtimestamp(unix_time, UTC).strftime("%Y-%m-%dT%H:%M:%S.%fZ")


class RateLimiter:
    """Requests per key in fixed windows aligned to the epoch (Mastodon: 300 per 5 minutes)."""

    def __init__(self, period_s: int = 300, clock: Callable[[], float] = time.time) -> None:
        self.period_s = period_s
        self._clock = clock
        self._lock = threading.Lock()
        self._counts: dict[str, tuple[int, int]] = {}  # key -> (window, requests in it)
        self.refused = 0

    def hit(self, key: str, limit: int) -> RateDecision:
        now = self._clock()
        window = int(now // self.period_s)
        reset_at = float((window + 1) * self.period_s)
        with self._lock:
            seen_window, count = self._counts.get(key, (window, 0))
            if seen_window != window:
                count = 0
            if count >= limit:
                self.refused += 1
                return RateDecision(limit, 0, reset_at, allowed=False)
            count += 1
            self._counts[key] = (window, count)
            if len(self._counts) > 100_000:  # forget keys of past windows
                self._counts = {k: v for k, v in self._counts.items() if v[0] == window}
        return RateDecision(limit, limit - count, reset_at, allowed=True)


class FaultSpec(BaseModel):
    """One fault to inject into the next `count` matching API requests.

    - `rate_limit`: answer 429 with `Retry-After: retry_after_s` (and rate-limit headers);
    - `server_error`: answer `status` (5xx) without doing anything;
    - `delay`: wait `delay_ms` before handling the request normally;
    - `timeout_after_send`: handle the request (a write is applied), then hold the answer for
      `delay_ms`, or with `drop` send the status line and cut the connection;
    - `malformed`: handle normally, then remove `field` from the first status in the answer;
    - `connection_reset`: cut the connection before the request is handled (nothing is applied):
      the client gets no answer, only a status line and then the close, as when a proxy in
      between resets it.
    """

    model_config = ConfigDict(extra="forbid")

    kind: FaultKind
    count: int = Field(default=1, ge=1)
    path_prefix: str = Field(default="/api/", description="Only requests whose path starts so")
    method: str | None = Field(default=None, description="Only this HTTP method (any if unset)")
    retry_after_s: int = Field(default=30, ge=0)
    status: int = Field(default=500, ge=500, le=599)
    delay_ms: int = Field(default=30_000, ge=0, le=600_000)
    drop: bool = False
    field: str = "account"


@dataclass
class ActiveFault:
    spec: FaultSpec
    remaining: int


class FaultBook:
    """Faults waiting for requests; the first one that matches a request is used up by it."""

    def __init__(self) -> None:
        self._lock = threading.Lock()
        self._faults: list[ActiveFault] = []
        self.applied = 0

    def add(self, spec: FaultSpec) -> None:
        with self._lock:
            self._faults.append(ActiveFault(spec, spec.count))

    def reset(self) -> int:
        with self._lock:
            cleared = len(self._faults)
            self._faults.clear()
            return cleared

    def pending(self) -> list[dict[str, object]]:
        with self._lock:
            return [{**f.spec.model_dump(), "remaining": f.remaining} for f in self._faults]

    def take(self, method: str, path: str) -> FaultSpec | None:
        with self._lock:
            for fault in self._faults:
                spec = fault.spec
                if not path.startswith(spec.path_prefix):
                    continue
                if spec.method is not None and spec.method.upper() != method.upper():
                    continue
                fault.remaining -= 1
                if fault.remaining <= 0:
                    self._faults.remove(fault)
                self.applied += 1
                return spec
            return None
