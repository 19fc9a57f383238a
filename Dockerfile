# syntax=docker/dockerfile:1
#
# One image for the four OpenSMM services; the command picks the service:
#   docker run opensmm services.inbox
# (ENTRYPOINT is `python -m`, the default CMD is `services.ingest`). The same image runs the
# migration step (`opensmm_migrate`) and the sandbox network (`devstack.sandbox`).

ARG PYTHON_IMAGE=python:3.11-slim

# ---------------------------------------------------------------------------
# builder: resolve and install dependencies + the package into a venv
# ---------------------------------------------------------------------------
FROM ${PYTHON_IMAGE} AS builder

ENV PIP_NO_CACHE_DIR=1 \
    PIP_DISABLE_PIP_VERSION_CHECK=1 \
    PYTHONDONTWRITEBYTECODE=1

RUN python -m venv /opt/venv
ENV PATH=/opt/venv/bin:$PATH

WORKDIR /src

# Dependencies first (their own layer): only pyproject.toml decides it.
COPY pyproject.toml ./
RUN python -c "import tomllib; print('\n'.join(tomllib.load(open('pyproject.toml', 'rb'))['project']['dependencies']))" \
        > /tmp/requirements.txt \
    && pip install --upgrade pip \
    && pip install -r /tmp/requirements.txt

# Then the project itself (console script `smm` included; devstack brings the sandbox network
# that compose's `demo` profile runs).
COPY shared ./shared
COPY services ./services
COPY smmctl ./smmctl
COPY devstack ./devstack

# The migration step (compose service `migrate`, k8s Job `opensmm-migrate`):
#   docker run --env SMM_<SERVICE>_DATABASE_URL=... opensmm opensmm_migrate [service ...]
# applies each service's pending migrations with that service's role, then exits.
# .ci/validate-deploy lints it and runs it twice against a throwaway PostgreSQL.
COPY <<'EOF' /app/opensmm_migrate.py
"""Apply every OpenSMM service's pending schema migrations, then exit (the migration step).

Each schema is migrated with its own service's role (`SMM_<SERVICE>_DATABASE_URL`, else
`SMM_DATABASE_URL`); the advisory lock in shared.migrations makes concurrent runs safe.
"""

from __future__ import annotations

import asyncio
import importlib.resources
import sys
from pathlib import Path

import asyncpg

from shared.migrations import migrate
from shared.settings import SERVICE_NAMES, SETTINGS_CLASSES, PlatformSettings


async def migrate_services(services: list[str]) -> None:
    platform = PlatformSettings()
    for service in SERVICE_NAMES:
        if service not in services:
            continue
        url = SETTINGS_CLASSES[service]().database_url or platform.database_url
        if url is None:
            raise SystemExit(f"opensmm_migrate: set SMM_{service.upper()}_DATABASE_URL")
        folder = Path(str(importlib.resources.files(f"services.{service}") / "migrations"))
        conn = await asyncpg.connect(url.get_secret_value(), timeout=30)
        try:
            applied = await migrate(conn, service, folder)
        finally:
            await conn.close()
        print(f"{service}: {', '.join(applied) or 'up to date'}", flush=True)


def main() -> None:
    services = sys.argv[1:] or list(SERVICE_NAMES)
    unknown = sorted(set(services) - set(SERVICE_NAMES))
    if unknown:
        raise SystemExit(f"opensmm_migrate: unknown service(s) {unknown}")
    asyncio.run(migrate_services(services))


if __name__ == "__main__":
    main()
EOF

RUN pip install --no-deps . \
    && mkdir -p /app \
    && cp -r shared services smmctl devstack /app/ \
    && python -m compileall -q /app

# ---------------------------------------------------------------------------
# runtime: slim base, the venv and the sources, nothing else
# ---------------------------------------------------------------------------
FROM ${PYTHON_IMAGE} AS runtime

LABEL org.opencontainers.image.title="opensmm" \
      org.opencontainers.image.description="OpenSMM services: ingest, publisher, inbox, metrics" \
      org.opencontainers.image.licenses="Apache-2.0"

RUN groupadd --system --gid 10001 smm \
    && useradd --system --uid 10001 --gid 10001 --no-create-home \
        --home-dir /nonexistent --shell /usr/sbin/nologin smm

COPY --from=builder /opt/venv /opt/venv
COPY --from=builder /app /app

# The read-only root filesystem in k8s means no bytecode writes at run time
# (sources are precompiled above). Services bind all interfaces in a container.
ENV PATH=/opt/venv/bin:$PATH \
    PYTHONUNBUFFERED=1 \
    PYTHONDONTWRITEBYTECODE=1 \
    SMM_LOG_FORMAT=json \
    SMM_INGEST_HTTP_HOST=0.0.0.0 \
    SMM_PUBLISHER_HTTP_HOST=0.0.0.0 \
    SMM_INBOX_HTTP_HOST=0.0.0.0 \
    SMM_METRICS_HTTP_HOST=0.0.0.0 \
    PORT=8001

WORKDIR /app
USER 10001:10001

EXPOSE 8001 8002 8003 8004

# PORT must name the port of the service the container runs (compose sets it
# per service); there is no curl in slim images, so python does the GET.
HEALTHCHECK --interval=15s --timeout=5s --start-period=30s --retries=3 \
    CMD ["python", "-c", "import os, urllib.request; urllib.request.urlopen('http://127.0.0.1:' + os.environ.get('PORT', '8001') + '/healthz', timeout=4)"]

ENTRYPOINT ["python", "-m"]
CMD ["services.ingest"]
