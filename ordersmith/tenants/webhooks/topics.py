"""The events a webhook endpoint may subscribe to: the documented subset of what the outbox carries.

Catalog, inventory and settings events stay internal (noisy, and their payloads may
change); what a merchant's systems react to is the order cycle and its customers.
"""

from __future__ import annotations

# Subscribing to "*" means every topic below, including ones added later.
ALL_TOPICS = "*"

WEBHOOK_TOPICS: tuple[str, ...] = (
    "order.placed",
    "order.confirmed",
    "order.edited",
    "order.hold_placed",
    "order.hold_released",
    "order.lines_cancelled",
    "order.cancelled",
    "order.completed",
    "order.archived",
    "order.stock_lost",
    "order.backorder_filled",
    "payment.authorized",
    "payment.captured",
    "payment.voided",
    "payment.refunded",
    "payment.charged_back",
    "payment.chargeback_reversed",
    "payment.dispute_lost",
    "payment.action_required",
    "payment.authorize_failed",
    "payment.capture_failed",
    "payment.void_failed",
    "payment.refund_failed",
    "fulfillment_order.created",
    "fulfillment_order.line_rejected",
    "shipment.created",
    "shipment.delivered",
    "return.requested",
    "return.approved",
    "return.declined",
    "return.in_transit",
    "return.received",
    "return.inspected",
    "return.closed",
    "return.refunded",
    "return.store_credited",
    "return.exchanged",
    "store_credit.granted",
    "store_credit.spent",
    "customer.created",
    "customer.updated",
    "customer.merged",
)


def wants(endpoint_topics: list[str], topic: str) -> bool:
    """Whether an endpoint subscribed to `endpoint_topics` receives `topic`."""
    return topic in endpoint_topics or ALL_TOPICS in endpoint_topics
