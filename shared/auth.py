"""Bearer tokens: HS256 JWTs carrying tenant and role, verified locally by every service."""

from __future__ import annotations

import uuid
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from typing import Literal, get_args

import jwt

Role = Literal["admin", "manager", "agent", "client-approver", "service"]
ROLES: tuple[str, ...] = get_args(Role)
AUDIENCE = "opensmm-api"


class AuthError(Exception):
    """The token is missing, malformed, expired, or signed with another key."""


@dataclass(frozen=True)
class Principal:
    tenant_id: str
    role: Role
    subject: str


def issue_token(
    secret: str,
    *,
    tenant_id: str,
    role: str,
    subject: str | None = None,
    ttl: timedelta = timedelta(hours=12),
    issuer: str = "opensmm",
) -> str:
    if role not in ROLES:
        raise ValueError(f"unknown role {role!r}; expected one of {', '.join(ROLES)}")
    if not tenant_id:
        raise ValueError("tenant_id is required")
    now = datetime.now(UTC)
    claims = {
        "iss": issuer,
        "aud": AUDIENCE,
        "sub": subject or f"{role}@{tenant_id}",
        "tenant": tenant_id,
        "role": role,
        "iat": now,
        "nbf": now,
        "exp": now + ttl,
        "jti": str(uuid.uuid4()),
    }
    return jwt.encode(claims, secret, algorithm="HS256")


def verify_token(secret: str, token: str, *, issuer: str = "opensmm") -> Principal:
    try:
        claims = jwt.decode(
            token,
            secret,
            algorithms=["HS256"],
            audience=AUDIENCE,
            issuer=issuer,
            options={"require": ["exp", "iat", "sub", "aud", "iss"]},
        )
    except jwt.PyJWTError as exc:
        raise AuthError(f"invalid token: {exc}") from exc
    tenant, role = claims.get("tenant"), claims.get("role")
    if not isinstance(tenant, str) or not tenant:
        raise AuthError("invalid token: no tenant claim")
    if role not in ROLES:
        raise AuthError("invalid token: unknown role")
    return Principal(tenant_id=tenant, role=role, subject=str(claims["sub"]))
