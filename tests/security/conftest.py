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
    async with httpx.AsyncClient(timeout=30.0) as http:
        yield await build_world(http, services, stack.auth_secret)
