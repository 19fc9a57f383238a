"""Abuse guards on the public webhook endpoints: per-source and per-client-IP rate limits (token
buckets) and the freshness check of signed delivery timestamps (replay protection)."""

from __future__ import annotations

import time
from collections.abc import Callable, Mapping
from dataclasses import dataclass

from services.ingest.connectors.base import SignatureInvalid

# Networks whose deliveries can carry a signed send time, and the header it is in. Meta, Telegram
# and VK sign no timestamp (see docs/ingest.md): their replays are absorbed by one item per id.
TIMESTAMP_HEADERS: Mapping[str, str] = {"generic": "x-smm-timestamp"}


@dataclass
class _Bucket:
    tokens: float
    updated: float


class RateLimiter:
    """Token buckets by key: `rate_per_s` refill, `burst` capacity. One process's view; replicas
    each allow the rate (the limit is about abuse, not an exact quota)."""

    def __init__(
        self,
        rate_per_s: float,
        burst: int,
        *,
        max_keys: int = 100_000,
        clock: Callable[[], float] = time.monotonic,
    ) -> None:
        self.rate = rate_per_s
        self.burst = float(max(burst, 1))
        self.max_keys = max_keys
        self._clock = clock
        self._buckets: dict[str, _Bucket] = {}

    @property
    def enabled(self) -> bool:
        return self.rate > 0

    def take(self, key: str) -> float | None:
        """Spend one token of `key`'s bucket: None if allowed, else seconds until one is back."""
        if not self.enabled:
            return None
        now = self._clock()
        bucket = self._buckets.get(key)
        if bucket is None:
            if len(self._buckets) >= self.max_keys:
                self._forget_idle(now)
            bucket = self._buckets[key] = _Bucket(self.burst, now)
        else:
            bucket.tokens = min(self.burst, bucket.tokens + (now - bucket.updated) * self.rate)
            bucket.updated = now
        if bucket.tokens >= 1.0:
            bucket.tokens -= 1.0
            return None
        return (1.0 - bucket.tokens) / self.rate

    def _forget_idle(self, now: float) -> None:
        # A bucket refilled to capacity is indistinguishable from a new one: dropping it is free.
        # Random source ids or spoofed IPs therefore cannot grow memory past max_keys for long.
        full = [
            k
            for k, b in self._buckets.items()
            if b.tokens + (now - b.updated) * self.rate >= self.burst
        ]
        for key in full or list(self._buckets)[: max(1, len(self._buckets) // 10)]:
            del self._buckets[key]


def check_fresh(
    network: str,
    headers: Mapping[str, str],
    *,
    required: bool,
    tolerance_s: float,
    now: float | None = None,
) -> None:
    """Refuse a delivery whose signed timestamp is missing (when the source requires one),
    malformed, or further than `tolerance_s` from now. Headers are lower-cased."""
    name = TIMESTAMP_HEADERS.get(network)
    if name is None:
        return
    raw = headers.get(name)
    if raw is None:
        if required:
            raise SignatureInvalid(f"this source requires a signed {name} header")
        return
    try:
        sent = int(raw.strip())
    except ValueError as exc:
        raise SignatureInvalid(f"{name} is not a Unix time in seconds") from exc
    skew = abs((time.time() if now is None else now) - sent)
    if skew > tolerance_s:
        raise SignatureInvalid(
            f"{name} is {skew:.0f}s from now (tolerance {tolerance_s:.0f}s): replayed or clock off"
        )
