"""Channel and source credentials and webhook secrets are encrypted at rest: none of the
plaintexts given to the services is in a dump of the database or in any service log."""

from __future__ import annotations

import asyncio

from tests.conftest import SessionStack
from tests.security.world import World
from tests.support import mention, post_mentions

PG_DUMP = "/usr/lib/postgresql/15/bin/pg_dump"


async def test_no_plaintext_secret_in_a_database_dump_or_a_log(
    world: World, stack: SessionStack
) -> None:
    # The stored signing secret works, so it is there (sealed), not lost.
    source = {"id": world.ids["source"], "signing_secret": world.ids["signing_secret"]}
    delivered = await post_mentions(
        world.http, world.urls["ingest"], source, [mention("at-rest", "stored sealed")]
    )
    assert delivered.status_code == 202, delivered.text
    dump = await asyncio.create_subprocess_exec(
        PG_DUMP,
        "--no-owner",
        "--data-only",
        stack.admin_dsn(),
        stdout=asyncio.subprocess.PIPE,
        stderr=asyncio.subprocess.PIPE,
    )
    out, err = await dump.communicate()
    assert dump.returncode == 0, err.decode()
    text = out.decode()
    assert world.ids["channel"] in text  # the rows with sealed secrets are in the dump
    assert world.ids["pull_source"] in text
    assert [s for s in world.secrets if s in text] == [], "plaintext secret in the database"
    logs = {p.name: p.read_text(errors="replace") for p in stack.logs.iterdir() if p.is_file()}
    assert logs, "no service logs to check"
    leaked = [(name, s) for name, log in logs.items() for s in world.secrets if s in log]
    assert leaked == [], "plaintext secret in a service log"
