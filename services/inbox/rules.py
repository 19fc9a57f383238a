"""Inbox rules: validated conditions → actions, compiled into an indexed evaluator with dry run.

Pure domain code (no I/O): the inbox service feeds it triaged items and applies what it returns.
"""

from __future__ import annotations

import unicodedata
from collections import Counter
from collections.abc import Callable, Iterable, Sequence
from dataclasses import dataclass, field
from datetime import datetime, time
from typing import Annotated, Any, Literal, TypeAlias
from zoneinfo import ZoneInfo, ZoneInfoNotFoundError

import ahocorasick
from pydantic import BaseModel, ConfigDict, Field, TypeAdapter, field_validator, model_validator

from services.inbox.triage import PriorityLevel
from shared.events import MentionKind, MentionPayload

Sentiment = Literal["negative", "neutral", "positive"]
Comparison = Literal["<=", ">="]
Weekday = Literal["mon", "tue", "wed", "thu", "fri", "sat", "sun"]
_WEEKDAYS: tuple[Weekday, ...] = ("mon", "tue", "wed", "thu", "fri", "sat", "sun")


def fold(text: str) -> str:
    """Case- and diacritic-insensitive form used on both keywords and item text."""
    if text.isascii():
        return " ".join(text.lower().split())
    decomposed = unicodedata.normalize("NFKD", text.casefold())
    stripped = "".join(ch for ch in decomposed if not unicodedata.combining(ch))
    return " ".join(stripped.split())


# --- the item a rule looks at ------------------------------------------------------------------


@dataclass(frozen=True, slots=True)
class RuleItem:
    """An inbox item with its triage, as rules see it."""

    item_id: str
    brand_id: str
    network: str
    kind: MentionKind
    text: str
    created_at: datetime
    author_handle: str
    language: str | None = None
    author_followers: int | None = None
    author_verified: bool | None = None
    sentiment: Sentiment | None = None
    sentiment_score: float | None = None
    intent: str | None = None
    spam: bool | None = None
    priority: int | None = None
    level: PriorityLevel | None = None

    def __post_init__(self) -> None:
        if self.created_at.tzinfo is None:
            # Time-window conditions need a real instant; a naive time would be silently wrong.
            raise ValueError("RuleItem.created_at must be timezone-aware")

    @classmethod
    def from_mention(
        cls,
        mention: MentionPayload,
        *,
        brand_id: str,
        sentiment: Sentiment | None = None,
        sentiment_score: float | None = None,
        intent: str | None = None,
        spam: bool | None = None,
        priority: int | None = None,
        level: PriorityLevel | None = None,
    ) -> RuleItem:
        return cls(
            item_id=str(mention.mention_id),
            brand_id=brand_id,
            network=mention.network,
            kind=mention.kind,
            text=mention.text,
            created_at=mention.created_at,
            author_handle=mention.author.handle,
            language=mention.language,
            author_followers=mention.author.followers,
            author_verified=mention.author.verified,
            sentiment=sentiment,
            sentiment_score=sentiment_score,
            intent=intent,
            spam=spam,
            priority=priority,
            level=level,
        )


# --- conditions --------------------------------------------------------------------------------


class _Model(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True)


def _distinct(values: list[Any]) -> list[Any]:
    if len(set(values)) != len(values):
        raise ValueError("values must not repeat")
    return values


NonEmptyStrs = Annotated[list[Annotated[str, Field(min_length=1)]], Field(min_length=1)]


class _InStrings(_Model):
    values: NonEmptyStrs

    _check_distinct = field_validator("values")(_distinct)


class SentimentIn(_Model):
    type: Literal["sentiment_in"] = "sentiment_in"
    values: Annotated[list[Sentiment], Field(min_length=1)]

    _check_distinct = field_validator("values")(_distinct)


class SentimentScore(_Model):
    """Sentiment score in [-1, 1] compared with a threshold; items without a score never match."""

    type: Literal["sentiment_score"] = "sentiment_score"
    op: Comparison
    value: Annotated[float, Field(ge=-1.0, le=1.0)]


class IntentIn(_InStrings):
    type: Literal["intent_in"] = "intent_in"


class SpamIs(_Model):
    type: Literal["spam_is"] = "spam_is"
    value: bool


class PriorityCompare(_Model):
    type: Literal["priority"] = "priority"
    op: Comparison
    value: Annotated[int, Field(ge=0, le=100)]


class LevelIn(_Model):
    type: Literal["level_in"] = "level_in"
    values: Annotated[list[PriorityLevel], Field(min_length=1)]

    _check_distinct = field_validator("values")(_distinct)


class NetworkIn(_InStrings):
    type: Literal["network_in"] = "network_in"


class BrandIn(_InStrings):
    type: Literal["brand_in"] = "brand_in"


class LanguageIn(_InStrings):
    type: Literal["language_in"] = "language_in"


class KindIn(_Model):
    type: Literal["kind_in"] = "kind_in"
    values: Annotated[list[MentionKind], Field(min_length=1)]

    _check_distinct = field_validator("values")(_distinct)


class AuthorHandleIn(_InStrings):
    """Handles compare case-insensitively and without a leading `@`."""

    type: Literal["author_handle_in"] = "author_handle_in"


class AuthorFollowersAtLeast(_Model):
    type: Literal["author_followers_at_least"] = "author_followers_at_least"
    value: Annotated[int, Field(ge=0)]


class TextContainsAny(_Model):
    """Any keyword occurs as whole words, ignoring case and diacritics."""

    type: Literal["text_contains_any"] = "text_contains_any"
    keywords: NonEmptyStrs

    @field_validator("keywords")
    @classmethod
    def _foldable(cls, keywords: list[str]) -> list[str]:
        for keyword in keywords:
            if not fold(keyword):
                raise ValueError(f"keyword {keyword!r} is empty once case and accents are removed")
        return keywords


class TimeWindow(_Model):
    """Item creation time, in `zone`, falls on one of `weekdays` between `start` and `end`.

    `end` before `start` spans midnight (22:00-06:00); the weekday is that of the window's start.
    """

    type: Literal["time_window"] = "time_window"
    zone: str
    start: time
    end: time
    weekdays: Annotated[list[Weekday], Field(min_length=1)] = list(_WEEKDAYS)

    _check_distinct = field_validator("weekdays")(_distinct)

    @field_validator("zone")
    @classmethod
    def _known_zone(cls, zone: str) -> str:
        try:
            ZoneInfo(zone)
        except (ZoneInfoNotFoundError, ValueError) as exc:
            raise ValueError(f"unknown time zone {zone!r}") from exc
        return zone

    @model_validator(mode="after")
    def _not_empty(self) -> TimeWindow:
        if self.start == self.end:
            raise ValueError("time window start and end must differ")
        return self


Condition = Annotated[
    SentimentIn
    | SentimentScore
    | IntentIn
    | SpamIs
    | PriorityCompare
    | LevelIn
    | NetworkIn
    | BrandIn
    | LanguageIn
    | KindIn
    | AuthorHandleIn
    | AuthorFollowersAtLeast
    | TextContainsAny
    | TimeWindow,
    Field(discriminator="type"),
]


# --- actions -----------------------------------------------------------------------------------


class AddTag(_Model):
    type: Literal["add_tag"] = "add_tag"
    tag: Annotated[str, Field(min_length=1, max_length=64)]


class SetPriority(_Model):
    type: Literal["set_priority"] = "set_priority"
    priority: Annotated[int, Field(ge=0, le=100)]
    level: PriorityLevel | None = None


class AssignTeam(_Model):
    type: Literal["assign_team"] = "assign_team"
    team_id: Annotated[str, Field(min_length=1)]


class AssignMember(_Model):
    type: Literal["assign_member"] = "assign_member"
    member_id: Annotated[str, Field(min_length=1)]


class MarkSpam(_Model):
    type: Literal["mark_spam"] = "mark_spam"


class Hide(_Model):
    type: Literal["hide"] = "hide"


class AutoReply(_Model):
    type: Literal["auto_reply"] = "auto_reply"
    saved_reply_id: Annotated[str, Field(min_length=1)]


Action = Annotated[
    AddTag | SetPriority | AssignTeam | AssignMember | MarkSpam | Hide | AutoReply,
    Field(discriminator="type"),
]

# Actions that set one value on the item: a later rule's replaces an earlier rule's.
_SINGLE_VALUED = frozenset({"set_priority", "assign_team", "assign_member", "auto_reply"})


class Rule(_Model):
    """Every condition must hold (no conditions: every item); then the actions apply in order."""

    id: Annotated[str, Field(min_length=1, max_length=128)]
    name: str = ""
    enabled: bool = True
    conditions: list[Condition] = Field(default_factory=list)
    actions: Annotated[list[Action], Field(min_length=1)]
    stop_processing: bool = False

    @model_validator(mode="after")
    def _one_of_each_single_valued(self) -> Rule:
        seen: set[str] = set()
        for action in self.actions:
            if action.type in _SINGLE_VALUED and action.type in seen:
                raise ValueError(f"rule {self.id!r} has more than one {action.type} action")
            seen.add(action.type)
        return self


_RULES = TypeAdapter(list[Rule])


def parse_rules(data: Any) -> list[Rule]:
    """Validate rules from JSON-like data; raises pydantic's ValidationError naming each fault."""
    return _RULES.validate_python(data)


# --- evaluation --------------------------------------------------------------------------------


@dataclass(frozen=True, slots=True)
class AppliedAction:
    rule_id: str
    action: Action


@dataclass(frozen=True, slots=True)
class RuleMatch:
    """One rule that matched an item in a dry run, with the actions it asked for."""

    rule_id: str
    actions: tuple[Action, ...]


class _Context:
    """Per-item values computed at most once, only if some candidate rule needs them."""

    __slots__ = ("_item", "_keyword_hits", "_ruleset")

    def __init__(self, ruleset: RuleSet, item: RuleItem) -> None:
        self._ruleset = ruleset
        self._item = item
        self._keyword_hits: frozenset[str] | None = None

    def keyword_hits(self) -> frozenset[str]:
        """The rule set's keywords found, as whole words, in the item's text."""
        if self._keyword_hits is None:
            self._keyword_hits = self._ruleset._keywords_in(self._item.text)
        return self._keyword_hits


_Predicate: TypeAlias = Callable[[RuleItem, _Context], bool]


def _compare(op: Comparison, threshold: float) -> Callable[[float | None], bool]:
    if op == "<=":
        return lambda value: value is not None and value <= threshold
    return lambda value: value is not None and value >= threshold


def _in_window(window: TimeWindow) -> Callable[[datetime], bool]:
    zone = ZoneInfo(window.zone)
    days = frozenset(_WEEKDAYS.index(day) for day in window.weekdays)
    start, end = window.start, window.end

    def check(moment: datetime) -> bool:
        local = moment.astimezone(zone)
        clock = local.time().replace(tzinfo=None)
        if start < end:
            return local.weekday() in days and start <= clock < end
        if clock >= start:
            return local.weekday() in days
        # After midnight the window belongs to the previous day's start.
        return clock < end and (local.weekday() - 1) % 7 in days

    return check


@dataclass(slots=True)
class _CompiledRule:
    rule: Rule
    predicates: tuple[_Predicate, ...]


@dataclass(slots=True)
class _Dimension:
    """Which rules accept each value of one item field (brand, network or language)."""

    by_value: dict[str | None, set[int]] = field(default_factory=dict)
    any_value: set[int] = field(default_factory=set)
    _accepting: dict[str | None, frozenset[int]] = field(default_factory=dict)

    def accepting(self, value: str | None) -> frozenset[int]:
        found = self._accepting.get(value)
        if found is None:
            found = frozenset(self.any_value | self.by_value.get(value, set()))
            self._accepting[value] = found
        return found


class RuleSet:
    """Rules compiled for fast evaluation: only rules whose brand, network and language accept the
    item are looked at, and all keyword conditions share one Aho-Corasick automaton."""

    _CACHE_LIMIT = 4096

    def __init__(self, rules: Sequence[Rule]) -> None:
        counts = Counter(rule.id for rule in rules)
        duplicates = sorted(rule_id for rule_id, count in counts.items() if count > 1)
        if duplicates:
            raise ValueError(f"rule ids must be unique, repeated: {', '.join(duplicates)}")
        self._rules: list[_CompiledRule] = []
        self._brands, self._networks, self._languages = _Dimension(), _Dimension(), _Dimension()
        self._automaton: Any = ahocorasick.Automaton()
        self._keyword_count = 0
        self._candidates: dict[tuple[str, str, str | None], tuple[int, ...]] = {}
        for rule in rules:
            if rule.enabled:
                self._add(rule)
        if self._keyword_count:
            self._automaton.make_automaton()

    @classmethod
    def compile(cls, rules: Iterable[Rule]) -> RuleSet:
        return cls(list(rules))

    def __len__(self) -> int:
        return len(self._rules)

    def _add(self, rule: Rule) -> None:
        index = len(self._rules)
        allowed: dict[str, set[str] | None] = {"brand": None, "network": None, "language": None}
        predicates: list[_Predicate] = []
        slow: list[_Predicate] = []
        for condition in rule.conditions:
            if isinstance(condition, BrandIn | NetworkIn | LanguageIn):
                key = {BrandIn: "brand", NetworkIn: "network", LanguageIn: "language"}[
                    type(condition)
                ]
                # Brand ids are exact; network and language codes compare case-insensitively.
                values = (
                    set(condition.values)
                    if key == "brand"
                    else {value.casefold() for value in condition.values}
                )
                current = allowed[key]
                allowed[key] = values if current is None else current & values
            elif isinstance(condition, TextContainsAny | TimeWindow):
                slow.append(self._slow_predicate(condition))
            else:
                predicates.append(_predicate(condition))
        self._rules.append(_CompiledRule(rule, tuple(predicates + slow)))
        for key, dimension in (
            ("brand", self._brands),
            ("network", self._networks),
            ("language", self._languages),
        ):
            accepted = allowed[key]
            if accepted is None:
                dimension.any_value.add(index)
            else:
                # An empty intersection leaves the rule in no bucket: it can never match.
                for value in accepted:
                    dimension.by_value.setdefault(value, set()).add(index)

    def _slow_predicate(self, condition: TextContainsAny | TimeWindow) -> _Predicate:
        if isinstance(condition, TimeWindow):
            in_window = _in_window(condition)
            return lambda item, _ctx: in_window(item.created_at)
        # The item's text is scanned once for every rule's keywords; a condition then only asks
        # whether one of its own keywords was among those found.
        keywords = frozenset(fold(keyword) for keyword in condition.keywords)
        for keyword in keywords:
            if keyword not in self._automaton:
                self._automaton.add_word(keyword, keyword)
                self._keyword_count += 1
        return lambda _item, ctx: not keywords.isdisjoint(ctx.keyword_hits())

    def _keywords_in(self, text: str) -> frozenset[str]:
        if not self._keyword_count:
            return frozenset()
        folded = fold(text)
        hits: set[str] = set()
        for end, keyword in self._automaton.iter(folded):
            start = end - len(keyword) + 1
            # Whole words only, where the keyword itself begins or ends with a word character.
            if keyword[0].isalnum() and start > 0 and folded[start - 1].isalnum():
                continue
            if keyword[-1].isalnum() and end + 1 < len(folded) and folded[end + 1].isalnum():
                continue
            hits.add(keyword)
        return frozenset(hits)

    def _candidate_rules(self, item: RuleItem) -> tuple[int, ...]:
        language = item.language.casefold() if item.language else None
        key = (item.brand_id, item.network.casefold(), language)
        found = self._candidates.get(key)
        if found is None:
            # Set intersection walks the smaller side, so a selective brand keeps this cheap.
            chosen = (
                self._brands.accepting(key[0])
                & self._networks.accepting(key[1])
                & self._languages.accepting(key[2])
            )
            found = tuple(sorted(chosen))
            if len(self._candidates) >= self._CACHE_LIMIT:
                self._candidates.clear()
            self._candidates[key] = found
        return found

    def matching_rules(self, item: RuleItem) -> list[Rule]:
        """Rules that match `item`, in rule order, up to the first matching stop_processing."""
        ctx = _Context(self, item)
        matched: list[Rule] = []
        for index in self._candidate_rules(item):
            compiled = self._rules[index]
            if all(predicate(item, ctx) for predicate in compiled.predicates):
                matched.append(compiled.rule)
                if compiled.rule.stop_processing:
                    break
        return matched

    def evaluate(self, item: RuleItem) -> list[AppliedAction]:
        """Actions to apply to `item`, in rule order.

        For set_priority, assign_team, assign_member and auto_reply only the last matching rule's
        action is kept (a later rule overrides an earlier one); repeated tags, mark_spam and hide
        are kept once.
        """
        applied = [
            AppliedAction(rule.id, action)
            for rule in self.matching_rules(item)
            for action in rule.actions
        ]
        last_single: dict[str, int] = {}
        for position, entry in enumerate(applied):
            if entry.action.type in _SINGLE_VALUED:
                last_single[entry.action.type] = position
        result: list[AppliedAction] = []
        seen: set[tuple[str, str]] = set()
        for position, entry in enumerate(applied):
            action = entry.action
            if action.type in _SINGLE_VALUED:
                if last_single[action.type] == position:
                    result.append(entry)
                continue
            identity = (action.type, action.tag if isinstance(action, AddTag) else "")
            if identity not in seen:
                seen.add(identity)
                result.append(entry)
        return result


def _predicate(condition: Condition) -> _Predicate:
    """A fast check for one field condition (not brand/network/language, which the index does)."""
    match condition:
        case SentimentIn(values=values) | LevelIn(values=values) | KindIn(values=values):
            wanted = frozenset(values)
            attribute = {"sentiment_in": "sentiment", "level_in": "level", "kind_in": "kind"}[
                condition.type
            ]
            return lambda item, _ctx: getattr(item, attribute) in wanted
        case SentimentScore(op=op, value=value):
            check_score = _compare(op, value)
            return lambda item, _ctx: check_score(item.sentiment_score)
        case IntentIn(values=values):
            intents = frozenset(v.casefold() for v in values)
            return lambda item, _ctx: item.intent is not None and item.intent.casefold() in intents
        case SpamIs(value=value):
            # An item triage has not judged counts as not spam.
            return lambda item, _ctx: bool(item.spam) is value
        case PriorityCompare(op=op, value=value):
            check_priority = _compare(op, value)
            return lambda item, _ctx: check_priority(item.priority)
        case AuthorHandleIn(values=values):
            handles = frozenset(v.lstrip("@").casefold() for v in values)
            return lambda item, _ctx: item.author_handle.lstrip("@").casefold() in handles
        case AuthorFollowersAtLeast(value=value):
            minimum = value
            return lambda item, _ctx: (item.author_followers or 0) >= minimum
    raise TypeError(f"no predicate for condition {condition.type}")  # pragma: no cover


def dry_run(rules: Sequence[Rule], items: Iterable[RuleItem]) -> list[list[RuleMatch]]:
    """For each item, the rules that would match it and their actions, without applying any."""
    ruleset = RuleSet.compile(rules)
    return [
        [RuleMatch(rule.id, tuple(rule.actions)) for rule in ruleset.matching_rules(item)]
        for item in items
    ]


__all__ = [
    "Action",
    "AddTag",
    "AppliedAction",
    "AssignMember",
    "AssignTeam",
    "AuthorFollowersAtLeast",
    "AuthorHandleIn",
    "AutoReply",
    "BrandIn",
    "Condition",
    "Hide",
    "IntentIn",
    "KindIn",
    "LanguageIn",
    "LevelIn",
    "MarkSpam",
    "NetworkIn",
    "PriorityCompare",
    "Rule",
    "RuleItem",
    "RuleMatch",
    "RuleSet",
    "SentimentIn",
    "SentimentScore",
    "SetPriority",
    "SpamIs",
    "TextContainsAny",
    "TimeWindow",
    "dry_run",
    "fold",
    "parse_rules",
]
