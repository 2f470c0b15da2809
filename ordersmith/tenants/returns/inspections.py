"""Deciding units received for inspection: restock them on a location's shelf or write them off.

Units received with disposition `inspect` wait for someone to decide. A decision adds
`restock` or `damaged` disposition rows for some of them, never more than are still
under inspection (409 `quantity_not_under_inspection`), and the return's view takes them
out of `inspect` (views.py). Restocked units go back on the shelf through the inventory
ledger exactly as on receipt (`service.write_dispositions`). The units counted as
returned on receipt already, so the order's lines do not change, and a decision may come
after the return is closed. Each decision is an order timeline entry and an outbox event.
"""

from __future__ import annotations

import uuid
from collections import defaultdict

from sqlalchemy.ext.asyncio import AsyncSession

from ordersmith.platform.database import TenantContext
from ordersmith.platform.events import record_event
from ordersmith.platform.identity.audit import Actor
from ordersmith.tenants.orders import timeline
from ordersmith.tenants.orders.timeline import Entry
from ordersmith.tenants.returns.errors import QuantityNotUnderInspectionError
from ordersmith.tenants.returns.rules import DispositionRequest, check_decisions
from ordersmith.tenants.returns.service import locked_return, return_lines_of, write_dispositions
from ordersmith.tenants.returns.views import ReturnView, return_view

RETURN_INSPECTED = "return.inspected"


async def decide_inspected(
    tenant: TenantContext,
    session: AsyncSession,
    return_id: uuid.UUID,
    decisions: list[DispositionRequest],
    *,
    actor: Actor,
) -> ReturnView:
    """Restock or write off units held for inspection; restocked ones go back on a location's shelf."""
    order, row = await locked_return(session, return_id)
    return_lines = await return_lines_of(session, return_id)
    parsed = check_decisions(decisions, return_lines)
    held = {item.line.id: item for item in (await return_view(session, return_id)).lines}
    asked: dict[uuid.UUID, int] = defaultdict(int)
    for line_id, _, quantity, _ in parsed:
        asked[line_id] += quantity
    too_many = sorted(
        (held[line_id] for line_id, quantity in asked.items() if quantity > held[line_id].under_inspection),
        key=lambda item: item.line.line_number,
    )
    if too_many:
        raise QuantityNotUnderInspectionError(
            "; ".join(
                f"return line {item.line.line_number} ({item.sku}): {asked[item.line.id]} decided, "
                f"{item.under_inspection} under inspection"
                for item in too_many
            )
            + "; only units received with disposition inspect and not decided yet can be restocked "
            "or written off",
            extensions={
                "lines": [
                    {
                        "return_line_id": str(item.line.id),
                        "sku": item.sku,
                        "decided": asked[item.line.id],
                        "under_inspection": item.under_inspection,
                    }
                    for item in too_many
                ]
            },
        )
    _, codes = await write_dispositions(
        tenant, session, order, row, return_lines, parsed, actor=actor, what="inspection", field="decisions"
    )
    decided = [
        {
            "line_number": return_lines[line_id].line_number,
            "sku": held[line_id].sku,
            "disposition": kind,
            "quantity": quantity,
            "location": codes.get(location) if location else None,
        }
        for line_id, kind, quantity, location in parsed
    ]
    base = {"return_id": str(return_id), "return_number": row.number}
    await timeline.record(
        session, order.id, [Entry("return_inspected", {**base, "decisions": decided})], actor
    )
    await record_event(
        session,
        tenant,
        RETURN_INSPECTED,
        {"order_id": str(order.id), "number": order.number, **base, "decisions": decided},
    )
    return await return_view(session, return_id)
