"""Bodies over the size limit get a 413 on every operation of the four services that takes a
body (JSON APIs, the CSV import and webhooks), declared or streamed, and change nothing."""

from __future__ import annotations

from collections.abc import AsyncIterator
from typing import Any

import httpx
import pytest

from shared.settings import ServiceSettings
from tests.badinput.conftest import World
from tests.support import ServiceProcess

LIMIT = int(ServiceSettings.model_fields["max_body_bytes"].default)
SERVICES = ("ingest", "publisher", "inbox", "metrics")
# Reads whose answers show everything the tenant has; a refused body must leave them as they were.
STATE = {
    "ingest": ["/brands", "/queries", "/sources"],
    "publisher": ["/channels", "/posts", "/brands/brand-a/publishing"],
    "inbox": [
        "/members",
        "/teams",
        "/rules",
        "/saved-replies",
        "/brands/brand-a/settings",
    ],
    "metrics": ["/brands/brand-a/reporting"],
}


def _oversized() -> bytes:
    # Valid JSON, so only the size can be the reason for the refusal.
    return b'{"text": "' + b"x" * LIMIT + b'"}'


async def _state(http: httpx.AsyncClient, services: dict[str, ServiceProcess], world: World) -> Any:
    snapshot = {}
    for service, paths in STATE.items():
        for path in paths:
            response = await http.get(
                services[service].url + "/api/v1" + path, headers=world.headers
            )
            assert response.status_code == 200, (path, response.text)
            snapshot[service + path] = _steady(response.json())
    return snapshot


def _steady(value: Any) -> Any:
    """`value` without the fields computed from the clock at read time (a source's lag)."""
    if isinstance(value, dict):
        return {k: _steady(v) for k, v in value.items() if k != "lag_seconds"}
    if isinstance(value, list):
        return [_steady(v) for v in value]
    return value


async def _body_operations(
    http: httpx.AsyncClient, services: dict[str, ServiceProcess], world: World
) -> list[tuple[str, str, str]]:
    """(service, method, url) of every operation that takes a body, real ids in its path."""
    found = []
    for service in SERVICES:
        spec = (await http.get(services[service].url + "/api/v1/openapi.json")).json()
        for path, item in spec["paths"].items():
            for method, operation in item.items():
                reads_raw = path.endswith("/posts/import")  # the CSV body is read by hand
                if "requestBody" not in operation and not reads_raw:
                    continue
                url = services[service].url + path.format(**world.ids)
                found.append((service, method.upper(), url))
    return found


async def _chunks(body: bytes) -> AsyncIterator[bytes]:
    for start in range(0, len(body), 256 * 1024):
        yield body[start : start + 256 * 1024]


@pytest.mark.parametrize("streamed", [False, True], ids=["content-length", "chunked"])
async def test_every_body_over_the_limit_is_413_and_changes_nothing(
    services: dict[str, ServiceProcess], http: httpx.AsyncClient, world: World, streamed: bool
) -> None:
    operations = await _body_operations(http, services, world)
    # Every service has some: ingest's brands/queries/sources/webhooks, publisher's posts and
    # the CSV import, inbox's rules and settings, metrics' reporting settings.
    assert {service for service, _, _ in operations} == set(SERVICES)
    assert any("/webhooks/generic/" in url for _, _, url in operations)
    before = await _state(http, services, world)
    body = _oversized()
    wrong = []
    for _, method, url in operations:
        headers = {**world.headers, "Content-Type": "application/json"}
        content: bytes | AsyncIterator[bytes] = _chunks(body) if streamed else body
        response = await http.request(method, url, content=content, headers=headers)
        error = response.json().get("error") if response.status_code == 413 else None
        if (response.status_code, error) != (413, "body_too_large"):
            wrong.append(f"{method} {url} -> {response.status_code} {response.text[:200]}")
    assert not wrong, "\n".join(wrong)
    assert await _state(http, services, world) == before


async def test_a_body_just_under_the_limit_is_read(
    services: dict[str, ServiceProcess], http: httpx.AsyncClient, world: World
) -> None:
    """The limit refuses only what is over it: a body of exactly the limit gets the route's own
    answer (here a 422 for the too-long brand name), not a 413."""
    padding = LIMIT - len(b'{"name": ""}')
    body = b'{"name": "' + b"x" * padding + b'"}'
    assert len(body) == LIMIT
    response = await http.patch(
        services["ingest"].url + "/api/v1/brands/brand-a",
        content=body,
        headers={**world.headers, "Content-Type": "application/json"},
    )
    assert response.status_code == 422, response.text
    assert response.json()["details"][0]["field"] == "name"
