"""Typed messages of the serial device link between the Rx/Tx firmware and the controller.

This file is the message table: each message is a frozen dataclass with a fixed
one-byte type code (``TYPE``). The byte layout of every payload is defined in
``kvm_protocol.codec`` and documented in ``docs/SERIAL_PROTOCOL.md``.

Direction: ``D→H`` device (firmware) to host (controller), ``H→D`` host to device.
``needs_ack`` marks messages the session layer acknowledges and retries.
"""

from __future__ import annotations

from dataclasses import dataclass
from enum import IntEnum
from typing import ClassVar

PROTOCOL_VERSION = 1
MAX_HEADS = 4


class DeviceKind(IntEnum):
    TX = 1
    RX = 2


class SwitchStatus(IntEnum):
    """Result of a head switch as the firmware sees it."""

    OK = 0
    TX_OFFLINE = 1        # the Tx did not answer
    NO_VIDEO = 2          # the Tx answered but that head has no video signal
    STREAM_FAILED = 3     # the stream could not be set up
    NETWORK_DOWN = 4      # this Rx's own network link is down
    BAD_HEAD = 5          # no such head on this Rx or on the Tx


class ErrorCode(IntEnum):
    """Reasons a device reports in an ``Error`` message."""

    UNKNOWN_TYPE = 1
    BAD_PAYLOAD = 2
    BAD_STATE = 3


@dataclass(frozen=True, slots=True)
class Message:
    TYPE: ClassVar[int]
    needs_ack: ClassVar[bool] = False


# --- link management -------------------------------------------------------

@dataclass(frozen=True, slots=True)
class Ack(Message):
    """Acknowledges the frame with sequence number ``ack_seq`` (session layer)."""

    TYPE: ClassVar[int] = 0x01
    ack_seq: int


@dataclass(frozen=True, slots=True)
class HelloRequest(Message):
    """H→D: sent when the link comes up; the device answers with ``Hello``."""

    TYPE: ClassVar[int] = 0x02
    needs_ack: ClassVar[bool] = True
    protocol_version: int = PROTOCOL_VERSION


@dataclass(frozen=True, slots=True)
class Hello(Message):
    """D→H: identity of the device at the other end of the link."""

    TYPE: ClassVar[int] = 0x03
    needs_ack: ClassVar[bool] = True
    protocol_version: int
    kind: DeviceKind
    serial: str           # ASCII, 1-32 chars, e.g. "SIM-RX-5001"
    heads: int            # 1..MAX_HEADS
    firmware: str         # ASCII, 0-32 chars, e.g. "RX-FW 2.4.1"


@dataclass(frozen=True, slots=True)
class Heartbeat(Message):
    """Both ways, once a second while idle; ``uptime_ms`` wraps at 2**32."""

    TYPE: ClassVar[int] = 0x04
    uptime_ms: int


@dataclass(frozen=True, slots=True)
class Error(Message):
    """Either way: the peer's last frame was understood as a frame but not as a message."""

    TYPE: ClassVar[int] = 0x05
    code: ErrorCode
    about_type: int       # the message type that caused it (0 if unknown)
    detail: str = ""      # ASCII, 0-64 chars


# --- keyboard ---------------------------------------------------------------

@dataclass(frozen=True, slots=True)
class KeyInput(Message):
    """D→H: a key event from the seat keyboard (HID usage, modifier byte, press/release)."""

    TYPE: ClassVar[int] = 0x10
    usage: int            # 0..255
    mods: int             # HID modifier byte, see kvm_protocol.keys.Mod
    pressed: bool


@dataclass(frozen=True, slots=True)
class KeyForward(Message):
    """H→D: deliver this key event to the computer of the connected Tx."""

    TYPE: ClassVar[int] = 0x11
    usage: int
    mods: int
    pressed: bool


@dataclass(frozen=True, slots=True)
class ScreenSelect(Message):
    """D→H, cross-screen seats: this Rx became (or stopped being) the active screen."""

    TYPE: ClassVar[int] = 0x12
    active: bool
    screen: int           # 1..8, this Rx's position in its seat


# --- video ------------------------------------------------------------------

@dataclass(frozen=True, slots=True)
class SwitchHead(Message):
    """H→D: show Tx ``tx_id`` head ``tx_head`` on head ``head`` (``tx_id`` "" = show nothing)."""

    TYPE: ClassVar[int] = 0x20
    needs_ack: ClassVar[bool] = True
    head: int             # 1-based head of this Rx
    tx_id: str            # 4-digit Tx ID or "" to disconnect
    tx_head: int          # 1-based head of the Tx (0 when tx_id is "")


@dataclass(frozen=True, slots=True)
class SwitchResult(Message):
    """D→H: outcome of a ``SwitchHead``; ``request_seq`` is that command's sequence number."""

    TYPE: ClassVar[int] = 0x21
    needs_ack: ClassVar[bool] = True
    request_seq: int
    head: int
    status: SwitchStatus


@dataclass(frozen=True, slots=True)
class HeadStatus(Message):
    """D→H: what a head actually shows; sent on change and in answer to ``StatusRequest``."""

    TYPE: ClassVar[int] = 0x22
    head: int
    tx_id: str            # "" = nothing
    tx_head: int
    video: bool           # a picture is actually present on this head


@dataclass(frozen=True, slots=True)
class StatusRequest(Message):
    """H→D: ask for a ``HeadStatus`` per head and a ``NetworkStatus``."""

    TYPE: ClassVar[int] = 0x23


@dataclass(frozen=True, slots=True)
class NetworkStatus(Message):
    """D→H: this device's network link went up or down (also answers ``StatusRequest``)."""

    TYPE: ClassVar[int] = 0x24
    up: bool


@dataclass(frozen=True, slots=True)
class VideoStatus(Message):
    """D→H on a Tx link: video signal present/absent on one of its heads."""

    TYPE: ClassVar[int] = 0x25
    head: int
    present: bool


# --- OSD ----------------------------------------------------------------------

@dataclass(frozen=True, slots=True)
class OsdOverlay(Message):
    """H→D: show or hide the OSD overlay plane over the video on this Rx."""

    TYPE: ClassVar[int] = 0x30
    needs_ack: ClassVar[bool] = True
    visible: bool


ALL_MESSAGES: tuple[type[Message], ...] = (
    Ack,
    HelloRequest,
    Hello,
    Heartbeat,
    Error,
    KeyInput,
    KeyForward,
    ScreenSelect,
    SwitchHead,
    SwitchResult,
    HeadStatus,
    StatusRequest,
    NetworkStatus,
    VideoStatus,
    OsdOverlay,
)

BY_TYPE: dict[int, type[Message]] = {m.TYPE: m for m in ALL_MESSAGES}
assert len(BY_TYPE) == len(ALL_MESSAGES), "duplicate message type code"
