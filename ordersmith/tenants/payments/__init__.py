"""Payments: an append-only ledger per payment, providers as plug-ins, provider webhooks.

Importing the package registers the ledger with the orders context, as the source of
an order's `payment_status` and of the amount it has paid, and the consumer that
releases what an order holds once a cancellation or an edit leaves nothing to ship.
"""

from ordersmith.tenants.payments import closing as _closing  # noqa: F401  (registers its consumer)
from ordersmith.tenants.payments import ledger as _ledger  # noqa: F401  (registers the order hooks)
