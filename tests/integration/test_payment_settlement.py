"""Settling an order's money: refunds of an underpaid order, holds closed once nothing is left to ship."""

from __future__ import annotations

from litestar import Litestar
from litestar.testing import AsyncTestClient

from ordersmith.platform.database import Database
from ordersmith.tenants.payments import closing
from tests.support.fake_stripe import FakeStripe
from tests.support.fake_stripe.payments import AUTHENTICATION_REQUIRED, VISA, intent_event, payment_intents
from tests.support.fulfillment import release, run_consumer, ship
from tests.support.order_actions import timeline_of
from tests.support.order_edits import commit, set_quantity
from tests.support.orders import Store
from tests.support.payments import (
    card_order_one_unit_shipped,
    ledger,
    money,
    order_state,
    pay,
    payment_store,
    payments_of,
    send_webhook,
)


async def ship_all(store: Store, order_id: str) -> None:
    [fulfillment_order] = (await release(store, order_id))["data"]
    lines = [(line["line_id"], line["quantity_reserved"]) for line in fulfillment_order["lines"]]
    await ship(store, fulfillment_order["id"], lines)


async def release_holds(database: Database, store: Store) -> int:
    return await run_consumer(database, store, closing.CONSUMER_NAME)


# --- refunds never settle an order that still owes ---------------------------------------


async def test_a_refund_on_a_partly_paid_order_leaves_it_owing_and_open(
    client: AsyncTestClient[Litestar],
) -> None:
    store = await payment_store(client)
    order = await store.place(("TEE-S", 4))  # 10000
    taken = await pay(store, order["id"], provider="manual", amount=3000, method="bank_transfer")
    await ship_all(store, order["id"])
    assert await order_state(store, order["id"]) == ("confirmed", "partially_paid", "fulfilled", 10000)
    refunds = f"/api/v1/payments/{taken['payment']['id']}/refunds"

    goodwill = await store.call("POST", refunds, 201, json={"amount": 100, "reason": "dent"})

    assert goodwill["payment_status"] == "partially_paid"
    assert await order_state(store, order["id"]) == ("confirmed", "partially_paid", "fulfilled", 10000)
    # Still owed: the total less all ever captured (money given back is not owed again).
    assert money(await payments_of(store, order["id"])) == ("partially_paid", 3000, 100, 2900, 0, 7000)

    # All of it given back: nothing held, and still not settled.
    await store.call("POST", refunds, 201, json={"amount": 2900, "reason": "paying by card instead"})
    assert await order_state(store, order["id"]) == ("confirmed", "unpaid", "fulfilled", 10000)
    assert money(await payments_of(store, order["id"])) == ("unpaid", 3000, 3000, 0, 0, 7000)

    # Paid in full at last: settled (a refund is on record), and the shipped order completes.
    await pay(store, order["id"], provider="manual", method="cash")
    assert await order_state(store, order["id"]) == ("completed", "partially_refunded", "fulfilled", 10000)
    assert money(await payments_of(store, order["id"])) == ("partially_refunded", 10000, 3000, 7000, 0, 0)


async def test_a_refund_after_payment_in_full_keeps_a_completed_order_settled(
    client: AsyncTestClient[Litestar],
) -> None:
    store = await payment_store(client)
    order = await store.place(("TEE-S", 4))
    taken = await pay(store, order["id"], provider="manual", method="bank_transfer")
    await ship_all(store, order["id"])
    assert await order_state(store, order["id"]) == ("completed", "paid", "fulfilled", 10000)
    refunds = f"/api/v1/payments/{taken['payment']['id']}/refunds"

    await store.call("POST", refunds, 201, json={"amount": 100, "reason": "dent"})
    assert await order_state(store, order["id"]) == ("completed", "partially_refunded", "fulfilled", 10000)
    await store.call("POST", refunds, 201, json={"amount": 9900, "reason": "returned"})
    assert await order_state(store, order["id"]) == ("completed", "refunded", "fulfilled", 10000)


# --- the last shipment captures finally -------------------------------------------------


async def test_the_last_shipment_captures_finally_and_releases_what_the_order_no_longer_costs(
    client: AsyncTestClient[Litestar], fake: FakeStripe, database: Database
) -> None:
    store, order, taken, fulfillment_order, line = await card_order_one_unit_shipped(client)
    [intent] = payment_intents(fake)
    assert (intent["status"], intent["amount_received"], intent["amount_capturable"]) == (
        "requires_capture",
        2500,
        7500,
    )
    # One unit is cancelled while two are still to ship: the hold is still needed.
    await store.call(
        "POST",
        f"/api/v1/orders/{order['id']}/cancel",
        200,
        json={"reason": "damaged in the warehouse", "lines": [{"line_id": line["line_id"], "quantity": 1}]},
    )
    assert await release_holds(database, store) == 1
    assert intent["amount_capturable"] == 7500

    await ship(store, fulfillment_order["id"], [(line["line_id"], 2)])

    captures = fake.requests_to("POST", f"/v1/payment_intents/{intent['id']}/capture")
    assert [request.params for request in captures] == [
        {"amount_to_capture": "2500", "final_capture": "false"},
        {"amount_to_capture": "5000"},
    ]
    assert (intent["status"], intent["amount_received"], intent["amount_capturable"]) == (
        "succeeded",
        7500,
        0,
    )
    assert await order_state(store, order["id"]) == ("completed", "paid", "fulfilled", 7500)
    summary = await payments_of(store, order["id"])
    assert money(summary) == ("paid", 7500, 0, 7500, 0, 0)
    [payment] = summary["data"]
    assert payment["id"] == taken["payment"]["id"]
    assert ledger(payment)[-3:] == [
        ("capture", "request", 5000),
        ("capture", "success", 5000),
        ("void", "success", 2500),
    ]
    assert payment["transactions"][-1]["reason"] == closing.FINAL_CAPTURE_NOTE


async def test_the_last_shipment_shrinks_an_invoice_promise_to_what_is_owed(
    client: AsyncTestClient[Litestar], database: Database
) -> None:
    store = await payment_store(client, capture_policy="at_shipment")
    order = await store.place(("TEE-S", 4))  # 10000
    await pay(store, order["id"], provider="manual", method="invoice", capture=False)
    [fulfillment_order] = (await release(store, order["id"]))["data"]
    [line] = fulfillment_order["lines"]
    await store.call(
        "POST",
        f"/api/v1/orders/{order['id']}/cancel",
        200,
        json={
            "reason": "customer changed their mind",
            "lines": [{"line_id": line["line_id"], "quantity": 1}],
        },
    )
    await ship(store, fulfillment_order["id"], [(line["line_id"], 3)])

    # The invoice is still to be paid: 7500 of it, not 10000; nothing is recorded as received.
    summary = await payments_of(store, order["id"])
    assert money(summary) == ("authorized", 0, 0, 0, 7500, 7500)
    assert ledger(summary["data"][0])[-2:] == [("void", "request", 2500), ("void", "success", 2500)]
    assert await order_state(store, order["id"]) == ("confirmed", "authorized", "fulfilled", 7500)


# --- cancellations and edits release what is no longer needed ----------------------------


async def test_cancelling_the_rest_after_a_partial_shipment_releases_the_card(
    client: AsyncTestClient[Litestar], fake: FakeStripe, database: Database
) -> None:
    store, order, taken, _, line = await card_order_one_unit_shipped(client)

    await store.call(
        "POST",
        f"/api/v1/orders/{order['id']}/cancel",
        200,
        json={"reason": "out of stock", "lines": [{"line_id": line["line_id"], "quantity": 3}]},
    )
    [intent] = payment_intents(fake)
    # The cancellation itself commits without asking Stripe anything.
    assert (intent["status"], intent["amount_capturable"]) == ("requires_capture", 7500)

    assert await release_holds(database, store) == 1

    assert (intent["status"], intent["amount_received"], intent["amount_capturable"]) == ("canceled", 2500, 0)
    assert await order_state(store, order["id"]) == ("completed", "paid", "fulfilled", 2500)
    summary = await payments_of(store, order["id"])
    assert money(summary) == ("paid", 2500, 0, 2500, 0, 0)
    [payment] = summary["data"]
    assert ledger(payment)[-2:] == [("void", "request", 7500), ("void", "success", 7500)]
    assert payment["transactions"][-1]["actor_id"] == closing.RELEASER.id
    [voided] = [entry for entry in await timeline_of(store, order["id"]) if entry["kind"] == "payment_voided"]
    assert (voided["actor_type"], voided["changes"]["amount"]) == ("system", 7500)
    # Delivered again: nothing more happens.
    assert await release_holds(database, store) == 0
    assert len(fake.requests_to("POST", f"/v1/payment_intents/{intent['id']}/cancel")) == 1
    assert taken["payment"]["id"] == payment["id"]


async def test_cancelling_an_authorized_order_voids_the_card_hold(
    client: AsyncTestClient[Litestar], fake: FakeStripe, database: Database
) -> None:
    store = await payment_store(client, providers=("stripe",), capture_policy="at_shipment")
    order = await store.place(("TEE-S", 2))
    await pay(store, order["id"], provider="stripe", method=VISA)
    cancelled = await store.call(
        "POST", f"/api/v1/orders/{order['id']}/cancel", 200, json={"reason": "asked"}
    )
    assert (cancelled["status"], cancelled["payment_status"]) == ("cancelled", "authorized")

    assert await release_holds(database, store) == 1

    [intent] = payment_intents(fake)
    assert (intent["status"], intent["amount_capturable"], intent["amount_received"]) == ("canceled", 0, 0)
    assert await order_state(store, order["id"]) == ("cancelled", "voided", "unfulfilled", 0)
    assert money(await payments_of(store, order["id"])) == ("voided", 0, 0, 0, 0, 0)


async def test_cancelling_an_order_withdraws_its_invoice_promise(
    client: AsyncTestClient[Litestar], database: Database
) -> None:
    store = await payment_store(client, capture_policy="at_placement")
    order = await store.place(("TEE-S", 2))
    await pay(store, order["id"], provider="manual", method="invoice", capture=False)
    await store.call("POST", f"/api/v1/orders/{order['id']}/cancel", 200, json={"reason": "asked"})

    assert await release_holds(database, store) == 1

    summary = await payments_of(store, order["id"])
    assert money(summary) == ("voided", 0, 0, 0, 0, 0)
    assert ledger(summary["data"][0])[-2:] == [("void", "request", 5000), ("void", "success", 5000)]
    assert await order_state(store, order["id"]) == ("cancelled", "voided", "unfulfilled", 0)


async def test_a_cancellation_that_leaves_units_to_ship_keeps_the_hold(
    client: AsyncTestClient[Litestar], fake: FakeStripe, database: Database
) -> None:
    store = await payment_store(client, providers=("stripe",), capture_policy="at_shipment")
    order = await store.place(("TEE-S", 4))
    await pay(store, order["id"], provider="stripe", method=VISA)
    [line] = order["lines"]
    await store.call(
        "POST",
        f"/api/v1/orders/{order['id']}/cancel",
        200,
        json={"reason": "one fewer", "lines": [{"line_id": line["id"], "quantity": 1}]},
    )

    assert await release_holds(database, store) == 1

    [intent] = payment_intents(fake)
    assert (intent["status"], intent["amount_capturable"]) == ("requires_capture", 10000)
    assert fake.requests_to("POST", f"/v1/payment_intents/{intent['id']}/cancel") == []
    assert money(await payments_of(store, order["id"])) == ("authorized", 0, 0, 0, 10000, 7500)


async def test_an_edit_that_leaves_nothing_to_ship_releases_the_rest_of_the_hold(
    client: AsyncTestClient[Litestar], fake: FakeStripe, database: Database
) -> None:
    store, order, _, _, line = await card_order_one_unit_shipped(client)

    await commit(store, order["id"], set_quantity(line["line_id"], 1))

    assert await release_holds(database, store) == 1
    [intent] = payment_intents(fake)
    assert (intent["status"], intent["amount_received"], intent["amount_capturable"]) == ("canceled", 2500, 0)
    assert money(await payments_of(store, order["id"])) == ("paid", 2500, 0, 2500, 0, 0)
    assert await order_state(store, order["id"]) == ("completed", "paid", "fulfilled", 2500)


async def test_cancelling_an_order_cancels_a_payment_still_waiting_on_its_customer(
    client: AsyncTestClient[Litestar], fake: FakeStripe, database: Database
) -> None:
    store = await payment_store(client, providers=("stripe",), capture_policy="at_shipment")
    order = await store.place(("TEE-S", 2))
    await pay(store, order["id"], provider="stripe", method=AUTHENTICATION_REQUIRED)
    await store.call("POST", f"/api/v1/orders/{order['id']}/cancel", 200, json={"reason": "asked"})
    [intent] = payment_intents(fake)
    assert intent["status"] == "requires_action"

    assert await release_holds(database, store) == 1

    # Cancelled at Stripe: the customer can no longer authenticate a payment nobody needs.
    assert intent["status"] == "canceled"
    summary = await payments_of(store, order["id"])
    [payment] = summary["data"]
    assert (summary["payment_status"], payment["status"]) == ("voided", "voided")
    assert ledger(payment) == [
        ("authorize", "request", 5000),
        ("authorize", "requires_action", 5000),
        ("void", "request", 0),
        ("void", "success", 0),
    ]
    assert await order_state(store, order["id"]) == ("cancelled", "voided", "unfulfilled", 0)
    assert await release_holds(database, store) == 0
    # An authorization reported late (the customer finished just before the cancel) was
    # released by it: the ledger does not take it, nor Stripe's own word of the cancel.
    stale = intent_event(
        fake,
        "payment_intent.amount_capturable_updated",
        intent["id"],
        status="requires_capture",
        amount_capturable=5000,
    )
    assert (await send_webhook(store, stale))["outcome"] == "ignored: the ledger already says so"
    cancelled = intent_event(fake, "payment_intent.canceled", intent["id"])
    assert (await send_webhook(store, cancelled))["outcome"] == "ignored: the ledger already says so"
    assert ledger((await payments_of(store, order["id"]))["data"][0]) == ledger(payment)


async def test_a_payment_waiting_on_its_customer_is_cancelled_only_once_the_order_is_covered(
    client: AsyncTestClient[Litestar], fake: FakeStripe, database: Database
) -> None:
    store = await payment_store(client, providers=("stripe",), capture_policy="at_shipment")
    covered = await store.place(("TEE-S", 4))  # 10000
    await pay(store, covered["id"], provider="stripe", method=VISA, amount=5000)
    await pay(store, covered["id"], provider="stripe", method=AUTHENTICATION_REQUIRED, amount=5000)
    owing = await store.place(("TEE-S", 4))
    await pay(store, owing["id"], provider="stripe", method=AUTHENTICATION_REQUIRED)
    for order in (covered, owing):
        [fulfillment_order] = (await release(store, order["id"]))["data"]
        [line] = fulfillment_order["lines"]
        await ship(store, fulfillment_order["id"], [(line["line_id"], 2)])
        await store.call(
            "POST",
            f"/api/v1/orders/{order['id']}/cancel",
            200,
            json={"reason": "two fewer", "lines": [{"line_id": line["line_id"], "quantity": 2}]},
        )

    assert await release_holds(database, store) == 2

    # The card captured the 5000 the shipped half costs: the waiting payment is not needed.
    card, waiting = payment_intents(fake)[:2]
    assert (card["status"], card["amount_received"]) == ("succeeded", 5000)
    assert waiting["status"] == "canceled"
    assert money(await payments_of(store, covered["id"])) == ("paid", 5000, 0, 5000, 0, 0)
    # Nothing else pays for the shipped half: the customer may still complete it.
    [still_waiting] = payment_intents(fake)[2:]
    assert still_waiting["status"] == "requires_action"
    assert fake.requests_to("POST", f"/v1/payment_intents/{still_waiting['id']}/cancel") == []
    assert money(await payments_of(store, owing["id"])) == ("requires_action", 0, 0, 0, 0, 5000)


async def test_a_void_the_provider_fails_is_recorded_then_retried_and_the_cancellation_stands(
    client: AsyncTestClient[Litestar], fake: FakeStripe, database: Database
) -> None:
    store = await payment_store(client, providers=("stripe",), capture_policy="at_shipment")
    order = await store.place(("TEE-S", 2))
    taken = await pay(store, order["id"], provider="stripe", method=VISA)
    await store.call("POST", f"/api/v1/orders/{order['id']}/cancel", 200, json={"reason": "asked"})

    fake.unreachable = True
    assert await release_holds(database, store) == 1
    fake.unreachable = False

    assert await order_state(store, order["id"]) == ("cancelled", "authorized", "unfulfilled", 0)
    payment_path = f"/api/v1/payments/{taken['payment']['id']}"
    failed = await store.call("GET", payment_path, 200)
    assert ledger(failed)[-2:] == [("void", "request", 5000), ("void", "failure", 5000)]
    assert failed["transactions"][-1]["error_code"] == "provider_unreachable"
    [intent] = payment_intents(fake)
    assert intent["status"] == "requires_capture"

    retried = await store.call("POST", f"{payment_path}/retry", 201)

    assert (retried["payment_status"], retried["last_transaction"]["state"]) == ("voided", "success")
    assert (intent["status"], intent["amount_capturable"]) == ("canceled", 0)
    # The very request that failed, sent again with its key.
    [request_row] = [
        row for row in failed["transactions"] if row["kind"] == "void" and row["state"] == "request"
    ]
    cancels = fake.requests_to("POST", f"/v1/payment_intents/{intent['id']}/cancel")
    assert [request.idempotency_key for request in cancels] == [
        f"ordersmith:{taken['payment']['id']}:void:{request_row['id']}"
    ]
    assert await order_state(store, order["id"]) == ("cancelled", "voided", "unfulfilled", 0)


async def test_a_final_capture_the_provider_missed_is_retried_as_final(
    client: AsyncTestClient[Litestar], fake: FakeStripe
) -> None:
    store, order, taken, fulfillment_order, line = await card_order_one_unit_shipped(client)
    await store.call(
        "POST",
        f"/api/v1/orders/{order['id']}/cancel",
        200,
        json={"reason": "damaged in the warehouse", "lines": [{"line_id": line["line_id"], "quantity": 1}]},
    )
    # The last two units ship while Stripe cannot be reached: the shipment stands, the capture failed.
    fake.unreachable = True
    await ship(store, fulfillment_order["id"], [(line["line_id"], 2)])
    fake.unreachable = False
    payment_path = f"/api/v1/payments/{taken['payment']['id']}"
    failed = await store.call("GET", payment_path, 200)
    assert ledger(failed)[-2:] == [("capture", "request", 5000), ("capture", "failure", 5000)]
    [request_row] = [row for row in failed["transactions"] if row["kind"] == "capture"][-2:-1]
    assert request_row["reason"] == closing.FINAL_CAPTURE

    retried = await store.call("POST", f"{payment_path}/retry", 201)

    # Sent again as it was: the same key, and final, so Stripe lets the 2,500 no longer owed go.
    [intent] = payment_intents(fake)
    captures = fake.requests_to("POST", f"/v1/payment_intents/{intent['id']}/capture")
    assert [(request.params, request.idempotency_key) for request in captures[1:]] == [
        ({"amount_to_capture": "5000"}, f"ordersmith:{taken['payment']['id']}:capture:{request_row['id']}")
    ]
    assert (intent["status"], intent["amount_received"], intent["amount_capturable"]) == (
        "succeeded",
        7500,
        0,
    )
    assert retried["payment_status"] == "paid"
    assert ledger(retried["payment"])[-3:] == [
        ("capture", "request", 5000),
        ("capture", "success", 5000),
        ("void", "success", 2500),
    ]
    assert await order_state(store, order["id"]) == ("completed", "paid", "fulfilled", 7500)
