"""The permission table names exactly the operations the services serve: a route added later
without a row here fails, so every route is in the tenant-isolation and role matrices."""

from __future__ import annotations

from tests.security.operations import OPERATIONS
from tests.security.world import World


async def test_table_covers_exactly_the_openapi_operations(world: World) -> None:
    served: set[tuple[str, str, str]] = set()
    for service, url in world.urls.items():
        spec = (await world.http.get(url + "/api/v1/openapi.json")).json()
        for path, methods in spec["paths"].items():
            for method in methods:
                served.add((service, method.upper(), path.removeprefix("/api/v1")))
    table = {op.key for op in OPERATIONS}
    assert sorted(served - table) == [], "operations without a row in tests/security/operations.py"
    assert sorted(table - served) == [], "rows for operations the services no longer serve"
