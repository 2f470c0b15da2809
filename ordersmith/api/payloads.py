"""What a request body said: the fields a caller sent, apart from those it left out."""

from __future__ import annotations

from typing import Any

import msgspec


def given(data: msgspec.Struct, *, leave_out: tuple[str, ...] = ()) -> dict[str, Any]:
    """The fields the caller sent (UNSET ones left out), for a partial update."""
    return {
        key: value
        for key, value in msgspec.structs.asdict(data).items()
        if value is not msgspec.UNSET and key not in leave_out
    }
