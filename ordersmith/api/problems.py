"""RFC 9457 problem details for every error the API returns.

Domain errors carry their own status and stable `code`; framework errors (unknown
route, malformed body, wrong method) get codes of their own; a request that lost a race
for a lock is a 503 `busy` with Retry-After; anything unexpected is a 500
`internal_error` with the request id, and its details stay in the log.
"""

from __future__ import annotations

import logging
import re
from typing import Any

import asyncpg
import msgspec
from litestar import Request, Response
from litestar.exceptions import HTTPException, ValidationException
from litestar.handlers import HTTPRouteHandler
from litestar.openapi import ResponseSpec
from litestar.status_codes import HTTP_500_INTERNAL_SERVER_ERROR, HTTP_503_SERVICE_UNAVAILABLE
from sqlalchemy.exc import DBAPIError

from ordersmith.api.rate_limits import RateLimitedError
from ordersmith.platform.errors import FieldError, OrdersmithError, TooManyAttemptsError
from ordersmith.platform.logging import request_id_var

logger = logging.getLogger(__name__)

PROBLEM_MEDIA_TYPE = "application/problem+json"
# A URN names the problem kind without pretending a web page exists for it.
PROBLEM_TYPE_BASE = "urn:ordersmith:problem:"

_MISSING_PARAMETER = re.compile(r"Missing required (?P<kind>\w+) parameter '(?P<name>[^']+)'")
# msgspec's words for a body's missing and unknown fields.
_MISSING_FIELD = re.compile(r"Object missing required field `(?P<name>[^`]+)`")
_UNKNOWN_FIELD = re.compile(r"Object contains unknown field `(?P<name>[^`]+)`")
# msgspec's words for a value of the wrong JSON type (no constraint): "Expected `int | null`, got `str`".
_WRONG_TYPE = re.compile(r"Expected `(?P<wanted>[a-z |]+)`, got `(?P<got>[a-z]+)`")
# Those types in a caller's words: what a field wants, and what it was given.
_WANTED_WORDS = {
    "int": "a whole number",
    "float": "a number",
    "str": "text",
    "bool": "true or false",
    "null": "null",
    "array": "a list",
    "object": "an object",
}
_GOT_WORDS = {**_WANTED_WORDS, "float": "a number with a fraction part (such as 1.0)"}
# msgspec's words for text that is not in the format a field or parameter reads it in.
_FORMAT_MESSAGES = {
    "Invalid RFC3339 encoded datetime": (
        "must be a date and time with a time zone, such as 2026-11-27T00:00:00Z"
    ),
    "Invalid RFC3339 encoded date": "must be a date, such as 2026-11-27",
    "Invalid UUID": "must be an id (a UUID, such as 01a229e9-4795-76f1-a555-0290d1c66e72)",
}
_HTTP_CODES = {
    400: ("bad_request", "Bad request"),
    401: ("unauthenticated", "Authentication required"),
    403: ("forbidden", "Forbidden"),
    404: ("not_found", "Not found"),
    405: ("method_not_allowed", "Method not allowed"),
    409: ("conflict", "Conflict"),
    413: ("payload_too_large", "Payload too large"),
    415: ("unsupported_media_type", "Unsupported media type"),
    429: ("too_many_requests", "Too many requests"),
    503: ("service_unavailable", "Service unavailable"),
}
# SQLSTATEs of a transaction that lost a race, not of a fault: lock_not_available (the
# connection's lock_timeout fired), serialization_failure, and deadlock_detected (our
# fixed lock order should make it impossible; if it happens, a retry is still right).
BUSY_SQLSTATES = frozenset({"55P03", "40001", "40P01"})
BUSY_RETRY_AFTER_SECONDS = 1
# The detail of every 422 whose errors name request fields.
INVALID_FIELDS_DETAIL = "some fields are invalid; see errors"


class FieldProblem(msgspec.Struct):
    """One rejected field of a 422: where it is (`lines[0].sku`) and what to send instead."""

    field: str
    message: str


class Problem(msgspec.Struct):
    """RFC 9457 problem details: the body of every error (`problem` builds them).

    A problem's code may add members of its own (`insufficient_stock` names each short
    SKU in `shortfalls`, `invalid_transition` the `allowed_next` statuses).
    """

    type: str
    title: str
    status: int
    detail: str
    # Stable and machine-readable: what a client branches on.
    code: str
    # Quote it to support: it is on every log line of the request.
    request_id: str | None = None
    # 422 only: each rejected field.
    errors: list[FieldProblem] | None = None


# What each error status means across the API, for its description.
_PROBLEM_DESCRIPTIONS = {
    400: "The request is malformed (a body that is not JSON, a parameter of the wrong type).",
    401: "No valid credentials: sign in, or send an API key as a bearer token.",
    402: "The store's plan does not allow this (a feature, a limit) or its trial or payment lapsed.",
    403: "The caller may not do this (its role or the store's plan); `code` says which.",
    404: "No such object in this store; another store's objects are not found either.",
    409: "The object's state does not allow this now; `code` and the detail say why and what to do.",
    410: "The link was used, withdrawn or has expired; the detail says how to get a new one.",
    413: "The body is larger than this route takes.",
    422: "Some fields are invalid: `errors` names each, with what to send instead.",
    429: "Too many requests; retry after the `Retry-After` header's seconds.",
    502: "A server this route calls (Stripe, the identity provider) failed or could not be reached.",
    503: "The request lost a race for a lock or a server is unavailable; retry after `Retry-After`.",
}
_WRITES = frozenset({"POST", "PUT", "PATCH", "DELETE"})
_WITH_BODY = frozenset({"POST", "PUT", "PATCH"})
# A route's `opt` key for the statuses only it answers (410 for a spent link, 502 for a
# provider it calls), beyond those that follow from what it is.
PROBLEMS = "problems"


def document_problems(handler: HTTPRouteHandler) -> None:
    """Add the problem responses a route may answer to its OpenAPI description.

    Which ones follow from what the route is: 400 and 422 for any; 401, 403, 404 and 429
    for a caller who must be known (a store's objects are named in paths, bodies and
    filters); 404 for any path naming an object; 409, 429 and 503 for writes, and 402
    for a store's writes (a lapsed trial is read-only) and for routes of a plan feature;
    413 for a body; and what the route declares under `opt["problems"]`. Responses the
    route declares itself are kept.
    """
    statuses = {400, 422, *handler.opt.get(PROBLEMS, ())}
    is_public = handler.opt.get("access") == "public"
    if not is_public:
        statuses |= {401, 403, 404, 429}
    if any("{" in path for path in handler.paths):
        statuses.add(404)
    methods = set(handler.http_methods)
    if methods & _WRITES:
        # Public writes too: sign-up and sign-in count attempts.
        statuses |= {409, 429, 503}
        # Not on those that get a store out of read-only (its plan, its billing portal).
        if not is_public and not handler.opt.get("writable_when_read_only"):
            statuses.add(402)
    if any(getattr(guard, "__name__", "").startswith("requires_feature_") for guard in handler.guards or ()):
        statuses.add(402)
    if methods & _WITH_BODY:
        statuses.add(413)
    documented = {
        status: ResponseSpec(
            data_container=Problem,
            description=_PROBLEM_DESCRIPTIONS[status],
            media_type=PROBLEM_MEDIA_TYPE,
            generate_examples=False,
        )
        for status in sorted(statuses)
    }
    handler.responses = {**documented, **(handler.responses or {})}


def problem(
    status: int,
    code: str,
    title: str,
    detail: str,
    errors: list[dict[str, str]] | None = None,
    extensions: dict[str, Any] | None = None,
) -> Response[dict[str, Any]]:
    """A problem-details response; `extensions` are extra members named by the problem's code."""
    body: dict[str, Any] = {
        **(extensions or {}),
        "type": PROBLEM_TYPE_BASE + code,
        "title": title,
        "status": status,
        "detail": detail,
        "code": code,
    }
    if errors is not None:
        body["errors"] = errors
    request_id = request_id_var.get()
    if request_id:
        body["request_id"] = request_id
    return Response(body, status_code=status, media_type=PROBLEM_MEDIA_TYPE)


def domain_error_handler(_: Request[Any, Any, Any], error: OrdersmithError) -> Response[dict[str, Any]]:
    errors = [{"field": item.field, "message": item.message} for item in error.errors]
    response = problem(
        error.status,
        error.code,
        error.title,
        error.detail,
        errors if error.status == 422 else None,
        error.extensions,
    )
    if isinstance(error, TooManyAttemptsError | RateLimitedError):
        response.headers["Retry-After"] = str(error.retry_after_seconds)
    return response


def validation_error_handler(
    _: Request[Any, Any, Any], error: ValidationException
) -> Response[dict[str, Any]]:
    errors = []
    for item in error.extra if isinstance(error.extra, list) else []:
        if isinstance(item, dict):
            message = str(item["message"])
            if item.get("source") == "body":
                # Litestar names the body `data` and its fields by their path below it.
                key = str(item.get("key") or "")
                field_error = decode_field_error("" if key == "data" else key, message)
                errors.append({"field": field_error.field, "message": field_error.message})
            else:
                field = str(item.get("key") or item.get("source") or "body")
                errors.append({"field": field, "message": plain_type_message(message, parameter=True)})
    # Litestar reports a missing parameter in its detail text only.
    missing = _MISSING_PARAMETER.match(error.detail)
    if missing:
        errors.append({"field": missing["name"], "message": f"this {missing['kind']} parameter is required"})
    return problem(422, "validation_failed", "Validation failed", INVALID_FIELDS_DETAIL, errors)


def child_path(parent: str, key: str) -> str:
    """How errors name a member of a body object: `shipping_address.line1`, `attributes.color`."""
    # A NUL cannot be shown as itself; its escape is what the caller sent.
    key = key.replace("\x00", "\\u0000")
    return f"{parent}.{key}" if parent else key


def item_path(parent: str, index: int) -> str:
    """How errors name an item of a body array: `lines[0]`."""
    return f"{parent}[{index}]"


def decode_field_error(field: str, message: str) -> FieldError:
    """A field error from msgspec's message about `field` of a body ("" for the body itself)."""
    if missing := _MISSING_FIELD.fullmatch(message):
        return FieldError(child_path(field, missing["name"]), "is required")
    if unknown := _UNKNOWN_FIELD.fullmatch(message):
        return FieldError(child_path(field, unknown["name"]), "is not a field of this request; remove it")
    if message == "Number out of range":
        return FieldError(field or "body", "is out of range; send a number closer to zero")
    # An empty body leaves Litestar's `data` unfilled: its message is the KeyError's, "'data'".
    if not field and (message == "'data'" or message.startswith("Expected `object`")):
        return FieldError("body", "send a JSON object body")
    return FieldError(field or "body", plain_type_message(message, parameter=False))


def plain_type_message(message: str, *, parameter: bool) -> str:
    """msgspec's "Expected `int`, got `str`" in a caller's words: "must be a whole number, not text".

    A query or path parameter is text by nature, so only what it should read as is worth
    saying; and it is left out rather than sent as null, so null is not offered.
    """
    if message in _FORMAT_MESSAGES:
        return _FORMAT_MESSAGES[message]
    wrong = _WRONG_TYPE.fullmatch(message)
    if wrong is None:
        return message
    names = [name.strip() for name in wrong["wanted"].split("|")]
    wanted = [_WANTED_WORDS.get(name) for name in names if not (parameter and name == "null")]
    given = _GOT_WORDS.get(wrong["got"])
    if given is None or any(words is None for words in wanted):
        return message
    words = [str(item) for item in wanted]
    expected = words[0] if len(words) == 1 else f"{', '.join(words[:-1])} or {words[-1]}"
    return f"must be {expected}" if parameter else f"must be {expected}, not {given}"


def http_error_handler(request: Request[Any, Any, Any], error: HTTPException) -> Response[dict[str, Any]]:
    code, title = _HTTP_CODES.get(error.status_code, ("http_error", "HTTP error"))
    detail = _too_large_detail(request) if error.status_code == 413 else error.detail
    return problem(error.status_code, code, title, detail)


def _too_large_detail(request: Request[Any, Any, Any]) -> str:
    """Say how large a body the route takes, so the caller knows how much to cut."""
    limit = request.route_handler.resolve_request_max_body_size()
    if limit is None:
        return "the body is larger than this route takes; send a smaller one"
    return (
        f"the body is larger than this route takes: at most {limit:,} bytes ({limit / 1024:g} KB); "
        "send a smaller one"
    )


def internal_error_handler(request: Request[Any, Any, Any], error: Exception) -> Response[dict[str, Any]]:
    logger.exception("unhandled error on %s %s", request.method, request.url.path, exc_info=error)
    return problem(
        HTTP_500_INTERNAL_SERVER_ERROR,
        "internal_error",
        "Internal error",
        "something went wrong on our side; retry, and quote the request id if it persists",
    )


def sqlstate_of(error: DBAPIError | asyncpg.PostgresError) -> str | None:
    """The PostgreSQL error code behind a driver error, wherever the driver put it."""
    if isinstance(error, asyncpg.PostgresError):
        # Raised on the driver connection itself (placement, ADR 0010).
        sqlstate: str | None = error.sqlstate
        return sqlstate
    # SQLAlchemy's asyncpg adapter copies it onto its error; the asyncpg error is the cause.
    for candidate in (error.orig, getattr(error.orig, "__cause__", None)):
        code = getattr(candidate, "sqlstate", None)
        if isinstance(code, str):
            return code
    return None


def database_error_handler(
    request: Request[Any, Any, Any], error: DBAPIError | asyncpg.PostgresError
) -> Response[dict[str, Any]]:
    """A lost lock race is a 503 `busy` with Retry-After; any other database error is a 500."""
    sqlstate = sqlstate_of(error)
    if sqlstate not in BUSY_SQLSTATES:
        return internal_error_handler(request, error)
    # The failed statement aborted its transaction, which the request boundary rolls back:
    # sending the same request again is the cure.
    logger.warning("busy (SQLSTATE %s) on %s %s", sqlstate, request.method, request.url.path)
    response = problem(
        HTTP_503_SERVICE_UNAVAILABLE,
        "busy",
        "Busy",
        "other requests are changing the same records right now; retry after the Retry-After delay",
    )
    response.headers["Retry-After"] = str(BUSY_RETRY_AFTER_SECONDS)
    return response


EXCEPTION_HANDLERS: dict[type[Exception] | int, Any] = {
    OrdersmithError: domain_error_handler,
    DBAPIError: database_error_handler,
    asyncpg.PostgresError: database_error_handler,
    ValidationException: validation_error_handler,
    HTTPException: http_error_handler,
    Exception: internal_error_handler,
}
