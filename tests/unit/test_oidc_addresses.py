"""SSO connects only to identity providers on public addresses, unless the deployment allows others."""

from __future__ import annotations

import asyncio
import ipaddress
import socket
from typing import Any

import pytest

from ordersmith.platform.identity.oidc import (
    NetworkPolicy,
    SsoProviderAddressRefusedError,
    checked_address,
    non_public_kind,
    provider_client,
)
from ordersmith.platform.settings import SettingsError, load_settings
from tests.unit.test_settings import PRODUCTION


@pytest.mark.parametrize(
    ("host", "reason"),
    [
        ("127.0.0.1", "127.0.0.1 is a loopback address"),
        ("10.0.0.1", "10.0.0.1 is a private address"),
        ("169.254.169.254", "169.254.169.254 is a link-local address"),
        ("::1", "::1 is a loopback address"),
        ("::ffff:127.0.0.1", "::ffff:127.0.0.1 is a loopback address"),
        ("localhost", "localhost resolves to 127.0.0.1, a loopback address"),
        ("0.0.0.0", "0.0.0.0 is an unspecified address"),
        ("fe80::1", "fe80::1 is a link-local address"),
        ("ff02::1", "ff02::1 is a multicast address"),
        ("fd12:3456::1", "fd12:3456::1 is a private address"),
        ("::ffff:10.1.2.3", "::ffff:10.1.2.3 is a private address"),
        ("100.64.0.1", "100.64.0.1 is not a public address"),
    ],
)
async def test_a_non_public_address_is_refused(host: str, reason: str) -> None:
    with pytest.raises(SsoProviderAddressRefusedError) as refused:
        await checked_address(host, allow_private_addresses=False)

    assert refused.value.reason == reason
    assert (refused.value.status, refused.value.code) == (502, "sso_provider_address_refused")
    assert refused.value.detail == (
        f"single sign-on refused to connect to the identity provider: {reason}; "
        "a store admin should check the issuer URL"
    )


@pytest.mark.parametrize("host", ["93.184.215.14", "2606:4700:4700::1111"])
async def test_a_public_address_is_the_one_to_connect_to(host: str) -> None:
    assert await checked_address(host, allow_private_addresses=False) == host


async def test_private_addresses_pass_when_the_deployment_allows_them() -> None:
    assert await checked_address("localhost", allow_private_addresses=True) == "127.0.0.1"
    assert await checked_address("10.0.0.1", allow_private_addresses=True) == "10.0.0.1"


def test_every_kind_of_non_public_address_is_named() -> None:
    kinds = {
        text: non_public_kind(ipaddress.ip_address(text))
        for text in ("240.0.0.1", "224.0.0.1", "192.168.1.1", "172.16.0.1", "::", "8.8.8.8", "::ffff:8.8.8.8")
    }

    assert kinds == {
        "240.0.0.1": "a reserved address",
        "224.0.0.1": "a multicast address",
        "192.168.1.1": "a private address",
        "172.16.0.1": "a private address",
        "::": "an unspecified address",
        "8.8.8.8": None,
        "::ffff:8.8.8.8": None,
    }


async def test_the_provider_client_refuses_before_connecting() -> None:
    # Port 1 on loopback has no listener: a connection attempt would fail with ConnectError instead.
    async with provider_client(NetworkPolicy(allow_private_addresses=False, require_https=False)) as client:
        with pytest.raises(SsoProviderAddressRefusedError) as refused:
            await client.get("http://localhost:1/.well-known/openid-configuration")

    assert refused.value.reason == "localhost resolves to 127.0.0.1, a loopback address"


async def test_the_provider_client_connects_to_the_address_it_checked(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    heads: list[bytes] = []

    async def answer(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        heads.append(await reader.readuntil(b"\r\n\r\n"))
        writer.write(b"HTTP/1.1 200 OK\r\nContent-Length: 2\r\nConnection: close\r\n\r\n{}")
        await writer.drain()
        writer.close()

    loop = asyncio.get_running_loop()
    resolve = loop.getaddrinfo
    answers = iter(["127.0.0.1"])

    async def rebinding(host: Any, *args: Any, **kwargs: Any) -> Any:
        # The first answer passes the check; a later lookup would find nothing at all.
        if host == "idp.rebinding.test":
            host = next(answers, None)
            if host is None:
                raise socket.gaierror(socket.EAI_NONAME, "Name or service not known")
        return await resolve(host, *args, **kwargs)

    monkeypatch.setattr(loop, "getaddrinfo", rebinding)
    server = await asyncio.start_server(answer, "127.0.0.1", 0)
    port = server.sockets[0].getsockname()[1]
    async with (
        server,
        provider_client(NetworkPolicy(allow_private_addresses=True, require_https=False)) as client,
    ):
        response = await client.get(f"http://idp.rebinding.test:{port}/jwks")

    assert (response.status_code, response.json()) == (200, {})
    # The name is kept where the provider reads it.
    assert f"host: idp.rebinding.test:{port}\r\n".encode() in heads[0].lower()


async def test_the_provider_client_refuses_plain_http_where_https_is_required() -> None:
    async with provider_client(NetworkPolicy(allow_private_addresses=True, require_https=True)) as client:
        with pytest.raises(SsoProviderAddressRefusedError) as refused:
            await client.get("http://127.0.0.1:1/jwks")

    assert refused.value.reason == "http://127.0.0.1:1/jwks is not an https URL"


def test_private_addresses_are_allowed_by_default_outside_production_only() -> None:
    assert load_settings({}).sso_allow_private_addresses is True
    assert load_settings({"ORDERSMITH_ENV": "test"}).sso_allow_private_addresses is True
    assert load_settings(PRODUCTION).sso_allow_private_addresses is False
    on_premises = load_settings({**PRODUCTION, "SSO_ALLOW_PRIVATE_ADDRESSES": "true"})
    assert on_premises.sso_allow_private_addresses is True
    assert load_settings({"SSO_ALLOW_PRIVATE_ADDRESSES": "0"}).sso_allow_private_addresses is False
    with pytest.raises(SettingsError) as malformed:
        load_settings({"SSO_ALLOW_PRIVATE_ADDRESSES": "maybe"})
    assert str(malformed.value) == "SSO_ALLOW_PRIVATE_ADDRESSES must be true or false, got 'maybe'"
