"""Placing an order: one transaction that reserves stock and writes the order, or fails whole.

The steps, all in the caller's tenant transaction, in three statements:
1. check the request (422 naming each bad field);
2. read the SKUs and the customer and lock the SKUs' stock rows, in (variant, location)
   order like every stock change (ADR 0006), in one statement;
3. sum the demand per SKU (two lines of one SKU count together) and plan where each
   unit comes from (`inventory.reservations.plan_reservations`), under those locks: the
   plan never promises what the locked rows do not hold;
4. in one prebuilt statement, move the reserved totals and write the order, its lines,
   where each line's units are held and why, the hold, the timeline and the outbox
   events.
Confirmation is automatic unless the order arrives with a hold. Placement is the hot
path, so it uses Core statements built once at import (only parameters change per
order) and builds its response from the rows it wrote, reading nothing back.
"""

from __future__ import annotations

import datetime as dt
import uuid
from collections import defaultdict
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from typing import Any, TypeVar

from sqlalchemy import CTE, Select, Table, any_, bindparam, column, func, insert, select, true, update
from sqlalchemy.dialects.postgresql import ARRAY, JSONB
from sqlalchemy.ext.asyncio import AsyncSession
from sqlalchemy.orm import class_mapper
from sqlalchemy.sql.selectable import TableValuedAlias

from ordersmith.platform.database import Driver, TenantContext, driver_of
from ordersmith.platform.driver_sql import DriverStatement
from ordersmith.platform.errors import FieldError
from ordersmith.platform.identity.audit import Actor
from ordersmith.platform.ids import uuid7
from ordersmith.platform.models import OutboxEvent
from ordersmith.tenants.catalog.models import Variant
from ordersmith.tenants.customers.models import Customer
from ordersmith.tenants.inventory.models import Location, Reservation, StockLevel
from ordersmith.tenants.inventory.reservations import Allocation, Demand, Plan, StockRow, plan_reservations
from ordersmith.tenants.orders import lifecycle
from ordersmith.tenants.orders.models import Order, OrderEvent, OrderHold, OrderLine
from ordersmith.tenants.orders.rules import OrderRequest, check_order, check_total, clean_tags, raise_if
from ordersmith.tenants.orders.timeline import Entry, change, entry_rows, is_touch
from ordersmith.tenants.orders.views import OrderView, ReservationView

_Model = TypeVar("_Model")

ORDER_PLACED = "order.placed"
ORDER_CONFIRMED = "order.confirmed"


def _table(model: Any) -> Table:
    table: Table = model.__table__
    return table


# Core tables: placement is the hot path, and Core statements skip the ORM's bookkeeping.
_VARIANTS = _table(Variant)
_CUSTOMERS = _table(Customer)
_STOCK = _table(StockLevel)
_LOCATIONS = _table(Location)
_ORDERS = _table(Order)
_LINES = _table(OrderLine)
_RESERVATIONS = _table(Reservation)
_EVENTS = _table(OrderEvent)
_HOLDS = _table(OrderHold)
_OUTBOX = _table(OutboxEvent)


@dataclass(frozen=True)
class Sku:
    """A catalog SKU as an order line needs it (placement and edits)."""

    id: uuid.UUID
    code: str
    name: str
    price_amount: int
    currency: str
    is_active: bool
    allow_backorder: bool


# What a `Sku` is made of, in its fields' order.
_SKU_COLUMNS = (
    _VARIANTS.c.id,
    _VARIANTS.c.sku_code,
    _VARIANTS.c.name,
    _VARIANTS.c.price_amount,
    _VARIANTS.c.currency,
    _VARIANTS.c.is_active,
    _VARIANTS.c.allow_backorder,
)
# The SKUs whose lower-case codes are in `codes`.
_SKUS_BY_CODE = select(*_SKU_COLUMNS).where(
    func.lower(_VARIANTS.c.sku_code) == any_(bindparam("codes", type_=ARRAY(_VARIANTS.c.sku_code.type)))
)
_SKUS_BY_CODE_ON_DRIVER = DriverStatement(_SKUS_BY_CODE)
# The live customer an id is (or was merged into).
_LIVE_CUSTOMER = DriverStatement(
    select(func.coalesce(_CUSTOMERS.c.merged_into_id, _CUSTOMERS.c.id)).where(
        _CUSTOMERS.c.id == bindparam("customer_id", type_=_CUSTOMERS.c.id.type)
    )
)


def _lowered(codes: Sequence[str]) -> list[str]:
    return sorted({code.lower() for code in codes})


async def skus_by_code(session: AsyncSession, codes: Sequence[str]) -> dict[str, Sku]:
    """The SKUs with these codes, matched case-insensitively, keyed by lower-case code."""
    rows = await session.execute(_SKUS_BY_CODE, {"codes": _lowered(codes)})
    return {row.sku_code.lower(): Sku(*row) for row in rows}


def priced_lines(
    request: OrderRequest, skus: dict[str, Sku], currency: str, errors: list[FieldError]
) -> list[tuple[Sku, int, int]]:
    """(sku, quantity, unit price) per line, with 422s for unknown, inactive or mispriced SKUs."""
    priced = []
    for index, line in enumerate(request.lines):
        sku = skus.get(line.sku.lower())
        if sku is None:
            errors.append(FieldError(f"lines[{index}].sku", f"no SKU {line.sku!r} in this store"))
            continue
        if not sku.is_active:
            errors.append(FieldError(f"lines[{index}].sku", f"{sku.code} is not for sale (inactive)"))
            continue
        if line.unit_price_amount is None and sku.currency != currency:
            errors.append(
                FieldError(
                    f"lines[{index}].sku",
                    f"{sku.code} is priced in {sku.currency} but the order is in {currency}; "
                    f"give unit_price_amount in {currency}",
                )
            )
            continue
        price = sku.price_amount if line.unit_price_amount is None else line.unit_price_amount
        check_total(f"lines[{index}].unit_price_amount", price * line.quantity, errors)
        priced.append((sku, line.quantity, price))
    return priced


def demands_of(priced: list[tuple[Sku, int, int]]) -> list[Demand]:
    total: dict[uuid.UUID, int] = defaultdict(int)
    by_id = {}
    for sku, quantity, _ in priced:
        total[sku.id] += quantity
        by_id[sku.id] = sku
    return [
        Demand(sku_id, by_id[sku_id].code, qty, by_id[sku_id].allow_backorder)
        for sku_id, qty in total.items()
    ]


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


def _read_and_lock_statement() -> Select[Any]:
    customer = (
        select(func.coalesce(_CUSTOMERS.c.merged_into_id, _CUSTOMERS.c.id))
        .where(_CUSTOMERS.c.id == bindparam("customer_id", type_=_CUSTOMERS.c.id.type))
        .scalar_subquery()
    )
    codes = bindparam("codes", type_=ARRAY(_VARIANTS.c.sku_code.type))
    wanted = (
        func.unnest(codes)
        .table_valued(column("code", _VARIANTS.c.sku_code.type), name="wanted")
        .render_derived()
    )
    return (
        select(
            *_SKU_COLUMNS,
            _STOCK.c.location_id,
            _LOCATIONS.c.code,
            _LOCATIONS.c.priority,
            _STOCK.c.on_hand - _STOCK.c.reserved - _STOCK.c.safety_stock,
            customer,
        )
        # Driven by the codes asked for, so that even the generic plan (ADR 0010) walks
        # the indexes: `lower(sku_code) = ANY(...)` planned without its array scanned
        # whole tables and hashed them.
        .select_from(
            wanted.join(_VARIANTS, func.lower(_VARIANTS.c.sku_code) == wanted.c.code)
            .join(_STOCK, _STOCK.c.variant_id == _VARIANTS.c.id)
            .join(_LOCATIONS, (_LOCATIONS.c.id == _STOCK.c.location_id) & _LOCATIONS.c.is_active)
        )
        .order_by(_STOCK.c.variant_id, _STOCK.c.location_id)
        .with_for_update(of=_STOCK)
    )


# Built once: the hot path only binds parameters (see `_write_statement`).
_READ_AND_LOCK = DriverStatement(_read_and_lock_statement())


async def _read_and_lock(
    connection: Driver, schema: str, request: OrderRequest
) -> tuple[dict[str, Sku], list[StockRow], uuid.UUID | None]:
    """The SKUs, their stock rows at active locations (locked) and the live customer id.

    One round trip in the common case: the stock rows are locked in (variant, location)
    order like every other stock change (ADR 0006), with the customer as an uncorrelated
    subquery. A SKU with no stock row at an active location, and the customer when no
    row came back at all, are looked up on their own.
    """
    lowered = _lowered([line.sku for line in request.lines])
    rows = await _READ_AND_LOCK.fetch(
        connection, schema, {"codes": lowered, "customer_id": request.customer_id}
    )
    skus = {row[1].lower(): Sku(*row[:7]) for row in rows}
    stock = [StockRow(row[0], row[7], row[8], row[9], row[10]) for row in rows]
    missing = [code for code in lowered if code not in skus]
    if missing:
        found = await _SKUS_BY_CODE_ON_DRIVER.fetch(connection, schema, {"codes": missing})
        skus.update((row[1].lower(), Sku(*row)) for row in found)
    if rows:
        customer_id = rows[0][11]
    else:
        customer = await _LIVE_CUSTOMER.fetchrow(connection, schema, {"customer_id": request.customer_id})
        customer_id = None if customer is None else customer[0]
    return skus, stock, customer_id


async def place_order(
    tenant: TenantContext, session: AsyncSession, request: OrderRequest, *, actor: Actor
) -> OrderView:
    """Reserve stock and write the order in the session's transaction, or raise and write nothing."""
    # Placement's statements run on the driver connection: whatever the session holds goes first.
    await session.flush()
    return await place(tenant, await driver_of(session), request, actor=actor)


async def place(
    tenant: TenantContext, connection: Driver, request: OrderRequest, *, actor: Actor
) -> OrderView:
    """Reserve stock and write the order in the connection's tenant transaction, or raise and write nothing.

    Two statements (driver_sql.py): read and lock, then (in Python) the checks and the
    plan, then one statement that moves the reserved totals and writes the order, its
    lines, their reservations, the hold, the timeline and the outbox events.
    """
    check_order(request)
    skus, stock, customer_id = await _read_and_lock(connection, tenant.schema_name, request)
    errors: list[FieldError] = []
    if customer_id is None:
        errors.append(FieldError("customer_id", "no such customer in this store; create it first"))
    # Without a currency, the order is in the first known SKU's currency.
    known = [skus[line.sku.lower()] for line in request.lines if line.sku.lower() in skus]
    currency = request.currency or (known[0].currency if known else "")
    priced = priced_lines(request, skus, currency, errors)
    subtotal = sum(price * quantity for _, quantity, price in priced)
    check_total("lines", subtotal, errors)
    raise_if(errors)
    assert customer_id is not None

    demands = sorted(demands_of(priced), key=lambda demand: demand.variant_id)
    plan = plan_reservations(demands, stock)
    written = _Written.of(tenant, request, actor, customer_id, currency, subtotal, priced, plan)
    number, created_at = await _WRITE.fetchrow(connection, tenant.schema_name, written.parameters())
    return written.view(number, created_at)


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


_WRITE = DriverStatement(_write_statement())


@dataclass
class _Written:
    """The rows one placement writes, and the single statement that writes them."""

    tenant: TenantContext
    order: dict[str, Any]
    lines: list[dict[str, Any]]
    reservations: list[dict[str, Any]]
    views: list[ReservationView]
    hold: dict[str, Any] | None
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
    ) -> _Written:
        order_id = uuid7()
        now = dt.datetime.now(dt.UTC)
        confirmed = request.hold is None
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
            "open_hold_count": 0 if confirmed else 1,
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
        hold = None
        entries = [placed_entry(None, held, lines)]
        if request.hold is None:
            entries.append(Entry("confirmed", {"status": change(lifecycle.PLACED, lifecycle.CONFIRMED)}))
        else:
            reason = request.hold.reason.strip()
            hold = {
                "id": uuid7(),
                "order_id": order_id,
                "type": request.hold.type,
                "reason": reason,
                "release_role": request.hold.release_role,
                "placed_by_type": actor.type,
                "placed_by_id": actor.id,
            }
            entries.append(Entry("hold_placed", {"type": request.hold.type, "reason": reason}))
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
            hold,
            entry_rows(order_id, entries, actor),
            moves,
            events,
        )

    def parameters(self) -> dict[str, Any]:
        """The parameters of `_WRITE` for this order."""
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
            "h": [self.hold] if self.hold else [],
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
        holds = []
        if self.hold is not None:
            holds = [
                _detached(
                    OrderHold,
                    self.hold,
                    released_at=None,
                    released_by_type=None,
                    released_by_id=None,
                    release_note=None,
                    created_at=created_at,
                )
            ]
        return OrderView(order, lines, self.views, holds)


def _detached(model: type[_Model], values: Mapping[str, Any], **more: Any) -> _Model:
    """A transient instance holding `values`, made the way SQLAlchemy loads rows: no attribute events.

    The response of a placement is built from these; they never join a session, and
    constructing them through `__init__` cost more than the rest of the response.
    """
    instance: _Model = class_mapper(model).class_manager.new_instance()
    instance.__dict__.update(values, **more)
    return instance
