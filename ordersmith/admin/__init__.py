"""Vendor-staff operations: tenant directory, audits, support access, overrides."""
