"""Malformed listening queries and inbox rules are a 422 that says where the problem is; unknown
IANA time zones and invalid RRULEs are a 422 wherever they are accepted; none changes anything."""

from __future__ import annotations

from typing import Any

import httpx
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from services.ingest.listening import QueryParseError, parse
from tests.badinput.conftest import World
from tests.support import ServiceProcess

BAD_ZONES = ["Mars/Olympus_Mons", "Europe/Berlinn", "UTC+3", "", "../../etc/passwd", "Europe/"]
BAD_QUERIES = [
    "(sneakers OR boots",
    "sneakers AND",
    "OR boots",
    '"unfinished phrase',
    "sneakers NEAR/x boots",
    "()",
    "sneakers boots)",
    "NOT",
]


# --- listening queries ---------------------------------------------------------------------------


@settings(max_examples=300, deadline=None, derandomize=True, database=None)
@given(
    st.text(max_size=60)
    | st.lists(
        st.sampled_from(["(", ")", "AND", "OR", "NOT", "NEAR/3", '"', "shoe", "*", " "]),
        max_size=12,
    ).map(" ".join)
)
def test_a_query_parses_or_names_a_position_inside_it(expression: str) -> None:
    error: QueryParseError | None = None
    try:
        parse(expression)
    except QueryParseError as exc:
        error = exc
    if error is not None:
        assert 0 <= error.position <= len(expression)
        assert f"position {error.position}" in str(error)


async def _queries(http: httpx.AsyncClient, ingest: str, world: World) -> Any:
    response = await http.get(f"{ingest}/queries", headers=world.headers)
    assert response.status_code == 200
    return response.json()


@pytest.mark.parametrize("expression", BAD_QUERIES)
async def test_malformed_query_is_422_with_its_position_and_nothing_is_saved(
    services: dict[str, ServiceProcess], http: httpx.AsyncClient, world: World, expression: str
) -> None:
    ingest = services["ingest"].url + "/api/v1"
    before = await _queries(http, ingest, world)
    query = {"brand_id": "brand-a", "name": "Broken", "expression": expression}
    calls = [
        ("POST", f"{ingest}/queries", query),
        ("PUT", f"{ingest}/queries/{world.ids['query_id']}", query),
        ("POST", f"{ingest}/queries/test", {"expression": expression, "samples": [{"text": "hi"}]}),
    ]
    for method, url, body in calls:
        response = await http.request(method, url, json=body, headers=world.headers)
        assert response.status_code == 422, (method, url, response.text)
        detail = response.json()["details"][0]
        assert detail["field"] == "expression"
        assert 0 <= detail["position"] <= len(expression)
        assert f"position {detail['position']}" in response.json()["message"]
    assert await _queries(http, ingest, world) == before


# --- JSON that does not parse, on every service ----------------------------------------------


@pytest.mark.parametrize(
    ("service", "method", "path"),
    [
        ("ingest", "POST", "/queries"),
        ("publisher", "PUT", "/brands/brand-a/publishing"),
        ("inbox", "PUT", "/rules"),
        ("inbox", "POST", "/rules/dry-run"),
        ("metrics", "PUT", "/brands/brand-a/reporting"),
    ],
)
async def test_body_that_is_not_json_is_422_with_line_and_column(
    services: dict[str, ServiceProcess],
    http: httpx.AsyncClient,
    world: World,
    service: str,
    method: str,
    path: str,
) -> None:
    broken = b'{\n  "rules": [\n    {"id": "r1",, "actions": []}\n  ]\n}'
    response = await http.request(
        method,
        services[service].url + "/api/v1" + path,
        content=broken,
        headers={**world.headers, "Content-Type": "application/json"},
    )
    assert response.status_code == 422, response.text
    (detail,) = response.json()["details"]
    assert detail["type"] == "json_invalid"
    # The second comma: line 3, column 17, character 31 of the body.
    assert (detail["line"], detail["column"], detail["position"]) == (3, 17, 31)
    assert "line 3 column 17" in detail["message"]


# --- inbox rules ---------------------------------------------------------------------------------


async def test_malformed_rules_are_422_naming_rule_and_field_and_nothing_changes(
    services: dict[str, ServiceProcess], http: httpx.AsyncClient, world: World
) -> None:
    api = services["inbox"].url + "/api/v1"
    before = (await http.get(f"{api}/rules", headers=world.headers)).json()
    good = {"id": "ok", "actions": [{"type": "add_tag", "tag": "ok"}]}
    cases: list[tuple[Any, str]] = [
        (
            [good, {"id": "x", "conditions": [{"type": "moon_phase"}], "actions": good["actions"]}],
            "rules.1.conditions.0",
        ),
        ([good, {"id": "y", "actions": []}], "rules.1.actions"),
        (
            [
                {
                    "id": "z",
                    "conditions": [{"type": "text_contains_any", "keywords": "refund"}],
                    "actions": good["actions"],
                }
            ],
            "rules.0.conditions.0.text_contains_any.keywords",
        ),
        (
            [
                {
                    "id": "w",
                    "conditions": [
                        {
                            "type": "time_window",
                            "zone": "Mars/Base",
                            "start": "09:00",
                            "end": "17:00",
                        }
                    ],
                    "actions": good["actions"],
                }
            ],
            "rules.0.conditions.0.time_window.zone",
        ),
        ("not a list", "rules"),
    ]
    for rules, field in cases:
        for method, path in (("PUT", "/rules"), ("POST", "/rules/dry-run")):
            response = await http.request(
                method, api + path, json={"rules": rules}, headers=world.headers
            )
            assert response.status_code == 422, (rules, response.text)
            fields = [d["field"] for d in response.json()["details"]]
            assert any(f.startswith(field) for f in fields), (field, fields)
    assert (await http.get(f"{api}/rules", headers=world.headers)).json() == before


# --- time zones and RRULEs ----------------------------------------------------------------------


@pytest.mark.parametrize("zone", BAD_ZONES)
async def test_unknown_time_zone_is_422_everywhere_and_nothing_changes(
    services: dict[str, ServiceProcess], http: httpx.AsyncClient, world: World, zone: str
) -> None:
    ingest, publisher, inbox, metrics = (
        services[name].url + "/api/v1" for name in ("ingest", "publisher", "inbox", "metrics")
    )
    reads = [
        f"{ingest}/brands/brand-a",
        f"{publisher}/brands/brand-a/publishing",
        f"{inbox}/brands/brand-a/settings",
        f"{metrics}/brands/brand-a/reporting",
    ]

    async def state() -> list[Any]:
        return [(await http.get(url, headers=world.headers)).json() for url in reads]

    before = await state()
    writes = [
        ("POST", f"{ingest}/brands", {"id": "zoned", "name": "Z", "timezone": zone}),
        ("PATCH", f"{ingest}/brands/brand-a", {"timezone": zone}),
        ("PUT", f"{publisher}/brands/brand-a/publishing", {"timezone": zone, "approval": "none"}),
        ("PUT", f"{inbox}/brands/brand-a/settings", {"time_zone": zone}),
        ("PUT", f"{metrics}/brands/brand-a/reporting", {"timezone": zone}),
    ]
    for method, url, body in writes:
        response = await http.request(method, url, json=body, headers=world.headers)
        assert response.status_code == 422, (method, url, response.text)
        assert response.json()["details"], response.text
    period = {"from": "2026-11-01", "to": "2026-11-08", "timezone": zone}
    # An empty query parameter is no parameter (the brand's reporting zone); bodies refuse "".
    reports = ("series", "top", "share-of-voice", "responses", "publishing") if zone else ()
    for path in reports:
        response = await http.get(
            f"{metrics}/brands/brand-a/{path}", params=period, headers=world.headers
        )
        assert response.status_code == 422, (path, response.text)
        assert response.json()["details"][0]["field"] == "timezone"
    assert await state() == before
    missing = await http.get(f"{ingest}/brands/zoned", headers=world.headers)
    assert missing.status_code == 404


async def _fresh_post(http: httpx.AsyncClient, publisher: str, world: World) -> dict[str, Any]:
    response = await http.post(
        f"{publisher}/posts",
        json={
            "brand_id": "brand-a",
            "variants": [{"channel_id": world.ids["channel_id"], "text": "Weekly tip"}],
        },
        headers=world.headers,
    )
    assert response.status_code == 201, response.text
    post = response.json()
    # The brand needs no approval: submitting approves it, so only the RRULE can be wrong.
    submitted = await http.post(f"{publisher}/posts/{post['id']}/submit", headers=world.headers)
    assert submitted.status_code == 200, submitted.text
    return dict(submitted.json())


@pytest.mark.parametrize(
    "rrule",
    [
        "FREQ=WEEKLY;BYDAY=XX",
        "FREQ=SOMETIMES",
        "FREQ=DAILY;COUNT=-1",
        "FREQ=DAILY;UNTIL=yesterday",
        "BYDAY=MO",
        "FREQ=DAILY\nEXDATE:20261201T090000",
        "DTSTART:20261101T090000\nRRULE:FREQ=DAILY",
        "FREQ=YEARLY;BYMONTH=2;BYMONTHDAY=30",  # never happens
        "",
    ],
)
async def test_invalid_rrule_is_422_and_the_post_is_unchanged(
    services: dict[str, ServiceProcess], http: httpx.AsyncClient, world: World, rrule: str
) -> None:
    publisher = services["publisher"].url + "/api/v1"
    post = await _fresh_post(http, publisher, world)
    url = f"{publisher}/posts/{post['id']}"
    before = (await http.get(url, headers=world.headers)).json()
    response = await http.post(
        f"{url}/schedule",
        json={"at_local": "2026-12-01T09:00:00", "rrule": rrule},
        headers=world.headers,
    )
    assert response.status_code == 422, response.text
    assert response.json()["error"] in ("invalid_rrule", "invalid_body", "invalid_request")
    assert (await http.get(url, headers=world.headers)).json() == before
