"""Manual payments over HTTP: partial payments, invoice terms, refunds within what was captured."""

from __future__ import annotations

import pytest
from litestar import Litestar
from litestar.testing import AsyncTestClient

from ordersmith.platform.database import Database
from tests.support.fulfillment import release, ship
from tests.support.order_actions import api_key_headers, events_of, timeline_of, user_id
from tests.support.orders import Store
from tests.support.payments import ledger, pay, payment_store, payments_of


@pytest.fixture
async def store(client: AsyncTestClient[Litestar]) -> Store:
    return await payment_store(client)


async def test_partial_payments_add_up_to_paid_then_refunds_give_money_back(
    store: Store, database: Database
) -> None:
    order = await store.place(("TEE-S", 2))  # 50.00 EUR
    assert (order["total_amount"], order["payment_status"], order["touch_count"]) == (5000, "unpaid", 1)

    first = await pay(
        store, order["id"], provider="manual", amount=2000, method="bank_transfer", note="part 1"
    )
    assert first["payment_status"] == "partially_paid"
    payment = first["payment"]
    assert (payment["provider"], payment["method"], payment["status"], payment["note"]) == (
        "manual",
        "bank_transfer",
        "captured",
        "part 1",
    )
    assert ledger(payment) == [("capture", "request", 2000), ("capture", "success", 2000)]
    assert first["last_transaction"]["id"] == payment["transactions"][1]["id"]
    assert payment["transactions"][1]["request_id"] == payment["transactions"][0]["id"]

    # Without an amount, a payment takes what the order still owes.
    second = await pay(store, order["id"], provider="manual", method="cash")
    assert (second["payment"]["amount"], second["payment_status"]) == (3000, "paid")

    summary = await payments_of(store, order["id"])
    assert {key: summary[key] for key in summary if key.endswith("amount") or key == "payment_status"} == {
        "total_amount": 5000,
        "payment_status": "paid",
        "captured_amount": 5000,
        "refunded_amount": 0,
        "net_paid_amount": 5000,
        "capturable_amount": 0,
        "refundable_amount": 5000,
        "balance_due_amount": 0,
    }
    assert [item["id"] for item in summary["data"]] == [payment["id"], second["payment"]["id"]]

    # Nothing left to pay: an amount must be given.
    problem = await pay(store, order["id"], 422, provider="manual")
    assert problem["errors"] == [
        {"field": "amount", "message": "required: the order's balance is already paid or authorized"}
    ]

    refunds = f"/api/v1/payments/{payment['id']}/refunds"
    too_much = await store.call("POST", refunds, 422, json={"amount": 2001, "reason": "damaged"})
    assert (too_much["code"], too_much["refundable_amount"], too_much["currency"]) == (
        "refund_exceeds_captured",
        2000,
        "EUR",
    )
    assert too_much["errors"] == [
        {"field": "amount", "message": "must be at most the refundable amount, 2000 EUR"}
    ]

    partly = await store.call("POST", refunds, 201, json={"amount": 500, "reason": " damaged "})
    assert (partly["payment_status"], partly["payment"]["status"]) == (
        "partially_refunded",
        "partially_refunded",
    )
    assert partly["last_transaction"]["reason"] == "damaged"
    assert partly["payment"]["refundable_amount"] == 1500
    rest = await store.call("POST", refunds, 201, json={"amount": 1500})
    assert rest["payment"]["status"] == "refunded"
    assert rest["payment_status"] == "partially_refunded"
    again = await store.call("POST", refunds, 422, json={"amount": 1})
    assert again["refundable_amount"] == 0

    refund_all = f"/api/v1/payments/{second['payment']['id']}/refunds"
    done = await store.call("POST", refund_all, 201, json={"amount": 3000})
    assert done["payment_status"] == "refunded"
    read = await store.call("GET", f"/api/v1/orders/{order['id']}", 200)
    assert read["payment_status"] == "refunded"

    owner = await user_id(store)
    entries = [item for item in await timeline_of(store, order["id"]) if item["kind"].startswith("payment_")]
    assert [item["kind"] for item in entries] == [
        "payment_captured",
        "payment_captured",
        "payment_refunded",
        "payment_refunded",
        "payment_refunded",
    ]
    assert entries[0]["changes"] == {
        "payment_id": payment["id"],
        "transaction_id": payment["transactions"][1]["id"],
        "provider": "manual",
        "amount": 2000,
        "currency": "EUR",
        "payment_status": {"old": "unpaid", "new": "partially_paid"},
    }
    assert [(item["actor_type"], item["actor_id"], item["is_touch"]) for item in entries] == [
        ("user", owner, True)
    ] * 5
    # Placed, then five payment changes, each by a person.
    assert read["touch_count"] == 6

    events = [
        (topic, payload) for topic, payload in await events_of(database, order["id"]) if "payment" in topic
    ]
    assert [topic for topic, _ in events] == [
        "payment.captured",
        "payment.captured",
        "payment.refunded",
        "payment.refunded",
        "payment.refunded",
    ]
    assert events[-1][1] == {
        "order_id": order["id"],
        "number": order["number"],
        "payment_id": second["payment"]["id"],
        "transaction_id": done["last_transaction"]["id"],
        "provider": "manual",
        "amount": 3000,
        "currency": "EUR",
        "payment_status": "refunded",
    }


async def test_invoice_terms_are_authorized_then_paid_in_parts_never_beyond_the_authorization(
    store: Store,
) -> None:
    order = await store.place(("TEE-S", 4))  # 100.00 EUR
    integration = await api_key_headers(store)
    promised = await pay(
        store, order["id"], provider="manual", method="invoice", capture=False, headers=integration
    )
    payment = promised["payment"]
    assert (promised["payment_status"], payment["status"], payment["capturable_amount"]) == (
        "authorized",
        "authorized",
        10000,
    )
    capture = f"/api/v1/payments/{payment['id']}/capture"
    over = await store.call("POST", capture, 422, json={"amount": 10001})
    assert (over["code"], over["capturable_amount"]) == ("capture_exceeds_authorized", 10000)

    part = await store.call("POST", capture, 201, json={"amount": 6000})
    assert (part["payment_status"], part["payment"]["status"]) == ("partially_paid", "partially_captured")
    assert part["payment"]["capturable_amount"] == 4000
    over = await store.call("POST", capture, 422, json={"amount": 4001})
    assert over["capturable_amount"] == 4000

    rest = await store.call("POST", capture, 201)
    assert (rest["payment_status"], rest["last_transaction"]["amount"]) == ("paid", 4000)
    assert ledger(rest["payment"]) == [
        ("authorize", "request", 10000),
        ("authorize", "success", 10000),
        ("capture", "request", 6000),
        ("capture", "success", 6000),
        ("capture", "request", 4000),
        ("capture", "success", 4000),
    ]
    nothing = await store.call("POST", capture, 422)
    assert nothing["capturable_amount"] == 0
    assert (await store.call("POST", f"/api/v1/payments/{payment['id']}/void", 409))[
        "code"
    ] == "nothing_to_void"
    # Placed by the owner; the API key's payment is no touch; the owner's two captures are.
    assert (await store.call("GET", f"/api/v1/orders/{order['id']}", 200))["touch_count"] == 3


async def test_shipping_does_not_take_an_invoice_promise_as_money_received(
    client: AsyncTestClient[Litestar],
) -> None:
    store = await payment_store(client, capture_policy="at_shipment")
    order = await store.place(("TEE-S", 2))  # 50.00 EUR
    promised = await pay(store, order["id"], provider="manual", method="invoice", capture=False)
    [fulfillment_order] = (await release(store, order["id"]))["data"]
    [line] = fulfillment_order["lines"]
    await ship(store, fulfillment_order["id"], [(line["line_id"], 2)])

    # Shipped in full, but the invoice is unpaid: the order waits for the money, not completed.
    shipped = await store.call("GET", f"/api/v1/orders/{order['id']}", 200)
    assert (shipped["status"], shipped["payment_status"], shipped["fulfillment_status"]) == (
        "confirmed",
        "authorized",
        "fulfilled",
    )
    summary = await payments_of(store, order["id"])
    assert (summary["captured_amount"], summary["capturable_amount"]) == (0, 5000)
    # The money arrives and a person records it: now it is paid, and the order completes.
    paid = await store.call("POST", f"/api/v1/payments/{promised['payment']['id']}/capture", 201)
    assert paid["payment_status"] == "paid"
    done = await store.call("GET", f"/api/v1/orders/{order['id']}", 200)
    assert done["status"] == "completed"


async def test_a_voided_promise_leaves_the_order_voided_and_an_overpayment_is_overpaid(store: Store) -> None:
    order = await store.place(("TEE-S", 1))  # 25.00 EUR
    promised = await pay(store, order["id"], provider="manual", method="invoice", capture=False)
    voided = await store.call("POST", f"/api/v1/payments/{promised['payment']['id']}/void", 201)
    assert (voided["payment_status"], voided["payment"]["status"]) == ("voided", "voided")
    assert ledger(voided["payment"])[-2:] == [("void", "request", 2500), ("void", "success", 2500)]

    overpaid = await pay(store, order["id"], provider="manual", amount=3000, method="cash")
    assert overpaid["payment_status"] == "overpaid"
    back = await store.call(
        "POST", f"/api/v1/payments/{overpaid['payment']['id']}/refunds", 201, json={"amount": 500}
    )
    assert back["payment_status"] == "partially_refunded"


async def test_bad_payments_are_refused_before_anything_is_recorded(store: Store) -> None:
    order = await store.place(("TEE-S", 1))
    problem = await pay(store, order["id"], 422, provider="paypal", amount=0, currency="USD", method="gold")
    assert sorted(item["field"] for item in problem["errors"]) == ["amount", "currency", "provider"]
    not_enabled = await pay(store, order["id"], 409, provider="stripe", method="pm_card_visa")
    assert (not_enabled["code"], not_enabled["enabled_providers"]) == (
        "payment_provider_not_enabled",
        ["manual"],
    )
    cancelled = await store.place(("TEE-S", 1))
    await store.call(
        "POST", f"/api/v1/orders/{cancelled['id']}/cancel", 200, json={"reason": "customer asked"}
    )
    refused = await pay(store, cancelled["id"], 409, provider="manual", amount=100)
    assert (refused["code"], refused["current_status"]) == ("order_not_payable", "cancelled")
    assert (await payments_of(store, order["id"]))["data"] == []


async def test_an_idempotency_key_takes_a_payment_once(store: Store) -> None:
    order = await store.place(("TEE-S", 2))
    headers = {"Idempotency-Key": "pay-1"}
    first = await pay(store, order["id"], provider="manual", amount=1000, headers=headers)
    replay = await store.client.post(
        f"/api/v1/orders/{order['id']}/payments",
        json={"provider": "manual", "amount": 1000},
        headers={**store.headers, **headers},
    )
    assert (replay.status_code, replay.headers["Idempotent-Replayed"]) == (201, "true")
    assert replay.json() == first
    assert len((await payments_of(store, order["id"]))["data"]) == 1


async def test_an_agent_may_take_payments_but_not_refund(store: Store) -> None:
    order = await store.place(("TEE-S", 1))
    taken = await pay(store, order["id"], provider="manual", amount=2500)
    agent = await api_key_headers(store, ["orders.read", "orders.write"])
    refused = await store.call(
        "POST", f"/api/v1/payments/{taken['payment']['id']}/refunds", 403, json={"amount": 100}, headers=agent
    )
    assert refused["code"] == "permission_denied"


async def test_an_edit_preview_counts_what_the_ledger_says_is_paid(store: Store) -> None:
    order = await store.place(("TEE-S", 2))  # 50.00 EUR
    await pay(store, order["id"], provider="manual", amount=2000)
    line = order["lines"][0]["id"]
    preview = (
        await store.call(
            "POST",
            f"/api/v1/orders/{order['id']}/edits/preview",
            200,
            json={"changes": [{"op": "set_quantity", "line_id": line, "quantity": 3}]},
        )
    )["edit"]
    assert (preview["settled_basis"], preview["settled_amount"], preview["balance_due_amount"]) == (
        "payments",
        2000,
        5500,
    )
