"""Errors of the orders context."""

from __future__ import annotations

from collections.abc import Iterable

from ordersmith.platform.errors import ConflictError, NotFoundError, PermissionDeniedError
from ordersmith.platform.errors import InvalidTransitionError as BaseInvalidTransitionError


class OrderNotFoundError(NotFoundError):
    code = "order_not_found"
    title = "Order not found"


class InvalidTransitionError(BaseInvalidTransitionError):
    subject = "an order"


class OrderChangedError(ConflictError):
    """The order moved on (shipped, edited, cancelled) since the caller looked at it."""

    code = "order_changed"
    title = "Order changed meanwhile"


class OrderNotOpenError(ConflictError):
    """Holds, cancellations and edits apply only while an order is draft, placed or confirmed."""

    code = "order_not_open"
    title = "Order no longer open"

    def __init__(self, current: str, action: str) -> None:
        super().__init__(
            f"an order that is {current} cannot {action}; only draft, placed or confirmed orders can",
            extensions={"current_status": current},
        )


class HoldNotFoundError(NotFoundError):
    code = "hold_not_found"
    title = "Hold not found"


class HoldAlreadyReleasedError(ConflictError):
    code = "hold_already_released"
    title = "Hold already released"


class NoOpenHoldError(ConflictError):
    """An order-level release of an order with no open hold."""

    code = "no_open_hold"
    title = "No open hold"


class HoldReleaseForbiddenError(PermissionDeniedError):
    code = "hold_release_forbidden"
    title = "Not allowed to release this hold"


class QuantityNotCancellableError(ConflictError):
    """More was asked to be cancelled than is left unshipped on a line."""

    code = "quantity_not_cancellable"
    title = "Quantity cannot be cancelled"


class NothingToCancelError(ConflictError):
    code = "nothing_to_cancel"
    title = "Nothing left to cancel"


class OrderOnHoldError(ConflictError):
    code = "order_on_hold"
    title = "Order on hold"


class OrderNotFulfilledError(ConflictError):
    code = "order_not_fulfilled"
    title = "Order not fulfilled"


class OrderNotEditableError(ConflictError):
    """Edits apply to placed or confirmed orders only; later, the order is settled or gone."""

    code = "order_not_editable"
    title = "Order cannot be edited"

    def __init__(self, current: str, editable: Iterable[str]) -> None:
        editable = sorted(editable)
        hint = "; change a draft with PUT /api/v1/orders/{id}/draft" if current == "draft" else ""
        super().__init__(
            f"an order that is {current} cannot be edited; only {' or '.join(editable)} orders can{hint}",
            extensions={"current_status": current, "editable_statuses": editable},
        )


class OrderNotDraftError(ConflictError):
    """Only a draft's lines are replaced whole; a placed order changes through an edit."""

    code = "order_not_draft"
    title = "Order is not a draft"

    def __init__(self, current: str) -> None:
        super().__init__(
            f"this order is {current}, not a draft: change it with an edit "
            "(POST /api/v1/orders/{id}/edits/preview, then /edits)",
            extensions={"current_status": current},
        )


class LineShippedError(ConflictError):
    """An edit would change units that already left the warehouse."""

    code = "line_shipped"
    title = "Line already shipped"
