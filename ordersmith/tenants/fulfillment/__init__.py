"""Fulfillment: fulfillment orders per location, shipments with their packages and tracking."""
