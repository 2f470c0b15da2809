"""Taking back a refund the provider failed after the ledger counted it.

Stripe may report a refund `failed` or `canceled` days after it was made (or counted while
`pending`): the money stayed with the merchant. The ledger then gets one `refund_reversal`
success row for it (the refund's amount as the ledger counted it, `provider_reference` the
refund's id, `error_code` the provider's `failure_reason`), so `refunded` drops and
`refundable` rises by exactly that amount, and the order hears of it as `refund_failed`.
A refund is taken back once (a partial unique index on reversals' references); one the
ledger never counted by name (made and failed at Stripe alone, or inside a refunded total
reported without names) is left as it is.

Contexts that counted the refund themselves (a return's `refunded_amount`) register an
`on_refund_reversed` hook: it runs in the same transaction, with the reversal.
"""

from __future__ import annotations

import uuid
from collections.abc import Awaitable, Callable
from dataclasses import dataclass
from typing import Any

from sqlalchemy import select
from sqlalchemy.ext.asyncio import AsyncSession

from ordersmith.platform.database import TenantContext
from ordersmith.tenants.payments import status
from ordersmith.tenants.payments.models import Payment, PaymentTransaction
from ordersmith.tenants.payments.recording import Recorder, named_refund, refund_reversal


@dataclass(frozen=True)
class ReversedRefund:
    """A counted refund the provider failed, as the ledger just took it back."""

    order_id: uuid.UUID
    payment_id: uuid.UUID
    # The provider's id of the refund (a Stripe `re_…`).
    refund_id: str
    # Every refund success row standing for it: the one counting it first, then any retry
    # the provider answered from memory (a caller may have recorded either).
    transaction_ids: tuple[uuid.UUID, ...]
    # What the ledger had counted for it, and now took back.
    amount: int
    reversal_id: uuid.UUID


# Runs inside the reversal's transaction with (tenant, session, reversed refund), after its
# ledger row is written and before the order's payment status is refreshed.
RefundReversedHook = Callable[[TenantContext, AsyncSession, ReversedRefund], Awaitable[None]]
REFUND_REVERSED_HOOKS: list[RefundReversedHook] = []


def on_refund_reversed(hook: RefundReversedHook) -> RefundReversedHook:
    """Register work that must happen in the same transaction as every refund reversal (decorator)."""
    REFUND_REVERSED_HOOKS.append(hook)
    return hook


async def _standing_for(session: AsyncSession, counted: PaymentTransaction) -> tuple[uuid.UUID, ...]:
    """The refund success rows naming the same refund: the counting row, then the others, oldest first."""
    others = await session.scalars(
        select(PaymentTransaction.id)
        .where(
            PaymentTransaction.payment_id == counted.payment_id,
            PaymentTransaction.kind == status.REFUND,
            PaymentTransaction.state == status.SUCCESS,
            PaymentTransaction.provider_reference == counted.provider_refund_id,
            PaymentTransaction.id != counted.id,
        )
        .order_by(PaymentTransaction.created_at, PaymentTransaction.id)
    )
    return (counted.id, *others)


async def take_back_failed_refund(
    recorder: Recorder, payment: Payment, amounts: status.PaymentAmounts, refund: dict[str, Any]
) -> int | None:
    """Take back a refund the provider reports failed; returns the amount (0 if taken back before).

    None when the ledger never counted the refund by its id: nothing to take back.
    """
    refund_id = str(refund.get("id") or "")
    counted = await named_refund(recorder.session, refund_id) if refund_id else None
    if counted is None or counted.payment_id != payment.id:
        return None
    if await refund_reversal(recorder.session, refund_id) is not None:
        return 0
    # What the ledger counted for it: its own row's amount and what an unnamed total held.
    amount = counted.amount + counted.already_counted_amount
    if refund.get("amount") is not None:
        amount = min(amount, int(refund["amount"]))
    amount = max(min(amount, amounts.refunded), 0)
    failure = str(refund.get("failure_reason") or refund.get("status") or "failed")
    row = await recorder.note(
        payment,
        status.REFUND_REVERSAL,
        status.SUCCESS,
        amount,
        provider_reference=refund_id,
        error_code=failure[:100],
        reason=f"Stripe could not give the refund back: {failure}",
    )
    recorder.announced[row.id] = {"refund_id": refund_id, "refund_transaction_id": str(counted.id)}
    reversed_refund = ReversedRefund(
        payment.order_id,
        payment.id,
        refund_id,
        await _standing_for(recorder.session, counted),
        amount,
        row.id,
    )
    for hook in REFUND_REVERSED_HOOKS:
        await hook(recorder.tenant, recorder.session, reversed_refund)
    return amount
