"""The error shape every service answers with: a database outage is a 503 to retry, and an
ApiError's headers reach the client."""

from __future__ import annotations

import asyncpg
import httpx
from fastapi import FastAPI

from shared.http import ApiError, install_error_handlers


def _app() -> FastAPI:
    app = FastAPI()
    install_error_handlers(app)

    @app.get("/outage")
    async def outage() -> None:
        raise asyncpg.exceptions.ConnectionDoesNotExistError("connection was closed")

    @app.get("/refused")
    async def refused() -> None:
        raise ConnectionRefusedError(111, "Connect call failed")

    @app.get("/limited")
    async def limited() -> None:
        raise ApiError(429, "rate_limited", "slow down", headers={"Retry-After": "7"})

    return app


async def _get(path: str) -> httpx.Response:
    transport = httpx.ASGITransport(app=_app(), raise_app_exceptions=False)
    async with httpx.AsyncClient(transport=transport, base_url="http://test") as client:
        return await client.get(path)


async def test_a_lost_database_connection_is_a_503_with_retry_after() -> None:
    for path in ("/outage", "/refused"):
        response = await _get(path)
        assert response.status_code == 503
        assert response.headers["retry-after"] == "5"
        assert response.json()["error"] == "unavailable"


async def test_api_error_headers_are_sent_as_headers_not_in_the_body() -> None:
    response = await _get("/limited")
    assert response.status_code == 429
    assert response.headers["retry-after"] == "7"
    assert response.json() == {"error": "rate_limited", "message": "slow down"}
