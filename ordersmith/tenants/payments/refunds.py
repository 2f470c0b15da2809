"""Refunding an order through its payments, oldest first, never twice: what returns call.

`refund_order` spreads an amount over the order's payments under one idempotency key
(each payment's refund carries a key derived from it), never past what was captured,
and sends an attempt whose outcome is unknown again, as it was, before asking anything
new: a provider that acted answers from its memory instead of refunding twice. A refund
the ledger took back (the provider failed it later, `reversals.py`) gave nothing back, by
whichever row or answer names it: it never counts toward a call, and an attempt resent
that turns out to have made it asks for the money anew. Locks, failures and the ledger
work as in `service.py`.
"""

from __future__ import annotations

import uuid
from collections.abc import Awaitable, Callable
from dataclasses import dataclass

from sqlalchemy.ext.asyncio import AsyncSession

from ordersmith.platform.database import TenantContext
from ordersmith.platform.identity.audit import Actor
from ordersmith.tenants.orders.views import order_row
from ordersmith.tenants.payments import ledger, status
from ordersmith.tenants.payments.errors import RefundExceedsCapturedError
from ordersmith.tenants.payments.models import Payment, PaymentTransaction
from ordersmith.tenants.payments.providers.base import UNREACHABLE, PaymentProvider, ProviderResult
from ordersmith.tenants.payments.recording import Recorder
from ordersmith.tenants.payments.service import check_amount, check_reason
from ordersmith.tenants.payments.settings import provider_for


@dataclass(frozen=True)
class EarlierRefunds:
    """A caller's earlier `refund_order` calls for the same thing (a return): keys starting with `key_prefix`.

    Their attempts whose outcome is unknown are sent again as they were; their successes
    the caller has not counted yet (not in `recorded`: a payment's `/retry` made them)
    count toward the call, unless the provider failed that refund later.
    """

    key_prefix: str
    recorded: frozenset[uuid.UUID] = frozenset()


@dataclass(frozen=True)
class RefundOutcome:
    """What `refund_order` gave back; `refunded` < `requested` when a provider failed (see `error_code`)."""

    refunded: int
    currency: str
    transaction_ids: list[uuid.UUID]
    requested: int = 0
    error_code: str | None = None

    @property
    def is_complete(self) -> bool:
        return self.refunded >= self.requested


async def refund_order(
    tenant: TenantContext,
    session: AsyncSession,
    order_id: uuid.UUID,
    amount: int,
    *,
    reason: str,
    actor: Actor,
    idempotency_key: str,
    earlier: EarlierRefunds | None = None,
) -> RefundOutcome:
    """Refund up to `amount` of an order through its payments' providers, oldest payment first.

    Never more than was captured (422 `refund_exceeds_captured` with the refundable
    amount). The same `idempotency_key` again refunds nothing twice: each payment's
    refund carries a key derived from it, and refunds already recorded under it count.
    A provider failure is recorded (and the order held), not raised: `refunded` is then
    less than asked and `error_code` says why; calling again with the same key retries.
    An attempt whose outcome is unknown (under this key or an `earlier` one) is sent
    again first, as it was and with its own key, so the provider answers from memory
    if it acted; `refunded` counts it whole, even beyond `amount`. One that made a refund
    the ledger took back since gave nothing: the amount is then refunded anew.
    """
    check_amount(amount)
    order = await order_row(session, order_id, lock=True)
    payments = await ledger.payments_of(session, order_id, lock=True)
    rows = await ledger.transactions_of(session, [payment.id for payment in payments])
    by_payment = status.amounts_by_payment(ledger.entries(rows))
    keys = {payment.id: _refund_key(payment.id, idempotency_key) for payment in payments}
    taken_back = _taken_back(rows)
    done, unresolved = _refunds_so_far(rows, keys, earlier)
    already = sum(_given_back(row, taken_back) for row in done)
    remaining = amount - already
    # A payment takes one new refund per key; one with an unknown outcome is sent again instead.
    taken = {row.payment_id for row in done if row.idempotency_key == keys[row.payment_id]}
    taken |= {
        request.payment_id for request in unresolved if request.idempotency_key == keys[request.payment_id]
    }
    open_payments = [payment for payment in payments if payment.id not in taken]
    resending = sum(request.amount for request in unresolved)
    refundable = sum(by_payment.get(p.id, status.PaymentAmounts()).refundable for p in open_payments)
    if remaining > resending + refundable:
        raise RefundExceedsCapturedError(amount, already + resending + refundable, order.currency)
    recorder = Recorder(tenant, session, order, actor)
    reason = check_reason(reason) or "refund"
    error_code = None
    for request in unresolved:
        if remaining <= 0:
            break
        payment = next(payment for payment in payments if payment.id == request.payment_id)
        provider = await provider_for(tenant, session, payment.provider)
        outcome, _ = await recorder.run(
            payment,
            "refund",
            request.amount,
            _refund_call(provider, payment, request.amount, request.reason),
            reason=request.reason,
            retry_of=request,
        )
        if outcome.state != status.SUCCESS:
            if outcome.provider_reference in taken_back:
                # It made a refund the provider failed later: nothing went back, and nothing
                # was refused now, so the open payments below are asked for the money.
                continue
            error_code = outcome.error_code
            break
        done.append(outcome)
        remaining -= _given_back(outcome, taken_back)
    if error_code is None and remaining > 0 and unresolved:
        # What the resent attempts moved is in the ledger now.
        rows = await ledger.transactions_of(session, [payment.id for payment in payments])
        by_payment = status.amounts_by_payment(ledger.entries(rows))
    for payment in open_payments:
        if remaining <= 0 or error_code is not None:
            break
        take = min(remaining, by_payment.get(payment.id, status.PaymentAmounts()).refundable)
        if take <= 0:
            continue
        provider = await provider_for(tenant, session, payment.provider)
        outcome, _ = await recorder.run(
            payment,
            "refund",
            take,
            _refund_call(provider, payment, take, reason),
            reason=reason,
            key=keys[payment.id],
        )
        if outcome.state != status.SUCCESS:
            error_code = outcome.error_code
            break
        done.append(outcome)
        remaining -= take
    await recorder.finish()
    # Rows of refunds taken back stay in `done` (their key's payment is taken) but gave nothing.
    gave = [row for row in done if _given_back(row, taken_back) > 0]
    return RefundOutcome(
        sum(_given_back(row, taken_back) for row in gave),
        order.currency,
        [row.id for row in gave],
        amount,
        error_code,
    )


async def earlier_refunds_outstanding(
    session: AsyncSession, order_id: uuid.UUID, earlier: EarlierRefunds
) -> int:
    """Money earlier refunds may have given back that their caller has not counted.

    Attempts whose outcome is unknown (the next `refund_order` with `earlier` sends them
    again) and successes not in `earlier.recorded`.
    """
    payments = await ledger.payments_of(session, order_id)
    rows = await ledger.transactions_of(session, [payment.id for payment in payments])
    keys = {payment.id: _refund_key(payment.id, earlier.key_prefix) for payment in payments}
    done, unresolved = _refunds_so_far(rows, keys, earlier, exact=False)
    taken_back = _taken_back(rows)
    return sum(_given_back(row, taken_back) for row in done) + sum(request.amount for request in unresolved)


def _refund_key(payment_id: uuid.UUID, key: str) -> str:
    return f"ordersmith:{payment_id}:refund:{key}"


def _taken_back(rows: list[PaymentTransaction]) -> frozenset[str]:
    """The provider's ids of the refunds the ledger took back: they failed, and gave nothing back."""
    return frozenset(
        row.provider_reference
        for row in rows
        if row.kind == status.REFUND_REVERSAL and row.state == status.SUCCESS and row.provider_reference
    )


def _given_back(row: PaymentTransaction, taken_back: frozenset[str]) -> int:
    """The whole refund a success row stands for, including what the ledger had counted before.

    Nothing when the provider failed that refund later, whichever row named it.
    """
    if row.provider_reference in taken_back:
        return 0
    return row.amount + row.already_counted_amount


def _refunds_so_far(
    rows: list[PaymentTransaction],
    keys: dict[uuid.UUID, str],
    earlier: EarlierRefunds | None,
    *,
    exact: bool = True,
) -> tuple[list[PaymentTransaction], list[PaymentTransaction]]:
    """Refund successes that count toward a call, and the requests whose outcome is unknown.

    A success counts when it carries the call's own key (`keys`, when `exact`) or an
    `earlier` key its caller has not recorded. A request is unresolved when the last
    outcome under its key is `provider_unreachable`: the provider may have acted and its
    answer been lost. (After `provider_credentials_invalid` it certainly did nothing.)
    """

    def mine(row: PaymentTransaction) -> bool:
        key = row.idempotency_key
        if row.kind != status.REFUND or key is None:
            return False
        if exact and key == keys[row.payment_id]:
            return True
        if earlier is None:
            return False
        return key.startswith(_refund_key(row.payment_id, earlier.key_prefix))

    done: list[PaymentTransaction] = []
    last_outcome: dict[str, PaymentTransaction] = {}
    requests = {row.id: row for row in rows if row.state == status.REQUEST}
    for row in rows:
        if not mine(row) or row.state == status.REQUEST:
            continue
        assert row.idempotency_key is not None
        last_outcome[row.idempotency_key] = row
        own = exact and row.idempotency_key == keys[row.payment_id]
        if row.state == status.SUCCESS and (own or earlier is None or row.id not in earlier.recorded):
            done.append(row)
    unresolved = [
        requests[outcome.request_id]
        for outcome in last_outcome.values()
        if outcome.state == status.FAILURE
        and outcome.error_code == UNREACHABLE
        and outcome.request_id in requests
    ]
    return done, unresolved


def _refund_call(
    provider: PaymentProvider, payment: Payment, amount: int, reason: str | None
) -> Callable[[str], Awaitable[ProviderResult]]:
    async def call(key: str) -> ProviderResult:
        return await provider.refund(payment.provider_reference, amount, reason=reason, idempotency_key=key)

    return call
