"""Inbox wiring: the mentions subscriber and the HTTP API."""

from __future__ import annotations

from pathlib import Path

from fastapi import APIRouter

from services.inbox.api import build_api
from services.inbox.handlers import subscribe
from shared.runtime import Runtime

MIGRATIONS = Path(__file__).with_name("migrations")


def wire(rt: Runtime) -> APIRouter:
    subscribe(rt)
    return build_api(rt)
