"""An order's timeline: every change, with old and new values and who made it.

A *touch* is a change made by a person (a store user or vendor staff); API keys and
automation do not count, and one request by a person is one touch however many entries
it writes. Each order keeps its touch count beside the timeline so the
touchless-order rate is one indexed count away.
"""

from __future__ import annotations

import datetime as dt
import uuid
from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any

from sqlalchemy import func, insert, select, update
from sqlalchemy.ext.asyncio import AsyncSession

from ordersmith.platform.identity.audit import Actor
from ordersmith.platform.ids import uuid7
from ordersmith.platform.pagination import Page, PageRequest
from ordersmith.tenants.orders.models import Order, OrderEvent

PEOPLE = ("user", "staff")


def is_touch(actor: Actor) -> bool:
    """Whether a change by this actor is a person's work."""
    return actor.type in PEOPLE


@dataclass(frozen=True)
class Entry:
    """One timeline entry to write: its kind and what changed, as {field: {old, new}} or details."""

    kind: str
    changes: dict[str, Any]


def change(old: Any, new: Any) -> dict[str, Any]:
    return {"old": old, "new": new}


def entry_rows(order_id: uuid.UUID, entries: Sequence[Entry], actor: Actor) -> list[dict[str, Any]]:
    touch = is_touch(actor)
    return [
        {
            "id": uuid7(),
            "order_id": order_id,
            "kind": entry.kind,
            "changes": entry.changes,
            "actor_type": actor.type,
            "actor_id": actor.id,
            "is_touch": touch,
        }
        for entry in entries
    ]


# Orders a person has already touched in the session's transaction (kept in `session.info`).
_TOUCHED = "ordersmith.touched_orders"


def note_touched(session: AsyncSession, order_id: uuid.UUID, actor: Actor) -> None:
    """Count a person's touch written outside `record` (placement sets the count in its row)."""
    if is_touch(actor):
        session.info.setdefault(_TOUCHED, set()).add(order_id)


# When the session's transaction changed each order: (the transaction, {order id: time}), in `session.info`.
_CHANGED_AT = "ordersmith.timeline_changed_at"


async def _changed_at(session: AsyncSession, order_id: uuid.UUID) -> dt.datetime:
    """When this transaction's change to the order happened: the database's clock at its first entry.

    Not `now()`, the time the transaction began: a change that waited for another's lock
    on the order began before that one but happened after it, and the timeline must read
    so. Every writer holds the order's lock by its first entry, so this is later than
    anything a transaction that held the lock before it wrote. One time for all of a
    transaction's entries on an order, so that they read as one change.
    """
    transaction = session.sync_session.get_transaction()
    known = session.info.get(_CHANGED_AT)
    if known is None or known[0] is not transaction:
        known = (transaction, {})
        session.info[_CHANGED_AT] = known
    times: dict[uuid.UUID, dt.datetime] = known[1]
    if order_id not in times:
        at = await session.scalar(select(func.clock_timestamp()))
        assert at is not None
        times[order_id] = at
    return times[order_id]


async def record(session: AsyncSession, order_id: uuid.UUID, entries: Sequence[Entry], actor: Actor) -> None:
    """Append entries to an order's timeline; a person's change counts as one touch."""
    if not entries:
        return
    at = await _changed_at(session, order_id)
    rows = [{**row, "created_at": at} for row in entry_rows(order_id, entries, actor)]
    await session.execute(insert(OrderEvent), rows)
    touched: set[uuid.UUID] = session.info.setdefault(_TOUCHED, set())
    # One request is one touch, however many entries it writes (a refund for a return
    # writes the payment's entry and the return's; a shipment may capture a payment).
    if is_touch(actor) and order_id not in touched:
        touched.add(order_id)
        await session.execute(
            update(Order).where(Order.id == order_id).values(touch_count=Order.touch_count + 1)
        )


async def read(session: AsyncSession, order_id: uuid.UUID, page: PageRequest) -> Page[OrderEvent]:
    """An order's timeline, oldest first (the story in the order it happened)."""
    query = page.apply(
        select(OrderEvent).where(OrderEvent.order_id == order_id),
        OrderEvent.created_at,
        OrderEvent.id,
        newest_first=False,
    )
    rows = list(await session.scalars(query))
    return page.cut(rows, lambda row: (row.created_at, row.id))
