"""What a payment ledger adds up to: pure functions, tested as tables.

Every amount here is derived from ledger rows, never stored: what was authorized,
captured, voided, refunded and charged back, per payment, and from those the order's
`payment_status`. Only outcomes count (`success`, and `requires_action` for a payment
waiting on its customer); requests and failures move no money. A `refund_reversal` takes
back a counted refund the provider failed later: `refunded` is net of them. A `chargeback`
row holds the dispute as the provider reported it and counts up to what the payment still
held then; the rest counts once a refund it overlapped is taken back (the bank took that
money, the refund gave nothing), so `refundable` never rises above what the bank left. A
`chargeback_reversal` success (a dispute won, or an inquiry closed) holds that same amount
and undoes it: first the part not counted yet, so a refund that fails later makes that money
refundable rather than charged back, then what was counted. A failure (a dispute lost) moves nothing.
"""

from __future__ import annotations

import uuid
from collections.abc import Iterable, Sequence
from dataclasses import dataclass

AUTHORIZE, CAPTURE, VOID, REFUND, CHARGEBACK = "authorize", "capture", "void", "refund", "chargeback"
REFUND_REVERSAL = "refund_reversal"
CHARGEBACK_REVERSAL = "chargeback_reversal"
REQUEST, SUCCESS, FAILURE, REQUIRES_ACTION = "request", "success", "failure", "requires_action"

UNPAID = "unpaid"
AUTHORIZED = "authorized"
PARTIALLY_PAID = "partially_paid"
PAID = "paid"
PARTIALLY_REFUNDED = "partially_refunded"
REFUNDED = "refunded"
VOIDED = "voided"
PENDING_ACTION = "requires_action"
OVERPAID = "overpaid"


@dataclass(frozen=True)
class LedgerEntry:
    """The part of a ledger row the arithmetic needs."""

    payment_id: uuid.UUID
    kind: str
    state: str
    amount: int


@dataclass(frozen=True)
class PaymentAmounts:
    """One payment's money, as its ledger says."""

    authorized: int = 0
    captured: int = 0
    voided: int = 0
    # Net of `refunds_reversed`: counted refunds the provider failed later gave nothing back.
    refunded: int = 0
    # Net of chargebacks the bank gave back (disputes won, inquiries closed).
    charged_back: int = 0
    refunds_reversed: int = 0
    # The last word on its authorization is "the customer must authenticate", and nobody
    # has cancelled the payment since.
    awaiting_action: bool = False
    # Cancelled while it waited on its customer: a void of 0, nothing having been authorized.
    cancelled_waiting: bool = False
    # Its last outcome was a failure (a decline, an unreachable provider).
    last_failed: bool = False

    @property
    def was_voided(self) -> bool:
        """Its hold was released, or it was cancelled before the customer authorized it."""
        return self.voided > 0 or self.cancelled_waiting

    @property
    def capturable(self) -> int:
        """Authorized funds not yet captured nor released."""
        return max(self.authorized - self.captured - self.voided, 0)

    @property
    def refundable(self) -> int:
        """Captured money not yet given back (by a refund or a chargeback)."""
        return max(self.captured - self.refunded - self.charged_back, 0)

    @property
    def net(self) -> int:
        """What the merchant holds from this payment."""
        return self.captured - self.refunded - self.charged_back


def amounts_of(entries: Iterable[LedgerEntry]) -> PaymentAmounts:
    """Add up one payment's ledger entries (oldest first)."""
    totals = {AUTHORIZE: 0, CAPTURE: 0, VOID: 0, REFUND: 0, REFUND_REVERSAL: 0, CHARGEBACK: 0}
    # Disputed money not counted yet: the ledger had counted it as refunded (a pending refund).
    disputed_beyond = 0
    awaiting_action = last_failed = cancelled_waiting = False
    for entry in entries:
        if entry.state == SUCCESS and entry.kind == CHARGEBACK:
            held = totals[CAPTURE] - totals[REFUND] + totals[REFUND_REVERSAL] - totals[CHARGEBACK]
            counted = min(entry.amount, max(held, 0))
            totals[CHARGEBACK] += counted
            disputed_beyond += entry.amount - counted
        elif entry.state == SUCCESS and entry.kind == CHARGEBACK_REVERSAL:
            # The part never counted first: a refund it overlapped that fails later then
            # leaves the money with the merchant, since the bank gave the dispute back.
            uncounted = min(disputed_beyond, entry.amount)
            disputed_beyond -= uncounted
            totals[CHARGEBACK] -= min(entry.amount - uncounted, totals[CHARGEBACK])
        elif entry.state == SUCCESS:
            totals[entry.kind] += entry.amount
            if entry.kind == REFUND_REVERSAL:
                released = min(disputed_beyond, entry.amount)
                totals[CHARGEBACK] += released
                disputed_beyond -= released
        if entry.kind == AUTHORIZE and entry.state in (SUCCESS, FAILURE, REQUIRES_ACTION):
            awaiting_action = entry.state == REQUIRES_ACTION
        if entry.kind == VOID and entry.state == SUCCESS and awaiting_action:
            awaiting_action, cancelled_waiting = False, True
        if entry.state in (SUCCESS, FAILURE, REQUIRES_ACTION):
            last_failed = entry.state == FAILURE
    return PaymentAmounts(
        authorized=totals[AUTHORIZE],
        captured=totals[CAPTURE],
        voided=totals[VOID],
        refunded=totals[REFUND] - totals[REFUND_REVERSAL],
        charged_back=totals[CHARGEBACK],
        refunds_reversed=totals[REFUND_REVERSAL],
        awaiting_action=awaiting_action,
        cancelled_waiting=cancelled_waiting,
        last_failed=last_failed,
    )


def amounts_by_payment(entries: Iterable[LedgerEntry]) -> dict[uuid.UUID, PaymentAmounts]:
    """Each payment's amounts, from the entries of several payments (oldest first)."""
    grouped: dict[uuid.UUID, list[LedgerEntry]] = {}
    for entry in entries:
        grouped.setdefault(entry.payment_id, []).append(entry)
    return {payment_id: amounts_of(items) for payment_id, items in grouped.items()}


def balance_due(payments: Sequence[PaymentAmounts], order_total: int) -> int:
    """What the order still owes: its total less everything ever captured and not charged back, never below 0.

    Money the merchant gave back (a return's refund, a goodwill refund) is not owed again:
    the customer paid it once, and taking it again would charge them twice. A chargeback
    is owed again: the bank took that money, nobody gave it. Open authorizations do not
    lower it: they are money promised, not money taken.
    """
    kept_or_given = sum(item.captured - item.charged_back for item in payments)
    return max(order_total - kept_or_given, 0)


def settled_amount(payments: Sequence[PaymentAmounts], order_total: int) -> int:
    """What counts as paid toward the order's total: the total less what it owes, plus money held beyond it.

    An order edit weighs its new total against this. A higher total owes only the raise
    beyond what was captured (`balance_due`: money given back is not owed again); a lower
    total owes back what the merchant holds beyond it, so a refund already given for an
    earlier cut is not owed twice either.
    """
    held_beyond = sum(item.net for item in payments) - order_total
    return order_total - balance_due(payments, order_total) + max(held_beyond, 0)


def payment_status(payments: Sequence[PaymentAmounts], order_total: int) -> str:
    """The order's payment status from its payments' amounts and what the order now costs.

    Once the order was paid in full (captured at least its total), money held decides:
    all of it given back is `refunded`; more than the order costs is `overpaid` (a refund
    is owed); some given back is `partially_refunded`; else `paid`. An order never paid
    in full is `partially_paid` while it holds some money, refunds or not, so a refund
    never makes an order that still owes look settled. Holding nothing: open
    authorizations make it `authorized`, a payment waiting on its customer
    `requires_action`, released authorizations `voided`, and otherwise it is `unpaid`.
    """
    captured = sum(item.captured for item in payments)
    given_back = sum(item.refunded + item.charged_back for item in payments)
    net = captured - given_back
    if captured > 0 and captured >= order_total:
        if given_back >= captured:
            return REFUNDED
        if net > order_total:
            return OVERPAID
        if given_back > 0:
            return PARTIALLY_REFUNDED
        return PAID
    if net > 0:
        return PARTIALLY_PAID
    if any(item.capturable > 0 for item in payments):
        return AUTHORIZED
    if any(item.awaiting_action for item in payments):
        return PENDING_ACTION
    if any(item.was_voided for item in payments):
        return VOIDED
    return UNPAID


def single_payment_status(amounts: PaymentAmounts) -> str:
    """One payment's own status, for reading it: where its money stands."""
    if amounts.captured > 0:
        if amounts.refunded + amounts.charged_back >= amounts.captured:
            return "refunded"
        if amounts.refunded + amounts.charged_back > 0:
            return "partially_refunded"
        return "partially_captured" if amounts.capturable > 0 else "captured"
    if amounts.capturable > 0:
        return "authorized"
    if amounts.awaiting_action:
        return "requires_action"
    if amounts.was_voided:
        return "voided"
    return "failed" if amounts.last_failed else "pending"
