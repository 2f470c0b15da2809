"""Every table of the `platform` schema, for migrations and the models-versus-migrations check."""

from __future__ import annotations

from ordersmith.platform import billing_models as _billing_models  # noqa: F401  (registers tables)
from ordersmith.platform.identity import models as _identity_models  # noqa: F401  (registers tables)
from ordersmith.platform.models import PlatformBase

PLATFORM_METADATA = PlatformBase.metadata
