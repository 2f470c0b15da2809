"""Returns over HTTP: lifecycle, dispositions, restock through the ledger, refund, store credit, exchange."""

from __future__ import annotations

from typing import Any

import pytest
from litestar import Litestar
from litestar.testing import AsyncTestClient

from ordersmith.platform.database import Database
from tests.support.fulfillment import (
    assert_stock_invariants,
    buckets,
    line_of,
    pay_manually,
    shipped_order,
    split_store,
    stock_at,
)
from tests.support.order_actions import events_of, timeline_of
from tests.support.orders import Store


@pytest.fixture
async def store(client: AsyncTestClient[Litestar]) -> Store:
    return await split_store(client, price=1500)


def return_lines(order: dict[str, Any], *items: tuple[str, int, str]) -> dict[str, Any]:
    return {
        "lines": [
            {"line_id": line_of(order, sku)["id"], "quantity": quantity, "reason_code": reason}
            for sku, quantity, reason in items
        ]
    }


async def test_a_received_return_restocks_through_the_ledger_and_is_refunded_and_credited(
    store: Store, database: Database
) -> None:
    order = await shipped_order(store, ("TEE-S", 3), ("TEE-M", 1))
    await pay_manually(database, store, order["id"], 6000)
    created = await store.call(
        "POST",
        f"/api/v1/orders/{order['id']}/returns",
        201,
        json={**return_lines(order, ("TEE-S", 2, "size_fit"), ("TEE-M", 1, "damaged")), "note": "by phone"},
    )
    assert (created["status"], created["value_amount"], created["note"]) == ("requested", 4500, "by phone")
    assert [(line["sku"], line["quantity"], line["reason_code"]) for line in created["lines"]] == [
        ("TEE-S", 2, "size_fit"),
        ("TEE-M", 1, "damaged"),
    ]
    path = f"/api/v1/returns/{created['id']}"
    # Only 1 TEE-S shipped unit is left to return.
    problem = await store.call(
        "POST", f"/api/v1/orders/{order['id']}/returns", 409, json=return_lines(order, ("TEE-S", 2, "other"))
    )
    assert problem["code"] == "quantity_not_returnable"
    assert problem["lines"][0] | {"line_id": None} == {
        "line_id": None,
        "sku": "TEE-S",
        "requested": 2,
        "returnable": 1,
        "shipped": 3,
        "already_returning": 2,
    }

    assert (await store.call("POST", f"{path}/approve", 200))["status"] == "approved"
    moving = await store.call(
        "POST", f"{path}/in-transit", 200, json={"carrier": "La Poste", "tracking_number": "LP-7"}
    )
    assert (moving["status"], moving["carrier"], moving["tracking_number"]) == (
        "in_transit",
        "La Poste",
        "LP-7",
    )
    tee_s, tee_m = created["lines"][0]["id"], created["lines"][1]["id"]
    wh2 = store.locations["WH-2"]
    received = await store.call(
        "POST",
        f"{path}/receive",
        200,
        json={
            "dispositions": [
                {"return_line_id": tee_s, "disposition": "restock", "quantity": 1, "location_id": wh2},
                {"return_line_id": tee_s, "disposition": "inspect", "quantity": 1},
                {"return_line_id": tee_m, "disposition": "damaged", "quantity": 1},
            ]
        },
    )
    assert received["status"] == "received"
    assert [line["dispositions"] for line in received["lines"]] == [
        {"restock": 1, "inspect": 1},
        {"damaged": 1},
    ]
    # TEE-S shipped from WH-1 comes back to WH-2's shelf: a new stock row, through the ledger.
    assert await stock_at(store, "TEE-S") == {"WH-1": (7, 0), "WH-2": (1, 0)}
    assert await stock_at(store, "TEE-M") == {"WH-2": (9, 0)}
    await assert_stock_invariants(database, store)
    after = await store.call("GET", f"/api/v1/orders/{order['id']}", 200)
    assert (buckets(after, "TEE-S"), buckets(after, "TEE-M")) == ((0, 0, 3, 0, 2), (0, 0, 1, 0, 1))
    again = await store.call("POST", f"{path}/receive", 409, json={"dispositions": []})
    assert again["code"] == "invalid_transition"

    refunded = await store.call("POST", f"{path}/refunds", 201, json={"amount": 3000, "reason": "fit"})
    assert (refunded["refunded_amount"], refunded["resolutions"][0]["kind"]) == (3000, "refund")
    assert len(refunded["resolutions"][0]["payment_transaction_ids"]) == 1
    credited = await store.call("POST", f"{path}/store-credits", 201, json={})
    assert (credited["store_credit_amount"], credited["resolutions"][1]["amount"]) == (1500, 1500)
    too_much = await store.call("POST", f"{path}/refunds", 422, json={"amount": 1})
    assert (too_much["code"], too_much["remaining"]) == ("resolution_exceeds_return_value", 0)
    balance = await store.call("GET", f"/api/v1/customers/{store.customer_id}/store-credit", 200)
    assert balance["balances"] == {"EUR": 1500}
    assert [(entry["amount"], entry["return_id"]) for entry in balance["entries"]] == [(1500, created["id"])]

    closed = await store.call("POST", f"{path}/close", 200)
    assert closed["status"] == "closed"
    assert (await store.call("POST", f"{path}/approve", 409))["code"] == "invalid_transition"
    paid = await store.call("GET", f"/api/v1/orders/{order['id']}", 200)
    assert paid["payment_status"] == "partially_refunded"

    kinds = [entry["kind"] for entry in await timeline_of(store, order["id"])]
    assert kinds[-8:] == [
        "return_requested",
        "return_approved",
        "return_in_transit",
        "return_received",
        "payment_refunded",
        "return_refunded",
        "return_store_credited",
        "return_closed",
    ]
    # Placed, released, two shipments and seven return steps by a person, one touch each
    # (the refund's payment entry is part of the same request); the payment was automation.
    assert paid["touch_count"] == 11
    topics = [topic for topic, _ in await events_of(database, order["id"])]
    for topic in (
        "return.requested",
        "return.approved",
        "return.received",
        "return.refunded",
        "return.closed",
    ):
        assert topics.count(topic) == 1, topic


async def test_a_return_can_be_refunded_without_being_received_and_never_beyond_the_capture(
    store: Store, database: Database
) -> None:
    order = await shipped_order(store, ("TEE-S", 1))
    await pay_manually(database, store, order["id"], 1000)
    created = await store.call(
        "POST",
        f"/api/v1/orders/{order['id']}/returns",
        201,
        json=return_lines(order, ("TEE-S", 1, "wrong_item")),
    )
    path = f"/api/v1/returns/{created['id']}"
    early = await store.call("POST", f"{path}/refunds", 409, json={})
    assert (early["code"], early["current_status"]) == ("return_not_resolvable", "requested")
    await store.call("POST", f"{path}/approve", 200)
    beyond = await store.call("POST", f"{path}/refunds", 422, json={})
    assert beyond["code"] == "refund_exceeds_captured"
    refunded = await store.call("POST", f"{path}/refunds", 201, json={"amount": 1000})
    assert refunded["refunded_amount"] == 1000
    # The unit sold for 1500 and 1000 of it was refunded: it cannot be replaced as well.
    exchange = await store.call(
        "POST", f"{path}/exchange", 422, json={"lines": [{"sku": "TEE-M", "quantity": 1}]}
    )
    assert (exchange["code"], exchange["remaining"]) == ("resolution_exceeds_return_value", 500)
    assert await stock_at(store, "TEE-M") == {"WH-2": (10, 0)}
    closed = await store.call("POST", f"{path}/close", 200)
    assert (closed["status"], closed["received_at"], closed["dispositions"]) == ("closed", None, [])
    after = await store.call("GET", f"/api/v1/orders/{order['id']}", 200)
    assert buckets(after, "TEE-S") == (0, 0, 1, 0, 0)
    assert await stock_at(store, "TEE-S") == {"WH-1": (9, 0)}
    # 1000 of 1500 was ever paid, and all of it given back: nothing held, so nothing settled.
    assert after["payment_status"] == "unpaid"


async def test_an_exchange_places_a_linked_order_that_reserves_stock(
    store: Store, database: Database
) -> None:
    order = await shipped_order(store, ("TEE-S", 1))
    await pay_manually(database, store, order["id"], 1500)
    created = await store.call(
        "POST",
        f"/api/v1/orders/{order['id']}/returns",
        201,
        json=return_lines(order, ("TEE-S", 1, "size_fit")),
    )
    path = f"/api/v1/returns/{created['id']}"
    await store.call("POST", f"{path}/approve", 200)
    short = await store.call(
        "POST", f"{path}/exchange", 409, json={"lines": [{"sku": "TEE-M", "quantity": 11}]}
    )
    assert short["code"] == "insufficient_stock"
    bad = await store.call(
        "POST",
        f"{path}/exchange",
        422,
        json={"lines": [{"sku": "TEE-M", "quantity": 1}], "note": "x" * 1001, "tags": ["x" * 51]},
    )
    assert bad["errors"] == [
        {"field": "note", "message": "must be at most 1000 characters"},
        {"field": "tags[0]", "message": "must be 1 to 50 letters, digits, spaces or . : / -"},
    ]
    exchanged = await store.call(
        "POST", f"{path}/exchange", 201, json={"lines": [{"sku": "TEE-M", "quantity": 1}]}
    )
    replacement = await store.call("GET", f"/api/v1/orders/{exchanged['exchange_order_id']}", 200)
    assert (replacement["status"], replacement["channel"], replacement["total_amount"]) == (
        "confirmed",
        "exchange",
        0,
    )
    assert (replacement["customer_id"], replacement["external_reference"]) == (
        store.customer_id,
        f"RMA-{created['number']}",
    )
    assert replacement["shipping_address"] == order["shipping_address"]
    # One request by a person, one touch: placing it and linking it to the return.
    assert replacement["touch_count"] == 1
    assert [(item["location_code"], item["quantity"]) for item in replacement["reservations"]] == [
        ("WH-2", 1)
    ]
    assert await stock_at(store, "TEE-M") == {"WH-2": (10, 1)}
    # The replacement uses up what the paid unit was sold for: nothing is left to pay back.
    assert [(item["kind"], item["amount"]) for item in exchanged["resolutions"]] == [("exchange", 1500)]
    for outcome in ("refunds", "store-credits"):
        refused = await store.call("POST", f"{path}/{outcome}", 422, json={})
        assert (refused["code"], refused["remaining"]) == ("resolution_exceeds_return_value", 0), outcome
    again = await store.call(
        "POST", f"{path}/exchange", 409, json={"lines": [{"sku": "TEE-M", "quantity": 1}]}
    )
    assert again["code"] == "exchange_exists"
    kinds = [entry["kind"] for entry in await timeline_of(store, replacement["id"])]
    assert "exchange_for" in kinds
    await assert_stock_invariants(database, store)


async def test_a_declined_return_frees_its_units_and_store_credit_stays_within_what_was_paid_and_its_holder(
    store: Store, database: Database
) -> None:
    order = await shipped_order(store, ("TEE-S", 2))
    await pay_manually(database, store, order["id"], 3000)
    [payment] = (await store.call("GET", f"/api/v1/orders/{order['id']}/payments", 200))["data"]
    # 2000 goes back straight on the payment: store credit may repay only the 1000 still held.
    await store.call("POST", f"/api/v1/payments/{payment['id']}/refunds", 201, json={"amount": 2000})
    first = await store.call(
        "POST",
        f"/api/v1/orders/{order['id']}/returns",
        201,
        json=return_lines(order, ("TEE-S", 2, "changed_mind")),
    )
    declined = await store.call(
        "POST", f"/api/v1/returns/{first['id']}/decline", 200, json={"reason": "worn"}
    )
    assert (declined["status"], declined["decline_reason"]) == ("declined", "worn")
    second = await store.call(
        "POST",
        f"/api/v1/orders/{order['id']}/returns",
        201,
        json=return_lines(order, ("TEE-S", 1, "defective")),
    )
    await store.call("POST", f"/api/v1/returns/{second['id']}/approve", 200)
    credits = f"/api/v1/returns/{second['id']}/store-credits"
    beyond = await store.call("POST", credits, 422, json={"amount": 1001})
    assert (beyond["code"], beyond["remaining"], beyond["detail"]) == (
        "resolution_exceeds_return_value",
        1000,
        "the order's payments hold 1000 EUR (captured, less refunds and chargebacks) and its returns already "
        "gave 0 of it as store credit; store credit never repays money that was not paid, or was paid back "
        "already; ask for at most 1000",
    )
    # Left out, the amount is what can still be credited: 1000, not the unit's 1500.
    assert (await store.call("POST", credits, 201, json={}))["store_credit_amount"] == 1000
    spend_path = f"/api/v1/customers/{store.customer_id}/store-credit/redemptions"
    over = await store.call("POST", spend_path, 409, json={"amount": 1001, "currency": "EUR"})
    assert (over["code"], over["balance"]) == ("store_credit_insufficient", 1000)
    await store.add_customer("bob@example.com")
    bobs = await store.place(("TEE-S", 1))
    for body, field, message in (
        (
            {"currency": "EUR", "order_id": bobs["id"]},
            "order_id",
            "the order is another customer's; spend credit on its holder's own orders",
        ),
        ({"currency": "USD", "order_id": order["id"]}, "currency", "must be the order's currency, EUR"),
    ):
        refused = await store.call("POST", spend_path, 422, json={"amount": 600, **body})
        assert refused["errors"] == [{"field": field, "message": message}]
    spent = await store.call(
        "POST",
        spend_path,
        201,
        json={"amount": 600, "currency": "EUR", "reason": "order 2", "order_id": order["id"]},
    )
    assert spent["balances"] == {"EUR": 400}
    assert spent["entries"][0]["order_id"] == order["id"]
    # Never on a cancelled order, nor more on an order than it costs.
    ana = order["customer_id"]
    to_cancel = await store.place(("TEE-S", 1), customer_id=ana)
    await store.call(
        "POST", f"/api/v1/orders/{to_cancel['id']}/cancel", 200, json={"reason": "customer asked"}
    )
    small = await store.place(
        ("TEE-S", 1), customer_id=ana, lines=[{"sku": "TEE-S", "quantity": 1, "unit_price_amount": 300}]
    )
    await store.call(
        "POST", spend_path, 201, json={"amount": 200, "currency": "EUR", "order_id": small["id"]}
    )
    for body, field, message in (
        (
            {"amount": 100, "order_id": to_cancel["id"]},
            "order_id",
            "the order is cancelled; spend credit on an order still open",
        ),
        (
            {"amount": 101, "order_id": small["id"]},
            "amount",
            "at most 100 more can be spent on this order (its total is 300 EUR, 200 already spent on it)",
        ),
    ):
        refused = await store.call("POST", spend_path, 422, json={"currency": "EUR", **body})
        assert refused["errors"] == [{"field": field, "message": message}]
    assert (await store.call("GET", spend_path.replace("/redemptions", ""), 200))["balances"] == {"EUR": 200}
    bad = await store.call(
        "POST",
        f"/api/v1/orders/{order['id']}/returns",
        422,
        json={"lines": [{"line_id": "x", "quantity": 0, "reason_code": "bored"}]},
    )
    assert sorted(error["field"] for error in bad["errors"]) == ["lines[0].quantity", "lines[0].reason_code"]


async def test_a_return_closed_without_the_goods_or_any_outcome_frees_its_units(
    store: Store, database: Database
) -> None:
    order = await shipped_order(store, ("TEE-S", 4))
    await pay_manually(database, store, order["id"], 6000)
    returns = f"/api/v1/orders/{order['id']}/returns"
    one = return_lines(order, ("TEE-S", 1, "changed_mind"))
    refunded, received, credited, abandoned = [
        (await store.call("POST", returns, 201, json=one))["id"] for _ in range(4)
    ]
    for return_id in (refunded, received, credited, abandoned):
        await store.call("POST", f"/api/v1/returns/{return_id}/approve", 200)
    await store.call("POST", f"/api/v1/returns/{refunded}/refunds", 201, json={})
    await store.call("POST", f"/api/v1/returns/{credited}/store-credits", 201, json={"amount": 1})
    [line] = (await store.call("GET", f"/api/v1/returns/{received}", 200))["lines"]
    await store.call(
        "POST",
        f"/api/v1/returns/{received}/receive",
        200,
        json={"dispositions": [{"return_line_id": line["id"], "disposition": "missing", "quantity": 1}]},
    )
    await store.call("POST", f"/api/v1/returns/{abandoned}/in-transit", 200)
    for return_id in (refunded, received, credited, abandoned):
        await store.call("POST", f"/api/v1/returns/{return_id}/close", 200)

    # The parcel never came and nothing was given for it: its unit may be asked back again.
    # Money, store credit or a receipt (even of nothing) keep theirs claimed.
    problem = await store.call("POST", returns, 409, json=return_lines(order, ("TEE-S", 2, "other")))
    assert (problem["lines"][0]["returnable"], problem["lines"][0]["already_returning"]) == (1, 3)
    again = await store.call("POST", returns, 201, json=one)
    assert [line["quantity"] for line in again["lines"]] == [1]


async def test_a_line_named_twice_in_two_spellings_is_refused(store: Store) -> None:
    order = await shipped_order(store, ("TEE-S", 2))
    line_id = line_of(order, "TEE-S")["id"]
    spellings = (line_id, line_id.upper(), "{" + line_id + "}", line_id.replace("-", ""))
    problem = await store.call(
        "POST",
        f"/api/v1/orders/{order['id']}/returns",
        422,
        json={"lines": [{"line_id": text, "quantity": 2, "reason_code": "other"} for text in spellings]},
    )
    assert problem["errors"] == [
        {"field": f"lines[{index}].line_id", "message": "this line is named twice; name it once"}
        for index in (1, 2, 3)
    ]
    # Nothing was opened: both units can still come back, once.
    opened = await store.call(
        "POST", f"/api/v1/orders/{order['id']}/returns", 201, json=return_lines(order, ("TEE-S", 2, "other"))
    )
    assert [line["quantity"] for line in opened["lines"]] == [2]


async def test_another_stores_returns_are_404_on_every_route(
    client: AsyncTestClient[Litestar], store: Store
) -> None:
    order = await shipped_order(store, ("TEE-S", 1))
    created = await store.call(
        "POST", f"/api/v1/orders/{order['id']}/returns", 201, json=return_lines(order, ("TEE-S", 1, "other"))
    )
    other = await split_store(client)
    path = f"/api/v1/returns/{created['id']}"
    for method, route, body, code in (
        (
            "POST",
            f"/api/v1/orders/{order['id']}/returns",
            return_lines(order, ("TEE-S", 1, "other")),
            "order_not_found",
        ),
        ("GET", f"/api/v1/orders/{order['id']}/returns", None, "order_not_found"),
        ("GET", path, None, "return_not_found"),
        ("POST", f"{path}/approve", None, "return_not_found"),
        ("POST", f"{path}/decline", {"reason": "no"}, "return_not_found"),
        ("POST", f"{path}/in-transit", None, "return_not_found"),
        ("POST", f"{path}/receive", {"dispositions": []}, "return_not_found"),
        ("POST", f"{path}/inspections", {"decisions": []}, "return_not_found"),
        ("POST", f"{path}/close", None, "return_not_found"),
        ("POST", f"{path}/refunds", {}, "return_not_found"),
        ("POST", f"{path}/store-credits", {}, "return_not_found"),
        ("POST", f"{path}/exchange", {"lines": [{"sku": "TEE-S", "quantity": 1}]}, "return_not_found"),
        ("GET", f"/api/v1/customers/{store.customer_id}/store-credit", None, "customer_not_found"),
        (
            "POST",
            f"/api/v1/customers/{store.customer_id}/store-credit/redemptions",
            {"amount": 1, "currency": "EUR"},
            "customer_not_found",
        ),
        ("GET", "/api/v1/returns/not-an-id", None, "return_not_found"),
    ):
        kwargs: dict[str, Any] = {"json": body} if body is not None else {}
        assert (await other.call(method, route, 404, **kwargs))["code"] == code, route
    assert (await store.call("GET", path, 200))["status"] == "requested"
