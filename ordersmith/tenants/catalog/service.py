"""Catalog services: create and change products and their variants, and find SKUs."""

from __future__ import annotations

import uuid
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from typing import Any

from sqlalchemy import Select, func, insert, or_, select, update
from sqlalchemy.exc import IntegrityError
from sqlalchemy.ext.asyncio import AsyncSession

from ordersmith.platform.database import TenantContext
from ordersmith.platform.errors import FieldError, ValidationFailedError
from ordersmith.platform.events import record_event
from ordersmith.platform.ids import uuid7
from ordersmith.platform.pagination import Page, PageRequest
from ordersmith.tenants.catalog.errors import (
    ProductNotFoundError,
    SkuCodeTakenError,
    VariantLimitReachedError,
    VariantNotFoundError,
)
from ordersmith.tenants.catalog.models import Product, Variant
from ordersmith.tenants.catalog.rules import (
    MAX_VARIANTS_PER_PRODUCT,
    MAX_VARIANTS_PER_REQUEST,
    PRODUCT_FIELDS,
    VARIANT_FIELDS,
    check_codes_differ,
    check_fields,
    check_variant_count,
    cleaned,
    raise_if,
)
from ordersmith.tenants.store.service import get_store_profile

PRODUCT_CREATED = "product.created"
PRODUCT_UPDATED = "product.updated"
VARIANT_CREATED = "variant.created"
VARIANT_UPDATED = "variant.updated"
MAX_SEARCH_LENGTH = 100


@dataclass(frozen=True)
class ProductView:
    """A product with its variants, oldest variant first."""

    product: Product
    variants: list[Variant]


@dataclass(frozen=True)
class SkuView:
    """A variant found by search, with its product's name."""

    variant: Variant
    product_name: str


def _product_missing() -> ProductNotFoundError:
    return ProductNotFoundError("no such product in this store; check the id or list /api/v1/products")


def _variant_missing() -> VariantNotFoundError:
    return VariantNotFoundError("no such variant in this store; check the id or search /api/v1/skus")


def product_id_of(text: str) -> uuid.UUID:
    """The product id in a path; one that cannot exist is simply not found."""
    try:
        return uuid.UUID(text)
    except ValueError:
        raise _product_missing() from None


def variant_id_of(text: str) -> uuid.UUID:
    """The variant id in a path; one that cannot exist is simply not found."""
    try:
        return uuid.UUID(text)
    except ValueError:
        raise _variant_missing() from None


def _sku_taken(code: str) -> SkuCodeTakenError:
    return SkuCodeTakenError(
        f"SKU code {code!r} is already used in this store (codes ignore case); choose another code "
        "or change the existing variant, found with GET /api/v1/skus?query=" + code
    )


def _skus_taken(codes: Sequence[str]) -> SkuCodeTakenError:
    if len(codes) == 1:
        return _sku_taken(codes[0])
    return SkuCodeTakenError(
        f"SKU codes {', '.join(repr(code) for code in codes)} are already used in this store "
        "(codes ignore case); choose other codes or change the existing variants, each found with "
        "GET /api/v1/skus?query=<code>"
    )


def _codes_query(codes: Sequence[str]) -> Select[str]:
    # Codes are ASCII (rules.SKU_CODE), where Python's lower() and PostgreSQL's agree.
    return select(Variant.sku_code).where(func.lower(Variant.sku_code).in_([code.lower() for code in codes]))


async def _check_codes_free(
    session: AsyncSession, codes: Sequence[str], *, except_id: uuid.UUID | None = None
) -> None:
    """409 `sku_code_taken` naming every one of `codes` a variant of the store already has.

    Named as those variants spell them, in the order of `codes`, so that one answer lists
    every code to change, as the answer to a request that lost its codes to a concurrent
    insert does (`_codes_lost`).
    """
    query = _codes_query(codes)
    if except_id is not None:
        query = query.where(Variant.id != except_id)
    existing = {code.lower(): code for code in await session.scalars(query)}
    taken = [existing[code.lower()] for code in codes if code.lower() in existing]
    if taken:
        raise _skus_taken(taken)


async def _codes_lost(session: AsyncSession, codes: Sequence[str]) -> SkuCodeTakenError:
    """The 409 for a request that lost `codes` to a concurrent insert: only those now taken.

    Read after the unique index refused the insert, which it does once the winner has
    committed: at READ COMMITTED this statement sees the winner's rows.
    """
    taken = {code.lower() for code in await session.scalars(_codes_query(codes))}
    # In the request's spelling; should the winner be gone already, every code is named.
    return _skus_taken([code for code in codes if code.lower() in taken] or list(codes))


async def _insert_variants(
    session: AsyncSession, product_id: uuid.UUID, variants: Sequence[Mapping[str, Any]]
) -> list[Variant]:
    start = await session.scalar(
        select(func.coalesce(func.max(Variant.position) + 1, 0)).where(Variant.product_id == product_id)
    )
    rows = [
        {"id": uuid7(), "product_id": product_id, "position": (start or 0) + index, **cleaned(values)}
        for index, values in enumerate(variants)
    ]
    try:
        # A savepoint keeps the transaction usable when a concurrent insert took the code first.
        async with session.begin_nested():
            inserted = await session.scalars(insert(Variant).returning(Variant), rows)
            return sorted(inserted, key=lambda variant: variant.position)
    except IntegrityError as error:
        if "uq_variants_sku_code_lower" in str(error.orig):
            raise await _codes_lost(session, [row["sku_code"] for row in rows]) from None
        raise


async def _with_defaults(
    tenant: TenantContext, session: AsyncSession, variants: Sequence[Mapping[str, Any]]
) -> list[dict[str, Any]]:
    """The variants with the store's currency where none is given; the store is read once at most."""
    if all("currency" in values for values in variants):
        return [dict(values) for values in variants]
    currency = (await get_store_profile(tenant, session)).default_currency
    return [dict(values) if "currency" in values else {**values, "currency": currency} for values in variants]


async def _check_variant_total(session: AsyncSession, product_id: uuid.UUID) -> None:
    """409 `variant_limit_reached` if the product now has more variants than it may.

    Run after the insert, under a lock on the product, so that two writers adding its last
    variants count each other. The lock comes after the insert so that the loser of a race
    for one code still waits on the code's unique index and is told of its own spelling.
    FOR NO KEY UPDATE, not FOR UPDATE: each insert holds KEY SHARE on the product through
    its foreign key, and two writers each waiting for the other's KEY SHARE would deadlock.
    """
    await session.execute(select(Product.id).where(Product.id == product_id).with_for_update(key_share=True))
    total = await session.scalar(
        select(func.count()).select_from(Variant).where(Variant.product_id == product_id)
    )
    if (total or 0) > MAX_VARIANTS_PER_PRODUCT:
        raise VariantLimitReachedError(
            f"this product already has the most variants a product can have ({MAX_VARIANTS_PER_PRODUCT}); "
            "put further variants on another product, or change an existing variant"
        )


def _check_new_variant(values: Mapping[str, Any], prefix: str, errors: list[FieldError]) -> None:
    check_fields(values, VARIANT_FIELDS, prefix, errors)
    for required in ("sku_code", "name", "price_amount"):
        if required not in values:
            errors.append(FieldError(prefix + required, "is required"))


def _variant_event(variant: Variant) -> dict[str, Any]:
    return {
        "variant_id": str(variant.id),
        "product_id": str(variant.product_id),
        "sku_code": variant.sku_code,
        "price_amount": variant.price_amount,
        "currency": variant.currency,
        "is_active": variant.is_active,
    }


async def create_product(
    tenant: TenantContext,
    session: AsyncSession,
    product: Mapping[str, Any],
    variants: Sequence[Mapping[str, Any]] = (),
) -> ProductView:
    """Add a product and its first variants (at most 100); the currency defaults to the store's."""
    errors: list[FieldError] = []
    check_fields(product, PRODUCT_FIELDS, "", errors)
    if "name" not in product:
        errors.append(FieldError("name", "is required"))
    check_variant_count("variants", variants, errors)
    if len(variants) <= MAX_VARIANTS_PER_REQUEST:
        for index, values in enumerate(variants):
            _check_new_variant(values, f"variants[{index}].", errors)
        check_codes_differ("variants", variants, errors)
    raise_if(errors)
    complete = await _with_defaults(tenant, session, variants)
    await _check_codes_free(session, [values["sku_code"] for values in complete])
    row = (
        await session.scalars(insert(Product).values(id=uuid7(), **cleaned(product)).returning(Product))
    ).one()
    created = await _insert_variants(session, row.id, complete) if complete else []
    await record_event(
        session,
        tenant,
        PRODUCT_CREATED,
        {"product_id": str(row.id), "name": row.name, "variants": [_variant_event(item) for item in created]},
    )
    return ProductView(row, created)


async def _product_row(session: AsyncSession, product_id: uuid.UUID, *, lock: bool = False) -> Product:
    query = select(Product).where(Product.id == product_id)
    row = (await session.scalars(query.with_for_update() if lock else query)).one_or_none()
    if row is None:
        raise _product_missing()
    return row


async def _variants_of(
    session: AsyncSession, product_ids: Sequence[uuid.UUID]
) -> dict[uuid.UUID, list[Variant]]:
    found: dict[uuid.UUID, list[Variant]] = {product_id: [] for product_id in product_ids}
    if product_ids:
        query = (
            select(Variant).where(Variant.product_id.in_(product_ids)).order_by(Variant.position, Variant.id)
        )
        for variant in await session.scalars(query):
            found[variant.product_id].append(variant)
    return found


async def get_product(tenant: TenantContext, session: AsyncSession, product_id: uuid.UUID) -> ProductView:
    """A product and its variants; 404 if the store has no such product."""
    row = await _product_row(session, product_id)
    return ProductView(row, (await _variants_of(session, [row.id]))[row.id])


async def list_products(tenant: TenantContext, session: AsyncSession, page: PageRequest) -> Page[ProductView]:
    """The store's products, newest first, with their variants."""
    query = page.apply(select(Product), Product.created_at, Product.id, newest_first=True)
    rows = list(await session.scalars(query))
    cut = page.cut(rows, lambda row: (row.created_at, row.id))
    variants = await _variants_of(session, [row.id for row in cut.items])
    return Page([ProductView(row, variants[row.id]) for row in cut.items], cut.next_cursor)


async def update_product(
    tenant: TenantContext, session: AsyncSession, product_id: uuid.UUID, changes: Mapping[str, Any]
) -> ProductView:
    """Change the fields given of a product; the others stay as they are."""
    errors: list[FieldError] = []
    check_fields(changes, PRODUCT_FIELDS, "", errors)
    raise_if(errors)
    await _product_row(session, product_id, lock=True)
    if changes:
        await session.execute(
            update(Product).where(Product.id == product_id).values(**cleaned(changes), updated_at=func.now())
        )
        await record_event(
            session, tenant, PRODUCT_UPDATED, {"product_id": str(product_id), "changed": sorted(changes)}
        )
    session.expire_all()
    return await get_product(tenant, session, product_id)


async def add_variant(
    tenant: TenantContext, session: AsyncSession, product_id: uuid.UUID, values: Mapping[str, Any]
) -> Variant:
    """Add a SKU to a product; 409 `sku_code_taken` if the code is used, `variant_limit_reached` past 1000."""
    errors: list[FieldError] = []
    _check_new_variant(values, "", errors)
    raise_if(errors)
    await _product_row(session, product_id)
    (complete,) = await _with_defaults(tenant, session, [values])
    await _check_codes_free(session, [complete["sku_code"]])
    # A savepoint, so that a product past its limit is left as it was even if the caller goes on.
    async with session.begin_nested():
        (variant,) = await _insert_variants(session, product_id, [complete])
        await _check_variant_total(session, product_id)
    await record_event(session, tenant, VARIANT_CREATED, _variant_event(variant))
    return variant


async def get_variant(tenant: TenantContext, session: AsyncSession, variant_id: uuid.UUID) -> Variant:
    """One SKU; 404 if the store has no such variant."""
    row = (await session.scalars(select(Variant).where(Variant.id == variant_id))).one_or_none()
    if row is None:
        raise _variant_missing()
    return row


async def update_variant(
    tenant: TenantContext, session: AsyncSession, variant_id: uuid.UUID, changes: Mapping[str, Any]
) -> Variant:
    """Change the fields given of a SKU (price, code, barcode, active flag...)."""
    errors: list[FieldError] = []
    check_fields(changes, VARIANT_FIELDS, "", errors)
    raise_if(errors)
    await get_variant(tenant, session, variant_id)
    if "sku_code" in changes:
        await _check_codes_free(session, [changes["sku_code"]], except_id=variant_id)
    if changes:
        try:
            async with session.begin_nested():
                await session.execute(
                    update(Variant)
                    .where(Variant.id == variant_id)
                    .values(**cleaned(changes), updated_at=func.now())
                )
        except IntegrityError as error:
            if "uq_variants_sku_code_lower" in str(error.orig):
                raise _sku_taken(changes["sku_code"]) from None
            raise
    session.expire_all()
    variant = await get_variant(tenant, session, variant_id)
    if changes:
        await record_event(
            session, tenant, VARIANT_UPDATED, {**_variant_event(variant), "changed": sorted(changes)}
        )
    return variant


def _like_escaped(text: str) -> str:
    return text.replace("\\", "\\\\").replace("%", "\\%").replace("_", "\\_")


async def search_skus(
    tenant: TenantContext, session: AsyncSession, query: str, page: PageRequest
) -> Page[SkuView]:
    """SKUs whose code or barcode starts with `query`, or whose name contains it, ignoring case."""
    text = query.strip()
    if not text or len(text) > MAX_SEARCH_LENGTH:
        raise ValidationFailedError(
            "say what to look for",
            errors=[
                FieldError("query", f"must be 1 to {MAX_SEARCH_LENGTH} characters of a code, name or barcode")
            ],
        )
    # Codes and barcodes are ASCII (rules.py), where Python's lower() and PostgreSQL's agree;
    # names are any text, so ILIKE folds the case of both sides itself: Python lowers "İ" to
    # "i" and a combining dot, which no name folded by PostgreSQL contains.
    prefix, substring = _like_escaped(text.lower()) + "%", "%" + _like_escaped(text) + "%"
    # Prefix matches on lower(code) / lower(barcode) use their text_pattern_ops indexes;
    # name substrings scan, which is fine for catalogs of tens of thousands of SKUs.
    matches = or_(
        func.lower(Variant.sku_code).like(prefix, escape="\\"),
        func.lower(Variant.barcode).like(prefix, escape="\\"),
        Variant.name.ilike(substring, escape="\\"),
        Product.name.ilike(substring, escape="\\"),
    )
    statement = select(Variant, Product.name).join(Product, Product.id == Variant.product_id).where(matches)
    statement = page.apply(statement, Variant.created_at, Variant.id, newest_first=True)
    rows = [SkuView(variant, name) for variant, name in (await session.execute(statement)).all()]
    return page.cut(rows, lambda row: (row.variant.created_at, row.variant.id))
