"""Source credentials and webhook secrets: JSON objects sealed with the platform's Fernet keys."""

from __future__ import annotations

import json
from typing import Any

from shared.crypto import SecretBox


def seal_dict(box: SecretBox, values: dict[str, Any]) -> bytes:
    return box.seal_json(values)


def open_dict(box: SecretBox, sealed: bytes | None) -> dict[str, Any]:
    if sealed is None:
        return {}
    plaintext = box.decrypt(sealed)
    try:
        value = json.loads(plaintext)
    except json.JSONDecodeError:
        # Sources made before secrets became objects stored the bare signing secret.
        return {"signing_secret": plaintext}
    return value if isinstance(value, dict) else {"signing_secret": plaintext}
