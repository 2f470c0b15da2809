"""The api_requests_per_minute limit: a hard limit answers 429 until the minute ends, a soft one warns."""

from __future__ import annotations

import asyncio
import time

from litestar import Litestar
from litestar.testing import AsyncTestClient

from ordersmith.api.rate_limits import RequestWindows
from ordersmith.platform.database import Database
from ordersmith.platform.plans import Limit
from ordersmith.platform.tenancy import get_tenant_record
from tests.support.entitlements import set_limit, set_tenant_billing
from tests.support.order_actions import api_key_headers
from tests.support.orders import Store, open_store


async def _limited(client: AsyncTestClient[Litestar], database: Database, allowed: int, plan: str) -> Store:
    store = await open_store(client)
    tenant = await get_tenant_record(database, store.slug)
    await set_tenant_billing(database, tenant.id, plan=plan)
    await set_limit(database, tenant.id, Limit.API_REQUESTS_PER_MINUTE, allowed)
    return store


async def _count_from_now(client: AsyncTestClient[Litestar]) -> None:
    """Forget the set-up's requests, and begin where the minute has time left (counts restart each minute)."""
    if time.time() % 60 > 50:
        await asyncio.sleep(61 - time.time() % 60)
    client.app.state.request_windows = RequestWindows()


async def test_a_hard_limit_refuses_the_request_over_it_until_the_minute_ends(
    client: AsyncTestClient[Litestar], database: Database
) -> None:
    store = await _limited(client, database, 4, "starter")
    other = await open_store(client)
    key = await api_key_headers(store)
    await _count_from_now(client)
    # Users and keys of a store count together.
    answers = [(await client.get("/api/v1/orders", headers=key)).status_code for _ in range(3)]
    answers.append((await client.get("/api/v1/orders", headers=store.headers)).status_code)
    answers.append((await client.get("/api/v1/orders", headers=key)).status_code)
    assert answers == [200, 200, 200, 200, 429]
    refused = await client.get("/api/v1/me", headers=store.headers)
    body = refused.json()
    retry_after = int(refused.headers["retry-after"])
    assert 0 < retry_after <= 60
    assert {name: body[name] for name in ("status", "code", "limit", "allowed", "plan", "cheapest_plan")} == {
        "status": 429,
        "code": "rate_limited",
        "limit": "api_requests_per_minute",
        "allowed": 4,
        "plan": "starter",
        "cheapest_plan": "starter",
    }
    assert body["retry_after_seconds"] == retry_after
    # Another store's count is its own.
    assert (await client.get("/api/v1/me", headers=other.headers)).status_code == 200


async def test_a_soft_limit_lets_the_request_through_with_a_warning(
    client: AsyncTestClient[Litestar], database: Database
) -> None:
    store = await _limited(client, database, 2, "growth")
    await _count_from_now(client)
    first, second, third = [await client.get("/api/v1/me", headers=store.headers) for _ in range(3)]
    assert [first.status_code, second.status_code, third.status_code] == [200, 200, 200]
    assert "ordersmith-limit-warning" not in second.headers
    assert (
        third.headers["ordersmith-limit-warning"] == 'api_requests_per_minute;used=3;allowed=2;plan="growth"'
    )
