"""Hypothesis-fuzzed webhook bodies, headers, query strings and signatures for every webhook
connector: each step either accepts or refuses the way ingest's API turns into a 4xx, never
another exception; on the running ingest, forged deliveries get a 4xx and store nothing."""

from __future__ import annotations

import contextlib
import copy
import hashlib
import hmac
import json
import uuid
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import asyncpg
import httpx
import pytest
from hypothesis import HealthCheck, Phase, given, settings
from hypothesis import strategies as st
from pydantic import BaseModel, ValidationError

from services.ingest.connectors.base import (
    BadConfig,
    SignatureInvalid,
    WebhookConnector,
    WebhookReply,
    WebhookRequest,
    WebhookResult,
)
from services.ingest.connectors.registry import webhook_connectors
from tests.conftest import SessionStack
from tests.support import ServiceProcess, mention, token

FIXTURES = Path(__file__).parents[1] / "fixtures"
FUZZ = settings(
    max_examples=100,
    deadline=None,
    derandomize=True,
    database=None,
    phases=[Phase.explicit, Phase.generate],
    suppress_health_check=[HealthCheck.too_slow, HealthCheck.data_too_large],
)


def _fixture(path: str, key: str) -> list[Any]:
    return list(json.loads((FIXTURES / path).read_text())[key].values())


@dataclass(frozen=True)
class Network:
    """A webhook connector with a source's config and secrets, and real deliveries to mutate."""

    name: str
    config: dict[str, Any]
    secrets: dict[str, Any]
    samples: list[Any]
    # What makes a delivery authentic: a header computed from the body, or a secret inside it.
    signature_header: str

    def sign(self, body: bytes) -> dict[str, str]:
        if self.name == "generic":
            digest = hmac.new(self.secrets["signing_secret"].encode(), body, hashlib.sha256)
            return {self.signature_header: "sha256=" + digest.hexdigest()}
        if self.name == "meta":
            digest = hmac.new(self.secrets["app_secret"].encode(), body, hashlib.sha256)
            return {self.signature_header: "sha256=" + digest.hexdigest()}
        if self.name == "telegram":
            return {self.signature_header: self.secrets["secret_token"]}
        return {}  # vk: the secret travels in the body


VK = json.loads((FIXTURES / "vk/callback_events.json").read_text())
NETWORKS = {
    "generic": Network(
        "generic",
        {},
        {"signing_secret": "generic-secret"},
        [{"mentions": [mention("g-1"), mention("g-2", in_reply_to="g-1")]}],
        "x-smm-signature",
    ),
    "meta": Network(
        "meta",
        {},
        {"app_secret": "meta-secret", "verify_token": "meta-verify"},
        _fixture("meta/page_feed.json", "deliveries")
        + _fixture("meta/instagram.json", "deliveries"),
        "x-hub-signature-256",
    ),
    "telegram": Network(
        "telegram",
        {},
        {"secret_token": "tg-secret"},
        _fixture("telegram/updates.json", "updates"),
        "x-telegram-bot-api-secret-token",
    ),
    "vk": Network(
        "vk",
        {"group_id": VK["group_id"], "confirmation_code": "d8f2a1c0"},
        {"secret": "vk-secret"},
        [{**event, "secret": "vk-secret"} for event in VK["events"].values()],
        "",
    ),
}
CONNECTORS = webhook_connectors()


def test_every_webhook_connector_is_fuzzed() -> None:
    assert set(NETWORKS) == set(CONNECTORS)


# --- strategies ----------------------------------------------------------------------------------

_LEAVES = st.one_of(
    st.none(),
    st.booleans(),
    st.integers(),
    st.sampled_from([0, -1, 2**31, 2**63, 10**20, -(10**20), 1_700_000_000, 1_700_000_000_000]),
    st.floats(),  # NaN and infinities too: Python's json writes and reads them
    st.text(max_size=20),
    st.sampled_from(["", "2026-11-01T10:00:00Z", "2026-11-01T10:00:00", "9999-99-99", "comment"]),
)
_JSON = st.recursive(
    _LEAVES,
    lambda inner: (
        st.lists(inner, max_size=4) | st.dictionaries(st.text(max_size=8), inner, max_size=4)
    ),
    max_leaves=12,
)


def _paths(value: Any, prefix: tuple[Any, ...] = ()) -> Iterator[tuple[Any, ...]]:
    yield prefix
    if isinstance(value, dict):
        for key, child in value.items():
            yield from _paths(child, (*prefix, key))
    elif isinstance(value, list):
        for index, child in enumerate(value):
            yield from _paths(child, (*prefix, index))


@st.composite
def _mutated(draw: st.DrawFn, samples: list[Any]) -> Any:
    """A real delivery with a few values replaced by arbitrary JSON or removed: deep enough to
    reach the connector's parsing of each field, wrong enough to break it."""
    document = copy.deepcopy(draw(st.sampled_from(samples)))
    for _ in range(draw(st.integers(1, 4))):
        path = draw(st.sampled_from(list(_paths(document))))
        if not path:
            document = draw(_JSON)
            continue
        parent = document
        for step in path[:-1]:
            parent = parent[step]
        if isinstance(parent, dict) and draw(st.booleans()):
            del parent[path[-1]]
        else:
            parent[path[-1]] = draw(_JSON)
    return document


def _bodies(network: Network) -> st.SearchStrategy[bytes]:
    return st.one_of(
        st.binary(max_size=200),
        _JSON.map(lambda v: json.dumps(v).encode()),
        _mutated(network.samples).map(lambda v: json.dumps(v).encode()),
        _mutated(network.samples).map(lambda v: json.dumps(v).encode()),
    )


# What HTTP can carry: token names, printable ASCII values.
_NAME = st.text(alphabet="abcdefghijklmnopqrstuvwxyz0123456789-", min_size=1, max_size=10)
_VALUE = st.text(alphabet=st.characters(min_codepoint=33, max_codepoint=126), max_size=80)


def _headers(network: Network) -> st.SearchStrategy[dict[str, str]]:
    names = [n for n in (network.signature_header, "x-smm-timestamp") if n]
    return st.dictionaries(
        st.sampled_from(names) | _NAME,
        _VALUE | st.sampled_from(["sha256=", "sha256=" + "0" * 64, "sha1=ab", "1700000000"]),
        max_size=3,
    )


def _queries() -> st.SearchStrategy[dict[str, str]]:
    names = st.sampled_from(["hub.mode", "hub.verify_token", "hub.challenge"]) | st.text(max_size=8)
    values = st.sampled_from(["subscribe", "meta-verify", ""]) | st.text(max_size=20)
    return st.dictionaries(names, values, max_size=3)


# --- the contract ingest's API relies on ---------------------------------------------------------


def _config(connector: WebhookConnector, network: Network) -> BaseModel:
    return connector.config_model.model_validate(network.config)


@pytest.mark.parametrize("name", sorted(NETWORKS))
def test_verify_refuses_only_with_signature_invalid(name: str) -> None:
    network, connector = NETWORKS[name], CONNECTORS[name]
    config = _config(connector, network)

    @FUZZ
    @given(body=_bodies(network), headers=_headers(network))
    def check(body: bytes, headers: dict[str, str]) -> None:
        request = WebhookRequest("POST", headers, {}, body)
        with contextlib.suppress(SignatureInvalid):
            connector.verify(request, config, network.secrets)
        if network.signature_header:
            # The same body signed with the source's secret always verifies ...
            # (Without X-SMM-Timestamp, which the generic signature would have to cover.)
            unsigned = {k: v for k, v in headers.items() if k != "x-smm-timestamp"}
            signed = WebhookRequest("POST", {**unsigned, **network.sign(body)}, {}, body)
            connector.verify(signed, config, network.secrets)
            # ... and with another secret never does.
            with pytest.raises(SignatureInvalid):
                connector.verify(signed, config, {k: "other" for k in network.secrets})

    check()


@pytest.mark.parametrize("name", sorted(NETWORKS))
def test_handshake_answers_passes_or_refuses_as_ingest_expects(name: str) -> None:
    """SignatureInvalid (401) for a forged handshake, BadConfig (409) for a source that cannot
    answer one; nothing else."""
    network, connector = NETWORKS[name], CONNECTORS[name]
    configs = [_config(connector, network), connector.config_model()]  # configured, or bare

    @FUZZ
    @given(
        method=st.sampled_from(["GET", "POST"]),
        body=_bodies(network),
        query=_queries(),
        config=st.sampled_from(configs),
    )
    def check(method: str, body: bytes, query: dict[str, str], config: BaseModel) -> None:
        request = WebhookRequest(method, {}, query, body)
        try:
            reply = connector.handshake(request, config, network.secrets)
        except (SignatureInvalid, BadConfig):
            return
        assert reply is None or isinstance(reply, WebhookReply)

    check()


@pytest.mark.parametrize("name", sorted(NETWORKS))
def test_parse_returns_mentions_or_a_validation_error(name: str) -> None:
    network, connector = NETWORKS[name], CONNECTORS[name]
    config = _config(connector, network)

    @FUZZ
    @given(body=_bodies(network))
    def check(body: bytes) -> None:
        request = WebhookRequest("POST", network.sign(body), {}, body)
        try:
            result = connector.parse(request, config)
        except ValidationError:
            return  # ingest answers 422 naming the field
        assert isinstance(result, WebhookResult)
        for found in result.mentions:
            assert found.external_id
            assert found.created_at.utcoffset() is not None

    check()


# --- on the running ingest -----------------------------------------------------------------------


async def _stored(admin_db: asyncpg.Connection, tenant: str, source_id: str) -> int:
    matches = await admin_db.fetchval(
        "SELECT count(*) FROM ingest.item_matches WHERE tenant_id = $1", tenant
    )
    items = await admin_db.fetchval(
        "SELECT count(*) FROM ingest.items WHERE first_source_id = $1", uuid.UUID(source_id)
    )
    events = await admin_db.fetchval(
        "SELECT count(*) FROM ingest.outbox WHERE event->>'tenant_id' = $1", tenant
    )
    return int(matches) + int(items) + int(events)


@pytest.mark.parametrize("name", sorted(NETWORKS))
async def test_forged_deliveries_are_4xx_and_store_nothing(
    services: dict[str, ServiceProcess],
    http: httpx.AsyncClient,
    stack: SessionStack,
    admin_db: asyncpg.Connection,
    name: str,
) -> None:
    network = NETWORKS[name]
    tenant = "wh-" + uuid.uuid4().hex[:10]
    admin = token(stack.auth_secret, tenant, "admin")
    ingest = services["ingest"].url
    brand = await http.post(f"{ingest}/api/v1/brands", json={"id": "b", "name": "B"}, headers=admin)
    assert brand.status_code == 201, brand.text
    body: dict[str, Any] = {"brand_id": "b"}
    if name != "generic":
        body |= {"kind": "webhook", "network": name, "config": network.config}
        body["secrets"] = network.secrets
    created = await http.post(f"{ingest}/api/v1/sources", json=body, headers=admin)
    assert created.status_code == 201, created.text
    source = created.json()
    if name == "generic":
        network = Network(
            name,
            {},
            {"signing_secret": source["signing_secret"]},
            network.samples,
            "x-smm-signature",
        )
    url = ingest + source["webhook_path"]

    # Drawn up front (Hypothesis runs synchronous code); forged: no header fits the body.
    deliveries: list[tuple[bytes, dict[str, str]]] = []
    handshakes: list[dict[str, str]] = []

    @settings(FUZZ, max_examples=30)
    @given(body=_bodies(network), headers=_headers(network), query=_queries())
    def draw(body: bytes, headers: dict[str, str], query: dict[str, str]) -> None:
        handshakes.append(query)
        if name == "vk":
            # VK's secret is inside the body: forge it by dropping or changing it.
            try:
                event = json.loads(body)
            except ValueError:
                event = None
            if isinstance(event, dict) and event.get("secret") == network.secrets["secret"]:
                event["secret"] = "guess"
                body = json.dumps(event).encode()
        elif headers.get(network.signature_header) == network.sign(body)[network.signature_header]:
            return
        deliveries.append((body, headers))

    draw()
    assert len(deliveries) >= 20
    wrong = []
    for raw, headers in deliveries:
        response = await http.post(url, content=raw, headers=headers)
        # VK confirms its server address before a secret exists, so an unsigned confirmation
        # gets the code (and stores nothing); everything else forged is refused.
        confirmed = name == "vk" and response.text == network.config["confirmation_code"]
        if not (400 <= response.status_code < 500 or confirmed):
            wrong.append(f"{response.status_code} {response.text[:120]} for {raw[:120]!r}")
    for query in handshakes:
        response = await http.get(url, params=query)
        # Only Meta's subscription check with the right verify token is answered.
        genuine = (
            name == "meta"
            and query.get("hub.mode") == "subscribe"
            and query.get("hub.verify_token") == network.secrets["verify_token"]
        )
        if not (400 <= response.status_code < 500 or (genuine and response.status_code == 200)):
            wrong.append(f"GET {response.status_code} {response.text[:120]} for {query!r}")
    assert not wrong, "\n".join(wrong)
    assert await _stored(admin_db, tenant, source["id"]) == 0


async def test_handshake_the_source_cannot_answer_is_409_not_500(
    services: dict[str, ServiceProcess], http: httpx.AsyncClient, stack: SessionStack
) -> None:
    """A VK confirmation for a source set up without its confirmation code (the fuzzing found
    this was a 500)."""
    admin = token(stack.auth_secret, "wh-" + uuid.uuid4().hex[:10], "admin")
    ingest = services["ingest"].url + "/api/v1"
    brand = await http.post(f"{ingest}/brands", json={"id": "b", "name": "B"}, headers=admin)
    assert brand.status_code == 201, brand.text
    created = await http.post(
        f"{ingest}/sources",
        json={"brand_id": "b", "kind": "webhook", "network": "vk", "secrets": {"secret": "s"}},
        headers=admin,
    )
    assert created.status_code == 201, created.text
    url = services["ingest"].url + created.json()["webhook_path"]
    response = await http.post(url, json=VK["events"]["confirmation"])
    assert response.status_code == 409, response.text
    assert response.json()["error"] == "source_misconfigured"
