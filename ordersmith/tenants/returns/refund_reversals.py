"""A return's refund the provider failed later: the return has that much less refunded.

Payments takes the refund back in its ledger (`payments/reversals.py`) and calls this hook
in the same transaction, the order row already locked. The return whose refund resolution
recorded one of the refund's ledger rows gets its `refunded_amount` lowered by what was
taken back (never below 0), so what it can still refund or credit grows by as much (a
closed one too: it keeps its units, having had a refund), and the order's timeline says
which return lost its refund.

The resolution keeps its amount, for history; what was taken back of it is read from the
ledger (`reversals_of`), never stored twice: a reversal row names the provider's refund,
and the resolution names the ledger rows that made its refunds. The hook lowers
`refunded_amount` by exactly what `reversals_of` gives the resolution, so the refund
resolutions' amounts less what was taken back of them always add up to `refunded_amount`.
"""

from __future__ import annotations

import uuid
from collections.abc import Sequence
from dataclasses import dataclass

from sqlalchemy import func, select, update
from sqlalchemy.ext.asyncio import AsyncSession
from sqlalchemy.orm import aliased

from ordersmith.platform.database import TenantContext
from ordersmith.platform.identity.audit import SYSTEM
from ordersmith.tenants.orders import timeline
from ordersmith.tenants.orders.timeline import Entry
from ordersmith.tenants.payments import status
from ordersmith.tenants.payments.models import PaymentTransaction
from ordersmith.tenants.payments.reversals import ReversedRefund, on_refund_reversed
from ordersmith.tenants.returns.models import Return, ReturnResolution


@dataclass(frozen=True)
class Reversal:
    """What one ledger reversal took back of a refund resolution: the provider failed that refund later."""

    resolution_id: uuid.UUID
    # The payments ledger's `refund_reversal` row.
    transaction_id: uuid.UUID
    amount: int


async def reversals_of(session: AsyncSession, resolutions: Sequence[ReturnResolution]) -> list[Reversal]:
    """What the ledger took back of these refund resolutions, reversal by reversal, oldest first.

    A reversal goes to the first resolution (oldest) that recorded a row of the refund it
    takes back, never for more than that resolution still gives: one resolution may hold
    several refunds (one per payment), and each may fail on its own.
    """
    refunds = sorted(
        (item for item in resolutions if item.kind == "refund"), key=lambda item: (item.created_at, item.id)
    )
    made_by: dict[uuid.UUID, ReturnResolution] = {}
    for item in refunds:
        for row_id in item.payment_transaction_ids:
            made_by.setdefault(row_id, item)
    if not made_by:
        return []
    made = aliased(PaymentTransaction)
    taken_back = aliased(PaymentTransaction)
    # Every row naming a refund stands for it: the one counting it, and any retry the provider
    # answered from memory; the reversal names the refund, not the row.
    found = await session.execute(
        select(taken_back.id, taken_back.amount, made.id)
        .join(
            made,
            (made.payment_id == taken_back.payment_id)
            & (made.provider_reference == taken_back.provider_reference),
        )
        .where(
            made.id.in_(made_by),
            taken_back.kind == status.REFUND_REVERSAL,
            taken_back.state == status.SUCCESS,
        )
        .order_by(taken_back.created_at, taken_back.id)
    )
    # Each reversal, in order, with the oldest resolution that recorded a row of its refund.
    age = {item.id: index for index, item in enumerate(refunds)}
    named: dict[uuid.UUID, tuple[int, ReturnResolution]] = {}
    for reversal_id, amount, row_id in found:
        resolution = made_by[row_id]
        earlier = named.get(reversal_id)
        if earlier is None or age[resolution.id] < age[earlier[1].id]:
            named[reversal_id] = (amount, resolution)
    given = {item.id: item.amount for item in refunds}
    reversals = []
    for reversal_id, (amount, resolution) in named.items():
        taken = min(amount, given[resolution.id])
        if taken > 0:
            given[resolution.id] -= taken
            reversals.append(Reversal(resolution.id, reversal_id, taken))
    return reversals


@on_refund_reversed
async def lower_refunded_amount(
    tenant: TenantContext, session: AsyncSession, reversed_refund: ReversedRefund
) -> None:
    """Give a return back the refund its provider failed: less refunded, more left to give."""
    return_id = await session.scalar(
        select(ReturnResolution.return_id)
        .where(
            ReturnResolution.kind == "refund",
            ReturnResolution.payment_transaction_ids.overlap(list(reversed_refund.transaction_ids)),
        )
        .order_by(ReturnResolution.created_at, ReturnResolution.id)
        .limit(1)
    )
    if return_id is None:
        return
    row = (await session.scalars(select(Return).where(Return.id == return_id).with_for_update())).one()
    refunded, number = row.refunded_amount, row.number
    resolutions = await session.scalars(
        select(ReturnResolution).where(
            ReturnResolution.return_id == return_id, ReturnResolution.kind == "refund"
        )
    )
    taken_back = sum(
        item.amount
        for item in await reversals_of(session, list(resolutions))
        if item.transaction_id == reversed_refund.reversal_id
    )
    taken_back = min(taken_back, refunded)
    if taken_back == 0:
        return
    await session.execute(
        update(Return)
        .where(Return.id == return_id)
        .values(refunded_amount=Return.refunded_amount - taken_back, updated_at=func.now())
    )
    await timeline.record(
        session,
        reversed_refund.order_id,
        [
            Entry(
                "return_refund_reversed",
                {
                    "return_id": str(return_id),
                    "return_number": number,
                    "amount": taken_back,
                    "refund_id": reversed_refund.refund_id,
                    "refunded_amount": {"old": refunded, "new": refunded - taken_back},
                },
            )
        ],
        SYSTEM,
    )
