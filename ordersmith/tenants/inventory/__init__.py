"""Inventory: locations, stock per SKU and location, the adjustment ledger, reservations."""
