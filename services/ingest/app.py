"""Ingest wiring: its HTTP API (it consumes no topic yet; `smm.posts.v1` comes with tracking)."""

from __future__ import annotations

from pathlib import Path

from fastapi import APIRouter

from services.ingest.api import build_api
from shared.runtime import Runtime

MIGRATIONS = Path(__file__).with_name("migrations")


def wire(rt: Runtime) -> APIRouter:
    return build_api(rt)
