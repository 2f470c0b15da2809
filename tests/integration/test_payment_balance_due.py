"""What an order still owes: its total less all ever captured; money given back is not taken again."""

from __future__ import annotations

from typing import Any

from litestar import Litestar
from litestar.testing import AsyncTestClient

from ordersmith.tenants.payments import closing
from tests.support.fake_stripe import FakeStripe
from tests.support.fake_stripe.payments import VISA, payment_intents
from tests.support.fulfillment import approved_return, line_of, ship_whole
from tests.support.order_edits import commit, preview, set_quantity
from tests.support.orders import Store
from tests.support.payments import (
    card_order_one_unit_shipped,
    ledger,
    money,
    order_state,
    pay,
    payment_store,
    payments_of,
)

# --- what the order still owes: money given back is not taken again ----------------------


def edit_money(edit: dict[str, Any]) -> tuple[int, int, int, int]:
    """An edit preview's money: (new total, settled, balance due, refund owed)."""
    return (
        edit["new_total_amount"],
        edit["settled_amount"],
        edit["balance_due_amount"],
        edit["refund_owed_amount"],
    )


NOTHING_OWED = {"field": "amount", "message": "required: the order's balance is already paid or authorized"}
NOTHING_OWED_DETAIL = (
    "the order owes nothing more: its total is captured or authorized already, and money "
    "refunded is not taken again; give an amount to take a payment anyway"
)


async def test_a_returns_refund_on_a_paid_completed_order_is_not_owed_again(
    client: AsyncTestClient[Litestar],
) -> None:
    store = await payment_store(client)  # TEE-S at 2500
    order = await store.place(("TEE-S", 2))  # 5000
    await pay(store, order["id"], provider="manual", method="bank_transfer")
    shipped = await ship_whole(store, order["id"])
    assert (shipped["status"], shipped["payment_status"]) == ("completed", "paid")
    returned = await approved_return(store, shipped, "TEE-S", 1)

    await store.call(
        "POST", f"/api/v1/returns/{returned['id']}/refunds", 201, json={"amount": 2500, "reason": "returned"}
    )

    assert money(await payments_of(store, order["id"])) == ("partially_refunded", 5000, 2500, 2500, 0, 0)
    # A payment without an amount would take the refunded money from the customer again.
    problem = await pay(store, order["id"], 422, provider="manual", method="cash")
    assert (problem["code"], problem["detail"], problem["errors"]) == (
        "validation_failed",
        NOTHING_OWED_DETAIL,
        [NOTHING_OWED],
    )
    assert len((await payments_of(store, order["id"]))["data"]) == 1
    assert await order_state(store, order["id"]) == ("completed", "partially_refunded", "fulfilled", 5000)


async def test_a_goodwill_refund_on_a_paid_order_is_not_owed_again(client: AsyncTestClient[Litestar]) -> None:
    store = await payment_store(client)
    order = await store.place(("TEE-S", 2))  # 5000
    taken = await pay(store, order["id"], provider="manual", method="bank_transfer")
    refunds = f"/api/v1/payments/{taken['payment']['id']}/refunds"

    await store.call("POST", refunds, 201, json={"amount": 500, "reason": "scratched box"})

    assert money(await payments_of(store, order["id"])) == ("partially_refunded", 5000, 500, 4500, 0, 0)
    problem = await pay(store, order["id"], 422, provider="manual", method="cash")
    assert (problem["detail"], problem["errors"]) == (NOTHING_OWED_DETAIL, [NOTHING_OWED])
    assert len((await payments_of(store, order["id"]))["data"]) == 1


async def _paid_with_goodwill(client: AsyncTestClient[Litestar]) -> tuple[Store, dict[str, Any]]:
    """A store and an order of two tees (5000) paid in full, then 500 given back for a scratched box."""
    store = await payment_store(client)
    order = await store.place(("TEE-S", 2))
    taken = await pay(store, order["id"], provider="manual", method="bank_transfer")
    refunds = f"/api/v1/payments/{taken['payment']['id']}/refunds"
    await store.call("POST", refunds, 201, json={"amount": 500, "reason": "scratched box"})
    return store, order


async def test_an_edit_after_a_goodwill_refund_owes_only_the_raise_beyond_what_was_captured(
    client: AsyncTestClient[Litestar],
) -> None:
    store, order = await _paid_with_goodwill(client)
    line = order["lines"][0]["id"]

    raised = (await preview(store, order["id"], set_quantity(line, 3)))["edit"]

    # settled: the 5000 captured toward the 5000 total; the 500 given back is not owed again.
    assert edit_money(raised) == (7500, 5000, 2500, 0)
    # Committed, the order's payments agree, and a payment without an amount takes just that.
    await commit(store, order["id"], set_quantity(line, 3))
    assert money(await payments_of(store, order["id"])) == ("partially_paid", 5000, 500, 4500, 0, 2500)
    second = await pay(store, order["id"], provider="manual", method="cash")
    assert (second["payment"]["amount"], second["payment_status"]) == (2500, "partially_refunded")
    assert money(await payments_of(store, order["id"])) == ("partially_refunded", 7500, 500, 7000, 0, 0)


async def test_an_edit_cutting_the_total_after_a_goodwill_refund_owes_back_the_whole_cut(
    client: AsyncTestClient[Litestar],
) -> None:
    store, order = await _paid_with_goodwill(client)

    cut = (await preview(store, order["id"], set_quantity(order["lines"][0]["id"], 1)))["edit"]

    # The goodwill was given for the box; the unit taken off the order is owed back whole.
    assert edit_money(cut) == (
        2500,
        5000,
        0,
        2500,
    )


async def test_an_edit_cutting_the_total_again_owes_back_only_what_was_not_refunded_yet(
    client: AsyncTestClient[Litestar],
) -> None:
    store = await payment_store(client)
    order = await store.place(("TEE-S", 3))  # 7500
    taken = await pay(store, order["id"], provider="manual", method="bank_transfer")
    line = order["lines"][0]["id"]
    await commit(store, order["id"], set_quantity(line, 2))  # 5000: 2500 owed back
    refunds = f"/api/v1/payments/{taken['payment']['id']}/refunds"
    await store.call("POST", refunds, 201, json={"amount": 2500, "reason": "one tee taken off"})

    cut = (await preview(store, order["id"], set_quantity(line, 1)))["edit"]

    assert edit_money(cut) == (
        2500,
        5000,
        0,
        2500,
    )


# --- a card taken after the last shipment at a store capturing at shipment -----------------


async def test_a_card_payment_taken_after_the_last_shipment_is_captured_and_completes_the_order(
    client: AsyncTestClient[Litestar], fake: FakeStripe
) -> None:
    store = await payment_store(client, providers=("stripe",), capture_policy="at_shipment")
    order = await store.place(("TEE-S", 2))  # 5000
    await pay(store, order["id"], provider="stripe", method=VISA)
    line = line_of(order, "TEE-S")
    await commit(store, order["id"], set_quantity(line["id"], 3))  # 7500
    shipped = await ship_whole(store, order["id"])
    assert (shipped["status"], shipped["payment_status"], shipped["fulfillment_status"]) == (
        "confirmed",
        "partially_paid",
        "fulfilled",
    )

    # The customer pays the 2500 the edit added; nothing is left to ship to capture it.
    second = await pay(store, order["id"], provider="stripe", method=VISA)

    assert (second["payment"]["status"], second["payment_status"]) == ("captured", "paid")
    assert (second["last_transaction"]["kind"], second["last_transaction"]["amount"]) == ("capture", 2500)
    assert second["last_transaction"]["reason"] == closing.FINAL_CAPTURE
    first_intent, second_intent = payment_intents(fake)
    assert (
        second_intent["status"],
        second_intent["amount_received"],
        second_intent["amount_capturable"],
    ) == (
        "succeeded",
        2500,
        0,
    )
    assert (first_intent["status"], first_intent["amount_received"]) == ("succeeded", 5000)
    summary = await payments_of(store, order["id"])
    assert money(summary) == ("paid", 7500, 0, 7500, 0, 0)
    assert ledger(summary["data"][1]) == [
        ("authorize", "request", 2500),
        ("authorize", "success", 2500),
        ("capture", "request", 2500),
        ("capture", "success", 2500),
    ]
    assert await order_state(store, order["id"]) == ("completed", "paid", "fulfilled", 7500)


async def test_a_card_payment_taken_while_units_are_left_to_ship_stays_authorized(
    client: AsyncTestClient[Litestar], fake: FakeStripe
) -> None:
    store, order, _, _, _ = await card_order_one_unit_shipped(client)

    second = await pay(store, order["id"], provider="stripe", method=VISA, amount=1000)

    assert (second["payment"]["status"], second["last_transaction"]["kind"]) == ("authorized", "authorize")
    assert payment_intents(fake)[1]["status"] == "requires_capture"
    assert await order_state(store, order["id"]) == (
        "confirmed",
        "partially_paid",
        "partially_fulfilled",
        10000,
    )


async def test_a_card_payment_of_a_given_amount_after_the_last_shipment_is_captured_whole(
    client: AsyncTestClient[Litestar], fake: FakeStripe
) -> None:
    store = await payment_store(client, providers=("stripe", "manual"), capture_policy="at_shipment")
    order = await store.place(("TEE-S", 2))  # 5000
    first = await pay(store, order["id"], provider="manual", method="bank_transfer")
    await ship_whole(store, order["id"])
    refunds = f"/api/v1/payments/{first['payment']['id']}/refunds"
    await store.call("POST", refunds, 201, json={"amount": 5000, "reason": "paying by card instead"})

    # A refund is never owed again (known limits): the merchant names the amount to take.
    second = await pay(store, order["id"], provider="stripe", method=VISA, amount=5000)

    [intent] = payment_intents(fake)
    assert (second["payment"]["status"], intent["status"], intent["amount_received"]) == (
        "captured",
        "succeeded",
        5000,
    )
    assert money(await payments_of(store, order["id"])) == ("partially_refunded", 10000, 5000, 5000, 0, 0)
