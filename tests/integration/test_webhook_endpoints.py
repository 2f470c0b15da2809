"""Webhook endpoints over HTTP: the CRUD, validation, the plan feature, no replays and tenant isolation."""

from __future__ import annotations

from typing import Any

import pytest
from litestar import Litestar
from litestar.testing import AsyncTestClient
from sqlalchemy import select

from ordersmith.platform.database import Database
from ordersmith.platform.identity.oidc import NetworkPolicy
from ordersmith.platform.tenancy import get_tenant_record
from ordersmith.platform.tenant_tables import TenantIdempotencyKey
from ordersmith.tenants.webhooks.endpoints import check_url
from tests.support.entitlements import set_tenant_billing
from tests.support.http import bearer, sign_up
from tests.support.members import audit_trail
from tests.support.orders import Store, open_store
from tests.support.webhook_receiver import pump, serve_receiver

ENDPOINTS = "/api/v1/webhook-endpoints"
URL = "https://erp.example.com/hooks/ordersmith"
PRODUCTION = NetworkPolicy(allow_private_addresses=False, require_https=True)


def _field_errors(problem: dict[str, Any]) -> dict[str, str]:
    return {item["field"]: item["message"] for item in problem["errors"]}


async def test_an_endpoint_is_created_listed_read_changed_and_deleted(
    client: AsyncTestClient[Litestar],
) -> None:
    store = await open_store(client)
    created = await store.call(
        "POST",
        ENDPOINTS,
        201,
        json={
            "url": URL,
            "topics": ["order.placed", "shipment.created", "order.placed"],
            "description": "ERP",
        },
    )
    endpoint = created["endpoint"]
    assert {key: endpoint[key] for key in ("url", "topics", "description", "is_active")} == {
        "url": URL,
        "topics": ["order.placed", "shipment.created"],
        "description": "ERP",
        "is_active": True,
    }
    second = await store.call(
        "POST", ENDPOINTS, 201, json={"url": URL + "/2", "topics": ["*", "order.placed"]}
    )
    assert second["endpoint"]["topics"] == ["*"]

    first_page = await store.call("GET", ENDPOINTS, 200, params={"limit": 1})
    assert [item["id"] for item in first_page["data"]] == [second["endpoint"]["id"]]
    rest = await store.call("GET", ENDPOINTS, 200, params={"limit": 1, "cursor": first_page["next_cursor"]})
    assert ([item["id"] for item in rest["data"]], rest["next_cursor"]) == ([endpoint["id"]], None)

    path = f"{ENDPOINTS}/{endpoint['id']}"
    assert await store.call("GET", path, 200) == endpoint
    changed = await store.call(
        "PATCH",
        path,
        200,
        json={"topics": ["return.requested", "return.inspected"], "is_active": False, "description": ""},
    )
    assert {key: changed[key] for key in ("url", "topics", "description", "is_active")} == {
        "url": URL,
        "topics": ["return.requested", "return.inspected"],
        "description": "",
        "is_active": False,
    }
    moved = await store.call("PATCH", path, 200, json={"url": "http://127.0.0.1:9/hooks"})
    assert moved["url"] == "http://127.0.0.1:9/hooks"  # plain http and loopback are fine outside production

    response = await client.delete(path, headers=store.headers)
    assert response.status_code == 204
    missing = await store.call("GET", path, 404)
    assert missing["code"] == "webhook_endpoint_not_found"
    listed = await store.call("GET", ENDPOINTS, 200)
    assert [item["id"] for item in listed["data"]] == [second["endpoint"]["id"]]


async def test_every_change_to_an_endpoint_is_on_the_audit_trail_once(
    client: AsyncTestClient[Litestar], database: Database
) -> None:
    owner = await sign_up(client)
    store = Store(client, bearer(owner["token"]["access_token"]), owner["tenant"]["slug"])
    tenant_id = owner["tenant"]["id"]
    signed_up = len(await audit_trail(database, tenant_id))
    created = await store.call("POST", ENDPOINTS, 201, json={"url": URL, "topics": ["order.placed"]})
    endpoint_id = created["endpoint"]["id"]
    path = f"{ENDPOINTS}/{endpoint_id}"
    await store.call("PATCH", path, 200, json={"url": URL, "topics": ["order.placed"]})  # the same values
    await store.call("PATCH", path, 200, json={"url": URL + "/v2", "is_active": False, "description": ""})
    rotated = await store.call("POST", f"{path}/rotate-secret", 200)
    response = await client.delete(path, headers=store.headers)
    assert response.status_code == 204

    old_hint, new_hint = created["endpoint"]["secret_hint"], rotated["endpoint"]["secret_hint"]
    assert old_hint != new_hint
    actor = {"actor_type": "user", "actor_id": owner["user_id"]}
    target = {"target_type": "webhook_endpoint", "target_id": endpoint_id}
    assert (await audit_trail(database, tenant_id))[signed_up:] == [
        {
            "action": "webhook_endpoint.created",
            **actor,
            **target,
            "data": {"url": URL, "topics": ["order.placed"], "is_active": True, "secret_hint": old_hint},
        },
        {
            "action": "webhook_endpoint.changed",
            **actor,
            **target,
            "data": {
                "changes": {
                    "url": {"old": URL, "new": URL + "/v2"},
                    "is_active": {"old": True, "new": False},
                }
            },
        },
        {
            "action": "webhook_endpoint.secret_rotated",
            **actor,
            **target,
            "data": {
                "old_secret_hint": old_hint,
                "new_secret_hint": new_hint,
                "old_secret_signs_until": None,
            },
        },
        {"action": "webhook_endpoint.deleted", **actor, **target, "data": {"url": URL + "/v2"}},
    ]


async def test_creation_takes_no_idempotency_key_so_the_secret_never_rests_in_clear(
    client: AsyncTestClient[Litestar], database: Database
) -> None:
    store = await open_store(client)
    tenant = await get_tenant_record(database, store.slug)
    body = {"url": URL, "topics": ["order.placed"]}
    headers = {"Idempotency-Key": "endpoint-1"}
    first = await store.call("POST", ENDPOINTS, 201, json=body, headers=headers)
    # As for API keys: the header is not honoured, so a retry makes a second endpoint with its own secret.
    again = await store.call("POST", ENDPOINTS, 201, json=body, headers=headers)
    assert again["endpoint"]["id"] != first["endpoint"]["id"]
    assert again["secret"] != first["secret"]
    listed = await store.call("GET", ENDPOINTS, 200)
    assert [item["id"] for item in listed["data"]] == [again["endpoint"]["id"], first["endpoint"]["id"]]
    # Nothing was kept to replay: no answer, so no secret in clear, in the idempotency keys.
    async with database.tenant_session(tenant.context) as session:
        kept = list(await session.scalars(select(TenantIdempotencyKey.key)))
    assert "endpoint-1" not in kept


async def test_bad_urls_unknown_topics_and_long_descriptions_are_422_naming_each_field(
    client: AsyncTestClient[Litestar],
) -> None:
    store = await open_store(client)
    for url in (
        "ftp://erp.example.com/hooks",
        "erp.example.com/hooks",
        "https://user:pw@erp.example.com/",
        "",
    ):
        problem = await store.call("POST", ENDPOINTS, 422, json={"url": url, "topics": ["order.placed"]})
        assert list(_field_errors(problem)) == ["url"], url
    # Hosts the sender could never look up (httpx's IDNA 2008, then Python's IDNA codec refuse them).
    for host in ("a..b", "☃.com", "a" * 64 + ".example.com", ".example.com", "xn--zz.example.com"):
        problem = await store.call(
            "POST", ENDPOINTS, 422, json={"url": f"http://{host}/hooks", "topics": ["order.placed"]}
        )
        assert _field_errors(problem) == {
            "url": f"has a host, {host}, that is not a valid domain name or IP address; "
            "give one like erp.example.com (labels of 1 to 63 characters between the dots)"
        }, host
    problem = await store.call(
        "POST",
        ENDPOINTS,
        422,
        json={"url": "gopher://x", "topics": ["order.placed", "order.teleported"], "description": "d" * 501},
    )
    errors = _field_errors(problem)
    assert problem["code"] == "validation_failed"
    assert sorted(errors) == ["description", "topics", "url"]
    assert errors["topics"].startswith(
        'unknown topics order.teleported: give "*" for every event, or some of '
    )
    assert "shipment.created" in errors["topics"]
    empty = await store.call("POST", ENDPOINTS, 422, json={"url": URL, "topics": []})
    assert _field_errors(empty)["topics"].startswith("no topic: ")

    created = await store.call("POST", ENDPOINTS, 201, json={"url": URL, "topics": ["order.placed"]})
    path = f"{ENDPOINTS}/{created['endpoint']['id']}"
    patched = await store.call("PATCH", path, 422, json={"topics": ["orders.placed"], "url": "mailto:a@b.c"})
    assert sorted(_field_errors(patched)) == ["topics", "url"]
    bad_host = await store.call("PATCH", path, 422, json={"url": "https://a..b/hooks"})
    assert list(_field_errors(bad_host)) == ["url"]
    assert (await store.call("GET", path, 200))["topics"] == ["order.placed"]
    bad_status = await store.call("GET", f"{path}/deliveries", 422, params={"status": "lost"})
    assert list(_field_errors(bad_status)) == ["status"]


@pytest.mark.parametrize(
    ("url", "reason"),
    [
        ("http://erp.example.com/hooks", None),
        ("https://127.0.0.1/hooks", "127.0.0.1 is a loopback address"),
        ("https://10.1.2.3/hooks", "10.1.2.3 is a private address"),
        ("https://[::1]/hooks", "::1 is a loopback address"),
        ("https://169.254.169.254/latest", "169.254.169.254 is a link-local address"),
        ("https://localhost/hooks", "localhost resolves to"),
    ],
)
async def test_production_refuses_plain_http_and_non_public_addresses(url: str, reason: str | None) -> None:
    (error,) = await check_url(url, PRODUCTION)
    assert error.field == "url"
    if reason is None:
        assert error.message.startswith("must be an https URL")
    else:
        assert error.message.startswith(f"must lead to a public address, but {reason}")


async def test_production_accepts_an_https_url_on_a_public_address() -> None:
    assert await check_url("https://93.184.215.14/hooks", PRODUCTION) == []


@pytest.mark.parametrize("host", ["a..b", "☃.com", "a" * 64 + ".com"])
async def test_production_refuses_a_host_that_cannot_be_encoded_as_a_field_error(host: str) -> None:
    (error,) = await check_url(f"https://{host}/hooks", PRODUCTION)
    assert (error.field, error.message) == (
        "url",
        f"has a host, {host}, that is not a valid domain name or IP address; "
        "give one like erp.example.com (labels of 1 to 63 characters between the dots)",
    )


async def test_a_starter_store_gets_402_on_every_webhook_route(
    client: AsyncTestClient[Litestar], database: Database
) -> None:
    store = await open_store(client)
    created = await store.call("POST", ENDPOINTS, 201, json={"url": URL, "topics": ["*"]})
    endpoint_path = f"{ENDPOINTS}/{created['endpoint']['id']}"
    tenant = await get_tenant_record(database, store.slug)
    await set_tenant_billing(database, tenant.id, plan="starter")
    calls: list[tuple[str, str, dict[str, Any]]] = [
        ("POST", ENDPOINTS, {"json": {"url": URL, "topics": ["*"]}}),
        ("GET", ENDPOINTS, {}),
        ("GET", endpoint_path, {}),
        ("PATCH", endpoint_path, {"json": {"is_active": False}}),
        ("DELETE", endpoint_path, {}),
        ("POST", f"{endpoint_path}/rotate-secret", {}),
        ("GET", f"{endpoint_path}/deliveries", {}),
        ("POST", "/api/v1/webhook-deliveries/01a21fae-0000-7000-8000-000000000000/replay", {}),
    ]
    for method, path, extra in calls:
        problem = await store.call(method, path, 402, **extra)
        assert {key: problem[key] for key in ("code", "feature", "plan", "cheapest_plan")} == {
            "code": "feature_not_in_plan",
            "feature": "webhooks",
            "plan": "starter",
            "cheapest_plan": "growth",
        }, (method, path)
    await set_tenant_billing(database, tenant.id, plan="growth")
    assert (await store.call("GET", endpoint_path, 200))["is_active"] is True


async def _with_delivery(store: Store, database: Database) -> tuple[str, str]:
    """An endpoint of `store` with one delivery in its log; their ids."""
    with serve_receiver() as receiver:
        created = await store.call("POST", ENDPOINTS, 201, json={"url": receiver.url(), "topics": ["*"]})
        await store.call(
            "POST", "/api/v1/customers", 201, json={"full_name": "Bo Berg", "email": "bo@example.com"}
        )
        tenant = await get_tenant_record(database, store.slug)
        assert await pump(database, tenant) == 1
    endpoint_id = created["endpoint"]["id"]
    (delivery,) = (await store.call("GET", f"{ENDPOINTS}/{endpoint_id}/deliveries", 200))["data"]
    return endpoint_id, delivery["id"]


async def test_another_store_gets_404_for_every_route_on_this_stores_endpoints_and_deliveries(
    client: AsyncTestClient[Litestar], database: Database
) -> None:
    store_a = await open_store(client)
    store_b = await open_store(client)
    endpoint_id, delivery_id = await _with_delivery(store_a, database)
    path = f"{ENDPOINTS}/{endpoint_id}"
    calls: list[tuple[str, str, dict[str, Any], str]] = [
        ("GET", path, {}, "webhook_endpoint_not_found"),
        ("PATCH", path, {"json": {"url": "https://evil.example.com/"}}, "webhook_endpoint_not_found"),
        ("POST", f"{path}/rotate-secret", {}, "webhook_endpoint_not_found"),
        ("GET", f"{path}/deliveries", {}, "webhook_endpoint_not_found"),
        ("POST", f"/api/v1/webhook-deliveries/{delivery_id}/replay", {}, "webhook_delivery_not_found"),
        ("DELETE", path, {}, "webhook_endpoint_not_found"),
    ]
    for method, target, extra, code in calls:
        problem = await store_b.call(method, target, 404, **extra)
        assert problem["code"] == code, (method, target)
    assert (await store_b.call("GET", ENDPOINTS, 200))["data"] == []
    for not_an_id in ("nope", "00000000-0000-0000-0000-00000000000z"):
        await store_a.call("GET", f"{ENDPOINTS}/{not_an_id}", 404)
        await store_a.call("POST", f"/api/v1/webhook-deliveries/{not_an_id}/replay", 404)
    # Store A's endpoint is untouched: same URL, same log.
    endpoint = await store_a.call("GET", path, 200)
    assert endpoint["url"].startswith("http://127.0.0.1:")
    assert endpoint["secret_rotated_at"] is None
    log = await store_a.call("GET", f"{path}/deliveries", 200)
    assert [(item["id"], item["attempt_count"]) for item in log["data"]] == [(delivery_id, 1)]
