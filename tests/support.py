"""Helpers the integration and end-to-end tests share: service processes, signed webhooks, waits."""

from __future__ import annotations

import asyncio
import hashlib
import hmac
import json
import os
import signal
import socket
import subprocess
import sys
import time
import uuid
from collections.abc import Awaitable, Callable, Sequence
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any, TypeVar

import httpx
from aiokafka import AIOKafkaConsumer

from shared.auth import issue_token
from shared.events import Author, MentionPayload, Thread, envelope_for

T = TypeVar("T")
REPO = Path(__file__).resolve().parents[1]


def mention_event(
    tenant: str,
    external_id: str,
    text: str,
    *,
    root: str | None = None,
    brand: str = "b",
    created_at: datetime | None = None,
) -> dict[str, Any]:
    """A `mention.received` envelope as ingest would publish it (written now, by default)."""
    payload = MentionPayload(
        mention_id=uuid.uuid4(),
        source_id=uuid.uuid4(),
        network="generic",
        external_id=external_id,
        text=text,
        created_at=created_at or datetime.now(UTC),
        author=Author(id="a-" + external_id, handle="@" + external_id),
        thread=Thread(root_external_id=root or external_id),
    )
    return envelope_for(payload, tenant_id=tenant, brand_id=brand, occurred_at=payload.created_at)


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


async def wait_until(
    probe: Callable[[], Awaitable[T]],
    *,
    timeout_s: float = 30.0,
    interval_s: float = 0.05,
    what: str = "condition",
) -> T:
    """Poll `probe` until it returns something truthy; fail the test after `timeout_s`."""
    deadline = time.monotonic() + timeout_s
    last: T | None = None
    while time.monotonic() < deadline:
        last = await probe()
        if last:
            return last
        await asyncio.sleep(interval_s)
    raise AssertionError(f"timed out after {timeout_s}s waiting for {what} (last: {last!r})")


@dataclass
class ServiceProcess:
    """One service run as `python -m services.<name>`, as in production."""

    name: str
    env: dict[str, str]
    port: int
    log_path: Path
    proc: subprocess.Popen[bytes] | None = field(default=None, repr=False)
    module: str = ""
    args: list[str] = field(default_factory=list)

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self.port}"

    def start(self) -> None:
        log = self.log_path.open("ab")
        self.proc = subprocess.Popen(
            [sys.executable, "-m", self.module or f"services.{self.name}", *self.args],
            cwd=REPO,
            env={**os.environ, **self.env},
            stdout=log,
            stderr=subprocess.STDOUT,
            start_new_session=True,
        )
        log.close()

    async def wait_ready(self, timeout_s: float = 60.0) -> None:
        async with httpx.AsyncClient(timeout=2.0) as client:

            async def ready() -> bool:
                if self.proc is not None and self.proc.poll() is not None:
                    raise AssertionError(
                        f"{self.name} exited with {self.proc.returncode}; see {self.log_path}"
                    )
                try:
                    return (await client.get(self.url + "/readyz")).status_code == 200
                except httpx.HTTPError:
                    return False

            await wait_until(ready, timeout_s=timeout_s, interval_s=0.1, what=f"{self.name} ready")

    def kill9(self) -> None:
        assert self.proc is not None
        os.killpg(self.proc.pid, signal.SIGKILL)
        self.proc.wait(10)

    def stop(self) -> None:
        if self.proc is None or self.proc.poll() is not None:
            return
        os.killpg(self.proc.pid, signal.SIGTERM)
        try:
            self.proc.wait(20)
        except subprocess.TimeoutExpired:
            os.killpg(self.proc.pid, signal.SIGKILL)
            self.proc.wait(10)


def token(
    secret: str, tenant: str, role: str = "admin", subject: str | None = None
) -> dict[str, str]:
    """Bearer headers; `subject` names the person (an agent's member id)."""
    jwt = issue_token(secret, tenant_id=tenant, role=role, subject=subject)
    return {"Authorization": "Bearer " + jwt}


def mention(
    external_id: str, text: str = "Loving the new sneakers!", **extra: Any
) -> dict[str, Any]:
    created = datetime(2026, 11, 1, tzinfo=UTC) + timedelta(seconds=hash(external_id) % 86_400)
    return {
        "external_id": external_id,
        "text": text,
        "author": {"id": "u-" + external_id, "handle": "@fan_" + external_id},
        "created_at": created.isoformat(),
        **extra,
    }


def signed(secret: str, body: bytes) -> dict[str, str]:
    digest = hmac.new(secret.encode(), body, hashlib.sha256).hexdigest()
    return {"X-SMM-Signature": "sha256=" + digest, "Content-Type": "application/json"}


async def post_mentions(
    client: httpx.AsyncClient,
    ingest_url: str,
    source: dict[str, Any],
    items: Sequence[dict[str, Any]],
) -> httpx.Response:
    body = json.dumps({"mentions": list(items)}).encode()
    return await client.post(
        f"{ingest_url}/api/v1/webhooks/generic/{source['id']}",
        content=body,
        headers=signed(source["signing_secret"], body),
    )


async def all_items(
    client: httpx.AsyncClient, inbox_url: str, headers: dict[str, str], **params: str
) -> list[dict[str, Any]]:
    """Every item the caller can see, following the cursor to the end."""
    items: list[dict[str, Any]] = []
    cursor: str | None = None
    while True:
        query: dict[str, str | int] = {**params, "limit": 200}
        if cursor:
            query["cursor"] = cursor
        response = await client.get(f"{inbox_url}/api/v1/items", params=query, headers=headers)
        assert response.status_code == 200, response.text
        page = response.json()
        items += page["items"]
        cursor = page["next_cursor"]
        if not cursor:
            return items


async def events_for(bootstrap: str, topic: str, tenant: str, count: int) -> list[dict[str, Any]]:
    """The first `count` events of `tenant` on `topic`, read from the start."""
    consumer = AIOKafkaConsumer(
        topic,
        bootstrap_servers=bootstrap,
        group_id=f"test-{uuid.uuid4()}",
        auto_offset_reset="earliest",
    )
    await consumer.start()
    found: list[dict[str, Any]] = []
    try:
        async with asyncio.timeout(30):
            while len(found) < count:
                for records in (await consumer.getmany(timeout_ms=500)).values():
                    for r in records:
                        try:
                            body = json.loads(r.value)
                        except ValueError:
                            continue  # another test's poison events share the topic
                        if isinstance(body, dict) and body.get("tenant_id") == tenant:
                            found.append(body)
    finally:
        await consumer.stop()
    return found
