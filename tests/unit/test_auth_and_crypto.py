from __future__ import annotations

from datetime import timedelta

import jwt
import pytest
from cryptography.fernet import Fernet

from shared.auth import AuthError, issue_token, verify_token
from shared.crypto import SecretBox

SECRET = "s" * 40


def test_token_carries_tenant_and_role() -> None:
    principal = verify_token(SECRET, issue_token(SECRET, tenant_id="acme", role="agent"))
    assert (principal.tenant_id, principal.role) == ("acme", "agent")


@pytest.mark.parametrize(
    "bad",
    [
        issue_token("other" * 10, tenant_id="acme", role="admin"),
        issue_token(SECRET, tenant_id="acme", role="admin", ttl=timedelta(seconds=-5)),
        issue_token(SECRET, tenant_id="acme", role="admin", issuer="someone-else"),
        jwt.encode({"tenant": "acme", "role": "admin"}, SECRET, algorithm="HS256"),
        "not-a-token",
    ],
    ids=["wrong-key", "expired", "wrong-issuer", "no-claims", "garbage"],
)
def test_bad_tokens_are_refused(bad: str) -> None:
    with pytest.raises(AuthError):
        verify_token(SECRET, bad)


def test_unsigned_token_is_refused() -> None:
    unsigned = jwt.encode({"tenant": "acme", "role": "admin"}, key="", algorithm="none")
    with pytest.raises(AuthError):
        verify_token(SECRET, unsigned)


def test_unknown_role_cannot_be_issued() -> None:
    with pytest.raises(ValueError, match="unknown role"):
        issue_token(SECRET, tenant_id="acme", role="god")


def test_secret_box_rotates_keys() -> None:
    old, new = Fernet.generate_key().decode(), Fernet.generate_key().decode()
    sealed = SecretBox(old).encrypt("webhook-secret")
    rotated_box = SecretBox(f"{new},{old}")
    assert rotated_box.decrypt(sealed) == "webhook-secret"
    resealed = rotated_box.rotate(sealed)
    assert SecretBox(new).decrypt(resealed) == "webhook-secret"
    with pytest.raises(ValueError, match="cannot be decrypted"):
        SecretBox(new).decrypt(sealed)
    with pytest.raises(ValueError, match="not a Fernet key"):
        SecretBox("short")
