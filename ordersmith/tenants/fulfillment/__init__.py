"""Fulfillment: fulfillment orders per location, shipments with their packages and tracking.

Importing the package registers with the orders context what follows an order's
reservations (`release.sync_statuses`), so that a cancellation or an edit moves the
order's fulfillment orders wherever it runs, and registers the consumers that move
orders off stock an adjustment took away (`shortfall.py`) and fill backorders when
stock comes free (`backorders.py`): the tenant schema imports the package.
"""

from ordersmith.tenants.fulfillment import backorders as _backorders  # noqa: F401  (registers its consumer)
from ordersmith.tenants.fulfillment import release as _release  # noqa: F401  (registers the order hook)
from ordersmith.tenants.fulfillment import shortfall as _shortfall  # noqa: F401  (registers its consumer)
