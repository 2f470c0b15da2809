"""Holds: reasons an order must wait, placed and released as rows, never as a status.

An open hold keeps a placed order from being confirmed and any order from being
fulfilled or completed. Releasing the last open hold of a placed order confirms it:
confirmation is automatic unless a hold stops it.

Who may release a hold: the hold names the least role that may (owner > admin >
manager > agent), and the caller's *standing* must reach it (`release_standing`):
- a store user stands at their role (a viewer has none);
- an API key stands at `agent`: an integration (a fraud or payment check) may release
  the holds an agent may, never one reserved for a manager or above;
- anyone else (vendor staff, who act on a store only through the admin routes, and the
  system) has none.
"""

from __future__ import annotations

import datetime as dt
import uuid
from dataclasses import dataclass
from typing import Any

from sqlalchemy import insert, update
from sqlalchemy.ext.asyncio import AsyncSession

from ordersmith.platform.database import TenantContext
from ordersmith.platform.errors import FieldError, ValidationFailedError
from ordersmith.platform.events import record_events
from ordersmith.platform.identity.audit import Actor
from ordersmith.platform.ids import uuid7
from ordersmith.tenants.orders import completion, derived, lifecycle, timeline
from ordersmith.tenants.orders.errors import (
    HoldAlreadyReleasedError,
    HoldNotFoundError,
    HoldReleaseForbiddenError,
    NoOpenHoldError,
    OrderNotOpenError,
)
from ordersmith.tenants.orders.models import Order, OrderHold
from ordersmith.tenants.orders.rules import MAX_REASON, HoldRequest, check_hold
from ordersmith.tenants.orders.timeline import Entry, change
from ordersmith.tenants.orders.views import OrderView, load_order

ORDER_HOLD_PLACED = "order.hold_placed"
ORDER_HOLD_RELEASED = "order.hold_released"
ORDER_CONFIRMED = "order.confirmed"

# Least to most: a hold releasable by an agent is releasable by everyone above.
RELEASE_ROLES = ("agent", "manager", "admin", "owner")
API_KEY_STANDING = "agent"


def release_standing(kind: str, role: str | None) -> str | None:
    """The highest release_role a caller may release, or None when it may release none."""
    if kind == "user":
        return role if role in RELEASE_ROLES else None
    if kind == "api_key":
        return API_KEY_STANDING
    return None


def may_release(standing: str | None, release_role: str) -> bool:
    """Whether a caller of this standing may release a hold asking for `release_role`."""
    if standing is None:
        return False
    return RELEASE_ROLES.index(standing) >= RELEASE_ROLES.index(release_role)


@dataclass(frozen=True)
class HoldChange:
    """A hold just placed or released, and the order as it now stands."""

    hold: OrderHold
    order: OrderView


def hold_id_of(text: str) -> uuid.UUID:
    """The hold id in a path; one that cannot exist is simply not found."""
    try:
        return uuid.UUID(text)
    except ValueError:
        raise _hold_missing() from None


def _hold_missing() -> HoldNotFoundError:
    return HoldNotFoundError("this order has no such hold; read the order to see its holds")


def _check_open(order: Order, action: str) -> None:
    if order.status not in lifecycle.OPEN:
        raise OrderNotOpenError(order.status, action)


async def place_hold(
    tenant: TenantContext,
    session: AsyncSession,
    order_id: uuid.UUID,
    request: HoldRequest,
    *,
    actor: Actor,
    rules: tuple[str, ...] = (),
) -> HoldChange:
    """Put an open order on hold until someone of the hold's release role releases it.

    `rules`: the store's review rules that called for the hold, named on its timeline entry.
    """
    errors: list[FieldError] = []
    check_hold(request, "", errors)
    if errors:
        raise ValidationFailedError("the hold is invalid; see errors", errors=errors)
    view = await load_order(session, order_id, lock=True)
    order = view.order
    _check_open(order, "be put on hold")
    reason = request.reason.strip()
    hold = (
        await session.scalars(
            insert(OrderHold)
            .values(
                id=uuid7(),
                order_id=order_id,
                type=request.type,
                reason=reason,
                release_role=request.release_role,
                placed_by_type=actor.type,
                placed_by_id=actor.id,
            )
            .returning(OrderHold)
        )
    ).one()
    open_holds = order.open_hold_count
    await session.execute(
        update(Order)
        .where(Order.id == order_id)
        .values(
            open_hold_count=open_holds + 1,
            version=Order.version + 1,
            updated_at=dt.datetime.now(dt.UTC),
        )
    )
    entry = Entry(
        "hold_placed",
        {
            "hold_id": str(hold.id),
            "type": hold.type,
            "reason": reason,
            "release_role": hold.release_role,
            "open_hold_count": change(open_holds, open_holds + 1),
            **({"rules": list(rules)} if rules else {}),
        },
    )
    # A released order's fulfillment orders go on hold now, not on their next change.
    if moves := await derived.reservations_moved(tenant, session, order_id):
        entry.changes["fulfillment_orders"] = moves
    await timeline.record(session, order_id, [entry], actor)
    await record_events(
        session,
        tenant,
        [
            (
                ORDER_HOLD_PLACED,
                {
                    "order_id": str(order_id),
                    "number": order.number,
                    "hold_id": str(hold.id),
                    "type": hold.type,
                    "reason": reason,
                    "release_role": hold.release_role,
                },
            )
        ],
    )
    return HoldChange(hold, await load_order(session, order_id))


def _checked_note(note: str | None) -> str | None:
    note = (note or "").strip() or None
    if note is not None and len(note) > MAX_REASON:
        raise ValidationFailedError(
            "the release is invalid; see errors",
            errors=[FieldError("note", f"must be at most {MAX_REASON} characters")],
        )
    return note


async def release_hold(
    tenant: TenantContext,
    session: AsyncSession,
    order_id: uuid.UUID,
    hold_id: uuid.UUID,
    *,
    note: str | None,
    actor: Actor,
    standing: str | None,
) -> HoldChange:
    """Release one open hold; the last one released confirms a placed order."""
    note = _checked_note(note)
    view = await load_order(session, order_id, lock=True)
    order = view.order
    hold = next((hold for hold in view.holds if hold.id == hold_id), None)
    if hold is None:
        raise _hold_missing()
    if hold.released_at is not None:
        raise HoldAlreadyReleasedError(
            f"this hold was released at {hold.released_at.isoformat()}; nothing more to do"
        )
    _check_open(order, "have a hold released")
    if not may_release(standing, hold.release_role):
        raise HoldReleaseForbiddenError(
            f"this {hold.type} hold may be released by a {hold.release_role} or above; "
            f"your standing is {standing or 'none'}; ask someone with that role",
            extensions={"release_role": hold.release_role, "standing": standing},
        )
    await release_and_confirm(tenant, session, order, [hold], note=note, actor=actor)
    updated = await load_order(session, order_id)
    return HoldChange(next(item for item in updated.holds if item.id == hold_id), updated)


async def release_all_holds(
    tenant: TenantContext,
    session: AsyncSession,
    order_id: uuid.UUID,
    *,
    note: str | None,
    actor: Actor,
    standing: str | None,
) -> OrderView:
    """Release every open hold of the order or none (each needs the standing); a placed order is confirmed."""
    note = _checked_note(note)
    view = await load_order(session, order_id, lock=True)
    open_holds = [hold for hold in view.holds if hold.released_at is None]
    if not open_holds:
        raise NoOpenHoldError("this order has no open hold; nothing to release")
    _check_open(view.order, "have its holds released")
    beyond = [hold for hold in open_holds if not may_release(standing, hold.release_role)]
    if beyond:
        raise HoldReleaseForbiddenError(
            f"{len(beyond)} of the {len(open_holds)} open holds need a higher role than your standing "
            f"({standing or 'none'}); nothing was released. Ask someone with that role, or release "
            "the others one by one (POST /api/v1/orders/{id}/holds/{hold_id}/release)",
            extensions={
                "standing": standing,
                "holds": [
                    {"id": str(hold.id), "type": hold.type, "release_role": hold.release_role}
                    for hold in beyond
                ],
            },
        )
    await release_and_confirm(tenant, session, view.order, open_holds, note=note, actor=actor)
    return await load_order(session, order_id)


async def release_and_confirm(
    tenant: TenantContext,
    session: AsyncSession,
    order: Order,
    holds: list[OrderHold],
    *,
    note: str | None,
    actor: Actor,
) -> None:
    """Release open holds of a locked, open order, announced; a placed order left with none is confirmed."""
    # Read before the updates below, which the session copies onto `order`.
    status, open_holds = order.status, order.open_hold_count
    entries, events = release_entries(order, holds, note)
    await release_holds(session, order, holds, note=note, actor=actor)
    now = dt.datetime.now(dt.UTC)
    values: dict[str, Any] = {"version": Order.version + 1, "updated_at": now}
    if status == lifecycle.PLACED and open_holds == len(holds):
        lifecycle.check_transition(status, lifecycle.CONFIRMED)
        values |= {"status": lifecycle.CONFIRMED, "confirmed_at": now}
        entries.append(Entry("confirmed", {"status": change(lifecycle.PLACED, lifecycle.CONFIRMED)}))
        events.append((ORDER_CONFIRMED, {"order_id": str(order.id), "number": order.number}))
    await session.execute(update(Order).where(Order.id == order.id).values(**values))
    # With the last hold gone, its fulfillment orders are open again now.
    if entries and (moves := await derived.reservations_moved(tenant, session, order.id)):
        entries[-1].changes["fulfillment_orders"] = moves
    await timeline.record(session, order.id, entries, actor)
    await record_events(session, tenant, events)
    # The last hold was all that kept a shipped and paid order from completing.
    await completion.settle(tenant, session, order.id)


async def release_holds(
    session: AsyncSession, order: Order, holds: list[OrderHold], *, note: str | None, actor: Actor
) -> None:
    """Mark these open holds of a locked order released and count them off the order.

    The caller bumps the order's version and writes the timeline and events (see
    `release_entries`) together with whatever else it changes.
    """
    if not holds:
        return
    await session.execute(
        update(OrderHold)
        .where(OrderHold.id.in_([hold.id for hold in holds]), OrderHold.released_at.is_(None))
        .values(
            released_at=dt.datetime.now(dt.UTC),
            released_by_type=actor.type,
            released_by_id=actor.id,
            release_note=note,
        )
    )
    await session.execute(
        update(Order).where(Order.id == order.id).values(open_hold_count=Order.open_hold_count - len(holds))
    )


def release_entries(
    order: Order, holds: list[OrderHold], note: str | None
) -> tuple[list[Entry], list[tuple[str, dict[str, Any]]]]:
    """Timeline entries and outbox events announcing released holds; call before `release_holds`."""
    entries: list[Entry] = []
    events: list[tuple[str, dict[str, Any]]] = []
    open_holds = order.open_hold_count
    for hold in holds:
        entries.append(
            Entry(
                "hold_released",
                {
                    "hold_id": str(hold.id),
                    "type": hold.type,
                    "note": note,
                    "open_hold_count": change(open_holds, open_holds - 1),
                },
            )
        )
        open_holds -= 1
        events.append(
            (
                ORDER_HOLD_RELEASED,
                {"order_id": str(order.id), "number": order.number, "hold_id": str(hold.id), "note": note},
            )
        )
    return entries, events
