"""How many network calls a publisher replica keeps open: one setting, checked when the service
reads it, spread over HTTP clients small enough that httpx's pool stays cheap."""

from __future__ import annotations

from typing import cast

import asyncpg
import pytest
from cryptography.fernet import Fernet
from pydantic import ValidationError

from services.publisher.dispatcher import CALLS_PER_CLIENT, Dispatcher
from shared.crypto import SecretBox
from shared.settings import PublisherSettings


def dispatcher(calls: int) -> Dispatcher:
    return Dispatcher(
        pool_provider=lambda: cast(asyncpg.Pool, None),
        adapters={},
        box=SecretBox(Fernet.generate_key().decode()),
        network_concurrency=calls,
    )


def test_the_network_calls_setting_defaults_to_48_and_refuses_nonsense(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    assert PublisherSettings().dispatch_network_calls == 48
    monkeypatch.setenv("SMM_PUBLISHER_DISPATCH_NETWORK_CALLS", "200")
    assert PublisherSettings().dispatch_network_calls == 200
    for bad in ("0", "-3", "many"):
        monkeypatch.setenv("SMM_PUBLISHER_DISPATCH_NETWORK_CALLS", bad)
        with pytest.raises(ValidationError, match="dispatch_network_calls"):
            PublisherSettings()


def test_calls_are_spread_over_clients_of_at_most_sixteen_connections() -> None:
    assert CALLS_PER_CLIENT == 16
    assert [dispatcher(n)._clients for n in (1, 16, 17, 48, 200)] == [1, 1, 2, 3, 13]
