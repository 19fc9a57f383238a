"""Valid JSON that carries text Postgres cannot store (NUL, lone surrogates) is a 422 on every
service, never a 500, and stores nothing. Schemathesis found the 500s this guards against."""

from __future__ import annotations

import json
from typing import Any

import httpx
import pytest

from tests.badinput.conftest import World
from tests.support import ServiceProcess

UNSTORABLE = ["nul\u0000byte", "lone \ud800 surrogate"]


@pytest.mark.parametrize("text", UNSTORABLE, ids=["nul", "surrogate"])
async def test_unstorable_text_is_422_and_stores_nothing(
    services: dict[str, ServiceProcess], http: httpx.AsyncClient, world: World, text: str
) -> None:
    ingest, publisher, inbox = (
        services[name].url + "/api/v1" for name in ("ingest", "publisher", "inbox")
    )
    writes: list[tuple[str, str, dict[str, Any], str]] = [
        ("PATCH", f"{ingest}/brands/brand-a", {"name": text}, f"{ingest}/brands/brand-a"),
        (
            "PUT",
            f"{ingest}/queries/{world.ids['query_id']}",
            {"brand_id": "brand-a", "name": text, "expression": "sneakers"},
            f"{ingest}/queries/{world.ids['query_id']}",
        ),
        (
            "PATCH",
            f"{publisher}/posts/{world.ids['post_id']}",
            {"variants": [{"channel_id": world.ids["channel_id"], "text": text}]},
            f"{publisher}/posts/{world.ids['post_id']}",
        ),
        ("PUT", f"{inbox}/members/ann", {"name": text}, f"{inbox}/members/ann"),
        (
            "PUT",
            f"{inbox}/saved-replies/thanks",
            {"name": "Thanks", "text": text},
            f"{inbox}/saved-replies/thanks",
        ),
    ]
    for method, url, body, read in writes:
        before = (await http.get(read, headers=world.headers)).json()
        # json.dumps writes the escapes (\u0000, \ud800) a client would send.
        response = await http.request(
            method,
            url,
            content=json.dumps(body).encode(),
            headers={**world.headers, "Content-Type": "application/json"},
        )
        assert response.status_code == 422, (method, url, response.text)
        assert (await http.get(read, headers=world.headers)).json() == before, url
