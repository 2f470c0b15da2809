"""Process-wide webhook configuration: the key that seals endpoint secrets, and where senders may connect.

Set once by the process (`configure`, from the composition root) and otherwise read from
the environment, like the payments configuration: the sender runs in workers and jobs
that have no request to carry settings.
"""

from __future__ import annotations

from dataclasses import dataclass, field

from ordersmith.platform.identity.oidc import NetworkPolicy
from ordersmith.platform.settings import Settings, load_settings

PRODUCTION_NETWORK = NetworkPolicy(allow_private_addresses=False, require_https=True)


@dataclass(frozen=True)
class WebhooksConfig:
    secret_key: str = field(repr=False)
    # Production: https only, and never a loopback, private or otherwise non-public address.
    network: NetworkPolicy = field(default_factory=lambda: PRODUCTION_NETWORK)


def config_of(settings: Settings) -> WebhooksConfig:
    """The configuration `settings` call for: outside production, http and local receivers are fine."""
    return WebhooksConfig(
        secret_key=settings.secret_key,
        network=NetworkPolicy(
            allow_private_addresses=not settings.is_production, require_https=settings.is_production
        ),
    )


_config: WebhooksConfig | None = None


def configure(config: WebhooksConfig | None) -> None:
    """Use this configuration from now on; None reads the environment again."""
    global _config
    _config = config


def current() -> WebhooksConfig:
    """The configured webhook configuration, or one read from the environment."""
    global _config
    if _config is None:
        _config = config_of(load_settings())
    return _config
