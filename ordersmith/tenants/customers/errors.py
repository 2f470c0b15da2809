"""Errors of the customers context."""

from __future__ import annotations

from ordersmith.platform.errors import ConflictError, NotFoundError


class CustomerNotFoundError(NotFoundError):
    code = "customer_not_found"
    title = "Customer not found"


class CustomerEmailTakenError(ConflictError):
    code = "customer_email_taken"
    title = "Customer email already used"


class CustomerAlreadyMergedError(ConflictError):
    code = "customer_already_merged"
    title = "Customer already merged"


class CustomerTagsOverLimitError(ConflictError):
    code = "customer_tags_over_limit"
    title = "Too many tags for one customer"


class CustomerAddressNotFoundError(NotFoundError):
    code = "customer_address_not_found"
    title = "Customer address not found"
