"""Measures inbox triage options (sentiment, intent, spam) on our en/ru evaluation set.

Run `python -m bench.triage`. Writes bench/results/triage.json and the tables in docs/triage.md;
`--results PATH --no-doc` keeps a snapshot (bench/results/triage_before.json is the classifier as it
was before issue #5, measured on holdout2 before the lexicon changed).
"""

from __future__ import annotations

import argparse
import datetime as dt
import importlib.metadata
import json
import os
import platform
import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from services.inbox import triage as chosen

ROOT = Path(__file__).resolve().parent.parent
EVAL_SET = ROOT / "tests" / "fixtures" / "triage" / "eval.jsonl"
RESULTS = ROOT / "bench" / "results" / "triage.json"
DOC = ROOT / "docs" / "triage.md"
TABLE_START = "<!-- bench.triage:table -->"
TABLE_END = "<!-- /bench.triage:table -->"
LABELS = ("sentiment", "intent", "spam")
SPLITS = ("tuning", "holdout", "holdout2")
# A throughput figure from less than this much work is mostly timer noise.
MIN_TIMED_SECONDS = 1.0

Prediction = dict[str, str | bool]
Predict = Callable[[str, str], Prediction]


@dataclass(frozen=True)
class Candidate:
    name: str
    package: str | None
    build: Callable[[], Predict]


def _ours() -> Predict:
    def predict(text: str, language: str) -> Prediction:
        result = chosen.triage(text, language=language)
        return {
            "sentiment": result.sentiment.label,
            "intent": result.intent,
            "spam": result.spam.is_spam,
        }

    return predict


def _with_our_intent_and_spam(label_and_score: Callable[[str], tuple[str, float]]) -> Predict:
    # Libraries only give sentiment; intent and spam come from our rules fed with their sentiment,
    # so the intent column shows how much a better sentiment would move intent.
    def predict(text: str, language: str) -> Prediction:
        label, score = label_and_score(text)
        spam = chosen.detect_spam(text)
        sentiment = chosen.Sentiment(label=label, score=score)  # type: ignore[arg-type]
        intent = chosen.classify_intent(text, sentiment, is_spam=spam.is_spam)
        return {"sentiment": label, "intent": intent, "spam": spam.is_spam}

    return predict


def _vader() -> Predict:
    from vaderSentiment.vaderSentiment import (
        SentimentIntensityAnalyzer,
    )

    analyser = SentimentIntensityAnalyzer()

    def label(text: str) -> tuple[str, float]:
        compound = float(analyser.polarity_scores(text)["compound"])
        # The thresholds the VADER authors recommend.
        if compound >= 0.05:
            return "positive", compound
        if compound <= -0.05:
            return "negative", compound
        return "neutral", compound

    return _with_our_intent_and_spam(label)


def _textblob() -> Predict:
    from textblob import TextBlob

    def label(text: str) -> tuple[str, float]:
        polarity = float(TextBlob(text).sentiment.polarity)
        if polarity > 0.1:
            return "positive", polarity
        if polarity < -0.1:
            return "negative", polarity
        return "neutral", polarity

    return _with_our_intent_and_spam(label)


CANDIDATES: tuple[Candidate, ...] = (
    Candidate("lexicon+rules (services.inbox.triage)", None, _ours),
    Candidate("vaderSentiment + our intent/spam rules", "vaderSentiment", _vader),
    Candidate("TextBlob (pattern lexicon) + our intent/spam rules", "textblob", _textblob),
)


def load_eval_set() -> list[dict[str, Any]]:
    with EVAL_SET.open(encoding="utf-8") as lines:
        return [json.loads(line) for line in lines if line.strip()]


def per_class(gold: Sequence[object], predicted: Sequence[object]) -> dict[str, dict[str, float]]:
    """Precision, recall and F1 for every class present in the gold labels."""
    out: dict[str, dict[str, float]] = {}
    for cls in sorted({str(g) for g in gold}):
        tp = sum(1 for g, p in zip(gold, predicted, strict=True) if str(g) == cls == str(p))
        fp = sum(1 for g, p in zip(gold, predicted, strict=True) if str(p) == cls != str(g))
        fn = sum(1 for g, p in zip(gold, predicted, strict=True) if str(g) == cls != str(p))
        denominator = 2 * tp + fp + fn
        out[cls] = {
            "precision": round(tp / (tp + fp), 4) if tp + fp else 0.0,
            "recall": round(tp / (tp + fn), 4) if tp + fn else 0.0,
            "f1": round(2 * tp / denominator, 4) if denominator else 0.0,
            "support": tp + fn,
        }
    return out


def macro_f1(gold: Sequence[object], predicted: Sequence[object]) -> float:
    classes = per_class(gold, predicted)
    return sum(c["f1"] for c in classes.values()) / len(classes)


def score(items: Sequence[dict[str, Any]], predictions: Sequence[Prediction]) -> dict[str, Any]:
    out: dict[str, Any] = {}
    for label in LABELS:
        gold = [item[label] for item in items]
        got = [prediction[label] for prediction in predictions]
        accuracy = sum(g == p for g, p in zip(gold, got, strict=True)) / len(gold)
        out[label] = {
            "accuracy": round(accuracy, 4),
            "macro_f1": round(macro_f1(gold, got), 4),
            "per_class": per_class(gold, got),
        }
    return out


def measure(candidate: Candidate, items: Sequence[dict[str, Any]]) -> dict[str, Any]:
    predict = candidate.build()
    per_language: dict[str, Any] = {}
    for language in sorted({item["language"] for item in items}):
        for split in SPLITS:
            subset = [i for i in items if i["language"] == language and i["split"] == split]
            predictions = [predict(i["text"], language) for i in subset]
            per_language[f"{language}/{split}"] = score(subset, predictions)
    # Single-threaded loop, so items/s is per core.
    done, started = 0, time.perf_counter()
    while time.perf_counter() - started < MIN_TIMED_SECONDS:
        for item in items:
            predict(item["text"], item["language"])
        done += len(items)
    rate = done / (time.perf_counter() - started)
    version = importlib.metadata.version(candidate.package) if candidate.package else "in-tree"
    return {
        "name": candidate.name,
        "package": candidate.package,
        "version": version,
        "by_language_and_split": per_language,
        "items_per_second_per_core": round(rate),
    }


def markdown_table(results: dict[str, Any]) -> str:
    head = (
        "| option | lang/split | sentiment acc / macro-F1 | intent acc / macro-F1 "
        "| spam acc / macro-F1 | items/s/core |"
    )
    rows = [head, "|---|---|---|---|---|---|"]
    for entry in results["candidates"]:
        for language, labels in entry["by_language_and_split"].items():
            cells = [f"{labels[k]['accuracy']:.3f} / {labels[k]['macro_f1']:.3f}" for k in LABELS]
            rows.append(
                f"| {entry['name']} {entry['version']} | {language} | "
                + " | ".join(cells)
                + f" | {entry['items_per_second_per_core']:,} |"
            )
    return "\n".join(rows)


PER_CLASS_START = "<!-- bench.triage:per-class -->"
PER_CLASS_END = "<!-- /bench.triage:per-class -->"
# The honest split; per-class figures elsewhere would only repeat what the lexicon was tuned on.
PER_CLASS_SPLIT = "holdout2"


def per_class_table(results: dict[str, Any]) -> str:
    """Per-class F1 (recall in brackets) of the chosen option on the honest split."""
    entry = results["candidates"][0]
    head = f"| {entry['name']} | " + " | ".join(f"{k} F1 (recall) per class" for k in LABELS) + " |"
    rows = [head, "|---|---|---|---|"]
    for key, labels in entry["by_language_and_split"].items():
        if not key.endswith("/" + PER_CLASS_SPLIT):
            continue
        cells = [
            ", ".join(
                f"{cls} {c['f1']:.2f} ({c['recall']:.2f}, n={c['support']})"
                for cls, c in labels[k]["per_class"].items()
            )
            for k in LABELS
        ]
        rows.append(f"| {key} | " + " | ".join(cells) + " |")
    return "\n".join(rows)


def _replace_block(text: str, start_marker: str, end_marker: str, body: str) -> str:
    start, end = text.index(start_marker) + len(start_marker), text.index(end_marker)
    return text[:start] + "\n" + body + "\n" + text[end:]


def update_doc(results: dict[str, Any]) -> None:
    text = DOC.read_text(encoding="utf-8")
    text = _replace_block(text, TABLE_START, TABLE_END, markdown_table(results))
    if PER_CLASS_START in text:
        text = _replace_block(text, PER_CLASS_START, PER_CLASS_END, per_class_table(results))
    DOC.write_text(text, "utf-8")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--results", type=Path, default=RESULTS, help="where to write the JSON")
    parser.add_argument("--no-doc", action="store_true", help="leave docs/triage.md alone")
    args = parser.parse_args()
    items = load_eval_set()
    results = {
        "measured_at": dt.datetime.now(dt.UTC).isoformat(timespec="seconds"),
        "python": platform.python_version(),
        "machine": platform.machine(),
        "cpus": os.cpu_count(),
        "eval_items": len(items),
        "candidates": [measure(candidate, items) for candidate in CANDIDATES],
    }
    args.results.parent.mkdir(parents=True, exist_ok=True)
    args.results.write_text(
        json.dumps(results, indent=2, ensure_ascii=False) + "\n", encoding="utf-8"
    )
    if not args.no_doc:
        update_doc(results)
    print(markdown_table(results))
    print()
    print(per_class_table(results))


if __name__ == "__main__":
    main()
