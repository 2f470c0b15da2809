"""Webhook signatures, Stripe's scheme: `Ordersmith-Signature: t=<unix time>,v1=<hex HMAC-SHA256>`.

The HMAC key is the endpoint's secret (the whole `whsec_…` string, as UTF-8) and the
message is `<t>.<raw body>`. A receiver recomputes it over the bytes it received and
refuses a timestamp older than its tolerance, which stops replays of a captured request.
While a rotated secret is kept for a while, the header carries one `v1=` per secret, the
current one first; a receiver accepts the request when any of them matches its secret.
"""

from __future__ import annotations

import hashlib
import hmac
import time

HEADER = "Ordersmith-Signature"
SCHEME = "v1"
TOLERANCE_SECONDS = 300
# Unix time has 10 digits until the year 2286; a longer `t` can never be within tolerance.
MAX_TIMESTAMP_DIGITS = 12


def compute(secret: str, timestamp: int, body: bytes) -> str:
    """The hex HMAC-SHA256 of `<timestamp>.<body>` under `secret`."""
    return hmac.new(secret.encode(), f"{timestamp}.".encode() + body, hashlib.sha256).hexdigest()


def signature_header(secret: str, body: bytes, timestamp: int, *also: str) -> str:
    """The `Ordersmith-Signature` value for `body` sent at `timestamp`, signed by `secret` and `also`."""
    signatures = ",".join(f"{SCHEME}={compute(key, timestamp, body)}" for key in (secret, *also))
    return f"t={timestamp},{signatures}"


def verify(
    secret: str, body: bytes, header: str, *, tolerance: int = TOLERANCE_SECONDS, now: float | None = None
) -> bool:
    """Whether `header` signs `body` with `secret`, at a time within `tolerance` seconds of now.

    A malformed header is simply not a valid signature: this never raises on what a sender put in it.
    """
    timestamp: int | None = None
    signatures: list[str] = []
    for part in header.split(","):
        name, _, value = part.strip().partition("=")
        # `isdigit` alone lets through digits `int` refuses ("²"), and a number too long to convert.
        if name == "t" and value.isascii() and value.isdigit() and len(value) <= MAX_TIMESTAMP_DIGITS:
            timestamp = int(value)
        elif name == SCHEME:
            signatures.append(value)
    if timestamp is None or not signatures:
        return False
    if abs((time.time() if now is None else now) - timestamp) > tolerance:
        return False
    expected = compute(secret, timestamp, body)
    return any(hmac.compare_digest(expected, signature) for signature in signatures)
