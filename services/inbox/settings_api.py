"""The inbox configuration API: members, teams, the tenant's rules (versioned, with a dry run),
saved replies and brand settings, scoped to the caller's tenant."""

# No `from __future__ import annotations`: FastAPI reads the routes' annotations at runtime, and
# `Caller` is local to build_settings_api.

import uuid
from collections import Counter
from collections.abc import Sequence
from datetime import datetime, time
from itertools import pairwise
from typing import Annotated, Any, Literal, Self

import langcodes
from fastapi import APIRouter, Depends, Header, Query, Response
from pydantic import (
    AfterValidator,
    BaseModel,
    ConfigDict,
    Field,
    StringConstraints,
    field_serializer,
    field_validator,
    model_validator,
)

from services.inbox import settings_store as store
from services.inbox.config import RULES, WEEKDAYS, BrandSettings, Name, Weekday
from services.inbox.rules import (
    Action,
    AssignMember,
    AssignTeam,
    AutoReply,
    Rule,
    dry_run,
)
from services.inbox.workflow import REPLY_VARIABLES, placeholders, render, rule_item
from shared.auth import Principal
from shared.db import Connection
from shared.events import BrandId, MentionKind
from shared.http import ApiError, require_role
from shared.runtime import Runtime

READERS = ("admin", "manager", "agent")
WRITERS = ("admin", "manager")
MAX_RULES = 20_000
EXCERPT_CHARS = 280

Window = tuple[time, time]


def _distinct(values: list[Any] | None) -> list[Any] | None:
    if values is not None and len(set(values)) != len(values):
        repeated = sorted({str(v) for v in values if values.count(v) > 1})
        raise ValueError(f"values must not repeat: {', '.join(repeated)}")
    return values


def _language_tag(tag: str) -> str:
    # Validated against the IANA subtag registry, then written the canonical way (pt_br → pt-BR).
    if not langcodes.tag_is_valid(tag):
        raise ValueError(f"{tag!r} is not a BCP 47 language tag")
    return str(langcodes.standardize_tag(tag))


def _hhmm(moment: time) -> str:
    return moment.strftime("%H:%M:%S" if moment.second else "%H:%M")


class _Body(BaseModel):
    model_config = ConfigDict(extra="forbid")


# --- members -----------------------------------------------------------------------------------

LanguageTag = Annotated[
    str, StringConstraints(min_length=1, max_length=35), AfterValidator(_language_tag)
]
Capacity = Annotated[int, Field(ge=0, le=10_000)]


class MemberIn(_Body):
    name: Annotated[str, StringConstraints(max_length=200, strip_whitespace=True)] = ""
    languages: Annotated[list[LanguageTag], Field(max_length=50)] = Field(
        default_factory=list, description="BCP 47 tags the member answers in (en, pt-BR)."
    )
    capacity: Capacity = Field(default=10, description="Open conversations they may hold.")
    available: bool = True

    _check_languages = field_validator("languages")(_distinct)


class MemberPatch(_Body):
    available: bool | None = None
    capacity: Capacity | None = None

    @model_validator(mode="after")
    def _something(self) -> Self:
        if self.available is None and self.capacity is None:
            raise ValueError("set available, capacity or both")
        return self


class MemberOut(BaseModel):
    id: str
    name: str
    languages: list[str]
    capacity: int
    available: bool
    open_items: int = Field(description="Conversations assigned to them now (new/open/pending).")
    teams: list[str]
    created_at: datetime


class MemberList(BaseModel):
    members: list[MemberOut]


# --- teams -------------------------------------------------------------------------------------


class TeamIn(_Body):
    name: Annotated[str, StringConstraints(max_length=200, strip_whitespace=True)] = ""
    strategy: Literal["round_robin", "least_loaded"] = "round_robin"
    brands: Annotated[list[BrandId], Field(min_length=1, max_length=1000)] | None = Field(
        default=None, description="Brands the team answers for; null: every brand."
    )
    members: Annotated[list[Name], Field(max_length=1000)] = Field(
        default_factory=list, description="Member ids in round-robin order."
    )

    _check_brands = field_validator("brands")(_distinct)
    _check_members = field_validator("members")(_distinct)


class TeamOut(BaseModel):
    id: str
    name: str
    strategy: str
    brands: list[str] | None
    members: list[str]
    last_assigned: str | None = Field(description="Who the round robin picked last.")
    created_at: datetime


class TeamList(BaseModel):
    teams: list[TeamOut]


# --- rules -------------------------------------------------------------------------------------


class RuleSetIn(_Body):
    rules: Annotated[list[Rule], Field(max_length=MAX_RULES)]


class RuleSetOut(BaseModel):
    version: int = Field(description="0 until the rules are first saved; send it as If-Match.")
    rules: list[Rule]
    updated_at: datetime | None
    updated_by: str | None


class DryRunIn(_Body):
    rules: Annotated[list[Rule], Field(max_length=MAX_RULES)] | None = Field(
        default=None, description="Candidate rules; the stored rules when left out."
    )
    last: Annotated[int, Field(ge=1, le=1000)] = 100
    brand_id: BrandId | None = None


class RuleMatchOut(BaseModel):
    rule_id: str
    actions: list[Action]


class DryRunItem(BaseModel):
    item_id: uuid.UUID
    brand_id: str
    network: str
    kind: MentionKind
    created_at: datetime
    author_handle: str
    excerpt: str
    matches: list[RuleMatchOut]


class DryRunSummary(BaseModel):
    items: int
    items_matched: int
    by_rule: dict[str, int] = Field(description="Items each rule matched (rules that matched).")
    actions: dict[str, int] = Field(description="Actions the matching rules declare, by type.")


class DryRunOut(BaseModel):
    version: int | None = Field(description="The stored version tried; null for candidates.")
    items: list[DryRunItem]
    summary: DryRunSummary


# --- saved replies -----------------------------------------------------------------------------


def _template(text: str) -> str:
    try:
        used = placeholders(text)
    except ValueError as exc:
        raise ValueError(f"malformed template: {exc}") from exc
    unknown = sorted(used - REPLY_VARIABLES)
    if unknown:
        raise ValueError(
            f"unknown variable {{{unknown[0]}}}; use {', '.join(sorted(REPLY_VARIABLES))}"
        )
    try:
        # Positional fields ({}) and bad format specs only fail when rendered.
        render(text, dict.fromkeys(REPLY_VARIABLES, "x"))
    except IndexError as exc:
        raise ValueError("malformed template: {} needs a variable name, e.g. {brand}") from exc
    except ValueError as exc:
        raise ValueError(f"malformed template: {exc}") from exc
    return text


class SavedReplyIn(_Body):
    name: Annotated[str, StringConstraints(min_length=1, max_length=200, strip_whitespace=True)]
    text: Annotated[str, StringConstraints(min_length=1, max_length=5000)] = Field(
        description="May use {author_name} {author_handle} {brand} {agent} {network}."
    )
    brand_id: BrandId | None = Field(default=None, description="null: usable for every brand.")

    _check_text = field_validator("text")(_template)


class SavedReplyOut(BaseModel):
    id: str
    brand_id: str | None
    name: str
    text: str
    variables: list[str]
    created_at: datetime
    updated_at: datetime


class SavedReplyList(BaseModel):
    saved_replies: list[SavedReplyOut]


class PreviewIn(_Body):
    variables: dict[str, Annotated[str, StringConstraints(max_length=1000)]] = Field(
        default_factory=dict
    )

    @field_validator("variables")
    @classmethod
    def _known(cls, variables: dict[str, str]) -> dict[str, str]:
        unknown = sorted(set(variables) - REPLY_VARIABLES)
        if unknown:
            raise ValueError(
                f"unknown variable {unknown[0]!r}; use {', '.join(sorted(REPLY_VARIABLES))}"
            )
        return variables


class PreviewOut(BaseModel):
    text: str
    missing: list[str] = Field(description="Variables the text uses that were not given.")


# --- brand settings ----------------------------------------------------------------------------


class BrandSettingsIn(BrandSettings):
    """Brand settings as written: business-hours windows are "HH:MM" local times per weekday."""

    @field_validator("business_hours")
    @classmethod
    def _windows(
        cls, hours: dict[Weekday, list[Window]] | None
    ) -> dict[Weekday, list[Window]] | None:
        # BrandSettings checks these too; here each fault is reported on the field, naming the day.
        if hours is None:
            return None
        if not any(hours.values()):
            raise ValueError("must open on at least one day (null: around the clock)")
        for day in WEEKDAYS:
            windows = sorted(hours.get(day, []))
            for start, end in windows:
                if start.tzinfo is not None or end.tzinfo is not None:
                    raise ValueError(f"{day}: windows are local times, without an offset")
                if end != time(0) and end <= start:
                    raise ValueError(
                        f"{day}: window {_hhmm(start)}-{_hhmm(end)} ends before it starts"
                    )
            for (s1, e1), (s2, e2) in pairwise(windows):
                if e1 == time(0) or s2 < e1:
                    first, second = f"{_hhmm(s1)}-{_hhmm(e1)}", f"{_hhmm(s2)}-{_hhmm(e2)}"
                    raise ValueError(f"{day}: windows {first} and {second} overlap")
        return hours


class BrandSettingsOut(BrandSettings):
    stored: bool = Field(description="false: nothing stored, these are the defaults.")
    updated_at: datetime | None = None

    @field_serializer("business_hours")
    def _hhmm_windows(
        self, hours: dict[Weekday, list[Window]] | None
    ) -> dict[str, list[list[str]]] | None:
        if hours is None:
            return None
        return {day: [[_hhmm(s), _hhmm(e)] for s, e in windows] for day, windows in hours.items()}


# --- helpers -----------------------------------------------------------------------------------


def _member_out(row: dict[str, Any]) -> MemberOut:
    return MemberOut(**{k: row[k] for k in MemberOut.model_fields})


def _team_out(row: dict[str, Any]) -> TeamOut:
    return TeamOut(**{k: row[k] for k in TeamOut.model_fields})


def _reply_out(row: dict[str, Any]) -> SavedReplyOut:
    return SavedReplyOut(
        **{k: row[k] for k in SavedReplyOut.model_fields if k != "variables"},
        variables=sorted(placeholders(row["text"])),
    )


def _invalid(code: str, problems: list[dict[str, str]]) -> ApiError:
    fields = ", ".join(p["field"] for p in problems[:5])
    return ApiError(422, code, f"invalid fields: {fields}", details=problems)


def _expected_version(if_match: str | None) -> int | None:
    if if_match is None or if_match.strip() == "*":
        return None
    # Accept the ETag this API sends ("3", W/"3") as well as the bare version.
    raw = if_match.strip().removeprefix("W/").strip('"')
    if not raw.isdigit():
        raise _invalid(
            "invalid_header",
            [
                {
                    "field": "If-Match",
                    "message": "expected the rules version, e.g. 3",
                    "type": "value_error",
                }
            ],
        )
    return int(raw)


async def _check_rules(conn: Connection, tenant_id: str, rules: Sequence[Rule]) -> None:
    """Unique ids, and every team, member and saved reply an action names exists; a 422 naming
    each offending field otherwise."""
    problems: list[dict[str, str]] = []
    first_at: dict[str, int] = {}
    for index, rule in enumerate(rules):
        if rule.id in first_at:
            problems.append(
                {
                    "field": f"rules.{index}.id",
                    "message": f"rule id {rule.id!r} repeats rules.{first_at[rule.id]}.id",
                    "type": "duplicate_rule_id",
                }
            )
        first_at.setdefault(rule.id, index)
    wanted: dict[str, list[tuple[str, str]]] = {"team": [], "member": [], "saved reply": []}
    for index, rule in enumerate(rules):
        for position, action in enumerate(rule.actions):
            where = f"rules.{index}.actions.{position}"
            if isinstance(action, AssignTeam):
                wanted["team"].append((f"{where}.team_id", action.team_id))
            elif isinstance(action, AssignMember):
                wanted["member"].append((f"{where}.member_id", action.member_id))
            elif isinstance(action, AutoReply):
                wanted["saved reply"].append((f"{where}.saved_reply_id", action.saved_reply_id))
    lookups = {
        "team": store.existing_teams,
        "member": store.existing_members,
        "saved reply": store.existing_saved_replies,
    }
    for what, refs in wanted.items():
        if not refs:
            continue
        found = await lookups[what](conn, tenant_id, sorted({ref for _, ref in refs}))
        problems += [
            {"field": field, "message": f"no {what} {ref!r}", "type": "unknown_reference"}
            for field, ref in refs
            if ref not in found
        ]
    if problems:
        raise _invalid("invalid_rules", problems)


async def _refuse_if_named(
    conn: Connection, tenant_id: str, action: str, field: str, value: str, what: str
) -> None:
    rules = await store.rules_naming(conn, tenant_id, action, field, value)
    if rules:
        raise ApiError(
            409,
            f"{what.replace(' ', '_')}_in_use",
            f"{what} {value!r} is named by rule(s) {', '.join(rules[:10])}; change the rules first",
            rules=rules,
        )


def _dry_run_item(row: dict[str, Any], matches: list[RuleMatchOut]) -> DryRunItem:
    text: str = row["text"]
    excerpt = text if len(text) <= EXCERPT_CHARS else text[: EXCERPT_CHARS - 1] + "…"
    return DryRunItem(
        item_id=row["id"],
        brand_id=row["brand_id"],
        network=row["network"],
        kind=row["kind"],
        created_at=row["created_at"],
        author_handle=row["author_handle"],
        excerpt=excerpt,
        matches=matches,
    )


def _unknown(what: str, ident: str) -> ApiError:
    """404 for a member, team or saved reply the tenant does not have."""
    return ApiError(404, "unknown_" + what.replace(" ", "_"), f"no {what} {ident!r}")


# --- routes ------------------------------------------------------------------------------------


def build_settings_api(rt: Runtime) -> APIRouter:
    router = APIRouter()
    Caller = Annotated[Principal, Depends(rt.authenticate)]

    # members

    @router.get("/members", response_model=MemberList, tags=["members"])
    async def list_members(caller: Caller) -> MemberList:
        """Every member with their current open load and teams."""
        require_role(caller, READERS)
        async with rt.pool.acquire() as conn:
            rows = await store.list_members(conn, caller.tenant_id)
        return MemberList(members=[_member_out(r) for r in rows])

    @router.get("/members/{member_id}", response_model=MemberOut, tags=["members"])
    async def get_member(member_id: Name, caller: Caller) -> MemberOut:
        require_role(caller, READERS)
        async with rt.pool.acquire() as conn:
            row = await store.get_member(conn, caller.tenant_id, member_id)
        if row is None:
            raise _unknown("member", member_id)
        return _member_out(row)

    @router.put("/members/{member_id}", response_model=MemberOut, tags=["members"])
    async def put_member(member_id: Name, body: MemberIn, caller: Caller) -> MemberOut:
        """Create or replace a member; the id is the person's token subject."""
        require_role(caller, WRITERS)
        async with rt.pool.acquire() as conn, conn.transaction():
            await store.lock_config(conn, caller.tenant_id)
            await store.upsert_member(
                conn,
                caller.tenant_id,
                member_id,
                name=body.name,
                languages=body.languages,
                capacity=body.capacity,
                available=body.available,
            )
            row = await store.get_member(conn, caller.tenant_id, member_id)
        assert row is not None
        return _member_out(row)

    @router.patch("/members/{member_id}", response_model=MemberOut, tags=["members"])
    async def patch_member(member_id: Name, body: MemberPatch, caller: Caller) -> MemberOut:
        """Availability and capacity. An agent may set their own availability, nothing else."""
        require_role(caller, READERS)
        if caller.role == "agent":
            if caller.subject != member_id:
                raise ApiError(403, "forbidden", "an agent may only set their own availability")
            if body.capacity is not None:
                raise ApiError(403, "forbidden", "an agent may not set capacity")
        async with rt.pool.acquire() as conn, conn.transaction():
            found = await store.update_member(
                conn,
                caller.tenant_id,
                member_id,
                available=body.available,
                capacity=body.capacity,
            )
            row = await store.get_member(conn, caller.tenant_id, member_id) if found else None
        if row is None:
            raise _unknown("member", member_id)
        return _member_out(row)

    @router.delete("/members/{member_id}", status_code=204, tags=["members"])
    async def delete_member(member_id: Name, caller: Caller) -> Response:
        """Remove a member from the tenant and from every team (409 while a rule assigns to
        them)."""
        require_role(caller, WRITERS)
        async with rt.pool.acquire() as conn, conn.transaction():
            await store.lock_config(conn, caller.tenant_id)
            await _refuse_if_named(
                conn, caller.tenant_id, "assign_member", "member_id", member_id, "member"
            )
            if not await store.delete_member(conn, caller.tenant_id, member_id):
                raise _unknown("member", member_id)
        return Response(status_code=204)

    # teams

    @router.get("/teams", response_model=TeamList, tags=["teams"])
    async def list_teams(caller: Caller) -> TeamList:
        """Teams oldest first: the first one answering for a brand routes its new items."""
        require_role(caller, READERS)
        async with rt.pool.acquire() as conn:
            rows = await store.list_teams(conn, caller.tenant_id)
        return TeamList(teams=[_team_out(r) for r in rows])

    @router.get("/teams/{team_id}", response_model=TeamOut, tags=["teams"])
    async def get_team(team_id: Name, caller: Caller) -> TeamOut:
        require_role(caller, READERS)
        async with rt.pool.acquire() as conn:
            row = await store.get_team(conn, caller.tenant_id, team_id)
        if row is None:
            raise _unknown("team", team_id)
        return _team_out(row)

    @router.put("/teams/{team_id}", response_model=TeamOut, tags=["teams"])
    async def put_team(team_id: Name, body: TeamIn, caller: Caller) -> TeamOut:
        """Create or replace a team and its ordered members (who must exist)."""
        require_role(caller, WRITERS)
        async with rt.pool.acquire() as conn, conn.transaction():
            await store.lock_config(conn, caller.tenant_id)
            found = await store.existing_members(conn, caller.tenant_id, body.members)
            missing = [
                {"field": f"members.{i}", "message": f"no member {m!r}", "type": "unknown_member"}
                for i, m in enumerate(body.members)
                if m not in found
            ]
            if missing:
                raise _invalid("invalid_team", missing)
            await store.upsert_team(
                conn,
                caller.tenant_id,
                team_id,
                name=body.name,
                strategy=body.strategy,
                brands=body.brands,
                members=body.members,
            )
            row = await store.get_team(conn, caller.tenant_id, team_id)
        assert row is not None
        return _team_out(row)

    @router.delete("/teams/{team_id}", status_code=204, tags=["teams"])
    async def delete_team(team_id: Name, caller: Caller) -> Response:
        """Delete a team (409 while a rule assigns to it)."""
        require_role(caller, WRITERS)
        async with rt.pool.acquire() as conn, conn.transaction():
            await store.lock_config(conn, caller.tenant_id)
            await _refuse_if_named(
                conn, caller.tenant_id, "assign_team", "team_id", team_id, "team"
            )
            if not await store.delete_team(conn, caller.tenant_id, team_id):
                raise _unknown("team", team_id)
        return Response(status_code=204)

    # rules

    @router.get("/rules", response_model=RuleSetOut, tags=["rules"])
    async def get_rules(caller: Caller, response: Response) -> RuleSetOut:
        """The tenant's ordered rules and their version (also sent as the ETag)."""
        require_role(caller, READERS)
        async with (
            rt.pool.acquire() as conn,
            conn.transaction(isolation="repeatable_read", readonly=True),
        ):
            meta = await store.rule_set_meta(conn, caller.tenant_id)
            rules, _ = await RULES.rules(conn, caller.tenant_id)
        version = meta["version"] if meta else 0
        response.headers["ETag"] = f'"{version}"'
        return RuleSetOut(
            version=version,
            rules=rules,
            updated_at=meta["updated_at"] if meta else None,
            updated_by=meta["updated_by"] if meta else None,
        )

    @router.put("/rules", response_model=RuleSetOut, tags=["rules"])
    async def put_rules(
        body: RuleSetIn,
        caller: Caller,
        if_match: Annotated[
            str | None,
            Header(
                alias="If-Match",
                description="The version you edited; 412 if someone saved since.",
            ),
        ] = None,
    ) -> Response:
        """Replace the tenant's rules in one step; the version goes up by one."""
        require_role(caller, WRITERS)
        expected = _expected_version(if_match)
        async with rt.pool.acquire() as conn, conn.transaction():
            await store.lock_config(conn, caller.tenant_id)
            current = await store.rule_set_version(conn, caller.tenant_id)
            if expected is not None and expected != current:
                raise ApiError(
                    412,
                    "version_mismatch",
                    f"the rules are at version {current}, not {expected}; reload and edit again",
                    version=current,
                )
            await _check_rules(conn, caller.tenant_id, body.rules)
            saved = await store.save_rule_set(
                conn,
                caller.tenant_id,
                [rule.model_dump(mode="json") for rule in body.rules],
                updated_by=caller.subject,
                expected_version=expected,
            )
        assert saved is not None  # the config lock keeps the version where we read it
        # Serialised here, once: returned as a model, FastAPI would validate all (up to
        # thousands of) rules again against the response model before encoding them.
        out = RuleSetOut(rules=body.rules, **saved)
        return Response(
            out.model_dump_json(),
            media_type="application/json",
            headers={"ETag": f'"{saved["version"]}"'},
        )

    @router.post("/rules/dry-run", response_model=DryRunOut, tags=["rules"])
    async def dry_run_rules(body: DryRunIn, caller: Caller) -> DryRunOut:
        """Which rules would match the tenant's latest items, and what they would do; nothing
        is changed."""
        require_role(caller, READERS)
        async with (
            rt.pool.acquire() as conn,
            conn.transaction(isolation="repeatable_read", readonly=True),
        ):
            version: int | None = None
            if body.rules is None:
                meta = await store.rule_set_meta(conn, caller.tenant_id)
                version = meta["version"] if meta else 0
                rules, _ = await RULES.rules(conn, caller.tenant_id)
            else:
                rules = body.rules
                await _check_rules(conn, caller.tenant_id, rules)
            rows = await store.recent_items(
                conn, caller.tenant_id, brand_id=body.brand_id, limit=body.last
            )
        results = dry_run(rules, [rule_item(r) for r in rows])
        by_rule: Counter[str] = Counter()
        actions: Counter[str] = Counter()
        items = []
        for row, matched in zip(rows, results, strict=True):
            for match in matched:
                by_rule[match.rule_id] += 1
                actions.update(action.type for action in match.actions)
            items.append(
                _dry_run_item(
                    row, [RuleMatchOut(rule_id=m.rule_id, actions=list(m.actions)) for m in matched]
                )
            )
        return DryRunOut(
            version=version,
            items=items,
            summary=DryRunSummary(
                items=len(items),
                items_matched=sum(1 for matched in results if matched),
                by_rule=dict(by_rule.most_common()),
                actions=dict(actions.most_common()),
            ),
        )

    # saved replies

    @router.get("/saved-replies", response_model=SavedReplyList, tags=["saved-replies"])
    async def list_saved_replies(
        caller: Caller,
        brand_id: Annotated[
            BrandId | None, Query(description="This brand's replies and the shared ones.")
        ] = None,
    ) -> SavedReplyList:
        require_role(caller, READERS)
        async with rt.pool.acquire() as conn:
            rows = await store.list_saved_replies(conn, caller.tenant_id, brand_id)
        return SavedReplyList(saved_replies=[_reply_out(r) for r in rows])

    @router.get("/saved-replies/{reply_id}", response_model=SavedReplyOut, tags=["saved-replies"])
    async def get_saved_reply(reply_id: Name, caller: Caller) -> SavedReplyOut:
        require_role(caller, READERS)
        async with rt.pool.acquire() as conn:
            row = await store.get_saved_reply(conn, caller.tenant_id, reply_id)
        if row is None:
            raise _unknown("saved reply", reply_id)
        return _reply_out(row)

    @router.put("/saved-replies/{reply_id}", response_model=SavedReplyOut, tags=["saved-replies"])
    async def put_saved_reply(reply_id: Name, body: SavedReplyIn, caller: Caller) -> SavedReplyOut:
        require_role(caller, WRITERS)
        async with rt.pool.acquire() as conn, conn.transaction():
            await store.lock_config(conn, caller.tenant_id)
            row = await store.upsert_saved_reply(
                conn,
                caller.tenant_id,
                reply_id,
                name=body.name,
                text=body.text,
                brand_id=body.brand_id,
            )
        return _reply_out(row)

    @router.delete("/saved-replies/{reply_id}", status_code=204, tags=["saved-replies"])
    async def delete_saved_reply(reply_id: Name, caller: Caller) -> Response:
        """Delete a saved reply (409 while a rule auto-replies with it)."""
        require_role(caller, WRITERS)
        async with rt.pool.acquire() as conn, conn.transaction():
            await store.lock_config(conn, caller.tenant_id)
            await _refuse_if_named(
                conn, caller.tenant_id, "auto_reply", "saved_reply_id", reply_id, "saved reply"
            )
            if not await store.delete_saved_reply(conn, caller.tenant_id, reply_id):
                raise _unknown("saved reply", reply_id)
        return Response(status_code=204)

    @router.post(
        "/saved-replies/{reply_id}/preview", response_model=PreviewOut, tags=["saved-replies"]
    )
    async def preview_saved_reply(reply_id: Name, body: PreviewIn, caller: Caller) -> PreviewOut:
        """The reply's text with the given variables filled in; missing ones stay as {name}."""
        require_role(caller, READERS)
        async with rt.pool.acquire() as conn:
            row = await store.get_saved_reply(conn, caller.tenant_id, reply_id)
        if row is None:
            raise _unknown("saved reply", reply_id)
        return PreviewOut(
            text=render(row["text"], body.variables),
            missing=sorted(placeholders(row["text"]) - set(body.variables)),
        )

    # brand settings

    @router.get(
        "/brands/{brand_id}/settings", response_model=BrandSettingsOut, tags=["brand-settings"]
    )
    async def get_brand_settings(brand_id: BrandId, caller: Caller) -> BrandSettingsOut:
        """The brand's inbox settings, or the defaults (`stored: false`)."""
        require_role(caller, READERS)
        async with rt.pool.acquire() as conn:
            row = await store.get_brand_settings(conn, caller.tenant_id, brand_id)
        if row is None:
            return BrandSettingsOut(stored=False)
        return BrandSettingsOut(**row["settings"], stored=True, updated_at=row["updated_at"])

    @router.put(
        "/brands/{brand_id}/settings", response_model=BrandSettingsOut, tags=["brand-settings"]
    )
    async def put_brand_settings(
        brand_id: BrandId, body: BrandSettingsIn, caller: Caller
    ) -> BrandSettingsOut:
        """Replace the brand's settings (a field left out takes its default)."""
        require_role(caller, WRITERS)
        async with rt.pool.acquire() as conn, conn.transaction():
            row = await store.put_brand_settings(
                conn, caller.tenant_id, brand_id, body.model_dump(mode="json")
            )
        return BrandSettingsOut(**row["settings"], stored=True, updated_at=row["updated_at"])

    @router.delete("/brands/{brand_id}/settings", status_code=204, tags=["brand-settings"])
    async def delete_brand_settings(brand_id: BrandId, caller: Caller) -> Response:
        """Back to the defaults."""
        require_role(caller, WRITERS)
        async with rt.pool.acquire() as conn, conn.transaction():
            deleted = await store.delete_brand_settings(conn, caller.tenant_id, brand_id)
        if not deleted:
            raise ApiError(404, "no_brand_settings", f"brand {brand_id!r} has no stored settings")
        return Response(status_code=204)

    return router
