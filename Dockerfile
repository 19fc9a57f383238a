# syntax=docker/dockerfile:1
#
# One image for the four OpenSMM services; the command picks the service:
#   docker run opensmm services.inbox
# (ENTRYPOINT is `python -m`, the default CMD is `services.ingest`.)

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

# Then the project itself (console script `smm` included).
COPY shared ./shared
COPY services ./services
COPY smmctl ./smmctl
COPY devstack ./devstack
RUN pip install --no-deps . \
    && mkdir -p /app \
    && cp -r shared services smmctl /app/ \
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
