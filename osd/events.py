"""The vocabulary of the OSD screen machine: events in, effects out (see ``osd.screen``).

The runtime turns firmware messages and server answers into these events, calls
``OsdMachine.handle(event, now_ms)`` and executes the effects it gets back, in order.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import Literal

from kvm_protocol.keys import KeyEvent
from kvm_protocol.results import LANGS, Lang, ResultCode
from osd.chord import DEFAULT_CHORD, Chord, ChordError, parse_chord
from osd.model import Mode, ScreenModel

RowColour = Literal["grey", "yellow", "red"]


class SettingsError(ValueError):
    """Settings that cannot be used; the message names the key and the bad value."""


@dataclass(frozen=True, slots=True)
class Settings:
    """Per-seat OSD settings (from the server's watch answer, SPEC 2.4)."""

    chord: Chord = DEFAULT_CHORD
    lang: Lang = "zh_CN"
    auto_close_ms: int = 1000   # close after a success; 0 = stay open
    idle_close_s: int = 60      # close the menu after this long without keys; 0 = never
    idle_logout_s: int = 0      # log the seat out after this long without keys; 0 = off
    login_hidden: bool = False  # a wall tile: the login screen shows only when called up

    @classmethod
    def from_api(cls, data: Mapping[str, object]) -> Settings:
        """Build from the ``settings`` object of ``/device/watch``; unknown keys are ignored."""
        default = cls()
        chord_spec = data.get("chord", str(default.chord))
        window = data.get("chord_window_ms", default.chord.window_ms)
        try:
            chord = parse_chord(chord_spec, window)  # type: ignore[arg-type]
        except ChordError as e:
            raise SettingsError(f"settings.chord: {e}") from None
        lang = data.get("lang", default.lang)
        if lang not in LANGS:
            raise SettingsError(f"settings.lang: {lang!r} is not one of {', '.join(LANGS)}")
        return cls(
            chord=chord,
            lang=lang,
            auto_close_ms=_count(data, "auto_close_ms", default.auto_close_ms, 600_000),
            idle_close_s=_count(data, "idle_close_s", default.idle_close_s, 86_400),
            idle_logout_s=_count(data, "idle_logout_s", default.idle_logout_s, 604_800),
            login_hidden=_flag(data, "login_hidden", default.login_hidden),
        )


def _count(data: Mapping[str, object], key: str, default: int, limit: int) -> int:
    value = data.get(key, default)
    if isinstance(value, bool) or not isinstance(value, int) or not 0 <= value <= limit:
        raise SettingsError(f"settings.{key}: {value!r} is not a whole number 0-{limit}")
    return value


def _flag(data: Mapping[str, object], key: str, default: bool) -> bool:
    value = data.get(key, default)
    if not isinstance(value, bool):
        raise SettingsError(f"settings.{key}: {value!r} is not true or false")
    return value


# --- events in ---------------------------------------------------------------

@dataclass(frozen=True, slots=True)
class KeyInput:
    """A key press or release from the seat keyboard (firmware ``KeyInput``)."""

    key: KeyEvent


@dataclass(frozen=True, slots=True)
class Tick:
    """Time passed; send one at ``OsdMachine.next_deadline()`` (or periodically, e.g. 50 ms)."""


@dataclass(frozen=True, slots=True)
class DeviceInfo:
    """Who this Rx is: its ID (``5001``) and firmware version (``RX-FW 2.4.1``)."""

    rx_id: str
    firmware: str


@dataclass(frozen=True, slots=True)
class LoginResult:
    """Answer to ``Login``: ``NETWORK_OK`` = logged in; else the reason (also transport faults:
    ``SERVER_UNREACHABLE``, ``NETWORK_DOWN``)."""

    code: ResultCode
    user: str | None = None
    lang: Lang | None = None
    keys_allowed: bool = True


@dataclass(frozen=True, slots=True)
class DeviceRow:
    id: str
    name: str
    colour: RowColour = "grey"


@dataclass(frozen=True, slots=True)
class DeviceList:
    """Answer to ``RequestDevices(mode)``; ignored unless ``mode`` is the mode shown."""

    mode: Mode
    rows: tuple[DeviceRow, ...]


@dataclass(frozen=True, slots=True)
class ActionResult:
    """Answer to ``Connect``/``Push``/``Fetch``; ``failures``: (target, reason), partial push."""

    action: Mode
    code: ResultCode
    failures: tuple[tuple[str, ResultCode], ...] = ()


@dataclass(frozen=True, slots=True)
class NetworkStatus:
    """This Rx's network link (firmware ``NetworkStatus``)."""

    up: bool


@dataclass(frozen=True, slots=True)
class ServerStatus:
    """Whether the last exchange with the server worked."""

    reachable: bool


@dataclass(frozen=True, slots=True)
class SessionInfo:
    """The seat's session as the server sees it (watch answer); ``user`` None = nobody."""

    user: str | None
    keys_allowed: bool = True
    lang: Lang | None = None


@dataclass(frozen=True, slots=True)
class ScreenActive:
    """Cross-screen seats: this Rx's screen has (or lost) the keyboard and mouse."""

    active: bool


@dataclass(frozen=True, slots=True)
class SettingsChanged:
    settings: Settings = field(default_factory=Settings)


Event = (
    KeyInput | Tick | DeviceInfo | LoginResult | DeviceList | ActionResult
    | NetworkStatus | ServerStatus | SessionInfo | ScreenActive | SettingsChanged
)


# --- effects out ---------------------------------------------------------------

@dataclass(frozen=True, slots=True)
class ForwardKey:
    """Send this key event to the computer (firmware ``KeyForward``), unchanged."""

    key: KeyEvent


@dataclass(frozen=True, slots=True)
class Draw:
    """Draw this model on the overlay (sent whenever the visible model changes)."""

    model: ScreenModel


@dataclass(frozen=True, slots=True)
class Overlay:
    """Show or hide the OSD overlay plane (firmware ``OsdOverlay``); follows the first Draw."""

    visible: bool


@dataclass(frozen=True, slots=True)
class Login:
    user: str
    password: str = field(repr=False)


@dataclass(frozen=True, slots=True)
class Logout:
    """End the seat's session (the server also disconnects the seat's screens)."""


@dataclass(frozen=True, slots=True)
class RequestDevices:
    mode: Mode


@dataclass(frozen=True, slots=True)
class Connect:
    input: str


@dataclass(frozen=True, slots=True)
class Push:
    input: str


@dataclass(frozen=True, slots=True)
class Fetch:
    input: str


Effect = ForwardKey | Draw | Overlay | Login | Logout | RequestDevices | Connect | Push | Fetch
ServerCall = Login | Logout | RequestDevices | Connect | Push | Fetch
