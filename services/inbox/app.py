"""Inbox wiring: the subscribers, the SLA clock and the HTTP API."""

from __future__ import annotations

from pathlib import Path

from fastapi import APIRouter

from services.inbox.api import build_api
from services.inbox.handlers import subscribe
from services.inbox.settings_api import build_settings_api
from shared.runtime import Runtime
from shared.settings import InboxSettings

MIGRATIONS = Path(__file__).with_name("migrations")


def wire(rt: Runtime) -> APIRouter:
    settings = rt.settings
    assert isinstance(settings, InboxSettings)
    subscribe(rt, settings)
    router = APIRouter()
    router.include_router(build_api(rt, settings))
    router.include_router(build_settings_api(rt))
    return router
