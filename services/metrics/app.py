"""Metrics wiring. Its schema holds the platform tables for now; rollups arrive with issue #6."""

from __future__ import annotations

from pathlib import Path

from fastapi import APIRouter

from shared.runtime import Runtime

MIGRATIONS = Path(__file__).with_name("migrations")


def wire(rt: Runtime) -> APIRouter:
    return APIRouter()
