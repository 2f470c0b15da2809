"""What the returns routes answer: a return with its lines, dispositions and resolutions."""

from __future__ import annotations

import datetime as dt

import msgspec

from ordersmith.tenants.returns.models import ReturnResolution
from ordersmith.tenants.returns.outcomes import RefundAttempt
from ordersmith.tenants.returns.views import ReturnView


class ReturnLine(msgspec.Struct):
    id: str
    line_id: str
    line_number: int
    sku: str
    name: str
    quantity: int
    reason_code: str
    note: str
    unit_price_amount: int
    # Where the units stand once received: restock, damaged, missing, or inspect (still undecided).
    dispositions: dict[str, int]


class Disposition(msgspec.Struct):
    return_line_id: str
    disposition: str
    quantity: int
    location_id: str | None
    created_at: dt.datetime


class Resolution(msgspec.Struct):
    id: str
    # refund, store_credit or exchange.
    kind: str
    # succeeded (it stands), partially_reversed (the provider failed one of its refunds later)
    # or reversed (it failed all of them): a refund's `amount` less `reversed_amount` stands.
    state: str
    # Refunded or credited, as it was given (kept when a refund fails later); for an exchange,
    # what the returned units it replaces were sold for.
    amount: int
    # What the provider failed later of a refund, and the payments ledger took back; 0 otherwise.
    reversed_amount: int
    currency: str
    reason: str
    payment_transaction_ids: list[str]
    # The payments ledger's refund reversals that took it back, oldest first.
    reversal_transaction_ids: list[str]
    exchange_order_id: str | None
    actor_type: str
    actor_id: str | None
    created_at: dt.datetime

    @classmethod
    def of(cls, view: ReturnView, item: ReturnResolution) -> Resolution:
        reversals = view.reversals_of(item)
        return cls(
            id=str(item.id),
            kind=item.kind,
            state=view.resolution_state(item),
            amount=item.amount,
            reversed_amount=sum(reversal.amount for reversal in reversals),
            currency=item.currency,
            reason=item.reason,
            payment_transaction_ids=[str(key) for key in item.payment_transaction_ids],
            reversal_transaction_ids=[str(reversal.transaction_id) for reversal in reversals],
            exchange_order_id=str(item.exchange_order_id) if item.exchange_order_id else None,
            actor_type=item.actor_type,
            actor_id=item.actor_id,
            created_at=item.created_at,
        )


class RefundResult(msgspec.Struct):
    """What one refund request gave back; a provider refusing is shown here, not as an HTTP error."""

    requested_amount: int
    # Given back by this request: an earlier attempt whose answer was lost counts whole once resent.
    refunded_amount: int
    currency: str
    # succeeded (all of it), partial (some payments gave back, a provider refused the rest)
    # or failed (nothing went back: see error_code, and the order's payment hold).
    state: str
    # The provider's reason when not all went back, as on the payment's `last_transaction`.
    error_code: str | None
    # The payments ledger's successes that gave the money back.
    payment_transaction_ids: list[str]
    # The payments ledger's failure the request ended with, when a provider refused.
    failed_transaction_id: str | None

    @classmethod
    def of(cls, attempt: RefundAttempt) -> RefundResult:
        return cls(
            attempt.requested,
            attempt.refunded,
            attempt.currency,
            attempt.state,
            attempt.error_code,
            [str(item) for item in attempt.transaction_ids],
            str(attempt.failed_transaction_id) if attempt.failed_transaction_id else None,
        )


# omit_defaults: `refund`, the one field with a default, is left out of every other answer.
class Return(msgspec.Struct, omit_defaults=True):
    id: str
    number: int
    order_id: str
    order_number: int
    customer_id: str
    # requested, approved, declined, in_transit, received or closed.
    status: str
    currency: str
    # What the returned units were sold for: refund, store credit and exchange together stay within it.
    value_amount: int
    # What the refunds stand at: the refund resolutions' `amount` less their `reversed_amount`.
    refunded_amount: int
    store_credit_amount: int
    exchange_order_id: str | None
    note: str
    decline_reason: str | None
    carrier: str | None
    tracking_number: str | None
    tracking_url: str | None
    lines: list[ReturnLine]
    dispositions: list[Disposition]
    resolutions: list[Resolution]
    created_at: dt.datetime
    approved_at: dt.datetime | None
    declined_at: dt.datetime | None
    in_transit_at: dt.datetime | None
    received_at: dt.datetime | None
    closed_at: dt.datetime | None
    # Only in the answer to a refund request: what that request gave back.
    refund: RefundResult | None = None

    @classmethod
    def of(cls, view: ReturnView) -> Return:
        row = view.row
        return cls(
            id=str(row.id),
            number=row.number,
            order_id=str(row.order_id),
            order_number=view.order_number,
            customer_id=str(row.customer_id),
            status=row.status,
            currency=row.currency,
            value_amount=view.value,
            refunded_amount=row.refunded_amount,
            store_credit_amount=row.store_credit_amount,
            exchange_order_id=str(row.exchange_order_id) if row.exchange_order_id else None,
            note=row.note,
            decline_reason=row.decline_reason,
            carrier=row.carrier,
            tracking_number=row.tracking_number,
            tracking_url=row.tracking_url,
            lines=[
                ReturnLine(
                    str(item.line.id),
                    str(item.line.order_line_id),
                    item.line.line_number,
                    item.sku,
                    item.name,
                    item.line.quantity,
                    item.line.reason_code,
                    item.line.note,
                    item.unit_price_amount,
                    item.dispositions,
                )
                for item in view.lines
            ],
            dispositions=[
                Disposition(
                    str(item.return_line_id),
                    item.disposition,
                    item.quantity,
                    str(item.location_id) if item.location_id else None,
                    item.created_at,
                )
                for item in view.dispositions
            ],
            resolutions=[Resolution.of(view, item) for item in view.resolutions],
            created_at=row.created_at,
            approved_at=row.approved_at,
            declined_at=row.declined_at,
            in_transit_at=row.in_transit_at,
            received_at=row.received_at,
            closed_at=row.closed_at,
        )


class Returns(msgspec.Struct):
    data: list[Return]
