"""A product's or variant's attributes: named keys, short plain values, numbers JSON keeps exact."""

from __future__ import annotations

from ordersmith.platform.errors import FieldError
from ordersmith.tenants.catalog.rules import check_attributes

VALUE = "must be a text, number or true/false of at most 500 characters"


def _checked(value: object) -> list[FieldError]:
    errors: list[FieldError] = []
    check_attributes("attributes", value, errors)
    return errors


def test_plain_values_under_their_keys_pass() -> None:
    assert _checked({"color": "red", "size": 42, "weight_kg": 1.5, "organic": True, "batch": 2**53}) == []


def test_a_bad_key_is_named_as_a_key_and_a_bad_value_as_a_value() -> None:
    assert _checked({"": "red", " ": "blue", "k" * 101: 1}) == [
        FieldError("attributes", "a key must be 1 to 100 characters"),
        FieldError("attributes. ", "a key must be 1 to 100 characters"),
        FieldError("attributes." + "k" * 101, "a key must be 1 to 100 characters"),
    ]
    assert _checked({"notes": "x" * 501, "nested": {"a": 1}}) == [
        FieldError("attributes.notes", VALUE),
        FieldError("attributes.nested", VALUE),
    ]


def test_a_whole_number_past_2_53_is_refused_as_json_clients_would_misread_it() -> None:
    assert _checked({"serial": 2**70, "debt": -(2**53) - 1}) == [
        FieldError(
            "attributes.serial", "a whole number must be within ±9007199254740992; send a larger one as text"
        ),
        FieldError(
            "attributes.debt", "a whole number must be within ±9007199254740992; send a larger one as text"
        ),
    ]
