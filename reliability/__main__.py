"""`python -m reliability` runs every fault scenario; `python -m reliability <scenario>...
[--mentions N]` runs the ones named. Each runs on a fresh database and topic prefix of a private
Kafka and Postgres (started once), writes `reliability/results/<scenario>.json` and its row in
`docs/reliability.md`; the exit code is 1 if any scenario lost or duplicated a mention."""

from __future__ import annotations

import argparse
import asyncio
import importlib
import json
import logging
import sys
import tempfile
import time
from collections.abc import Awaitable, Callable
from pathlib import Path
from typing import Any, cast

from reliability.results import record
from reliability.stack import ChaosStack, chaos_infra, chaos_stack

# name -> (module, default number of mentions)
SCENARIOS: dict[str, tuple[str, int]] = {
    "service_crashes": ("reliability.scenarios.service_crashes", 100_000),
    "broker_crash": ("reliability.scenarios.broker_crash", 20_000),
    "database_restart": ("reliability.scenarios.database_restart", 20_000),
    "publisher_crash": ("reliability.scenarios.publisher_crash", 100),
    "poison": ("reliability.scenarios.poison", 1_000),
    "network": ("reliability.scenarios.network", 1_000),
}

Scenario = Callable[[ChaosStack, int], Awaitable[dict[str, Any]]]


def _scenario(name: str) -> Scenario:
    module = importlib.import_module(SCENARIOS[name][0])
    return cast(Scenario, module.run)


async def run_scenarios(names: list[str], mentions: int | None, workdir: Path) -> bool:
    """Run `names` in turn on one private infra; return whether all kept every mention once."""
    ok = True
    summary: list[tuple[str, dict[str, Any]]] = []
    async with chaos_infra(workdir):
        for name in names:
            count = mentions if mentions is not None else SCENARIOS[name][1]
            print(f"== chaos {name} ({count:,} mentions)", flush=True)
            started = time.monotonic()
            try:
                async with chaos_stack(workdir) as stack:
                    result = await _scenario(name)(stack, count)
            except Exception as exc:  # one broken scenario must not hide the others' results
                logging.exception("scenario %s failed", name)
                result = {"error": f"{type(exc).__name__}: {exc}"}
                ok = False
            else:
                path = record(name, result)
                print(f"   wrote {path}")
                ok = ok and result["lost"] == 0 and result["duplicated"] == 0
            result["elapsed_s"] = round(time.monotonic() - started, 1)
            summary.append((name, result))
            print(json.dumps({"scenario": name, **result}, default=str), flush=True)
    print("\n== summary")
    for name, result in summary:
        if "error" in result:
            print(f"{name:18} ERROR {result['error']}")
        else:
            print(
                f"{name:18} injected={result['injected']} expected={result['expected']} "
                f"lost={result['lost']} duplicated={result['duplicated']} "
                f"recovered_s={result['recovered_s']}"
            )
    return ok


def main(argv: list[str]) -> int:
    parser = argparse.ArgumentParser(prog="python -m reliability", description=__doc__)
    parser.add_argument(
        "scenario", nargs="*", help=f"one or more of {', '.join(SCENARIOS)} (default: all)"
    )
    parser.add_argument("--mentions", type=int, default=None, help="mentions per scenario")
    parser.add_argument(
        "--workdir", type=Path, default=None, help="private infra and logs (default: a temp dir)"
    )
    args = parser.parse_args(argv)
    logging.basicConfig(level=logging.INFO, format="%(asctime)s %(name)s %(message)s")
    logging.getLogger("aiokafka").setLevel(logging.CRITICAL)
    logging.getLogger("httpx").setLevel(logging.WARNING)
    unknown = [name for name in args.scenario if name not in SCENARIOS]
    if unknown:
        parser.error(f"unknown scenario {', '.join(unknown)}; one of: {', '.join(SCENARIOS)}")
    names = args.scenario or list(SCENARIOS)
    workdir = args.workdir or Path(tempfile.mkdtemp(prefix="smm-chaos-"))
    print(f"chaos workdir (private Kafka, Postgres, logs): {workdir}", flush=True)
    ok = asyncio.run(run_scenarios(names, args.mentions, workdir))
    return 0 if ok else 1


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
