"""Metrics wiring: rollup subscribers on every topic and the analytics API."""

from __future__ import annotations

from pathlib import Path

from fastapi import APIRouter

from services.metrics.api import build_api
from services.metrics.handlers import subscribe
from shared.runtime import Runtime

MIGRATIONS = Path(__file__).with_name("migrations")


def wire(rt: Runtime) -> APIRouter:
    subscribe(rt)
    return build_api(rt)
