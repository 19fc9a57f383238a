"""Bearer tokens: every service refuses (401) a token that is expired, tampered with, signed with
another key or `alg: none`, meant for another audience or issuer, or missing a claim it needs."""

from __future__ import annotations

import base64
import json
from collections.abc import Callable
from datetime import UTC, datetime, timedelta
from typing import Any

import jwt

from shared.auth import AUDIENCE
from tests.security.world import World

# One authenticated read per service that the admin may do.
PROBES = {
    "ingest": "/brands",
    "publisher": "/networks",
    "inbox": "/members",
    "metrics": "/brands/{brand}/reporting",
}


def _claims(world: World) -> dict[str, Any]:
    now = datetime.now(UTC)
    return {
        "iss": "opensmm",
        "aud": AUDIENCE,
        "sub": "admin-1",
        "tenant": world.tenant,
        "role": "admin",
        "iat": now,
        "nbf": now,
        "exp": now + timedelta(hours=1),
    }


def _b64(value: dict[str, Any]) -> str:
    raw = json.dumps(value, default=lambda d: int(d.timestamp())).encode()
    return base64.urlsafe_b64encode(raw).rstrip(b"=").decode()


def _tampered(world: World) -> str:
    header, _, signature = jwt.encode(_claims(world), world.secret, "HS256").split(".")
    return ".".join((header, _b64({**_claims(world), "tenant": world.other}), signature))


def _variants(world: World) -> dict[str, Callable[[], str]]:
    def signed(**change: Any) -> Callable[[], str]:
        claims = {k: v for k, v in {**_claims(world), **change}.items() if v is not None}
        return lambda: jwt.encode(claims, world.secret, "HS256")

    past = datetime.now(UTC) - timedelta(hours=2)
    return {
        "expired": signed(exp=past, iat=past - timedelta(hours=1), nbf=past - timedelta(hours=1)),
        "tampered payload": lambda: _tampered(world),
        "wrong signing key": lambda: jwt.encode(_claims(world), "x" * 48, "HS256"),
        "alg none": lambda: _b64({"alg": "none", "typ": "JWT"}) + "." + _b64(_claims(world)) + ".",
        "no tenant": signed(tenant=None),
        "empty tenant": signed(tenant=""),
        "no role": signed(role=None),
        "unknown role": signed(role="owner"),
        "no sub": signed(sub=None),
        "no exp": signed(exp=None),
        "wrong audience": signed(aud="another-api"),
        "wrong issuer": signed(iss="someone-else"),
        "not a JWT": lambda: "not.a.token",
    }


async def test_bad_tokens_are_refused_by_every_service(world: World) -> None:
    wrong = []
    good = jwt.encode(_claims(world), world.secret, "HS256")
    for service, path in PROBES.items():
        url = world.urls[service] + "/api/v1" + path.format(brand=world.brand)
        response = await world.http.get(url, headers={"Authorization": f"Bearer {good}"})
        assert response.status_code == 200, (service, response.text)
        assert (await world.http.get(url)).status_code == 401, f"{service}: no token"
        for name, make in _variants(world).items():
            response = await world.http.get(url, headers={"Authorization": f"Bearer {make()}"})
            if response.status_code != 401:
                wrong.append(f"{service} {name}: {response.status_code} {response.text[:120]}")
    assert wrong == [], "\n".join(wrong)
