from __future__ import annotations

from typing import Any

import httpx
import pytest

from tests.conftest import SessionStack
from tests.support import ServiceProcess, token


@pytest.fixture
async def source(
    services: dict[str, ServiceProcess], http: httpx.AsyncClient, stack: SessionStack, tenant: str
) -> dict[str, Any]:
    """A generic webhook source of brand `brand-a` in a fresh tenant, created through the API."""
    brand = await http.post(
        services["ingest"].url + "/api/v1/brands",
        json={"id": "brand-a", "name": "Brand A", "timezone": "Europe/Berlin"},
        headers=token(stack.auth_secret, tenant, "admin"),
    )
    assert brand.status_code == 201, brand.text
    response = await http.post(
        services["ingest"].url + "/api/v1/sources",
        json={"brand_id": "brand-a", "name": "Reviews relay"},
        headers=token(stack.auth_secret, tenant, "admin"),
    )
    assert response.status_code == 201, response.text
    return dict(response.json())
