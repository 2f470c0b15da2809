"""Once the stock workers catch up, nothing is promised twice and no open order is left waiting.

Hypothesis draws orders on little stock, some waiting for it (the backorder SKU); stock
lost (damage, correction) or added (receive) under them, counts, cancellations, quantity
edits and safety stock, and the workers catching up right after or later. Every step is
checked as in `test_inventory_ledger_property.py`. A `Settle` step lets the workers catch
up (the shortfall and backorder consumers handle every event so far); after it no location
holds more reserved than on hand, no SKU has a free unit while an open order waits for it,
and every open hold a loss placed waits for units of its SKU that the order still has
backordered. Each example gets fresh SKUs, locations and a customer in the test's store.
"""

from __future__ import annotations

from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from ordersmith.platform.database import Database
from ordersmith.platform.tenancy import TenantRecord
from tests.support.ledger_model import (
    BACKORDER_SKU,
    LOCATIONS,
    SKUS,
    Adjust,
    Operation,
    Place,
    Settle,
    cancel,
    count,
    edit_quantity,
    location,
    open_shop,
    place,
    safety,
    settle_step,
    sku,
)
from tests.support.ledger_runner import run_steps


# Orders on little stock, some waiting for it (the backorder SKU); stock lost or added
# under them, and the workers catching up right after or later.
def _alone(step: Operation) -> tuple[Operation, ...]:
    return (step,)


_wait_for_stock = st.builds(Place, st.tuples(st.tuples(st.just(BACKORDER_SKU), st.integers(2, 5)))).map(
    _alone
)
_lose_then_settle = st.builds(
    lambda kind, sku, location, units: (Adjust(sku, location, kind, -units), Settle()),
    st.sampled_from(["damage", "correction"]),
    sku,
    location,
    st.integers(1, 3),
)
_arrive_then_settle = st.builds(
    lambda sku, location, units: (Adjust(sku, location, "receive", units), Settle()),
    st.sampled_from([BACKORDER_SKU, BACKORDER_SKU, 0, 1]),
    location,
    st.integers(1, 3),
)
_WORKER_MIX: list[st.SearchStrategy[tuple[Operation, ...]]] = [
    *[place.map(_alone)] * 3,
    *[_wait_for_stock] * 2,
    *[_lose_then_settle] * 2,
    *[_arrive_then_settle] * 2,
    count.map(_alone),
    st.tuples(cancel, settle_step),
    edit_quantity.map(_alone),
    safety.map(_alone),
    settle_step.map(_alone),
]
worker_operations = st.sampled_from(_WORKER_MIX).flatmap(lambda strategy: strategy)


# 12 sequences (about 4 s each): with the ledger's, this test was a sixth of the suite's
# time, and CI has 15 minutes for everything. Each run draws new ones.
@settings(
    max_examples=12,
    deadline=None,
    database=None,
    suppress_health_check=[HealthCheck.function_scoped_fixture, HealthCheck.too_slow],
)
@given(
    chunks=st.lists(worker_operations, min_size=3, max_size=12),
    priorities=st.tuples(st.integers(0, 2), st.integers(0, 2)),
    initial=st.lists(st.integers(0, 3), min_size=SKUS * LOCATIONS, max_size=SKUS * LOCATIONS),
)
async def test_once_the_workers_catch_up_nothing_is_promised_twice_or_left_waiting(
    database: Database,
    tenant: TenantRecord,
    chunks: list[tuple[Operation, ...]],
    priorities: tuple[int, int],
    initial: list[int],
) -> None:
    shop = await open_shop(database, tenant.context, priorities, initial)
    await run_steps(database, shop, [step for chunk in chunks for step in chunk])
