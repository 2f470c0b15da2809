"""The client's address behind trusted proxies: X-Forwarded-For read right to left."""

from __future__ import annotations

import ipaddress

import pytest

from ordersmith.api.auth import forwarded_client

PROXIES = (ipaddress.ip_network("192.0.2.0/24"), ipaddress.ip_network("2001:db8:1::/48"))


@pytest.mark.parametrize(
    ("peer", "forwarded_for", "client"),
    [
        # No proxy in front: the header is whatever the client wrote, so it is ignored.
        ("198.51.100.9", ["203.0.113.7"], "198.51.100.9"),
        ("198.51.100.9", [], "198.51.100.9"),
        # One trusted proxy: it appended the address it saw.
        ("192.0.2.10", ["203.0.113.7"], "203.0.113.7"),
        # The client forged entries on the left; only the first untrusted hop from the right counts.
        ("192.0.2.10", ["10.9.9.9, 1.1.1.1, 203.0.113.7"], "203.0.113.7"),
        # Two trusted proxies in a row, the header split over two lines.
        ("192.0.2.10", ["1.1.1.1, 203.0.113.7", "192.0.2.20"], "203.0.113.7"),
        # A trusted proxy that names no client: the proxy is all we know.
        ("192.0.2.10", [], "192.0.2.10"),
        # Every hop trusted: the leftmost one is the farthest known.
        ("192.0.2.10", ["192.0.2.30, 192.0.2.20"], "192.0.2.30"),
        # A garbled hop stops the walk at the last proxy that handed the request on.
        ("192.0.2.10", ["203.0.113.7, not-an-address, 192.0.2.20"], "192.0.2.20"),
        ("192.0.2.10", ["203.0.113.7:4711"], "192.0.2.10"),
        # IPv6, written canonically; an IPv4 peer seen by a dual-stack listener.
        ("2001:db8:1::5", ["2001:DB8:FFFF::0007"], "2001:db8:ffff::7"),
        ("::ffff:192.0.2.10", ["203.0.113.7"], "203.0.113.7"),
        # Peers that are not addresses at all (a test client, a Unix socket) are kept as they are.
        ("testclient", ["203.0.113.7"], "testclient"),
        (None, ["203.0.113.7"], None),
    ],
)
def test_the_client_is_the_first_untrusted_hop_from_the_right(
    peer: str | None, forwarded_for: list[str], client: str | None
) -> None:
    assert forwarded_client(peer, forwarded_for, PROXIES) == client


def test_with_no_trusted_proxy_the_header_never_counts() -> None:
    assert forwarded_client("192.0.2.10", ["203.0.113.7"], ()) == "192.0.2.10"
