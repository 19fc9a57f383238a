"""Serve an ASGI app on a free loopback port for the duration of a test."""

from __future__ import annotations

import asyncio
import contextlib
import socket
from collections.abc import AsyncIterator
from typing import Any

import uvicorn

from tests.support import wait_until


@contextlib.asynccontextmanager
async def serve(app: Any) -> AsyncIterator[str]:
    """Yield the base URL (http://127.0.0.1:PORT) of `app` running in this event loop."""
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        port = int(probe.getsockname()[1])
    server = uvicorn.Server(
        uvicorn.Config(app, host="127.0.0.1", port=port, log_level="warning", lifespan="off")
    )
    task = asyncio.create_task(server.serve())

    async def started() -> bool:
        if task.done():
            task.result()  # the server failed to start: raise its error
        return bool(server.started)

    try:
        await wait_until(started, timeout_s=10, interval_s=0.01, what="the fake server to start")
        yield f"http://127.0.0.1:{port}"
    finally:
        server.should_exit = True
        await task
