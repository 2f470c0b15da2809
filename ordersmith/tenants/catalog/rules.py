"""Input rules of the catalog: what a valid name, SKU code, price, weight or barcode is."""

from __future__ import annotations

import re
from collections.abc import Mapping, Sequence
from typing import Any

from ordersmith.platform.currencies import is_currency
from ordersmith.platform.errors import FieldError, ValidationFailedError
from ordersmith.tenants.catalog.models import MAX_AMOUNT

SKU_CODE = re.compile(r"^[A-Za-z0-9][A-Za-z0-9._/-]{0,63}$")
BARCODE = re.compile(r"^[A-Za-z0-9-]{1,64}$")
MAX_WEIGHT_GRAMS = 2**31 - 1
MAX_ATTRIBUTES = 50
# Variants one product creation may carry; more go in with POST /api/v1/products/{id}/variants.
# The request is one transaction whose SKU codes are checked and inserted together.
MAX_VARIANTS_PER_REQUEST = 100
# Variants a product may have in all: a product is read and listed with every variant.
MAX_VARIANTS_PER_PRODUCT = 1000


def check_name(field: str, value: Any, errors: list[FieldError]) -> None:
    if not isinstance(value, str) or not value.strip():
        errors.append(FieldError(field, "must not be empty"))
    elif len(value.strip()) > 300:
        errors.append(FieldError(field, "must be at most 300 characters"))


def check_sku_code(field: str, value: Any, errors: list[FieldError]) -> None:
    if not isinstance(value, str) or not SKU_CODE.fullmatch(value):
        errors.append(
            FieldError(
                field,
                "must be 1 to 64 letters, digits, '.', '_', '/' or '-', starting with a letter or digit",
            )
        )


def check_price(field: str, value: Any, errors: list[FieldError]) -> None:
    # bool is an int in Python, and a float price is never exact: both are refused.
    if isinstance(value, bool) or not isinstance(value, int):
        errors.append(FieldError(field, "must be a whole number of minor units (cents), such as 1999"))
    elif not 0 <= value <= MAX_AMOUNT:
        errors.append(FieldError(field, f"must be from 0 to {MAX_AMOUNT} minor units"))


def check_currency(field: str, value: Any, errors: list[FieldError]) -> None:
    if not is_currency(value):
        errors.append(FieldError(field, "must be the ISO 4217 code of a currency, such as EUR or USD"))


def check_weight(field: str, value: Any, errors: list[FieldError]) -> None:
    if value is None:
        return
    if isinstance(value, bool) or not isinstance(value, int) or not 0 <= value <= MAX_WEIGHT_GRAMS:
        errors.append(FieldError(field, "must be a whole number of grams, 0 or more"))


def check_barcode(field: str, value: Any, errors: list[FieldError]) -> None:
    if value is not None and (not isinstance(value, str) or not BARCODE.fullmatch(value)):
        errors.append(FieldError(field, "must be 1 to 64 letters, digits or '-' (such as an EAN-13)"))


def check_attributes(field: str, value: Any, errors: list[FieldError]) -> None:
    if not isinstance(value, Mapping) or len(value) > MAX_ATTRIBUTES:
        errors.append(FieldError(field, f"must be an object of at most {MAX_ATTRIBUTES} keys"))
        return
    for key, item in value.items():
        if not key.strip() or len(key) > 100:
            errors.append(FieldError(f"{field}.{key}" if key else field, "a key must be 1 to 100 characters"))
        elif not isinstance(item, str | int | float | bool) or len(str(item)) > 500:
            errors.append(
                FieldError(f"{field}.{key}", "must be a text, number or true/false of at most 500 characters")
            )
        elif isinstance(item, int) and not isinstance(item, bool) and abs(item) > MAX_AMOUNT:
            # Past 2^53 a JSON client reads the number as a float, inexactly: the catalog's
            # prices stop there for the same reason.
            errors.append(
                FieldError(
                    f"{field}.{key}",
                    f"a whole number must be within ±{MAX_AMOUNT}; send a larger one as text",
                )
            )


def check_flag(field: str, value: Any, errors: list[FieldError]) -> None:
    if not isinstance(value, bool):
        errors.append(FieldError(field, "must be true or false"))


def check_text(field: str, value: Any, errors: list[FieldError]) -> None:
    if not isinstance(value, str) or len(value) > 10_000:
        errors.append(FieldError(field, "must be a text of at most 10000 characters"))


PRODUCT_FIELDS = {
    "name": check_name,
    "description": check_text,
    "is_active": check_flag,
    "attributes": check_attributes,
}
VARIANT_FIELDS = {
    "sku_code": check_sku_code,
    "name": check_name,
    "price_amount": check_price,
    "currency": check_currency,
    "weight_grams": check_weight,
    "barcode": check_barcode,
    "is_active": check_flag,
    "attributes": check_attributes,
    "allow_backorder": check_flag,
}


def check_variant_count(field: str, value: Sequence[Any], errors: list[FieldError]) -> None:
    if len(value) > MAX_VARIANTS_PER_REQUEST:
        errors.append(
            FieldError(
                field,
                f"must hold at most {MAX_VARIANTS_PER_REQUEST} variants; create the product with the first "
                f"{MAX_VARIANTS_PER_REQUEST}, then add the others with POST /api/v1/products/{{id}}/variants",
            )
        )


def check_codes_differ(field: str, variants: Sequence[Mapping[str, Any]], errors: list[FieldError]) -> None:
    """Each variant's code differs from the earlier ones' of the same request, ignoring case."""
    first_with: dict[str, int] = {}
    for index, values in enumerate(variants):
        code = values.get("sku_code")
        # A malformed code has its own error; valid codes are ASCII, lower-cased alike everywhere.
        if not isinstance(code, str) or not SKU_CODE.fullmatch(code):
            continue
        first = first_with.setdefault(code.lower(), index)
        if first != index:
            errors.append(
                FieldError(
                    f"{field}[{index}].sku_code",
                    f"repeats {field}[{first}].sku_code (codes are unique ignoring case)",
                )
            )


def check_fields(
    values: Mapping[str, Any], rules: Mapping[str, Any], prefix: str, errors: list[FieldError]
) -> None:
    """Check each given field by its rule; unknown fields are refused by name."""
    for field, value in values.items():
        rule = rules.get(field)
        if rule is None:
            errors.append(FieldError(prefix + field, "is not a field of this object"))
        else:
            rule(prefix + field, value, errors)


def raise_if(errors: list[FieldError]) -> None:
    """422 listing every rejected field, if any."""
    if errors:
        raise ValidationFailedError("some fields are invalid; see errors", errors=errors)


def cleaned(values: Mapping[str, Any]) -> dict[str, Any]:
    """Values ready to store: names trimmed."""
    return {key: value.strip() if key == "name" else value for key, value in values.items()}
