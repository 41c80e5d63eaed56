"""Pure codec of the serial device link: messages <-> payloads, frames, CRC, resync.

Frame layout (all integers little-endian except the CRC, see below)::

    0xA5 0x5A | length u16 | type u8 | seq u8 | payload (length bytes) | crc u16 (big-endian)

``crc`` is CRC-16/CCITT-FALSE (poly 0x1021, init 0xFFFF, no reflection, no final
xor) over length, type, seq and payload. It is sent high byte first, as is usual
for a non-reflected CRC: the CRC over length..crc of an intact frame is then 0.

No I/O here: ``encode_frame`` returns bytes, ``FrameDecoder.feed`` takes bytes and
returns frames. Layouts per message are the ``_SPECS`` table below and
docs/SERIAL_PROTOCOL.md.
"""

from __future__ import annotations

import binascii
import struct
from collections import deque
from collections.abc import Callable, Iterable
from dataclasses import dataclass, fields
from enum import IntEnum
from typing import Any, Literal

from kvm_protocol.messages import (
    BY_TYPE,
    Ack,
    DeviceKind,
    Error,
    ErrorCode,
    HeadStatus,
    Heartbeat,
    Hello,
    HelloRequest,
    KeyForward,
    KeyInput,
    Message,
    NetworkStatus,
    OsdOverlay,
    ScreenSelect,
    StatusRequest,
    SwitchHead,
    SwitchResult,
    SwitchStatus,
    VideoStatus,
)

SYNC = b"\xa5\x5a"
MAX_PAYLOAD = 512
_HEADER = struct.Struct("<HBB")  # length, type, seq
HEADER_SIZE = len(SYNC) + _HEADER.size
CRC_SIZE = 2
OVERHEAD = HEADER_SIZE + CRC_SIZE
MAX_FRAME = OVERHEAD + MAX_PAYLOAD
MAX_ISSUES = 256  # issues kept until popped; older ones are dropped (and counted)


class ProtocolError(Exception):
    """A message or frame that the protocol cannot represent or accept."""


def crc16(data: bytes | bytearray | memoryview) -> int:
    """CRC-16/CCITT-FALSE of ``data`` (check value of b"123456789" is 0x29B1)."""
    return binascii.crc_hqx(data, 0xFFFF)


# --- payload fields -----------------------------------------------------------
# Each field knows its wire form (a struct code, or a length-prefixed string),
# how to check a value before encoding and how to check/convert one after
# decoding. Both checks raise ProtocolError with the field name.


class _Field:
    code = ""  # struct code for fixed-size fields; "" for strings
    trivial = False  # every wire value is valid as it is (no convert needed)

    def __init__(self, name: str) -> None:
        self.name = name

    def check(self, value: Any) -> Any:
        """Validate ``value`` for encoding and return its wire form."""
        raise NotImplementedError

    def convert(self, raw: Any) -> Any:
        """Validate a decoded wire value and return the message field value."""
        return self.check(raw)

    def describe(self) -> str:
        raise NotImplementedError


class _Int(_Field):
    def __init__(self, name: str, lo: int = 0, hi: int = 255, code: str = "B") -> None:
        super().__init__(name)
        self.lo, self.hi, self.code = lo, hi, code
        self.trivial = (lo, hi) == (0, 255 if code == "B" else 2**32 - 1)

    def check(self, value: Any) -> Any:
        if not isinstance(value, int) or isinstance(value, bool):
            raise ProtocolError(f"{self.name}: expected int, got {type(value).__name__}")
        if not self.lo <= value <= self.hi:
            raise ProtocolError(f"{self.name}: {value} out of range {self.lo}..{self.hi}")
        return int(value)

    def describe(self) -> str:
        kind = {"B": "u8", "I": "u32"}[self.code]
        full = (0, 255) if self.code == "B" else (0, 2**32 - 1)
        return kind if (self.lo, self.hi) == full else f"{kind} {self.lo}..{self.hi}"


class _Bool(_Field):
    code = "B"

    def check(self, value: Any) -> Any:
        if not isinstance(value, bool):
            raise ProtocolError(f"{self.name}: expected bool, got {type(value).__name__}")
        return int(value)

    def convert(self, raw: Any) -> Any:
        if raw > 1:
            raise ProtocolError(f"{self.name}: bool byte must be 0 or 1, got {raw}")
        return raw == 1

    def describe(self) -> str:
        return "u8 bool (0/1)"


class _Enum(_Field):
    code = "B"

    def __init__(self, name: str, enum: type[IntEnum]) -> None:
        super().__init__(name)
        self.enum = enum

    def check(self, value: Any) -> Any:
        if not isinstance(value, int) or isinstance(value, bool):
            raise ProtocolError(f"{self.name}: expected {self.enum.__name__}")
        return int(self.convert(value))

    def convert(self, raw: Any) -> Any:
        try:
            return self.enum(raw)
        except ValueError:
            raise ProtocolError(f"{self.name}: {raw} is not a {self.enum.__name__}") from None

    def describe(self) -> str:
        values = ", ".join(f"{m.value}={m.name}" for m in self.enum)
        return f"u8 {self.enum.__name__} ({values})"


class _Str(_Field):
    """u8 length + printable ASCII (0x20..0x7E)."""

    def __init__(self, name: str, lo: int, hi: int, tx_id: bool = False) -> None:
        super().__init__(name)
        self.lo, self.hi, self.tx_id = lo, hi, tx_id

    def check(self, value: Any) -> Any:
        if not isinstance(value, str):
            raise ProtocolError(f"{self.name}: expected str, got {type(value).__name__}")
        if self.tx_id:
            if value != "" and not (len(value) == 4 and value.isascii() and value.isdigit()):
                raise ProtocolError(f"{self.name}: Tx ID must be '' or 4 digits, got {value!r}")
        elif not self.lo <= len(value) <= self.hi:
            raise ProtocolError(
                f"{self.name}: length {len(value)} out of range {self.lo}..{self.hi}"
            )
        if not (value.isascii() and value.isprintable()):
            raise ProtocolError(f"{self.name}: only printable ASCII allowed, got {value!r}")
        return value.encode("ascii")

    def convert(self, raw: Any) -> Any:
        try:
            text = bytes(raw).decode("ascii")
        except UnicodeDecodeError:
            raise ProtocolError(f"{self.name}: not ASCII") from None
        self.check(text)
        return text

    def describe(self) -> str:
        if self.tx_id:
            return 'u8 len + ASCII: "" or 4 digits'
        return f"u8 len + printable ASCII, {self.lo}..{self.hi} chars"


def _tx_head_rule(msg: Any) -> None:
    # "" means "nothing": then there is no Tx head either.
    if (msg.tx_id == "") != (msg.tx_head == 0):
        raise ProtocolError("tx_head must be 0 exactly when tx_id is ''")


_HEAD = (1, 4)


def _u8(name: str, lo: int = 0, hi: int = 255) -> _Int:
    return _Int(name, lo, hi)


_SPECS: dict[type[Message], tuple[_Field, ...]] = {
    Ack: (_u8("ack_seq"),),
    HelloRequest: (_u8("protocol_version"),),
    Hello: (
        _u8("protocol_version"),
        _Enum("kind", DeviceKind),
        _Str("serial", 1, 32),
        _u8("heads", *_HEAD),
        _Str("firmware", 0, 32),
    ),
    Heartbeat: (_Int("uptime_ms", 0, 2**32 - 1, "I"),),
    Error: (_Enum("code", ErrorCode), _u8("about_type"), _Str("detail", 0, 64)),
    KeyInput: (_u8("usage"), _u8("mods"), _Bool("pressed")),
    KeyForward: (_u8("usage"), _u8("mods"), _Bool("pressed")),
    ScreenSelect: (_Bool("active"), _u8("screen", 1, 8)),
    SwitchHead: (_u8("head", *_HEAD), _Str("tx_id", 0, 4, tx_id=True), _u8("tx_head", 0, 4)),
    SwitchResult: (_u8("request_seq"), _u8("head", *_HEAD), _Enum("status", SwitchStatus)),
    HeadStatus: (
        _u8("head", *_HEAD),
        _Str("tx_id", 0, 4, tx_id=True),
        _u8("tx_head", 0, 4),
        _Bool("video"),
    ),
    StatusRequest: (),
    NetworkStatus: (_Bool("up"),),
    VideoStatus: (_u8("head", *_HEAD), _Bool("present")),
    OsdOverlay: (_Bool("visible"),),
}

_RULES: dict[type[Message], Callable[[Any], None]] = {
    SwitchHead: _tx_head_rule,
    HeadStatus: _tx_head_rule,
}


class _Layout:
    """Compiled layout of one message type: runs of fixed fields become one Struct."""

    def __init__(self, cls: type[Message], spec: tuple[_Field, ...]) -> None:
        names = [f.name for f in fields(cls)]
        if names != [f.name for f in spec]:
            raise RuntimeError(f"codec spec of {cls.__name__} does not match its fields")
        self.cls = cls
        self.spec = spec
        self.rule = _RULES.get(cls)
        # Groups: either a Struct for consecutive fixed fields, or a single string field.
        self.groups: list[tuple[struct.Struct | None, tuple[_Field, ...]]] = []
        run: list[_Field] = []
        for f in spec:
            if f.code:
                run.append(f)
                continue
            if run:
                self.groups.append((struct.Struct("<" + "".join(x.code for x in run)), tuple(run)))
                run = []
            self.groups.append((None, (f,)))
        if run:
            self.groups.append((struct.Struct("<" + "".join(x.code for x in run)), tuple(run)))
        # Fast path for the common all-fixed layouts: one unpack, and only the
        # fields that need a check get one (a full-range u8 needs none).
        self.fixed: struct.Struct | None = None
        self.converters: tuple[Callable[[Any], Any] | None, ...] = ()
        if all(f.code for f in spec):
            self.fixed = struct.Struct("<" + "".join(f.code for f in spec))
            self.converters = tuple(None if f.trivial else f.convert for f in spec)

    def encode(self, msg: Message) -> bytes:
        parts: list[bytes] = []
        for st, group in self.groups:
            if st is None:
                raw = group[0].check(getattr(msg, group[0].name))
                parts.append(bytes((len(raw),)) + raw)
            else:
                parts.append(st.pack(*[f.check(getattr(msg, f.name)) for f in group]))
        if self.rule is not None:
            self.rule(msg)
        return b"".join(parts)

    def decode(self, payload: bytes | memoryview) -> Message:
        if self.fixed is not None:
            if len(payload) != self.fixed.size:
                raise ProtocolError(self._size_error(len(payload), self.fixed.size))
            raws = self.fixed.unpack(payload)
            msg = self.cls(
                *[r if c is None else c(r) for c, r in zip(self.converters, raws, strict=True)]
            )
            if self.rule is not None:
                self.rule(msg)
            return msg
        values: list[Any] = []
        pos = 0
        size = len(payload)
        for st, group in self.groups:
            if st is None:
                if pos >= size:
                    raise ProtocolError(f"{group[0].name}: payload too short")
                n = payload[pos]
                if pos + 1 + n > size:
                    raise ProtocolError(f"{group[0].name}: string runs past the payload")
                values.append(group[0].convert(payload[pos + 1 : pos + 1 + n]))
                pos += 1 + n
            else:
                if pos + st.size > size:
                    raise ProtocolError(self._size_error(size, pos + st.size))
                raws = st.unpack_from(payload, pos)
                values.extend(f.convert(r) for f, r in zip(group, raws, strict=True))
                pos += st.size
        if pos != size:
            raise ProtocolError(self._size_error(size, pos))
        msg = self.cls(*values)
        if self.rule is not None:
            self.rule(msg)
        return msg

    @staticmethod
    def _size_error(size: int, want: int) -> str:
        if size < want:
            return f"payload too short ({size} bytes)"
        return f"{size - want} unexpected trailing payload bytes"


_LAYOUTS: dict[int, _Layout] = {cls.TYPE: _Layout(cls, spec) for cls, spec in _SPECS.items()}
if set(_LAYOUTS) != set(BY_TYPE):
    raise RuntimeError("every message in kvm_protocol.messages needs a codec layout")


def describe_layout(cls: type[Message]) -> list[tuple[str, str]]:
    """(field name, wire form) per payload field, in order; used by docs and tests."""
    return [(f.name, f.describe()) for f in _SPECS[cls]]


# --- payloads and frames ------------------------------------------------------------


def encode_payload(msg: Message) -> bytes:
    """Payload bytes of ``msg``; raises ProtocolError if a field is out of range."""
    layout = _LAYOUTS.get(getattr(msg, "TYPE", -1))
    if layout is None or type(msg) is not layout.cls:
        raise ProtocolError(f"not a protocol message: {msg!r}")
    return layout.encode(msg)


def decode_payload(msg_type: int, payload: bytes | memoryview) -> Message:
    """Message of type ``msg_type`` from its payload; raises ProtocolError."""
    layout = _LAYOUTS.get(msg_type)
    if layout is None:
        raise ProtocolError(f"unknown message type 0x{msg_type:02x}")
    return layout.decode(payload)


@dataclass(frozen=True, slots=True)
class Frame:
    """One decoded frame: the sender's sequence number and the message."""

    seq: int
    message: Message


def encode_frame(msg: Message, seq: int) -> bytes:
    """Complete frame bytes for ``msg`` with sequence number ``seq`` (0..255)."""
    if not isinstance(seq, int) or isinstance(seq, bool) or not 0 <= seq <= 255:
        raise ProtocolError(f"seq must be an int 0..255, got {seq!r}")
    payload = encode_payload(msg)
    body = _HEADER.pack(len(payload), msg.TYPE, seq) + payload
    return SYNC + body + crc16(body).to_bytes(2, "big")


def decode_frame(data: bytes) -> Frame:
    """Exactly one intact frame from ``data``; raises ProtocolError otherwise."""
    if len(data) < OVERHEAD or data[:2] != SYNC:
        raise ProtocolError("not a frame: too short or no sync marker")
    length, msg_type, seq = _HEADER.unpack_from(data, 2)
    if length > MAX_PAYLOAD:
        raise ProtocolError(f"payload length {length} exceeds {MAX_PAYLOAD}")
    if len(data) != OVERHEAD + length:
        raise ProtocolError(f"frame length {len(data)} does not match length field {length}")
    if crc16(data[2:]) != 0:
        raise ProtocolError("bad CRC")
    return Frame(seq, decode_payload(msg_type, data[HEADER_SIZE : HEADER_SIZE + length]))


# --- incremental decoder ------------------------------------------------------------

IssueKind = Literal["unknown_type", "bad_payload", "oversized"]


@dataclass(frozen=True, slots=True)
class DecodeIssue:
    """Something the decoder rejected but that deserves a report.

    ``unknown_type`` and ``bad_payload`` frames were intact (CRC good): the peer
    really sent them. ``oversized`` is a sync marker followed by a length above
    MAX_PAYLOAD: a false sync in noise or a broken sender; its CRC is never read.
    """

    kind: IssueKind
    msg_type: int | None
    seq: int | None
    detail: str


class FrameDecoder:
    """Incremental frame decoder: ``feed(bytes) -> list[Frame]``.

    Guarantees (see docs/SERIAL_PROTOCOL.md, "Resync"):
    - every frame returned had a good CRC and a valid payload, and its exact
      encoding occurred in the input;
    - after noise that contains no sync marker, every intact frame is found;
    - a candidate that fails (bad CRC, oversized length) costs one byte: the
      search restarts at the byte after its sync marker, so a truncated frame
      never hides the frames after it (once enough bytes, or ``flush()``, come);
    - feeding the input whole or in pieces gives the same frames, issues and stats.
    """

    def __init__(self) -> None:
        self._buf = bytearray()
        self._issues: deque[DecodeIssue] = deque(maxlen=MAX_ISSUES)
        self._in_garbage = False
        self.stats: dict[str, int] = dict.fromkeys(
            (
                "frames",
                "crc_errors",
                "resyncs",
                "unknown_types",
                "bad_payloads",
                "oversized",
                "discarded_bytes",
                "issues_dropped",
            ),
            0,
        )

    @property
    def buffered(self) -> int:
        """Bytes held back: an incomplete frame candidate (or a lone first sync byte)."""
        return len(self._buf)

    def feed(self, data: bytes | bytearray | memoryview) -> list[Frame]:
        """Add received bytes; return the frames completed by them, in order."""
        self._buf += data
        return self._parse()

    def flush(self) -> list[Frame]:
        """The line went idle: give up incomplete candidates and return what follows them.

        Bytes still waiting for the rest of a frame are treated as a truncated
        frame; frames fully contained after its sync marker are returned. The
        buffer is empty afterwards.
        """
        out: list[Frame] = []
        for _ in range(len(self._buf) + 1):  # each round drops at least one byte
            if not self._buf:
                break
            self._discard(1)
            out.extend(self._parse())
        return out

    def reset(self) -> None:
        """Forget buffered bytes (e.g. the port was reopened); stats are kept."""
        if self._buf:
            self._discard(len(self._buf))
        self._in_garbage = False

    def pop_issues(self) -> list[DecodeIssue]:
        """Issues found since the last call, oldest first."""
        issues = list(self._issues)
        self._issues.clear()
        return issues

    # -- internals --

    def _discard(self, n: int) -> None:
        del self._buf[:n]
        self.stats["discarded_bytes"] += n
        if not self._in_garbage:
            self._in_garbage = True
            self.stats["resyncs"] += 1

    def _issue(self, kind: IssueKind, msg_type: int | None, seq: int | None, detail: str) -> None:
        if len(self._issues) == MAX_ISSUES:
            self.stats["issues_dropped"] += 1
        self._issues.append(DecodeIssue(kind, msg_type, seq, detail))

    def _parse(self) -> list[Frame]:
        buf = self._buf
        out: list[Frame] = []
        stats = self.stats
        while True:
            start = buf.find(SYNC)
            if start < 0:
                # Keep a trailing first sync byte: its partner may come next.
                keep = 1 if buf[-1:] == SYNC[:1] else 0
                if len(buf) > keep:
                    self._discard(len(buf) - keep)
                return out
            if start:
                self._discard(start)
            if len(buf) < 4:
                return out
            length = buf[2] | buf[3] << 8
            if length > MAX_PAYLOAD:
                stats["oversized"] += 1
                self._issue("oversized", None, None, f"length field {length} > {MAX_PAYLOAD}")
                self._discard(1)
                continue
            end = OVERHEAD + length
            if len(buf) < end:
                return out
            msg_type, seq = buf[4], buf[5]
            chunk = buf[2:end]  # a copy: the buffer shrinks below
            if crc16(chunk) != 0:
                stats["crc_errors"] += 1
                self._discard(1)
                continue
            del buf[:end]
            self._in_garbage = False
            layout = _LAYOUTS.get(msg_type)
            if layout is None:
                stats["unknown_types"] += 1
                self._issue("unknown_type", msg_type, seq, f"unknown message type 0x{msg_type:02x}")
                continue
            try:
                msg = layout.decode(bytes(chunk[_HEADER.size : -CRC_SIZE]))
            except ProtocolError as exc:
                stats["bad_payloads"] += 1
                self._issue("bad_payload", msg_type, seq, f"{layout.cls.__name__}: {exc}")
                continue
            stats["frames"] += 1
            out.append(Frame(seq, msg))


def decode_all(data: bytes) -> list[Frame]:
    """All frames in ``data`` (a new decoder, fed once and flushed); for tools and tests."""
    dec = FrameDecoder()
    return dec.feed(data) + dec.flush()


def encode_frames(items: Iterable[tuple[Message, int]]) -> bytes:
    """Concatenated frames of (message, seq) pairs."""
    return b"".join(encode_frame(m, s) for m, s in items)
