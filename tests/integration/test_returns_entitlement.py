"""Returns are a plan feature: a plan without it refuses new returns and keeps the old ones readable."""

from __future__ import annotations

from litestar import Litestar
from litestar.testing import AsyncTestClient

from ordersmith.platform.database import Database
from ordersmith.platform.plans import Feature
from ordersmith.platform.tenancy import get_tenant_record
from tests.support.entitlements import grant_feature, set_tenant_billing
from tests.support.fulfillment import line_of, shipped_order, split_store


async def test_a_plan_without_returns_refuses_them_until_an_override_allows_them(
    client: AsyncTestClient[Litestar], database: Database
) -> None:
    store = await split_store(client)
    order = await shipped_order(store, ("TEE-S", 2))
    path = f"/api/v1/orders/{order['id']}/returns"
    body = {"lines": [{"line_id": line_of(order, "TEE-S")["id"], "quantity": 1, "reason_code": "size_fit"}]}
    first = await store.call("POST", path, 201, json=body)
    tenant = await get_tenant_record(database, store.slug)
    assert tenant is not None
    await set_tenant_billing(database, tenant.id, plan="starter")

    refused = await store.call("POST", path, 402, json=body)
    assert {key: refused[key] for key in ("code", "feature", "plan", "cheapest_plan")} == {
        "code": "feature_not_in_plan",
        "feature": "returns",
        "plan": "starter",
        "cheapest_plan": "growth",
    }
    approve = await store.call("POST", f"/api/v1/returns/{first['id']}/approve", 402)
    assert approve["code"] == "feature_not_in_plan"
    # What was returned before stays readable.
    listed = await store.call("GET", path, 200)
    assert [item["id"] for item in listed["data"]] == [first["id"]]
    assert (await store.call("GET", f"/api/v1/returns/{first['id']}", 200))["status"] == "requested"

    await grant_feature(database, tenant.id, Feature.RETURNS)
    assert (await store.call("POST", f"/api/v1/returns/{first['id']}/approve", 200))["status"] == "approved"
