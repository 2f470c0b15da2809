"""The payments ledger's arithmetic and the payment statuses it derives, as tables."""

from __future__ import annotations

import uuid

import pytest

from ordersmith.tenants.payments.status import (
    LedgerEntry,
    PaymentAmounts,
    amounts_by_payment,
    amounts_of,
    payment_status,
    single_payment_status,
)

A, B = uuid.UUID(int=1), uuid.UUID(int=2)


def rows(*items: tuple[str, str, int]) -> list[LedgerEntry]:
    return [LedgerEntry(A, kind, state, amount) for kind, state, amount in items]


def test_only_successes_move_money_and_the_last_authorize_outcome_says_whether_action_is_awaited() -> None:
    amounts = amounts_of(
        rows(
            ("authorize", "request", 5000),
            ("authorize", "requires_action", 5000),
            ("authorize", "success", 5000),
            ("capture", "request", 3000),
            ("capture", "failure", 3000),
            ("capture", "request", 2000),
            ("capture", "success", 2000),
            ("refund", "success", 500),
            ("chargeback", "success", 300),
        )
    )
    assert amounts == PaymentAmounts(
        authorized=5000, captured=2000, voided=0, refunded=500, charged_back=300, awaiting_action=False
    )
    assert (amounts.capturable, amounts.refundable, amounts.net) == (3000, 1200, 1200)
    waiting = amounts_of(rows(("authorize", "request", 900), ("authorize", "requires_action", 900)))
    assert (waiting.awaiting_action, waiting.capturable, waiting.last_failed) == (True, 0, False)
    failed = amounts_of(rows(("authorize", "request", 900), ("authorize", "failure", 900)))
    assert (failed.awaiting_action, failed.last_failed) == (False, True)
    cancelled = amounts_of(
        rows(("authorize", "requires_action", 900), ("void", "request", 0), ("void", "success", 0))
    )
    assert (cancelled.awaiting_action, cancelled.cancelled_waiting, cancelled.was_voided) == (
        False,
        True,
        True,
    )
    assert (single_payment_status(cancelled), payment_status([cancelled], 900)) == ("voided", "voided")


def test_a_void_and_a_sale_without_authorization_leave_nothing_capturable() -> None:
    assert amounts_of(rows(("authorize", "success", 1000), ("void", "success", 1000))).capturable == 0
    sale = amounts_of(rows(("capture", "success", 1000)))
    assert (sale.capturable, sale.refundable) == (0, 1000)
    by_payment = amounts_by_payment(
        [LedgerEntry(A, "capture", "success", 10), LedgerEntry(B, "refund", "success", 4)]
    )
    assert (by_payment[A].captured, by_payment[B].refunded) == (10, 4)


@pytest.mark.parametrize(
    ("ledger", "refunded", "refundable", "single", "order"),
    [
        # Counted when made, failed at the provider later: the money is the merchant's again.
        ([("refund", "success", 2000), ("refund_reversal", "success", 2000)], 0, 5000, "captured", "paid"),
        # Only the failed one of two refunds is taken back.
        (
            [("refund", "success", 2000), ("refund", "success", 1000), ("refund_reversal", "success", 1000)],
            2000,
            3000,
            "partially_refunded",
            "partially_refunded",
        ),
        # Given back again after the reversal: all of it may be refunded, no more.
        (
            [("refund", "success", 2000), ("refund_reversal", "success", 2000), ("refund", "success", 5000)],
            5000,
            0,
            "refunded",
            "refunded",
        ),
        # A reversal reported against a whole refund of the payment.
        ([("refund", "success", 5000), ("refund_reversal", "success", 5000)], 0, 5000, "captured", "paid"),
        # Beside a chargeback, the reversal restores only what the refund took.
        (
            [
                ("refund", "success", 1000),
                ("chargeback", "success", 4000),
                ("refund_reversal", "success", 1000),
            ],
            0,
            1000,
            "partially_refunded",
            "partially_refunded",
        ),
    ],
)
def test_a_refund_reversal_takes_back_what_its_refund_gave(
    ledger: list[tuple[str, str, int]], refunded: int, refundable: int, single: str, order: str
) -> None:
    entries = rows(("authorize", "success", 5000), ("capture", "success", 5000), *ledger)
    amounts = amounts_of(entries)
    assert (amounts.refunded, amounts.refundable, amounts.net) == (refunded, refundable, refundable)
    assert (single_payment_status(amounts), payment_status([amounts], 5000)) == (single, order)
    reversed_total = sum(amount for kind, _, amount in ledger if kind == "refund_reversal")
    assert (amounts.captured, amounts.refunds_reversed, amounts.last_failed) == (5000, reversed_total, False)
    # Pure: the same entries add up the same again.
    assert amounts_of(entries) == amounts


@pytest.mark.parametrize(
    ("ledger", "charged_back", "refunded", "refundable"),
    [
        # A dispute within what the payment holds counts whole.
        ([("chargeback", "success", 3000)], 3000, 0, 2000),
        # Disputed while a refund of all of it was counted: nothing was left to take, yet.
        ([("refund", "success", 5000), ("chargeback", "success", 5000)], 0, 5000, 0),
        # That refund failed: the bank has the money, so the dispute counts now, and nothing is held.
        (
            [
                ("refund", "success", 5000),
                ("chargeback", "success", 5000),
                ("refund_reversal", "success", 5000),
            ],
            5000,
            0,
            0,
        ),
        # Part of it overlapped a refund that failed: only that part is added, once.
        (
            [
                ("refund", "success", 2000),
                ("chargeback", "success", 4000),
                ("refund_reversal", "success", 2000),
                ("refund_reversal", "success", 0),
            ],
            4000,
            0,
            1000,
        ),
    ],
)
def test_a_chargeback_counts_what_the_payment_held_and_the_rest_when_its_refund_fails(
    ledger: list[tuple[str, str, int]], charged_back: int, refunded: int, refundable: int
) -> None:
    amounts = amounts_of(rows(("authorize", "success", 5000), ("capture", "success", 5000), *ledger))
    assert (amounts.charged_back, amounts.refunded, amounts.refundable) == (
        charged_back,
        refunded,
        refundable,
    )
    assert amounts.net == 5000 - charged_back - refunded


def pay(**amounts: int | bool) -> PaymentAmounts:
    return PaymentAmounts(**amounts)  # type: ignore[arg-type]


@pytest.mark.parametrize(
    ("payments", "total", "expected"),
    [
        ([], 5000, "unpaid"),
        ([pay()], 5000, "unpaid"),
        ([pay(last_failed=True)], 5000, "unpaid"),
        ([pay(authorized=5000)], 5000, "authorized"),
        ([pay(authorized=2000)], 5000, "authorized"),
        ([pay(awaiting_action=True)], 5000, "requires_action"),
        ([pay(authorized=1000), pay(awaiting_action=True)], 5000, "authorized"),
        ([pay(authorized=5000, voided=5000)], 5000, "voided"),
        ([pay(authorized=5000, voided=5000), pay(awaiting_action=True)], 5000, "requires_action"),
        ([pay(authorized=5000, captured=2000)], 5000, "partially_paid"),
        ([pay(captured=2000), pay(captured=3000)], 5000, "paid"),
        ([pay(authorized=5000, captured=5000)], 5000, "paid"),
        ([pay(captured=6000)], 5000, "overpaid"),
        ([pay(captured=6000, refunded=1000)], 5000, "partially_refunded"),
        ([pay(captured=6000, refunded=500)], 5000, "overpaid"),
        ([pay(captured=5000, refunded=1000)], 5000, "partially_refunded"),
        ([pay(captured=5000, charged_back=5000)], 5000, "refunded"),
        ([pay(captured=2000, refunded=2000), pay(captured=3000)], 5000, "partially_refunded"),
        ([pay(captured=5000, refunded=3000, charged_back=2000)], 5000, "refunded"),
        # A cancelled order costs nothing: whatever is still held is owed back.
        ([pay(captured=2500)], 0, "overpaid"),
        ([pay(captured=2500, refunded=2500)], 0, "refunded"),
        # An edit that lowered the total after payment.
        ([pay(captured=5000)], 4000, "overpaid"),
        ([pay(captured=5000, refunded=1000)], 4000, "partially_refunded"),
        # Never paid in full: a refund leaves what is still owed in sight, it settles nothing.
        ([pay(captured=3000, refunded=100)], 10000, "partially_paid"),
        ([pay(captured=3000, charged_back=1000)], 10000, "partially_paid"),
        ([pay(captured=3000, refunded=3000)], 10000, "unpaid"),
        ([pay(authorized=10000, captured=3000, refunded=3000)], 10000, "authorized"),
        ([pay(authorized=10000, captured=3000, refunded=3000, voided=7000)], 10000, "voided"),
        # An edit that raised the total after a refund: owed again.
        ([pay(captured=5000, refunded=1000)], 6000, "partially_paid"),
    ],
)
def test_payment_status(payments: list[PaymentAmounts], total: int, expected: str) -> None:
    assert payment_status(payments, total) == expected


@pytest.mark.parametrize(
    ("amounts", "expected"),
    [
        (pay(), "pending"),
        (pay(last_failed=True), "failed"),
        (pay(awaiting_action=True), "requires_action"),
        (pay(authorized=100), "authorized"),
        (pay(authorized=100, captured=40), "partially_captured"),
        (pay(authorized=100, captured=40, voided=60), "captured"),
        (pay(captured=100), "captured"),
        (pay(captured=100, refunded=30), "partially_refunded"),
        (pay(captured=100, refunded=70, charged_back=30), "refunded"),
        (pay(authorized=100, voided=100), "voided"),
    ],
)
def test_single_payment_status(amounts: PaymentAmounts, expected: str) -> None:
    assert single_payment_status(amounts) == expected
