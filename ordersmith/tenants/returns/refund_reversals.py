"""A return's refund the provider failed later: the return has that much less refunded.

Payments takes the refund back in its ledger (`payments/reversals.py`) and calls this hook
in the same transaction, the order row already locked. The return whose refund resolution
recorded one of the refund's ledger rows gets its `refunded_amount` lowered by what was
taken back (never below 0), so what it can still refund or credit grows by as much (a
closed one too: it keeps its units, having had a refund), and the order's timeline says
which return lost its refund.
"""

from __future__ import annotations

from sqlalchemy import func, select, update
from sqlalchemy.ext.asyncio import AsyncSession

from ordersmith.platform.database import TenantContext
from ordersmith.platform.identity.audit import SYSTEM
from ordersmith.tenants.orders import timeline
from ordersmith.tenants.orders.timeline import Entry
from ordersmith.tenants.payments.reversals import ReversedRefund, on_refund_reversed
from ordersmith.tenants.returns.models import Return, ReturnResolution


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
        .order_by(ReturnResolution.created_at)
        .limit(1)
    )
    if return_id is None:
        return
    row = (await session.scalars(select(Return).where(Return.id == return_id).with_for_update())).one()
    refunded, number = row.refunded_amount, row.number
    taken_back = min(reversed_refund.amount, refunded)
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
