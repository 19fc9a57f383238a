"""The inbox workflow: what happens to a conversation when a message arrives, when an agent acts,
when a reply comes back from the publisher and when an SLA clock runs out.

Each step runs inside the caller's transaction, on conversations it has locked, and stages its
`smm.inbox.v1` events in the outbox, so a state change and its events commit together.
"""

from __future__ import annotations

import string
import uuid
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field, replace
from datetime import UTC, datetime
from typing import Any, Literal

from services.inbox import events, repository
from services.inbox.assignment import Team, TeamState, choose
from services.inbox.config import RULES, BrandSettings, TeamRoster, brand_settings, roster
from services.inbox.conversations import Conversation
from services.inbox.rules import (
    AddTag,
    AssignMember,
    AssignTeam,
    AutoReply,
    Hide,
    MarkSpam,
    RuleItem,
    SetPriority,
)
from services.inbox.sla import SlaPolicy, due_at, escalation
from services.inbox.triage import PriorityLevel, Signal, priority_level, triage
from shared.db import Connection
from shared.events import (
    CommentHidden,
    CommentHideFailed,
    MentionReceived,
    ReplyFailed,
    ReplyPublished,
)
from shared.outbox import OutgoingEvent, add_events

Status = Literal["new", "open", "pending", "snoozed", "closed"]
LEVEL_FLOOR: dict[PriorityLevel, int] = {"urgent": 75, "high": 50, "normal": 25, "low": 0}
RULES_ACTOR = "rules"
SYSTEM_ACTOR = "system"


@dataclass
class Outcome:
    """What a step produced besides the conversation changes."""

    events: list[OutgoingEvent] = field(default_factory=list)
    activity: list[repository.Activity] = field(default_factory=list)

    def log(
        self,
        conv: Conversation,
        kind: str,
        actor: str,
        item_id: uuid.UUID | None = None,
        **detail: Any,
    ) -> None:
        self.activity.append(
            repository.Activity(conv.tenant_id, conv.id, item_id, actor, kind, detail)
        )


# --- SLA clocks ------------------------------------------------------------------------------


def as_level(value: str) -> PriorityLevel:
    return next((level for level in LEVEL_FLOOR if level == value), "normal")


def _policy(settings: BrandSettings, level: str) -> SlaPolicy:
    return settings.policies().for_priority(as_level(level))


def start_clock(conv: Conversation, settings: BrandSettings, now: datetime) -> None:
    """Start the first-response clock (nobody answered yet) or the next-response clock."""
    policy = _policy(settings, conv.level)
    kind = "first" if conv.first_response_at is None else "next"
    budget = policy.first_response if kind == "first" else policy.next_response
    conv.sla_kind, conv.sla_started_at, conv.sla_state = kind, now, "ok"
    conv.due_at = due_at(now, budget, policy.business_hours)
    conv.near_due_at = due_at(now, budget * policy.near_breach_fraction, policy.business_hours)


def tighten_clock(conv: Conversation, settings: BrandSettings) -> None:
    """A running clock follows the conversation's level up: an urgent message in a normal
    conversation makes the answer due sooner, never later."""
    if conv.sla_state not in ("ok", "near_breach") or conv.sla_started_at is None:
        return
    policy = _policy(settings, conv.level)
    budget = policy.first_response if conv.sla_kind == "first" else policy.next_response
    due = due_at(conv.sla_started_at, budget, policy.business_hours)
    if conv.due_at is None or due < conv.due_at:
        conv.due_at = due
        conv.near_due_at = due_at(
            conv.sla_started_at, budget * policy.near_breach_fraction, policy.business_hours
        )
        if conv.sla_state == "near_breach":
            conv.sla_state = "ok"  # the job re-evaluates it against the new near-due time


def stop_clock(conv: Conversation) -> None:
    """Nothing is due any more (answered, closed, or waiting on the author); a breach stays on
    record."""
    if conv.sla_state in ("ok", "near_breach"):
        conv.sla_state = "met" if conv.sla_kind else "none"
    conv.due_at = conv.near_due_at = None


# --- assignment ------------------------------------------------------------------------------


def _assign_in_team(team: Team, language: str | None, teams: TeamRoster) -> str | None:
    """The member `team`'s strategy picks; their load and the team's round-robin position move
    in `teams` for the rest of the batch."""
    choice = choose(team, language, TeamState(teams.last_assigned.get(team.id)))
    if choice.member_id is not None:
        teams.last_assigned[team.id] = choice.member_id
        _move_load(teams, choice.member_id, +1)
    return choice.member_id


def _move_load(teams: TeamRoster, member_id: str | None, delta: int) -> None:
    """One more (or one fewer) open conversation for `member_id`, in every team they are in."""
    if member_id is None:
        return
    for tid, team in teams.teams.items():
        if any(m.id == member_id for m in team.members):
            teams.teams[tid] = (
                team.with_assigned(member_id) if delta > 0 else team.with_closed(member_id)
            )


def assign(
    conv: Conversation,
    teams: TeamRoster,
    *,
    team_id: str | None,
    member_id: str | None,
    language: str | None,
) -> bool:
    """Give the conversation to a member (directly, or the one the team's strategy picks);
    returns whether the assignment changed. Without a member available the conversation waits in
    the team's queue (team set, nobody assigned)."""
    before = (conv.team_id, conv.assignee_id)
    if member_id is not None:
        if member_id != conv.assignee_id:
            _move_load(teams, conv.assignee_id, -1)
            _move_load(teams, member_id, +1)
        conv.assignee_id = member_id
        if team_id is not None:
            conv.team_id = team_id
        elif conv.team_id is None or not any(
            m.id == member_id for m in teams.teams.get(conv.team_id, Team("", ())).members
        ):
            conv.team_id = next(
                (t.id for t in teams.teams.values() if any(m.id == member_id for m in t.members)),
                None,
            )
    elif team_id is not None:
        team = teams.teams.get(team_id)
        if team is not None and any(m.id == conv.assignee_id for m in team.members):
            conv.team_id = team_id  # already with someone of that team: they keep it
            return (conv.team_id, conv.assignee_id) != before
        _move_load(teams, conv.assignee_id, -1)
        conv.team_id = team_id
        conv.assignee_id = _assign_in_team(team, language, teams) if team else None
    return (conv.team_id, conv.assignee_id) != before


def route(conv: Conversation, teams: TeamRoster, language: str | None) -> bool:
    """An active conversation nobody holds goes to its team's next member, or to the first team
    that answers for the brand."""
    if conv.assignee_id is not None:
        return False
    team = teams.teams.get(conv.team_id) if conv.team_id else teams.team_for_brand(conv.brand_id)
    if team is None:
        return False
    return assign(conv, teams, team_id=team.id, member_id=None, language=language)


# --- saved replies -----------------------------------------------------------------------------

REPLY_VARIABLES = frozenset({"author_name", "author_handle", "brand", "agent", "network"})


class _Variables(dict[str, str]):
    def __missing__(self, key: str) -> str:
        return "{" + key + "}"


def placeholders(text: str) -> set[str]:
    """The `{variables}` a saved reply uses (raises ValueError on a malformed template)."""
    return {name for _, name, _, _ in string.Formatter().parse(text) if name}


def render(text: str, variables: dict[str, str]) -> str:
    return string.Formatter().vformat(text, (), _Variables(variables))


def reply_variables(item: dict[str, Any], agent: str) -> dict[str, str]:
    handle = str(item.get("author_handle") or "")
    return {
        "author_name": str(item.get("author_display_name") or handle.lstrip("@")),
        "author_handle": handle,
        "brand": str(item["brand_id"]),
        "agent": agent,
        "network": str(item["network"]),
    }


# --- replies and hiding ------------------------------------------------------------------------


class NoChannel(LookupError):
    pass


def reply_channel(settings: BrandSettings, network: str, channel_id: uuid.UUID | None) -> uuid.UUID:
    channel = channel_id or settings.reply_channels.get(network)
    if channel is None:
        raise NoChannel(f"brand has no reply channel for {network}; set reply_channels.{network}")
    return channel


async def request_reply(
    conn: Connection,
    conv: Conversation,
    item: dict[str, Any],
    out: Outcome,
    *,
    text: str,
    channel_id: uuid.UUID,
    actor: str,
    saved_reply_id: str | None = None,
) -> uuid.UUID:
    """Store the reply and ask the publisher for it; the conversation waits on the author."""
    request_id = uuid.uuid4()
    await repository.insert_reply(
        conn,
        request_id=request_id,
        tenant_id=conv.tenant_id,
        item_id=item["id"],
        conversation_id=conv.id,
        channel_id=channel_id,
        text=text,
        requested_by=actor,
        saved_reply_id=saved_reply_id,
    )
    out.events.append(
        events.reply_requested(
            conv,
            request_id=request_id,
            channel_id=channel_id,
            reply_to=item["external_id"],
            text=text,
            requested_by=actor,
        )
    )
    out.log(conv, "reply_requested", actor, item["id"], request_id=str(request_id))
    change_status(
        conv,
        "pending",
        item,
        out,
        actor=actor,
        reason="reply sent, waiting on author",
        answer_in_flight=True,
    )
    return request_id


async def request_hide(
    conn: Connection,
    conv: Conversation,
    item: dict[str, Any],
    out: Outcome,
    *,
    channel_id: uuid.UUID | None,
    actor: str,
) -> uuid.UUID:
    """Ask the publisher to hide the comment; without a channel it is recorded as failed."""
    request_id = uuid.uuid4()
    error = None if channel_id else f"brand has no reply channel for {conv.network}"
    await repository.insert_hide_request(
        conn,
        request_id=request_id,
        tenant_id=conv.tenant_id,
        item_id=item["id"],
        channel_id=channel_id,
        requested_by=actor,
        error=error,
    )
    if channel_id is not None:
        out.events.append(
            events.hide_requested(
                conv,
                request_id=request_id,
                channel_id=channel_id,
                external_id=item["external_id"],
                requested_by=actor,
            )
        )
    out.log(conv, "hide_requested", actor, item["id"], request_id=str(request_id), error=error)
    return request_id


# --- status ------------------------------------------------------------------------------------


def change_status(
    conv: Conversation,
    status: Status,
    item: dict[str, Any],
    out: Outcome,
    *,
    actor: str,
    reason: str | None = None,
    snoozed_until: datetime | None = None,
    answer_in_flight: bool = False,
) -> bool:
    """Move the conversation to `status`. `answer_in_flight`: the agent's reply is on its way, so
    the clock keeps running until the publisher confirms it (a failed reply then still counts
    against the original due time)."""
    if conv.status == status and conv.snoozed_until == snoozed_until:
        return False
    previous = conv.status
    conv.status = status
    conv.snoozed_until = snoozed_until if status == "snoozed" else None
    if status == "closed" or (status == "pending" and not answer_in_flight):
        # Closed: nothing is owed. Pending: the ball is in the author's court.
        stop_clock(conv)
    out.events.append(
        events.item_event(
            "item.status_changed",
            conv,
            item,
            previous_status=previous,
            actor=actor,
            reason=reason,
        )
    )
    out.log(
        conv,
        "status_changed",
        actor,
        item["id"],
        previous=previous,
        status=status,
        reason=reason,
        snoozed_until=snoozed_until.isoformat() if snoozed_until else None,
    )
    return True


# --- arrival ---------------------------------------------------------------------------------


@dataclass
class _Arrival:
    event: MentionReceived
    item: dict[str, Any]
    conv_key: repository.ConversationKey
    hide: bool = False
    auto_reply: AutoReply | None = None
    assign_team: str | None = None
    assign_member: str | None = None
    rule_actions: list[dict[str, Any]] = field(default_factory=list)


def _triaged_item(event: MentionReceived, settings: BrandSettings) -> dict[str, Any]:
    p = event.payload
    t = triage(
        p.text,
        language=p.language,
        author_followers=p.author.followers,
        author_verified=p.author.verified,
        kind=p.kind,
        author_handle=p.author.handle,
        vip_authors=settings.vip_authors,
        escalation_keywords=settings.keywords(),
    )
    return {
        "id": p.mention_id,
        "event_id": event.event_id,
        "tenant_id": event.tenant_id,
        "brand_id": event.brand_id or "",
        "source_id": p.source_id,
        "network": p.network,
        "external_id": p.external_id,
        "kind": p.kind,
        "text": p.text,
        "url": p.url,
        "language": p.language,
        "author_id": p.author.id,
        "author_handle": p.author.handle,
        "author_display_name": p.author.display_name,
        "author_followers": p.author.followers,
        "author_verified": p.author.verified,
        "thread_root_id": p.thread.root_external_id,
        "parent_external_id": p.thread.parent_external_id,
        "created_at": p.created_at,
        "sentiment": t.sentiment.label,
        "sentiment_score": t.sentiment.score,
        "intent": t.intent,
        "spam": t.spam.is_spam,
        "priority": t.priority,
        "level": t.level,
        "signals": list(t.signals),
        "tags": [],
        "rule_ids": [],
    }


def _apply_rules(arrival: _Arrival, actions: Sequence[Any]) -> None:
    item = arrival.item
    for applied in actions:
        action = applied.action
        arrival.rule_actions.append({"rule": applied.rule_id, **action.model_dump()})
        if applied.rule_id not in item["rule_ids"]:
            item["rule_ids"].append(applied.rule_id)
        match action:
            case AddTag(tag=tag):
                if tag not in item["tags"]:
                    item["tags"].append(tag)
            case SetPriority(priority=value, level=level):
                item["signals"].insert(
                    0,
                    Signal("rule", value - item["priority"], f"rule {applied.rule_id} set {value}"),
                )
                item["priority"] = value
                item["level"] = level or priority_level(value)
            case MarkSpam():
                item["spam"] = True
                item["signals"].insert(0, Signal("rule_spam", 0, f"rule {applied.rule_id}"))
            case Hide():
                arrival.hide = True
            case AutoReply():
                arrival.auto_reply = action
            case AssignTeam(team_id=team_id):
                arrival.assign_team = team_id
            case AssignMember(member_id=member_id):
                arrival.assign_member = member_id


def rule_item(item: dict[str, Any]) -> RuleItem:
    return RuleItem(
        item_id=str(item["id"]),
        brand_id=item["brand_id"],
        network=item["network"],
        kind=item["kind"],
        text=item["text"],
        created_at=item["created_at"],
        author_handle=item["author_handle"],
        language=item["language"],
        author_followers=item["author_followers"],
        author_verified=item.get("author_verified"),
        sentiment=item["sentiment"],
        sentiment_score=item["sentiment_score"],
        intent=item["intent"],
        spam=item["spam"],
        priority=item["priority"],
        level=item["level"],
    )


async def receive(conn: Connection, received: Sequence[MentionReceived]) -> None:
    """New messages: triage, rules, conversation (open or reopen), assignment, SLA clock, events.

    A mention already stored (the same message heard again under another event) changes nothing.
    """
    known = await repository.existing_item_ids(conn, [e.payload.mention_id for e in received])
    fresh: dict[uuid.UUID, MentionReceived] = {}
    for e in received:
        if e.payload.mention_id not in known:
            fresh.setdefault(e.payload.mention_id, e)
    if not fresh:
        return
    by_tenant: dict[str, list[MentionReceived]] = {}
    for e in fresh.values():
        by_tenant.setdefault(e.tenant_id, []).append(e)
    for tenant_id, tenant_events in sorted(by_tenant.items()):
        await _receive_for_tenant(conn, tenant_id, tenant_events)


async def _receive_for_tenant(
    conn: Connection, tenant_id: str, received: list[MentionReceived]
) -> None:
    now = datetime.now(UTC)
    settings = await brand_settings(conn, tenant_id, {e.brand_id or "" for e in received})
    _, ruleset = await RULES.rules(conn, tenant_id)
    teams = await roster(conn, tenant_id)
    arrivals: list[_Arrival] = []
    ordered = sorted(received, key=lambda e: (e.payload.created_at, str(e.payload.mention_id)))
    # A reply names its parent; some networks (and relays) give the parent as the root. The
    # thread's real root is the parent's root when the inbox already knows the parent.
    roots = await repository.thread_roots(
        conn,
        tenant_id,
        {
            (e.brand_id or "", e.payload.network, p)
            for e in ordered
            if (p := e.payload.thread.parent_external_id)
        },
    )
    for e in ordered:
        item = _triaged_item(e, settings[e.brand_id or ""])
        place = (item["brand_id"], item["network"])
        if item["parent_external_id"]:
            item["thread_root_id"] = roots.get(
                (*place, item["parent_external_id"]), item["thread_root_id"]
            )
        roots[(*place, item["external_id"])] = item["thread_root_id"]
        key = repository.ConversationKey(
            tenant_id, item["brand_id"], item["network"], item["thread_root_id"]
        )
        arrival = _Arrival(e, item, key)
        if len(ruleset):
            _apply_rules(arrival, ruleset.evaluate(rule_item(item)))
        arrivals.append(arrival)
    convs = await repository.lock_conversations(conn, [a.conv_key for a in arrivals], now)
    # Only a conversation that had items before this batch can have items to bring up to date:
    # a new one's items are all stored below with its final state.
    older = {c.id for c in convs.values() if c.stored}
    out = Outcome()
    for a in arrivals:
        conv, item = convs[a.conv_key], a.item
        item["conversation_id"] = conv.id
        _land(conv, a, teams, settings[conv.brand_id], now, out)
    for a in arrivals:  # each conversation as it stands after the whole batch landed
        conv = convs[a.conv_key]
        a.item.update(
            status=conv.status,
            assignee_id=conv.assignee_id,
            team_id=conv.team_id,
            due_at=conv.due_at,
            sla_state=conv.sla_state,
        )
    # Conversations first: a new item refers to its conversation's row.
    await repository.save_conversations(conn, list(convs.values()))
    inserted = await repository.insert_items(conn, [a.item for a in arrivals])
    stored = [a for a in arrivals if a.item["id"] in inserted]
    for tid, team_last in teams.last_assigned.items():
        await repository.set_last_assigned(conn, tenant_id, tid, team_last)
    for a in stored:
        await _follow_up(conn, convs[a.conv_key], a, settings[a.item["brand_id"]], out, now)
        if a.hide or a.auto_reply is not None:
            older.add(convs[a.conv_key].id)  # a rule action may move the conversation on
    if older:
        await repository.sync_items(conn, list(older))
    await repository.insert_activity(conn, out.activity)
    # Events of items that were not stored (a race with another replica) are dropped.
    keep = {str(a.item["id"]) for a in stored}
    await add_events(
        conn,
        [
            e
            for e in out.events
            if e.event["payload"].get("item_id") is None or e.event["payload"]["item_id"] in keep
        ],
    )


def _land(
    conv: Conversation,
    a: _Arrival,
    teams: TeamRoster,
    settings: BrandSettings,
    now: datetime,
    out: Outcome,
) -> None:
    """One new message in its conversation, in memory."""
    item = a.item
    first = conv.is_new
    conv.is_new = False
    conv.item_count += 1
    conv.last_author_at = now
    if first:
        conv.priority, conv.level = item["priority"], item["level"]
    # One event for a new item: it is triaged before it is stored, so `item.created` carries the
    # triage and its strongest signals (a separate `item.triaged` cost every consumer a third more
    # events per mention). `item.triaged` stays in the contract for a later re-triage.
    signals = ", ".join(f"{s.name} {s.weight:+g}" for s in item["signals"][:4])
    out.events.append(events.item_event("item.created", conv, item, reason=signals))
    out.log(conv, "item_received", SYSTEM_ACTOR, item["id"], priority=item["priority"])
    if a.rule_actions:
        out.log(conv, "rules_applied", RULES_ACTOR, item["id"], actions=a.rule_actions)
    if item["spam"]:
        # Spam is kept and shown under its filter, but it neither reopens, pages anyone nor
        # starts a clock.
        return
    reopened = not first and conv.status in ("closed", "pending", "snoozed")
    if reopened:
        change_status(conv, "open", item, out, actor=SYSTEM_ACTOR, reason="the author wrote again")
    if item["priority"] > conv.priority or (reopened and not conv.clock_running):
        conv.priority, conv.level = item["priority"], item["level"]
    if a.assign_member or a.assign_team:
        changed = assign(
            conv,
            teams,
            team_id=a.assign_team,
            member_id=a.assign_member,
            language=item["language"],
        )
        actor = RULES_ACTOR
    else:
        changed = route(conv, teams, item["language"])
        actor = SYSTEM_ACTOR
    if changed:
        out.events.append(events.item_event("item.assigned", conv, item, actor=actor))
        out.log(conv, "assigned", actor, item["id"], team=conv.team_id, member=conv.assignee_id)
    if conv.clock_running:
        tighten_clock(conv, settings)
    else:
        start_clock(conv, settings, now)


async def _follow_up(
    conn: Connection,
    conv: Conversation,
    a: _Arrival,
    settings: BrandSettings,
    out: Outcome,
    now: datetime,
) -> None:
    """Rule actions that reach outside the inbox: hide the comment, answer with a saved reply."""
    item = a.item
    if a.hide:
        channel = settings.reply_channels.get(conv.network)
        await request_hide(conn, conv, item, out, channel_id=channel, actor=RULES_ACTOR)
    if a.auto_reply is not None and not item["spam"]:
        saved = await repository.saved_reply(conn, conv.tenant_id, a.auto_reply.saved_reply_id)
        channel = settings.reply_channels.get(conv.network)
        if saved is None or channel is None:
            why = "saved reply is gone" if saved is None else f"no reply channel for {conv.network}"
            out.log(conv, "auto_reply_skipped", RULES_ACTOR, item["id"], reason=why)
            return
        text = render(saved["text"], reply_variables(item, "auto-reply"))
        await request_reply(
            conn,
            conv,
            item,
            out,
            text=text,
            channel_id=channel,
            actor=RULES_ACTOR,
            saved_reply_id=saved["id"],
        )


# --- outcomes from the publisher ---------------------------------------------------------------


async def reply_outcomes(
    conn: Connection, outcomes: Sequence[ReplyPublished | ReplyFailed]
) -> None:
    """A published reply answers the conversation (first response time recorded, SLA met); a
    failed one shows its reason on the item and puts the conversation back in the open queue."""
    lookups = _Lookups(conn)
    for e in outcomes:
        p = e.payload
        reply = await repository.complete_reply(
            conn,
            request_id=p.request_id,
            tenant_id=e.tenant_id,
            published=isinstance(e, ReplyPublished),
            external_id=p.external_id,
            url=p.url,
            error=p.error,
            at=e.occurred_at,
        )
        if reply is None:
            continue  # not a reply this inbox asked for (another tenant's, or already settled)
        conv = await repository.lock_conversation(conn, reply["conversation_id"])
        item = await repository.get_item(conn, conv.tenant_id, reply["item_id"])
        assert item is not None
        out = Outcome()
        if isinstance(e, ReplyPublished):
            conv.last_reply_at = e.occurred_at
            first = conv.first_response_at is None
            kind, started = conv.sla_kind, conv.sla_started_at
            answered_clock = conv.sla_state in ("ok", "near_breach", "breached") and started
            if first:
                conv.first_response_at = e.occurred_at
                conv.first_response_s = max(0.0, (e.occurred_at - conv.created_at).total_seconds())
            stop_clock(conv)
            out.events.append(
                events.item_event(
                    "item.replied",
                    conv,
                    item,
                    actor=reply["requested_by"],
                    reply_external_id=p.external_id,
                    first_response_s=conv.first_response_s if first else None,
                    response_kind=kind if answered_clock else None,
                    response_s=(
                        max(0.0, (e.occurred_at - started).total_seconds())
                        if answered_clock and started
                        else None
                    ),
                )
            )
            out.log(conv, "replied", reply["requested_by"], item["id"], external_id=p.external_id)
        else:
            out.log(conv, "reply_failed", reply["requested_by"], item["id"], error=p.error)
            if conv.status == "pending":
                change_status(
                    conv, "open", item, out, actor=SYSTEM_ACTOR, reason=f"reply failed: {p.error}"
                )
                if not conv.clock_running:
                    start_clock(conv, await lookups.settings(conv), datetime.now(UTC))
        await commit(conn, [conv], out)


async def hide_outcomes(
    conn: Connection, outcomes: Sequence[CommentHidden | CommentHideFailed]
) -> None:
    for e in outcomes:
        hidden = isinstance(e, CommentHidden)
        row = await repository.complete_hide(
            conn,
            request_id=e.payload.request_id,
            tenant_id=e.tenant_id,
            hidden=hidden,
            error=e.payload.error,
            at=e.occurred_at,
        )
        if row is None:
            continue
        conv = await repository.lock_conversation(conn, row["conversation_id"])
        out = Outcome()
        out.log(
            conv,
            "hidden" if hidden else "hide_failed",
            SYSTEM_ACTOR,
            row["item_id"],
            error=e.payload.error,
        )
        await commit(conn, [conv], out)


class _Lookups:
    """Brand settings and team rosters read once per job run or batch, not once per
    conversation; rosters keep the loads that assignments in this run moved."""

    def __init__(self, conn: Connection) -> None:
        self._conn = conn
        self._settings: dict[tuple[str, str], BrandSettings] = {}
        self._rosters: dict[str, TeamRoster] = {}

    async def settings(self, conv: Conversation) -> BrandSettings:
        key = (conv.tenant_id, conv.brand_id)
        if key not in self._settings:
            found = await brand_settings(self._conn, conv.tenant_id, {conv.brand_id})
            self._settings[key] = found[conv.brand_id]
        return self._settings[key]

    async def roster(self, tenant_id: str) -> TeamRoster:
        if tenant_id not in self._rosters:
            self._rosters[tenant_id] = await roster(self._conn, tenant_id)
        return self._rosters[tenant_id]


async def commit(conn: Connection, convs: Sequence[Conversation], out: Outcome) -> None:
    await repository.save_conversations(conn, convs)
    await repository.sync_items(conn, [c.id for c in convs])
    await repository.insert_activity(conn, out.activity)
    await add_events(conn, out.events)


# --- the SLA clock ---------------------------------------------------------------------------


async def sla_tick(
    conn: Connection,
    now: datetime,
    limit: int = 500,
    on_sla: Callable[[str, str], None] | None = None,
) -> int:
    """Turn conversations amber at their near-due time and red at their due time (escalating
    them), and wake snoozed ones. Rows are claimed with SKIP LOCKED so replicas share the work.
    `on_sla(state, sla_kind)` hears each near breach and breach (for metrics)."""
    done = 0
    lookups = _Lookups(conn)
    for conv in await repository.lock_due(conn, now, limit):
        out = Outcome()
        item = await repository.latest_item(conn, conv.id)
        if item is None:
            continue
        if conv.status == "snoozed" and conv.snoozed_until and conv.snoozed_until <= now:
            change_status(conv, "open", item, out, actor=SYSTEM_ACTOR, reason="snooze ended")
        if conv.sla_state in ("ok", "near_breach") and conv.due_at and conv.due_at <= now:
            await _breach(conn, conv, item, out, lookups)
            if on_sla is not None:
                on_sla("breached", conv.sla_kind or "none")
        elif conv.sla_state == "ok" and conv.near_due_at and conv.near_due_at <= now:
            conv.sla_state = "near_breach"
            out.events.append(events.item_event("item.sla_near_breach", conv, item))
            out.log(conv, "sla_near_breach", SYSTEM_ACTOR, item["id"], due_at=str(conv.due_at))
            if on_sla is not None:
                on_sla("near_breach", conv.sla_kind or "none")
        await commit(conn, [conv], out)
        done += 1
    return done


async def assign_waiting(conn: Connection, limit: int = 200) -> int:
    """Hand conversations waiting in a team's queue to whoever has room now (a member came back,
    capacity freed, or their agent was removed); returns how many found someone."""
    lookups = _Lookups(conn)
    assigned = 0
    for conv in await repository.lock_waiting(conn, limit):
        teams = await lookups.roster(conv.tenant_id)
        item = await repository.latest_item(conn, conv.id)
        if item is None or not route(conv, teams, item["language"]):
            continue
        assigned += 1
        out = Outcome()
        out.events.append(
            events.item_event("item.assigned", conv, item, actor=SYSTEM_ACTOR, reason="team queue")
        )
        out.log(conv, "assigned", SYSTEM_ACTOR, item["id"], member=conv.assignee_id)
        assert conv.team_id is not None
        await repository.set_last_assigned(
            conn, conv.tenant_id, conv.team_id, teams.last_assigned.get(conv.team_id)
        )
        await commit(conn, [conv], out)
    return assigned


async def _breach(
    conn: Connection, conv: Conversation, item: dict[str, Any], out: Outcome, lookups: _Lookups
) -> None:
    settings = await lookups.settings(conv)
    conv.sla_state = "breached"
    level = as_level(conv.level)
    step = escalation("breached", level, reassign_on_breach=settings.sla.escalate_reassign)
    reason = f"{conv.sla_kind} response was due {conv.due_at:%Y-%m-%d %H:%M} UTC"
    if step is not None and settings.sla.escalate_priority and step.priority != level:
        conv.level = step.priority
        conv.priority = max(conv.priority, LEVEL_FLOOR[step.priority])
        await repository.raise_items(conn, conv.id, conv.level, conv.priority)
        item = {**item, "level": conv.level, "priority": max(item["priority"], conv.priority)}
    out.events.append(events.item_event("item.sla_breached", conv, item, reason=reason))
    out.log(conv, "sla_breached", SYSTEM_ACTOR, item["id"], reason=reason, level=conv.level)
    if step is None or not step.reassign or conv.team_id is None:
        return
    teams = await lookups.roster(conv.tenant_id)
    team = teams.teams.get(conv.team_id)
    if team is None:
        return
    previous = conv.assignee_id
    # Someone else of the team: the same choice (strategy, language, room) as on arrival.
    others = replace(team, members=tuple(m for m in team.members if m.id != previous))
    member = _assign_in_team(others, item["language"], teams)
    if member is None:
        return
    _move_load(teams, previous, -1)
    conv.assignee_id = member
    await repository.set_last_assigned(conn, conv.tenant_id, team.id, member)
    out.events.append(
        events.item_event("item.assigned", conv, item, actor=SYSTEM_ACTOR, reason="SLA breached")
    )
    out.log(
        conv,
        "assigned",
        SYSTEM_ACTOR,
        item["id"],
        member=member,
        previous=previous,
        reason="SLA breached",
    )
