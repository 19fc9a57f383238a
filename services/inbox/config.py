"""What a tenant configures for its inbox — brand settings (hours, holidays, SLA, VIP authors, reply
channels), teams and members, rules — as validated models, and the loaders the workflow uses."""

from __future__ import annotations

import uuid
from dataclasses import dataclass
from datetime import date, time, timedelta
from typing import Annotated, Literal
from zoneinfo import ZoneInfo, ZoneInfoNotFoundError

from pydantic import (
    BaseModel,
    ConfigDict,
    Field,
    PrivateAttr,
    field_validator,
    model_validator,
)

from services.inbox.assignment import Member, Team
from services.inbox.rules import Rule, RuleSet, parse_rules
from services.inbox.sla import BusinessHours, SlaPolicies, SlaPolicy
from services.inbox.triage import DEFAULT_ESCALATION_KEYWORDS, PriorityLevel
from shared.db import Connection

Weekday = Literal["mon", "tue", "wed", "thu", "fri", "sat", "sun"]
WEEKDAYS: tuple[Weekday, ...] = ("mon", "tue", "wed", "thu", "fri", "sat", "sun")
Name = Annotated[str, Field(min_length=1, max_length=128, pattern=r"^[A-Za-z0-9][A-Za-z0-9_.@-]*$")]


class _Model(BaseModel):
    model_config = ConfigDict(extra="forbid")


class SlaTarget(_Model):
    """Minutes to answer; fractions are allowed (0.5 = 30 seconds)."""

    first_response_minutes: Annotated[float, Field(gt=0, le=60 * 24 * 30)]
    next_response_minutes: Annotated[float, Field(gt=0, le=60 * 24 * 30)]


DEFAULT_SLA_TARGETS: dict[PriorityLevel, SlaTarget] = {
    "urgent": SlaTarget(first_response_minutes=30, next_response_minutes=30),
    "high": SlaTarget(first_response_minutes=60, next_response_minutes=60),
    "normal": SlaTarget(first_response_minutes=240, next_response_minutes=240),
    "low": SlaTarget(first_response_minutes=1440, next_response_minutes=1440),
}


class SlaSettings(_Model):
    """Response targets by priority level, counted in business hours when the brand has them."""

    targets: dict[PriorityLevel, SlaTarget] = Field(
        default_factory=lambda: dict(DEFAULT_SLA_TARGETS)
    )
    near_breach_fraction: Annotated[float, Field(gt=0, le=1)] = 0.8
    business_hours_only: bool = True
    # On a breach: raise the conversation one priority level, and hand it to someone else.
    escalate_priority: bool = True
    escalate_reassign: bool = True

    @field_validator("targets")
    @classmethod
    def _every_level(
        cls, targets: dict[PriorityLevel, SlaTarget]
    ) -> dict[PriorityLevel, SlaTarget]:
        # A level left out keeps its default target rather than having none.
        return {**DEFAULT_SLA_TARGETS, **targets}


class BrandSettings(_Model):
    time_zone: str = "UTC"
    # None: the clock runs around the day. Otherwise local windows per weekday ("09:00"-"18:00").
    business_hours: dict[Weekday, list[tuple[time, time]]] | None = None
    holidays: list[date] = Field(default_factory=list, max_length=1000)
    sla: SlaSettings = Field(default_factory=SlaSettings)
    vip_authors: list[Annotated[str, Field(min_length=1, max_length=256)]] = Field(
        default_factory=list, max_length=10_000
    )
    # None: the built-in list (refund, lawsuit, scam, …); [] turns the signal off.
    escalation_keywords: list[Annotated[str, Field(min_length=1, max_length=128)]] | None = None
    # The publisher channel that answers (and hides) on each network for this brand.
    reply_channels: dict[Annotated[str, Field(min_length=1, max_length=64)], uuid.UUID] = Field(
        default_factory=dict
    )
    _policies: SlaPolicies | None = PrivateAttr(default=None)

    @field_validator("time_zone")
    @classmethod
    def _known_zone(cls, zone: str) -> str:
        try:
            ZoneInfo(zone)
        except (ZoneInfoNotFoundError, ValueError) as exc:
            raise ValueError(f"unknown time zone {zone!r}") from exc
        return zone

    @model_validator(mode="after")
    def _hours_are_valid(self) -> BrandSettings:
        if self.business_hours is not None and not any(self.business_hours.values()):
            raise ValueError(
                "business_hours must open on at least one day (null: around the clock)"
            )
        self.hours()  # BusinessHours checks overlaps and order; its ValueError names the window
        return self

    def hours(self) -> BusinessHours | None:
        if self.business_hours is None:
            return None
        week = {WEEKDAYS.index(day): windows for day, windows in self.business_hours.items()}
        return BusinessHours(zone=self.time_zone, week=week, holidays=frozenset(self.holidays))

    def policies(self) -> SlaPolicies:
        """The SLA policies by level, built once per settings object (every new item asks)."""
        if self._policies is None:
            self._policies = self._build_policies()
        return self._policies

    def _build_policies(self) -> SlaPolicies:
        hours = self.hours() if self.sla.business_hours_only else None
        by_level = {
            level: SlaPolicy(
                first_response=timedelta(minutes=t.first_response_minutes),
                next_response=timedelta(minutes=t.next_response_minutes),
                near_breach_fraction=self.sla.near_breach_fraction,
                business_hours=hours,
            )
            for level, t in self.sla.targets.items()
        }
        return SlaPolicies(fallback=by_level["normal"], by_priority=by_level)

    def keywords(self) -> tuple[str, ...]:
        if self.escalation_keywords is None:
            return tuple(DEFAULT_ESCALATION_KEYWORDS)
        return tuple(self.escalation_keywords)


async def brand_settings(
    conn: Connection, tenant_id: str, brand_ids: set[str]
) -> dict[str, BrandSettings]:
    """Each brand's settings; a brand nobody configured gets the defaults."""
    rows = await conn.fetch(
        "SELECT brand_id, settings FROM brand_settings WHERE tenant_id = $1 AND brand_id = ANY($2)",
        tenant_id,
        list(brand_ids),
    )
    found = {r["brand_id"]: BrandSettings.model_validate(r["settings"]) for r in rows}
    return {b: found.get(b) or BrandSettings() for b in brand_ids}


class _RuleCache:
    """Compiled rule sets per tenant, recompiled when the stored version moves."""

    def __init__(self) -> None:
        self._compiled: dict[str, tuple[int, list[Rule], RuleSet]] = {}

    async def rules(self, conn: Connection, tenant_id: str) -> tuple[list[Rule], RuleSet]:
        version = await conn.fetchval(
            "SELECT version FROM rule_sets WHERE tenant_id = $1", tenant_id
        )
        if version is None:
            return [], RuleSet.compile([])
        cached = self._compiled.get(tenant_id)
        if cached is None or cached[0] != version:
            raw = await conn.fetchval("SELECT rules FROM rule_sets WHERE tenant_id = $1", tenant_id)
            rules = parse_rules(raw)
            cached = (int(version), rules, RuleSet.compile(rules))
            self._compiled[tenant_id] = cached
        return cached[1], cached[2]


RULES = _RuleCache()


@dataclass
class TeamRoster:
    """A tenant's teams in creation order with their members' current open load."""

    teams: dict[str, Team]
    last_assigned: dict[str, str | None]
    names: dict[str, str]

    def team_for_brand(self, brand_id: str) -> Team | None:
        """The first team (oldest) that answers for the brand and has members."""
        return next((t for t in self.teams.values() if t.serves(brand_id) and t.members), None)


async def roster(conn: Connection, tenant_id: str) -> TeamRoster:
    teams = await conn.fetch(
        "SELECT id, name, strategy, brands, last_assigned FROM teams WHERE tenant_id = $1"
        " ORDER BY created_at, id",
        tenant_id,
    )
    members = await conn.fetch(
        """
        SELECT tm.team_id, m.id, m.languages, m.capacity, m.available,
               (SELECT count(*) FROM conversations c
                WHERE c.tenant_id = m.tenant_id AND c.assignee_id = m.id
                  AND c.status IN ('new', 'open', 'pending'))::int AS open_items
        FROM team_members tm JOIN members m ON m.tenant_id = tm.tenant_id AND m.id = tm.member_id
        WHERE tm.tenant_id = $1
        ORDER BY tm.team_id, tm.position, m.id
        """,
        tenant_id,
    )
    by_team: dict[str, list[Member]] = {}
    for m in members:
        by_team.setdefault(m["team_id"], []).append(
            Member(
                id=m["id"],
                languages=frozenset(m["languages"]),
                capacity=m["capacity"],
                available=m["available"],
                open_items=m["open_items"],
            )
        )
    return TeamRoster(
        teams={
            t["id"]: Team(
                id=t["id"],
                members=tuple(by_team.get(t["id"], ())),
                strategy=t["strategy"],
                brands=frozenset(t["brands"]) if t["brands"] is not None else None,
            )
            for t in teams
        },
        last_assigned={t["id"]: t["last_assigned"] for t in teams},
        names={t["id"]: t["name"] for t in teams},
    )
