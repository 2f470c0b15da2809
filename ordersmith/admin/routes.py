"""Vendor-staff routes under /admin/api/v1, mounted by the composition root."""

from __future__ import annotations

from ordersmith.admin import staff_auth, support

ROUTES = [*staff_auth.ROUTES, *support.ROUTES]
