"""A receiver of the publisher's outgoing signed webhook, as the adapter's docs ask one to behave:
it checks `X-SMM-Signature` (HMAC-SHA256 of the raw body), dedupes on `Idempotency-Key` (a repeat
answers the first request's item) and answers `{"id", "url"}`."""

from __future__ import annotations

import asyncio
import hashlib
import hmac
import json
from dataclasses import dataclass
from typing import Any

from starlette.applications import Starlette
from starlette.requests import Request
from starlette.responses import JSONResponse, PlainTextResponse, Response
from starlette.routing import Route


@dataclass
class ReceiverFaults:
    """What the next delivery meets. `http_status` (with `retry_after`) is answered before
    anything is stored; `delay_s` stores the item, then holds the answer that long."""

    http_status: int | None = None
    retry_after: str | None = None
    delay_s: float = 0.0


class FakeWebhookReceiver:
    """Tests read `items` (what was created, in order), `deliveries` (every request's raw body)
    and `replays` (deliveries answered from the dedupe table)."""

    def __init__(self, secret: str) -> None:
        self.secret = secret
        self.items: list[dict[str, Any]] = []
        self.deliveries: list[bytes] = []
        self.replays = 0
        self.faults = ReceiverFaults()
        self._by_key: dict[str, dict[str, Any]] = {}
        self.app = Starlette(routes=[Route("/hooks/smm", self._receive, methods=["POST"])])

    async def _receive(self, request: Request) -> Response:
        body = await request.body()
        self.deliveries.append(body)
        expected = "sha256=" + hmac.new(self.secret.encode(), body, hashlib.sha256).hexdigest()
        if not hmac.compare_digest(request.headers.get("x-smm-signature", ""), expected):
            return JSONResponse({"error": "signature does not match"}, status_code=401)
        if self.faults.http_status is not None:
            status, self.faults.http_status = self.faults.http_status, None
            headers = {"Retry-After": self.faults.retry_after} if self.faults.retry_after else None
            return PlainTextResponse("try later", status_code=status, headers=headers)
        key = request.headers.get("idempotency-key", "")
        document = json.loads(body)
        if not key or key != document.get("idempotency_key"):
            return JSONResponse({"error": "Idempotency-Key is missing or differs"}, 400)
        if key in self._by_key:
            self.replays += 1
            return JSONResponse(self._answer(self._by_key[key]))
        if not str(document.get("text", "")).strip():
            return JSONResponse({"error": "text must not be blank"}, status_code=422)
        item = {**document, "id": f"item-{len(self.items) + 1}"}
        self.items.append(item)
        self._by_key[key] = item
        delay, self.faults.delay_s = self.faults.delay_s, 0.0
        if delay:
            await asyncio.sleep(delay)  # stored already; the answer is what is late
        return JSONResponse(self._answer(item), status_code=201)

    @staticmethod
    def _answer(item: dict[str, Any]) -> dict[str, str]:
        return {"id": item["id"], "url": f"https://cms.example.com/posts/{item['id']}"}
