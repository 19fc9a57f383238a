"""The generic signed webhook: any system can push mentions to a source with an HMAC signature.

Unlike the networks' webhooks, a malformed body is refused whole (422 naming the fields): the
sender is a system we document for, and a partial accept would hide its bug.
"""

from __future__ import annotations

import hashlib
import hmac
import json
import secrets
from typing import Annotated, Any, ClassVar

from pydantic import AwareDatetime, BaseModel, ConfigDict, Field, StringConstraints

from services.ingest.connectors.base import (
    FetchedAuthor,
    FetchedMention,
    SignatureInvalid,
    SourceConfig,
    WebhookReply,
    WebhookRequest,
    WebhookResult,
)

MAX_MENTIONS_PER_REQUEST = 1000
SIGNATURE_HEADER = "X-SMM-Signature"
# Optional send time (Unix seconds). When present it is signed with the body (`<ts>.<body>`), so a
# captured delivery cannot be replayed once it is older than ingest's tolerance.
TIMESTAMP_HEADER = "X-SMM-Timestamp"
_PREFIX = "sha256="

ExternalId = Annotated[str, StringConstraints(min_length=1, max_length=256, strip_whitespace=True)]
Language = Annotated[str, StringConstraints(pattern=r"^[a-z]{2,3}(-[A-Za-z0-9]{1,8})*$")]
Url = Annotated[str, StringConstraints(max_length=2048, pattern=r"^https?://\S+$")]


class WebhookAuthor(BaseModel):
    model_config = ConfigDict(extra="ignore")

    id: ExternalId
    handle: Annotated[str, StringConstraints(min_length=1, max_length=256)]
    display_name: Annotated[str, StringConstraints(max_length=512)] | None = None
    followers: Annotated[int, Field(ge=0)] | None = None
    verified: bool | None = None


class WebhookMention(BaseModel):
    model_config = ConfigDict(extra="ignore")

    external_id: ExternalId
    text: Annotated[str, StringConstraints(max_length=65_536)]
    author: WebhookAuthor
    created_at: AwareDatetime
    url: Url | None = None
    in_reply_to: ExternalId | None = None
    language: Language | None = None


class WebhookBody(BaseModel):
    model_config = ConfigDict(extra="ignore")

    mentions: Annotated[
        list[WebhookMention], Field(min_length=1, max_length=MAX_MENTIONS_PER_REQUEST)
    ]


class GenericWebhookConfig(SourceConfig):
    network: Annotated[str, StringConstraints(pattern=r"^[a-z][a-z0-9_]{0,31}$")] = "generic"
    require_timestamp: bool = Field(
        default=False,
        description=f"Refuse deliveries without a signed {TIMESTAMP_HEADER} (replay protection).",
    )


def new_signing_secret() -> str:
    return secrets.token_urlsafe(32)


def sign(secret: str, body: bytes, timestamp: str | None = None) -> str:
    """The header value a sender puts in `X-SMM-Signature` for this body (and, if it sends
    `X-SMM-Timestamp`, that timestamp: the HMAC is then over `<timestamp>.<body>`)."""
    signed = body if timestamp is None else timestamp.encode() + b"." + body
    return _PREFIX + hmac.new(secret.encode(), signed, hashlib.sha256).hexdigest()


def signature_matches(
    secret: str, body: bytes, header: str | None, timestamp: str | None = None
) -> bool:
    if not header or not header.startswith(_PREFIX):
        return False
    return hmac.compare_digest(sign(secret, body, timestamp).encode(), header.strip().encode())


class GenericWebhookConnector:
    network: ClassVar[str] = "generic"
    config_model: ClassVar[type[SourceConfig]] = GenericWebhookConfig

    def handshake(
        self, request: WebhookRequest, config: Any, secrets: dict[str, Any]
    ) -> WebhookReply | None:
        return None

    def verify(self, request: WebhookRequest, config: Any, secrets: dict[str, Any]) -> None:
        header = request.headers.get(SIGNATURE_HEADER.lower())
        timestamp = request.headers.get(TIMESTAMP_HEADER.lower())
        secret = str(secrets.get("signing_secret", ""))
        if not signature_matches(secret, request.body, header, timestamp):
            raise SignatureInvalid(f"missing or wrong {SIGNATURE_HEADER} for this body")

    def parse(self, request: WebhookRequest, config: Any) -> WebhookResult:
        """Raises pydantic.ValidationError for a malformed body (the API answers 422)."""
        body = WebhookBody.model_validate_json(request.body)
        network = config.network if isinstance(config, GenericWebhookConfig) else "generic"
        mentions = [
            FetchedMention(
                network=network,
                external_id=item.external_id,
                kind="reply" if item.in_reply_to else "mention",
                text=item.text,
                created_at=item.created_at,
                author=FetchedAuthor(
                    id=item.author.id,
                    handle=item.author.handle,
                    display_name=item.author.display_name,
                    followers=item.author.followers,
                    verified=item.author.verified,
                ),
                # The generic webhook names only the parent; it stands in for the thread root.
                root_external_id=item.in_reply_to or item.external_id,
                parent_external_id=item.in_reply_to,
                url=item.url,
                language=item.language,
                raw=json.loads(item.model_dump_json()),
            )
            for item in body.mentions
        ]
        return WebhookResult(mentions=mentions, reply=WebhookReply(status=202))
