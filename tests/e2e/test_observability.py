"""Every PromQL query of the pipeline dashboard and of the alert rules, run on a real Prometheus
(Debian's `prometheus` server) that scrapes this test session's four services while they carry
real traffic: mentions through ingest, a scheduled post and inbox replies through the publisher
to the sandbox network, a poison event into a dead-letter topic, a rejected webhook and SLA
breaches. A query that does not parse, fails to evaluate or returns no series fails the test."""

from __future__ import annotations

import contextlib
import json
import os
import re
import shutil
import subprocess
import time
import uuid
from collections.abc import AsyncIterator, Iterator
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import httpx
import pytest
from aiokafka import AIOKafkaProducer

from shared.auth import issue_token
from shared.topics import MENTIONS
from tests.conftest import SessionStack
from tests.support import (
    REPO,
    ServiceProcess,
    free_port,
    mention,
    post_mentions,
    token,
    wait_until,
)

Json = dict[str, Any]
DASHBOARD = REPO / "deploy/grafana/dashboards/pipeline.json"
RULES = REPO / "deploy/prometheus/rules/opensmm.yml"
# A trailing top-level comparison with a number: `… > 0.1`, `up == 0`.
THRESHOLD = re.compile(r"\s*(==|!=|>=|<=|>|<)\s*(bool\s+)?[-+]?[0-9.]+(e[-+]?[0-9]+)?\s*$")


def prometheus_binary() -> Path:
    """The server from Debian's `prometheus` package, extracted where .ci/run puts it."""
    cache = Path(os.environ.get("XDG_CACHE_HOME") or Path.home() / ".cache")
    tools = Path(os.environ.get("OPENSMM_TOOLS_DIR") or cache / "opensmm-deploy-tools")
    for candidate in (tools / "bin" / "prometheus", shutil.which("prometheus")):
        if candidate and Path(candidate).is_file() and os.access(candidate, os.X_OK):
            return Path(candidate)
    pytest.fail(
        f"no prometheus server in {tools}/bin or on PATH; make test installs it "
        "(devstack/install-prometheus.sh)"
    )


def strip_threshold(expr: str) -> str | None:
    """`expr` without its trailing alert threshold, or None when it has none."""
    match = THRESHOLD.search(expr)
    if match is None:
        return None
    head = expr[: match.start()]
    # Only a comparison outside every bracket is the alert's threshold.
    if head.count("(") != head.count(")") or head.count("{") != head.count("}"):
        return None
    return head.strip()


def dashboard_queries(path: Path) -> list[tuple[str, str]]:
    """(where, expr) for every query target of every panel, rows' nested panels included."""
    found: list[tuple[str, str]] = []

    def walk(panels: list[Json]) -> None:
        for panel in panels:
            for target in panel.get("targets", []):
                found.append((f"{path.name}: {panel['title']} [{target['refId']}]", target["expr"]))
            walk(panel.get("panels", []))

    walk(json.loads(path.read_text())["panels"])
    return found


def rule_queries(groups: list[Json]) -> tuple[list[tuple[str, str]], list[tuple[str, str]]]:
    """(where, expr) that must return series, and (where, expr) that must only evaluate, from the
    rules as the server loaded them: an alert's full expression is silent on a healthy system,
    its expression without the threshold is not."""
    must_have: list[tuple[str, str]] = []
    must_run: list[tuple[str, str]] = []
    for group in groups:
        for rule in group["rules"]:
            where = f"{RULES.name}: {rule['name']}"
            stripped = strip_threshold(rule["query"]) if rule["type"] == "alerting" else None
            if stripped is None:
                must_have.append((where, rule["query"]))
            else:
                must_run.append((where, rule["query"]))
                must_have.append((f"{where} without its threshold", stripped))
    return must_have, must_run


@dataclass
class Prometheus:
    url: str
    process: subprocess.Popen[bytes]
    log: Path

    async def query(self, http: httpx.AsyncClient, expr: str) -> tuple[list[Json], str | None]:
        """The instant vector for `expr` now, or the error Prometheus reports for it."""
        r = await http.get(f"{self.url}/api/v1/query", params={"query": expr})
        body = r.json()
        if r.status_code != 200 or body.get("status") != "success":
            return [], f"{body.get('errorType')}: {body.get('error')}"
        return list(body["data"]["result"]), None


@pytest.fixture
def prometheus(services: dict[str, ServiceProcess], tmp_path: Path) -> Iterator[Prometheus]:
    """Prometheus on a loopback port scraping the session's services every second, with the
    alert rules loaded; stopped (and waited for) at the end."""
    port = free_port()
    config = {
        "global": {"scrape_interval": "1s", "evaluation_interval": "1s"},
        "rule_files": [str(RULES)],
        "scrape_configs": [
            {
                "job_name": "opensmm",
                "scrape_timeout": "1s",
                "static_configs": [
                    {"targets": [f"127.0.0.1:{p.port}"], "labels": {"service": name}}
                    for name, p in services.items()
                ],
            }
        ],
    }
    # JSON is YAML: the server reads it as its usual configuration file.
    (tmp_path / "prometheus.yml").write_text(json.dumps(config))
    log = tmp_path / "prometheus.log"
    with log.open("wb") as out:
        process = subprocess.Popen(
            [
                str(prometheus_binary()),
                f"--config.file={tmp_path / 'prometheus.yml'}",
                f"--storage.tsdb.path={tmp_path / 'data'}",
                f"--web.listen-address=127.0.0.1:{port}",
                "--log.level=warn",
            ],
            stdout=out,
            stderr=subprocess.STDOUT,
            start_new_session=True,
        )
    try:
        yield Prometheus(f"http://127.0.0.1:{port}", process, log)
    finally:
        process.terminate()
        try:
            process.wait(15)
        except subprocess.TimeoutExpired:
            process.kill()
            process.wait(5)


@pytest.fixture
async def producer(stack: SessionStack) -> AsyncIterator[AIOKafkaProducer]:
    kafka = AIOKafkaProducer(bootstrap_servers=stack.bootstrap)
    await kafka.start()
    try:
        yield kafka
    finally:
        await kafka.stop()


def _ok(response: httpx.Response, *codes: int) -> Json:
    assert response.status_code in (codes or (200,)), response.text
    return dict(response.json())


async def _drive_traffic(
    http: httpx.AsyncClient,
    services: dict[str, ServiceProcess],
    sandbox: str,
    stack: SessionStack,
    tenant: str,
    source: Json,
    producer: AIOKafkaProducer,
) -> None:
    """What an operator's dashboards should show after a busy minute, and what they shows it."""
    admin = token(stack.auth_secret, tenant, "admin")
    ann = {
        "Authorization": "Bearer "
        + issue_token(stack.auth_secret, tenant_id=tenant, role="agent", subject="ann")
    }
    publisher, inbox = services["publisher"].url + "/api/v1", services["inbox"].url + "/api/v1"

    # The brand publishes on the sandbox network; a fan wrote to it there.
    brand = _ok(
        await http.post(
            f"{sandbox}/sandbox/accounts", json={"username": f"b_{uuid.uuid4().hex[:8]}"}
        ),
        200,
        201,
    )
    fan = _ok(
        await http.post(
            f"{sandbox}/sandbox/accounts", json={"username": f"f_{uuid.uuid4().hex[:8]}"}
        ),
        200,
        201,
    )
    status = _ok(
        await http.post(
            f"{sandbox}/api/v1/statuses",
            data={"status": "@brand where is my parcel?"},
            headers={"Authorization": f"Bearer {fan['access_token']}"},
        )
    )
    _ok(
        await http.put(
            f"{publisher}/brands/brand-a/publishing",
            json={"timezone": "UTC", "approval": "none"},
            headers=admin,
        )
    )
    channel = _ok(
        await http.post(
            f"{publisher}/channels",
            json={
                "brand_id": "brand-a",
                "network": "mastodon",
                "name": "Brand A on the sandbox",
                "config": {"api_base": sandbox, "account_id": brand["id"]},
                "credentials": {"access_token": brand["access_token"]},
            },
            headers=admin,
        ),
        201,
    )

    # A post scheduled two seconds ahead: the dispatcher publishes it and measures its lateness.
    post = _ok(
        await http.post(
            f"{publisher}/posts",
            json={
                "brand_id": "brand-a",
                "variants": [{"channel_id": channel["id"], "text": "Winter boots are here"}],
            },
            headers=admin,
        ),
        201,
    )
    _ok(await http.post(f"{publisher}/posts/{post['id']}/submit", headers=admin))
    at = (datetime.now(UTC) + timedelta(seconds=2)).isoformat()
    _ok(await http.post(f"{publisher}/posts/{post['id']}/schedule", json={"at": at}, headers=admin))

    # One agent, replies through the channel, and an SLA of three seconds so it runs out.
    fast = {"first_response_minutes": 0.05, "next_response_minutes": 0.05}
    _ok(
        await http.put(
            f"{inbox}/members/ann",
            json={"name": "ann", "languages": ["en"], "capacity": 10},
            headers=admin,
        ),
        200,
        201,
    )
    _ok(
        await http.put(
            f"{inbox}/teams/care",
            json={"name": "care", "strategy": "round_robin", "brands": None, "members": ["ann"]},
            headers=admin,
        ),
        200,
        201,
    )
    _ok(
        await http.put(
            f"{inbox}/brands/brand-a/settings",
            json={
                "sla": {"targets": {lvl: fast for lvl in ("urgent", "high", "normal", "low")}},
                "reply_channels": {"generic": channel["id"]},
            },
            headers=admin,
        )
    )

    # Mentions through the signed webhook; one delivery with a forged signature is refused.
    r = await post_mentions(
        http,
        services["ingest"].url,
        source,
        [mention(status["id"], "where is my parcel?"), mention("ghost-1", "a status that is gone")],
    )
    assert r.status_code == 202, r.text
    forged = await http.post(
        f"{services['ingest'].url}/api/v1/webhooks/generic/{source['id']}",
        content=b'{"mentions": []}',
        headers={"X-SMM-Signature": "sha256=" + "0" * 64, "Content-Type": "application/json"},
    )
    assert forged.status_code == 401, forged.text

    # An event no consumer can decode: the inbox parks it in the mentions DLQ.
    await producer.send_and_wait(stack.topic(MENTIONS.name), b"{not json", key=b"poison")

    async def arrived() -> dict[str, Json]:
        page = _ok(await http.get(f"{inbox}/items", params={"limit": 200}, headers=admin))
        items = {i["external_id"]: i for i in page["items"]}
        return items if {status["id"], "ghost-1"} <= items.keys() else {}

    items = await wait_until(arrived, timeout_s=20, what="both mentions in the inbox")
    # One reply the network takes, one to a status it does not know: published and failed.
    for ext in (status["id"], "ghost-1"):
        _ok(
            await http.post(
                f"{inbox}/items/{items[ext]['id']}/replies", json={"text": "On it!"}, headers=ann
            ),
            202,
        )

    async def settled() -> bool:
        for ext in (status["id"], "ghost-1"):
            item = _ok(await http.get(f"{inbox}/items/{items[ext]['id']}", headers=ann))
            if item["replies"][0]["status"] == "requested":
                return False
        return True

    async def published() -> bool:
        body = _ok(await http.get(f"{publisher}/posts/{post['id']}", headers=admin))
        return bool(body["status"] == "published")

    async def breached() -> bool:
        page = _ok(await http.get(f"{inbox}/items", params={"limit": 200}, headers=admin))
        return any(i["sla_state"] == "breached" for i in page["items"])

    await wait_until(settled, timeout_s=30, interval_s=0.2, what="both replies to settle")
    await wait_until(published, timeout_s=30, interval_s=0.2, what="the scheduled post")
    await wait_until(breached, timeout_s=30, interval_s=0.2, what="an SLA breach")


async def test_every_dashboard_and_alert_query_returns_series_on_a_real_prometheus(
    prometheus: Prometheus,
    services: dict[str, ServiceProcess],
    sandbox: str,
    http: httpx.AsyncClient,
    stack: SessionStack,
    tenant: str,
    source: Json,
    producer: AIOKafkaProducer,
) -> None:
    started = time.monotonic()

    async def ready() -> bool:
        try:
            return (await http.get(prometheus.url + "/-/ready")).status_code == 200
        except httpx.HTTPError:
            assert prometheus.process.poll() is None, prometheus.log.read_text()
            return False

    await wait_until(ready, timeout_s=20, interval_s=0.1, what="prometheus ready")
    await _drive_traffic(http, services, sandbox, stack, tenant, source, producer)

    # The rules as the server parsed them from the file, every one of them.
    rules = _ok(await http.get(prometheus.url + "/api/v1/rules"))
    groups = rules["data"]["groups"]
    written = re.findall(r"^\s*-\s*(?:alert|record):\s*(\S+)", RULES.read_text(), re.MULTILINE)
    assert sorted(r["name"] for g in groups for r in g["rules"]) == sorted(written)
    dashboard = dashboard_queries(DASHBOARD)
    must_have, must_run = rule_queries(groups)
    must_have = dashboard + must_have
    assert len(dashboard) >= 20  # the files were read, not skipped
    assert len(must_run) >= 7

    # Scrapes come every second and a rate needs two of them: poll, then name what is missing.
    results: dict[str, tuple[list[Json], str | None]] = {}

    async def every_query_answers() -> bool:
        for where, expr in must_have + must_run:
            if where in results and (results[where][0] or results[where][1]):
                continue  # has series, or is a syntax error that waiting will not fix
            results[where] = await prometheus.query(http, expr)
        pending = [w for w, _ in must_have if not results[w][0] and not results[w][1]]
        return not pending

    with contextlib.suppress(AssertionError):  # reported below, query by query
        await wait_until(every_query_answers, timeout_s=45, interval_s=1.0, what="every query")
    problems = [f"{w}: {results[w][1]}  ({e})" for w, e in must_have + must_run if results[w][1]]
    problems += [f"{w}: no series  ({e})" for w, e in must_have if not results[w][0]]
    assert not problems, "\n".join(problems)

    # The server evaluates every rule without error.
    rules = _ok(await http.get(prometheus.url + "/api/v1/rules"))
    loaded = [r for g in rules["data"]["groups"] for r in g["rules"]]
    assert all(r["health"] == "ok" and not r.get("lastError") for r in loaded), loaded

    # What the traffic did shows up in the numbers an operator reads.
    async def value(expr: str) -> float:
        series, error = await prometheus.query(http, expr)
        assert error is None, error
        return sum(float(s["value"][1]) for s in series)

    assert await value('up{job="opensmm"}') == 4
    assert await value('smm_ingest_webhook_rejections_total{reason="bad_signature"}') >= 1
    assert await value('smm_inbox_dlq_events_total{topic="smm.mentions.v1"}') >= 1
    assert await value('smm_inbox_events_failed_total{reason="decode"}') >= 1
    assert (
        await value(
            'smm_publisher_publish_outcomes_total{network="mastodon",kind="post",outcome="published"}'
        )
        >= 1
    )
    assert (
        await value(
            'smm_publisher_publish_outcomes_total{network="mastodon",kind="reply",outcome="failed"}'
        )
        >= 1
    )
    assert await value('smm_publisher_scheduler_lateness_seconds_count{kind="post"}') >= 1
    assert await value("smm_inbox_sla_breaches_total") >= 1
    lag, _ = await prometheus.query(
        http, 'smm_inbox_consumer_lag_records{group="opensmm.inbox.mentions"}'
    )
    assert [s["metric"]["topic"] for s in lag] == ["smm.mentions.v1"]
    assert time.monotonic() - started < 110
