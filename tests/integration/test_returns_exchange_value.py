"""An exchange gives away no more goods than the returned units were worth unless the caller may refund."""

from __future__ import annotations

import uuid
from typing import Any

import pytest
from litestar import Litestar
from litestar.testing import AsyncTestClient

from ordersmith.platform.database import Database
from ordersmith.platform.errors import PermissionDeniedError
from ordersmith.platform.identity.audit import Actor
from ordersmith.tenants.returns.outcomes import exchange_return
from ordersmith.tenants.returns.rules import ExchangeLine, ExchangeRequest
from ordersmith.tenants.returns.views import ReturnView
from tests.support.fulfillment import approved_return, pay_manually, shipped_order, split_store, stock_at
from tests.support.members import add_member
from tests.support.order_actions import api_key_headers, tenant_context
from tests.support.orders import Store

# A 500.00 vase beside the 5.00 tees the customer bought and sends back.
VASE_PRICE = 50_000


@pytest.fixture
async def store(client: AsyncTestClient[Litestar]) -> Store:
    store = await split_store(client, price=500)
    await store.add_skus("VASE", price=VASE_PRICE)
    await store.add_skus("CAP", price=100, currency="USD")
    await store.receive("VASE", "WH-2", 5)
    await store.receive("CAP", "WH-2", 5)
    return store


async def returned_tee(store: Store, database: Database, quantity: int = 1) -> list[dict[str, Any]]:
    """`quantity` returns of one paid 5.00 tee each, approved."""
    order = await shipped_order(store, ("TEE-S", quantity))
    await pay_manually(database, store, order["id"], 500 * quantity)
    return [await approved_return(store, order, "TEE-S", 1) for _ in range(quantity)]


def given_away_detail(given: int, excess: int) -> str:
    return (
        f"this exchange gives away goods worth {given} EUR (their catalog price less what unit_price_amount "
        f"charges), {excess} more than the returned units it replaces were sold for (500); only someone with "
        "the 'orders.refund' permission may give that: charge the difference with unit_price_amount, "
        "exchange for goods of equal value, or ask a manager to make the exchange"
    )


async def _exchange(
    store: Store,
    returned: dict[str, Any],
    expected: int,
    lines: list[dict[str, Any]],
    headers: dict[str, str] | None = None,
) -> dict[str, Any]:
    """Exchange a return for `lines`, as the owner unless `headers` say who; the answer's body."""
    path = f"/api/v1/returns/{returned['id']}/exchange"
    body: dict[str, Any] = await store.call(
        "POST", path, expected, json={"lines": lines}, headers=headers or {}
    )
    return body


async def _replacement(store: Store, exchanged: dict[str, Any]) -> dict[str, Any]:
    """The order an exchange placed to send the new goods."""
    order: dict[str, Any] = await store.call("GET", f"/api/v1/orders/{exchanged['exchange_order_id']}", 200)
    return order


async def _exchange_in_service(
    database: Database, store: Store, returned: dict[str, Any], request: ExchangeRequest, *, may_refund: bool
) -> ReturnView:
    """The exchange service called directly, told whether the caller may refund."""
    tenant = await tenant_context(database, store)
    async with database.tenant_session(tenant) as session:
        return await exchange_return(
            tenant, session, uuid.UUID(returned["id"]), request, actor=Actor("system"), may_refund=may_refund
        )


async def test_an_agent_cannot_exchange_a_cheap_returned_unit_for_dear_goods_at_no_charge(
    client: AsyncTestClient[Litestar], store: Store, database: Database
) -> None:
    [created] = await returned_tee(store, database)
    agent = await add_member(client, database, store.headers, "agent")
    key = await api_key_headers(store, ["orders.write"])
    for headers in (agent.headers, key):
        refused = await _exchange(store, created, 403, [{"sku": "VASE", "quantity": 1}], headers)
        assert (refused["code"], refused["detail"]) == (
            "permission_denied",
            given_away_detail(50_000, 49_500),
        )
        assert (refused["excess_amount"], refused["currency"]) == (49_500, "EUR")
        # Charging part of the difference is not enough: 600 given away for a unit sold for 500.
        short = await _exchange(
            store, created, 403, [{"sku": "VASE", "quantity": 1, "unit_price_amount": 49_400}], headers
        )
        assert (short["code"], short["detail"]) == ("permission_denied", given_away_detail(600, 100))
    unchanged = await store.call("GET", f"/api/v1/returns/{created['id']}", 200)
    assert (unchanged["exchange_order_id"], unchanged["resolutions"]) == (None, [])
    assert await stock_at(store, "VASE") == {"WH-2": (5, 0)}

    # Charging the difference gives away exactly what the returned unit was worth: allowed.
    exchanged = await _exchange(
        store, created, 201, [{"sku": "VASE", "quantity": 1, "unit_price_amount": 49_500}], agent.headers
    )
    replacement = await _replacement(store, exchanged)
    assert replacement["total_amount"] == 49_500
    assert [(item["kind"], item["amount"]) for item in exchanged["resolutions"]] == [("exchange", 500)]
    assert await stock_at(store, "VASE") == {"WH-2": (5, 1)}


async def test_an_agent_may_exchange_for_goods_of_equal_or_lower_value_and_a_manager_for_any(
    client: AsyncTestClient[Litestar], store: Store, database: Database
) -> None:
    first, second, third = await returned_tee(store, database, 3)
    agent = await add_member(client, database, store.headers, "agent")
    manager = await add_member(client, database, store.headers, "manager")
    same = await _exchange(store, first, 201, [{"sku": "TEE-M", "quantity": 1}], agent.headers)
    assert [(item["kind"], item["amount"]) for item in same["resolutions"]] == [("exchange", 500)]
    # A price above the catalog's offsets nothing on another line: the vase still gives away 50000.
    mixed = await _exchange(
        store,
        second,
        403,
        [{"sku": "TEE-M", "quantity": 1, "unit_price_amount": 60_000}, {"sku": "VASE", "quantity": 1}],
        agent.headers,
    )
    assert mixed["excess_amount"] == 49_500
    dear = await _exchange(store, second, 201, [{"sku": "VASE", "quantity": 1}], manager.headers)
    replacement = await _replacement(store, dear)
    assert (replacement["total_amount"], dear["resolutions"][0]["amount"]) == (0, 500)
    # The owner may refund too: the same exchange goes through for them as it always did.
    owned = await _exchange(store, third, 201, [{"sku": "VASE", "quantity": 1}])
    assert owned["resolutions"][0]["amount"] == 500
    assert await stock_at(store, "VASE") == {"WH-2": (5, 2)}


async def test_an_agent_cannot_exchange_for_goods_priced_in_another_currency(
    client: AsyncTestClient[Litestar], store: Store, database: Database
) -> None:
    [created] = await returned_tee(store, database)
    agent = await add_member(client, database, store.headers, "agent")
    # 1.00 USD is cheaper in figures, but no catalog price says what the cap is worth in euros.
    for line in ({"sku": "CAP", "quantity": 1}, {"sku": "cap", "quantity": 1, "unit_price_amount": 100}):
        refused = await _exchange(store, created, 403, [line], agent.headers)
        assert (refused["code"], refused["detail"]) == (
            "permission_denied",
            "CAP: priced in another currency than the order's EUR, so what the exchange gives away cannot "
            "be weighed against the returned units; only someone with the 'orders.refund' permission may "
            "exchange for such goods: pick goods priced in EUR, or ask a manager to make the exchange",
        )
    exchanged = await _exchange(store, created, 201, [{"sku": "CAP", "quantity": 1}])
    replacement = await _replacement(store, exchanged)
    assert (replacement["currency"], replacement["total_amount"]) == ("EUR", 0)


async def test_the_exchange_service_takes_whether_the_caller_may_refund(
    store: Store, database: Database
) -> None:
    first, second = await returned_tee(store, database, 2)
    request = ExchangeRequest([ExchangeLine("VASE", 2, unit_price_amount=49_000)])
    with pytest.raises(PermissionDeniedError) as raised:
        await _exchange_in_service(database, store, first, request, may_refund=False)
    # Two vases 1000 under the catalog price each, for a return of one unit sold for 500.
    assert raised.value.detail == given_away_detail(2_000, 1_500)
    assert raised.value.extensions == {"excess_amount": 1_500, "currency": "EUR"}
    view = await _exchange_in_service(database, store, second, request, may_refund=True)
    assert [(item.kind, item.amount) for item in view.resolutions] == [("exchange", 500)]
    assert await stock_at(store, "VASE") == {"WH-2": (5, 2)}
