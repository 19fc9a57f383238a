"""Per-account pacing of publish calls: token buckets built from each network's published limits,
corrected by its rate-limit headers and its 429s, so one busy account never delays another.

Hand-written because none of aiolimiter, limits or pyrate-limiter takes an injected clock, answers
"how long to wait" without consuming, or lets a network's headers and `Retry-After` reset a bucket.

A window is "at most `limit` per `period_s`". With `burst=None` it is a classic bucket (capacity
`limit`, refilled at `limit / period_s`), which can let up to twice `limit` through in one period:
fine for short pacing limits and for networks whose headers correct the bucket on every answer.
Daily quotas that no header reports get a small `burst` instead: capacity `burst`, refilled at
`(limit - burst) / period_s`, so no period of `period_s`, sliding or fixed, ever sees more than
`limit`.

Sources of the figures in `DEFAULT_POLICIES` (all per account unless said otherwise):

- Mastodon, docs.joinmastodon.org/api/rate-limits: 300 requests per 5 minutes per account;
  POST /api/v1/media 30 per 30 minutes. Headers: X-RateLimit-Remaining / X-RateLimit-Reset.
- Bluesky, docs.bsky.app/docs/advanced-guides/rate-limits: record writes cost points (create 3,
  update 2, delete 1), 5,000 points per hour and 35,000 per day per account (DID). Headers:
  RateLimit-Remaining / RateLimit-Reset (Unix seconds) / RateLimit-Policy.
- Telegram, core.telegram.org/bots/faq ("My bot is hitting limits"): about one message per second
  in one chat, at most 20 messages per minute in a group (and, per @BotSupport, a channel), about
  30 messages per second overall per bot. No headers; a 429 carries `parameters.retry_after`.
- VK, dev.vk.com/ru/api/api-requests: 3 requests per second with a user token (the token that
  posts to a community wall); wall.post fails with error 214 "you can only add 50 posts a day".
- Instagram, IG User content_publishing_limit: `quota_total` 50 per `quota_duration` 86,400 s
  (the content publishing guide now says 100; we keep the reference's lower figure).
- Facebook Page, developers.facebook.com/docs/graph-api/overview/rate-limiting#pages: calls with a
  Page token, 4,800 x engaged users per rolling 24 hours; we assume one engaged user.
- Outgoing webhooks: no limit unless the receiver answers 429 (see `AccountLimiter.penalise`).
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, field
from datetime import datetime
from enum import StrEnum
from typing import Literal

__all__ = [
    "DEFAULT_POLICIES",
    "AccountLimiter",
    "Action",
    "RatePolicy",
    "RateWindow",
    "UnknownNetworkError",
]

# Float refills drift by tiny amounts; a shortfall below this is treated as none.
_EPSILON = 1e-9

Scope = Literal["account", "credential"]


class Action(StrEnum):
    """What a call to a network does, as far as its limits care."""

    PUBLISH = "publish"  # a post, a reply, a message
    # Hiding a comment: not content publishing (Instagram's daily quota leaves it out), but a
    # call all the same for windows that count every call.
    MODERATE = "moderate"
    MEDIA_UPLOAD = "media_upload"
    DELETE = "delete"
    READ = "read"  # reconcile's look-ups


class UnknownNetworkError(ValueError):
    """No rate policy is known for the network: refusing beats publishing unpaced."""


@dataclass(frozen=True, slots=True)
class RateWindow:
    """One published limit: at most `limit` units per `period_s` seconds.

    `actions` is what the window counts (None: every call). `scope` says whose budget it is: the
    account's (a Mastodon account, a Telegram chat, a VK wall), or the credential's that several
    accounts share (a Telegram bot, a VK user token).
    """

    name: str
    limit: float
    period_s: float
    burst: float | None = None
    actions: frozenset[Action] | None = None
    scope: Scope = "account"

    def __post_init__(self) -> None:
        if self.limit <= 0 or self.period_s <= 0:
            raise ValueError(f"window {self.name!r}: limit and period must be positive")
        if self.burst is not None and not 0 < self.burst < self.limit:
            raise ValueError(f"window {self.name!r}: burst must be between 0 and the limit")

    @property
    def capacity(self) -> float:
        return self.limit if self.burst is None else self.burst

    @property
    def refill_per_s(self) -> float:
        return (self.limit if self.burst is None else self.limit - self.burst) / self.period_s

    def counts(self, action: Action) -> bool:
        return self.actions is None or action in self.actions


@dataclass(frozen=True, slots=True)
class RatePolicy:
    """A network's windows, all of which must allow a call, and the price of each action in the
    windows' units (1 when not listed)."""

    windows: tuple[RateWindow, ...] = ()
    prices: Mapping[Action, float] = field(default_factory=dict)

    def price(self, action: Action) -> float:
        return self.prices.get(action, 1.0)


_HOUR = 3600.0
_DAY = 86_400.0

DEFAULT_POLICIES: dict[str, RatePolicy] = {
    "mastodon": RatePolicy(
        windows=(
            # First: the window X-RateLimit-* headers describe.
            RateWindow("requests", limit=300, period_s=300),
            RateWindow("media", limit=30, period_s=1800, actions=frozenset({Action.MEDIA_UPLOAD})),
        )
    ),
    "bluesky": RatePolicy(
        windows=(
            RateWindow(
                "hour",
                limit=5000,
                period_s=_HOUR,
                actions=frozenset({Action.PUBLISH, Action.DELETE}),
            ),
            # The hour window already spaces writes; an hour's worth of burst keeps any 24 hours
            # under 35,000 even if the headers only ever speak of the hour.
            RateWindow(
                "day",
                limit=35_000,
                period_s=_DAY,
                burst=5000,
                actions=frozenset({Action.PUBLISH, Action.DELETE}),
            ),
        ),
        prices={Action.PUBLISH: 3, Action.DELETE: 1},
    ),
    "telegram": RatePolicy(
        windows=(
            RateWindow("chat_second", limit=1, period_s=1, actions=frozenset({Action.PUBLISH})),
            RateWindow(
                "chat_minute",
                limit=20,
                period_s=60,
                burst=5,
                actions=frozenset({Action.PUBLISH}),
            ),
            RateWindow(
                "bot_second",
                limit=30,
                period_s=1,
                actions=frozenset({Action.PUBLISH}),
                scope="credential",
            ),
        )
    ),
    "vk": RatePolicy(
        windows=(
            RateWindow("token_second", limit=3, period_s=1, scope="credential"),
            RateWindow(
                "wall_day", limit=50, period_s=_DAY, burst=5, actions=frozenset({Action.PUBLISH})
            ),
        )
    ),
    "instagram": RatePolicy(
        windows=(
            RateWindow(
                "publish_day",
                limit=50,
                period_s=_DAY,
                burst=5,
                actions=frozenset({Action.PUBLISH}),
            ),
        )
    ),
    "facebook": RatePolicy(
        windows=(RateWindow("page_calls_day", limit=4800, period_s=_DAY, burst=200),)
    ),
    "webhook": RatePolicy(),
}
# The Meta Page channel's adapter is network "meta" (mentions heard on Facebook say "facebook"):
# both names pace against the Page's budget.
DEFAULT_POLICIES["meta"] = DEFAULT_POLICIES["facebook"]


@dataclass(slots=True)
class _Bucket:
    capacity: float
    refill_per_s: float
    tokens: float
    # Tokens are credited from this instant on; a future value holds the refill (a penalty, or a
    # network saying the window resets only then).
    credited_at: float

    def refill(self, now: float) -> None:
        if now > self.credited_at:
            elapsed = now - self.credited_at
            self.tokens = min(self.capacity, self.tokens + elapsed * self.refill_per_s)
            self.credited_at = now

    def wait(self, cost: float, now: float) -> float:
        self.refill(now)
        shortfall = cost - self.tokens
        if shortfall <= _EPSILON:
            return 0.0
        # While refill is held, only the tokens already there can be spent.
        return max(self.credited_at - now, 0.0) + shortfall / self.refill_per_s


def _seconds(instant: datetime, what: str) -> float:
    if instant.tzinfo is None or instant.utcoffset() is None:
        raise ValueError(f"{what} must be timezone-aware, got naive {instant.isoformat()}")
    return instant.timestamp()


class AccountLimiter:
    """One bucket per (network, account, window), made on first use.

    Time is always passed in (`now`, timezone-aware), so the pacing is testable and the caller
    decides what to do with a wait: requeue the post, sleep, or pick another account's work.
    Not thread-safe: the publisher drives it from one asyncio loop.
    """

    def __init__(self, policies: Mapping[str, RatePolicy] | None = None) -> None:
        self._policies = dict(DEFAULT_POLICIES if policies is None else policies)
        self._buckets: dict[tuple[str, Scope, str, str], _Bucket] = {}
        self._penalties: dict[tuple[str, str], float] = {}

    def policy(self, network: str) -> RatePolicy:
        try:
            return self._policies[network]
        except KeyError:
            raise UnknownNetworkError(f"no rate limits known for network {network!r}") from None

    def acquire(
        self,
        network: str,
        account: str,
        cost: float | None = None,
        *,
        now: datetime,
        action: Action = Action.PUBLISH,
        credential: str = "",
    ) -> float:
        """0.0 when the call may go now (its cost is then taken from every window), else the
        seconds to wait before asking again (nothing is taken).

        `cost` defaults to the network's price of `action` (a Bluesky create is 3 points); pass
        it for a call that does several (an applyWrites of five creates costs 15). `credential`
        names what several accounts share (the Telegram bot, the VK user token).
        """
        policy = self.policy(network)
        at = _seconds(now, "now")
        price = policy.price(action) if cost is None else cost
        if price < 0:
            raise ValueError("cost must not be negative")
        wait = max(self._penalties.get((network, account), at) - at, 0.0)
        buckets: list[_Bucket] = []
        for window in policy.windows:
            if not window.counts(action):
                continue
            if price > window.capacity:
                raise ValueError(
                    f"{network} window {window.name!r} holds {window.capacity:g}, "
                    f"a call costing {price:g} can never fit"
                )
            bucket = self._bucket(network, account, credential, window, at)
            buckets.append(bucket)
            wait = max(wait, bucket.wait(price, at))
        if wait > 0.0:
            return wait
        for bucket in buckets:
            bucket.tokens = max(bucket.tokens - price, 0.0)
        return 0.0

    def observe(
        self,
        network: str,
        account: str,
        remaining: float,
        reset_at: datetime,
        *,
        now: datetime,
        window: str | None = None,
        credential: str = "",
    ) -> None:
        """Align a window with what the network's rate-limit headers say: `remaining` units until
        `reset_at`. `window` defaults to the policy's first one. The bucket never holds more than
        its capacity, and refills only from `reset_at` on, when the network's count restarts."""
        policy = self.policy(network)
        chosen = next(
            (w for w in policy.windows if window is None or w.name == window),
            None,
        )
        if chosen is None:
            raise ValueError(f"{network} has no rate window named {window!r}")
        at = _seconds(now, "now")
        reset = _seconds(reset_at, "reset_at")
        bucket = self._bucket(network, account, credential, chosen, at)
        bucket.refill(at)
        bucket.tokens = min(max(remaining, 0.0), bucket.capacity)
        bucket.credited_at = max(bucket.credited_at, reset, at)

    def penalise(self, network: str, account: str, retry_after_s: float, *, now: datetime) -> None:
        """After a 429: the account's windows are empty and nothing is allowed for it until
        `retry_after_s` from now; refill starts only then. Other accounts are untouched, even
        those sharing a credential."""
        policy = self.policy(network)
        at = _seconds(now, "now")
        until = at + max(retry_after_s, 0.0)
        key = (network, account)
        self._penalties[key] = max(self._penalties.get(key, until), until)
        for window in policy.windows:
            if window.scope != "account":
                continue
            bucket = self._bucket(network, account, "", window, at)
            bucket.tokens = 0.0
            bucket.credited_at = max(bucket.credited_at, until)

    def _bucket(
        self, network: str, account: str, credential: str, window: RateWindow, now: float
    ) -> _Bucket:
        owner = account if window.scope == "account" else credential
        key = (network, window.scope, owner, window.name)
        bucket = self._buckets.get(key)
        if bucket is None:
            bucket = _Bucket(window.capacity, window.refill_per_s, window.capacity, now)
            self._buckets[key] = bucket
        return bucket
