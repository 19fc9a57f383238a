"""What every chaos run records: `reliability/results/<scenario>.json` (figures, machine, command)
and the scenario's row in the table of `docs/reliability.md`, the row that carries the marker
`<!-- chaos:<scenario> -->` (hidden inline HTML), so a run replaces only its own row."""

from __future__ import annotations

import json
import re
import shlex
import sys
from pathlib import Path
from typing import Any

from bench.report import fmt, machine

RELIABILITY_DIR = Path(__file__).resolve().parent
REPO = RELIABILITY_DIR.parent
RESULTS_DIR = RELIABILITY_DIR / "results"
DOC = REPO / "docs" / "reliability.md"
REQUIRED = ("injected", "expected", "delivered", "lost", "duplicated", "recovered_s")
TABLE_HEADER = (
    "| scenario | faults injected | mentions expected | delivered (incl. retries) | lost "
    "| duplicated | metrics exact | recovered in | run |\n"
    "|---|---|---|---|---|---|---|---|---|"
)
TABLE_START, TABLE_END = "<!-- chaos:table -->", "<!-- /chaos:table -->"


def command_line() -> str:
    """How this run was started, as someone would retype it."""
    return "python -m " + " ".join(["reliability", *map(shlex.quote, sys.argv[1:])])


def write_result(scenario: str, result: dict[str, Any]) -> Path:
    missing = [key for key in REQUIRED if key not in result]
    if missing:
        raise ValueError(f"result of {scenario} lacks {', '.join(missing)}")
    RESULTS_DIR.mkdir(parents=True, exist_ok=True)
    path = RESULTS_DIR / f"{scenario}.json"
    record_ = {"scenario": scenario, **result, "machine": machine(), "command": command_line()}
    path.write_text(json.dumps(record_, indent=2, ensure_ascii=False, default=str) + "\n")
    return path


def row(record_: dict[str, Any]) -> str:
    info = record_["machine"]
    metrics_exact = record_.get("metrics_exact")
    cells = [
        f"`{record_['scenario']}`",
        fmt(record_["injected"]),
        fmt(record_["expected"]),
        fmt(record_["delivered"]),
        f"**{fmt(record_['lost'])}**",
        f"**{fmt(record_['duplicated'])}**",
        fmt(metrics_exact),
        f"{record_['recovered_s']:.1f} s",
        f"{info['date']}, {info['cores']} cores, {info['memory_gb']} GB "
        f"<!-- chaos:{record_['scenario']} -->",
    ]
    return "| " + " | ".join(cells) + " |"


def refresh_doc(scenario: str, record_: dict[str, Any], doc: Path = DOC) -> None:
    """Replace (or append) the scenario's row in the results table of docs/reliability.md."""
    line = row(record_)
    text = doc.read_text() if doc.is_file() else "# Reliability\n"
    if TABLE_START not in text:
        text = text.rstrip("\n") + f"\n\n{TABLE_START}\n{TABLE_HEADER}\n{TABLE_END}\n"
    pattern = re.compile(rf"^.*<!-- chaos:{re.escape(scenario)} -->.*$", re.M)
    if pattern.search(text):
        text = pattern.sub(lambda _: line, text)
    else:
        text = text.replace(TABLE_END, line + "\n" + TABLE_END, 1)
    doc.write_text(text)


def record(scenario: str, result: dict[str, Any]) -> Path:
    """Write the scenario's JSON, then its row of the table; return the JSON's path."""
    path = write_result(scenario, result)
    refresh_doc(scenario, json.loads(path.read_text()))
    return path
