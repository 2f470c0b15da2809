"""Process-wide payment configuration: the key that seals merchants' secrets, and Stripe's address.

Like the email sealer, it is set once by the process (`configure`) and otherwise read
from the environment: `SECRET_KEY` and `STRIPE_API_BASE` (default Stripe's own API;
tests point it at the local fake). Services read it through `current()`, so the
functions other contexts call (`refund_order`, `capture_for_shipment`) need no extra
arguments.
"""

from __future__ import annotations

import os
from dataclasses import dataclass, field

from ordersmith.platform.settings import load_settings

STRIPE_API_BASE = "https://api.stripe.com"


@dataclass(frozen=True)
class PaymentsConfig:
    secret_key: str = field(repr=False)
    stripe_api_base: str = STRIPE_API_BASE
    # Seconds a provider may take to answer before the attempt is recorded as failed.
    provider_timeout_seconds: float = 20.0


_config: PaymentsConfig | None = None


def configure(config: PaymentsConfig | None) -> None:
    """Use this configuration from now on; None reads the environment again."""
    global _config
    _config = config


def current() -> PaymentsConfig:
    """The configured payments configuration, or one read from the environment."""
    global _config
    if _config is None:
        _config = PaymentsConfig(
            secret_key=load_settings().secret_key,
            stripe_api_base=os.environ.get("STRIPE_API_BASE", STRIPE_API_BASE).rstrip("/"),
        )
    return _config
