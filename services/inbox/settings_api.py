"""Inbox configuration API (being written)."""

from __future__ import annotations

from fastapi import APIRouter

from shared.runtime import Runtime


def build_settings_api(rt: Runtime) -> APIRouter:
    return APIRouter()
