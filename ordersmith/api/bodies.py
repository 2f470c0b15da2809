"""JSON request bodies decoded strictly: a value of the wrong JSON type is a 422 naming its field.

Litestar decodes a body to plain values, then converts them to the handler's `data` type
together with the query and path parameters, leniently (query values are strings, to be
read as numbers, booleans and times): a body's `"1"`, `1.0` or `"1e0"` became the whole
number 1 and `"true"` became true. `StrictBodyRequest`, the app's request class, decodes a
JSON body straight into the `data` type in msgspec's strict mode instead; the lenient
conversion that follows finds that value already built and keeps it. Parameters are
converted as before.

A body msgspec refuses is a 422 `validation_failed` naming the field the way our own
checks do (`lines[0].quantity`, `attributes.color`); JSON that does not parse stays a 400.
"""

from __future__ import annotations

import json
import math
import re
import weakref
from collections.abc import Callable
from functools import partial
from typing import Any

import msgspec
from litestar import Request
from litestar.enums import RequestEncodingType
from litestar.exceptions import ClientException
from litestar.handlers import BaseRouteHandler
from litestar.params import BodyKwarg
from litestar.serialization import default_deserializer

from ordersmith.api.problems import INVALID_FIELDS_DETAIL, child_path, decode_field_error, item_path
from ordersmith.platform.errors import FieldError, ValidationFailedError

# msgspec's message ends with where it happened: "Expected `int`, got `str` - at `$.lines[0].quantity`".
_LOCATED = re.compile(r"(?P<message>.*) - at `\$(?P<path>[^`]*)`", re.DOTALL)
# A step of that path: `.name`, `[0]`, or `[...]` for a key of a mapping, which msgspec does not name.
_STEP = re.compile(r"\.([^.\[]+)|\[(\d+|\.\.\.)\]")
_GOT = re.compile(r"Expected `[^`]+`(?: [^,]*)?, got `(?P<got>\w+)`")
_JSON_TYPES: tuple[tuple[type, str], ...] = (
    (bool, "bool"),  # before int: a bool is an int to Python
    (int, "int"),
    (float, "float"),
    (str, "str"),
    (list, "array"),
    (dict, "object"),
    (type(None), "null"),
)

Step = str | int | None  # a key, an index, or a key msgspec did not name
_decoders: weakref.WeakKeyDictionary[BaseRouteHandler, msgspec.json.Decoder[Any] | None] = (
    weakref.WeakKeyDictionary()
)


class StrictBodyRequest(Request[Any, Any, Any]):
    """A request whose JSON body is decoded strictly into the handler's `data` type."""

    async def json(self) -> Any:
        decoder = body_decoder(self.route_handler)
        if decoder is None:
            return await super().json()
        return decode_body(decoder, await self.body() or b"null")


def body_decoder(handler: BaseRouteHandler) -> msgspec.json.Decoder[Any] | None:
    """The strict decoder of a handler's JSON `data`, or None when it takes none (built once per handler)."""
    try:
        return _decoders[handler]
    except KeyError:
        pass
    data = handler.parsed_data_field
    decoder = None
    if (
        data is not None
        and data.annotation is not Any
        and handler.resolve_data_dto() is None
        and (
            not isinstance(data.kwarg_definition, BodyKwarg)
            or data.kwarg_definition.media_type == RequestEncodingType.JSON
        )
    ):
        decoder = msgspec.json.Decoder(
            data.annotation,
            strict=True,
            dec_hook=partial(default_deserializer, type_decoders=handler.resolve_type_decoders()),
        )
    _decoders[handler] = decoder
    return decoder


def decode_body(decoder: msgspec.json.Decoder[Any], body: bytes) -> Any:
    """The body as the handler's `data` type; 422 naming the field it cannot be, 400 if it is not JSON."""
    try:
        return decoder.decode(body)
    except msgspec.ValidationError as error:
        raise ValidationFailedError(INVALID_FIELDS_DETAIL, errors=[located_error(str(error), body)]) from None
    except msgspec.DecodeError as error:
        raise ClientException(f"the body is not valid JSON ({error}); send a JSON object") from None


def located_error(text: str, body: bytes) -> FieldError:
    """msgspec's message about a body as a field error, the field named as our checks name it."""
    located = _LOCATED.fullmatch(text)
    message, path = (located["message"], located["path"]) if located else (text, "")
    steps: list[Step] = [
        name if name else None if index == "..." else int(index) for name, index in _STEP.findall(path)
    ]
    if None in steps:
        steps = _named_keys(steps, message, body)
    field = ""
    for step in steps:
        field = item_path(field, step) if isinstance(step, int) else child_path(field, str(step))
    return decode_field_error(field, message)


def _named_keys(steps: list[Step], message: str, body: bytes) -> list[Step]:
    """`steps` with each unnamed key found in the body; up to the first one when it cannot be told."""
    up_to_unnamed = steps[: steps.index(None)]
    matches = _culprit(message)
    if matches is None:
        return up_to_unnamed
    try:
        # The standard parser, unlike msgspec, reads a number too large for a float (as infinity).
        document = json.loads(body)
    except (ValueError, RecursionError):
        return up_to_unnamed
    found = _find(document, steps, matches)
    return up_to_unnamed if found is None else found


def _culprit(message: str) -> Callable[[Any], bool] | None:
    """What the value msgspec refused looks like, if its message tells."""
    if message == "Number out of range":
        return lambda value: isinstance(value, float) and not math.isfinite(value)
    got = _GOT.match(message)
    if got is None:
        return None
    return lambda value: _json_type(value) == got["got"]


def _json_type(value: Any) -> str:
    return next(name for kind, name in _JSON_TYPES if isinstance(value, kind))


def _find(value: Any, steps: list[Step], matches: Callable[[Any], bool]) -> list[Step] | None:
    """The first path along `steps` (an unnamed key matching any key) to a value that `matches`.

    msgspec stops at the first value it refuses, in document order, so the first match is it.
    """
    if not steps:
        return [] if matches(value) else None
    step, rest = steps[0], steps[1:]
    if step is None:
        candidates = list(value.items()) if isinstance(value, dict) else []
    elif isinstance(step, int):
        candidates = [(step, value[step])] if isinstance(value, list) and step < len(value) else []
    else:
        candidates = [(step, value[step])] if isinstance(value, dict) and step in value else []
    for key, child in candidates:
        found = _find(child, rest, matches)
        if found is not None:
            return [key, *found]
    return None
