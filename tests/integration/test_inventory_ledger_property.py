"""The stock ledger's invariants hold after any sequence of stock, order, edit, cancel and worker steps.

Hypothesis draws a sequence of operations on one store: stock adjustments (receive,
damage, count, correction), safety stock, placements of random lines over three SKUs
(the third allows backorders) at two locations, whole and partial cancellations, and
edits (set a line's quantity, add a line, remove a line). Each runs in its own tenant
transaction, as a request would. After every step the test reads the store back and
asserts:

- per SKU and location: `on_hand` equals the sum of its adjustments (and the figure the
  test expects); `reserved` equals the sum of its live reservations; `reserved >= 0`;
- per line: ordered - cancelled = allocated + backordered + shipped, and `allocated`
  equals the line's live reservations;
- the step did exactly what it should. Asking for more of a SKU without backorders than
  is available (on_hand - reserved - safety_stock, summed over the locations) refuses
  the placement or edit whole, and nothing changes; otherwise exactly the new units are
  reserved per SKU (a backorder SKU reserves what is there and backorders the rest), and
  every stock row whose `reserved` grew satisfies reserved <= on_hand - safety_stock
  right after the step: what was promised was there to promise. A cancellation or a
  shrinking edit takes backordered units first, then releases exactly the allocated
  units it cancels, from the last-chosen location first.

`available` is only asserted at the moment of reserving: a damage or count recorded
after stock was promised may leave on_hand below reserved, which is the physical truth.
A `Settle` step lets the workers catch up (the shortfall and backorder consumers handle
every event so far); after it no location holds more reserved than on hand, and no SKU
has a free unit while an open order waits for it. Each example gets fresh SKUs,
locations and a customer in the test's store. The shop, its steps and the checks live in
`tests/support/ledger_model.py` and `tests/support/ledger_runner.py`; what the workers
must leave behind is pressed harder by `test_stock_workers_property.py`.
"""

from __future__ import annotations

from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from ordersmith.platform.database import Database
from ordersmith.platform.tenancy import TenantRecord
from tests.support.ledger_model import (
    LOCATIONS,
    SKUS,
    Adjust,
    EditAddLine,
    EditRemoveLine,
    Operation,
    cancel,
    count,
    edit_quantity,
    location,
    open_shop,
    pick,
    place,
    safety,
    settle_step,
    sku,
)
from tests.support.ledger_runner import run_steps

_receive = st.builds(Adjust, sku, location, st.just("receive"), st.integers(1, 6))
_edit_add_line = st.builds(EditAddLine, pick, sku, st.integers(1, 4))
_edit_remove_line = st.builds(EditRemoveLine, pick, pick)
_damage = st.builds(Adjust, sku, location, st.just("damage"), st.integers(-4, -1))
_correction = st.builds(Adjust, sku, location, st.just("correction"), st.sampled_from([-3, -2, -1, 1, 2, 3]))
# How often each kind of step is drawn: mostly placements, cancellations and edits.
_MIX: list[st.SearchStrategy[Operation]] = [
    *[place] * 4,
    *[cancel] * 2,
    *[edit_quantity] * 2,
    _edit_add_line,
    _edit_remove_line,
    *[_receive] * 2,
    _damage,
    count,
    _correction,
    safety,
    *[settle_step] * 2,
]
operations = st.sampled_from(_MIX).flatmap(lambda strategy: strategy)


# 15 sequences (about 2 s each), for the suite's time as the worker property says; each
# run draws new ones.
@settings(
    max_examples=15,
    deadline=None,
    database=None,
    suppress_health_check=[HealthCheck.function_scoped_fixture, HealthCheck.too_slow],
)
@given(
    steps=st.lists(operations, min_size=5, max_size=25),
    priorities=st.tuples(st.integers(0, 2), st.integers(0, 2)),
    initial=st.lists(st.integers(0, 8), min_size=SKUS * LOCATIONS, max_size=SKUS * LOCATIONS),
)
async def test_on_hand_and_reserved_always_match_the_ledger_and_the_reservations(
    database: Database,
    tenant: TenantRecord,
    steps: list[Operation],
    priorities: tuple[int, int],
    initial: list[int],
) -> None:
    shop = await open_shop(database, tenant.context, priorities, initial)
    await run_steps(database, shop, steps)
