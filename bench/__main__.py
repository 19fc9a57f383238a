"""`python -m bench` runs every scenario in turn; `python -m bench <scenario> [options]` runs one.

Scenarios: pipeline, publisher, queries, matcher. Each writes `bench/results/<scenario>.json` and
refreshes its table in `docs/benchmarks.md`; `python -m bench <scenario> --help` lists its options.
"""

from __future__ import annotations

import importlib
import sys
import time
import traceback

SCENARIOS = {
    "pipeline": "bench.pipeline",
    "publisher": "bench.publisher",
    "queries": "bench.queries",
    "matcher": "bench.matcher",
}


def _run(scenario: str, argv: list[str]) -> None:
    module = importlib.import_module(SCENARIOS[scenario])
    module.main(argv)


def main(argv: list[str]) -> int:
    if argv and argv[0] in ("-h", "--help"):
        print(__doc__)
        return 0
    if argv:
        scenario, rest = argv[0], argv[1:]
        if scenario not in SCENARIOS:
            print(f"unknown scenario {scenario!r}; one of: {', '.join(SCENARIOS)}", file=sys.stderr)
            return 2
        _run(scenario, rest)
        return 0
    failed = []
    for scenario in SCENARIOS:
        started = time.monotonic()
        print(f"== bench {scenario}", flush=True)
        try:
            _run(scenario, [])
        except Exception:
            # One scenario failing (a service that would not start, say) leaves the others'
            # figures worth having; the run still fails at the end.
            traceback.print_exc()
            failed.append(scenario)
        print(f"== bench {scenario}: {time.monotonic() - started:.0f} s", flush=True)
    if failed:
        print(f"failed scenarios: {', '.join(failed)}", file=sys.stderr)
        return 1
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
