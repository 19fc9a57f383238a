"""Inbox wiring: the mentions subscriber and the HTTP API."""

from __future__ import annotations

from pathlib import Path

from fastapi import APIRouter

from services.inbox.api import build_api
from services.inbox.handlers import build_router
from shared.runtime import Runtime

MIGRATIONS = Path(__file__).with_name("migrations")


def wire(rt: Runtime) -> APIRouter:
    rt.broker.include_router(build_router(rt))
    return build_api(rt)
