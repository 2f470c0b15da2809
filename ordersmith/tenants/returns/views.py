"""Reading returns: a return with its lines, dispositions and resolutions.

A line's dispositions say where its units stand now. Receipt gives each unit exactly
one; deciding units held for inspection later adds `restock` or `damaged` rows for
them, so whatever a line's rows hold beyond its quantity was decided out of `inspect`.

A refund resolution keeps the amount it gave; what the provider failed of it later is
read beside it (`refund_reversals.reversals_of`), and its state says whether it stands.
"""

from __future__ import annotations

import uuid
from collections import defaultdict
from collections.abc import Sequence
from dataclasses import dataclass

from sqlalchemy import select
from sqlalchemy.ext.asyncio import AsyncSession

from ordersmith.tenants.orders.models import Order, OrderLine
from ordersmith.tenants.returns.errors import ReturnNotFoundError
from ordersmith.tenants.returns.models import Return, ReturnDisposition, ReturnLine, ReturnResolution
from ordersmith.tenants.returns.refund_reversals import Reversal, reversals_of

# Whether a resolution still stands.
RESOLUTION_SUCCEEDED = "succeeded"  # given whole, and so it stays
RESOLUTION_PARTIALLY_REVERSED = "partially_reversed"  # the provider failed one of its refunds later
RESOLUTION_REVERSED = "reversed"  # the provider failed all it gave back later: nothing of it stands


@dataclass(frozen=True)
class ReturnLineView:
    line: ReturnLine
    sku: str
    name: str
    unit_price_amount: int
    # {disposition: units} as they stand now, once received; `inspect` is what is still undecided.
    dispositions: dict[str, int]

    @property
    def under_inspection(self) -> int:
        """Units received for inspection that nobody has restocked or written off yet."""
        return self.dispositions.get("inspect", 0)


@dataclass(frozen=True)
class ReturnView:
    row: Return
    order_number: int
    lines: list[ReturnLineView]
    dispositions: list[ReturnDisposition]
    resolutions: list[ReturnResolution]
    # What the payments ledger took back of the refund resolutions, oldest first.
    reversals: list[Reversal]

    @property
    def value(self) -> int:
        """What the returned units were sold for: the most refund and credit together may give."""
        return sum(item.unit_price_amount * item.line.quantity for item in self.lines)

    @property
    def exchange_amount(self) -> int:
        """What the returned units its exchange replaced were sold for: used up as a refund would be."""
        return sum(item.amount for item in self.resolutions if item.kind == "exchange")

    def reversals_of(self, resolution: ReturnResolution) -> list[Reversal]:
        """What the ledger took back of one resolution: a refund the provider failed later."""
        return [item for item in self.reversals if item.resolution_id == resolution.id]

    def resolution_state(self, resolution: ReturnResolution) -> str:
        """Whether a resolution stands: succeeded, partially_reversed or reversed."""
        reversed_amount = sum(item.amount for item in self.reversals_of(resolution))
        if reversed_amount == 0:
            return RESOLUTION_SUCCEEDED
        return RESOLUTION_REVERSED if reversed_amount >= resolution.amount else RESOLUTION_PARTIALLY_REVERSED

    def replaced_value(self, units: int) -> int:
        """What `units` of the returned units were sold for, dearest first (an exchange names no line)."""
        value = 0
        for item in sorted(self.lines, key=lambda item: item.unit_price_amount, reverse=True):
            taken = min(units, item.line.quantity)
            value += taken * item.unit_price_amount
            units -= taken
        return value


def standing(quantity: int, rows: dict[str, int]) -> dict[str, int]:
    """Where a line's units stand: its disposition rows summed, less the inspected units decided since."""
    decided = sum(rows.values()) - quantity
    if decided <= 0:
        return rows
    current = {**rows, "inspect": rows.get("inspect", 0) - decided}
    return {key: value for key, value in current.items() if value}


def return_missing() -> ReturnNotFoundError:
    return ReturnNotFoundError("no such return in this store; check the id or list the order's returns")


def return_id_of(text: str) -> uuid.UUID:
    """The return id in a path; one that cannot exist is simply not found."""
    try:
        return uuid.UUID(text)
    except ValueError:
        raise return_missing() from None


async def return_row(session: AsyncSession, return_id: uuid.UUID, *, lock: bool = False) -> Return:
    """The return; lock it only once its order is locked (the order is always locked first)."""
    query = select(Return).where(Return.id == return_id).execution_options(populate_existing=True)
    row = (await session.scalars(query.with_for_update() if lock else query)).one_or_none()
    if row is None:
        raise return_missing()
    return row


async def return_views(session: AsyncSession, rows: Sequence[Return]) -> list[ReturnView]:
    """Returns with their lines, dispositions and resolutions, in the order given."""
    if not rows:
        return []
    ids = [row.id for row in rows]
    numbers = {
        key: value
        for key, value in await session.execute(
            select(Order.id, Order.number).where(Order.id.in_({row.order_id for row in rows}))
        )
    }
    dispositions: dict[uuid.UUID, list[ReturnDisposition]] = defaultdict(list)
    per_line: dict[uuid.UUID, dict[str, int]] = defaultdict(dict)
    for item in await session.scalars(
        select(ReturnDisposition)
        .where(ReturnDisposition.return_id.in_(ids))
        .order_by(ReturnDisposition.created_at, ReturnDisposition.id)
    ):
        dispositions[item.return_id].append(item)
        counts = per_line[item.return_line_id]
        counts[item.disposition] = counts.get(item.disposition, 0) + item.quantity
    lines: dict[uuid.UUID, list[ReturnLineView]] = defaultdict(list)
    for line, sku, name, price in await session.execute(
        select(ReturnLine, OrderLine.sku_code, OrderLine.name, OrderLine.unit_price_amount)
        .join(OrderLine, OrderLine.id == ReturnLine.order_line_id)
        .where(ReturnLine.return_id.in_(ids))
        .order_by(ReturnLine.line_number, ReturnLine.id)
    ):
        counts = standing(line.quantity, per_line.get(line.id, {}))
        lines[line.return_id].append(ReturnLineView(line, sku, name, price, counts))
    resolutions: dict[uuid.UUID, list[ReturnResolution]] = defaultdict(list)
    return_of: dict[uuid.UUID, uuid.UUID] = {}
    for resolution in await session.scalars(
        select(ReturnResolution)
        .where(ReturnResolution.return_id.in_(ids))
        .order_by(ReturnResolution.created_at, ReturnResolution.id)
    ):
        resolutions[resolution.return_id].append(resolution)
        return_of[resolution.id] = resolution.return_id
    reversals: dict[uuid.UUID, list[Reversal]] = defaultdict(list)
    for reversal in await reversals_of(session, [item for items in resolutions.values() for item in items]):
        reversals[return_of[reversal.resolution_id]].append(reversal)
    return [
        ReturnView(
            row,
            numbers[row.order_id],
            lines[row.id],
            dispositions[row.id],
            resolutions[row.id],
            reversals[row.id],
        )
        for row in rows
    ]


async def return_view(session: AsyncSession, return_id: uuid.UUID) -> ReturnView:
    """One return whole."""
    [view] = await return_views(session, [await return_row(session, return_id)])
    return view


async def returns_of(
    session: AsyncSession, order_ids: Sequence[uuid.UUID], *, statuses: frozenset[str] | None = None
) -> list[ReturnView]:
    """The returns of these orders, oldest first (only those in `statuses` when given)."""
    if not order_ids:
        return []
    query = select(Return).where(Return.order_id.in_(order_ids))
    if statuses is not None:
        query = query.where(Return.status.in_(statuses))
    rows = await session.scalars(
        query.order_by(Return.created_at, Return.id).execution_options(populate_existing=True)
    )
    return await return_views(session, list(rows))
