"""The sandbox network behaves like the Mastodon API it stands in for: idempotent posting, id
paging with Link headers, rate limits, injected faults, and deterministic made-up traffic."""

from __future__ import annotations

import re
import time
from collections.abc import AsyncIterator
from typing import Any

import httpx
import pytest
from typer.testing import CliRunner

from devstack.sandbox import SandboxConfig, TrafficProfile, create_app
from devstack.sandbox.__main__ import cli as sandbox_cli
from devstack.sandbox.network import Network, Page
from devstack.sandbox.traffic import TrafficGenerator, webhook_mentions
from services.ingest.connectors.generic import WebhookBody
from tests.fakes.server import serve
from tests.support import wait_until

LINK = re.compile(r'<([^>]+)>; rel="(next|prev)"')


class Client:
    """Calls to one sandbox app, as admin or as an account."""

    def __init__(self, http: httpx.AsyncClient) -> None:
        self.http = http

    async def account(self, username: str, **extra: Any) -> tuple[str, dict[str, str]]:
        created = await self.http.post("/sandbox/accounts", json={"username": username, **extra})
        created.raise_for_status()
        body = created.json()
        return body["id"], {"Authorization": f"Bearer {body['access_token']}"}

    async def post(self, auth: dict[str, str], text: str, **extra: Any) -> httpx.Response:
        return await self.http.post(
            "/api/v1/statuses", json={"status": text, **extra}, headers=auth
        )

    async def stats(self) -> dict[str, Any]:
        body: dict[str, Any] = (await self.http.get("/sandbox/stats")).json()
        return body


@pytest.fixture
async def sandbox() -> AsyncIterator[Client]:
    transport = httpx.ASGITransport(app=create_app(SandboxConfig()), client=("10.0.0.7", 4000))
    async with httpx.AsyncClient(transport=transport, base_url="http://sandbox.test") as http:
        yield Client(http)


def links(response: httpx.Response) -> dict[str, str]:
    return {rel: url for url, rel in LINK.findall(response.headers.get("link", ""))}


async def test_an_idempotency_key_replays_the_first_status_for_that_account(
    sandbox: Client,
) -> None:
    kate_id, kate = await sandbox.account("kate")
    _, max_ = await sandbox.account("max")
    key = {"Idempotency-Key": "post-42-attempt"}

    first = await sandbox.post(kate | key, "Spring collection is live!")
    retry = await sandbox.post(kate | key, "Spring collection is live!")
    other_account = await sandbox.post(max_ | key, "Spring collection is live!")

    assert first.status_code == retry.status_code == 200
    assert retry.json()["id"] == first.json()["id"]
    assert other_account.json()["id"] != first.json()["id"]
    posted = (await sandbox.http.get(f"/sandbox/accounts/{kate_id}/statuses")).json()
    assert [s["id"] for s in posted] == [first.json()["id"]]
    stats = await sandbox.stats()
    assert stats["accounts"][kate_id]["statuses"] == 1
    assert stats["accounts"][kate_id]["idempotent_replays"] == 1
    assert stats["duplicates_by_idempotency_key"] == 0


async def test_statuses_render_as_mastodon_entities(sandbox: Client) -> None:
    brand_id, _ = await sandbox.account("demo_sneakers", display_name="Demo Sneakers")
    _, kate = await sandbox.account("kate", followers_count=1200)
    posted = await sandbox.post(
        kate, 'Hi @demo_sneakers <3 & "thanks" #DemoSneakers', language="en"
    )

    status = posted.json()
    assert re.fullmatch(r"\d+", status["id"])
    assert status["content"].startswith('<p>Hi <span class="h-card"')
    assert "&lt;3 &amp; &quot;thanks&quot;" in status["content"]
    assert 'class="mention hashtag"' in status["content"]
    assert status["mentions"] == [
        {
            "id": brand_id,
            "username": "demo_sneakers",
            "url": "http://sandbox.test/@demo_sneakers",
            "acct": "demo_sneakers",
        }
    ]
    assert status["tags"] == [
        {"name": "demosneakers", "url": "http://sandbox.test/tags/demosneakers"}
    ]
    assert status["account"]["followers_count"] == 1200
    assert status["account"]["bot"] is False
    assert re.fullmatch(r"\d{4}-\d\d-\d\dT\d\d:\d\d:\d\d\.\d{3}Z", status["created_at"])
    assert (status["language"], status["visibility"], status["edited_at"]) == ("en", "public", None)
    assert status["media_attachments"] == []


async def test_posting_validates_like_mastodon(sandbox: Client) -> None:
    _, kate = await sandbox.account("kate")
    blank = await sandbox.post(kate, "   ")
    too_long = await sandbox.post(kate, "x" * 501)
    bad_parent = await sandbox.post(kate, "hi", in_reply_to_id="12345")
    no_token = await sandbox.http.post("/api/v1/statuses", json={"status": "hi"})

    assert (blank.status_code, blank.json()) == (
        422,
        {"error": "Validation failed: Text can't be blank"},
    )
    assert too_long.status_code == 422
    assert bad_parent.status_code == 404
    assert no_token.status_code == 401
    assert no_token.json() == {"error": "The access token is invalid"}


async def test_media_ids_attach_the_accounts_uploads(sandbox: Client) -> None:
    kate_id, kate = await sandbox.account("kate")
    upload = await sandbox.http.post(
        f"/sandbox/accounts/{kate_id}/media", json={"description": "the shoes"}
    )
    media_id = upload.json()["id"]

    posted = await sandbox.http.post(
        "/api/v1/statuses",
        data={"status": "look", "media_ids[]": [media_id]},
        headers=kate,
    )
    reused = await sandbox.post(kate, "again", media_ids=[media_id])

    assert [m["id"] for m in posted.json()["media_attachments"]] == [media_id]
    assert posted.json()["media_attachments"][0]["description"] == "the shoes"
    assert reused.status_code == 422


JPEG = b"\xff\xd8\xff\xe0\r\n--" + bytes(range(256))  # binary, with CRLF and dashes


async def upload(
    sandbox: Client,
    auth: dict[str, str],
    content_type: str = "image/jpeg",
    description: str | None = None,
    data: bytes = JPEG,
) -> httpx.Response:
    """`POST /api/v2/media` as a Mastodon client sends it: multipart/form-data."""
    return await sandbox.http.post(
        "/api/v2/media",
        files={"file": ("upload", data, content_type)},
        data={"description": description} if description is not None else {},
        headers=auth,
    )


async def test_v2_media_takes_an_image_ready_to_attach_with_its_description(
    sandbox: Client,
) -> None:
    _, kate = await sandbox.account("kate")

    uploaded = await upload(sandbox, kate, description="Red trail shoes, side view")
    posted = await sandbox.post(kate, "", media_ids=[uploaded.json()["id"]])

    assert uploaded.status_code == 200
    assert uploaded.json()["type"] == "image"
    assert uploaded.json()["url"].startswith("http://sandbox.test/")
    assert posted.status_code == 200
    [attachment] = posted.json()["media_attachments"]
    assert attachment["id"] == uploaded.json()["id"]
    assert attachment["description"] == "Red trail shoes, side view"


async def test_a_video_is_processing_until_polled_and_cannot_be_attached_before(
    sandbox: Client,
) -> None:
    _, kate = await sandbox.account("kate")
    _, max_ = await sandbox.account("max")

    uploaded = await upload(sandbox, kate, "video/mp4")
    media_id = uploaded.json()["id"]
    too_early = await sandbox.post(kate, "Teaser", media_ids=[media_id])
    someone_elses = await sandbox.http.get(f"/api/v1/media/{media_id}", headers=max_)
    processing = await sandbox.http.get(f"/api/v1/media/{media_id}", headers=kate)
    done = await sandbox.http.get(f"/api/v1/media/{media_id}", headers=kate)
    posted = await sandbox.post(kate, "Teaser", media_ids=[media_id])
    after_attaching = await sandbox.http.get(f"/api/v1/media/{media_id}", headers=kate)

    assert uploaded.status_code == 202
    assert uploaded.json()["url"] is None
    assert too_early.status_code == 422
    assert "not finished processing" in too_early.json()["error"]
    assert someone_elses.status_code == 404
    assert processing.status_code == 206
    assert processing.json()["url"] is None
    assert done.status_code == 200
    assert done.json()["url"] is not None
    assert [m["type"] for m in posted.json()["media_attachments"]] == ["video"]
    assert after_attaching.status_code == 404  # only unattached uploads can be looked up


async def test_v2_media_refuses_what_mastodon_refuses(sandbox: Client) -> None:
    _, kate = await sandbox.account("kate")

    no_file = await sandbox.http.post("/api/v2/media", data={"description": "x"}, headers=kate)
    empty = await upload(sandbox, kate, data=b"")
    pdf = await upload(sandbox, kate, "application/pdf")
    long_alt = await upload(sandbox, kate, description="x" * 1501)
    no_token = await upload(sandbox, {})

    assert no_file.status_code == empty.status_code == 422
    assert no_file.json() == {"error": "Validation failed: File can't be blank"}
    assert pdf.status_code == 422
    assert pdf.json() == {"error": "Validation failed: File content type is invalid"}
    assert long_alt.status_code == 422
    assert no_token.status_code == 401


async def test_a_status_can_be_posted_as_multipart_form_data(sandbox: Client) -> None:
    _, kate = await sandbox.account("kate")
    media_id = (await upload(sandbox, kate, description="The shop")).json()["id"]

    # Clients that upload with multipart often post the status the same way.
    posted = await sandbox.http.post(
        "/api/v1/statuses",
        data={"status": "Open today", "media_ids[]": [media_id]},
        files={"unused": ("none.txt", b"", "text/plain")},  # forces multipart/form-data
        headers=kate,
    )

    assert posted.status_code == 200
    assert posted.json()["content"] == "<p>Open today</p>"
    assert [m["description"] for m in posted.json()["media_attachments"]] == ["The shop"]


async def test_notifications_page_by_id_with_link_headers(sandbox: Client) -> None:
    _, brand = await sandbox.account("demo_sneakers")
    _, kate = await sandbox.account("kate")
    ids = []
    for i in range(7):
        ids.append((await sandbox.post(kate, f"@demo_sneakers hello {i}")).json()["id"])
    await sandbox.post(kate, "no mention here")

    first = await sandbox.http.get(
        "/api/v1/notifications", params={"limit": 3, "types[]": "mention"}, headers=brand
    )
    seen = [n["status"]["id"] for n in first.json()]
    page = first
    while "next" in links(page) and page.json():
        page = await sandbox.http.get(links(page)["next"], headers=brand)
        seen += [n["status"]["id"] for n in page.json()]
    newer = await sandbox.http.get(links(first)["prev"], headers=brand)
    late = (await sandbox.post(kate, "@demo_sneakers late")).json()["id"]
    after = await sandbox.http.get(links(first)["prev"], headers=brand)

    assert seen == ids[::-1]
    assert "types%5B%5D=mention" in links(first)["next"]
    assert "limit=3" in links(first)["next"]
    assert newer.json() == []
    assert "link" not in newer.headers
    assert [n["status"]["id"] for n in after.json()] == [late]
    assert {n["type"] for n in first.json()} == {"mention"}


async def test_min_id_pages_forward_and_since_id_takes_the_newest(sandbox: Client) -> None:
    _, brand = await sandbox.account("demo_sneakers")
    _, kate = await sandbox.account("kate")
    for i in range(6):
        await sandbox.post(kate, f"@demo_sneakers hi {i}")
    everything = (await sandbox.http.get("/api/v1/notifications", headers=brand)).json()
    oldest = everything[-1]["id"]

    above = await sandbox.http.get(
        "/api/v1/notifications", params={"min_id": oldest, "limit": 2}, headers=brand
    )
    newest = await sandbox.http.get(
        "/api/v1/notifications", params={"since_id": oldest, "limit": 2}, headers=brand
    )
    capped = await sandbox.http.get("/api/v1/notifications", params={"limit": 500}, headers=brand)

    assert [n["id"] for n in above.json()] == [everything[-3]["id"], everything[-2]["id"]]
    assert [n["id"] for n in newest.json()] == [everything[0]["id"], everything[1]["id"]]
    assert len(capped.json()) == 6


async def test_context_and_delete(sandbox: Client) -> None:
    _, kate = await sandbox.account("kate")
    _, max_ = await sandbox.account("max")
    root = (await sandbox.post(kate, "Root")).json()
    # Ids may come as JSON numbers too.
    reply = (await sandbox.post(max_, "@kate reply", in_reply_to_id=int(root["id"]))).json()
    nested = (await sandbox.post(kate, "@max nested", in_reply_to_id=reply["id"])).json()

    context = (await sandbox.http.get(f"/api/v1/statuses/{reply['id']}/context")).json()
    not_yours = await sandbox.http.delete(f"/api/v1/statuses/{root['id']}", headers=max_)
    deleted = await sandbox.http.delete(f"/api/v1/statuses/{nested['id']}", headers=kate)
    gone = await sandbox.http.get(f"/api/v1/statuses/{nested['id']}")
    parent = (await sandbox.http.get(f"/api/v1/statuses/{reply['id']}")).json()

    assert [s["id"] for s in context["ancestors"]] == [root["id"]]
    assert [s["id"] for s in context["descendants"]] == [nested["id"]]
    assert not_yours.status_code == 403
    assert deleted.json()["text"] == "@max nested"
    assert (gone.status_code, gone.json()) == (404, {"error": "Record not found"})
    assert parent["replies_count"] == 0


async def test_revoked_tokens_stop_working(sandbox: Client) -> None:
    kate_id, kate = await sandbox.account("kate")
    assert (await sandbox.http.get("/api/v1/accounts/verify_credentials", headers=kate)).json()[
        "username"
    ] == "kate"

    await sandbox.http.post(f"/sandbox/accounts/{kate_id}/revoke")
    refused = await sandbox.http.get("/api/v1/accounts/verify_credentials", headers=kate)
    fresh = (await sandbox.http.post(f"/sandbox/accounts/{kate_id}/tokens")).json()
    again = await sandbox.http.get(
        "/api/v1/accounts/verify_credentials",
        headers={"Authorization": f"Bearer {fresh['access_token']}"},
    )

    assert (refused.status_code, refused.json()) == (401, {"error": "The access token is invalid"})
    assert again.status_code == 200


async def test_each_token_has_a_budget_per_five_minutes(sandbox: Client) -> None:
    _, kate = await sandbox.account("kate", rate_limit=3)
    _, max_ = await sandbox.account("max")
    answers = [
        await sandbox.http.get("/api/v1/accounts/verify_credentials", headers=kate)
        for _ in range(4)
    ]
    others = await sandbox.http.get("/api/v1/accounts/verify_credentials", headers=max_)

    assert [a.status_code for a in answers] == [200, 200, 200, 429]
    assert [a.headers["x-ratelimit-remaining"] for a in answers] == ["2", "1", "0", "0"]
    assert answers[3].json() == {"error": "Too many requests"}
    assert answers[0].headers["x-ratelimit-limit"] == "3"
    assert re.fullmatch(
        r"\d{4}-\d\d-\d\dT\d\d:[0-5][05]:00\.000000Z", answers[0].headers["x-ratelimit-reset"]
    )
    assert others.headers["x-ratelimit-limit"] == "300"
    assert others.headers["x-ratelimit-remaining"] == "299"

    await sandbox.http.put("/sandbox/config", json={"rate_limit": 0})
    unlimited = await sandbox.http.get("/api/v1/accounts/verify_credentials", headers=max_)
    assert unlimited.status_code == 200
    assert "x-ratelimit-limit" not in unlimited.headers


async def test_faults_hit_the_matching_requests_then_clear(sandbox: Client) -> None:
    _, kate = await sandbox.account("kate")
    await sandbox.http.post(
        "/sandbox/faults",
        json={
            "kind": "server_error",
            "count": 2,
            "path_prefix": "/api/v1/statuses",
            "method": "POST",
        },
    )
    await sandbox.http.post("/sandbox/faults", json={"kind": "rate_limit", "retry_after_s": 9})

    read = await sandbox.http.get("/api/v1/accounts/verify_credentials", headers=kate)
    failed = [await sandbox.post(kate, "hello") for _ in range(2)]
    await sandbox.http.delete("/sandbox/faults")
    posted = await sandbox.post(kate, "hello")

    assert (read.status_code, read.headers["retry-after"]) == (429, "9")
    assert [f.status_code for f in failed] == [500, 500]
    assert posted.status_code == 200
    assert (await sandbox.stats())["statuses_total"] == 1


async def test_a_timeout_after_send_applies_the_write_and_a_keyed_retry_finds_it() -> None:
    async with serve(create_app(SandboxConfig())) as url, httpx.AsyncClient(base_url=url) as http:
        client = Client(http)
        kate_id, kate = await client.account("kate")
        await http.post(
            "/sandbox/faults",
            json={"kind": "timeout_after_send", "delay_ms": 500, "method": "POST"},
        )
        key = {"Idempotency-Key": "scheduled-post-7"}
        with pytest.raises(httpx.ReadTimeout):
            await http.post(
                "/api/v1/statuses", json={"status": "Launch day!"}, headers=kate | key, timeout=0.05
            )
        retry = await client.post(kate | key, "Launch day!")
        posted = (await http.get(f"/sandbox/accounts/{kate_id}/statuses")).json()

    assert [s["id"] for s in posted] == [retry.json()["id"]]


def test_traffic_is_deterministic_for_a_seed_and_realistic() -> None:
    def run(seed: int) -> tuple[Network, list[Any]]:
        network = Network()
        brand = network.create_account("demo_sneakers")
        profile = TrafficProfile(mention_accounts=[str(brand.id)], seed=seed, authors=200)
        generator = TrafficGenerator(network, profile)
        for batch in (1, 37, 462):  # batching must not change what is written
            generator.generate(batch)
        return network, [
            (s.account.username, s.text, s.language, s.in_reply_to_id is not None)
            for s in network.statuses.values()
        ]

    network, statuses = run(seed=3)
    _, again = run(seed=3)
    _, other = run(seed=4)

    assert statuses == again
    assert statuses != other
    assert len(statuses) == 500
    assert {language for _, _, language, _ in statuses} == {"en", "ru"}
    assert any(reply for *_, reply in statuses)
    assert any("https://deals" in text for _, text, _, _ in statuses)
    assert any(re.search("[\u0430-\u044f]", text) for _, text, _, _ in statuses)  # Cyrillic
    brand = network.account_by_username("demo_sneakers")
    assert brand is not None
    mentioning = [s for s in network.statuses.values() if brand in s.mentions]
    assert 150 < len(mentioning) < 350
    page = network.notifications(brand, Page(limit=1000), types=["mention"])
    assert len(page) == len(mentioning)
    assert max(a.followers_count for a in network.accounts.values()) >= 50_000


def test_traffic_costs_far_less_than_a_core_at_two_thousand_per_second() -> None:
    network = Network()
    generator = TrafficGenerator(network, TrafficProfile(seed=1))
    started = time.process_time()
    generator.generate(2000)
    assert time.process_time() - started < 0.5


async def test_traffic_runs_at_its_rate_until_its_total(sandbox: Client) -> None:
    brand_id, brand = await sandbox.account("demo_sneakers")
    started = await sandbox.http.post(
        "/sandbox/traffic",
        json={"rate_per_s": 1000, "total": 300, "mention_accounts": [brand_id], "seed": 5},
    )
    assert started.json()["running"] is True

    async def finished() -> dict[str, Any]:
        status: dict[str, Any] = (await sandbox.http.get("/sandbox/traffic")).json()
        return {} if status["running"] else status

    status: dict[str, Any] = await wait_until(
        finished, timeout_s=10, what="the traffic to reach its total"
    )
    mentions = await sandbox.http.get("/api/v1/notifications", params={"limit": 80}, headers=brand)
    tagged = await sandbox.http.get("/api/v1/timelines/tag/DemoSneakers")

    assert status["generated"] == 300
    assert (await sandbox.stats())["statuses_created"] == 300
    assert mentions.json()
    assert tagged.json()
    assert (await sandbox.http.delete("/sandbox/traffic")).json()["running"] is False


async def test_a_traffic_request_fills_in_the_sandbox_defaults() -> None:
    defaults = TrafficProfile(brands=["Acme Boots"], languages=["ru"], seed=9)
    app = create_app(SandboxConfig(traffic_defaults=defaults))
    transport = httpx.ASGITransport(app=app)
    async with httpx.AsyncClient(transport=transport, base_url="http://sandbox.test") as http:
        started = await http.post("/sandbox/traffic", json={"rate_per_s": 5, "seed": 2})
        invalid = await http.post("/sandbox/traffic", json={"languages": ["de"]})
        await http.delete("/sandbox/traffic")

    profile = started.json()["profile"]
    assert (profile["brands"], profile["languages"]) == (["Acme Boots"], ["ru"])
    assert (profile["rate_per_s"], profile["seed"]) == (5, 2)
    assert invalid.status_code == 422


def test_the_command_line_rejects_a_language_it_cannot_write() -> None:
    result = CliRunner().invoke(sandbox_cli, ["--language", "de"])
    assert result.exit_code == 2
    assert "languages" in result.output


async def test_favourites_reblogs_and_follows_count_once_per_account_as_mastodon_does(
    sandbox: Client,
) -> None:
    brand_id, brand = await sandbox.account("brand", followers_count=10)
    _, ann = await sandbox.account("ann")
    _, bob = await sandbox.account("bob")
    status = (await sandbox.post(brand, "New menu today")).json()
    path = f"/api/v1/statuses/{status['id']}"

    favourited = await sandbox.http.post(f"{path}/favourite", headers=ann)
    await sandbox.http.post(f"{path}/favourite", headers=ann)
    await sandbox.http.post(f"{path}/favourite", headers=bob)
    reblog = await sandbox.http.post(f"{path}/reblog", headers=bob)
    again = await sandbox.http.post(f"{path}/reblog", headers=bob)
    await sandbox.http.post(f"/api/v1/accounts/{brand_id}/follow", headers=ann)
    await sandbox.http.post(f"/api/v1/accounts/{brand_id}/follow", headers=ann)

    assert favourited.status_code == 200
    assert favourited.json()["favourited"] is True
    assert reblog.json()["reblog"]["id"] == status["id"]
    assert reblog.json()["account"]["username"] == "bob"
    assert again.json()["id"] == reblog.json()["id"]
    counted = (await sandbox.http.get(path)).json()
    assert (counted["favourites_count"], counted["reblogs_count"]) == (2, 1)
    account = (await sandbox.http.get(f"/api/v1/accounts/{brand_id}")).json()
    assert account["followers_count"] == 11
    told = (await sandbox.http.get("/api/v1/notifications", headers=brand)).json()
    assert sorted(n["type"] for n in told) == ["favourite", "favourite", "reblog"]


async def test_favouriting_a_status_that_does_not_exist_is_a_404(sandbox: Client) -> None:
    _, ann = await sandbox.account("ann")
    missing = await sandbox.http.post("/api/v1/statuses/123/favourite", headers=ann)
    unknown = await sandbox.http.get("/api/v1/accounts/999")
    assert (missing.status_code, missing.json()) == (404, {"error": "Record not found"})
    assert unknown.status_code == 404


async def test_a_connection_reset_applies_nothing_and_the_request_log_shows_it() -> None:
    async with serve(create_app(SandboxConfig())) as url, httpx.AsyncClient(base_url=url) as http:
        client = Client(http)
        kate_id, kate = await client.account("kate")
        await http.post(
            "/sandbox/faults",
            json={"kind": "connection_reset", "method": "POST", "path_prefix": "/api/v1/statuses"},
        )
        with pytest.raises(httpx.TransportError):
            await client.post(kate, "Launch day!")
        posted = (await http.get(f"/sandbox/accounts/{kate_id}/statuses")).json()
        retried = await client.post(kate, "Launch day!")
        log = (await http.get("/sandbox/requests", params={"account_id": kate_id})).json()

    assert posted == []  # the cut request changed nothing
    assert retried.status_code == 200
    posts = [r for r in log["requests"] if (r["method"], r["path"]) == ("POST", "/api/v1/statuses")]
    assert [r["fault"] for r in posts] == ["connection_reset", None]
    assert [r["at"] for r in log["requests"]] == sorted(r["at"] for r in log["requests"])


def test_generated_traffic_as_webhook_items_is_a_valid_generic_webhook_body() -> None:
    items = webhook_mentions("Demo Sneakers", 300, seed=4, id_prefix="load-", with_urls=True)

    body = WebhookBody.model_validate({"mentions": items})
    ids = [m.external_id for m in body.mentions]
    assert len(set(ids)) == 300
    assert all(i.startswith("load-") for i in ids)
    replies = [(m.in_reply_to, m.external_id) for m in body.mentions if m.in_reply_to]
    assert replies
    assert all(ids.index(parent) < ids.index(reply) for parent, reply in replies)
    assert any("Demo Sneakers" in m.text for m in body.mentions)
