"""The local demo store's sample data: a small catalog, two locations with stock, customers and orders.

`ordersmith run` stocks the demo store once, when it creates it, so that a first look at
the API finds something to list, filter, edit and ship. Everything goes through the same
services the API uses, in one transaction: the store is stocked whole or not at all.
"""

from __future__ import annotations

from dataclasses import dataclass

from ordersmith.platform.database import Database, TenantContext
from ordersmith.platform.identity.audit import Actor
from ordersmith.tenants.catalog.service import create_product
from ordersmith.tenants.customers.service import create_customer
from ordersmith.tenants.inventory.service import adjust_stock, create_location
from ordersmith.tenants.orders.placement import place_order
from ordersmith.tenants.orders.rules import LineRequest, OrderRequest

# (product name, [(sku code, variant name, price in cents)]); an order line shows the variant's name.
_PRODUCTS = [
    (
        "Linen shirt",
        [
            ("SHIRT-LINEN-S", "Linen shirt, small", 5900),
            ("SHIRT-LINEN-M", "Linen shirt, medium", 5900),
            ("SHIRT-LINEN-L", "Linen shirt, large", 5900),
        ],
    ),
    ("Canvas tote", [("TOTE-CANVAS", "Canvas tote, natural", 2400)]),
    (
        "Ceramic mug",
        [("MUG-CERAMIC-BLUE", "Ceramic mug, blue", 1600), ("MUG-CERAMIC-SAND", "Ceramic mug, sand", 1600)],
    ),
]
# (location code, name, kind, priority, [(sku code, units received)])
_LOCATIONS = [
    (
        "WH-LYON",
        "Lyon warehouse",
        "warehouse",
        10,
        [("SHIRT-LINEN-S", 12), ("SHIRT-LINEN-M", 20), ("TOTE-CANVAS", 40), ("MUG-CERAMIC-BLUE", 6)],
    ),
    (
        "SHOP-PARIS",
        "Paris shop",
        "store",
        20,
        [("SHIRT-LINEN-M", 5), ("SHIRT-LINEN-L", 8), ("MUG-CERAMIC-BLUE", 4), ("MUG-CERAMIC-SAND", 10)],
    ),
]
_CUSTOMERS = [
    (
        "Ana Lima",
        "ana.lima@example.com",
        {
            "recipient_name": "Ana Lima",
            "line1": "12 Rue des Lilas",
            "city": "Lyon",
            "postal_code": "69001",
            "country_code": "FR",
        },
    ),
    (
        "Jonas Berg",
        "jonas.berg@example.com",
        {
            "recipient_name": "Jonas Berg",
            "line1": "4 Kastanienallee",
            "city": "Berlin",
            "postal_code": "10435",
            "country_code": "DE",
        },
    ),
]
# (customer index, channel, [(sku code, quantity)]). Web orders come from a storefront, untouched
# by a person; the phone order was typed in by the owner, so it counts as a touch.
_ORDERS = [
    (0, "web", [("SHIRT-LINEN-M", 2), ("TOTE-CANVAS", 1)]),
    (1, "web", [("MUG-CERAMIC-BLUE", 8)]),
    (0, "phone", [("SHIRT-LINEN-L", 1), ("MUG-CERAMIC-SAND", 2)]),
]

STOREFRONT = Actor("system", "demo-storefront")


@dataclass(frozen=True)
class DemoStock:
    """What the demo store was stocked with, for the start-up message."""

    products: int
    locations: int
    customers: int
    orders: int


async def stock_demo_store(database: Database, tenant: TenantContext, *, actor: Actor) -> DemoStock:
    """Give a new store a sample catalog, stock at two locations, two customers and three orders."""
    async with database.tenant_session(tenant) as session:
        for name, variants in _PRODUCTS:
            await create_product(
                tenant,
                session,
                {"name": name},
                [
                    {"sku_code": code, "name": variant, "price_amount": price, "weight_grams": 400}
                    for code, variant, price in variants
                ],
            )
        for code, location_name, kind, priority, receipts in _LOCATIONS:
            location = await create_location(
                tenant, session, {"code": code, "name": location_name, "kind": kind, "priority": priority}
            )
            for sku, quantity in receipts:
                await adjust_stock(
                    tenant,
                    session,
                    sku=sku,
                    location_id=location.id,
                    kind="receive",
                    quantity=quantity,
                    reason="demo store: opening stock",
                    actor=actor,
                )
        customers = [
            await create_customer(
                tenant, session, {"full_name": full_name, "email": email}, addresses=[address], author=actor
            )
            for full_name, email, address in _CUSTOMERS
        ]
        for customer_index, channel, lines in _ORDERS:
            await place_order(
                tenant,
                session,
                OrderRequest(
                    customer_id=customers[customer_index].customer.id,
                    lines=[LineRequest(sku, quantity) for sku, quantity in lines],
                    shipping_address=_CUSTOMERS[customer_index][2],
                    channel=channel,
                ),
                actor=actor if channel == "phone" else STOREFRONT,
            )
    return DemoStock(len(_PRODUCTS), len(_LOCATIONS), len(_CUSTOMERS), len(_ORDERS))
