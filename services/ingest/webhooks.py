"""The generic signed webhook: its body, its signature, and how its items become mentions."""

from __future__ import annotations

import hashlib
import hmac
import secrets
import uuid
from dataclasses import dataclass
from datetime import datetime
from typing import Annotated, Any

from pydantic import AwareDatetime, BaseModel, ConfigDict, Field, StringConstraints

from shared.events import Author, MentionPayload, Thread

MAX_MENTIONS_PER_REQUEST = 1000
SIGNATURE_HEADER = "X-SMM-Signature"
_PREFIX = "sha256="

ExternalId = Annotated[str, StringConstraints(min_length=1, max_length=256, strip_whitespace=True)]


class WebhookAuthor(BaseModel):
    model_config = ConfigDict(extra="ignore")

    id: ExternalId
    handle: Annotated[str, StringConstraints(min_length=1, max_length=256)]
    display_name: Annotated[str, StringConstraints(max_length=512)] | None = None
    followers: Annotated[int, Field(ge=0)] | None = None


class WebhookMention(BaseModel):
    model_config = ConfigDict(extra="ignore")

    external_id: ExternalId
    text: Annotated[str, StringConstraints(max_length=65_536)]
    author: WebhookAuthor
    created_at: AwareDatetime
    url: Annotated[str, StringConstraints(max_length=2048, pattern=r"^https?://\S+$")] | None = None
    in_reply_to: ExternalId | None = None
    language: (
        Annotated[str, StringConstraints(pattern=r"^[a-z]{2,3}(-[A-Za-z0-9]{1,8})*$")] | None
    ) = None


class WebhookBody(BaseModel):
    model_config = ConfigDict(extra="ignore")

    mentions: Annotated[
        list[WebhookMention], Field(min_length=1, max_length=MAX_MENTIONS_PER_REQUEST)
    ]


def new_signing_secret() -> str:
    return secrets.token_urlsafe(32)


def sign(secret: str, body: bytes) -> str:
    """The header value a sender puts in `X-SMM-Signature` for this body."""
    return _PREFIX + hmac.new(secret.encode(), body, hashlib.sha256).hexdigest()


def signature_matches(secret: str, body: bytes, header: str | None) -> bool:
    if not header or not header.startswith(_PREFIX):
        return False
    expected = sign(secret, body)
    return hmac.compare_digest(expected.encode(), header.strip().encode())


@dataclass(frozen=True)
class SourceRef:
    id: uuid.UUID
    tenant_id: str
    brand_id: str
    network: str


@dataclass(frozen=True)
class NormalisedMention:
    payload: MentionPayload
    raw: dict[str, Any]

    @property
    def created_at(self) -> datetime:
        return self.payload.created_at


def normalise(source: SourceRef, body: WebhookBody) -> list[NormalisedMention]:
    """One mention per distinct external id in the request (the first occurrence wins)."""
    seen: set[str] = set()
    out: list[NormalisedMention] = []
    for item in body.mentions:
        if item.external_id in seen:
            continue
        seen.add(item.external_id)
        payload = MentionPayload(
            mention_id=uuid.uuid4(),
            source_id=source.id,
            network=source.network,
            external_id=item.external_id,
            kind="reply" if item.in_reply_to else "mention",
            url=item.url,
            text=item.text,
            language=item.language,
            created_at=item.created_at,
            author=Author(
                id=item.author.id,
                handle=item.author.handle,
                display_name=item.author.display_name,
                followers=item.author.followers,
            ),
            thread=Thread(
                # The generic webhook names only the parent; it stands in for the thread root.
                root_external_id=item.in_reply_to or item.external_id,
                parent_external_id=item.in_reply_to,
            ),
        )
        out.append(NormalisedMention(payload, item.model_dump(mode="json")))
    return out
