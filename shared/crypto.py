"""Secrets at rest (webhook secrets, channel tokens), encrypted with rotatable Fernet keys."""

from __future__ import annotations

import json
from typing import Any

from cryptography.fernet import Fernet, InvalidToken, MultiFernet


class SecretBox:
    """Encrypts with the first key; decrypts with any, so keys rotate without downtime."""

    def __init__(self, keys: str) -> None:
        parts = [k.strip() for k in keys.split(",") if k.strip()]
        if not parts:
            raise ValueError("SMM_ENCRYPTION_KEYS holds no key")
        try:
            self._fernet = MultiFernet([Fernet(k.encode()) for k in parts])
        except ValueError as exc:
            raise ValueError(f"SMM_ENCRYPTION_KEYS: not a Fernet key ({exc})") from exc

    def encrypt(self, plaintext: str) -> bytes:
        return self._fernet.encrypt(plaintext.encode())

    def decrypt(self, token: bytes) -> str:
        try:
            return self._fernet.decrypt(token).decode()
        except InvalidToken as exc:
            raise ValueError("secret cannot be decrypted with the configured keys") from exc

    def seal_json(self, values: dict[str, Any]) -> bytes:
        """Encrypt a JSON object (credentials, webhook secrets)."""
        return self.encrypt(json.dumps(values, separators=(",", ":")))

    def open_json(self, sealed: bytes | None) -> dict[str, Any]:
        """The JSON object `seal_json` sealed; {} for nothing stored."""
        if sealed is None:
            return {}
        value = json.loads(self.decrypt(sealed))
        if not isinstance(value, dict):
            raise ValueError("sealed value is not a JSON object")
        return value

    def rotate(self, token: bytes) -> bytes:
        """Re-encrypt under the current first key."""
        return self._fernet.rotate(token)
