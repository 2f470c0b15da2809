"""Store credit: an append-only ledger per customer; the balance is the sum of its entries.

Credit is given to the live customer (a merged customer's credit follows the survivor:
the balance sums the entries of every id merged into it). Spending takes the live
customer's row lock first, following a merge that committed while it waited, so two
spends at once cannot take the same credit twice, whichever of the ids they name.
Credit spent on an order is spent on the holder's own order (or that of a customer
merged into the holder), in the order's currency.
"""

from __future__ import annotations

import uuid
from dataclasses import dataclass

from sqlalchemy import func, insert, select
from sqlalchemy.ext.asyncio import AsyncSession

from ordersmith.platform.currencies import is_currency
from ordersmith.platform.database import TenantContext
from ordersmith.platform.errors import FieldError, ValidationFailedError
from ordersmith.platform.events import record_event
from ordersmith.platform.identity.audit import Actor
from ordersmith.platform.ids import uuid7
from ordersmith.tenants.customers.service import customer_ids_for_history
from ordersmith.tenants.orders import lifecycle
from ordersmith.tenants.orders.views import order_row
from ordersmith.tenants.returns.errors import StoreCreditInsufficientError
from ordersmith.tenants.returns.models import StoreCreditEntry

STORE_CREDIT_GRANTED = "store_credit.granted"
STORE_CREDIT_SPENT = "store_credit.spent"


@dataclass(frozen=True)
class StoreCredit:
    """A customer's balance per currency and the entries behind it, newest first."""

    customer_id: uuid.UUID
    balances: dict[str, int]
    entries: list[StoreCreditEntry]


# Orders no spend may name: nothing more will be paid on them.
_CLOSED_ORDERS = frozenset({lifecycle.CANCELLED, lifecycle.ARCHIVED})


async def _balances(session: AsyncSession, customer_ids: list[uuid.UUID]) -> dict[str, int]:
    rows = await session.execute(
        select(StoreCreditEntry.currency, func.sum(StoreCreditEntry.amount))
        .where(StoreCreditEntry.customer_id.in_(customer_ids))
        .group_by(StoreCreditEntry.currency)
        .order_by(StoreCreditEntry.currency)
    )
    return {currency: int(total) for currency, total in rows}


async def store_credit(tenant: TenantContext, session: AsyncSession, customer_id: uuid.UUID) -> StoreCredit:
    """A customer's store credit: balance per currency and every entry, newest first."""
    ids = await customer_ids_for_history(tenant, session, customer_id)
    entries = await session.scalars(
        select(StoreCreditEntry)
        .where(StoreCreditEntry.customer_id.in_(ids))
        .order_by(StoreCreditEntry.created_at.desc(), StoreCreditEntry.id.desc())
    )
    return StoreCredit(ids[0], await _balances(session, ids), list(entries))


async def grant(
    tenant: TenantContext,
    session: AsyncSession,
    customer_id: uuid.UUID,
    amount: int,
    currency: str,
    *,
    reason: str,
    actor: Actor,
    return_id: uuid.UUID | None = None,
    order_id: uuid.UUID | None = None,
) -> StoreCreditEntry:
    """Add credit to the live customer's ledger."""
    ids = await customer_ids_for_history(tenant, session, customer_id)
    return await _append(tenant, session, ids[0], amount, currency, reason, actor, return_id, order_id)


async def spend(
    tenant: TenantContext,
    session: AsyncSession,
    customer_id: uuid.UUID,
    amount: int,
    currency: str,
    *,
    reason: str,
    actor: Actor,
    order_id: uuid.UUID | None = None,
) -> StoreCreditEntry:
    """Take credit off the customer's balance; 409 `store_credit_insufficient` if it would go below zero.

    Spent on an order, that order must be the customer's, in `currency`, neither cancelled nor
    archived, and not get more credit in all than its total, else 422.
    """
    if not is_currency(currency):
        raise ValidationFailedError(
            "the spend is invalid; see errors",
            errors=[FieldError("currency", "must be the ISO 4217 code of a currency, such as EUR or USD")],
        )
    ids = await customer_ids_for_history(tenant, session, customer_id, lock=True)
    if order_id is not None:
        order = await order_row(session, order_id)
        errors = []
        if order.customer_id not in ids:
            errors.append(
                FieldError(
                    "order_id", "the order is another customer's; spend credit on its holder's own orders"
                )
            )
        if order.currency != currency:
            errors.append(FieldError("currency", f"must be the order's currency, {order.currency}"))
        if order.status in _CLOSED_ORDERS:
            errors.append(
                FieldError("order_id", f"the order is {order.status}; spend credit on an order still open")
            )
        # Never more on an open order than it costs: the rest stays the customer's credit.
        already = await _spent_on(session, ids, order_id)
        if order.status not in _CLOSED_ORDERS and already + amount > order.total_amount:
            left = max(order.total_amount - already, 0)
            errors.append(
                FieldError(
                    "amount",
                    f"at most {left} more can be spent on this order (its total is {order.total_amount} "
                    f"{order.currency}, {already} already spent on it)",
                )
            )
        if errors:
            raise ValidationFailedError("the spend does not fit the order; see errors", errors=errors)
    balance = (await _balances(session, ids)).get(currency, 0)
    if amount > balance:
        raise StoreCreditInsufficientError(
            f"the customer has {balance} {currency} of store credit; {amount} cannot be spent",
            extensions={"balance": balance, "currency": currency},
        )
    return await _append(tenant, session, ids[0], -amount, currency, reason, actor, None, order_id)


async def _spent_on(session: AsyncSession, customer_ids: list[uuid.UUID], order_id: uuid.UUID) -> int:
    """Store credit the customer (and those merged into them) spent on one order so far."""
    # By the customers' index: only the order's own customer can have spent credit on it.
    spent = await session.scalar(
        select(func.coalesce(func.sum(-StoreCreditEntry.amount), 0)).where(
            StoreCreditEntry.customer_id.in_(customer_ids),
            StoreCreditEntry.order_id == order_id,
            StoreCreditEntry.amount < 0,
        )
    )
    return int(spent or 0)


async def _append(
    tenant: TenantContext,
    session: AsyncSession,
    customer_id: uuid.UUID,
    amount: int,
    currency: str,
    reason: str,
    actor: Actor,
    return_id: uuid.UUID | None,
    order_id: uuid.UUID | None,
) -> StoreCreditEntry:
    entry = (
        await session.scalars(
            insert(StoreCreditEntry)
            .values(
                id=uuid7(),
                customer_id=customer_id,
                amount=amount,
                currency=currency,
                reason=reason,
                return_id=return_id,
                order_id=order_id,
                actor_type=actor.type,
                actor_id=actor.id,
            )
            .returning(StoreCreditEntry)
        )
    ).one()
    await record_event(
        session,
        tenant,
        STORE_CREDIT_GRANTED if amount > 0 else STORE_CREDIT_SPENT,
        {
            "customer_id": str(customer_id),
            "amount": abs(amount),
            "currency": currency,
            "return_id": str(return_id) if return_id else None,
            "order_id": str(order_id) if order_id else None,
        },
    )
    return entry
