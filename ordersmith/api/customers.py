"""Customers: contact details, addresses, tags, notes, and merging duplicates."""

from __future__ import annotations

import datetime as dt
import uuid
from typing import Any

import msgspec
from litestar import Request, Response, delete, get, patch, post
from litestar.di import NamedDependency
from litestar.params import FromPath, FromQuery, JSONBody
from litestar.status_codes import HTTP_204_NO_CONTENT
from sqlalchemy.ext.asyncio import AsyncSession

from ordersmith.api import idempotency
from ordersmith.api.access import requires
from ordersmith.api.payloads import given
from ordersmith.platform.errors import FieldError, ValidationFailedError
from ordersmith.platform.identity.permissions import Permission
from ordersmith.platform.identity.principal import Principal
from ordersmith.platform.pagination import DEFAULT_PAGE_SIZE, PageRequest
from ordersmith.tenants.customers.models import Customer as CustomerRow
from ordersmith.tenants.customers.models import CustomerAddress, CustomerNote
from ordersmith.tenants.customers.service import (
    CustomerView,
    add_address,
    add_note,
    address_id_of,
    change_address,
    create_customer,
    customer_id_of,
    get_customer,
    list_customers,
    merge_customers,
    remove_address,
    update_customer,
)


class Address(msgspec.Struct):
    id: str
    label: str | None
    recipient_name: str
    line1: str
    line2: str | None
    city: str
    region: str | None
    postal_code: str | None
    # ISO 3166-1 alpha-2, such as FR.
    country_code: str
    created_at: dt.datetime

    @classmethod
    def of(cls, row: CustomerAddress) -> Address:
        return cls(
            str(row.id),
            row.label,
            row.recipient_name,
            row.line1,
            row.line2,
            row.city,
            row.region,
            row.postal_code,
            row.country_code,
            row.created_at,
        )


class Note(msgspec.Struct):
    id: str
    body: str
    # "user", "api_key", "staff" or "system"
    author_type: str
    author_id: str | None
    # The customer the note was written on; differs from the customer's id after a merge.
    original_customer_id: str
    created_at: dt.datetime

    @classmethod
    def of(cls, row: CustomerNote) -> Note:
        return cls(
            str(row.id),
            row.body,
            row.author_type,
            row.author_id,
            str(row.original_customer_id),
            row.created_at,
        )


class CustomerSummary(msgspec.Struct):
    id: str
    full_name: str
    email: str | None
    phone: str | None
    tags: list[str]
    created_at: dt.datetime
    updated_at: dt.datetime

    @classmethod
    def of(cls, row: CustomerRow) -> CustomerSummary:
        return cls(
            str(row.id), row.full_name, row.email, row.phone, list(row.tags), row.created_at, row.updated_at
        )


class Customer(msgspec.Struct):
    id: str
    full_name: str
    email: str | None
    phone: str | None
    tags: list[str]
    addresses: list[Address]
    notes: list[Note]
    # Ids of duplicates merged into this customer; each still resolves here.
    merged_ids: list[str]
    created_at: dt.datetime
    updated_at: dt.datetime

    @classmethod
    def of(cls, view: CustomerView) -> Customer:
        row = view.customer
        return cls(
            str(row.id),
            row.full_name,
            row.email,
            row.phone,
            list(row.tags),
            [Address.of(address) for address in view.addresses],
            [Note.of(note) for note in view.notes],
            [str(merged_id) for merged_id in view.merged_ids],
            row.created_at,
            row.updated_at,
        )


class CustomerList(msgspec.Struct):
    data: list[CustomerSummary]
    next_cursor: str | None


class AddressCreate(msgspec.Struct, forbid_unknown_fields=True):
    recipient_name: str
    line1: str
    city: str
    country_code: str
    label: str | None = None
    line2: str | None = None
    region: str | None = None
    postal_code: str | None = None


class AddressUpdate(msgspec.Struct, forbid_unknown_fields=True):
    recipient_name: str | msgspec.UnsetType = msgspec.UNSET
    line1: str | msgspec.UnsetType = msgspec.UNSET
    city: str | msgspec.UnsetType = msgspec.UNSET
    country_code: str | msgspec.UnsetType = msgspec.UNSET
    # null clears the label, second line, region or postal code.
    label: str | msgspec.UnsetType | None = msgspec.UNSET
    line2: str | msgspec.UnsetType | None = msgspec.UNSET
    region: str | msgspec.UnsetType | None = msgspec.UNSET
    postal_code: str | msgspec.UnsetType | None = msgspec.UNSET


class CustomerCreate(msgspec.Struct, forbid_unknown_fields=True):
    full_name: str
    email: str | None = None
    phone: str | None = None
    tags: list[str] = msgspec.field(default_factory=list)
    addresses: list[AddressCreate] = msgspec.field(default_factory=list)
    note: str | None = None


class CustomerUpdate(msgspec.Struct, forbid_unknown_fields=True):
    full_name: str | msgspec.UnsetType = msgspec.UNSET
    # null clears the email or phone.
    email: str | msgspec.UnsetType | None = msgspec.UNSET
    phone: str | msgspec.UnsetType | None = msgspec.UNSET
    tags: list[str] | msgspec.UnsetType = msgspec.UNSET


class NoteCreate(msgspec.Struct, forbid_unknown_fields=True):
    body: str


class MergeRequest(msgspec.Struct, forbid_unknown_fields=True):
    duplicate_id: str


@post(
    "/api/v1/customers",
    operation_id="createCustomer",
    summary="Add a customer with contact details, tags, addresses and a first note.",
    opt=requires(Permission.CUSTOMERS_WRITE),
    tags=["customers"],
)
async def add_customer(
    request: Request[Any, Any, Any],
    principal: NamedDependency[Principal],
    tenant_session: NamedDependency[AsyncSession],
    data: JSONBody[CustomerCreate],
) -> Response[Customer]:
    """Create a customer; an email already used by another customer is 409 `customer_email_taken`.

    An `Idempotency-Key` makes a retry safe: it gets the first answer, not a second customer.
    """
    assert principal.tenant is not None
    tenant = principal.tenant.context

    async def create() -> Customer:
        view = await create_customer(
            tenant,
            tenant_session,
            {"full_name": data.full_name, "email": data.email, "phone": data.phone, "tags": data.tags},
            addresses=[msgspec.structs.asdict(address) for address in data.addresses],
            note=data.note,
            author=principal.actor,
        )
        return Customer.of(view)

    return await idempotency.once(request, principal, tenant_session, data, create)


@get(
    "/api/v1/customers",
    operation_id="listCustomers",
    summary="List the store's customers, newest first.",
    opt=requires(Permission.CUSTOMERS_READ),
    tags=["customers"],
)
async def read_customers(
    principal: NamedDependency[Principal],
    tenant_session: NamedDependency[AsyncSession],
    limit: FromQuery[int] = DEFAULT_PAGE_SIZE,
    cursor: FromQuery[str | None] = None,
    email: FromQuery[str | None] = None,
) -> CustomerList:
    """Customers not merged away; ?email= finds one by address, ignoring case."""
    assert principal.tenant is not None
    page = await list_customers(
        principal.tenant.context, tenant_session, PageRequest.parse(limit, cursor), email=email
    )
    return CustomerList([CustomerSummary.of(row) for row in page.items], page.next_cursor)


@get(
    "/api/v1/customers/{customer_id:str}",
    operation_id="getCustomer",
    summary="Read one customer with addresses and notes.",
    opt=requires(Permission.CUSTOMERS_READ),
    tags=["customers"],
)
async def read_customer(
    principal: NamedDependency[Principal],
    tenant_session: NamedDependency[AsyncSession],
    customer_id: FromPath[str],
) -> Customer:
    """The customer; the id of a merged duplicate answers with the customer it was merged into."""
    assert principal.tenant is not None
    view = await get_customer(principal.tenant.context, tenant_session, customer_id_of(customer_id))
    return Customer.of(view)


@patch(
    "/api/v1/customers/{customer_id:str}",
    operation_id="updateCustomer",
    summary="Change a customer's name, email, phone or tags.",
    opt=requires(Permission.CUSTOMERS_WRITE),
    tags=["customers"],
)
async def change_customer(
    principal: NamedDependency[Principal],
    tenant_session: NamedDependency[AsyncSession],
    customer_id: FromPath[str],
    data: JSONBody[CustomerUpdate],
) -> Customer:
    """Update the fields given; `tags` replaces the whole list."""
    assert principal.tenant is not None
    view = await update_customer(
        principal.tenant.context, tenant_session, customer_id_of(customer_id), given(data)
    )
    return Customer.of(view)


@post(
    "/api/v1/customers/{customer_id:str}/addresses",
    operation_id="createCustomerAddress",
    summary="Add a postal address to a customer.",
    opt=requires(Permission.CUSTOMERS_WRITE),
    tags=["customers"],
)
async def add_customer_address(
    request: Request[Any, Any, Any],
    principal: NamedDependency[Principal],
    tenant_session: NamedDependency[AsyncSession],
    customer_id: FromPath[str],
    data: JSONBody[AddressCreate],
) -> Response[Customer]:
    """Add the address and return the customer with all addresses; an `Idempotency-Key` makes a retry safe."""
    assert principal.tenant is not None
    tenant = principal.tenant.context

    async def create() -> Customer:
        view = await add_address(
            tenant, tenant_session, customer_id_of(customer_id), msgspec.structs.asdict(data)
        )
        return Customer.of(view)

    return await idempotency.once(request, principal, tenant_session, data, create)


@patch(
    "/api/v1/customers/{customer_id:str}/addresses/{address_id:str}",
    operation_id="updateCustomerAddress",
    summary="Correct a customer's postal address.",
    opt=requires(Permission.CUSTOMERS_WRITE),
    tags=["customers"],
)
async def change_customer_address(
    principal: NamedDependency[Principal],
    tenant_session: NamedDependency[AsyncSession],
    customer_id: FromPath[str],
    address_id: FromPath[str],
    data: JSONBody[AddressUpdate],
) -> Customer:
    """Update the parts given and return the customer; orders keep the address they were placed with."""
    assert principal.tenant is not None
    view = await change_address(
        principal.tenant.context,
        tenant_session,
        customer_id_of(customer_id),
        address_id_of(address_id),
        given(data),
    )
    return Customer.of(view)


@delete(
    "/api/v1/customers/{customer_id:str}/addresses/{address_id:str}",
    operation_id="deleteCustomerAddress",
    summary="Remove a postal address from a customer.",
    opt=requires(Permission.CUSTOMERS_WRITE),
    tags=["customers"],
    status_code=HTTP_204_NO_CONTENT,
)
async def remove_customer_address(
    principal: NamedDependency[Principal],
    tenant_session: NamedDependency[AsyncSession],
    customer_id: FromPath[str],
    address_id: FromPath[str],
) -> None:
    """The address is gone from the customer; orders keep the address they were placed with."""
    assert principal.tenant is not None
    await remove_address(
        principal.tenant.context, tenant_session, customer_id_of(customer_id), address_id_of(address_id)
    )


@post(
    "/api/v1/customers/{customer_id:str}/notes",
    operation_id="createCustomerNote",
    summary="Append a note to a customer.",
    opt=requires(Permission.CUSTOMERS_WRITE),
    tags=["customers"],
)
async def add_customer_note(
    request: Request[Any, Any, Any],
    principal: NamedDependency[Principal],
    tenant_session: NamedDependency[AsyncSession],
    customer_id: FromPath[str],
    data: JSONBody[NoteCreate],
) -> Response[Customer]:
    """Notes are signed with who wrote them and are never edited; an `Idempotency-Key` makes a retry safe."""
    assert principal.tenant is not None
    tenant = principal.tenant.context

    async def create() -> Customer:
        view = await add_note(
            tenant, tenant_session, customer_id_of(customer_id), data.body, author=principal.actor
        )
        return Customer.of(view)

    return await idempotency.once(request, principal, tenant_session, data, create)


@post(
    "/api/v1/customers/{customer_id:str}/merge",
    operation_id="mergeCustomer",
    summary="Merge a duplicate customer into this one.",
    opt=requires(Permission.CUSTOMERS_WRITE),
    tags=["customers"],
    status_code=200,
)
async def merge_customer(
    request: Request[Any, Any, Any],
    principal: NamedDependency[Principal],
    tenant_session: NamedDependency[AsyncSession],
    customer_id: FromPath[str],
    data: JSONBody[MergeRequest],
) -> Response[Customer]:
    """Move the duplicate's addresses, notes and tags here; its id then resolves to this customer.

    An `Idempotency-Key` makes a retry safe: it gets the merged customer, not `customer_already_merged`.
    """
    assert principal.tenant is not None
    tenant = principal.tenant.context
    try:
        duplicate_id = uuid.UUID(data.duplicate_id)
    except ValueError:
        raise ValidationFailedError(
            "duplicate_id is not a customer id",
            errors=[FieldError("duplicate_id", "must be the id of the customer to merge into this one")],
        ) from None

    async def create() -> Customer:
        view = await merge_customers(
            tenant, tenant_session, customer_id_of(customer_id), duplicate_id, actor=principal.actor
        )
        return Customer.of(view)

    return await idempotency.once(request, principal, tenant_session, data, create, status_code=200)


ROUTES = [
    add_customer,
    read_customers,
    read_customer,
    change_customer,
    add_customer_address,
    change_customer_address,
    remove_customer_address,
    add_customer_note,
    merge_customer,
]
