"""Stores for the order benchmarks: signed up and keyed through the product, stocked in bulk.

Each store is a real sign-up (`accounts.sign_up`: tenant schema, owner, session) with an
API key made by `create_api_key` for that owner, so requests authenticate exactly as an
integration's do. Its catalog, location, stock and customers are then written in bulk
with SQL as the schema owner (services would take minutes for 100 stores x 1,000 SKUs):
the same rows the services write, opening stock included in the adjustment ledger so
that `on_hand` equals the ledger's sum. The catalog mirrors the ceiling's seed: 1,000
SKUs priced `100 + (n * 7919) % 9900` minor units, one location, ample stock.
"""

from __future__ import annotations

import asyncio
import hashlib
import json
import random
import uuid
from collections.abc import Sequence
from dataclasses import dataclass

from ordersmith.platform.database import Database, TenantContext, run_script
from ordersmith.platform.identity.accounts import sign_up
from ordersmith.platform.identity.api_keys import create_api_key
from ordersmith.platform.identity.permissions import Permission
from ordersmith.platform.identity.principal import principal_from_access_token
from ordersmith.platform.identity.tokens import TokenSigner
from ordersmith.platform.plans import Limit
from ordersmith.tenants.schema import TENANT_SCHEMA
from tests.support.entitlements import set_limit

PASSWORD = "Bench-Orders-Password-7"
CURRENCY = "EUR"
# Far more than any run orders, as in the ceiling's seed.
AMPLE_STOCK = 1_000_000_000
# In every store, out of stock and in no generated order: the smoke test's 409.
EMPTY_SKU = "SKU-EMPTY"
LINES_PER_ORDER = 3
VARIANTS_PER_PRODUCT = 20
ADDRESS = {
    "recipient_name": "Ana Lima",
    "line1": "12 Rue des Lilas",
    "city": "Lyon",
    "postal_code": "69001",
    "country_code": "FR",
}
# Tables of a store that placement and listing touch, to vacuum and analyze before a run.
TENANT_TABLES = (
    "products",
    "variants",
    "locations",
    "stock_levels",
    "inventory_adjustments",
    "customers",
    "orders",
    "order_lines",
    "order_events",
    "order_holds",
    "reservations",
)


def md5_uuid(text: str) -> uuid.UUID:
    """The same id as PostgreSQL's md5(text)::uuid, used by the bulk inserts."""
    return uuid.UUID(hashlib.md5(text.encode()).hexdigest())


def sku_code(number: int) -> str:
    return f"SKU-{number:06d}"


def sku_price(number: int) -> int:
    """Catalog price in minor units of SKU `number`, the ceiling's formula."""
    return 100 + (number * 7919) % 9900


@dataclass(frozen=True)
class BenchStore:
    """One signed-up, stocked store and what a client needs to order from it."""

    slug: str
    tenant: TenantContext
    api_key: str
    skus: int
    customers: int

    def customer_id(self, number: int) -> uuid.UUID:
        return md5_uuid(f"{self.slug}/customer/{number}")

    def order_body(self, rng: random.Random) -> dict[str, object]:
        """A random order of 3 distinct SKUs, 1 to 3 units each, at catalog prices."""
        picks = rng.sample(range(1, self.skus + 1), LINES_PER_ORDER)
        return {
            "customer_id": str(self.customer_id(rng.randint(1, self.customers))),
            "lines": [{"sku": sku_code(number), "quantity": rng.randint(1, 3)} for number in picks],
            "shipping_address": ADDRESS,
            "channel": "web",
        }


def _quoted(schema_name: str) -> str:
    return '"' + schema_name.replace('"', '""') + '"'


def _literal(text: str) -> str:
    return "'" + text.replace("'", "''") + "'"


def _catalog_sql(schema_name: str, slug: str, skus: int, customers: int) -> str:
    """Products, variants, one location, stock with its ledger, customers: one round trip."""
    s, tag = _quoted(schema_name), _literal(slug)
    products = -(-skus // VARIANTS_PER_PRODUCT)
    location = f"md5({tag} || '/location/1')::uuid"
    return f"""
INSERT INTO {s}.products (id, name)
SELECT md5({tag} || '/product/' || p)::uuid, 'Bench product ' || p FROM generate_series(1, {products}) AS p;
INSERT INTO {s}.variants (id, product_id, position, sku_code, name, price_amount, currency)
SELECT md5({tag} || '/sku/' || n)::uuid,
       md5({tag} || '/product/' || ((n - 1) / {VARIANTS_PER_PRODUCT} + 1))::uuid,
       (n - 1) % {VARIANTS_PER_PRODUCT} + 1, 'SKU-' || lpad(n::text, 6, '0'), 'Product ' || n,
       100 + (n * 7919) % 9900, '{CURRENCY}'
  FROM generate_series(1, {skus}) AS n;
INSERT INTO {s}.variants (id, product_id, position, sku_code, name, price_amount, currency)
VALUES (md5({tag} || '/sku/empty')::uuid, md5({tag} || '/product/1')::uuid, 0, '{EMPTY_SKU}',
        'Never in stock', 100, '{CURRENCY}');
INSERT INTO {s}.locations (id, code, name, kind, priority)
VALUES ({location}, 'WH-1', 'Main warehouse', 'warehouse', 100);
INSERT INTO {s}.stock_levels (variant_id, location_id, on_hand)
SELECT id, {location}, CASE WHEN sku_code = '{EMPTY_SKU}' THEN 0 ELSE {AMPLE_STOCK} END FROM {s}.variants;
INSERT INTO {s}.inventory_adjustments
       (id, variant_id, location_id, kind, quantity, on_hand_after, reason, actor_type)
SELECT gen_random_uuid(), variant_id, location_id, 'receive', on_hand, on_hand,
       'bench opening stock', 'system'
  FROM {s}.stock_levels WHERE on_hand > 0;
INSERT INTO {s}.customers (id, email, full_name)
SELECT md5({tag} || '/customer/' || n)::uuid, 'customer' || n || '@example.com', 'Customer ' || n
  FROM generate_series(1, {customers}) AS n;
"""


async def open_store(
    database: Database,
    signer: TokenSigner,
    slug: str,
    scopes: Sequence[Permission],
    *,
    skus: int,
    customers: int,
) -> BenchStore:
    """Sign a store up, give it an API key and stock it; the key authenticates the bench."""
    session = await sign_up(
        database,
        TENANT_SCHEMA,
        signer,
        company_name=f"Bench store {slug}",
        email=f"owner@{slug}.bench.example.com",
        password=PASSWORD,
        slug=slug,
        public_url="http://127.0.0.1",
        client_address=None,
        signups_per_hour=1_000_000,  # one bench host signs up every store
    )
    owner = await principal_from_access_token(
        database, signer, session.access_token, via_cookie=False, client_address=None
    )
    created = await create_api_key(database, owner, name="order bench", scopes=[str(s) for s in scopes])
    tenant = session.tenant.context
    # An integration that places hundreds of orders a second has its rate limit lifted by us.
    await set_limit(database, tenant.tenant_id, Limit.API_REQUESTS_PER_MINUTE, None)
    async with database.owner_connection() as connection:
        await run_script(connection, _catalog_sql(tenant.schema_name, slug, skus, customers))
    return BenchStore(slug, tenant, created.key, skus, customers)


async def open_stores(
    database: Database,
    signer: TokenSigner,
    slugs: Sequence[str],
    scopes: Sequence[Permission],
    *,
    skus: int,
    customers: int,
    batch: int = 8,
) -> list[BenchStore]:
    """Open stores a batch at a time (each sign-up hashes a password: CPU-bound)."""
    stores: list[BenchStore] = []
    for start in range(0, len(slugs), batch):
        stores.extend(
            await asyncio.gather(
                *(
                    open_store(database, signer, slug, scopes, skus=skus, customers=customers)
                    for slug in slugs[start : start + batch]
                )
            )
        )
    return stores


def _orders_sql(schema_name: str, slug: str, count: int, skus: int, customers: int, seed: float) -> str:
    """`count` orders over the past year, with lines and the holds of orders on hold.

    Orders grow more frequent towards today; recent ones are mostly confirmed, older
    ones completed, some cancelled or archived. Channels, customers (a few frequent
    buyers, many occasional) and SKUs (a few best-sellers) are skewed like a real shop's.
    """
    s, tag = _quoted(schema_name), _literal(slug)
    address = _literal(json.dumps(ADDRESS))
    return f"""
SELECT setseed({seed});
CREATE TEMP TABLE bench_orders ON COMMIT DROP AS
SELECT n, created_at, customer_number, line_count, r_tags, r_payment,
       CASE WHEN created_at > now() - interval '7 days' THEN
                CASE WHEN r_status < 0.65 THEN 'confirmed' WHEN r_status < 0.72 THEN 'placed'
                     WHEN r_status < 0.93 THEN 'completed' ELSE 'cancelled' END
            ELSE
                CASE WHEN r_status < 0.02 THEN 'confirmed' WHEN r_status < 0.025 THEN 'placed'
                     WHEN r_status < 0.86 THEN 'completed' WHEN r_status < 0.93 THEN 'cancelled'
                     ELSE 'archived' END
       END AS status,
       CASE WHEN r_channel < 0.55 THEN 'web' WHEN r_channel < 0.75 THEN 'pos' WHEN r_channel < 0.87 THEN 'api'
            WHEN r_channel < 0.96 THEN 'marketplace' ELSE 'phone' END AS channel
  FROM (SELECT n,
               now() - make_interval(secs => 365 * 86400 * power(random(), 1.6)) AS created_at,
               1 + floor({customers} * power(random(), 2))::int AS customer_number,
               1 + floor(random() * 3)::int AS line_count,
               random() AS r_status, random() AS r_channel, random() AS r_payment, random() AS r_tags
          FROM generate_series(1, {count}) AS n) AS drawn;
CREATE TEMP TABLE bench_lines ON COMMIT DROP AS
SELECT o.n, line_number, 1 + floor({skus} * power(random(), 2))::int AS sku_number,
       1 + floor(random() * 3)::int AS quantity
  FROM bench_orders AS o, generate_series(1, o.line_count) AS line_number;
INSERT INTO {s}.orders
       (id, status, payment_status, fulfillment_status, customer_id, currency, subtotal_amount, total_amount,
        shipping_address, channel, tags, open_hold_count, placed_at, confirmed_at, completed_at,
        touches_at_completion, cancelled_at, archived_at, cancel_reason, created_at, updated_at)
SELECT md5({tag} || '/order/' || o.n)::uuid, o.status,
       CASE WHEN o.status IN ('completed', 'archived') THEN 'paid'
            WHEN o.status = 'cancelled' THEN 'voided'
            WHEN o.status = 'confirmed' AND o.r_payment < 0.7 THEN 'authorized'
            WHEN o.status = 'confirmed' THEN 'paid' ELSE 'unpaid' END,
       CASE WHEN o.status IN ('completed', 'archived') THEN 'fulfilled'
            WHEN o.status = 'confirmed' AND o.r_payment > 0.95 THEN 'partially_fulfilled'
            ELSE 'unfulfilled' END,
       md5({tag} || '/customer/' || o.customer_number)::uuid, '{CURRENCY}', totals.amount, totals.amount,
       {address}::jsonb, o.channel,
       CASE WHEN o.r_tags < 0.05 THEN ARRAY['vip'] WHEN o.r_tags < 0.08 THEN ARRAY['gift']
            ELSE '{{}}' END::varchar[],
       (o.status = 'placed')::int, o.created_at,
       CASE WHEN o.status IN ('confirmed', 'completed', 'archived')
            THEN o.created_at + interval '1 minute' END,
       CASE WHEN o.status IN ('completed', 'archived') THEN o.created_at + interval '3 days' END,
       CASE WHEN o.status IN ('completed', 'archived') THEN 0 END,
       CASE WHEN o.status = 'cancelled' THEN o.created_at + interval '2 hours' END,
       CASE WHEN o.status = 'archived' THEN o.created_at + interval '30 days' END,
       CASE WHEN o.status = 'cancelled' THEN 'customer changed their mind' END,
       o.created_at, o.created_at
  FROM bench_orders AS o
  JOIN (SELECT n, sum(quantity * (100 + (sku_number * 7919) % 9900)) AS amount
          FROM bench_lines GROUP BY n) AS totals USING (n)
 ORDER BY o.created_at;
INSERT INTO {s}.order_lines
       (id, order_id, line_number, variant_id, sku_code, name, unit_price_amount, quantity_ordered,
        quantity_cancelled, quantity_allocated, quantity_shipped, created_at, updated_at)
SELECT md5({tag} || '/line/' || l.n || '/' || l.line_number)::uuid, md5({tag} || '/order/' || l.n)::uuid,
       l.line_number, md5({tag} || '/sku/' || l.sku_number)::uuid, 'SKU-' || lpad(l.sku_number::text, 6, '0'),
       'Product ' || l.sku_number, 100 + (l.sku_number * 7919) % 9900, l.quantity,
       CASE WHEN o.status = 'cancelled' THEN l.quantity ELSE 0 END,
       CASE WHEN o.status IN ('placed', 'confirmed') THEN l.quantity ELSE 0 END,
       CASE WHEN o.status IN ('completed', 'archived') THEN l.quantity ELSE 0 END,
       o.created_at, o.created_at
  FROM bench_lines AS l JOIN bench_orders AS o USING (n);
INSERT INTO {s}.order_holds (id, order_id, type, reason, release_role, placed_by_type, created_at)
SELECT md5({tag} || '/hold/' || n)::uuid, md5({tag} || '/order/' || n)::uuid, 'fraud_review',
       'high-value first order', 'manager', 'system', created_at
  FROM bench_orders WHERE status = 'placed';
"""


async def fill_orders(database: Database, store: BenchStore, count: int, seed: float = 0.42) -> None:
    """Bulk-insert `count` orders into one store (no timeline entries: lists never read them)."""
    script = _orders_sql(store.tenant.schema_name, store.slug, count, store.skus, store.customers, seed)
    async with database.owner_connection() as connection:
        await run_script(connection, script)


def tenant_tables(stores: Sequence[BenchStore]) -> list[str]:
    """Qualified names of the stores' tables, for VACUUM (ANALYZE)."""
    return [f"{_quoted(store.tenant.schema_name)}.{table}" for store in stores for table in TENANT_TABLES]
