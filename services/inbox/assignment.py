"""Who answers an inbox item: picking a team member fairly, and claims so two agents never answer
the same item at once. Pure domain code; the service stores the returned states."""

from __future__ import annotations

from dataclasses import dataclass, field, replace
from datetime import datetime, timedelta
from fractions import Fraction
from typing import Literal, NamedTuple

AssignmentStrategy = Literal["round_robin", "least_loaded"]
ClaimOutcome = Literal["claimed", "renewed", "taken_over", "released", "refused"]


def _primary_language(tag: str) -> str:
    # Members list "pt", items arrive tagged "pt-BR" or "PT": routing is by the primary subtag.
    return tag.strip().replace("_", "-").split("-", 1)[0].lower()


@dataclass(frozen=True, slots=True)
class Member:
    """A person on an inbox team, with how many open items they may hold at once."""

    id: str
    languages: frozenset[str] | set[str] = field(default_factory=frozenset)
    capacity: int = 10
    available: bool = True
    open_items: int = 0

    def __post_init__(self) -> None:
        if not self.id:
            raise ValueError("member id must not be empty")
        if self.capacity < 0:
            raise ValueError(f"member {self.id}: capacity must be >= 0, got {self.capacity}")
        if self.open_items < 0:
            raise ValueError(f"member {self.id}: open_items must be >= 0, got {self.open_items}")
        object.__setattr__(
            self, "languages", frozenset(_primary_language(lang) for lang in self.languages)
        )

    @property
    def has_capacity(self) -> bool:
        return self.open_items < self.capacity

    def speaks(self, language: str) -> bool:
        return _primary_language(language) in self.languages


@dataclass(frozen=True, slots=True)
class Team:
    """Members who share a queue; `brands` is None when the team answers for every brand."""

    id: str
    members: tuple[Member, ...]
    strategy: AssignmentStrategy = "round_robin"
    brands: frozenset[str] | set[str] | None = None

    def __post_init__(self) -> None:
        object.__setattr__(self, "members", tuple(self.members))
        ids = [m.id for m in self.members]
        if len(ids) != len(set(ids)):
            raise ValueError(f"team {self.id}: duplicate member ids")
        if self.strategy not in ("round_robin", "least_loaded"):
            raise ValueError(f"team {self.id}: unknown strategy {self.strategy!r}")
        if self.brands is not None:
            object.__setattr__(self, "brands", frozenset(self.brands))

    def serves(self, brand_id: str) -> bool:
        return self.brands is None or brand_id in self.brands

    def with_assigned(self, member_id: str) -> Team:
        """The team after `member_id` took one more open item."""
        return self._with_open_items(member_id, +1)

    def with_closed(self, member_id: str) -> Team:
        """The team after `member_id` closed (or handed back) one open item."""
        return self._with_open_items(member_id, -1)

    def _with_open_items(self, member_id: str, delta: int) -> Team:
        if member_id not in {m.id for m in self.members}:
            raise KeyError(member_id)
        members = tuple(
            replace(m, open_items=max(0, m.open_items + delta)) if m.id == member_id else m
            for m in self.members
        )
        return replace(self, members=members)


@dataclass(frozen=True, slots=True)
class TeamState:
    """What a team remembers between assignments: the member round-robin picked last."""

    last_assigned: str | None = None


class Choice(NamedTuple):
    member_id: str | None  # None: nobody eligible, the item waits in the team queue
    state: TeamState


def eligible_members(team: Team, item_language: str | None) -> list[Member]:
    """Available members with room for one more item, narrowed to speakers of the item's language
    when an available member speaks it."""
    on_shift = [m for m in team.members if m.available]
    # Language narrows only among members on shift: a speaker who is away must not hold the item
    # hostage, while a speaker on shift but full makes the item wait for them rather than go to
    # someone who cannot read it.
    if item_language and any(m.speaks(item_language) for m in on_shift):
        on_shift = [m for m in on_shift if m.speaks(item_language)]
    return [m for m in on_shift if m.has_capacity]


def choose(team: Team, item_language: str | None, state: TeamState) -> Choice:
    """Pick the member who gets the next item; the caller stores the returned state and bumps the
    member's open items (see `Team.with_assigned`)."""
    candidates = eligible_members(team, item_language)
    if not candidates:
        return Choice(None, state)
    if team.strategy == "least_loaded":
        position = {m.id: i for i, m in enumerate(team.members)}
        # Exact fractions so equal loads tie exactly; team order breaks ties deterministically.
        chosen = min(candidates, key=lambda m: (Fraction(m.open_items, m.capacity), position[m.id]))
        return Choice(chosen.id, state)
    return _round_robin(team, candidates, state)


def _round_robin(team: Team, candidates: list[Member], state: TeamState) -> Choice:
    order = [m.id for m in team.members]
    eligible = {m.id for m in candidates}
    # Start after the member picked last; if they left the team, start from the top.
    start = order.index(state.last_assigned) + 1 if state.last_assigned in order else 0
    for step in range(len(order)):
        member_id = order[(start + step) % len(order)]
        if member_id in eligible:
            return Choice(member_id, TeamState(last_assigned=member_id))
    raise AssertionError("unreachable: candidates are members of the team")


@dataclass(frozen=True, slots=True)
class ClaimState:
    """Who is answering an item right now, and until when the claim holds without renewal."""

    member_id: str
    claimed_at: datetime
    expires_at: datetime

    def is_expired(self, now: datetime) -> bool:
        return now >= self.expires_at


class ClaimResult(NamedTuple):
    outcome: ClaimOutcome
    claim: ClaimState | None  # what to store; on refusal, the holder's claim to show the agent

    @property
    def granted(self) -> bool:
        return self.outcome != "refused"


def claim(
    item_claim: ClaimState | None, member_id: str, now: datetime, ttl: timedelta
) -> ClaimResult:
    """Claim an item for `member_id`: refused while another member's claim is live, renewed for
    the holder, taken over once the other claim expired."""
    if ttl <= timedelta(0):
        raise ValueError(f"claim ttl must be positive, got {ttl}")
    if not member_id:
        raise ValueError("member id must not be empty")
    if item_claim is None:
        return ClaimResult("claimed", ClaimState(member_id, now, now + ttl))
    if item_claim.member_id == member_id:
        # Renewing keeps the original start so "answering since" stays truthful; a lapsed claim
        # of one's own is simply claimed afresh.
        if item_claim.is_expired(now):
            return ClaimResult("claimed", ClaimState(member_id, now, now + ttl))
        return ClaimResult("renewed", replace(item_claim, expires_at=now + ttl))
    if not item_claim.is_expired(now):
        return ClaimResult("refused", item_claim)
    return ClaimResult("taken_over", ClaimState(member_id, now, now + ttl))


def release(item_claim: ClaimState | None, member_id: str, now: datetime) -> ClaimResult:
    """Give an item back: the holder may release; nobody releases another member's live claim."""
    if item_claim is None:
        return ClaimResult("released", None)
    if item_claim.member_id != member_id and not item_claim.is_expired(now):
        return ClaimResult("refused", item_claim)
    return ClaimResult("released", None)
