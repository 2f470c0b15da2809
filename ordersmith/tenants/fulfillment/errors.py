"""Errors of the fulfillment context."""

from __future__ import annotations

from collections.abc import Iterable
from typing import Any

from ordersmith.platform.errors import ConflictError, NotFoundError
from ordersmith.platform.errors import InvalidTransitionError as BaseInvalidTransitionError


class FulfillmentOrderNotFoundError(NotFoundError):
    code = "fulfillment_order_not_found"
    title = "Fulfillment order not found"


class ShipmentNotFoundError(NotFoundError):
    code = "shipment_not_found"
    title = "Shipment not found"


class OrderNotReleasableError(ConflictError):
    """Only a confirmed order goes to the warehouse; a placed one waits for confirmation."""

    code = "order_not_releasable"
    title = "Order cannot be released to fulfillment"


class OrderHeldError(ConflictError):
    """An open hold stops an order from being released or shipped; the problem names each hold."""

    code = "order_on_hold"
    title = "Order on hold"

    def __init__(self, action: str, holds: Iterable[Any]) -> None:
        listed = list(holds)
        named = "; ".join(f"{hold.type} hold {hold.id} ({hold.reason})" for hold in listed)
        super().__init__(
            f"the order cannot {action} while it is on hold: {named}; release the hold first",
            extensions={
                "holds": [{"id": str(hold.id), "type": hold.type, "reason": hold.reason} for hold in listed]
            },
        )


class InvalidFulfillmentTransitionError(BaseInvalidTransitionError):
    subject = "a fulfillment order"


class FulfillmentOrderClosedError(ConflictError):
    """A closed or cancelled fulfillment order has nothing left to ship or reject."""

    code = "fulfillment_order_closed"
    title = "Fulfillment order closed"


class NotReservedError(ConflictError):
    """Units asked of a location that holds none of them for the line (or were cancelled)."""

    code = "not_reserved"
    title = "Not reserved at this location"


class QuantityExceedsReservedError(ConflictError):
    """More units asked of a location than it holds for the line."""

    code = "quantity_exceeds_reserved"
    title = "Quantity exceeds what is reserved"


class ShipmentAlreadyDeliveredError(ConflictError):
    code = "shipment_already_delivered"
    title = "Shipment already delivered"
