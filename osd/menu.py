"""Input rules of the OSD menu (SPEC 2.1): which characters it takes and the format check.

The controller checks only the format; the server decides everything else.
"""

from __future__ import annotations

import re
import string

from osd.model import Mode

MAX_INPUT = 64          # characters in the input area
MAX_USER = 32           # characters in the login user field
MAX_PASSWORD = 64       # characters in the login password field
INPUT_CHARS = frozenset(string.ascii_letters + string.digits + "-_, ")
MAX_HOTKEY = 16

_HOTKEY = re.compile(r"[A-Za-z0-9_-]{1,16}")


def resolve_token(mode: Mode, token: str) -> str | None:
    """The device a token names, as far as the format tells: an ID, ``all``, or a hotkey
    (lower case). None when the token is not well-formed."""
    if token.isascii() and token.isdigit():
        if len(token) > 4:
            return None
        if mode is Mode.CONNECT:
            return token.zfill(4)
        return token if len(token) == 4 else str(5000 + int(token))
    if not _HOTKEY.fullmatch(token):
        return None
    return token.lower()


def parse_targets(mode: Mode, text: str) -> tuple[str, ...] | None:
    """The targets of an input in this mode, or None for a format error (热键和ID不存在).

    Connect and fetch take exactly one ID or hotkey; push takes a comma list or ``all``.
    Empty tokens, duplicates and ``all`` mixed with others are format errors.
    """
    if len(text) > MAX_INPUT:
        return None
    tokens = [t.strip() for t in text.split(",")]
    if mode is not Mode.PUSH and len(tokens) != 1:
        return None
    targets: list[str] = []
    for token in tokens:
        target = resolve_token(mode, token)
        if target is None or target in targets:
            return None
        targets.append(target)
    if "all" in targets and len(targets) > 1:
        return None
    return tuple(targets)


def normalise(text: str) -> str:
    """The input as sent to the server: tokens without the spaces around them."""
    return ",".join(t.strip() for t in text.split(","))
