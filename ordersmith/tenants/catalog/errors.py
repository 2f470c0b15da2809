"""Errors of the catalog context."""

from __future__ import annotations

from ordersmith.platform.errors import ConflictError, NotFoundError


class ProductNotFoundError(NotFoundError):
    code = "product_not_found"
    title = "Product not found"


class VariantNotFoundError(NotFoundError):
    code = "variant_not_found"
    title = "Variant not found"


class SkuCodeTakenError(ConflictError):
    code = "sku_code_taken"
    title = "SKU code already used"


class VariantLimitReachedError(ConflictError):
    code = "variant_limit_reached"
    title = "Product has the most variants it can have"
