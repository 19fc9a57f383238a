"""Inbox triage: sentiment, intent, spam and an explainable priority for one mention, in en and ru.

Pure and deterministic (no I/O, no model download), so handlers and the API can call it inline.
"""

# ruff: noqa: RUF001 -- Cyrillic stems and the typographic apostrophe are the point.

from __future__ import annotations

import functools
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
    "comfy": 2.0,
    "comfortable": 1.5,
    "cozy": 1.5,
    "cosy": 1.5,
    "lovely": 2.0,
    "gorgeous": 2.5,
    "pleased": 2.0,
    "delighted": 2.5,
    "thrilled": 2.5,
    "stoked": 2.5,
    "satisfied": 2.0,
    "helpful": 2.0,
    "friendly": 1.5,
    "polite": 1.5,
    "kind": 1.0,
    "honest": 1.0,
    "legend": 2.0,
    "legends": 2.0,
    "legendary": 2.5,
    "outstanding": 2.5,
    "flawless": 2.5,
    "stellar": 2.5,
    "solid": 1.0,
    "decent": 1.0,
    "obsessed": 2.0,
    "favourite": 2.0,
    "favorite": 2.0,
    "fav": 2.0,
    "fave": 2.0,
    "yummy": 2.0,
    "delicious": 2.5,
    "tasty": 2.0,
    "quick": 1.0,
    "quickly": 1.0,
    "early": 1.0,
    "respect": 1.5,
    "props": 1.5,
    "kudos": 2.0,
    "bravo": 1.5,
    "wow": 1.0,
    "epic": 2.0,
    "dope": 2.0,
    "gem": 2.0,
    "stunning": 2.5,
    "lit": 1.5,
    "banger": 2.0,
    "reliable": 1.5,
    "sturdy": 1.5,
    "handy": 1.5,
    "easy": 1.0,
    "cute": 1.5,
    "adorable": 2.0,
    "fun": 1.5,
    "hero": 2.0,
    "heroes": 2.0,
    "rocks": 1.5,
    "grateful": 2.0,
    "thankful": 2.0,
    "thx": 1.5,
    "ty": 1.5,
    "tysm": 2.0,
    "thnx": 1.5,
    "loves": 2.0,
    "luv": 2.0,
    "lovin": 2.0,
    "legit": 1.5,
    "goated": 2.5,
    "elite": 2.0,
    "iconic": 2.0,
    "saved": 1.5,
    "recommended": 2.0,
    "recommends": 2.0,
    "recomend": 2.0,
    "reccomend": 2.0,
    "reccommend": 2.0,
    "awsome": 2.5,
    "fixed": 1.0,
    "solved": 1.0,
    "resolved": 1.0,
    "exceeded": 1.5,
    "fresh": 1.0,
    "clean": 1.0,
    "gud": 1.5,
    "gr8": 2.0,
    "magic": 1.5,
    "blessed": 1.5,
    "proud": 1.5,
    "congrats": 1.5,
    "damaged": -2.0,
    "soaked": -1.5,
    "died": -1.5,
    "dead": -1.5,
    "wrong": -1.5,
    "missing": -1.5,
    "empty": -1.0,
    "delay": -1.0,
    "delayed": -1.5,
    "stuck": -1.5,
    "frozen": -1.0,
    "blocked": -1.5,
    "overcharged": -2.5,
    "ghosted": -2.0,
    "ignored": -2.0,
    "ignoring": -2.0,
    "ignores": -2.0,
    "dirty": -2.0,
    "burnt": -1.5,
    "trash": -2.5,
    "joke": -1.5,
    "furious": -3.0,
    "mad": -2.0,
    "pissed": -2.5,
    "fuming": -2.5,
    "livid": -3.0,
    "frustrated": -2.0,
    "frustrating": -2.0,
    "disgusting": -3.0,
    "gross": -2.0,
    "nightmare": -2.5,
    "mess": -1.5,
    "shrank": -1.5,
    "shrunk": -1.5,
    "ripped": -1.5,
    "torn": -1.5,
    "broke": -2.0,
    "leaking": -1.5,
    "faulty": -2.0,
    "defective": -2.5,
    "error": -1.0,
    "buggy": -2.0,
    "glitchy": -2.0,
    "laggy": -2.0,
    "freezes": -1.5,
    "fails": -1.5,
    "failed": -1.5,
    "fail": -1.5,
    "ruined": -2.5,
    "worse": -2.0,
    "pathetic": -2.5,
    "shameful": -2.5,
    "absurd": -2.0,
    "overpriced": -2.0,
    "overrated": -1.5,
    "ripoff": -2.5,
    "scammed": -3.0,
    "cheated": -2.5,
    "misleading": -2.0,
    "lied": -2.0,
    "meh": -1.0,
    "wtf": -2.0,
    "smh": -1.5,
    "disappointment": -2.5,
    "regret": -1.5,
    "unhappy": -2.0,
    "upset": -2.0,
    "sad": -1.5,
    "annoyed": -2.0,
    "waste": -2.0,
    "wasted": -2.0,
    "incompetent": -2.5,
    "unprofessional": -2.5,
    "unreliable": -2.0,
    "dissapointed": -2.5,
    "disapointed": -2.5,
    "dissapointing": -2.5,
    "terible": -2.5,
    "horible": -2.5,
    "refuses": -1.5,
    "refused": -1.5,
    "problem": -1.0,
    "problems": -1.0,
    "issue": -0.5,
    "issues": -0.5,
    "hated": -2.5,
    "hates": -2.5,
    "unusable": -2.5,
    "crashes": -2.0,
    "lose": -1.0,
    "losing": -1.0,
    "unanswered": -1.5,
    "seriously": -0.5,
    "disaster": -2.5,
    "insane": -1.0,
    "hell": -1.5,
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
    "приятн": 1.5,
    "шикарн": 2.5,
    "норм": 1.0,
    "помог": 1.5,
    "респект": 2.0,
    "бомб": 2.0,
    "сказк": 2.0,
    "годн": 2.0,
    "годнот": 2.0,
    "чётк": 1.5,
    "четк": 1.5,
    "приветлив": 2.0,
    "внимательн": 1.5,
    "вкусн": 2.0,
    "уютн": 2.0,
    "надёжн": 1.5,
    "надежн": 1.5,
    "счастлив": 2.0,
    "восхищ": 2.5,
    "комфорт": 1.5,
    "любим": 2.0,
    "ценю": 1.5,
    "спс": 1.5,
    "пасиб": 1.5,
    "мерси": 1.5,
    "качествен": 1.5,
    "оперативн": 2.0,
    "профессионал": 2.0,
    "великолепн": 2.5,
    "замечательн": 2.5,
    "чудесн": 2.0,
    "потрясающ": 2.5,
    "шедевр": 2.5,
    "обалден": 2.5,
    "офиген": 2.5,
    "клёв": 2.0,
    "клев": 2.0,
    "зачёт": 1.5,
    "зачет": 1.5,
    "браво": 1.5,
    "решил": 1.0,
    "починил": 1.0,
    "починят": 1.0,
    "радост": 2.0,
    "рада": 1.5,
    "рады": 1.5,
    "доволь": 2.0,
    "милы": 1.5,
    "мил": 1.0,
    "летает": 1.5,
    "мят": -1.5,
    "мокр": -1.0,
    "игнор": -2.0,
    "издевательств": -2.5,
    "издева": -2.5,
    "нахам": -2.0,
    "хамят": -2.0,
    "хамил": -2.0,
    "бракован": -2.5,
    "порвал": -2.0,
    "рвут": -1.5,
    "тормоз": -2.0,
    "лага": -2.0,
    "глюч": -2.0,
    "зависа": -2.0,
    "виснет": -2.0,
    "молч": -2.0,
    "отвратит": -3.0,
    "отвратн": -3.0,
    "мерзк": -2.5,
    "позор": -2.5,
    "днище": -2.5,
    "капец": -2.0,
    "раздража": -2.0,
    "беси": -2.5,
    "обидн": -1.5,
    "фейк": -2.0,
    "развод": -2.0,
    "обсчита": -2.0,
    "переплат": -1.5,
    "задерж": -1.5,
    "опозда": -1.5,
    "потеря": -1.5,
    "поломк": -1.5,
    "неправильн": -1.5,
    "перепута": -1.5,
    "испорт": -2.5,
    "гряз": -1.5,
    "холодн": -1.0,
    "цирк": -2.0,
    "клоун": -2.0,
    "ненавиж": -3.0,
    "никак": -1.5,
    "проблем": -1.0,
    "пожалел": -1.5,
    "жалею": -1.5,
    "пожале": -1.5,
    "спам": -1.5,
    "достал": -2.0,
    "задолбал": -2.5,
    "надоел": -2.0,
    "тупо": -1.0,
    "дерьм": -3.0,
    "хрен": -1.5,
    "ужасн": -2.5,
    "грубо": -2.0,
    "груб": -2.0,
    "невкусн": -2.0,
    "кринж": -1.5,
    "облом": -2.0,
    "печаль": -1.5,
    "грустн": -1.5,
    "злит": -2.0,
    "возмущ": -2.5,
    "безобраз": -2.5,
    "халтур": -2.5,
    "кидал": -2.5,
    "кинул": -1.5,
    "ошибк": -1.0,
    "дорог": -1.0,
    "жуть": -2.0,
    "жутк": -2.0,
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
    "до сих пор ничего": -2.0,
    "до сих пор нет": -1.5,
    "так и не": -1.5,
    "still nothing": -2.0,
    "still waiting": -1.5,
    "still haven't": -1.5,
    "still hasn't": -1.5,
    "nowhere to be found": -1.5,
    "money back": -1.5,
    "fell apart": -2.0,
    "no answer": -1.5,
    "no reply": -1.5,
    "no response": -1.5,
    "not answered": -1.5,
    "hasn't answered": -1.5,
    "haven't heard back": -1.5,
    "nobody replies": -1.5,
    "nobody knows": -1.0,
    "for nothing": -1.5,
    "what's the point": -1.5,
    "let me down": -2.0,
    "lets me down": -2.0,
    "never lets me down": 2.5,
    "never let me down": 2.5,
    "no complaints": 2.0,
    "no issues": 1.5,
    "zero issues": 1.5,
    "no problems": 1.5,
    "no regrets": 1.5,
    "not going back": 1.0,
    "above and beyond": 2.5,
    "game changer": 2.0,
    "worth every penny": 2.5,
    "well done": 2.0,
    "chef's kiss": 2.5,
    "made my day": 2.5,
    "glow up": 1.5,
    "is down": -1.5,
    "been down": -1.5,
    "was down": -1.5,
    "went down": -1.5,
    "never arrived": -2.0,
    "didn't arrive": -2.0,
    "hasn't arrived": -2.0,
    "never came": -2.0,
    "never ordering": -2.0,
    "never buying": -2.0,
    "never using": -2.0,
    "never shopping": -2.0,
    "where is my": -1.5,
    "where's my": -1.5,
    "how many times": -1.5,
    "raised prices": -1.5,
    "raised the price": -1.5,
    "customer for life": 2.0,
    "which is better": 0.0,
    "quick q": 0.0,
    "quick question": 0.0,
    "which one is better": 0.0,
    "kind of": 0.0,
    "kinda": 0.0,
    "где мой": -1.5,
    "где моя": -1.5,
    "где мои": -1.5,
    "сколько можно": -2.0,
    "было лучше": -2.0,
    "что лучше": 0.0,
    "на высшем уровне": 2.5,
    "на уровне": 1.5,
    "на высоте": 2.5,
    "не открывается": -2.0,
    "не грузится": -2.0,
    "не пришёл": -1.5,
    "не пришел": -1.5,
    "не пришла": -1.5,
    "не пришли": -1.5,
    "не приехал": -1.5,
    "не доставили": -2.0,
    "не вернули": -2.0,
    "не отвечают": -1.5,
    "никто не отвечает": -2.0,
    "не решен": -1.5,
    "не решили": -1.5,
    "не могу": -1.0,
    "не получается": -1.5,
    "не тот": -1.5,
    "не та": -1.5,
    "не те": -1.5,
    "ни ногой": -2.0,
    "деньги на ветер": -2.5,
    "разводит руками": -1.5,
    "делают вид": -1.0,
    "подняли цены": -1.5,
    "на линии": -1.0,
    "лежит сайт": -2.0,
    "сайт лежит": -2.0,
    "вы серьёзно": -1.5,
    "вы серьезно": -1.5,
    "в шоке": -1.0,
    "в хорошем смысле": 2.5,
    "ни одной проблемы": 2.0,
    "без проблем": 1.5,
    "не жалею": 2.0,
    "так держать": 2.0,
    "ни капли не жалею": 2.5,
    "??": -0.5,
    "?!": -0.5,
    "!?": -0.5,
}
_RU_WORDS: dict[str, float] = {
    "фу": -1.5,
    "жаль": -1.0,
    "жесть": -1.5,
    "дно": -2.0,
    "хватит": -1.5,
    "топ": 2.0,
    "имба": 2.0,
    "пушка": 2.0,
    "зашквар": -2.0,
    "вау": 1.0,
    "ок": 0.5,
}
_NEGATORS = frozenset(
    {
        "not",
        "no",
        "never",
        "don't",
        "dont",
        "doesn't",
        "doesnt",
        "isn't",
        "isnt",
        "wasn't",
        "won't",
        "can't",
        "cant",
        "cannot",
        "didn't",
        "didnt",
        "aren't",
        "hardly",
        "zero",
        "не",
        "нет",
        "ни",
        "никогда",
        "ничуть",
        "без",
    }
)
_INTENSIFIERS: dict[str, float] = {
    "very": 1.5,
    "so": 1.3,
    "sooo": 1.5,
    "soo": 1.4,
    "really": 1.4,
    "rly": 1.4,
    "super": 1.5,
    "extremely": 1.8,
    "totally": 1.4,
    "absolutely": 1.6,
    "too": 1.3,
    "such": 1.3,
    "incredibly": 1.6,
    "highly": 1.5,
    "truly": 1.3,
    "completely": 1.5,
    "очень": 1.5,
    "так": 1.3,
    "такой": 1.3,
    "такая": 1.3,
    "совсем": 1.4,
    "просто": 1.2,
    "полный": 1.5,
    "абсолютно": 1.6,
    "крайне": 1.8,
    "реально": 1.3,
    "жутко": 1.6,
    "максимально": 1.5,
    "невероятно": 1.6,
    "слишком": 1.3,
    "сильно": 1.3,
}
# "X but Y": the part after the contrast carries the verdict (VADER's "but" rule).
_CONTRAST = frozenset({"but", "though", "however", "но", "однако", "зато"})
_CONTRAST_BEFORE, _CONTRAST_AFTER = 0.5, 1.5
# In a brand inbox, praise next to a named problem is usually a complaint with good manners.
_MIXED_NEGATIVE_WEIGHT = 1.5
# Enough on their own to turn praise into sarcasm.
_STRONG_SARCASM_MARKERS = ("/s", "yeah sure", "yeah right", "as if", "ну конечно", "ага, конечно")
_SARCASM_MARKERS = (
    *_STRONG_SARCASM_MARKERS,
    "🙃",
    "🙄",
    "😂",
    "🤡",
    "just great",
    "oh perfect",
    "oh great",
    "oh nice",
    "oh lovely",
    "wow",
    "ну спасибо",
    "ну просто",
    "ну прям",
    ", ага",
    "ага,",
    "ага.",
    "ну да",
    "вот это",
)
# A sarcastic compliment praises something nobody would enjoy.
_BAD_EVENTS = (
    "lost my",
    "lose ",
    "charging me",
    "charged me",
    "crashed",
    "crashes",
    "cancels",
    "on hold",
    "delivery' they",
    "wrong",
    "twice",
    "raised prices",
    "ignored",
    "потеряли",
    "списал",
    "упало",
    "отменяет",
    "на линии",
    "доставка за день",
    "не тот",
    "не та ",
    "перепута",
    "вылета",
    "подняли цены",
    "игнор",
    "через забор",
    "другой город",
)

_RESOLUTIONS = (
    "fix",
    "sorted",
    "solved",
    "resolved",
    "refunded",
    "replaced",
    "исправ",
    "починил",
    "решили",
    "вернули",
)

_NEG_NEGATION_SCALE = -0.75  # "not good" is milder than "bad"; "not bad" is milder than "good"
_NEGATION_WINDOW = 3
_SCORE_ALPHA = 6.0  # squashes a lexicon sum into (-1, 1), as VADER's normalisation does
_LABEL_THRESHOLD = 0.2

_TOKEN_RE = re.compile(r"[#@]?[\w'’]+|[^\w\s]", re.UNICODE)
_URL_RE = re.compile(r"https?://\S+|www\.\S+|\b\S+\.(?:xyz|top|click|ly|ru|com)/\S*", re.I)
_CLAUSE_BREAK = frozenset({".", "!", "?", ";", ",", "…", "—", ":"})
_LETTER_RUN_RE = re.compile(r"(\w)\1{2,}")
# Longest first, so "never lets me down" is taken before "lets me down"; a phrase must not start
# or end inside a word ("не та" is not "не так"). A plain substring test first keeps this cheap.
_PHRASE_PATTERNS: tuple[tuple[str, re.Pattern[str], float], ...] = tuple(
    (
        phrase,
        re.compile(
            (r"(?<!\w)" if phrase[0].isalnum() else "")
            + re.escape(phrase)
            + (r"(?!\w)" if phrase[-1].isalnum() else "")
        ),
        _PHRASES[phrase],
    )
    for phrase in sorted(_PHRASES, key=len, reverse=True)
)
_RU_MIN_STEM = min(len(stem) for stem in _RU_STEMS)
_RU_MAX_STEM = max(len(stem) for stem in _RU_STEMS)


def _is_cyrillic(token: str) -> bool:
    return any("\u0400" <= ch <= "\u04ff" for ch in token)


@functools.lru_cache(maxsize=65536)
def _token_valence(token: str) -> float:
    if token in _EMOJI:
        return _EMOJI[token]
    if _is_cyrillic(token):
        if token in _RU_WORDS:
            return _RU_WORDS[token]
        # Longest matching stem wins ("недовол" would beat "довол" if listed).
        for length in range(min(len(token), _RU_MAX_STEM), _RU_MIN_STEM - 1, -1):
            valence = _RU_STEMS.get(token[:length])
            if valence is not None:
                return valence
        return 0.0
    word = token.replace("’", "'")
    valence = _EN_WORDS.get(word)
    if valence is None and _LETTER_RUN_RE.search(word):
        # "sooo goood", "terrrible": try the word with stretched letters squeezed.
        valence = _EN_WORDS.get(_LETTER_RUN_RE.sub(r"\1\1", word))
        if valence is None:
            valence = _EN_WORDS.get(_LETTER_RUN_RE.sub(r"\1", word))
    return valence or 0.0


def _without_links(lowered: str) -> str:
    # Links are not words: "http://spin.example" must not read as the "/s" sarcasm marker.
    # Every link form has a "/" or "www.", and most texts have neither.
    return _URL_RE.sub(" ", lowered) if "/" in lowered or "www." in lowered else lowered


def _sarcastic(lowered: str, positive: float, negative: float) -> bool:
    has_marker = any(marker in lowered for marker in _SARCASM_MARKERS)
    has_bad_event = any(event in lowered for event in _BAD_EVENTS)
    if has_marker and has_bad_event:
        return True
    if positive <= 0:
        return False
    if any(marker in lowered for marker in _STRONG_SARCASM_MARKERS):
        return True
    # Praise wrapped around a bad event, or praise plus an eye-roll next to a complaint word; thanks
    # for fixing a bad event is sincere.
    if has_bad_event and not any(word in lowered for word in _RESOLUTIONS):
        return True
    return has_marker and negative < 0


def analyse_sentiment(text: str) -> Sentiment:
    """Lexicon + rules: phrases, clause-bounded negation, intensifiers, "but", emoji, sarcasm."""
    lowered = _without_links(text.lower().replace("’", "'").replace("\ufe0f", ""))
    positive = negative = 0.0
    masked = lowered
    for phrase, pattern, weight in _PHRASE_PATTERNS:
        if phrase in masked:
            # "?!" ends a clause, so negation before it must not reach past it.
            masked, found = pattern.subn(" . " if phrase[-1] in "?!" else " ", masked)
            if weight > 0:
                positive += weight * found
            else:
                negative += weight * found
    since_negator = _NEGATION_WINDOW + 1
    boost = 1.0
    scored: list[float] = []
    contrast_at = -1
    for token in _TOKEN_RE.findall(masked):
        if token in _CLAUSE_BREAK:
            since_negator, boost = _NEGATION_WINDOW + 1, 1.0
            continue
        if token in _CONTRAST:
            contrast_at = len(scored)
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
            scored.append(valence * boost)
            boost = 1.0
    for i, valence in enumerate(scored):
        if contrast_at >= 0:
            valence *= _CONTRAST_BEFORE if i < contrast_at else _CONTRAST_AFTER
        if valence > 0:
            positive += valence
        else:
            negative += valence
    if positive and negative:
        total = positive + _MIXED_NEGATIVE_WEIGHT * negative
    else:
        total = positive + negative
    exclaims = min(text.count("!"), 3)
    if total:
        total += math.copysign(0.3 * exclaims, total)
    sarcasm = _sarcastic(lowered, positive, negative)
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

# Cues are matched as word prefixes ("buy" covers "buying"); past purchases are reviews, not leads.
_PURCHASE_CUES = (
    "buy",
    "to purchase",
    "purchase the",
    "purchase a",
    "planning to purchase",
    "how much",
    "price",
    "pricing",
    "cost",
    "quote",
    "ordered",
    "order it",
    "order for",
    "order two",
    "order a",
    "to order",
    "place an order",
    "place order",
    "pre-order",
    "preorder",
    "subscribe",
    "sign up",
    "take my money",
    "gift card",
    "getting",
    "get one",
    "grab",
    "in stock",
    "restock",
    "to my cart",
    "to cart",
    "my cart",
    "wishlist",
    "check out",
    "checkout?",
    "deal still",
    "upgrad",
    "cheapest",
    "купить",
    "куплю",
    "покупать",
    "заказать",
    "закажу",
    "закупить",
    "оформил",
    "оформить",
    "сколько стоит",
    "сколько будет стоить",
    "стоимост",
    "цена",
    "цену",
    "прайс",
    "счёт",
    "счет",
    "сделать заказ",
    "оптов",
    "wholesale",
    "bulk",
    "заказ на",
    "планирую покуп",
    "стоит ли",
    "беру",
    "взять",
    "брать",
    "продаёте",
    "продаете",
    "в корзину",
    "предзаказ",
    "промокод",
    "в наличи",
    "самовывоз",
    "подписку",
)
# Praise that mentions a purchase already made ("best purchase this year") is still praise.
_REVIEW_CUES = (
    "best purchase",
    "would buy again",
    "buy again",
    "buying again",
    "order again",
    "ordering again",
    "лучшая покупка",
    "лучшая покупк",
    "куплю ещё",
    "куплю еще",
    "закажу ещё",
    "закажу еще",
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
    "money back",
    "broken",
    "crash",
    "late",
    "scam",
    "charged",
    "overcharg",
    "lost",
    "cancel",
    "never again",
    "unacceptable",
    "useless",
    "not happy",
    "wrong",
    "missing",
    "damaged",
    "never arrived",
    "still waiting",
    "still no",
    "on hold",
    "ignored",
    "nobody",
    "возврат",
    "верните",
    "слома",
    "вылета",
    "опаздыва",
    "мошенн",
    "списал",
    "потерял",
    "не работает",
    "не открывается",
    "не грузится",
    "недопустим",
    "бесполезн",
    "отпис",
    "молч",
    "игнор",
    "не отвечает",
    "не пришл",
    "не приехал",
    "не тот",
)
# Questions nobody asks calmly: "where is my refund?!" is a complaint, not a request for info.
_COMPLAINT_QUESTIONS = (
    "where is my",
    "where's my",
    "why does",
    "why do you",
    "how many times",
    "how long do i have to",
    "when will i get",
    "is anyone",
    "anyone there",
    "где мой",
    "где моя",
    "где мои",
    "сколько можно",
    "зачем вы",
    "когда вернёте",
    "когда вернете",
    "вы серьёзно",
    "вы серьезно",
)


def _cue_regex(cues: Iterable[str]) -> re.Pattern[str]:
    return re.compile(r"(?<!\w)(?:" + "|".join(re.escape(cue) for cue in cues) + ")")


_PURCHASE_RE = _cue_regex(_PURCHASE_CUES)
_REVIEW_RE = _cue_regex(_REVIEW_CUES)
_COMPLAINT_RE = _cue_regex(_COMPLAINT_CUES)
_COMPLAINT_QUESTION_RE = _cue_regex(_COMPLAINT_QUESTIONS)


def classify_intent(text: str, sentiment: Sentiment, *, is_spam: bool = False) -> Intent:
    """Rules in order: spam is `other`; a negative non-question or complaint cue is a complaint."""
    if is_spam:
        return "other"
    lowered = text.lower().replace("’", "'")
    asks = "?" in text or any(lowered.startswith(opener + " ") for opener in _QUESTION_OPENERS)
    negative = sentiment.label == "negative"
    if (
        not negative
        and _PURCHASE_RE.search(lowered)
        and not (sentiment.label == "positive" and _REVIEW_RE.search(lowered))
    ):
        return "purchase"
    if negative and (
        not asks or _COMPLAINT_RE.search(lowered) or _COMPLAINT_QUESTION_RE.search(lowered)
    ):
        return "complaint"
    if asks:
        return "question"
    if sentiment.label == "positive":
        return "praise"
    if _COMPLAINT_RE.search(lowered):
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
    "followers overnight",
    "подписчиков за ночь",
    "get verified",
    "airdrop",
    "connect your wallet",
    "replica",
    "casino",
    "link in bio",
    "check my profile",
    "check my page",
    "$ a day",
    "$/day",
    "a day from",
    "no experience",
    "message me",
    "singles near",
    "free followers",
    "cheap followers",
    "жми сюда",
    "перейди по ссылке",
    "переходите по ссылке",
    "заработок",
    "заработал",
    "не выходя из дома",
    "пиши в лс",
    "пишите в лс",
    "в директ",
    "взаимная подписка",
    "розыгрыш",
    "забери приз",
    "крипт",
    "гарантия",
    "гарантир",
    "ссылка в профиле",
    "смотрите профиль",
    "накрутка",
    "промокод",
    "только сегодня",
    "знакомства",
    "работа на дому",
    "бесплатн",
    "выиграй",
    "вы выиграли",
    "аирдроп",
    "кошел",
    "реплик",
    "казино",
    "опыт не нужен",
    "халява",
    "$ в день",
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
    links = _URL_RE.findall(text) if "/" in text or "www." in lowered else []
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
    keyword = keyword.lower()
    # The substring test only skips the regex when the keyword is absent; the answer is the same.
    return keyword in lowered and re.search(r"(?<!\w)" + re.escape(keyword), lowered) is not None


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
