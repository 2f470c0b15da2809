"""Errors of the inventory context."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

from ordersmith.platform.errors import ConflictError, NotFoundError


class LocationNotFoundError(NotFoundError):
    code = "location_not_found"
    title = "Location not found"


class LocationCodeTakenError(ConflictError):
    code = "location_code_taken"
    title = "Location code already used"


class SkuNotStockedError(NotFoundError):
    code = "sku_not_found"
    title = "SKU not found"


class StockWouldGoNegativeError(ConflictError):
    code = "stock_would_go_negative"
    title = "Not that much stock on hand"


@dataclass(frozen=True)
class Shortfall:
    """One SKU an order wanted more of than could be promised."""

    sku: str
    requested: int
    available: int

    def as_dict(self) -> dict[str, Any]:
        return {"sku": self.sku, "requested": self.requested, "available": self.available}


class InsufficientStockError(ConflictError):
    code = "insufficient_stock"
    title = "Insufficient stock"

    def __init__(self, shortfalls: list[Shortfall]) -> None:
        named = ", ".join(
            f"{item.sku} (wanted {item.requested}, {item.available} available)" for item in shortfalls
        )
        super().__init__(
            f"not enough stock for {named}; lower the quantities, receive stock, "
            "or allow backorders for the SKU",
            extensions={"shortfalls": [item.as_dict() for item in shortfalls]},
        )
        self.shortfalls = shortfalls
