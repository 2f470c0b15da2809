"""Placement's write: the rows one placement writes, and the one statement that writes them.

`placement.place` reads and locks the stock and plans where each unit comes from; what
it then writes is made here: the order, its lines, where each line's units are held and
why (`spread`), its holds, the timeline and the outbox events, all in one prebuilt
statement (`WRITE`) that also moves the reserved totals. Drafts being placed reuse the
row builders. The response is built from the rows in hand (`Written.view`), reading
nothing back.
"""

from __future__ import annotations

import datetime as dt
import uuid
from collections import defaultdict
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any, TypeVar

from sqlalchemy import CTE, Select, Table, bindparam, column, func, insert, select, true, update
from sqlalchemy.dialects.postgresql import JSONB
from sqlalchemy.orm import class_mapper
from sqlalchemy.sql.selectable import TableValuedAlias

from ordersmith.platform.database import TenantContext
from ordersmith.platform.driver_sql import DriverStatement
from ordersmith.platform.identity.audit import Actor
from ordersmith.platform.ids import uuid7
from ordersmith.platform.models import OutboxEvent
from ordersmith.tenants.inventory.models import Reservation, StockLevel
from ordersmith.tenants.inventory.reservations import Allocation, Plan
from ordersmith.tenants.orders import lifecycle, review
from ordersmith.tenants.orders.holds import ORDER_CONFIRMED, ORDER_HOLD_PLACED
from ordersmith.tenants.orders.models import Order, OrderEvent, OrderHold, OrderLine
from ordersmith.tenants.orders.rules import HoldRequest, OrderRequest, clean_tags
from ordersmith.tenants.orders.timeline import Entry, change, entry_rows, is_touch
from ordersmith.tenants.orders.views import OrderView, ReservationView

if TYPE_CHECKING:
    from ordersmith.tenants.orders.placement import Sku

_Model = TypeVar("_Model")

ORDER_PLACED = "order.placed"


def table_of(model: Any) -> Table:
    """A mapped model's Core table: the hot path's statements skip the ORM's bookkeeping."""
    table: Table = model.__table__
    return table


_STOCK = table_of(StockLevel)
_ORDERS = table_of(Order)
_LINES = table_of(OrderLine)
_RESERVATIONS = table_of(Reservation)
_EVENTS = table_of(OrderEvent)
_HOLDS = table_of(OrderHold)
_OUTBOX = table_of(OutboxEvent)


def spread(
    order_id: uuid.UUID, lines: list[dict[str, Any]], plan: Plan
) -> tuple[list[dict[str, Any]], list[tuple[uuid.UUID, Allocation, int]]]:
    """Give each line its share of the SKU's allocations, in line order; the rest is backordered."""
    pools: dict[uuid.UUID, list[list[Any]]] = defaultdict(list)
    for allocation in plan.allocations:
        pools[allocation.variant_id].append([allocation, allocation.quantity])
    held: list[tuple[uuid.UUID, Allocation, int]] = []
    for line in lines:
        wanted = line["quantity_ordered"]
        for pool in pools[line["variant_id"]]:
            take = min(pool[1], wanted)
            if take:
                pool[1] -= take
                wanted -= take
                held.append((line["id"], pool[0], take))
        line["quantity_allocated"] = line["quantity_ordered"] - wanted
        line["quantity_backordered"] = wanted
    return lines, held


def reservation_rows(
    order_id: uuid.UUID, held: list[tuple[uuid.UUID, Allocation, int]]
) -> list[dict[str, Any]]:
    """The `reservations` rows of what `spread` gave each line."""
    return [
        {
            "id": uuid7(),
            "order_id": order_id,
            "line_id": line_id,
            "variant_id": allocation.variant_id,
            "location_id": allocation.location_id,
            "quantity": quantity,
            "reason": allocation.reason,
        }
        for line_id, allocation, quantity in held
    ]


def placed_entry(
    previous: str | None, held: list[tuple[uuid.UUID, Allocation, int]], lines: list[dict[str, Any]]
) -> Entry:
    """The timeline entry of a placement: where each line's units are held and why, what is backordered."""
    return Entry(
        "placed",
        {
            "status": change(previous, lifecycle.PLACED),
            "reservations": [
                {
                    "line_id": str(line_id),
                    "location": allocation.location_code,
                    "quantity": quantity,
                    "reason": allocation.reason,
                }
                for line_id, allocation, quantity in held
            ],
            "backordered": {
                str(line["id"]): line["quantity_backordered"]
                for line in lines
                if line["quantity_backordered"]
            },
        },
    )


def _rows(name: str, table: Table, keys: Sequence[str]) -> TableValuedAlias:
    """Rows from one JSON array parameter `name`: `jsonb_to_recordset(…) AS name(key type, …)`.

    The statement's shape does not depend on how many rows there are, so it is built,
    compiled and prepared once (a multi-row VALUES would be compiled for every order).
    One JSON document per table, not one array per column: the driver checks every
    element of an array parameter in Python, and msgspec encodes JSON in C.
    """
    columns = [column(key, table.c[key].type) for key in keys]
    rows = func.jsonb_to_recordset(bindparam(name, type_=JSONB))
    return rows.table_valued(*columns, name=name).render_derived(with_types=True)


def _insert_rows(table: Table, name: str, keys: Sequence[str]) -> CTE:
    source = _rows(name, table, keys)
    return insert(table).from_select(list(keys), select(*(source.c[key] for key in keys))).cte(name)


_ORDER_KEYS = (
    "id",
    "status",
    "payment_status",
    "fulfillment_status",
    "customer_id",
    "currency",
    "subtotal_amount",
    "total_amount",
    "shipping_address",
    "channel",
    "external_reference",
    "tags",
    "open_hold_count",
    "touch_count",
    "placed_at",
    "confirmed_at",
    "version",
)
_LINE_KEYS = (
    "id",
    "order_id",
    "line_number",
    "variant_id",
    "sku_code",
    "name",
    "unit_price_amount",
    "quantity_ordered",
    "quantity_cancelled",
    "quantity_shipped",
    "quantity_returned",
    "quantity_allocated",
    "quantity_backordered",
)
_RESERVATION_KEYS = ("id", "order_id", "line_id", "variant_id", "location_id", "quantity", "reason")
_EVENT_KEYS = ("id", "order_id", "kind", "changes", "actor_type", "actor_id", "is_touch")
_HOLD_KEYS = ("id", "order_id", "type", "reason", "release_role", "placed_by_type", "placed_by_id")
_OUTBOX_KEYS = ("id", "tenant_id", "topic", "payload")
_MOVE_KEYS = ("variant_id", "location_id", "reserved")


def _write_statement() -> Select[Any]:
    """Placement's one write, built once: data-modifying CTEs that all run to completion.

    The stock rows were locked by `_read_and_lock`; the foreign keys between the new
    rows are checked at the end of the statement, when all of them exist. The order
    number exists only inside the statement, so the outbox payloads get it there.
    """
    order = (
        insert(_ORDERS)
        .values({key: bindparam(f"o_{key}", type_=_ORDERS.c[key].type) for key in _ORDER_KEYS})
        .returning(_ORDERS.c.number, _ORDERS.c.created_at)
        .cte("o")
    )
    moves = _rows("m", _STOCK, _MOVE_KEYS)
    reserve = (
        update(_STOCK)
        .where(_STOCK.c.variant_id == moves.c.variant_id, _STOCK.c.location_id == moves.c.location_id)
        .values(reserved=_STOCK.c.reserved + moves.c.reserved, updated_at=func.now())
        .cte("s")
    )
    events = _rows("x", _OUTBOX, _OUTBOX_KEYS)
    with_number = events.c.payload.op("||")(func.jsonb_build_object("number", order.c.number))
    outbox = (
        insert(_OUTBOX)
        .from_select(
            list(_OUTBOX_KEYS),
            select(events.c.id, events.c.tenant_id, events.c.topic, with_number).select_from(
                events.join(order, true())
            ),
        )
        .cte("x")
    )
    return select(order.c.number, order.c.created_at).add_cte(
        _insert_rows(_LINES, "l", _LINE_KEYS),
        _insert_rows(_RESERVATIONS, "r", _RESERVATION_KEYS),
        _insert_rows(_HOLDS, "h", _HOLD_KEYS),
        _insert_rows(_EVENTS, "e", _EVENT_KEYS),
        reserve,
        outbox,
    )


WRITE = DriverStatement(_write_statement())


@dataclass
class Written:
    """The rows one placement writes, and the single statement that writes them."""

    tenant: TenantContext
    order: dict[str, Any]
    lines: list[dict[str, Any]]
    reservations: list[dict[str, Any]]
    views: list[ReservationView]
    holds: list[dict[str, Any]]
    entries: list[dict[str, Any]]
    moves: list[tuple[uuid.UUID, uuid.UUID, int]]
    events: list[tuple[str, dict[str, Any]]]

    @classmethod
    def of(
        cls,
        tenant: TenantContext,
        request: OrderRequest,
        actor: Actor,
        customer_id: uuid.UUID,
        currency: str,
        subtotal: int,
        priced: list[tuple[Sku, int, int]],
        plan: Plan,
        rule_hold: review.RuleHold | None = None,
    ) -> Written:
        """The rows of an order; `rule_hold`: the hold the store's review rules call for (by the system)."""
        order_id = uuid7()
        now = dt.datetime.now(dt.UTC)
        # Who places each hold, and the rules that called for it: the order's own first, then the rules'.
        requested: list[tuple[HoldRequest, Actor, tuple[str, ...] | None]] = []
        if request.hold is not None:
            requested.append((request.hold, actor, None))
        if rule_hold is not None:
            requested.append((rule_hold, rule_hold.actor, rule_hold.rules))
        confirmed = not requested
        order = {
            "id": order_id,
            "status": lifecycle.CONFIRMED if confirmed else lifecycle.PLACED,
            "payment_status": "unpaid",
            "fulfillment_status": "unfulfilled",
            "customer_id": customer_id,
            "currency": currency,
            "subtotal_amount": subtotal,
            "total_amount": subtotal,
            "shipping_address": dict(request.shipping_address),
            "channel": request.channel,
            "external_reference": request.external_reference,
            "tags": clean_tags(request.tags),
            "open_hold_count": len(requested),
            "touch_count": 1 if is_touch(actor) else 0,
            "placed_at": now,
            "confirmed_at": now if confirmed else None,
            "version": 1,
        }
        lines = [
            {
                "id": uuid7(),
                "order_id": order_id,
                "line_number": number,
                "variant_id": sku.id,
                "sku_code": sku.code,
                "name": sku.name,
                "unit_price_amount": price,
                "quantity_ordered": quantity,
                "quantity_cancelled": 0,
                # Left to the column's default in the write; here for the response built in hand.
                "quantity_pending": 0,
                "quantity_shipped": 0,
                "quantity_returned": 0,
            }
            for number, (sku, quantity, price) in enumerate(priced, start=1)
        ]
        lines, held = spread(order_id, lines, plan)
        reservations = reservation_rows(order_id, held)
        views = [
            ReservationView(line_id, a.location_id, a.location_code, quantity, a.reason)
            for line_id, a, quantity in held
        ]
        entries = [placed_entry(None, held, lines)]
        if confirmed:
            entries.append(Entry("confirmed", {"status": change(lifecycle.PLACED, lifecycle.CONFIRMED)}))
        # Entry ids are made in order (UUIDv7), and entries of one transaction share created_at:
        # the placement's rows are made before the holds' so that the timeline reads placed, then held.
        timeline_rows = entry_rows(order_id, entries, actor)
        holds: list[dict[str, Any]] = []
        hold_events: list[tuple[str, dict[str, Any]]] = []
        # A hold written with the order reads like one placed on it afterwards (holds.py):
        # its own timeline entry, by whoever placed it (the system for the store's rules), and event.
        for count, (hold_request, placed_by, rules) in enumerate(requested):
            hold, described = _hold_row(order_id, hold_request, placed_by)
            changes = {**described, "open_hold_count": change(count, count + 1)}
            if rules is not None:
                changes["rules"] = list(rules)
            holds.append(hold)
            timeline_rows += entry_rows(order_id, [Entry("hold_placed", changes)], placed_by)
            hold_events.append((ORDER_HOLD_PLACED, {"order_id": str(order_id), **described}))
        payload = {
            "order_id": str(order_id),
            "customer_id": str(customer_id),
            "currency": currency,
            "total_amount": subtotal,
            "channel": request.channel,
            "lines": [{"sku": line["sku_code"], "quantity": line["quantity_ordered"]} for line in lines],
        }
        events = [(ORDER_PLACED, payload)]
        if confirmed:
            events.append((ORDER_CONFIRMED, {"order_id": str(order_id)}))
        events += hold_events
        # One move per stock row: UPDATE … FROM applies only one source row to each target.
        totals: dict[tuple[uuid.UUID, uuid.UUID], int] = defaultdict(int)
        for _, allocation, quantity in held:
            totals[allocation.variant_id, allocation.location_id] += quantity
        moves = sorted(
            (variant_id, location_id, quantity) for (variant_id, location_id), quantity in totals.items()
        )
        return cls(
            tenant,
            order,
            lines,
            reservations,
            views,
            holds,
            timeline_rows,
            moves,
            events,
        )

    def parameters(self) -> dict[str, Any]:
        """The parameters of `WRITE` for this order."""
        moves = [dict(zip(_MOVE_KEYS, move, strict=True)) for move in self.moves]
        outbox = [
            {"id": uuid7(), "tenant_id": self.tenant.tenant_id, "topic": topic, "payload": payload}
            for topic, payload in self.events
        ]
        return {
            **{f"o_{key}": self.order[key] for key in _ORDER_KEYS},
            # Extra keys in a row (a line's pending units, say) are ignored by the statement.
            "l": self.lines,
            "r": self.reservations,
            "h": self.holds,
            "e": self.entries,
            "m": moves,
            "x": outbox,
        }

    def view(self, number: int, created_at: dt.datetime) -> OrderView:
        """The order as written, from the rows in hand: nothing is read back."""
        stamps = {"created_at": created_at, "updated_at": created_at}
        order = _detached(
            Order,
            self.order,
            number=number,
            completed_at=None,
            cancelled_at=None,
            archived_at=None,
            cancel_reason=None,
            **stamps,
        )
        lines = [_detached(OrderLine, line, **stamps) for line in self.lines]
        holds = [
            _detached(
                OrderHold,
                hold,
                released_at=None,
                released_by_type=None,
                released_by_id=None,
                release_note=None,
                created_at=created_at,
            )
            for hold in self.holds
        ]
        return OrderView(order, lines, self.views, holds)


def _hold_row(
    order_id: uuid.UUID, request: HoldRequest, placed_by: Actor
) -> tuple[dict[str, Any], dict[str, Any]]:
    """An `order_holds` row placed with the order, and how its timeline entry and event describe it."""
    reason = request.reason.strip()
    row = {
        "id": uuid7(),
        "order_id": order_id,
        "type": request.type,
        "reason": reason,
        "release_role": request.release_role,
        "placed_by_type": placed_by.type,
        "placed_by_id": placed_by.id,
    }
    described = {
        "hold_id": str(row["id"]),
        "type": request.type,
        "reason": reason,
        "release_role": request.release_role,
    }
    return row, described


def _detached(model: type[_Model], values: Mapping[str, Any], **more: Any) -> _Model:
    """A transient instance holding `values`, made the way SQLAlchemy loads rows: no attribute events.

    The response of a placement is built from these; they never join a session, and
    constructing them through `__init__` cost more than the rest of the response.
    """
    instance: _Model = class_mapper(model).class_manager.new_instance()
    instance.__dict__.update(values, **more)
    return instance
