"""Typed operator input to device IDs (SPEC 2.1): short IDs, hotkeys, format errors.

Part of the permission engine; ``webadmin.engine`` is the public entry and re-exports
what callers need. Pure: it reads a ``Snapshot`` and returns IDs or raises ``InputError``.
"""

from __future__ import annotations

import re
from typing import TYPE_CHECKING, Literal

if TYPE_CHECKING:
    from webadmin.engine import Snapshot

MAX_INPUT = 200          # characters; longer input is refused whole
ALL = "all"              # push-only keyword; reserved, never a hotkey
TX_RANGE = range(1, 5000)
RX_RANGE = range(5001, 10000)

# ASCII only: str.isdigit() would also accept other scripts' digits.
_DIGITS = re.compile(r"[0-9]+")
_HOTKEY = re.compile(r"[A-Za-z0-9_-]{1,16}")


class InputError(ValueError):
    """Typed text that is not a valid ID/hotkey list (shown as UNKNOWN_TARGET)."""


def valid_hotkey_key(key: str) -> bool:
    """True if `key` may name a hotkey: 1-16 of A-Z a-z 0-9 - _, a non-digit, not ``all``."""
    return (
        _HOTKEY.fullmatch(key) is not None
        and _DIGITS.fullmatch(key) is None
        and key.lower() != ALL
    )


def split_tokens(text: str, *, many: bool) -> tuple[str, ...]:
    """Split on ASCII commas and strip whitespace; the format rules that need no snapshot."""
    if len(text) > MAX_INPUT:
        raise InputError("input too long")
    tokens = tuple(token.strip() for token in text.split(","))
    if any(not token for token in tokens):
        raise InputError("empty token")
    if not many and len(tokens) > 1:
        raise InputError("exactly one target expected")
    if any(token.lower() == ALL for token in tokens):
        # `all` is the caller's business (push only, alone); here it is always an error.
        raise InputError("'all' not allowed here")
    return tokens


def id_of_token(token: str, context: Literal["tx", "rx"]) -> str:
    """The device ID an all-digit token means in `context`, or InputError if out of range."""
    if _DIGITS.fullmatch(token) is None or len(token) > 4:
        raise InputError(f"not an ID: {token!r}")
    number = int(token)
    if context == "tx":
        if number not in TX_RANGE:
            raise InputError(f"not a Tx ID: {token!r}")
        return f"{number:04d}"
    if len(token) < 4:
        number += 5000
    if number not in RX_RANGE:
        raise InputError(f"not an Rx ID: {token!r}")
    return f"{number:04d}"


def resolve_tokens(
    snap: Snapshot, text: str, context: Literal["tx", "rx"], *, many: bool
) -> tuple[str, ...]:
    """Resolve typed input to existing device IDs of kind `context`, in typed order."""
    ids: list[str] = []
    for token in split_tokens(text, many=many):
        if _DIGITS.fullmatch(token) is not None:
            named: tuple[str, ...] = (id_of_token(token, context),)
        elif valid_hotkey_key(token):
            hotkey = snap.hotkeys.get(token.lower())
            if hotkey is None or not hotkey.targets:
                raise InputError(f"no such hotkey: {token!r}")
            named = hotkey.targets
        else:
            raise InputError(f"neither an ID nor a hotkey: {token!r}")
        for device_id in named:
            device = snap.devices.get(device_id)
            if device is None or device.kind != context:
                # Unknown device, or a hotkey of the wrong kind (Rx hotkey for connect...).
                raise InputError(f"no such {context}: {device_id!r}")
        ids.extend(named)
    if len(set(ids)) != len(ids):
        raise InputError("duplicate target")
    return tuple(ids)
