"""Reading and appending the payments ledger, and the order hooks that read it.

Rows are only ever inserted. Importing this module registers the ledger as where an
order's `payment_status` (orders.derived) and what an edit counts as paid (orders.edits)
come from.
"""

from __future__ import annotations

import uuid
from collections.abc import Sequence
from typing import Any

from sqlalchemy import insert, select
from sqlalchemy.ext.asyncio import AsyncSession

from ordersmith.platform.identity.audit import Actor
from ordersmith.platform.ids import uuid7
from ordersmith.tenants.orders import derived, edits
from ordersmith.tenants.orders.models import Order
from ordersmith.tenants.payments import status
from ordersmith.tenants.payments.errors import PaymentNotFoundError
from ordersmith.tenants.payments.models import Payment, PaymentTransaction


def payment_missing() -> PaymentNotFoundError:
    """The one error for a payment that is not this store's (or does not exist)."""
    return PaymentNotFoundError("no such payment in this store; list an order's payments to find it")


def payment_id_of(text: str) -> uuid.UUID:
    """The payment id in a path; one that cannot exist is simply not found."""
    try:
        return uuid.UUID(text)
    except ValueError:
        raise payment_missing() from None


async def payment_row(session: AsyncSession, payment_id: uuid.UUID, *, lock: bool = False) -> Payment:
    """One payment, locked for the rest of the transaction when its ledger is about to grow."""
    query = select(Payment).where(Payment.id == payment_id).execution_options(populate_existing=True)
    row = (await session.scalars(query.with_for_update() if lock else query)).one_or_none()
    if row is None:
        raise payment_missing()
    return row


async def payments_of(session: AsyncSession, order_id: uuid.UUID, *, lock: bool = False) -> list[Payment]:
    """An order's payments, oldest first (locked together when `lock`)."""
    query = (
        select(Payment)
        .where(Payment.order_id == order_id)
        .order_by(Payment.created_at, Payment.id)
        .execution_options(populate_existing=True)
    )
    return list(await session.scalars(query.with_for_update() if lock else query))


async def transactions_of(
    session: AsyncSession, payment_ids: Sequence[uuid.UUID]
) -> list[PaymentTransaction]:
    """The ledger rows of these payments, oldest first."""
    if not payment_ids:
        return []
    query = (
        select(PaymentTransaction)
        .where(PaymentTransaction.payment_id.in_(payment_ids))
        .order_by(PaymentTransaction.created_at, PaymentTransaction.id)
    )
    return list(await session.scalars(query))


def entries(rows: Sequence[PaymentTransaction]) -> list[status.LedgerEntry]:
    """Ledger rows as the pure arithmetic of `status` reads them."""
    return [status.LedgerEntry(row.payment_id, row.kind, row.state, row.amount) for row in rows]


async def amounts_of_order(
    session: AsyncSession, order_id: uuid.UUID
) -> dict[uuid.UUID, status.PaymentAmounts]:
    """Each payment's amounts, for every payment of the order (payments without rows included)."""
    rows = await session.execute(
        select(
            PaymentTransaction.payment_id,
            PaymentTransaction.kind,
            PaymentTransaction.state,
            PaymentTransaction.amount,
        )
        .where(PaymentTransaction.order_id == order_id)
        .order_by(PaymentTransaction.created_at, PaymentTransaction.id)
    )
    by_payment = status.amounts_by_payment(status.LedgerEntry(*row) for row in rows)
    payment_ids = await session.scalars(select(Payment.id).where(Payment.order_id == order_id))
    return {payment_id: by_payment.get(payment_id, status.PaymentAmounts()) for payment_id in payment_ids}


@derived.derive_payment_status
async def order_payment_status(session: AsyncSession, order_id: uuid.UUID) -> str:
    """The order's payment status, from its payments' ledger and its current total."""
    total = await session.scalar(select(Order.total_amount).where(Order.id == order_id))
    amounts = await amounts_of_order(session, order_id)
    return status.payment_status(list(amounts.values()), int(total or 0))


async def net_paid(session: AsyncSession, order_id: uuid.UUID) -> int:
    """Money the merchant holds for the order: captured, less refunds and chargebacks."""
    amounts = await amounts_of_order(session, order_id)
    return sum(item.net for item in amounts.values())


@edits.count_paid_amount
async def order_settled_amount(session: AsyncSession, order_id: uuid.UUID) -> int:
    """What an order edit counts as paid toward the order's current total (`status.settled_amount`)."""
    total = await session.scalar(select(Order.total_amount).where(Order.id == order_id))
    amounts = await amounts_of_order(session, order_id)
    return status.settled_amount(list(amounts.values()), int(total or 0))


async def append(
    session: AsyncSession,
    payment: Payment,
    kind: str,
    state: str,
    amount: int,
    *,
    actor: Actor,
    row_id: uuid.UUID | None = None,
    **details: Any,
) -> PaymentTransaction:
    """Insert one ledger row for a payment; returns it."""
    row: PaymentTransaction = (
        await session.scalars(
            insert(PaymentTransaction)
            .values(
                id=row_id or uuid7(),
                payment_id=payment.id,
                order_id=payment.order_id,
                kind=kind,
                state=state,
                amount=amount,
                currency=payment.currency,
                actor_type=actor.type,
                actor_id=actor.id,
                **details,
            )
            .returning(PaymentTransaction)
        )
    ).one()
    return row
