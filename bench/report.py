"""What every `python -m bench <scenario>` run records: the machine and versions it ran on, the
result JSON in `bench/results/<scenario>.json`, and the scenario's table in `docs/benchmarks.md`.

A scenario's table lives between `<!-- bench:<scenario> -->` and `<!-- /bench:<scenario> -->` in
the page; a run replaces only that block (and appends it the first time), so prose around it stays.
"""

from __future__ import annotations

import json
import os
import platform
import re
import shlex
import subprocess
import sys
from collections.abc import Sequence
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

BENCH_DIR = Path(__file__).resolve().parent
REPO = BENCH_DIR.parent
RESULTS_DIR = BENCH_DIR / "results"
DOC = REPO / "docs" / "benchmarks.md"


def cpu_model() -> str:
    try:
        for line in Path("/proc/cpuinfo").read_text().splitlines():
            if line.startswith("model name"):
                return line.split(":", 1)[1].strip()
    except OSError:
        pass
    return platform.processor() or "unknown"


def memory_gb() -> float:
    try:
        for line in Path("/proc/meminfo").read_text().splitlines():
            if line.startswith("MemTotal:"):
                return round(int(line.split()[1]) / 1024 / 1024, 1)
    except OSError:
        pass
    return 0.0


def _version(command: Sequence[str]) -> str:
    try:
        out = subprocess.run(command, capture_output=True, text=True, timeout=20, check=False)
    except (OSError, subprocess.TimeoutExpired):
        return "unknown"
    text = (out.stdout or out.stderr).strip().splitlines()
    return text[0].strip() if text else "unknown"


def machine() -> dict[str, Any]:
    """The machine, the software versions and the moment of a run."""
    from devstack import kafka as dev_kafka  # the dev stack knows which broker it runs

    return {
        "date": datetime.now(UTC).strftime("%Y-%m-%d %H:%M UTC"),
        "cores": os.cpu_count(),
        "cpu": cpu_model(),
        "memory_gb": memory_gb(),
        "python": platform.python_version(),
        "postgres": _version(["/usr/lib/postgresql/15/bin/postgres", "--version"]),
        "kafka": getattr(dev_kafka, "KAFKA_VERSION", "unknown"),
    }


def command_line() -> str:
    """How this run was started, as someone would retype it."""
    args = sys.argv[1:]
    module = "bench"
    if sys.argv and sys.argv[0].endswith(".py"):
        name = Path(sys.argv[0]).stem
        module = "bench" if name == "__main__" else f"bench.{name}"
    return "python -m " + " ".join([module, *map(shlex.quote, args)])


def write_result(scenario: str, result: dict[str, Any]) -> Path:
    """Write `bench/results/<scenario>.json` (the result plus machine and command)."""
    RESULTS_DIR.mkdir(parents=True, exist_ok=True)
    path = RESULTS_DIR / f"{scenario}.json"
    record = {"scenario": scenario, **result, "machine": machine(), "command": command_line()}
    path.write_text(json.dumps(record, indent=2, ensure_ascii=False) + "\n")
    return path


def percentile(samples: Sequence[float], q: float) -> float:
    """The nearest-rank `q` quantile of `samples` (NaN when there are none)."""
    if not samples:
        return float("nan")
    ordered = sorted(samples)
    return ordered[min(len(ordered) - 1, int(q * len(ordered)))]


def fmt(value: Any) -> str:
    """A figure as the tables print it: thousands separated, floats to 3 significant places."""
    if isinstance(value, bool) or value is None:
        return {True: "yes", False: "no", None: "-"}[value]
    if isinstance(value, int):
        return f"{value:,}"
    if isinstance(value, float):
        if abs(value) >= 100:
            return f"{value:,.0f}"
        return f"{value:.3g}"
    return str(value)


def table(header: Sequence[str], rows: Sequence[Sequence[Any]]) -> str:
    lines = ["| " + " | ".join(header) + " |", "|" + "---|" * len(header)]
    lines += ["| " + " | ".join(fmt(v) for v in row) + " |" for row in rows]
    return "\n".join(lines)


def machine_line(info: dict[str, Any]) -> str:
    return (
        f"{info['date']}: {info['cores']} cores ({info['cpu']}), {info['memory_gb']} GB, "
        f"Python {info['python']}, {info['postgres']}, Kafka {info['kafka']}"
    )


def refresh_doc(scenario: str, body: str, doc: Path = DOC) -> None:
    """Replace (or append) the scenario's block in docs/benchmarks.md."""
    result_path = RESULTS_DIR / f"{scenario}.json"
    record = json.loads(result_path.read_text()) if result_path.is_file() else {}
    header = ""
    if record:
        header = f"`{record['command']}` — {machine_line(record['machine'])}\n\n"
    block = f"<!-- bench:{scenario} -->\n{header}{body.strip()}\n<!-- /bench:{scenario} -->"
    text = doc.read_text() if doc.is_file() else "# Benchmarks\n"
    pattern = re.compile(
        rf"<!-- bench:{re.escape(scenario)} -->.*?<!-- /bench:{re.escape(scenario)} -->", re.S
    )
    if pattern.search(text):
        text = pattern.sub(lambda _: block, text)
    else:
        text = text.rstrip("\n") + "\n\n" + block + "\n"
    doc.write_text(text)


def record(scenario: str, result: dict[str, Any], body: str) -> Path:
    """Write the JSON, then the table built from it; return the JSON's path."""
    path = write_result(scenario, result)
    refresh_doc(scenario, body)
    print(json.dumps(json.loads(path.read_text()), ensure_ascii=False))
    return path


def verdict(value: float, target: float, *, at_most: bool = False) -> str:
    """`value` with a ✓ or ✗ against its target."""
    ok = value <= target if at_most else value >= target
    return f"**{fmt(value)}** {'✓' if ok else '✗'}"
