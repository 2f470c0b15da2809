"""Input rules of the customers context: names, emails, phones, tags, addresses, notes."""

from __future__ import annotations

import re
from collections.abc import Mapping
from typing import Any

from ordersmith.platform.errors import FieldError
from ordersmith.tenants.customers.countries import COUNTRY_CODE_RULE, is_country_code

EMAIL = re.compile(r"^[^@\s]+@[^@\s]+\.[^@\s]+$")
# The lengths the columns hold, measured as stored (trimmed, an email lower-cased).
MAX_EMAIL = 320
MAX_PHONE = 50
PHONE = re.compile(r"^\+?[0-9 ()./-]{3,50}$")
TAG = re.compile(r"^[\w][\w .:/-]{0,49}$")
MAX_TAGS = 50
MAX_NOTE = 10_000
# How many addresses one create may carry; more are added one by one.
MAX_ADDRESSES_ON_CREATE = 20


def normalize_email(value: str) -> str:
    """Trimmed and lower-cased, so one address is one customer whatever its spelling."""
    return value.strip().lower()


def normalize_tags(tags: list[str]) -> list[str]:
    """Trimmed, de-duplicated ignoring case, in the order given."""
    seen: dict[str, str] = {}
    for tag in tags:
        seen.setdefault(tag.strip().lower(), tag.strip())
    return list(seen.values())


def _text(field: str, value: Any, maximum: int, errors: list[FieldError], *, optional: bool) -> None:
    if value is None and optional:
        return
    if not isinstance(value, str) or not value.strip() or len(value.strip()) > maximum:
        errors.append(FieldError(field, f"must be 1 to {maximum} characters"))


def _check_email(email: Any, errors: list[FieldError]) -> None:
    if not isinstance(email, str) or not EMAIL.fullmatch(email.strip()):
        errors.append(FieldError("email", "must be an email address such as ana@example.com"))
    # Lower-casing may lengthen it ("İ" becomes two characters): measured as it is stored.
    elif len(normalize_email(email)) > MAX_EMAIL:
        errors.append(
            FieldError(
                "email", f"must be at most {MAX_EMAIL} characters once lower-cased; use a shorter address"
            )
        )


def check_customer(values: Mapping[str, Any], errors: list[FieldError]) -> None:
    """Check the contact fields given."""
    if "full_name" in values:
        _text("full_name", values["full_name"], 200, errors, optional=False)
    email = values.get("email")
    if email is not None:
        _check_email(email, errors)
    phone = values.get("phone")
    if phone is not None and (
        not isinstance(phone, str) or len(phone.strip()) > MAX_PHONE or not PHONE.fullmatch(phone.strip())
    ):
        errors.append(
            FieldError(
                "phone",
                f"must be a phone number of at most {MAX_PHONE} characters: digits, spaces and + ( ) . / -",
            )
        )
    tags = values.get("tags")
    if tags is not None:
        # Counted as they are kept, so that a merge, which counts its tags the same way, agrees.
        if len(normalize_tags(tags)) > MAX_TAGS:
            errors.append(
                FieldError(
                    "tags", f"must hold at most {MAX_TAGS} different tags (ignoring case); remove some"
                )
            )
        for index, tag in enumerate(tags):
            if not TAG.fullmatch(tag.strip()):
                errors.append(
                    FieldError(f"tags[{index}]", "must be 1 to 50 letters, digits, spaces or . : / -")
                )


ADDRESS_LIMITS = {
    "label": (100, True),
    "recipient_name": (200, False),
    "line1": (300, False),
    "line2": (300, True),
    "city": (100, False),
    "region": (100, True),
    "postal_code": (20, True),
}


def check_address(
    values: Mapping[str, Any], prefix: str, errors: list[FieldError], *, partial: bool = False
) -> None:
    """Check one postal address; the country is an ISO 3166 alpha-2 code.

    `partial` checks a correction: only the parts given, each as a new address's would be.
    """
    for field, (maximum, optional) in ADDRESS_LIMITS.items():
        if not partial or field in values:
            _text(prefix + field, values.get(field), maximum, errors, optional=optional)
    if partial and "country_code" not in values:
        return
    country = values.get("country_code")
    if not is_country_code(country):
        errors.append(FieldError(prefix + "country_code", COUNTRY_CODE_RULE))


def trimmed_address(values: Mapping[str, Any]) -> dict[str, Any]:
    """An address as it is stored: each text part trimmed, since the checks read it trimmed."""
    return {part: value.strip() if isinstance(value, str) else value for part, value in values.items()}


def check_note(field: str, body: Any, errors: list[FieldError]) -> None:
    """A note is 1 to 10000 characters."""
    _text(field, body, MAX_NOTE, errors, optional=False)
