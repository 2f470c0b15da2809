"""Merchant webhooks: endpoints a store registers, and the signed deliveries of its events to them."""
