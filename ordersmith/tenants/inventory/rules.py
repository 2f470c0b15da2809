"""Input rules of the inventory context."""

from __future__ import annotations

import re
import uuid
from collections.abc import Mapping
from typing import Any

from ordersmith.platform.errors import FieldError
from ordersmith.tenants.customers.countries import COUNTRY_CODE_RULE, is_country_code
from ordersmith.tenants.customers.rules import ADDRESS_LIMITS as CUSTOMER_ADDRESS_LIMITS
from ordersmith.tenants.customers.rules import trimmed_address
from ordersmith.tenants.inventory.models import LOCATION_KINDS

LOCATION_CODE = re.compile(r"^[A-Za-z0-9][A-Za-z0-9._-]{0,31}$")
LOCATION_FIELDS = ("code", "name", "kind", "priority", "is_active", "address")
MAX_QUANTITY = 10**9
# The most one location can hold of a SKU: stock counts are 32-bit in the database (2,147,483,647).
MAX_ON_HAND = 2 * 10**9
MAX_REASON = 500
MANUAL_KINDS = ("receive", "count", "damage", "correction")
# The kinds a rejection may write to take units a location turned down off its count:
# broken units are damage, units that are not there a correction.
WRITE_OFF_KINDS = ("damage", "correction")
# Every adjustment a person records says why; what a good reason looks like, per kind.
REASON_HINTS = {
    "receive": "the purchase order or transfer it came with ('PO 1042')",
    "count": "which count it was ('cycle count, aisle 4')",
    "damage": "what happened ('dropped by the forklift')",
    "correction": "what was wrong ('received twice by mistake')",
}
# A location's postal address: a customer address's parts and lengths, so one fits into
# the other, but every part optional (a shop may give only its city and country).
ADDRESS_LIMITS = {
    part: maximum
    for part, (maximum, _) in CUSTOMER_ADDRESS_LIMITS.items()
    if part in ("line1", "line2", "city", "region", "postal_code")
}
ADDRESS_FIELDS = (*ADDRESS_LIMITS, "country_code")


def check_location(values: Mapping[str, Any], errors: list[FieldError], *, creating: bool) -> None:
    """A location's code, name, kind, priority, active flag and address; code, name and kind are needed
    to create one."""
    for field in values:
        if field not in LOCATION_FIELDS:
            errors.append(FieldError(field, f"is not a location field; use {', '.join(LOCATION_FIELDS)}"))
    if creating:
        for field in ("code", "name", "kind"):
            if field not in values:
                errors.append(FieldError(field, "is required"))
    code = values.get("code")
    if "code" in values and (not isinstance(code, str) or not LOCATION_CODE.fullmatch(code)):
        errors.append(FieldError("code", "must be 1 to 32 letters, digits, '.', '_' or '-', such as WH-1"))
    name = values.get("name")
    if "name" in values and (not isinstance(name, str) or not name.strip() or len(name.strip()) > 200):
        errors.append(FieldError("name", "must be 1 to 200 characters"))
    if "kind" in values and values["kind"] not in LOCATION_KINDS:
        errors.append(FieldError("kind", f"must be one of {', '.join(LOCATION_KINDS)}"))
    priority = values.get("priority")
    if "priority" in values and (
        isinstance(priority, bool) or not isinstance(priority, int) or not 0 <= priority <= 10_000
    ):
        errors.append(FieldError("priority", "must be a whole number from 0 to 10000 (lower is tried first)"))
    if "is_active" in values and not isinstance(values["is_active"], bool):
        errors.append(FieldError("is_active", "must be true or false"))
    if "address" in values:
        check_address(values["address"], errors)


def check_address(address: Any, errors: list[FieldError]) -> None:
    """A postal address of known parts, each within its length; none is required."""
    if not isinstance(address, Mapping):
        errors.append(FieldError("address", "must be an object"))
        return
    for part, value in address.items():
        field = f"address.{part}"
        if part == "country_code":
            if not is_country_code(value):
                errors.append(FieldError(field, COUNTRY_CODE_RULE))
        elif part in ADDRESS_LIMITS:
            maximum = ADDRESS_LIMITS[part]
            if not isinstance(value, str) or not value.strip() or len(value.strip()) > maximum:
                errors.append(FieldError(field, f"must be 1 to {maximum} characters"))
        else:
            errors.append(FieldError(field, f"is not an address field; use {', '.join(ADDRESS_FIELDS)}"))


def cleaned_location(values: Mapping[str, Any]) -> dict[str, Any]:
    """Location values ready to store: the name and the address's parts trimmed."""
    clean = dict(values)
    if "name" in clean:
        clean["name"] = clean["name"].strip()
    if "address" in clean:
        clean["address"] = trimmed_address(clean["address"])
    return clean


def body_location_id(value: uuid.UUID | str, errors: list[FieldError]) -> uuid.UUID | None:
    """A location id given in a request body, or None and a field error if it cannot be one.

    A path names the resource, so a malformed id there is simply not found; in a body it is
    a bad field, reported with the request's other field errors.
    """
    if isinstance(value, uuid.UUID):
        return value
    try:
        return uuid.UUID(value)
    except (TypeError, ValueError):
        errors.append(FieldError("location_id", "must be a location id from GET /api/v1/locations"))
        return None


def check_safety_stock(value: Any, errors: list[FieldError]) -> None:
    if isinstance(value, bool) or not isinstance(value, int) or not 0 <= value <= MAX_QUANTITY:
        errors.append(FieldError("safety_stock", f"must be a whole number from 0 to {MAX_QUANTITY}"))


def check_adjustment(kind: str, quantity: int, reason: str, errors: list[FieldError]) -> None:
    """An adjustment a person records: a known kind, a sensible quantity, a reason."""
    if kind not in MANUAL_KINDS:
        errors.append(FieldError("kind", f"must be one of {', '.join(MANUAL_KINDS)}"))
    # A count states the shelf, up to what a location may hold; other kinds move at most MAX_QUANTITY.
    most = MAX_ON_HAND if kind == "count" else MAX_QUANTITY
    if isinstance(quantity, bool) or not isinstance(quantity, int) or abs(quantity) > most:
        errors.append(FieldError("quantity", f"must be a whole number of units up to {most}"))
    elif kind == "receive" and quantity <= 0:
        errors.append(FieldError("quantity", "a receipt adds stock: give a positive quantity"))
    elif kind == "damage" and quantity >= 0:
        errors.append(FieldError("quantity", "damage removes stock: give a negative quantity, such as -2"))
    elif kind == "count" and quantity < 0:
        errors.append(FieldError("quantity", "a count is what is on the shelf: 0 or more"))
    elif kind == "correction" and quantity == 0:
        errors.append(FieldError("quantity", "a correction changes stock: give a non-zero quantity"))
    if not isinstance(reason, str) or len(reason) > MAX_REASON:
        errors.append(FieldError("reason", f"must be at most {MAX_REASON} characters"))
    elif kind in REASON_HINTS and not reason.strip():
        errors.append(FieldError("reason", f"say why: a {kind} needs a reason, such as {REASON_HINTS[kind]}"))
