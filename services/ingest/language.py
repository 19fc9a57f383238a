"""The language of a mention (ISO 639-1) when the network does not say, for short social texts.

Why this detector and these thresholds: docs/language-detection.md (measured by `bench.language`).
"""

from __future__ import annotations

import threading
from collections.abc import Sequence
from typing import TYPE_CHECKING, Final

import regex

if TYPE_CHECKING:
    from lingua import ConfidenceValue, LanguageDetector

# The languages our clients' audiences write in, as measured. Restricting lingua to them is what
# makes it both accurate and small: every extra language is one more model to confuse and load.
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

# Below this many letters after cleaning ("ok", "да", "👍 @brand") no detector is better than a
# coin toss, so we say nothing rather than tag a mention with a guess.
MIN_LETTERS: Final = 3

# Top confidence below which the answer is None. Chosen on the evaluation set (see the doc):
# it turns the detector's least certain answers, mostly two-word texts shared by several
# languages, into None while costing well under a point of accuracy.
MIN_CONFIDENCE: Final = 0.5

# Long posts (news, blogs) are decided by their opening: n-gram evidence saturates long before
# this, and it bounds the cost of one mention to keep ingest's per-core budget.
MAX_CHARS: Final = 500

_URL = regex.compile(
    r"(?:https?://|www\.)\S+"
    # Bare links that people paste without a scheme: "ozon.ru/t/abc", "shop.example.com".
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

    Handles and links are names, not language; a hashtag's word usually is language ("#сбой"), so
    only its sign goes.
    """
    text = _URL.sub(" ", text)
    text = _EMAIL.sub(" ", text)
    text = _HANDLE.sub(" ", text)
    text = _EMOJI.sub(" ", text)
    text = text.replace("#", " ")
    return _SPACES.sub(" ", text).strip()


def has_signal(cleaned: str) -> bool:
    """Whether cleaned text has enough letters to be worth a guess."""
    return len(_LETTER.findall(cleaned[:MAX_CHARS])) >= MIN_LETTERS


_detector: LanguageDetector | None = None
_detector_lock = threading.Lock()


def _get_detector() -> LanguageDetector:
    """The process's one detector, built on first use (about a second and ~100 MB of models)."""
    global _detector
    detector = _detector
    if detector is None:
        with _detector_lock:
            # Another thread may have built it while this one waited for the lock.
            detector = _detector
            if detector is None:
                # Imported here so that importing ingest does not map lingua's models.
                from lingua import IsoCode639_1, Language, LanguageDetectorBuilder

                languages = (
                    Language.from_iso_code_639_1(IsoCode639_1.from_str(code))
                    for code in SUPPORTED_LANGUAGES
                )
                detector = (
                    LanguageDetectorBuilder.from_languages(*languages)
                    .with_preloaded_language_models()
                    .build()
                )
                _detector = detector
    return detector


def _best(confidences: list[ConfidenceValue]) -> tuple[str, float] | None:
    # lingua lists every language, most likely first; all zeros when no letter fits any of them.
    if not confidences or confidences[0].value <= 0.0:
        return None
    best = confidences[0]
    return best.language.iso_code_639_1.name.lower(), best.value


def _decide(confidences: list[ConfidenceValue]) -> str | None:
    best = _best(confidences)
    if best is None or best[1] < MIN_CONFIDENCE:
        return None
    return best[0]


def best_guess(text: str) -> tuple[str, float] | None:
    """The likeliest language and its confidence (0 to 1), whatever the confidence.

    None when the text has too little signal. `detect_language` is this with MIN_CONFIDENCE.
    """
    cleaned = clean_text(text)
    if not has_signal(cleaned):
        return None
    return _best(_get_detector().compute_language_confidence_values(cleaned[:MAX_CHARS]))


def detect_language(text: str) -> str | None:
    """ISO 639-1 code of the text's language, or None when it has too little signal."""
    cleaned = clean_text(text)
    if not has_signal(cleaned):
        return None
    return _decide(_get_detector().compute_language_confidence_values(cleaned[:MAX_CHARS]))


def detect_languages(texts: Sequence[str]) -> list[str | None]:
    """`detect_language` for a batch; lingua spreads the batch over all cores."""
    cleaned = [clean_text(text)[:MAX_CHARS] for text in texts]
    worth = [index for index, words in enumerate(cleaned) if has_signal(words)]
    results: list[str | None] = [None] * len(texts)
    if not worth:
        return results
    confidences = _get_detector().compute_language_confidence_values_in_parallel(
        [cleaned[index] for index in worth]
    )
    for index, values in zip(worth, confidences, strict=True):
        results[index] = _decide(values)
    return results
