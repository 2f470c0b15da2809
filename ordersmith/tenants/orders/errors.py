"""Errors of the orders context."""

from __future__ import annotations

from collections.abc import Iterable

from ordersmith.platform.errors import ConflictError, NotFoundError


class OrderNotFoundError(NotFoundError):
    code = "order_not_found"
    title = "Order not found"


class InvalidTransitionError(ConflictError):
    code = "invalid_transition"
    title = "Invalid transition"

    def __init__(self, current: str, wanted: str, allowed: Iterable[str]) -> None:
        allowed = sorted(allowed)
        following = ", ".join(allowed) if allowed else "nothing: it is final"
        super().__init__(
            f"an order that is {current} cannot become {wanted}; from {current} it can become {following}",
            extensions={"current_status": current, "allowed_next": allowed},
        )


class OrderChangedError(ConflictError):
    """The order moved on (shipped, edited, cancelled) since the caller looked at it."""

    code = "order_changed"
    title = "Order changed meanwhile"
