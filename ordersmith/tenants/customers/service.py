"""Customer services: contact details, addresses, tags, notes, and merging duplicates."""

from __future__ import annotations

import uuid
from collections.abc import Awaitable, Callable, Mapping, Sequence
from dataclasses import dataclass
from typing import Any
from urllib.parse import quote

from sqlalchemy import delete, func, insert, select, update
from sqlalchemy.exc import IntegrityError
from sqlalchemy.ext.asyncio import AsyncSession

from ordersmith.platform.database import TenantContext
from ordersmith.platform.errors import FieldError, ValidationFailedError
from ordersmith.platform.events import record_event
from ordersmith.platform.identity.audit import Actor
from ordersmith.platform.ids import uuid7
from ordersmith.platform.pagination import Page, PageRequest
from ordersmith.tenants.customers.errors import (
    CustomerAddressNotFoundError,
    CustomerAlreadyMergedError,
    CustomerEmailTakenError,
    CustomerNotFoundError,
    CustomerTagsOverLimitError,
)
from ordersmith.tenants.customers.models import Customer, CustomerAddress, CustomerNote
from ordersmith.tenants.customers.rules import (
    MAX_ADDRESSES_ON_CREATE,
    MAX_TAGS,
    check_address,
    check_customer,
    check_note,
    normalize_email,
    normalize_tags,
    trimmed_address,
)

CUSTOMER_CREATED = "customer.created"
CUSTOMER_UPDATED = "customer.updated"
CUSTOMER_MERGED = "customer.merged"

# Runs inside the merge's transaction with (tenant, session, survivor_id, duplicate_id),
# for a context that must move rows of its own. Orders need none: an order keeps the
# customer it was placed for, and a history follows the merges (`customer_ids_for_history`).
MergeHook = Callable[[TenantContext, AsyncSession, uuid.UUID, uuid.UUID], Awaitable[None]]
MERGE_HOOKS: list[MergeHook] = []


def on_customer_merged(hook: MergeHook) -> MergeHook:
    """Register work that must happen in the same transaction as every merge (decorator)."""
    MERGE_HOOKS.append(hook)
    return hook


@dataclass(frozen=True)
class CustomerView:
    """A live customer with addresses and notes (oldest first) and the ids merged into it."""

    customer: Customer
    addresses: list[CustomerAddress]
    notes: list[CustomerNote]
    merged_ids: list[uuid.UUID]


def _missing() -> CustomerNotFoundError:
    return CustomerNotFoundError("no such customer in this store; check the id or list /api/v1/customers")


def customer_id_of(text: str) -> uuid.UUID:
    """The customer id in a path; one that cannot exist is simply not found."""
    try:
        return uuid.UUID(text)
    except ValueError:
        raise _missing() from None


def address_id_of(text: str) -> uuid.UUID | None:
    """The address id in a path; None for one that cannot exist, which no customer has."""
    try:
        return uuid.UUID(text)
    except ValueError:
        return None


def _address_missing(customer_id: uuid.UUID) -> CustomerAddressNotFoundError:
    return CustomerAddressNotFoundError(
        f"this customer has no such address; read the customer (GET /api/v1/customers/{customer_id}) "
        "to see its addresses"
    )


def _email_taken(email: str) -> CustomerEmailTakenError:
    # Encoded as a query value ("+" would read as a space), so the hint can be followed as written.
    return CustomerEmailTakenError(
        f"another customer already has the email {email!r}; open that customer "
        f"(GET /api/v1/customers?email={quote(email, safe='@')}) or merge the two with "
        "POST /api/v1/customers/{id}/merge"
    )


def _contact(values: Mapping[str, Any]) -> dict[str, Any]:
    cleaned = dict(values)
    if cleaned.get("email") is not None:
        cleaned["email"] = normalize_email(cleaned["email"])
    for field in ("full_name", "phone"):
        if isinstance(cleaned.get(field), str):
            cleaned[field] = cleaned[field].strip()
    if "tags" in cleaned:
        cleaned["tags"] = normalize_tags(cleaned["tags"])
    return cleaned


async def _email_holder(session: AsyncSession, email: str) -> uuid.UUID | None:
    """The live customer an email belongs to: the one that has it, or the one that absorbed it.

    A merged duplicate keeps its email for the history, and the email still names the
    person: it finds the survivor, and no new customer can take it (which would bring
    the duplicate back on the next order from a "find by email, else create" integration).
    """
    live = await session.scalar(
        select(Customer.id).where(Customer.email == email, Customer.merged_into_id.is_(None))
    )
    if live is not None:
        return live
    merged = await session.scalar(
        select(Customer.id)
        .where(Customer.email == email, Customer.merged_into_id.is_not(None))
        .order_by(Customer.merged_at.desc(), Customer.id.desc())
        .limit(1)
    )
    return None if merged is None else await live_customer_id(session, merged)


async def _check_email_free(
    session: AsyncSession, email: str | None, *, except_id: uuid.UUID | None = None
) -> None:
    if email is None:
        return
    holder = await _email_holder(session, email)
    if holder is not None and holder != except_id:
        raise _email_taken(email)


async def _guard_email(session: AsyncSession, email: str | None, write: Awaitable[Any]) -> Any:
    # A savepoint keeps the transaction usable when a concurrent write took the email first.
    try:
        async with session.begin_nested():
            return await write
    except IntegrityError as error:
        if email is not None and "uq_customers_email_live" in str(error.orig):
            raise _email_taken(email) from None
        raise


def _address_row(customer_id: uuid.UUID, values: Mapping[str, Any]) -> dict[str, Any]:
    return {"id": uuid7(), "customer_id": customer_id, **trimmed_address(values)}


def _note_row(customer_id: uuid.UUID, body: str, author: Actor) -> dict[str, Any]:
    return {
        "id": uuid7(),
        "customer_id": customer_id,
        "original_customer_id": customer_id,
        "body": body.strip(),
        "author_type": author.type,
        "author_id": author.id,
    }


async def create_customer(
    tenant: TenantContext,
    session: AsyncSession,
    values: Mapping[str, Any],
    *,
    addresses: Sequence[Mapping[str, Any]] = (),
    note: str | None = None,
    author: Actor,
) -> CustomerView:
    """Add a customer with addresses and a first note; 409 `customer_email_taken` on a known email."""
    errors: list[FieldError] = []
    if "full_name" not in values:
        errors.append(FieldError("full_name", "is required"))
    check_customer(values, errors)
    if len(addresses) > MAX_ADDRESSES_ON_CREATE:
        errors.append(
            FieldError(
                "addresses",
                f"at most {MAX_ADDRESSES_ON_CREATE} when creating a customer; "
                "add the others with POST /api/v1/customers/{id}/addresses",
            )
        )
    else:
        for index, address in enumerate(addresses):
            check_address(address, f"addresses[{index}].", errors)
    if note is not None:
        check_note("note", note, errors)
    if errors:
        raise ValidationFailedError("some fields are invalid; see errors", errors=errors)
    contact = _contact(values)
    await _check_email_free(session, contact.get("email"))
    customer_id = uuid7()
    await _guard_email(
        session, contact.get("email"), session.execute(insert(Customer).values(id=customer_id, **contact))
    )
    if addresses:
        await session.execute(
            insert(CustomerAddress), [_address_row(customer_id, item) for item in addresses]
        )
    if note is not None:
        await session.execute(insert(CustomerNote).values(**_note_row(customer_id, note, author)))
    await record_event(
        session, tenant, CUSTOMER_CREATED, {"customer_id": str(customer_id), "email": contact.get("email")}
    )
    return await get_customer(tenant, session, customer_id)


async def live_customer_id(session: AsyncSession, customer_id: uuid.UUID) -> uuid.UUID | None:
    """The id of the live customer `customer_id` is (or was merged into); None if there is none."""
    row = (
        await session.execute(select(Customer.id, Customer.merged_into_id).where(Customer.id == customer_id))
    ).one_or_none()
    return None if row is None else (row.merged_into_id or row.id)


async def _live_id(session: AsyncSession, customer_id: uuid.UUID, *, lock: bool = False) -> uuid.UUID:
    """The id of the live customer `customer_id` is (or was merged into).

    With `lock`, that customer's row is locked and still live: a merge that committed
    while this waited for the lock is followed to its survivor, so what is written next
    lands on the customer the merge kept, not on the one it folded away. (The folded row
    stays locked meanwhile: a second merge, of the survivor, racing this can deadlock
    with it, and one of the two is then a 503 `busy` to retry.)
    """
    live_id = await live_customer_id(session, customer_id)
    if live_id is None:
        raise _missing()
    while lock:
        merged_into = await session.scalar(
            select(Customer.merged_into_id).where(Customer.id == live_id).with_for_update()
        )
        if merged_into is None:
            break
        live_id = merged_into
    return live_id


async def get_customer(tenant: TenantContext, session: AsyncSession, customer_id: uuid.UUID) -> CustomerView:
    """A customer with addresses, notes and merged ids; a merged id answers with its survivor."""
    live_id = await _live_id(session, customer_id)
    customer = (await session.scalars(select(Customer).where(Customer.id == live_id))).one()
    addresses = await session.scalars(
        select(CustomerAddress)
        .where(CustomerAddress.customer_id == live_id)
        .order_by(CustomerAddress.created_at, CustomerAddress.id)
    )
    notes = await session.scalars(
        select(CustomerNote)
        .where(CustomerNote.customer_id == live_id)
        .order_by(CustomerNote.created_at, CustomerNote.id)
    )
    merged = await session.scalars(
        select(Customer.id)
        .where(Customer.merged_into_id == live_id)
        .order_by(Customer.merged_at, Customer.id)
    )
    return CustomerView(customer, list(addresses), list(notes), list(merged))


async def customer_ids_for_history(
    tenant: TenantContext, session: AsyncSession, customer_id: uuid.UUID, *, lock: bool = False
) -> list[uuid.UUID]:
    """The live customer's id and every id merged into it: whose orders make up its history.

    With `lock`, the live customer's row is locked first (see `_live_id`), so the ids
    are those of a history no merge can change before the transaction ends: a spend of
    store credit sent to a duplicate being merged waits for the merge, then locks and
    reads the survivor's whole balance, as a spend sent to the survivor does.
    """
    live_id = await _live_id(session, customer_id, lock=lock)
    merged = await session.scalars(select(Customer.id).where(Customer.merged_into_id == live_id))
    return [live_id, *merged]


async def list_customers(
    tenant: TenantContext, session: AsyncSession, page: PageRequest, *, email: str | None = None
) -> Page[Customer]:
    """Live customers, newest first; `email` finds the one it belongs to, a merged duplicate's included."""
    query = select(Customer).where(Customer.merged_into_id.is_(None))
    if email is not None:
        # The customer the email belongs to, also when it came with a duplicate merged into them.
        holder = await _email_holder(session, normalize_email(email))
        if holder is None:
            return Page([], None)
        query = query.where(Customer.id == holder)
    rows = list(await session.scalars(page.apply(query, Customer.created_at, Customer.id, newest_first=True)))
    return page.cut(rows, lambda row: (row.created_at, row.id))


async def update_customer(
    tenant: TenantContext, session: AsyncSession, customer_id: uuid.UUID, changes: Mapping[str, Any]
) -> CustomerView:
    """Change the contact fields or tags given (of the survivor, for a merged id)."""
    errors: list[FieldError] = []
    check_customer(changes, errors)
    if errors:
        raise ValidationFailedError("some fields are invalid; see errors", errors=errors)
    live_id = await _live_id(session, customer_id, lock=True)
    contact = _contact(changes)
    if contact:
        await _check_email_free(session, contact.get("email"), except_id=live_id)
        statement = update(Customer).where(Customer.id == live_id).values(**contact, updated_at=func.now())
        await _guard_email(session, contact.get("email"), session.execute(statement))
        await record_event(
            session, tenant, CUSTOMER_UPDATED, {"customer_id": str(live_id), "changed": sorted(contact)}
        )
    session.expire_all()
    return await get_customer(tenant, session, live_id)


async def add_address(
    tenant: TenantContext, session: AsyncSession, customer_id: uuid.UUID, values: Mapping[str, Any]
) -> CustomerView:
    """Add a postal address to a customer."""
    errors: list[FieldError] = []
    check_address(values, "", errors)
    if errors:
        raise ValidationFailedError("some fields are invalid; see errors", errors=errors)
    live_id = await _live_id(session, customer_id, lock=True)
    await session.execute(insert(CustomerAddress).values(**_address_row(live_id, values)))
    await record_event(
        session, tenant, CUSTOMER_UPDATED, {"customer_id": str(live_id), "changed": ["addresses"]}
    )
    return await get_customer(tenant, session, live_id)


async def _address_of(
    session: AsyncSession, live_id: uuid.UUID, address_id: uuid.UUID | None
) -> CustomerAddress:
    """The customer's own address; another customer's (or store's) is as unknown as none."""
    address = None
    if address_id is not None:
        address = await session.scalar(
            select(CustomerAddress).where(
                CustomerAddress.id == address_id, CustomerAddress.customer_id == live_id
            )
        )
    if address is None:
        raise _address_missing(live_id)
    return address


async def change_address(
    tenant: TenantContext,
    session: AsyncSession,
    customer_id: uuid.UUID,
    address_id: uuid.UUID | None,
    changes: Mapping[str, Any],
) -> CustomerView:
    """Correct the parts given of a customer's address; orders keep the copy they were placed with."""
    errors: list[FieldError] = []
    check_address(changes, "", errors, partial=True)
    if errors:
        raise ValidationFailedError("some fields are invalid; see errors", errors=errors)
    # The customer is locked, as when adding an address, so a merge moving it waits or goes first.
    live_id = await _live_id(session, customer_id, lock=True)
    await _address_of(session, live_id, address_id)
    if changes:
        await session.execute(
            update(CustomerAddress).where(CustomerAddress.id == address_id).values(**trimmed_address(changes))
        )
        await record_event(
            session, tenant, CUSTOMER_UPDATED, {"customer_id": str(live_id), "changed": ["addresses"]}
        )
    session.expire_all()
    return await get_customer(tenant, session, live_id)


async def remove_address(
    tenant: TenantContext, session: AsyncSession, customer_id: uuid.UUID, address_id: uuid.UUID | None
) -> None:
    """Remove a customer's address; orders keep the copy they were placed with."""
    live_id = await _live_id(session, customer_id, lock=True)
    await _address_of(session, live_id, address_id)
    await session.execute(delete(CustomerAddress).where(CustomerAddress.id == address_id))
    await record_event(
        session, tenant, CUSTOMER_UPDATED, {"customer_id": str(live_id), "changed": ["addresses"]}
    )


async def add_note(
    tenant: TenantContext, session: AsyncSession, customer_id: uuid.UUID, body: str, *, author: Actor
) -> CustomerView:
    """Append a note to a customer; notes are never edited, so they stay history."""
    errors: list[FieldError] = []
    check_note("body", body, errors)
    if errors:
        raise ValidationFailedError("some fields are invalid; see errors", errors=errors)
    live_id = await _live_id(session, customer_id, lock=True)
    await session.execute(insert(CustomerNote).values(**_note_row(live_id, body, author)))
    return await get_customer(tenant, session, live_id)


async def _move(
    session: AsyncSession,
    table: type[CustomerAddress] | type[CustomerNote],
    from_id: uuid.UUID,
    to_id: uuid.UUID,
) -> int:
    moved = await session.scalars(
        update(table).where(table.customer_id == from_id).values(customer_id=to_id).returning(table.id)
    )
    return len(moved.all())


def _merge_note(duplicate: Customer) -> str:
    """What the survivor keeps of who the duplicate was: name, email and phone, since it keeps one of each."""
    label = f"{duplicate.full_name} <{duplicate.email}>" if duplicate.email else duplicate.full_name
    note = f"Merged customer {label} ({duplicate.id}) into this customer."
    return f"{note} Its phone was {duplicate.phone}." if duplicate.phone else note


async def merge_customers(
    tenant: TenantContext,
    session: AsyncSession,
    survivor_id: uuid.UUID,
    duplicate_id: uuid.UUID,
    *,
    actor: Actor,
) -> CustomerView:
    """Fold a duplicate into a customer: move addresses, notes, tags and orders; keep its id resolving."""
    survivor_id = await _live_id(session, survivor_id)
    if survivor_id == duplicate_id:
        raise ValidationFailedError(
            "a customer cannot be merged into itself",
            errors=[FieldError("duplicate_id", "must be another customer's id")],
        )
    # Lock both rows in id order, so two merges of the same pair cannot deadlock.
    rows = {
        row.id: row
        for row in await session.scalars(
            select(Customer)
            .where(Customer.id.in_([survivor_id, duplicate_id]))
            .order_by(Customer.id)
            .with_for_update()
        )
    }
    duplicate = rows.get(duplicate_id)
    if duplicate is None:
        raise CustomerNotFoundError("no such duplicate customer in this store; check duplicate_id")
    if duplicate.merged_into_id is not None:
        raise CustomerAlreadyMergedError(
            f"customer {duplicate_id} was already merged into {duplicate.merged_into_id}; "
            "nothing is left to merge"
        )
    survivor = rows[survivor_id]
    if survivor.merged_into_id is not None:
        raise CustomerAlreadyMergedError(
            f"customer {survivor_id} was merged into {survivor.merged_into_id} meanwhile; merge into that one"
        )
    tags = normalize_tags([*survivor.tags, *duplicate.tags])
    if len(tags) > MAX_TAGS:
        # Refused whole rather than dropping some: a merge loses nothing.
        raise CustomerTagsOverLimitError(
            f"together the two customers have {len(tags)} different tags and a customer keeps at most "
            f"{MAX_TAGS}; remove some from either (PATCH /api/v1/customers/{{id}} with its tags), then merge",
            extensions={"tags": len(tags), "max_tags": MAX_TAGS},
        )
    moved_addresses = await _move(session, CustomerAddress, duplicate_id, survivor_id)
    moved_notes = await _move(session, CustomerNote, duplicate_id, survivor_id)
    # Earlier merges into the duplicate now point at the survivor: ids resolve in one step.
    await session.execute(
        update(Customer).where(Customer.merged_into_id == duplicate_id).values(merged_into_id=survivor_id)
    )
    # Mark the duplicate merged first: it then no longer claims its email, which the survivor may take.
    await session.execute(
        update(Customer)
        .where(Customer.id == duplicate_id)
        .values(merged_into_id=survivor_id, merged_at=func.now(), updated_at=func.now())
    )
    fills = {
        "tags": tags,
        "email": survivor.email or duplicate.email,
        "phone": survivor.phone or duplicate.phone,
    }
    changed = {field for field, value in fills.items() if value != getattr(survivor, field)}
    await session.execute(
        update(Customer).where(Customer.id == survivor_id).values(**fills, updated_at=func.now())
    )
    await session.execute(
        insert(CustomerNote).values(**_note_row(survivor_id, _merge_note(duplicate), actor))
    )
    for hook in MERGE_HOOKS:
        await hook(tenant, session, survivor_id, duplicate_id)
    await record_event(
        session,
        tenant,
        CUSTOMER_MERGED,
        {
            "survivor_id": str(survivor_id),
            "duplicate_id": str(duplicate_id),
            "moved_addresses": moved_addresses,
            "moved_notes": moved_notes,
            "actor_type": actor.type,
            "actor_id": actor.id,
        },
    )
    # The survivor's own fields changed too: announced as any other change of them is, so that a
    # system kept in step by `customer.updated` reads the survivor again.
    if moved_addresses:
        changed.add("addresses")
    if changed:
        await record_event(
            session, tenant, CUSTOMER_UPDATED, {"customer_id": str(survivor_id), "changed": sorted(changed)}
        )
    session.expire_all()
    return await get_customer(tenant, session, survivor_id)
