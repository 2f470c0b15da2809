"""Ordersmith: a multi-tenant order management system."""
