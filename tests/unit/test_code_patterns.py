"""Codes are matched whole: a trailing newline is not part of any code (Python's `$` would allow it)."""

from __future__ import annotations

import pytest

from ordersmith.platform.errors import FieldError
from ordersmith.tenants.catalog.rules import check_barcode, check_currency, check_sku_code
from ordersmith.tenants.customers.countries import COUNTRY_CODE_RULE
from ordersmith.tenants.customers.rules import check_address
from ordersmith.tenants.inventory.rules import check_address as check_location_address
from ordersmith.tenants.inventory.rules import check_location


def _errors(check: object, *args: object) -> list[FieldError]:
    errors: list[FieldError] = []
    check(*args, errors)  # type: ignore[operator]
    return errors


def test_a_trailing_newline_is_refused_in_every_code() -> None:
    assert _errors(check_sku_code, "sku_code", "TEE-S") == []
    assert [error.field for error in _errors(check_sku_code, "sku_code", "TEE-S\n")] == ["sku_code"]
    assert _errors(check_barcode, "barcode", "4006381333931") == []
    assert [error.field for error in _errors(check_barcode, "barcode", "4006381333931\n")] == ["barcode"]
    assert _errors(check_currency, "currency", "EUR") == []
    # Three capitals are not enough: the code must name a currency in circulation.
    assert [error.field for error in _errors(check_currency, "currency", "ZZZ")] == ["currency"]
    assert [error.field for error in _errors(check_currency, "currency", "eur")] == ["currency"]
    assert _errors(check_currency, "currency", "EUR\n") == [
        FieldError("currency", "must be the ISO 4217 code of a currency, such as EUR or USD")
    ]
    location: list[FieldError] = []
    check_location({"code": "WH-1\n", "name": "Main", "kind": "warehouse"}, location, creating=True)
    assert location == [FieldError("code", "must be 1 to 32 letters, digits, '.', '_' or '-', such as WH-1")]
    address: list[FieldError] = []
    check_address(
        {
            "recipient_name": "Ana",
            "line1": "1 Main St",
            "city": "Oslo",
            "postal_code": "0150",
            "country_code": "NO\n",
        },
        "",
        address,
    )
    assert address == [FieldError("country_code", "must be an ISO 3166 country code such as FR or US")]


@pytest.mark.parametrize(
    ("code", "is_country"),
    [
        ("FR", True),
        ("GP", True),  # a territory (Guadeloupe) ISO 3166-1 assigns a code of its own
        ("XK", True),  # Kosovo: user-assigned, but what carriers and Stripe use
        ("ZZ", False),
        ("FA", False),  # "FR" mistyped: two capital letters, no country
        ("fr", False),
        ("FRA", False),
    ],
)
def test_an_address_names_a_country_iso_3166_assigns(code: str, is_country: bool) -> None:
    customer_address: list[FieldError] = []
    check_address(
        {"recipient_name": "Ana", "line1": "1 Main St", "city": "Paris", "country_code": code},
        "",
        customer_address,
    )
    location_address: list[FieldError] = []
    check_location_address({"country_code": code}, location_address)
    expected_customer = [] if is_country else [FieldError("country_code", COUNTRY_CODE_RULE)]
    expected_location = [] if is_country else [FieldError("address.country_code", COUNTRY_CODE_RULE)]
    assert (customer_address, location_address) == (expected_customer, expected_location)
