"""Settings: read once from the environment, safe defaults, strict in production."""

from __future__ import annotations

import ipaddress

import pytest

from ordersmith.platform.settings import DEVELOPMENT_SECRET, SettingsError, load_settings

PRODUCTION = {
    "ORDERSMITH_ENV": "production",
    "SECRET_KEY": "k" * 40,
    "DATABASE_URL": "postgresql://ordersmith_app:pw@db:5432/ordersmith",
    "DATABASE_OWNER_URL": "postgresql://ordersmith_owner:pw@db:5432/ordersmith",
    "BROKER_URL": "amqp://user:pw@rabbit:5672/%2F",
    "SMTP_URL": "smtp://mailer:pw@smtp:587",
    "PUBLIC_URL": "https://orders.example.com/",
}


def test_development_defaults() -> None:
    settings = load_settings({})
    assert settings.environment == "development"
    assert settings.secret_key == DEVELOPMENT_SECRET
    assert settings.database.url is None
    assert settings.broker.url is None
    assert (
        settings.database.owner_role,
        settings.database.app_role,
        settings.database.tenant_group_role,
    ) == (
        "ordersmith_owner",
        "ordersmith_app",
        "ordersmith_tenant",
    )
    assert settings.database.pool_recycle_seconds == 1800
    assert (settings.database.statement_timeout_ms, settings.database.lock_timeout_ms) == (30_000, 5_000)
    assert settings.data_dir.name == ".ordersmith"


def test_the_lock_timeout_is_read_from_the_environment() -> None:
    assert load_settings({"DATABASE_LOCK_TIMEOUT_MS": "750"}).database.lock_timeout_ms == 750


def test_a_complete_production_environment_is_accepted() -> None:
    settings = load_settings(PRODUCTION)
    assert settings.is_production
    assert settings.broker.url == "amqp://user:pw@rabbit:5672/%2F"
    assert settings.public_url == "https://orders.example.com"


@pytest.mark.parametrize(
    ("missing", "message"),
    [
        ("SECRET_KEY", "SECRET_KEY is the development default"),
        ("DATABASE_URL", "DATABASE_URL must be set in production"),
        ("DATABASE_OWNER_URL", "DATABASE_OWNER_URL must be set in production"),
        ("BROKER_URL", "BROKER_URL must be set in production"),
        ("SMTP_URL", "SMTP_URL must be set in production"),
        ("PUBLIC_URL", "PUBLIC_URL must be set in production: links in emails"),
    ],
)
def test_production_refuses_to_start_without(missing: str, message: str) -> None:
    environment = {key: value for key, value in PRODUCTION.items() if key != missing}
    with pytest.raises(SettingsError, match=message):
        load_settings(environment)


def test_production_needs_its_own_https_public_url() -> None:
    for default in ("http://127.0.0.1:8000", "http://127.0.0.1:8000/"):
        with pytest.raises(SettingsError) as refused:
            load_settings({**PRODUCTION, "PUBLIC_URL": default})
        assert str(refused.value) == (
            "PUBLIC_URL must be set in production: links in emails and the SSO callback start with it "
            "(https://orders.example.com)"
        )
    with pytest.raises(SettingsError) as refused:
        load_settings({**PRODUCTION, "PUBLIC_URL": "http://orders.example.com"})
    assert str(refused.value) == (
        "PUBLIC_URL must start with https:// in production (sessions use secure cookies), "
        "got 'http://orders.example.com'"
    )
    # Outside production the development default stands.
    assert load_settings({}).public_url == "http://127.0.0.1:8000"


def test_trusted_proxies_are_a_list_of_networks_and_none_by_default() -> None:
    assert load_settings({}).trusted_proxies == ()
    settings = load_settings({"TRUSTED_PROXIES": " 10.0.0.0/8, 192.0.2.7 ,fd00::/8,"})
    assert settings.trusted_proxies == (
        ipaddress.ip_network("10.0.0.0/8"),
        ipaddress.ip_network("192.0.2.7/32"),
        ipaddress.ip_network("fd00::/8"),
    )
    for bad in ("10.0.0.1/8", "proxy.internal"):
        with pytest.raises(SettingsError) as refused:
            load_settings({"TRUSTED_PROXIES": f"10.0.0.0/8,{bad}"})
        assert str(refused.value) == (
            "TRUSTED_PROXIES must list networks separated by commas, such as 10.0.0.0/8,fd00::/8; "
            f"{bad!r} is not one (host bits set, or not an address)"
        )


def test_a_short_production_secret_is_refused() -> None:
    with pytest.raises(SettingsError, match="at least 32 characters"):
        load_settings({**PRODUCTION, "SECRET_KEY": "short"})


@pytest.mark.parametrize(
    ("environment", "message"),
    [
        (
            {"ORDERSMITH_ENV": "staging"},
            "ORDERSMITH_ENV must be development, test or production, got 'staging'",
        ),
        ({"DATABASE_POOL_SIZE": "ten"}, "DATABASE_POOL_SIZE must be a whole number, got 'ten'"),
        ({"BROKER_URL": "kafka://x"}, "BROKER_URL must start with amqp://"),
        (
            {"DATABASE_ROLE_PREFIX": "bad-prefix"},
            "DATABASE_ROLE_PREFIX may hold only letters, digits and underscores",
        ),
    ],
)
def test_malformed_settings_say_what_is_wrong(environment: dict[str, str], message: str) -> None:
    with pytest.raises(SettingsError, match=message):
        load_settings(environment)
