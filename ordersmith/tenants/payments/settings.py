"""A store's payment settings: providers enabled, when to capture, the merchant's Stripe secrets.

Secrets go in sealed (see `credentials.py`) and never come out through the API: reading
the settings says whether a secret is stored and which key it is (`sk_test_…4242`).
"""

from __future__ import annotations

import datetime as dt
from dataclasses import dataclass
from typing import Any

from sqlalchemy import select
from sqlalchemy.dialects.postgresql import insert as pg_insert
from sqlalchemy.ext.asyncio import AsyncSession

from ordersmith.platform.database import TenantContext
from ordersmith.platform.errors import FieldError, ValidationFailedError
from ordersmith.platform.events import record_event
from ordersmith.platform.identity.audit import Actor
from ordersmith.tenants.payments import config, credentials
from ordersmith.tenants.payments.errors import ProviderNotEnabledError
from ordersmith.tenants.payments.models import CAPTURE_POLICIES, PROVIDERS, PaymentSettings
from ordersmith.tenants.payments.providers.base import PaymentProvider
from ordersmith.tenants.payments.providers.manual import ManualProvider
from ordersmith.tenants.payments.providers.stripe_provider import StripeProvider

PAYMENT_SETTINGS_CHANGED = "payment.settings_changed"
STRIPE_SECRET_KEY = "stripe_secret_key"
STRIPE_WEBHOOK_SECRET = "stripe_webhook_secret"
DEFAULT_PROVIDERS = ("manual",)
DEFAULT_CAPTURE_POLICY = "at_placement"


@dataclass(frozen=True)
class StoreSettings:
    """The settings as anyone may read them: no secret in them."""

    enabled_providers: list[str]
    capture_policy: str
    has_stripe_secret_key: bool
    stripe_secret_key_hint: str | None
    has_stripe_webhook_secret: bool
    updated_at: dt.datetime | None


@dataclass(frozen=True)
class SettingsUpdate:
    """Fields left None keep their value."""

    enabled_providers: list[str] | None = None
    capture_policy: str | None = None
    stripe_secret_key: str | None = None
    stripe_webhook_secret: str | None = None


async def _row(session: AsyncSession) -> PaymentSettings | None:
    query = select(PaymentSettings).execution_options(populate_existing=True)
    return (await session.scalars(query)).one_or_none()


def _view(row: PaymentSettings | None) -> StoreSettings:
    if row is None:
        return StoreSettings(list(DEFAULT_PROVIDERS), DEFAULT_CAPTURE_POLICY, False, None, False, None)
    return StoreSettings(
        list(row.enabled_providers),
        row.capture_policy,
        row.stripe_secret_key_sealed is not None,
        row.stripe_secret_key_hint,
        row.stripe_webhook_secret_sealed is not None,
        row.updated_at,
    )


async def get_payment_settings(session: AsyncSession) -> StoreSettings:
    """The store's payment settings (defaults until someone changes them)."""
    return _view(await _row(session))


async def capture_policy_of(session: AsyncSession) -> str:
    """When the store captures authorized funds: at_placement or at_shipment."""
    return (await get_payment_settings(session)).capture_policy


def _check(update: SettingsUpdate, current: StoreSettings) -> list[FieldError]:
    errors: list[FieldError] = []
    providers = update.enabled_providers
    if providers is not None:
        unknown = sorted(set(providers) - set(PROVIDERS))
        if unknown:
            errors.append(
                FieldError("enabled_providers", f"unknown: {', '.join(unknown)}; use {', '.join(PROVIDERS)}")
            )
        if not providers:
            errors.append(FieldError("enabled_providers", "enable at least one provider"))
    if update.capture_policy is not None and update.capture_policy not in CAPTURE_POLICIES:
        errors.append(FieldError("capture_policy", f"must be one of {', '.join(CAPTURE_POLICIES)}"))
    key = update.stripe_secret_key
    if key is not None and (not key.startswith(("sk_", "rk_")) or len(key) > 255 or not key.isprintable()):
        errors.append(
            FieldError("stripe_secret_key", "must be a Stripe secret or restricted key (sk_… or rk_…)")
        )
    secret = update.stripe_webhook_secret
    if secret is not None and (not secret.startswith("whsec_") or len(secret) > 255):
        errors.append(FieldError("stripe_webhook_secret", "must be a Stripe signing secret (whsec_…)"))
    enabled = providers if providers is not None else current.enabled_providers
    if "stripe" in enabled and key is None and not current.has_stripe_secret_key:
        errors.append(FieldError("stripe_secret_key", "enabling stripe needs the store's Stripe secret key"))
    return errors


async def update_payment_settings(
    tenant: TenantContext, session: AsyncSession, update: SettingsUpdate, *, actor: Actor
) -> StoreSettings:
    """Change the store's payment settings; secrets are sealed before they are stored."""
    row = await _row(session)
    current = _view(row)
    errors = _check(update, current)
    if errors:
        raise ValidationFailedError("the payment settings are invalid; see errors", errors=errors)
    secret_key = config.current().secret_key
    values: dict[str, Any] = {"updated_at": dt.datetime.now(dt.UTC)}
    changed: list[str] = []
    if update.enabled_providers is not None:
        values["enabled_providers"] = sorted(set(update.enabled_providers))
        changed.append("enabled_providers")
    if update.capture_policy is not None:
        values["capture_policy"] = update.capture_policy
        changed.append("capture_policy")
    if update.stripe_secret_key is not None:
        values["stripe_secret_key_sealed"] = credentials.seal(
            secret_key, tenant.tenant_id, STRIPE_SECRET_KEY, update.stripe_secret_key
        )
        values["stripe_secret_key_hint"] = credentials.hint_of(update.stripe_secret_key)
        changed.append(STRIPE_SECRET_KEY)
    if update.stripe_webhook_secret is not None:
        values["stripe_webhook_secret_sealed"] = credentials.seal(
            secret_key, tenant.tenant_id, STRIPE_WEBHOOK_SECRET, update.stripe_webhook_secret
        )
        changed.append(STRIPE_WEBHOOK_SECRET)
    await session.execute(
        pg_insert(PaymentSettings)
        .values(id=1, **values)
        .on_conflict_do_update(index_elements=[PaymentSettings.id], set_=values)
    )
    if changed:
        # Names of what changed only: secrets never enter the outbox.
        await record_event(
            session,
            tenant,
            PAYMENT_SETTINGS_CHANGED,
            {"changed": changed, "actor_type": actor.type, "actor_id": actor.id},
        )
    return await get_payment_settings(session)


async def provider_for(tenant: TenantContext, session: AsyncSession, name: str) -> PaymentProvider:
    """The provider a payment names, set up with the store's own credentials."""
    row = await _row(session)
    settings = _view(row)
    if name not in settings.enabled_providers:
        raise ProviderNotEnabledError(
            f"this store has not enabled the {name} provider; enabled: "
            f"{', '.join(settings.enabled_providers)}; a store admin can enable it in the payment settings",
            extensions={"enabled_providers": settings.enabled_providers},
        )
    if name == "manual":
        return ManualProvider()
    # Enabling stripe requires its key (see `_check`), so an enabled stripe has one.
    assert row is not None
    assert row.stripe_secret_key_sealed is not None
    options = config.current()
    api_key = credentials.open_sealed(
        options.secret_key, tenant.tenant_id, STRIPE_SECRET_KEY, row.stripe_secret_key_sealed
    )
    return StripeProvider(api_key, options.stripe_api_base, timeout_seconds=options.provider_timeout_seconds)


async def stripe_webhook_secret(tenant: TenantContext, session: AsyncSession) -> str | None:
    """The store's Stripe signing secret, opened; None when none is stored."""
    row = await _row(session)
    if row is None or row.stripe_webhook_secret_sealed is None:
        return None
    return credentials.open_sealed(
        config.current().secret_key, tenant.tenant_id, STRIPE_WEBHOOK_SECRET, row.stripe_webhook_secret_sealed
    )
