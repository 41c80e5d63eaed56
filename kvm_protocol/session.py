"""Session layer of the serial device link: sequence numbers, acks, retries, link state.

Pure: bytes and the current time (``now``, seconds, any monotonic origin) go in;
events and bytes to send come out. The shell (``kvm_protocol.transport``) does the
port and the clock. The link-state rules are the ``_TRANSITIONS`` table below;
everything else (acks, retries, heartbeats) is bookkeeping around it.

Use::

    s = Session("host", now)                       # or Session("device", now, identity=hello)
    port.write(s.data_to_send())                   # the handshake starts at once
    events = s.receive_data(port.read(...), now)   # Received, Acked, LinkUp, ...
    events += s.tick(now)                          # call at s.next_deadline() at the latest
    seq = s.send(SwitchHead(1, "0001", 1), now)    # then Acked(seq) or SendFailed(seq)
"""

from __future__ import annotations

from collections import deque
from dataclasses import dataclass
from enum import Enum, auto
from typing import Literal

from kvm_protocol.codec import DecodeIssue, Frame, FrameDecoder, ProtocolError, encode_frame
from kvm_protocol.messages import (
    PROTOCOL_VERSION,
    Ack,
    Error,
    ErrorCode,
    Heartbeat,
    Hello,
    HelloRequest,
    Message,
)

Role = Literal["host", "device"]

# Messages only the session itself sends.
_LINK_MESSAGES = (Ack, HelloRequest, Hello, Heartbeat, Error)


@dataclass(frozen=True)
class SessionConfig:
    """Timing of the link (seconds); the defaults are the protocol's."""

    retry_timeout: float = 0.2  # resend an unacknowledged frame after this
    max_tries: int = 5  # transmissions per reliable message before SendFailed
    heartbeat_interval: float = 1.0  # send a Heartbeat after this long without sending
    link_timeout: float = 3.0  # link down after this long without a good frame
    frame_gap: float = 0.1  # an incomplete frame idle this long is dropped
    max_queue: int = 64  # reliable messages waiting behind the one in flight
    hello_interval: float = 1.0  # host: ask again this long after a HelloRequest without Hello


# --- events -----------------------------------------------------------------------


@dataclass(frozen=True, slots=True)
class Received:
    """The peer sent ``message`` (reliable ones are delivered once, in order)."""

    seq: int
    message: Message


@dataclass(frozen=True, slots=True)
class Acked:
    """The reliable message sent with ``seq`` was acknowledged by the peer."""

    seq: int
    message: Message


@dataclass(frozen=True, slots=True)
class SendFailed:
    """The reliable message sent with ``seq`` was not delivered (see ``reason``)."""

    seq: int
    message: Message
    reason: str


@dataclass(frozen=True, slots=True)
class LinkUp:
    """The link is up; ``identity`` is the Hello of the device end of the link."""

    identity: Hello


@dataclass(frozen=True, slots=True)
class LinkDown:
    reason: str


@dataclass(frozen=True, slots=True)
class ProtocolIssue:
    """Something the peer sent was rejected; the session goes on.

    kinds: unknown_type, bad_payload, oversized (from the decoder), unexpected
    (a link message sent in the wrong direction), version (Hello with another
    protocol version; the link stays down), peer_error (the peer sent Error).
    """

    kind: str
    detail: str
    msg_type: int | None = None
    seq: int | None = None


Event = Received | Acked | SendFailed | LinkUp | LinkDown | ProtocolIssue


# --- the link-state machine -----------------------------------------------------------


class State(Enum):
    DOWN = auto()
    UP = auto()


class Input(Enum):
    HELLO = auto()  # a Hello with our protocol version arrived
    HELLO_REQUEST = auto()  # a HelloRequest arrived
    FRAME = auto()  # any other good frame arrived
    SILENCE = auto()  # no good frame for link_timeout
    SEND_FAILED = auto()  # a reliable message ran out of tries
    CONNECTION_LOST = auto()  # the shell lost the port


class Effect(Enum):
    LINK_UP = auto()  # emit LinkUp (host: on every Hello; device: if down before)
    LINK_DOWN = auto()  # emit LinkDown
    RESET_RX = auto()  # the peer (re)started: forget its last reliable sequence number
    SEND_HELLO = auto()  # device: queue our Hello
    ANNOUNCE = auto()  # device: queue our Hello unless the host acked one since the last down
    REQUEST_HELLO = auto()  # host: queue a HelloRequest unless one is pending
    FAIL_PENDING = auto()  # fail every queued/in-flight application message
    RESET_DECODER = auto()  # drop a partial frame


_E = Effect
_DOWN_EFFECTS = (_E.LINK_DOWN, _E.FAIL_PENDING)
# (role, state, input) -> (effects in order, next state). Missing entries: no change.
_TRANSITIONS: dict[tuple[Role, State, Input], tuple[tuple[Effect, ...], State]] = {
    # The host learns who is there (Hello) and asks again until it does.
    ("host", State.DOWN, Input.HELLO): ((_E.RESET_RX, _E.LINK_UP), State.UP),
    ("host", State.UP, Input.HELLO): ((_E.RESET_RX, _E.LINK_UP), State.UP),
    ("host", State.UP, Input.SILENCE): ((*_DOWN_EFFECTS, _E.REQUEST_HELLO), State.DOWN),
    ("host", State.UP, Input.SEND_FAILED): ((*_DOWN_EFFECTS, _E.REQUEST_HELLO), State.DOWN),
    ("host", State.DOWN, Input.SEND_FAILED): ((_E.REQUEST_HELLO,), State.DOWN),
    ("host", State.UP, Input.CONNECTION_LOST): (
        (*_DOWN_EFFECTS, _E.RESET_DECODER, _E.REQUEST_HELLO),
        State.DOWN,
    ),
    ("host", State.DOWN, Input.CONNECTION_LOST): (
        (_E.FAIL_PENDING, _E.RESET_DECODER, _E.REQUEST_HELLO),
        State.DOWN,
    ),
    # The device answers every HelloRequest and is up while it hears the host.
    ("device", State.DOWN, Input.HELLO_REQUEST): (
        (_E.RESET_RX, _E.SEND_HELLO, _E.LINK_UP),
        State.UP,
    ),
    ("device", State.UP, Input.HELLO_REQUEST): ((_E.RESET_RX, _E.SEND_HELLO), State.UP),
    # Back after silence: announce again, so a host that missed a restart of ours
    # resets its duplicate filter before our next reliable message.
    ("device", State.DOWN, Input.FRAME): ((_E.ANNOUNCE, _E.LINK_UP), State.UP),
    ("device", State.UP, Input.SILENCE): (_DOWN_EFFECTS, State.DOWN),
    ("device", State.UP, Input.SEND_FAILED): (_DOWN_EFFECTS, State.DOWN),
    ("device", State.UP, Input.CONNECTION_LOST): (
        (*_DOWN_EFFECTS, _E.RESET_DECODER),
        State.DOWN,
    ),
    ("device", State.DOWN, Input.CONNECTION_LOST): (
        (_E.FAIL_PENDING, _E.RESET_DECODER),
        State.DOWN,
    ),
}


@dataclass(slots=True)
class _Outgoing:
    seq: int
    message: Message
    frame: bytes
    internal: bool  # sent by the session itself: no Acked/SendFailed events
    tries: int = 0
    deadline: float = 0.0


class Session:
    """One end of the serial link; ``role`` is "host" (controller) or "device" (firmware)."""

    def __init__(
        self,
        role: Role,
        now: float,
        *,
        identity: Hello | None = None,
        config: SessionConfig | None = None,
    ) -> None:
        if role not in ("host", "device"):
            raise ProtocolError(f"role must be 'host' or 'device', not {role!r}")
        if role == "device":
            if not isinstance(identity, Hello):
                raise ProtocolError("a device session needs its Hello as identity")
            encode_frame(identity, 0)  # validate now, not at the first HelloRequest
        self.role: Role = role
        self.config = config or SessionConfig()
        self.state = State.DOWN
        self.identity: Hello | None = identity
        self._t0 = now
        self._decoder = FrameDecoder()
        self._out = bytearray()
        self._queue: deque[_Outgoing] = deque()
        self._inflight: _Outgoing | None = None
        self._next_reliable = 0  # sequence numbers of reliable messages (acked, deduplicated)
        self._next_plain = 0  # sequence numbers of everything else (informative only)
        self._rx_last: int | None = None  # last delivered reliable sequence number of the peer
        self._last_rx = now  # last good frame
        self._last_rx_byte = now
        self._last_tx = now
        self._pending: list[Event] = []  # events made by send(), returned by the next call
        self._pending_at = now
        self._announced: Hello | None = None  # identity of the last LinkUp event
        self._up_at = now  # time of the last LinkUp event
        self._hello_acked = False  # device: the host acked our Hello since the link went down
        self._hello_due = now  # host: when to ask again if a HelloRequest got no Hello
        self._counters = dict.fromkeys(
            ("sent_frames", "retransmits", "duplicates", "stale_acks", "acked", "send_failed"), 0
        )
        if role == "host":
            self._request_hello(now)
        else:
            self._send_hello(now)  # announce: a host that missed our restart learns it

    # -- public API --

    @property
    def link_up(self) -> bool:
        return self.state is State.UP

    @property
    def stats(self) -> dict[str, int]:
        """Decoder counters (frames, crc_errors, resyncs, ...) plus session counters."""
        return {**self._decoder.stats, **self._counters}

    def send(self, msg: Message, now: float) -> int:
        """Queue ``msg``; return its sequence number. Raises ProtocolError if invalid.

        Messages with ``needs_ack`` are sent one at a time, in order, each retried
        until acknowledged: the outcome is a later ``Acked(seq)`` or
        ``SendFailed(seq)`` (at once, on the next call, when the link is down).
        Others are sent immediately, once.
        """
        if not isinstance(msg, Message):
            raise ProtocolError(f"not a protocol message: {msg!r}")
        if isinstance(msg, _LINK_MESSAGES):
            raise ProtocolError(f"{type(msg).__name__} is sent by the session itself")
        if not msg.needs_ack:
            self._send_plain(msg, now)
            return (self._next_plain - 1) % 256
        item = self._new_reliable(msg, internal=False)
        if self.state is State.DOWN:
            self._fail_later(item, "link down", now)
        elif len(self._queue) >= self.config.max_queue:
            self._fail_later(item, "send queue full", now)
        else:
            self._queue.append(item)
            self._pump(now)
        return item.seq

    def receive_data(self, data: bytes | bytearray | memoryview, now: float) -> list[Event]:
        """Feed bytes read from the port; return what happened."""
        events = self._take_pending()
        if data:
            self._last_rx_byte = now
            frames = self._decoder.feed(data)
            self._handle_frames(frames, now, events)
        self._pump(now)
        return events

    def tick(self, now: float) -> list[Event]:
        """Run the timers (retries, heartbeats, link timeout); call at ``next_deadline()``."""
        events = self._take_pending()
        cfg = self.config
        item = self._inflight
        if item is not None and now >= item.deadline:
            if item.tries < cfg.max_tries:
                self._transmit(item, now)
                self._counters["retransmits"] += 1
            else:
                self._inflight = None
                self._counters["send_failed"] += 1
                name = type(item.message).__name__
                reason = f"no ack for {name} (seq {item.seq}) after {item.tries} tries"
                if not item.internal:
                    events.append(SendFailed(item.seq, item.message, reason))
                self._input(Input.SEND_FAILED, reason, now, events)
        if self._decoder.buffered and now - self._last_rx_byte >= cfg.frame_gap:
            self._handle_frames(self._decoder.flush(), now, events)
        if self.state is State.UP and now - self._last_rx >= cfg.link_timeout:
            self._input(Input.SILENCE, f"no frame for {cfg.link_timeout:g} s", now, events)
        if self._asking_again() and now >= self._hello_due:
            self._request_hello(now)  # acked, but no (acceptable) Hello came back
        if now - self._last_tx >= cfg.heartbeat_interval:
            uptime_ms = int((now - self._t0) * 1000) % 2**32
            self._send_plain(Heartbeat(uptime_ms), now)
        self._pump(now)
        return events

    def connection_lost(self, reason: str, now: float) -> list[Event]:
        """The shell lost the port (closed, unplugged): link down, partial frame dropped."""
        events = self._take_pending()
        self._out.clear()  # written nowhere; the handshake is queued again below
        self._input(Input.CONNECTION_LOST, f"connection lost: {reason}", now, events)
        return events

    def data_to_send(self) -> bytes:
        """Bytes to write to the port (taken: a second call returns only newer bytes)."""
        out = bytes(self._out)
        self._out.clear()
        return out

    def next_deadline(self) -> float:
        """Time by which ``tick`` must be called."""
        cfg = self.config
        times = [self._last_tx + cfg.heartbeat_interval]
        if self._pending:
            times.append(self._pending_at)
        if self._inflight is not None:
            times.append(self._inflight.deadline)
        if self.state is State.UP:
            times.append(self._last_rx + cfg.link_timeout)
        if self._decoder.buffered:
            times.append(self._last_rx_byte + cfg.frame_gap)
        if self._asking_again():
            times.append(self._hello_due)
        return min(times)

    # -- link-state machine --

    def _input(self, inp: Input, reason: str, now: float, events: list[Event]) -> None:
        effects, next_state = _TRANSITIONS.get((self.role, self.state, inp), ((), self.state))
        was_up = self.state is State.UP
        self.state = next_state
        for effect in effects:
            if effect is Effect.LINK_UP:
                # A Hello while up, after the burst that brought the link up (announce +
                # answer), means the device restarted and lost its heads: the host reports
                # it again so the controller re-syncs.
                restarted = (
                    self.role == "host" and now - self._up_at >= self.config.hello_interval
                )
                fresh = not was_up or self.identity != self._announced or restarted
                if self.identity is not None and fresh:
                    self._announced = self.identity
                    self._up_at = now
                    events.append(LinkUp(self.identity))
            elif effect is Effect.LINK_DOWN:
                self._hello_acked = False
                events.append(LinkDown(reason))
            elif effect is Effect.RESET_RX:
                self._rx_last = None
            elif effect is Effect.SEND_HELLO or (
                effect is Effect.ANNOUNCE and not self._hello_acked
            ):
                self._send_hello(now)
            elif effect is Effect.REQUEST_HELLO:
                self._request_hello(now)
            elif effect is Effect.FAIL_PENDING:
                self._fail_pending(events)
            elif effect is Effect.RESET_DECODER:
                self._decoder.reset()

    # -- receiving --

    def _handle_frames(self, frames: list[Frame], now: float, events: list[Event]) -> None:
        for issue in self._decoder.pop_issues():
            self._report(issue, now, events)
        for frame in frames:
            self._last_rx = now
            self._handle_frame(frame, now, events)

    def _handle_frame(self, frame: Frame, now: float, events: list[Event]) -> None:
        msg = frame.message
        if msg.needs_ack:
            self._send_plain(Ack(frame.seq), now)  # duplicates too: our last Ack may be lost
        if isinstance(msg, Ack):
            self._on_ack(msg.ack_seq, events)
            self._input(Input.FRAME, "", now, events)
        elif isinstance(msg, Hello):
            if self.role != "host":
                self._unexpected(frame, events)
            elif msg.protocol_version != PROTOCOL_VERSION:
                detail = f"device speaks version {msg.protocol_version}, we {PROTOCOL_VERSION}"
                events.append(ProtocolIssue("version", detail, msg.TYPE, frame.seq))
            else:
                self.identity = msg
                self._input(Input.HELLO, "", now, events)
                self._rx_last = frame.seq
        elif isinstance(msg, HelloRequest):
            if self.role != "device":
                self._unexpected(frame, events)
            else:
                self._input(Input.HELLO_REQUEST, "", now, events)
                self._rx_last = frame.seq
        else:
            self._input(Input.FRAME, "", now, events)
            if isinstance(msg, Heartbeat):
                return
            if isinstance(msg, Error):
                detail = f"peer rejected type 0x{msg.about_type:02x}: {msg.code.name} {msg.detail}"
                events.append(ProtocolIssue("peer_error", detail.strip(), msg.about_type))
            elif msg.needs_ack and frame.seq == self._rx_last:
                self._counters["duplicates"] += 1  # a retry whose Ack was lost: re-acked above
            else:
                if msg.needs_ack:
                    self._rx_last = frame.seq
                events.append(Received(frame.seq, msg))

    def _on_ack(self, ack_seq: int, events: list[Event]) -> None:
        item = self._inflight
        if item is None or item.seq != ack_seq:
            self._counters["stale_acks"] += 1  # an Ack of a retry we already counted
            return
        self._inflight = None
        self._counters["acked"] += 1
        if isinstance(item.message, Hello):
            self._hello_acked = True
        if not item.internal:
            events.append(Acked(item.seq, item.message))

    def _unexpected(self, frame: Frame, events: list[Event]) -> None:
        name = type(frame.message).__name__
        events.append(
            ProtocolIssue("unexpected", f"{name} sent to a {self.role}", frame.message.TYPE)
        )

    def _report(self, issue: DecodeIssue, now: float, events: list[Event]) -> None:
        events.append(ProtocolIssue(issue.kind, issue.detail, issue.msg_type, issue.seq))
        if issue.kind == "oversized" or issue.msg_type in (None, Error.TYPE):
            return  # maybe just noise; and never answer an Error with an Error
        code = ErrorCode.UNKNOWN_TYPE if issue.kind == "unknown_type" else ErrorCode.BAD_PAYLOAD
        detail = "".join(c if " " <= c <= "~" else "?" for c in issue.detail)[:64]
        self._send_plain(Error(code, issue.msg_type, detail), now)

    # -- sending --

    def _send_plain(self, msg: Message, now: float) -> None:
        self._out += encode_frame(msg, self._next_plain)
        self._next_plain = (self._next_plain + 1) % 256
        self._last_tx = now
        self._counters["sent_frames"] += 1

    def _new_reliable(self, msg: Message, internal: bool) -> _Outgoing:
        seq = self._next_reliable
        frame = encode_frame(msg, seq)  # raises ProtocolError before a number is used
        self._next_reliable = (seq + 1) % 256
        return _Outgoing(seq, msg, frame, internal)

    def _transmit(self, item: _Outgoing, now: float) -> None:
        self._out += item.frame
        item.tries += 1
        item.deadline = now + self.config.retry_timeout
        self._last_tx = now
        self._counters["sent_frames"] += 1

    def _pump(self, now: float) -> None:
        if self._inflight is None and self._queue:
            self._inflight = self._queue.popleft()
            self._transmit(self._inflight, now)

    def _pending_of(self, cls: type[Message]) -> bool:
        return any(isinstance(p.message, cls) for p in (self._inflight, *self._queue) if p)

    def _asking_again(self) -> bool:
        return (
            self.role == "host" and self.state is State.DOWN and not self._pending_of(HelloRequest)
        )

    def _request_hello(self, now: float) -> None:
        if not self._pending_of(HelloRequest):
            self._queue.appendleft(self._new_reliable(HelloRequest(), internal=True))
            self._hello_due = now + self.config.hello_interval
            self._pump(now)

    def _send_hello(self, now: float) -> None:
        # One pending Hello is enough: an in-flight one is retried anyway.
        if self.identity is not None and not self._pending_of(Hello):
            self._queue.appendleft(self._new_reliable(self.identity, internal=True))
            self._pump(now)

    def _fail_pending(self, events: list[Event]) -> None:
        items = [self._inflight, *self._queue]
        self._inflight = None
        self._queue.clear()
        for item in items:
            if item is not None and not item.internal:
                self._counters["send_failed"] += 1
                events.append(SendFailed(item.seq, item.message, "link down"))

    def _fail_later(self, item: _Outgoing, reason: str, now: float) -> None:
        if not self._pending:
            self._pending_at = now
        self._counters["send_failed"] += 1
        self._pending.append(SendFailed(item.seq, item.message, reason))

    def _take_pending(self) -> list[Event]:
        events, self._pending = self._pending, []
        return events
