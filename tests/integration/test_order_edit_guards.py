"""What an edit checks beyond its lines: the order unchanged since its preview, the SKU still on sale."""

from __future__ import annotations

import pytest
from litestar import Litestar
from litestar.testing import AsyncTestClient

from tests.support.order_edits import commit, preview, remove, set_price, set_quantity
from tests.support.orders import Store, two_sku_store
from tests.support.payments import pay


@pytest.fixture
async def store(client: AsyncTestClient[Litestar]) -> Store:
    return await two_sku_store(client, price=1999)


async def test_money_received_after_the_preview_makes_its_commit_409_order_changed(store: Store) -> None:
    await store.receive("TEE-S", "WH-1", 10)
    order = await store.place(("TEE-S", 2))
    line = order["lines"][0]["id"]
    shown = await preview(store, order["id"], set_quantity(line, 3))
    assert (shown["edit"]["base_version"], shown["edit"]["balance_due_amount"]) == (1, 5997)

    # The customer pays the first total in cash before the edit is committed.
    await pay(store, order["id"], provider="manual", method="cash")

    problem = await commit(
        store,
        order["id"],
        set_quantity(line, 3),
        expected=409,
        expected_version=shown["edit"]["base_version"],
    )
    assert (problem["code"], problem["current_version"], problem["expected_version"]) == (
        "order_changed",
        2,
        1,
    )
    assert (await store.stock("TEE-S"))["reserved"] == 2
    # Previewed again, the balance is what is left after the payment.
    again = await preview(store, order["id"], set_quantity(line, 3))
    assert (again["edit"]["base_version"], again["edit"]["balance_due_amount"]) == (2, 1999)
    committed = await commit(
        store, order["id"], set_quantity(line, 3), expected_version=again["edit"]["base_version"]
    )
    assert (committed["edit"]["balance_due_amount"], committed["order"]["version"]) == (1999, 3)


async def test_an_edit_asks_no_more_units_of_a_sku_taken_off_sale(store: Store) -> None:
    await store.receive("TEE-S", "WH-1", 10)
    await store.receive("TEE-M", "WH-1", 10)
    order = await store.place(("TEE-S", 2), ("TEE-M", 1))
    tee_s, tee_m = (line["id"] for line in order["lines"])
    [found] = (await store.call("GET", "/api/v1/skus", 200, params={"query": "TEE-S"}))["data"]
    await store.call("PATCH", f"/api/v1/variants/{found['variant']['id']}", 200, json={"is_active": False})

    for attempt in (preview, commit):
        problem = await attempt(
            store, order["id"], set_price(tee_m, 1500), set_quantity(tee_s, 5), expected=422
        )
        assert problem["errors"] == [
            {
                "field": "changes[1].quantity",
                "message": "TEE-S is not for sale (inactive); lower or remove the line, "
                "or put the SKU back on sale first",
            }
        ]
    assert (await store.stock("TEE-S"))["reserved"] == 2

    # Fewer units, a new price, or none at all are still fine.
    lowered = await commit(store, order["id"], set_quantity(tee_s, 1), set_price(tee_s, 1000))
    assert [(line["sku"], line["quantity_ordered"]) for line in lowered["order"]["lines"]] == [
        ("TEE-S", 1),
        ("TEE-M", 1),
    ]
    await commit(store, order["id"], remove(tee_s))
    assert (await store.stock("TEE-S"))["reserved"] == 0
