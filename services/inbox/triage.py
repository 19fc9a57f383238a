"""Inbox triage: sentiment, intent, spam and an explainable priority for one mention, in en and ru.

Pure and deterministic (no I/O, no model download), so handlers and the API can call it inline.
"""

# ruff: noqa: RUF001 -- Cyrillic stems and the typographic apostrophe are the point.

from __future__ import annotations

import itertools
import math
import re
from collections import Counter
from collections.abc import Iterable, Sequence
from dataclasses import dataclass, field
from typing import Literal

SentimentLabel = Literal["positive", "neutral", "negative"]
Intent = Literal["question", "complaint", "praise", "purchase", "other"]
PriorityLevel = Literal["urgent", "high", "normal", "low"]
MentionKind = Literal["mention", "comment", "reply", "direct_message", "review", "post"]


@dataclass(frozen=True, slots=True)
class Signal:
    """One reason behind a score: `weight` is what it added (priority points or spam score)."""

    name: str
    weight: float
    detail: str


@dataclass(frozen=True, slots=True)
class Sentiment:
    label: SentimentLabel
    score: float  # -1 (angry) .. 1 (delighted)
    sarcasm: bool = False


@dataclass(frozen=True, slots=True)
class SpamVerdict:
    is_spam: bool
    score: float  # 0 .. 1
    features: list[Signal] = field(default_factory=list)


@dataclass(frozen=True, slots=True)
class Triage:
    sentiment: Sentiment
    intent: Intent
    spam: SpamVerdict
    priority: int  # 0 .. 100
    level: PriorityLevel
    signals: list[Signal] = field(default_factory=list)


DEFAULT_ESCALATION_KEYWORDS: tuple[str, ...] = (
    # Matched as word prefixes, so "refunds", "lawyers", "возврата", "мошенники" match too.
    "refund",
    "chargeback",
    "lawsuit",
    "lawyer",
    "suing",
    "scam",
    "fraud",
    "police",
    "возврат",
    "верните деньги",
    "суд",
    "юрист",
    "адвокат",
    "мошенн",
    "обман",
    "полици",
    "роспотребнадзор",
)

# --- lexicon ------------------------------------------------------------------------------------
# English entries match whole words; Russian entries are stems matched as word prefixes, which is
# enough morphology for short texts ("довол" covers доволен/довольна/довольны).

_EN_WORDS: dict[str, float] = {
    "love": 2.0,
    "loved": 2.0,
    "loving": 2.0,
    "amazing": 2.5,
    "awesome": 2.5,
    "great": 2.0,
    "excellent": 2.5,
    "perfect": 2.5,
    "perfectly": 2.0,
    "best": 2.0,
    "good": 1.5,
    "nice": 1.5,
    "thanks": 1.5,
    "thank": 1.5,
    "fan": 1.5,
    "impressed": 2.0,
    "wonderful": 2.5,
    "recommend": 2.0,
    "incredible": 2.5,
    "happy": 2.0,
    "smooth": 1.5,
    "fast": 1.0,
    "rock": 1.5,
    "slaps": 2.0,
    "goat": 2.0,
    "nailed": 2.0,
    "fire": 1.5,
    "shoutout": 1.5,
    "pleasantly": 1.5,
    "glad": 1.5,
    "fantastic": 2.5,
    "beautiful": 2.0,
    "brilliant": 2.5,
    "superb": 2.5,
    "appreciate": 1.5,
    "enjoy": 2.0,
    "enjoyed": 2.0,
    "cool": 1.5,
    "works": 0.3,
    "win": 0.5,
    "bad": -2.0,
    "terrible": -2.5,
    "awful": -2.5,
    "worst": -3.0,
    "horrible": -2.5,
    "hate": -2.5,
    "useless": -2.5,
    "broken": -2.0,
    "crashing": -2.0,
    "crashed": -2.0,
    "crash": -2.0,
    "late": -1.5,
    "lost": -1.5,
    "scam": -3.0,
    "fraud": -3.0,
    "unacceptable": -2.5,
    "disappointed": -2.5,
    "disappoints": -2.0,
    "disappointing": -2.5,
    "sucks": -2.5,
    "rude": -2.0,
    "cold": -1.0,
    "twice": -1.0,
    "ugh": -1.5,
    "complain": -1.5,
    "angry": -2.5,
    "downhill": -2.0,
    "cancelled": -1.0,
    "cancels": -1.5,
    "waiting": -1.0,
    "nobody": -1.0,
    "poor": -2.0,
    "slow": -1.5,
    "annoying": -2.0,
    "ridiculous": -2.0,
    "lawyer": -1.5,
    "lawsuit": -2.0,
    "pending": -0.5,
    "hangs": -1.0,
    "garbage": -2.5,
}
_RU_STEMS: dict[str, float] = {
    "обожа": 2.0,
    "люблю": 2.0,
    "супер": 2.0,
    "отличн": 2.5,
    "отлично": 2.5,
    "спасиб": 1.5,
    "благодар": 1.5,
    "молодц": 2.0,
    "лучш": 2.0,
    "огонь": 2.0,
    "топчик": 2.0,
    "топов": 2.0,
    "советую": 1.5,
    "рекоменд": 2.0,
    "довол": 2.0,
    "класс": 2.0,
    "красав": 2.0,
    "кайф": 2.0,
    "восторг": 2.5,
    "радует": 1.5,
    "идеальн": 2.5,
    "прекрасн": 2.5,
    "удобн": 1.5,
    "вежлив": 1.5,
    "понрав": 2.0,
    "нрав": 2.0,
    "хорош": 1.5,
    "быстр": 1.0,
    "круто": 2.0,
    "крут": 1.5,
    "плох": -2.0,
    "ужас": -2.5,
    "худш": -3.0,
    "хуже": -2.0,
    "отстой": -2.5,
    "треш": -2.5,
    "кошмар": -2.5,
    "бесполезн": -2.5,
    "разочаров": -2.5,
    "мошенн": -3.0,
    "обман": -2.5,
    "хамск": -2.0,
    "хамств": -2.0,
    "недопустим": -2.5,
    "вылета": -2.0,
    "слома": -2.0,
    "разбит": -2.0,
    "потерял": -1.5,
    "опаздыва": -1.5,
    "верните": -2.0,
    "дважды": -1.0,
    "подвод": -2.0,
    "жалоб": -1.5,
    "упало": -1.5,
    "отменя": -1.5,
    "бросают": -1.0,
    "суд": -1.5,
    "отписал": -1.5,
    "бесит": -2.5,
    "жду": -0.5,
}
_EMOJI: dict[str, float] = {
    "😍": 2.0,
    "❤": 2.0,
    "👍": 1.5,
    "👏": 1.5,
    "🙌": 1.5,
    "🔥": 1.5,
    "😊": 1.5,
    "🥰": 2.0,
    "😁": 1.5,
    "💯": 1.5,
    "😡": -2.5,
    "🤬": -3.0,
    "👎": -2.0,
    "😠": -2.0,
    "😢": -1.5,
    "😭": -1.5,
    "🙄": -1.5,
    "🙃": -1.0,
    "💩": -2.0,
}
_PHRASES: dict[str, float] = {
    # Multi-word expressions whose meaning is not the sum of their words.
    "can't complain": 2.0,
    "cant complain": 2.0,
    "жалоб нет": 2.0,
    "never disappoints": 2.5,
    "take my money": 2.0,
    "can't wait": 1.5,
    "жду не дождусь": 1.5,
    "не подводит": 2.5,
    "doesn't work": -2.0,
    "does not work": -2.0,
    "not working": -2.0,
    "не работает": -2.0,
    "never again": -2.5,
    "больше никогда": -2.5,
    "can't access": -1.5,
    "не могу войти": -1.5,
    "на горячей линии": 0.0,
    "on hold": -1.0,
    "не отвечает": -1.5,
    "nobody answers": -1.5,
    "не покупайте": -2.0,
    "don't buy": -2.0,
    "fix this": -1.5,
    "charged me": -1.0,
    "списали деньги": -1.0,
    "no refund": -1.5,
    "still no": -1.0,
    "до сих пор не": -1.0,
    "not even funny": -1.5,
    "третий день": -1.0,
    "third day": -1.0,
}
_NEGATORS = frozenset(
    {
        "not",
        "no",
        "never",
        "don't",
        "dont",
        "doesn't",
        "isn't",
        "wasn't",
        "won't",
        "can't",
        "cannot",
        "didn't",
        "aren't",
        "не",
        "нет",
        "ни",
        "никогда",
        "ничуть",
    }
)
_INTENSIFIERS: dict[str, float] = {
    "very": 1.5,
    "so": 1.3,
    "really": 1.4,
    "super": 1.5,
    "extremely": 1.8,
    "totally": 1.4,
    "absolutely": 1.6,
    "очень": 1.5,
    "так": 1.3,
    "совсем": 1.4,
    "просто": 1.2,
    "полный": 1.5,
    "абсолютно": 1.6,
    "крайне": 1.8,
}
_SARCASM_MARKERS = (
    "/s",
    "🙃",
    "🙄",
    "yeah sure",
    "yeah right",
    "just great",
    "oh perfect",
    "oh great",
    "ну спасибо",
    "ну просто",
    ", ага",
    "ага,",
    "ага.",
    "ну да",
    "😂",
)
# A sarcastic compliment praises something nobody would enjoy.
_BAD_EVENTS = (
    "lost my",
    "charging me",
    "charged me",
    "crashed",
    "cancels",
    "on hold",
    "delivery' they",
    "потеряли",
    "списал",
    "упало",
    "отменяет",
    "на линии",
    "доставка за день",
)

_NEG_NEGATION_SCALE = -0.75  # "not good" is milder than "bad"; "not bad" is milder than "good"
_NEGATION_WINDOW = 3
_SCORE_ALPHA = 6.0  # squashes a lexicon sum into (-1, 1), as VADER's normalisation does
_LABEL_THRESHOLD = 0.2

_TOKEN_RE = re.compile(r"[#@]?[\w'’]+|[^\w\s]", re.UNICODE)
_URL_RE = re.compile(r"https?://\S+|www\.\S+|\b\S+\.(?:xyz|top|click|ly|ru|com)/\S*", re.I)
_CLAUSE_BREAK = frozenset({".", "!", "?", ";", ",", "…", "—"})


def _is_cyrillic(token: str) -> bool:
    return any("\u0400" <= ch <= "\u04ff" for ch in token)


def _token_valence(token: str) -> float:
    if token in _EMOJI:
        return _EMOJI[token]
    if _is_cyrillic(token):
        best = ""
        for stem in _RU_STEMS:
            if token.startswith(stem) and len(stem) > len(best):
                best = stem
        return _RU_STEMS[best] if best else 0.0
    return _EN_WORDS.get(token.replace("’", "'"), 0.0)


def _tokens(text: str) -> list[str]:
    cleaned = _URL_RE.sub(" ", text.lower()).replace("’", "'").replace("\ufe0f", "")
    return _TOKEN_RE.findall(cleaned)


def _sarcastic(lowered: str, lexical_sum: float) -> bool:
    has_marker = any(marker in lowered for marker in _SARCASM_MARKERS)
    has_bad_event = any(event in lowered for event in _BAD_EVENTS)
    # Praise wrapped around a bad event, or praise plus an eye-roll emoji with a bad event.
    return has_bad_event and (has_marker or lexical_sum > 0)


def analyse_sentiment(text: str) -> Sentiment:
    """Lexicon + rules: clause-bounded negation, intensifiers, emoji, phrases, sarcasm."""
    lowered = text.lower().replace("’", "'")
    total = 0.0
    for phrase, weight in _PHRASES.items():
        if phrase in lowered:
            total += weight
            lowered_masked = lowered.replace(phrase, " ")
            lowered = lowered_masked
    tokens = _tokens(lowered)
    since_negator = _NEGATION_WINDOW + 1
    boost = 1.0
    for token in tokens:
        if token in _CLAUSE_BREAK:
            since_negator, boost = _NEGATION_WINDOW + 1, 1.0
            continue
        if token in _NEGATORS:
            since_negator = 0
            continue
        if token in _INTENSIFIERS:
            boost = _INTENSIFIERS[token]
            continue
        valence = _token_valence(token)
        since_negator += 1
        if valence:
            if since_negator <= _NEGATION_WINDOW:
                valence *= _NEG_NEGATION_SCALE
            total += valence * boost
            boost = 1.0
    exclaims = min(text.count("!"), 3)
    if total:
        total += math.copysign(0.3 * exclaims, total)
    sarcasm = _sarcastic(text.lower().replace("’", "'"), total)
    if sarcasm:
        total = -abs(total) - 1.5
    score = total / math.sqrt(total * total + _SCORE_ALPHA)
    label: SentimentLabel = "neutral"
    if score >= _LABEL_THRESHOLD:
        label = "positive"
    elif score <= -_LABEL_THRESHOLD:
        label = "negative"
    return Sentiment(label=label, score=round(score, 3), sarcasm=sarcasm)


# --- intent -------------------------------------------------------------------------------------

_PURCHASE_CUES = (
    "buy",
    "purchase",
    "how much",
    "price",
    "cost",
    "quote",
    "ordered",
    "order it",
    "subscribe",
    "take my money",
    "gift card",
    "to order",
    "getting",
    "купить",
    "куплю",
    "покупк",
    "заказать",
    "оформил",
    "оформить",
    "сколько стоит",
    "цена",
    "счёт",
    "счет",
    "беру",
    "взять",
    "продаёте",
    "продаете",
)
_QUESTION_OPENERS = (
    "how",
    "what",
    "where",
    "when",
    "which",
    "why",
    "does",
    "do",
    "is",
    "are",
    "can",
    "could",
    "anyone",
    "quick q",
    "как",
    "где",
    "когда",
    "сколько",
    "почему",
    "можно",
    "есть",
    "кто",
    "подскажите",
    "какой",
    "какая",
    "зачем",
)
_COMPLAINT_CUES = (
    "refund",
    "broken",
    "crash",
    "late",
    "scam",
    "charged",
    "lost",
    "cancel",
    "never again",
    "unacceptable",
    "useless",
    "not happy",
    "возврат",
    "слома",
    "вылета",
    "опаздыва",
    "мошенн",
    "списал",
    "потерял",
    "не работает",
    "недопустим",
    "бесполезн",
    "отпис",
)


def _has_cue(lowered: str, cues: Iterable[str]) -> bool:
    return any(re.search(r"(?<!\w)" + re.escape(cue), lowered) for cue in cues)


def classify_intent(text: str, sentiment: Sentiment, *, is_spam: bool = False) -> Intent:
    """Rules in order: spam is `other`; a negative non-question or complaint cue is a complaint."""
    if is_spam:
        return "other"
    lowered = text.lower()
    asks = "?" in text or any(lowered.startswith(opener + " ") for opener in _QUESTION_OPENERS)
    if _has_cue(lowered, _PURCHASE_CUES) and sentiment.label != "negative":
        return "purchase"
    if sentiment.label == "negative" and (not asks or _has_cue(lowered, _COMPLAINT_CUES)):
        return "complaint"
    if asks:
        return "question"
    if sentiment.label == "positive":
        return "praise"
    if _has_cue(lowered, _COMPLAINT_CUES):
        return "complaint"
    return "other"


# --- spam ---------------------------------------------------------------------------------------

_SPAM_PHRASES = (
    "click here",
    "click the link",
    "free gift",
    "giveaway",
    "claim your prize",
    "earn $",
    "make money",
    "work from home",
    "from home",
    "dm me",
    "dm now",
    "follow for follow",
    "buy followers",
    "crypto",
    "guaranteed",
    "check my bio",
    "promo code",
    "limited offer",
    "% off",
    "hot singles",
    "win a free",
    "жми сюда",
    "перейди по ссылке",
    "заработок",
    "не выходя из дома",
    "пиши в лс",
    "взаимная подписка",
    "розыгрыш",
    "забери приз",
    "крипт",
    "гарантия",
    "ссылка в профиле",
    "накрутка",
    "промокод",
    "только сегодня",
    "знакомства",
    "работа на дому",
    "бесплатн",
    "выиграй",
)
SPAM_THRESHOLD = 0.5
_LOW_REPUTATION_FOLLOWERS = 10


def detect_spam(
    text: str, *, author_followers: int | None = None, author_verified: bool | None = None
) -> SpamVerdict:
    """Adds up independent spam features; a single weak one (a link) is never enough on its own."""
    lowered = text.lower()
    words = re.findall(r"[\w@#$%']+", lowered)
    features: list[Signal] = []
    links = _URL_RE.findall(text)
    if links:
        density = len(links) / max(len(words), 1)
        weight = min(0.2 + density * 2.0, 0.45)
        features.append(Signal("link_density", round(weight, 3), f"{len(links)} link(s)"))
    repeated = [w for w, n in Counter(w for w in words if len(w) > 2).items() if n >= 3]
    bigrams = Counter(itertools.pairwise(words))
    repeated_bigrams = [" ".join(b) for b, n in bigrams.items() if n >= 2]
    if repeated or repeated_bigrams:
        what = ", ".join(repeated + repeated_bigrams)[:80]
        features.append(Signal("repeated_phrases", 0.35, what))
    hits = [phrase for phrase in _SPAM_PHRASES if phrase in lowered]
    if hits:
        weight = min(0.35 + 0.15 * (len(hits) - 1), 0.6)
        features.append(Signal("spam_phrases", round(weight, 3), ", ".join(hits)))
    if (
        author_followers is not None
        and author_followers < _LOW_REPUTATION_FOLLOWERS
        and not author_verified
    ):
        features.append(Signal("low_reputation_author", 0.2, f"{author_followers} followers"))
    if text.count("!") >= 3 or sum(c.isupper() for c in text) > 0.5 * max(len(text), 1):
        features.append(Signal("shouting", 0.1, "excess ! or caps"))
    score = min(sum(f.weight for f in features), 1.0)
    return SpamVerdict(is_spam=score >= SPAM_THRESHOLD, score=round(score, 3), features=features)


# --- priority -----------------------------------------------------------------------------------

_BASE_PRIORITY = 20
_LEVELS: tuple[tuple[int, PriorityLevel], ...] = ((75, "urgent"), (50, "high"), (25, "normal"))


def _matches_keyword(lowered: str, keyword: str) -> bool:
    return re.search(r"(?<!\w)" + re.escape(keyword.lower()), lowered) is not None


def priority_level(priority: int) -> PriorityLevel:
    for floor, level in _LEVELS:
        if priority >= floor:
            return level
    return "low"


def triage(
    text: str,
    *,
    language: str | None = None,
    author_followers: int | None = None,
    author_verified: bool | None = None,
    kind: MentionKind = "mention",
    author_handle: str | None = None,
    vip_authors: Sequence[str] = (),
    escalation_keywords: Sequence[str] = DEFAULT_ESCALATION_KEYWORDS,
) -> Triage:
    """Triage one inbox item; `signals` lists every priority point added, largest first.

    `language` is accepted for the service's sake but the lexicons are applied together: English
    and Russian words do not collide, and mixed-language mentions are common.
    """
    del language
    spam = detect_spam(text, author_followers=author_followers, author_verified=author_verified)
    sentiment = analyse_sentiment(text)
    intent = classify_intent(text, sentiment, is_spam=spam.is_spam)
    lowered = text.lower()
    signals: list[Signal] = [Signal("base", _BASE_PRIORITY, "every item starts here")]
    if sentiment.label == "negative":
        signals.append(
            Signal("negative_sentiment", round(25 * abs(sentiment.score), 1), f"{sentiment.score}")
        )
    elif sentiment.label == "positive":
        signals.append(Signal("positive_sentiment", -5, "praise can wait"))
    if intent == "complaint":
        signals.append(Signal("complaint", 15, "reads as a complaint"))
    elif intent == "question":
        signals.append(Signal("question", 10, "someone is waiting for an answer"))
    elif intent == "purchase":
        signals.append(Signal("purchase_intent", 12, "a sale may depend on the reply"))
    hits = [k for k in escalation_keywords if _matches_keyword(lowered, k)]
    if hits:
        signals.append(Signal("escalation_keyword", 25, ", ".join(hits)))
    if author_followers:
        # Reach grows with the order of magnitude: 1k followers +7.5, 100k +15, 1M+ +20 (cap).
        reach = min(max(math.log10(author_followers) - 1, 0) * 3.75, 20)
        if reach >= 1:
            signals.append(Signal("author_reach", round(reach, 1), f"{author_followers} followers"))
    if author_verified:
        signals.append(Signal("verified_author", 5, "verified account"))
    vips = {v.lower().lstrip("@") for v in vip_authors}
    if author_handle and author_handle.lower().lstrip("@") in vips:
        signals.append(Signal("vip_author", 25, author_handle))
    if kind in ("direct_message", "review"):
        signals.append(Signal("private_or_review", 5, kind))
    if spam.is_spam:
        raw = sum(s.weight for s in signals)
        signals.append(Signal("spam", -round(raw * 0.8, 1), f"spam score {spam.score}"))
    priority = max(0, min(100, round(sum(s.weight for s in signals))))
    signals.sort(key=lambda s: abs(s.weight), reverse=True)
    return Triage(
        sentiment=sentiment,
        intent=intent,
        spam=spam,
        priority=priority,
        level=priority_level(priority),
        signals=signals,
    )
