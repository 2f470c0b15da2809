"""Identifiers."""

from __future__ import annotations

import secrets
import threading
import time
import uuid

_RANDOM_BITS = 74  # 12 bits of rand_a and 62 of rand_b
_lock = threading.Lock()
_last_ms = 0
_last_random = 0


def _next() -> tuple[int, int]:
    """The millisecond and random part of the next id, strictly after the previous one.

    Within one millisecond the random part grows by a random step (RFC 9562, 6.2, method
    2), so ids made one after another in a process sort in the order they were made, even
    when the clock stands still or steps back.
    """
    global _last_ms, _last_random
    with _lock:
        now = time.time_ns() // 1_000_000
        if now > _last_ms:
            # Half the range: room to count up within the millisecond.
            _last_ms, _last_random = now, secrets.randbits(_RANDOM_BITS - 1)
        else:
            _last_random += 1 + secrets.randbits(16)
            if _last_random >> _RANDOM_BITS:
                _last_ms, _last_random = _last_ms + 1, secrets.randbits(_RANDOM_BITS - 1)
        return _last_ms, _last_random


def uuid7() -> uuid.UUID:
    """A time-ordered UUID (RFC 9562 version 7): inserts land at the right edge of the index."""
    millisecond, random = _next()
    value = millisecond << 80 | 0x7 << 76 | (random >> 62) << 64 | 0x2 << 62 | (random & ((1 << 62) - 1))
    return uuid.UUID(int=value)


def id_spelling(text: str) -> str:
    """One spelling of an id a caller sent, so two spellings of one id count as the same.

    A UUID in any form Python reads (either case, braces, no hyphens) becomes its
    canonical text; other text stays as given.
    """
    try:
        return str(uuid.UUID(text))
    except ValueError:
        return text
