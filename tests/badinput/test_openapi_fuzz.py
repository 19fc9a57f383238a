"""Schemathesis against every operation of each service's OpenAPI, on the running services: no
5xx, and every answer (status code and body) is one the OpenAPI documents."""

from __future__ import annotations

import os
from typing import Any

import pytest
import schemathesis
from hypothesis import HealthCheck, Phase, given, settings
from hypothesis import strategies as st
from schemathesis import GenerationMode
from schemathesis.checks import (
    not_a_server_error,
    response_schema_conformance,
    status_code_conformance,
)
from schemathesis.core.failures import Failure, FailureGroup
from schemathesis.core.result import Err, Ok

from tests.badinput.conftest import World
from tests.support import ServiceProcess

# Generated requests per operation (~90 operations): about a minute of an idle 2-core machine in
# CI; SMM_FUZZ_EXAMPLES=200 digs deeper by hand.
EXAMPLES = int(os.environ.get("SMM_FUZZ_EXAMPLES", "10"))
CHECKS = [not_a_server_error, status_code_conformance, response_schema_conformance]


def _order(operation: Any) -> tuple[int, str]:
    # Deletes last: they would remove the real resources the other operations' cases name.
    return (operation.method.upper() == "DELETE", operation.label)


def _strategy(operation: Any, ids: dict[str, str]) -> Any:
    names = [p.name for p in operation.path_parameters]
    strategies = [
        operation.as_strategy(GenerationMode.POSITIVE),
        operation.as_strategy(GenerationMode.NEGATIVE),
    ]
    if names and all(name in ids for name in names):
        real = {name: ids[name] for name in names}
        strategies.append(operation.as_strategy(GenerationMode.POSITIVE, path_parameters=real))
    return st.one_of(strategies)


def _fuzz(operation: Any, base_url: str, world: World, failures: list[str]) -> None:
    seen: set[str] = set()

    @settings(
        max_examples=EXAMPLES,
        deadline=None,
        derandomize=True,
        database=None,
        phases=[Phase.explicit, Phase.generate],
        suppress_health_check=list(HealthCheck),
    )
    @given(case=_strategy(operation, world.ids))
    def run(case: Any) -> None:
        response = case.call(base_url=base_url, headers=world.headers, timeout=30)
        try:
            case.validate_response(response, checks=CHECKS)
        except (Failure, FailureGroup) as exc:
            key = f"{operation.label} -> {response.status_code}"
            if key not in seen:
                seen.add(key)
                failures.append(f"{key}\n  {case.as_curl_command()}\n  {str(exc)[:1500]}")

    run()


@pytest.mark.parametrize("service", ["ingest", "publisher", "inbox", "metrics"])
async def test_every_operation_answers_as_documented_and_never_5xx(
    services: dict[str, ServiceProcess], fuzz_world: World, service: str
) -> None:
    base_url = services[service].url
    schema = schemathesis.openapi.from_url(base_url + "/api/v1/openapi.json")
    results = list(schema.get_all_operations())
    # An operation schemathesis cannot read is a broken OpenAPI: fail on it, do not skip it.
    broken = [str(r.err()) for r in results if isinstance(r, Err)]
    assert not broken, broken
    operations = sorted((r.ok() for r in results if isinstance(r, Ok)), key=_order)
    assert len(operations) >= 10
    failures: list[str] = []
    for operation in operations:
        _fuzz(operation, base_url, fuzz_world, failures)
    assert not failures, f"{len(failures)} failing operation(s):\n" + "\n\n".join(failures)
