"""Typed settings, one object per concern, read from the environment once.

Every value has a safe development default. In production (`ORDERSMITH_ENV=production`)
the app refuses to start with a default secret or without an explicit database.
"""

from __future__ import annotations

import ipaddress
import os
from collections.abc import Mapping
from dataclasses import dataclass
from pathlib import Path

from sqlalchemy.engine import make_url
from sqlalchemy.exc import ArgumentError

DEVELOPMENT_SECRET = "development-secret-do-not-use-in-production"
DEVELOPMENT_PUBLIC_URL = "http://127.0.0.1:8000"

Network = ipaddress.IPv4Network | ipaddress.IPv6Network


class SettingsError(Exception):
    """A setting is missing or malformed; the message says which and how to fix it."""


def _integer(environ: Mapping[str, str], name: str, default: int) -> int:
    raw = environ.get(name)
    if raw is None or raw == "":
        return default
    try:
        return int(raw)
    except ValueError:
        raise SettingsError(f"{name} must be a whole number, got {raw!r}") from None


def _boolean(environ: Mapping[str, str], name: str, default: bool) -> bool:
    raw = environ.get(name, "").lower()
    if raw == "":
        return default
    if raw not in ("true", "false", "1", "0"):
        raise SettingsError(f"{name} must be true or false, got {raw!r}")
    return raw in ("true", "1")


def _networks(environ: Mapping[str, str], name: str) -> tuple[Network, ...]:
    """A comma-separated list of networks (`10.0.0.0/8`) or single addresses."""
    networks = []
    for item in environ.get(name, "").split(","):
        if not item.strip():
            continue
        try:
            networks.append(ipaddress.ip_network(item.strip()))
        except ValueError:
            raise SettingsError(
                f"{name} must list networks separated by commas, such as 10.0.0.0/8,fd00::/8; "
                f"{item.strip()!r} is not one (host bits set, or not an address)"
            ) from None
    return tuple(networks)


def _database_url(environ: Mapping[str, str], name: str) -> str | None:
    """A PostgreSQL URL, or None when unset; refused in one line here rather than deep in a driver."""
    raw = environ.get(name) or None
    if raw is None:
        return None
    example = "postgresql://user:password@host:5432/ordersmith"
    try:
        backend = make_url(raw).get_backend_name()
    except ArgumentError:
        # The value is not echoed: it may hold a password.
        raise SettingsError(f"{name} is not a URL; set it like {example}") from None
    if backend != "postgresql":
        raise SettingsError(f"{name} must be a PostgreSQL URL, such as {example}; got a {backend!r} URL")
    return raw


@dataclass(frozen=True)
class DatabaseSettings:
    """Where PostgreSQL is and how the app uses it."""

    # None means: start the embedded PostgreSQL under `data_dir`.
    url: str | None
    # Migrations and provisioning connect here. When unset, `url` is used for them and the
    # runtime logs in as `<prefix>_app` without a password (trusted local servers only).
    owner_url: str | None
    # Roles the app creates in PostgreSQL: <prefix>_owner owns every schema, <prefix>_app
    # is the runtime role that may only switch into tenant roles.
    role_prefix: str = "ordersmith"
    pool_size: int = 10
    max_overflow: int = 10
    # Each connection caches the catalog entries of every schema it touched; recycling
    # bounds that memory when there are thousands of tenant schemas.
    pool_recycle_seconds: int = 1800
    # How long a request (or a migration) waits for a free pooled connection before failing.
    pool_timeout_seconds: int = 30
    statement_timeout_ms: int = 30_000
    # No request waits longer than this for a row lock (a stock level, say): it fails
    # with a clear "busy, retry" instead of piling up behind a stuck transaction.
    lock_timeout_ms: int = 5_000
    # A stuck tenant must not stall a migration run over all tenants.
    migration_lock_timeout_ms: int = 5_000
    # Owner work (migrations, provisioning) is not held to the requests' statement timeout:
    # an index built on a big store may take minutes. 0: no limit.
    migration_statement_timeout_ms: int = 0
    migration_concurrency: int = 4

    @property
    def owner_role(self) -> str:
        return f"{self.role_prefix}_owner"

    @property
    def app_role(self) -> str:
        return f"{self.role_prefix}_app"

    @property
    def tenant_group_role(self) -> str:
        """Every tenant role is a member: it carries the few platform privileges tenants share."""
        return f"{self.role_prefix}_tenant"


@dataclass(frozen=True)
class BrokerSettings:
    """Where background messages go: RabbitMQ, Redis, or in-process when unset."""

    url: str | None
    # Queue names are prefixed so that deployments (or test runs) sharing a broker stay apart.
    namespace: str = "ordersmith"
    # Worker threads of the in-process broker inside `ordersmith run`.
    in_process_threads: int = 2


@dataclass(frozen=True)
class BillingSettings:
    """Stripe for the vendor's own billing; without a key, the offline ledger bills locally."""

    # Unset: no call leaves the process; usage is rated and invoiced locally.
    stripe_api_key: str | None = None
    # Where the Stripe API is: a proxy, or a local fake in tests. None: Stripe's own.
    stripe_api_base: str | None = None
    # Signs the webhooks Stripe sends to /api/v1/billing/stripe/webhook (`whsec_…`).
    stripe_webhook_secret: str | None = None
    # The Billing Meter's event name; usage is sent pre-aggregated per hour under it.
    stripe_meter_event_name: str = "ordersmith_orders"
    # Where Stripe's billing portal sends the merchant back to.
    portal_return_url: str | None = None

    @property
    def is_online(self) -> bool:
        """True when usage and plans go to Stripe, False for the offline ledger."""
        return self.stripe_api_key is not None


@dataclass(frozen=True)
class Settings:
    """Everything the process reads from its environment."""

    environment: str
    secret_key: str
    data_dir: Path
    database: DatabaseSettings
    broker: BrokerSettings
    log_level: str = "INFO"
    # Where people reach the app; links in emails start here.
    public_url: str = DEVELOPMENT_PUBLIC_URL
    # The load balancers and reverse proxies in front of the app: only a request that comes
    # from one of them may name its client in X-Forwarded-For. Empty: the header is ignored.
    trusted_proxies: tuple[Network, ...] = ()
    # Sign-ups one client address may make per hour: slows down probing which emails have
    # accounts, and mass sign-ups. Tests and benches, all on one address, raise it.
    signup_limit_per_hour: int = 10
    # Unset: emails land in the development mailbox (development and test only).
    smtp_url: str | None = None
    mail_from: str = "Ordersmith <no-reply@localhost>"
    # Whether SSO may reach identity providers on loopback and private networks (an
    # on-premises IdP); a tenant admin's issuer could otherwise reach internal services.
    sso_allow_private_addresses: bool = False
    billing: BillingSettings = BillingSettings()

    @property
    def is_production(self) -> bool:
        return self.environment == "production"

    @property
    def is_development(self) -> bool:
        return self.environment == "development"

    def check(self) -> None:
        """Refuse to run in production with development defaults."""
        if not self.is_production:
            return
        if self.secret_key == DEVELOPMENT_SECRET:
            raise SettingsError(
                "SECRET_KEY is the development default; set a long random value in production"
            )
        if len(self.secret_key) < 32:
            raise SettingsError("SECRET_KEY must be at least 32 characters in production")
        if self.database.url is None:
            raise SettingsError(
                "DATABASE_URL must be set in production (the embedded PostgreSQL is for development)"
            )
        if self.database.owner_url is None:
            raise SettingsError(
                "DATABASE_OWNER_URL must be set in production: DATABASE_URL logs in as the runtime role, "
                "DATABASE_OWNER_URL as the role that owns the schemas"
            )
        if self.broker.url is None:
            raise SettingsError("BROKER_URL must be set in production (amqp://… or redis://…)")
        if self.smtp_url is None:
            raise SettingsError("SMTP_URL must be set in production (smtp://user:password@host:587)")
        if self.public_url == DEVELOPMENT_PUBLIC_URL:
            raise SettingsError(
                "PUBLIC_URL must be set in production: links in emails and the SSO callback start with it "
                "(https://orders.example.com)"
            )
        if not self.public_url.startswith("https://"):
            raise SettingsError(
                f"PUBLIC_URL must start with https:// in production (sessions use secure cookies), "
                f"got {self.public_url!r}"
            )
        if self.billing.stripe_api_key is not None and self.billing.stripe_webhook_secret is None:
            raise SettingsError(
                "STRIPE_WEBHOOK_SECRET must be set in production when STRIPE_API_KEY is: without it no "
                "Stripe webhook can be verified (copy the endpoint's signing secret, whsec_…)"
            )


def load_settings(environ: Mapping[str, str] | None = None) -> Settings:
    """Read settings from the environment (or the mapping given, for tests)."""
    env = os.environ if environ is None else environ
    environment = env.get("ORDERSMITH_ENV", "development")
    if environment not in ("development", "test", "production"):
        raise SettingsError(f"ORDERSMITH_ENV must be development, test or production, got {environment!r}")
    broker_url = env.get("BROKER_URL") or None
    if broker_url is not None and not broker_url.startswith(("amqp://", "amqps://", "redis://", "rediss://")):
        raise SettingsError(
            f"BROKER_URL must start with amqp://, amqps://, redis:// or rediss://, got {broker_url!r}"
        )
    database_url = _database_url(env, "DATABASE_URL")
    settings = Settings(
        environment=environment,
        secret_key=env.get("SECRET_KEY", DEVELOPMENT_SECRET),
        data_dir=Path(env.get("ORDERSMITH_DATA_DIR", ".ordersmith")).resolve(),
        database=DatabaseSettings(
            url=database_url,
            owner_url=_database_url(env, "DATABASE_OWNER_URL"),
            role_prefix=env.get("DATABASE_ROLE_PREFIX", "ordersmith"),
            pool_size=_integer(env, "DATABASE_POOL_SIZE", 10),
            max_overflow=_integer(env, "DATABASE_MAX_OVERFLOW", 10),
            pool_recycle_seconds=_integer(env, "DATABASE_POOL_RECYCLE_SECONDS", 1800),
            pool_timeout_seconds=_integer(env, "DATABASE_POOL_TIMEOUT_SECONDS", 30),
            statement_timeout_ms=_integer(env, "DATABASE_STATEMENT_TIMEOUT_MS", 30_000),
            lock_timeout_ms=_integer(env, "DATABASE_LOCK_TIMEOUT_MS", 5_000),
            migration_lock_timeout_ms=_integer(env, "MIGRATION_LOCK_TIMEOUT_MS", 5_000),
            migration_statement_timeout_ms=_integer(env, "MIGRATION_STATEMENT_TIMEOUT_MS", 0),
            migration_concurrency=_integer(env, "MIGRATION_CONCURRENCY", 4),
        ),
        broker=BrokerSettings(
            url=broker_url,
            namespace=env.get("BROKER_NAMESPACE", "ordersmith"),
            in_process_threads=_integer(env, "WORKER_THREADS", 2),
        ),
        log_level=env.get("LOG_LEVEL", "INFO").upper(),
        public_url=env.get("PUBLIC_URL", DEVELOPMENT_PUBLIC_URL).rstrip("/"),
        trusted_proxies=_networks(env, "TRUSTED_PROXIES"),
        signup_limit_per_hour=_integer(env, "SIGNUP_LIMIT_PER_HOUR", 10),
        smtp_url=env.get("SMTP_URL") or None,
        mail_from=env.get("MAIL_FROM", "Ordersmith <no-reply@localhost>"),
        # Development and tests run their identity provider on 127.0.0.1.
        sso_allow_private_addresses=_boolean(
            env, "SSO_ALLOW_PRIVATE_ADDRESSES", default=environment != "production"
        ),
        billing=BillingSettings(
            stripe_api_key=env.get("STRIPE_API_KEY") or None,
            stripe_api_base=(env.get("STRIPE_API_BASE") or "").rstrip("/") or None,
            stripe_webhook_secret=env.get("STRIPE_WEBHOOK_SECRET") or None,
            stripe_meter_event_name=env.get("STRIPE_METER_EVENT_NAME") or "ordersmith_orders",
            portal_return_url=env.get("BILLING_PORTAL_RETURN_URL") or None,
        ),
    )
    if not settings.database.role_prefix.replace("_", "").isalnum():
        raise SettingsError("DATABASE_ROLE_PREFIX may hold only letters, digits and underscores")
    if settings.signup_limit_per_hour < 1:
        raise SettingsError("SIGNUP_LIMIT_PER_HOUR must be at least 1")
    settings.check()
    return settings
