"""Ingest's HTTP API: webhook sources and the generic signed webhook."""

import uuid
from datetime import datetime
from typing import Annotated, Literal

from fastapi import APIRouter, Depends, Query, Request
from pydantic import BaseModel, Field, ValidationError

from services.ingest import repository
from services.ingest.webhooks import (
    SIGNATURE_HEADER,
    SourceRef,
    WebhookBody,
    new_signing_secret,
    normalise,
    signature_matches,
)
from shared.auth import Principal
from shared.crypto import SecretBox
from shared.events import BrandId, envelope_for
from shared.http import ApiError, require_role, unprocessable
from shared.outbox import OutgoingEvent, add_events
from shared.runtime import Runtime
from shared.topics import MENTIONS


class SourceCreate(BaseModel):
    brand_id: BrandId
    name: Annotated[str, Field(min_length=1, max_length=200)] = "Generic webhook"
    network: Annotated[str, Field(pattern=r"^[a-z][a-z0-9_]{0,31}$")] = "generic"
    kind: Literal["generic_webhook"] = "generic_webhook"


class SourceOut(BaseModel):
    id: uuid.UUID
    tenant_id: str
    brand_id: str
    kind: str
    network: str
    name: str
    webhook_path: str
    created_at: datetime


class SourceCreated(SourceOut):
    signing_secret: str = Field(
        description="Shown once: sign webhook bodies with it (HMAC-SHA256)."
    )


class SourceList(BaseModel):
    sources: list[SourceOut]


class WebhookAccepted(BaseModel):
    received: int
    accepted: int
    duplicates: int


def _out(row: repository.SourceRow) -> SourceOut:
    return SourceOut(
        id=row.id,
        tenant_id=row.tenant_id,
        brand_id=row.brand_id,
        kind=row.kind,
        network=row.network,
        name=row.name,
        webhook_path=f"/api/v1/webhooks/generic/{row.id}",
        created_at=row.created_at,
    )


async def read_limited_body(request: Request, limit: int) -> bytes:
    """The raw body (the signature covers these exact bytes), refused past `limit` bytes."""
    declared = request.headers.get("content-length")
    if declared is not None and declared.isdigit() and int(declared) > limit:
        raise ApiError(413, "body_too_large", f"body exceeds {limit} bytes")
    chunks: list[bytes] = []
    size = 0
    async for chunk in request.stream():
        size += len(chunk)
        if size > limit:
            raise ApiError(413, "body_too_large", f"body exceeds {limit} bytes")
        chunks.append(chunk)
    return b"".join(chunks)


def build_api(rt: Runtime) -> APIRouter:
    router = APIRouter()
    if rt.platform.encryption_keys is None:
        raise RuntimeError(
            "SMM_ENCRYPTION_KEYS is not set: ingest stores webhook secrets encrypted"
        )
    box = SecretBox(rt.platform.encryption_keys.get_secret_value())
    Caller = Annotated[Principal, Depends(rt.authenticate)]

    @router.post("/sources", status_code=201, response_model=SourceCreated, tags=["sources"])
    async def create_source(body: SourceCreate, caller: Caller) -> SourceCreated:
        require_role(caller, ["admin"])
        secret = new_signing_secret()
        async with rt.pool.acquire() as conn:
            row = await repository.insert_source(
                conn,
                tenant_id=caller.tenant_id,
                brand_id=body.brand_id,
                kind=body.kind,
                network=body.network,
                name=body.name,
                secret_encrypted=box.encrypt(secret),
                created_by=caller.subject,
            )
        return SourceCreated(**_out(row).model_dump(), signing_secret=secret)

    @router.get("/sources", response_model=SourceList, tags=["sources"])
    async def list_sources(
        caller: Caller, brand_id: Annotated[BrandId | None, Query()] = None
    ) -> SourceList:
        require_role(caller, ["admin", "manager"])
        async with rt.pool.acquire() as conn:
            rows = await repository.list_sources(conn, caller.tenant_id, brand_id)
        return SourceList(sources=[_out(r) for r in rows])

    @router.post(
        "/webhooks/generic/{source_id}",
        status_code=202,
        response_model=WebhookAccepted,
        tags=["webhooks"],
        openapi_extra={
            "requestBody": {
                "required": True,
                "content": {"application/json": {"schema": WebhookBody.model_json_schema()}},
            }
        },
    )
    async def generic_webhook(source_id: uuid.UUID, request: Request) -> WebhookAccepted:
        raw = await read_limited_body(request, rt.settings.max_body_bytes)
        async with rt.pool.acquire() as conn:
            source = await repository.get_source(conn, source_id)
        if source is None or source.kind != "generic_webhook":
            raise ApiError(404, "unknown_source", f"no webhook source {source_id}")
        if not signature_matches(
            box.decrypt(source.secret_encrypted), raw, request.headers.get(SIGNATURE_HEADER)
        ):
            raise ApiError(
                401, "bad_signature", f"missing or wrong {SIGNATURE_HEADER} for this body"
            )
        try:
            body = WebhookBody.model_validate_json(raw)
        except ValidationError as exc:
            raise unprocessable(exc) from exc
        ref = SourceRef(source.id, source.tenant_id, source.brand_id, source.network)
        mentions = normalise(ref, body)
        async with rt.pool.acquire() as conn, conn.transaction():
            inserted = await repository.store_new_mentions(
                conn, source.tenant_id, source.brand_id, mentions
            )
            fresh = [m for m in mentions if m.payload.mention_id in inserted]
            await add_events(
                conn,
                [
                    OutgoingEvent(
                        topic=MENTIONS.name,
                        key=f"{source.tenant_id}:{source.brand_id}:"
                        f"{m.payload.thread.root_external_id}",
                        event=envelope_for(
                            m.payload,
                            tenant_id=source.tenant_id,
                            brand_id=source.brand_id,
                            occurred_at=m.created_at,
                        ),
                    )
                    for m in fresh
                ],
            )
        return WebhookAccepted(
            received=len(body.mentions),
            accepted=len(fresh),
            duplicates=len(body.mentions) - len(fresh),
        )

    return router
