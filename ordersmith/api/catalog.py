"""The catalog: products, their variants (SKUs), and SKU search."""

from __future__ import annotations

import datetime as dt
from typing import Annotated, Any

import msgspec
from litestar import Request, Response, get, patch, post
from litestar.di import NamedDependency
from litestar.params import FromPath, FromQuery, JSONBody, QueryParameter
from sqlalchemy.ext.asyncio import AsyncSession

from ordersmith.api import idempotency
from ordersmith.api.access import requires
from ordersmith.api.payloads import given
from ordersmith.platform.identity.permissions import Permission
from ordersmith.platform.identity.principal import Principal
from ordersmith.platform.pagination import DEFAULT_PAGE_SIZE, PageRequest
from ordersmith.tenants.catalog.models import Variant as VariantRow
from ordersmith.tenants.catalog.service import (
    ProductView,
    SkuView,
    add_variant,
    create_product,
    get_product,
    get_variant,
    list_products,
    product_id_of,
    search_skus,
    update_product,
    update_variant,
    variant_id_of,
)

Attributes = dict[str, str | int | float | bool]


class Variant(msgspec.Struct):
    id: str
    product_id: str
    sku_code: str
    name: str
    # Minor units of `currency` (cents for EUR): 1999 is 19.99.
    price_amount: int
    currency: str
    weight_grams: int | None
    barcode: str | None
    is_active: bool
    attributes: dict[str, Any]
    # Whether orders may take more than is available, the rest waiting for stock.
    allow_backorder: bool
    created_at: dt.datetime
    updated_at: dt.datetime

    @classmethod
    def of(cls, row: VariantRow) -> Variant:
        return cls(
            str(row.id),
            str(row.product_id),
            row.sku_code,
            row.name,
            row.price_amount,
            row.currency,
            row.weight_grams,
            row.barcode,
            row.is_active,
            row.attributes,
            row.allow_backorder,
            row.created_at,
            row.updated_at,
        )


class Product(msgspec.Struct):
    id: str
    name: str
    description: str
    is_active: bool
    attributes: dict[str, Any]
    variants: list[Variant]
    created_at: dt.datetime
    updated_at: dt.datetime

    @classmethod
    def of(cls, view: ProductView) -> Product:
        row = view.product
        return cls(
            str(row.id),
            row.name,
            row.description,
            row.is_active,
            row.attributes,
            [Variant.of(variant) for variant in view.variants],
            row.created_at,
            row.updated_at,
        )


class ProductList(msgspec.Struct):
    data: list[Product]
    next_cursor: str | None


class Sku(msgspec.Struct):
    variant: Variant
    product_name: str

    @classmethod
    def of(cls, view: SkuView) -> Sku:
        return cls(Variant.of(view.variant), view.product_name)


class SkuList(msgspec.Struct):
    data: list[Sku]
    next_cursor: str | None


class VariantCreate(msgspec.Struct, forbid_unknown_fields=True, omit_defaults=True):
    sku_code: str
    name: str
    price_amount: int
    # Defaults to the store's currency.
    currency: str | msgspec.UnsetType = msgspec.UNSET
    weight_grams: int | msgspec.UnsetType | None = msgspec.UNSET
    barcode: str | msgspec.UnsetType | None = msgspec.UNSET
    is_active: bool | msgspec.UnsetType = msgspec.UNSET
    attributes: Attributes | msgspec.UnsetType = msgspec.UNSET
    allow_backorder: bool | msgspec.UnsetType = msgspec.UNSET


class VariantUpdate(msgspec.Struct, forbid_unknown_fields=True, omit_defaults=True):
    sku_code: str | msgspec.UnsetType = msgspec.UNSET
    name: str | msgspec.UnsetType = msgspec.UNSET
    price_amount: int | msgspec.UnsetType = msgspec.UNSET
    currency: str | msgspec.UnsetType = msgspec.UNSET
    weight_grams: int | msgspec.UnsetType | None = msgspec.UNSET
    barcode: str | msgspec.UnsetType | None = msgspec.UNSET
    is_active: bool | msgspec.UnsetType = msgspec.UNSET
    attributes: Attributes | msgspec.UnsetType = msgspec.UNSET
    allow_backorder: bool | msgspec.UnsetType = msgspec.UNSET


class ProductCreate(msgspec.Struct, forbid_unknown_fields=True, omit_defaults=True):
    name: str
    description: str | msgspec.UnsetType = msgspec.UNSET
    is_active: bool | msgspec.UnsetType = msgspec.UNSET
    attributes: Attributes | msgspec.UnsetType = msgspec.UNSET
    # At most 100 (MAX_VARIANTS_PER_REQUEST); add more with POST /api/v1/products/{id}/variants.
    variants: list[VariantCreate] = msgspec.field(default_factory=list)


class ProductUpdate(msgspec.Struct, forbid_unknown_fields=True, omit_defaults=True):
    name: str | msgspec.UnsetType = msgspec.UNSET
    description: str | msgspec.UnsetType = msgspec.UNSET
    is_active: bool | msgspec.UnsetType = msgspec.UNSET
    attributes: Attributes | msgspec.UnsetType = msgspec.UNSET


@post(
    "/api/v1/products",
    operation_id="createProduct",
    summary="Add a product, optionally with its variants.",
    opt=requires(Permission.CATALOG_WRITE),
    tags=["catalog"],
)
async def add_product(
    request: Request[Any, Any, Any],
    principal: NamedDependency[Principal],
    tenant_session: NamedDependency[AsyncSession],
    data: JSONBody[ProductCreate],
) -> Response[Product]:
    """Create a product and up to 100 SKUs in one go; a taken SKU code is 409 `sku_code_taken`.

    A code given twice in the request (ignoring case) is 422 naming the variant that repeats it.

    An `Idempotency-Key` makes a retry safe: it gets the first answer, not `sku_code_taken`.
    """
    assert principal.tenant is not None
    tenant = principal.tenant.context

    async def create() -> Product:
        view = await create_product(
            tenant,
            tenant_session,
            given(data, leave_out=("variants",)),
            [given(variant) for variant in data.variants],
        )
        return Product.of(view)

    return await idempotency.once(request, principal, tenant_session, data, create)


@get(
    "/api/v1/products",
    operation_id="listProducts",
    summary="List the store's products, newest first.",
    opt=requires(Permission.CATALOG_READ),
    tags=["catalog"],
)
async def read_products(
    principal: NamedDependency[Principal],
    tenant_session: NamedDependency[AsyncSession],
    limit: FromQuery[int] = DEFAULT_PAGE_SIZE,
    cursor: FromQuery[str | None] = None,
) -> ProductList:
    """Products with their variants; follow next_cursor for the next page."""
    assert principal.tenant is not None
    page = await list_products(principal.tenant.context, tenant_session, PageRequest.parse(limit, cursor))
    return ProductList([Product.of(view) for view in page.items], page.next_cursor)


@get(
    "/api/v1/products/{product_id:str}",
    operation_id="getProduct",
    summary="Read one product and its variants.",
    opt=requires(Permission.CATALOG_READ),
    tags=["catalog"],
)
async def read_product(
    principal: NamedDependency[Principal],
    tenant_session: NamedDependency[AsyncSession],
    product_id: FromPath[str],
) -> Product:
    """The product, its attributes and every variant."""
    assert principal.tenant is not None
    return Product.of(await get_product(principal.tenant.context, tenant_session, product_id_of(product_id)))


@patch(
    "/api/v1/products/{product_id:str}",
    operation_id="updateProduct",
    summary="Change a product's name, description, active flag or attributes.",
    opt=requires(Permission.CATALOG_WRITE),
    tags=["catalog"],
)
async def change_product(
    principal: NamedDependency[Principal],
    tenant_session: NamedDependency[AsyncSession],
    product_id: FromPath[str],
    data: JSONBody[ProductUpdate],
) -> Product:
    """Update the fields given; the others stay as they are."""
    assert principal.tenant is not None
    view = await update_product(
        principal.tenant.context, tenant_session, product_id_of(product_id), given(data)
    )
    return Product.of(view)


@post(
    "/api/v1/products/{product_id:str}/variants",
    operation_id="createVariant",
    summary="Add a variant (SKU) to a product.",
    opt=requires(Permission.CATALOG_WRITE),
    tags=["catalog"],
)
async def add_product_variant(
    request: Request[Any, Any, Any],
    principal: NamedDependency[Principal],
    tenant_session: NamedDependency[AsyncSession],
    product_id: FromPath[str],
    data: JSONBody[VariantCreate],
) -> Response[Variant]:
    """Create a SKU, its code unused in the store ignoring case; a product has 1000 at most.

    An `Idempotency-Key` makes a retry safe: it gets the first answer, not `sku_code_taken`.
    """
    assert principal.tenant is not None
    tenant = principal.tenant.context

    async def create() -> Variant:
        variant = await add_variant(tenant, tenant_session, product_id_of(product_id), given(data))
        return Variant.of(variant)

    return await idempotency.once(request, principal, tenant_session, data, create)


@get(
    "/api/v1/variants/{variant_id:str}",
    operation_id="getVariant",
    summary="Read one variant (SKU).",
    opt=requires(Permission.CATALOG_READ),
    tags=["catalog"],
)
async def read_variant(
    principal: NamedDependency[Principal],
    tenant_session: NamedDependency[AsyncSession],
    variant_id: FromPath[str],
) -> Variant:
    """The SKU's code, price, weight, barcode and attributes."""
    assert principal.tenant is not None
    return Variant.of(await get_variant(principal.tenant.context, tenant_session, variant_id_of(variant_id)))


@patch(
    "/api/v1/variants/{variant_id:str}",
    operation_id="updateVariant",
    summary="Change a variant's code, name, price, weight, barcode, active flag or attributes.",
    opt=requires(Permission.CATALOG_WRITE),
    tags=["catalog"],
)
async def change_variant(
    principal: NamedDependency[Principal],
    tenant_session: NamedDependency[AsyncSession],
    variant_id: FromPath[str],
    data: JSONBody[VariantUpdate],
) -> Variant:
    """Update the fields given; send `"barcode": null` to clear the barcode."""
    assert principal.tenant is not None
    variant = await update_variant(
        principal.tenant.context, tenant_session, variant_id_of(variant_id), given(data)
    )
    return Variant.of(variant)


@get(
    "/api/v1/skus",
    operation_id="searchSkus",
    summary="Find SKUs by code or barcode prefix, or by name.",
    opt=requires(Permission.CATALOG_READ),
    tags=["catalog"],
)
async def find_skus(
    principal: NamedDependency[Principal],
    tenant_session: NamedDependency[AsyncSession],
    # `query` is a name Litestar reserves for the whole query string, hence the alias.
    search: Annotated[str, QueryParameter(name="query")],
    limit: FromQuery[int] = DEFAULT_PAGE_SIZE,
    cursor: FromQuery[str | None] = None,
) -> SkuList:
    """Case-insensitive: codes and barcodes match from the start, names anywhere; newest first."""
    assert principal.tenant is not None
    page = await search_skus(
        principal.tenant.context, tenant_session, search, PageRequest.parse(limit, cursor)
    )
    return SkuList([Sku.of(view) for view in page.items], page.next_cursor)


ROUTES = [
    add_product,
    read_products,
    read_product,
    change_product,
    add_product_variant,
    read_variant,
    change_variant,
    find_skus,
]
