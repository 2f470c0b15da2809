"""A dispute Stripe closes: won gives the chargeback back, lost keeps it, an inquiry closed undoes it.

`charge.dispute.created` counted a chargeback (`payments/webhooks.py`); `charge.dispute.closed`
says how it ended. The ledger writes one `chargeback_reversal` row per dispute: a success
when the money came back, a failure (`dispute_lost`) when the bank kept it.
"""

from __future__ import annotations

import uuid
from typing import Any

import pytest
from litestar import Litestar
from litestar.testing import AsyncTestClient

from ordersmith.platform.database import Database
from ordersmith.tenants.payments.status import LedgerEntry, amounts_of
from tests.support.fake_stripe import FakeStripe, event
from tests.support.fake_stripe.payments import DECLINED, VISA, close_dispute, fail_at_stripe, open_dispute
from tests.support.order_actions import events_of, timeline_of
from tests.support.orders import Store
from tests.support.payments import (
    ledger,
    ledger_rows,
    origin,
    paid_by_card,
    pay,
    payment_store,
    payments_of,
    refund_all_and_no_more,
    send_webhook,
)


@pytest.fixture
async def store(client: AsyncTestClient[Litestar], fake: FakeStripe) -> Store:
    return await payment_store(client, providers=("stripe",), capture_policy="at_placement")


async def _disputed(
    store: Store, fake: FakeStripe, payment: dict[str, Any], amount: int, *, inquiry: bool = False
) -> str:
    """The cardholder disputes `amount` and Stripe reports it; returns the dispute's id."""
    dispute = open_dispute(fake, payment["provider_reference"], amount, inquiry=inquiry)
    assert (await send_webhook(store, event("charge.dispute.created", dispute)))["outcome"] == "applied"
    return str(dispute["id"])


def _money(summary: dict[str, Any]) -> tuple[Any, ...]:
    """What the order's payments add up to: status, captured, refunded, net, refundable, charged back."""
    [view] = summary["data"]
    return (
        summary["payment_status"],
        summary["captured_amount"],
        summary["refunded_amount"],
        summary["net_paid_amount"],
        summary["refundable_amount"],
        view["charged_back_amount"],
        view["status"],
    )


async def test_a_won_dispute_gives_the_chargeback_back_once_and_says_so(
    store: Store, fake: FakeStripe, database: Database
) -> None:
    order, payment = await paid_by_card(store)
    dispute_id = await _disputed(store, fake, payment, 5000)
    chargeback = (await payments_of(store, order["id"]))["data"][0]["transactions"][-1]
    assert _money(await payments_of(store, order["id"])) == ("refunded", 5000, 5000, 0, 0, 5000, "refunded")

    closed = event("charge.dispute.closed", close_dispute(fake, dispute_id, "won"))
    assert (await send_webhook(store, closed))["outcome"] == "applied"
    assert (await send_webhook(store, closed))["outcome"] == "duplicate"
    # Another event about the same closing (Stripe resends state, not deltas) adds nothing.
    again = await send_webhook(store, event("charge.dispute.closed", fake.get("dispute", dispute_id)))
    assert again["outcome"] == "ignored: the ledger already says so"

    summary = await payments_of(store, order["id"])
    assert _money(summary) == ("paid", 5000, 0, 5000, 5000, 0, "captured")
    [view] = summary["data"]
    assert ledger(view)[-2:] == [("chargeback", "success", 5000), ("chargeback_reversal", "success", 5000)]
    reversal = view["transactions"][-1]
    assert origin(reversal) == (
        dispute_id,
        None,
        "dispute won: the bank gave the money back",
        "system",
        "stripe-webhook",
        None,
    )
    assert len(await ledger_rows(database, store, order["id"])) == 6

    details = {
        "payment_id": payment["id"],
        "transaction_id": reversal["id"],
        "provider": "stripe",
        "amount": 5000,
        "currency": "EUR",
        "reason": "dispute won: the bank gave the money back",
        "dispute_id": dispute_id,
        "dispute_status": "won",
        "chargeback_transaction_id": chargeback["id"],
    }
    [told] = [
        item
        for item in await timeline_of(store, order["id"])
        if item["kind"] == "payment_chargeback_reversed"
    ]
    assert told["changes"] == {**details, "payment_status": {"old": "refunded", "new": "paid"}}
    assert (told["actor_type"], told["actor_id"], told["is_touch"]) == ("system", "stripe-webhook", False)
    assert (await events_of(database, order["id"]))[-1] == (
        "payment.chargeback_reversed",
        {"order_id": order["id"], "number": order["number"], **details, "payment_status": "paid"},
    )
    # The dispute's hold still waits for a person: whether to ship is theirs to decide.
    read = await store.call("GET", f"/api/v1/orders/{order['id']}", 200)
    assert (read["payment_status"], read["open_hold_count"]) == ("paid", 1)
    # The money is the merchant's again: all of it may be refunded, and no more.
    await refund_all_and_no_more(store, payment, 5000)


async def test_a_lost_dispute_is_told_and_the_money_stays_gone(
    store: Store, fake: FakeStripe, database: Database
) -> None:
    order, payment = await paid_by_card(store)
    dispute_id = await _disputed(store, fake, payment, 3000)
    before = _money(await payments_of(store, order["id"]))
    assert before == ("partially_refunded", 5000, 3000, 2000, 2000, 3000, "partially_refunded")

    closed = event("charge.dispute.closed", close_dispute(fake, dispute_id, "lost"))
    assert (await send_webhook(store, closed))["outcome"] == "applied"
    again = await send_webhook(store, event("charge.dispute.closed", fake.get("dispute", dispute_id)))
    assert again["outcome"] == "ignored: the ledger already says so"

    summary = await payments_of(store, order["id"])
    assert _money(summary) == before
    [view] = summary["data"]
    assert ledger(view)[-2:] == [("chargeback", "success", 3000), ("chargeback_reversal", "failure", 3000)]
    lost = view["transactions"][-1]
    assert (lost["provider_reference"], lost["error_code"], lost["reason"]) == (
        dispute_id,
        "dispute_lost",
        "dispute lost: the bank kept the money",
    )
    [told] = [
        item for item in await timeline_of(store, order["id"]) if item["kind"] == "payment_dispute_lost"
    ]
    details = {
        "payment_id": payment["id"],
        "transaction_id": lost["id"],
        "provider": "stripe",
        "amount": 3000,
        "currency": "EUR",
        "error_code": "dispute_lost",
        "reason": "dispute lost: the bank kept the money",
        "dispute_id": dispute_id,
        "dispute_status": "lost",
        "chargeback_transaction_id": view["transactions"][-2]["id"],
    }
    # Nothing moved, so the payment status did not change either.
    assert told["changes"] == details
    assert (await events_of(database, order["id"]))[-1] == (
        "payment.dispute_lost",
        {
            "order_id": order["id"],
            "number": order["number"],
            **details,
            "payment_status": "partially_refunded",
        },
    )
    # Lost is final: a contradicting "won" for the same dispute gives nothing back.
    contradicting = await send_webhook(
        store, event("charge.dispute.closed", {**fake.get("dispute", dispute_id), "status": "won"})
    )
    assert contradicting["outcome"] == "ignored: the ledger already says so"
    assert _money(await payments_of(store, order["id"])) == before


async def test_an_inquiry_closed_without_a_chargeback_leaves_the_ledger_as_before_it(
    store: Store, fake: FakeStripe, database: Database
) -> None:
    order, payment = await paid_by_card(store)
    await store.call("POST", f"/api/v1/payments/{payment['id']}/refunds", 201, json={"amount": 1000})
    before = _money(await payments_of(store, order["id"]))
    assert before == ("partially_refunded", 5000, 1000, 4000, 4000, 0, "partially_refunded")
    dispute_id = await _disputed(store, fake, payment, 5000, inquiry=True)
    # The inquiry counted as a chargeback of what the payment held.
    assert _money(await payments_of(store, order["id"])) == ("refunded", 5000, 5000, 0, 0, 4000, "refunded")

    closed = event("charge.dispute.closed", close_dispute(fake, dispute_id, "warning_closed"))
    assert (await send_webhook(store, closed))["outcome"] == "applied"
    assert _money(await payments_of(store, order["id"])) == before
    [told] = [
        item
        for item in await timeline_of(store, order["id"])
        if item["kind"] == "payment_chargeback_reversed"
    ]
    assert (
        told["changes"]["dispute_status"],
        told["changes"]["reason"],
        told["changes"]["payment_status"],
    ) == (
        "warning_closed",
        "inquiry closed: it never became a chargeback",
        {"old": "refunded", "new": "partially_refunded"},
    )
    assert (await events_of(database, order["id"]))[-1][0] == "payment.chargeback_reversed"


async def test_a_won_dispute_over_a_refund_that_fails_later_leaves_the_money_refundable(
    store: Store, fake: FakeStripe
) -> None:
    order, payment = await paid_by_card(store)
    made = await store.call("POST", f"/api/v1/payments/{payment['id']}/refunds", 201, json={"amount": 5000})
    # Disputed while the refund was going through: counted as the refund, not twice.
    dispute_id = await _disputed(store, fake, payment, 5000)
    assert _money(await payments_of(store, order["id"])) == ("refunded", 5000, 5000, 0, 0, 0, "refunded")

    won = event("charge.dispute.closed", close_dispute(fake, dispute_id, "won"))
    assert (await send_webhook(store, won))["outcome"] == "applied"
    # Stripe gave the dispute back and the refund stands: the ledger and Stripe agree.
    assert _money(await payments_of(store, order["id"])) == ("refunded", 5000, 5000, 0, 0, 0, "refunded")

    failed = fail_at_stripe(fake, made["last_transaction"]["provider_reference"])
    assert (await send_webhook(store, event("refund.failed", failed)))["outcome"] == "applied"
    # The refund gave nothing and the bank gave the dispute back: the merchant holds it all.
    summary = await payments_of(store, order["id"])
    assert _money(summary) == ("paid", 5000, 0, 5000, 5000, 0, "captured")
    assert ledger(summary["data"][0])[-4:] == [
        ("refund", "success", 5000),
        ("chargeback", "success", 5000),
        ("chargeback_reversal", "success", 5000),
        ("refund_reversal", "success", 5000),
    ]


async def test_a_lost_dispute_over_a_refund_that_fails_later_counts_as_the_chargeback(
    store: Store, fake: FakeStripe
) -> None:
    order, payment = await paid_by_card(store)
    made = await store.call("POST", f"/api/v1/payments/{payment['id']}/refunds", 201, json={"amount": 5000})
    dispute_id = await _disputed(store, fake, payment, 5000)
    lost = event("charge.dispute.closed", close_dispute(fake, dispute_id, "lost"))
    assert (await send_webhook(store, lost))["outcome"] == "applied"
    assert _money(await payments_of(store, order["id"])) == ("refunded", 5000, 5000, 0, 0, 0, "refunded")

    failed = fail_at_stripe(fake, made["last_transaction"]["provider_reference"])
    assert (await send_webhook(store, event("refund.failed", failed)))["outcome"] == "applied"
    # The bank kept the 5000 and the refund gave nothing: charged back, none refundable.
    summary = await payments_of(store, order["id"])
    assert _money(summary) == ("refunded", 5000, 5000, 0, 0, 5000, "refunded")
    assert summary["data"][0]["refunded_amount"] == 0


async def test_closings_of_unknown_disputes_or_payments_or_of_other_statuses_change_nothing(
    store: Store, fake: FakeStripe, database: Database
) -> None:
    order, payment = await paid_by_card(store)
    # Disputed and closed at Stripe, but this store never heard of the dispute opening.
    unheard = open_dispute(fake, payment["provider_reference"], 5000)
    never_counted = await send_webhook(
        store, event("charge.dispute.closed", close_dispute(fake, str(unheard["id"]), "won"))
    )
    assert never_counted["outcome"] == "ignored: the ledger never counted this dispute"
    elsewhere = {**unheard, "id": "dp_elsewhere", "payment_intent": "pi_of_another_account"}
    unknown = await send_webhook(store, event("charge.dispute.closed", elsewhere))
    assert unknown["outcome"] == "ignored: no payment of this store has this PaymentIntent"

    dispute_id = await _disputed(store, fake, payment, 2000)
    rows = len(await ledger_rows(database, store, order["id"]))
    prevented = await send_webhook(
        store, event("charge.dispute.closed", {**fake.get("dispute", dispute_id), "status": "prevented"})
    )
    assert prevented["outcome"] == "ignored: a dispute closed as 'prevented' is not one this store acts on"
    assert len(await ledger_rows(database, store, order["id"])) == rows
    assert _money(await payments_of(store, order["id"])) == (
        "partially_refunded",
        5000,
        2000,
        3000,
        3000,
        2000,
        "partially_refunded",
    )


@pytest.mark.parametrize(
    ("ledger_rows_after_capture", "charged_back", "refunded", "refundable"),
    [
        # Won: what the dispute took comes back whole.
        ([("chargeback", "success", 3000), ("chargeback_reversal", "success", 3000)], 0, 0, 5000),
        # Lost: a failure moves nothing.
        ([("chargeback", "success", 3000), ("chargeback_reversal", "failure", 3000)], 3000, 0, 2000),
        # Won over a refund still counted: the part never counted is dropped, so a refund
        # that fails after makes the money refundable, not charged back.
        (
            [
                ("refund", "success", 5000),
                ("chargeback", "success", 5000),
                ("chargeback_reversal", "success", 5000),
                ("refund_reversal", "success", 5000),
            ],
            0,
            0,
            5000,
        ),
        # Won after the refund it overlapped failed: all that was counted comes back.
        (
            [
                ("refund", "success", 2000),
                ("chargeback", "success", 5000),
                ("refund_reversal", "success", 2000),
                ("chargeback_reversal", "success", 5000),
            ],
            0,
            0,
            5000,
        ),
        # Won while part of the dispute still waits on a refund: both parts end.
        (
            [
                ("refund", "success", 2000),
                ("chargeback", "success", 5000),
                ("chargeback_reversal", "success", 5000),
            ],
            0,
            2000,
            3000,
        ),
    ],
)
def test_a_chargeback_reversal_undoes_what_its_chargeback_counted(
    ledger_rows_after_capture: list[tuple[str, str, int]], charged_back: int, refunded: int, refundable: int
) -> None:
    payment_id = uuid.UUID(int=1)
    captured = [("authorize", "success", 5000), ("capture", "success", 5000)]
    amounts = amounts_of(
        LedgerEntry(payment_id, kind, state, amount)
        for kind, state, amount in [*captured, *ledger_rows_after_capture]
    )
    assert (amounts.charged_back, amounts.refunded, amounts.refundable, amounts.net) == (
        charged_back,
        refunded,
        refundable,
        5000 - charged_back - refunded,
    )


async def test_a_dispute_opened_while_a_decline_hold_is_open_still_holds_the_order_after_payment(
    client: AsyncTestClient[Litestar], fake: FakeStripe
) -> None:
    store = await payment_store(client, providers=("stripe",), capture_policy="at_placement")
    order = await store.place(("TEE-S", 2))  # 5000
    first = await pay(store, order["id"], provider="stripe", method=VISA, amount=2500)
    await pay(store, order["id"], provider="stripe", method=DECLINED)  # an "authorize failed" hold
    dispute = open_dispute(fake, first["payment"]["provider_reference"], 2500)
    assert (await send_webhook(store, event("charge.dispute.created", dispute)))["outcome"] == "applied"

    # The customer pays what is owed with another card: the decline's wait is over, the dispute's is not.
    await pay(store, order["id"], provider="stripe", method=VISA)

    read = await store.call("GET", f"/api/v1/orders/{order['id']}", 200)
    open_holds = [hold["reason"] for hold in read["holds"] if hold["released_at"] is None]
    assert (read["open_hold_count"], open_holds) == (
        1,
        ["chargeback: the customer disputed 2500 EUR with their bank"],
    )
