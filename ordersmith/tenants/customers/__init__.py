"""Customers: contact details, addresses, tags, notes, and merging duplicates."""
