"""Vendor-staff routes under /admin/api/v1 (being built)."""

from __future__ import annotations

from typing import Any

ROUTES: list[Any] = []
