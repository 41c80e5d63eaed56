"""Keyboard keys as the firmware reports them: USB HID usage IDs (page 0x07) and modifiers.

Shared by the simulator (which injects keys), the controller (which interprets them)
and the lab CLI (which parses key names such as ``Shift+O`` or ``F7+2``).
"""

from __future__ import annotations

from dataclasses import dataclass
from enum import IntFlag


class Mod(IntFlag):
    """HID boot-protocol modifier byte."""

    NONE = 0
    LCTRL = 0x01
    LSHIFT = 0x02
    LALT = 0x04
    LGUI = 0x08
    RCTRL = 0x10
    RSHIFT = 0x20
    RALT = 0x40
    RGUI = 0x80

    @property
    def shift(self) -> bool:
        return bool(self & (Mod.LSHIFT | Mod.RSHIFT))


# Usage IDs of the modifier keys themselves, and the modifier bit each one sets.
MODIFIER_USAGES: dict[int, Mod] = {
    0xE0: Mod.LCTRL,
    0xE1: Mod.LSHIFT,
    0xE2: Mod.LALT,
    0xE3: Mod.LGUI,
    0xE4: Mod.RCTRL,
    0xE5: Mod.RSHIFT,
    0xE6: Mod.RALT,
    0xE7: Mod.RGUI,
}


def _build_names() -> dict[str, int]:
    names: dict[str, int] = {}
    for i, ch in enumerate("ABCDEFGHIJKLMNOPQRSTUVWXYZ"):
        names[ch] = 0x04 + i
    for i, ch in enumerate("123456789"):
        names[ch] = 0x1E + i
    names["0"] = 0x27
    for i in range(12):
        names[f"F{i + 1}"] = 0x3A + i
    names.update(
        {
            "Enter": 0x28,
            "Esc": 0x29,
            "Backspace": 0x2A,
            "Tab": 0x2B,
            "Space": 0x2C,
            "Minus": 0x2D,
            "Equal": 0x2E,
            "Comma": 0x36,
            "Period": 0x37,
            "Slash": 0x38,
            "Insert": 0x49,
            "Home": 0x4A,
            "PageUp": 0x4B,
            "Delete": 0x4C,
            "End": 0x4D,
            "PageDown": 0x4E,
            "Right": 0x4F,
            "Left": 0x50,
            "Down": 0x51,
            "Up": 0x52,
            "Ctrl": 0xE0,
            "Shift": 0xE1,
            "Alt": 0xE2,
            "Win": 0xE3,
            "RCtrl": 0xE4,
            "RShift": 0xE5,
            "RAlt": 0xE6,
            "RWin": 0xE7,
        }
    )
    return names


KEY_NAMES: dict[str, int] = _build_names()
USAGE_NAMES: dict[int, str] = {usage: name for name, usage in KEY_NAMES.items()}
_LOWER_NAMES: dict[str, str] = {name.lower(): name for name in KEY_NAMES}

# Characters an operator can type, as (usage, needs shift). US layout.
_CHARS: dict[str, tuple[int, bool]] = {}
for _i, _ch in enumerate("abcdefghijklmnopqrstuvwxyz"):
    _CHARS[_ch] = (0x04 + _i, False)
    _CHARS[_ch.upper()] = (0x04 + _i, True)
for _ch, _name in zip("1234567890", "1234567890", strict=True):
    _CHARS[_ch] = (KEY_NAMES[_name], False)
_CHARS.update(
    {
        " ": (0x2C, False),
        "-": (0x2D, False),
        "_": (0x2D, True),
        "=": (0x2E, False),
        "+": (0x2E, True),
        ",": (0x36, False),
        ".": (0x37, False),
        "/": (0x38, False),
        "!": (0x1E, True),
        "@": (0x1F, True),
        "#": (0x20, True),
        "$": (0x21, True),
        "%": (0x22, True),
        "^": (0x23, True),
        "&": (0x24, True),
        "*": (0x25, True),
        "(": (0x26, True),
        ")": (0x27, True),
        "<": (0x36, True),
        ">": (0x37, True),
        "?": (0x38, True),
        ";": (0x33, False),
        ":": (0x33, True),
    }
)
CHAR_KEYS: dict[tuple[int, bool], str] = {v: k for k, v in _CHARS.items()}


class KeySyntaxError(ValueError):
    """A key name or chord that cannot be parsed; the message names the bad token."""


@dataclass(frozen=True, slots=True)
class KeyEvent:
    """One press or release, as the HID report diff gives it."""

    usage: int
    mods: Mod
    pressed: bool

    @property
    def name(self) -> str:
        return USAGE_NAMES.get(self.usage, f"0x{self.usage:02X}")

    def char(self) -> str | None:
        """The character this press types (US layout), or None for non-printing keys."""
        return CHAR_KEYS.get((self.usage, self.mods.shift))


def key_usage(name: str) -> int:
    """Usage ID of a key name (case-insensitive), e.g. ``F1``, ``enter``, ``o``."""
    canonical = _LOWER_NAMES.get(name.strip().lower())
    if canonical is None:
        raise KeySyntaxError(f"unknown key name {name!r}")
    return KEY_NAMES[canonical]


def chord_events(chord: str) -> list[KeyEvent]:
    """Events for a chord such as ``Shift+O`` or ``F7+2``: press in order, release in reverse."""
    parts = chord.split("+")
    if any(not p.strip() for p in parts):
        raise KeySyntaxError(f"bad chord {chord!r}")
    usages = [key_usage(p) for p in parts]
    events: list[KeyEvent] = []
    mods = Mod.NONE
    for usage in usages:
        if usage in MODIFIER_USAGES:
            mods |= MODIFIER_USAGES[usage]
        events.append(KeyEvent(usage, mods, True))
    for usage in reversed(usages):
        if usage in MODIFIER_USAGES:
            mods &= ~MODIFIER_USAGES[usage]
        events.append(KeyEvent(usage, mods, False))
    return events


def sequence_events(spec: str) -> list[KeyEvent]:
    """Events for a space-separated sequence of chords, e.g. ``"Shift+O Shift+O F1 1 Enter"``."""
    tokens = spec.split()
    if not tokens:
        raise KeySyntaxError("no keys given")
    events: list[KeyEvent] = []
    for token in tokens:
        events.extend(chord_events(token))
    return events


def text_events(text: str) -> list[KeyEvent]:
    """Events that type `text` on a US layout (Shift held for capitals and symbols)."""
    events: list[KeyEvent] = []
    for ch in text:
        if ch not in _CHARS:
            raise KeySyntaxError(f"cannot type character {ch!r}")
        usage, shift = _CHARS[ch]
        if shift:
            events.append(KeyEvent(0xE1, Mod.LSHIFT, True))
            events.append(KeyEvent(usage, Mod.LSHIFT, True))
            events.append(KeyEvent(usage, Mod.LSHIFT, False))
            events.append(KeyEvent(0xE1, Mod.NONE, False))
        else:
            events.append(KeyEvent(usage, Mod.NONE, True))
            events.append(KeyEvent(usage, Mod.NONE, False))
    return events
