"""The security suite's fixtures: tenant A's world, built once per session on the services."""

from __future__ import annotations

from collections.abc import AsyncIterator

import httpx
import pytest

from tests.conftest import SessionStack
from tests.security.world import World, build_world
from tests.support import ServiceProcess


@pytest.fixture(scope="session")
async def world(services: dict[str, ServiceProcess], stack: SessionStack) -> AsyncIterator[World]:
    # No keep-alive: uvicorn closes idle connections after 5 s, and a request racing that close
    # fails with ReadError (the report takes seconds, leaving other pooled connections idle).
    limits = httpx.Limits(max_keepalive_connections=0)
    async with httpx.AsyncClient(timeout=60.0, limits=limits) as http:
        yield await build_world(http, services, stack.auth_secret)
