"""Inbox assignment: fair routing to team members, and claims that keep two agents off one item."""

from __future__ import annotations

from collections import Counter
from datetime import UTC, datetime, timedelta
from fractions import Fraction

import pytest

from services.inbox.assignment import (
    AssignmentStrategy,
    ClaimState,
    Member,
    Team,
    TeamState,
    choose,
    claim,
    release,
)

NOW = datetime(2025, 3, 1, 12, 0, tzinfo=UTC)
TTL = timedelta(minutes=5)


def assign_many(team: Team, n: int, language: str | None = None) -> tuple[Counter[str], Team]:
    """Assign n items one after another, as the service would, counting who got each."""
    state = TeamState()
    got: Counter[str] = Counter()
    for _ in range(n):
        member_id, state = choose(team, language, state)
        assert member_id is not None
        got[member_id] += 1
        team = team.with_assigned(member_id)
    return got, team


# --- fairness ---------------------------------------------------------------------------------


def test_round_robin_spreads_1000_items_evenly() -> None:
    team = Team(
        "support",
        tuple(Member(f"agent-{i}", capacity=10_000) for i in range(3)),
        strategy="round_robin",
    )
    got, _ = assign_many(team, 1000)
    assert sorted(got.values()) == [333, 333, 334]


def test_round_robin_takes_turns_in_team_order() -> None:
    team = Team("support", (Member("ann"), Member("bob"), Member("cat")))
    state = TeamState()
    picked = []
    for _ in range(6):
        member_id, state = choose(team, None, state)
        picked.append(member_id)
    assert picked == ["ann", "bob", "cat", "ann", "bob", "cat"]


def test_round_robin_skips_a_full_member_without_losing_the_turn_order() -> None:
    team = Team("support", (Member("ann"), Member("bob", capacity=1, open_items=1), Member("cat")))
    state = TeamState()
    picked = []
    for _ in range(4):
        member_id, state = choose(team, None, state)
        picked.append(member_id)
    assert picked == ["ann", "cat", "ann", "cat"]


def test_round_robin_restarts_when_the_last_assigned_member_left_the_team() -> None:
    team = Team("support", (Member("ann"), Member("bob")))
    member_id, state = choose(team, None, TeamState(last_assigned="gone"))
    assert member_id == "ann"
    assert state == TeamState(last_assigned="ann")


def test_choose_is_pure_and_leaves_the_given_state_alone() -> None:
    team = Team("support", (Member("ann"), Member("bob")))
    state = TeamState(last_assigned="ann")
    first = choose(team, None, state)
    second = choose(team, None, state)
    assert first == second
    assert first.member_id == "bob"
    assert state == TeamState(last_assigned="ann")


def test_least_loaded_balances_1000_items_in_proportion_to_capacity() -> None:
    team = Team(
        "support",
        (
            Member("junior", capacity=100),
            Member("mid", capacity=300),
            Member("senior", capacity=600),
        ),
        strategy="least_loaded",
    )
    got, after = assign_many(team, 1000)
    assert got == {"junior": 100, "mid": 300, "senior": 600}
    assert all(m.open_items == m.capacity for m in after.members)


def test_least_loaded_keeps_loads_within_one_item_of_each_other_all_the_way() -> None:
    team = Team(
        "support",
        (Member("a", capacity=2000), Member("b", capacity=1000), Member("c", capacity=1000)),
        strategy="least_loaded",
    )
    state = TeamState()
    for _ in range(1000):
        member_id, state = choose(team, None, state)
        assert member_id is not None
        team = team.with_assigned(member_id)
        # Relative load never drifts more than one item's worth (of the smallest desk) apart.
        loads = [Fraction(m.open_items, m.capacity) for m in team.members]
        assert max(loads) - min(loads) <= Fraction(1, 1000)
    assert {m.id: m.open_items for m in team.members} == {"a": 500, "b": 250, "c": 250}


def test_least_loaded_prefers_the_relatively_emptier_member_not_the_one_with_fewer_items() -> None:
    team = Team(
        "support",
        (Member("small", capacity=2, open_items=1), Member("big", capacity=10, open_items=3)),
        strategy="least_loaded",
    )
    assert choose(team, None, TeamState()).member_id == "big"


def test_least_loaded_ties_go_to_the_member_listed_first_every_time() -> None:
    team = Team(
        "support",
        (Member("ann", capacity=4, open_items=2), Member("bob", capacity=2, open_items=1)),
        strategy="least_loaded",
    )
    assert {choose(team, None, TeamState()).member_id for _ in range(20)} == {"ann"}
    reordered = Team("support", tuple(reversed(team.members)), strategy="least_loaded")
    assert choose(reordered, None, TeamState()).member_id == "bob"


# --- language routing -------------------------------------------------------------------------


@pytest.mark.parametrize("strategy", ["round_robin", "least_loaded"])
def test_an_item_goes_only_to_members_who_speak_its_language(strategy: AssignmentStrategy) -> None:
    team = Team(
        "support",
        (
            Member("ann", languages={"en"}, capacity=1000),
            Member("jose", languages={"es", "en"}, capacity=1000),
            Member("bob", languages={"en"}, capacity=1000),
        ),
        strategy=strategy,
    )
    got, _ = assign_many(team, 50, language="es")
    assert got == {"jose": 50}


def test_language_tags_match_on_the_primary_subtag_case_insensitively() -> None:
    team = Team("support", (Member("ann", languages={"en"}), Member("joao", languages={"PT"})))
    assert choose(team, "pt-BR", TeamState()).member_id == "joao"
    assert choose(team, "pt_PT", TeamState()).member_id == "joao"


def test_an_item_in_a_language_nobody_speaks_goes_to_anyone_eligible() -> None:
    team = Team("support", (Member("ann", languages={"en"}), Member("bob", languages={"de"})))
    got, _ = assign_many(team, 4, language="ja")
    assert got == {"ann": 2, "bob": 2}


def test_an_item_without_a_language_goes_to_anyone_eligible() -> None:
    team = Team("support", (Member("ann", languages={"en"}), Member("bob", languages={"de"})))
    got, _ = assign_many(team, 4, language=None)
    assert got == {"ann": 2, "bob": 2}


def test_a_full_speaker_makes_the_item_wait_rather_than_go_to_a_non_speaker() -> None:
    team = Team(
        "support",
        (
            Member("ann", languages={"en"}),
            Member("jose", languages={"es"}, capacity=1, open_items=1),
        ),
    )
    assert choose(team, "es", TeamState()).member_id is None


def test_a_speaker_who_is_away_does_not_hold_the_item_back() -> None:
    team = Team(
        "support",
        (Member("ann", languages={"en"}), Member("jose", languages={"es"}, available=False)),
    )
    assert choose(team, "es", TeamState()).member_id == "ann"


# --- capacity and availability ----------------------------------------------------------------


@pytest.mark.parametrize("strategy", ["round_robin", "least_loaded"])
def test_nobody_gets_more_than_their_capacity(strategy: AssignmentStrategy) -> None:
    team = Team(
        "support",
        (
            Member("ann", capacity=3),
            Member("bob", capacity=5, open_items=4),
            Member("cat", capacity=0),
        ),
        strategy=strategy,
    )
    state = TeamState()
    assigned = 0
    while True:
        member_id, state = choose(team, None, state)
        if member_id is None:
            break
        team = team.with_assigned(member_id)
        assigned += 1
    assert assigned == 4
    assert {m.id: m.open_items for m in team.members} == {"ann": 3, "bob": 5, "cat": 0}


@pytest.mark.parametrize("strategy", ["round_robin", "least_loaded"])
def test_unavailable_members_get_nothing(strategy: AssignmentStrategy) -> None:
    team = Team(
        "support",
        (Member("ann", available=False), Member("bob"), Member("cat", available=False)),
        strategy=strategy,
    )
    got, _ = assign_many(team, 5)
    assert got == {"bob": 5}


def test_closing_an_item_frees_room_for_the_next_one() -> None:
    team = Team("support", (Member("ann", capacity=1, open_items=1),))
    assert choose(team, None, TeamState()).member_id is None
    assert choose(team.with_closed("ann"), None, TeamState()).member_id == "ann"


# --- nobody eligible --------------------------------------------------------------------------


@pytest.mark.parametrize(
    "members",
    [
        (),
        (Member("ann", available=False), Member("bob", available=False)),
        (Member("ann", capacity=2, open_items=2), Member("bob", capacity=0)),
    ],
    ids=["empty-team", "all-away", "all-full"],
)
@pytest.mark.parametrize("strategy", ["round_robin", "least_loaded"])
def test_with_nobody_eligible_the_item_stays_in_the_queue(
    members: tuple[Member, ...], strategy: AssignmentStrategy
) -> None:
    state = TeamState(last_assigned="ann")
    choice = choose(Team("support", members, strategy=strategy), "en", state)
    assert choice.member_id is None
    assert choice.state == state


# --- team shape -------------------------------------------------------------------------------


def test_a_team_serves_only_its_brands_unless_it_serves_all() -> None:
    assert Team("acme-care", (), brands={"acme"}).serves("acme")
    assert not Team("acme-care", (), brands={"acme"}).serves("globex")
    assert Team("everyone", ()).serves("globex")


def test_invalid_teams_and_members_are_refused() -> None:
    with pytest.raises(ValueError, match="duplicate"):
        Team("support", (Member("ann"), Member("ann")))
    with pytest.raises(ValueError, match="capacity"):
        Member("ann", capacity=-1)
    with pytest.raises(ValueError, match="open_items"):
        Member("ann", open_items=-1)
    with pytest.raises(ValueError, match="strategy"):
        Team("support", (), strategy="random")  # type: ignore[arg-type]


# --- claims -----------------------------------------------------------------------------------


def test_a_free_item_is_claimed() -> None:
    result = claim(None, "ann", NOW, TTL)
    assert result.granted
    assert result.outcome == "claimed"
    assert result.claim == ClaimState("ann", NOW, NOW + TTL)


def test_a_second_agent_is_refused_while_the_first_claim_is_live() -> None:
    held = claim(None, "ann", NOW, TTL).claim
    result = claim(held, "bob", NOW + TTL - timedelta(seconds=1), TTL)
    assert not result.granted
    assert result.outcome == "refused"
    # The refused agent sees who holds it and until when.
    assert result.claim == held


def test_two_agents_racing_on_one_item_only_one_wins() -> None:
    stored: ClaimState | None = None
    winners = []
    for agent in ("ann", "bob", "cat"):
        result = claim(stored, agent, NOW, TTL)
        if result.granted:
            winners.append(agent)
            stored = result.claim
    assert winners == ["ann"]


def test_the_holder_renews_and_keeps_the_item_longer() -> None:
    held = claim(None, "ann", NOW, TTL).claim
    later = NOW + timedelta(minutes=4)
    result = claim(held, "ann", later, TTL)
    assert result.outcome == "renewed"
    assert result.claim == ClaimState("ann", NOW, later + TTL)
    # Past the first expiry, the renewed claim still keeps others out.
    assert not claim(result.claim, "bob", NOW + TTL + timedelta(minutes=1), TTL).granted


def test_an_expired_claim_is_taken_over() -> None:
    held = claim(None, "ann", NOW, TTL).claim
    result = claim(held, "bob", NOW + TTL, TTL)
    assert result.outcome == "taken_over"
    assert result.claim == ClaimState("bob", NOW + TTL, NOW + 2 * TTL)
    # And the previous holder, coming back, is now the one refused.
    assert claim(result.claim, "ann", NOW + TTL + timedelta(seconds=1), TTL).outcome == "refused"


def test_the_holder_coming_back_after_expiry_claims_afresh() -> None:
    held = claim(None, "ann", NOW, TTL).claim
    result = claim(held, "ann", NOW + 2 * TTL, TTL)
    assert result.outcome == "claimed"
    assert result.claim == ClaimState("ann", NOW + 2 * TTL, NOW + 3 * TTL)


def test_the_holder_releases_and_another_agent_can_claim_at_once() -> None:
    held = claim(None, "ann", NOW, TTL).claim
    released = release(held, "ann", NOW + timedelta(seconds=30))
    assert released.outcome == "released"
    assert released.claim is None
    assert claim(released.claim, "bob", NOW + timedelta(seconds=31), TTL).outcome == "claimed"


def test_nobody_releases_another_agents_live_claim() -> None:
    held = claim(None, "ann", NOW, TTL).claim
    result = release(held, "bob", NOW + timedelta(seconds=30))
    assert result.outcome == "refused"
    assert result.claim == held


def test_an_expired_claim_of_someone_else_can_be_cleared() -> None:
    held = claim(None, "ann", NOW, TTL).claim
    assert release(held, "bob", NOW + TTL).claim is None


def test_releasing_an_unclaimed_item_is_harmless() -> None:
    assert release(None, "ann", NOW).outcome == "released"


def test_a_claim_needs_a_positive_ttl() -> None:
    with pytest.raises(ValueError, match="ttl"):
        claim(None, "ann", NOW, timedelta(0))
