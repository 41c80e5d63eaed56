"""Fixtures for the serial link tests: an in-memory connection pair of two Sessions."""

from __future__ import annotations

from collections.abc import Callable

import pytest

from kvm_protocol import messages as m
from kvm_protocol.codec import Frame, decode_all, encode_frame
from kvm_protocol.session import Event, Session, SessionConfig

DEVICE_HELLO = m.Hello(m.PROTOCOL_VERSION, m.DeviceKind.RX, "SIM-RX-5001", 2, "RX-FW 2.4.1")

# Return True to drop a frame in transit.
FrameFilter = Callable[[Frame], bool]


class Pair:
    """A host and a device Session wired back to back; time moves only by ``advance``."""

    def __init__(self, config: SessionConfig | None = None, hello: m.Hello = DEVICE_HELLO) -> None:
        self.now = 0.0
        self.config = config
        self.host = Session("host", self.now, config=config)
        self.device = Session("device", self.now, identity=hello, config=config)
        self.events: dict[str, list[Event]] = {"host": [], "device": []}
        self.wire: dict[str, list[Frame]] = {"h2d": [], "d2h": []}  # every frame sent
        self.drop: dict[str, FrameFilter | None] = {"h2d": None, "d2h": None}
        self.mangle: dict[str, Callable[[bytes], bytes] | None] = {"h2d": None, "d2h": None}
        self.cut = False  # both directions lose everything

    def restart_device(self, hello: m.Hello = DEVICE_HELLO) -> None:
        self.device = Session("device", self.now, identity=hello, config=self.config)

    def restart_host(self) -> None:
        self.host = Session("host", self.now, config=self.config)

    def _carry(self, direction: str, src: Session, dst: Session, who: str) -> bool:
        data = src.data_to_send()
        if not data:
            return False
        frames = decode_all(data)
        assert b"".join(encode_frame(f.message, f.seq) for f in frames) == data
        self.wire[direction] += frames
        drop = self.drop[direction]
        kept = [f for f in frames if not self.cut and not (drop and drop(f))]
        payload = b"".join(encode_frame(f.message, f.seq) for f in kept)
        mangle = self.mangle[direction]
        if mangle is not None and payload:
            payload = mangle(payload)
        self.events[who] += dst.receive_data(payload, self.now)
        return True

    def pump(self) -> None:
        for _ in range(100):  # bounded: each round is one exchange
            moved = self._carry("h2d", self.host, self.device, "device")
            moved |= self._carry("d2h", self.device, self.host, "host")
            if not moved:
                return
        raise AssertionError("the sessions keep talking without time passing")

    def advance(self, seconds: float, step: float = 0.01) -> None:
        self.pump()
        end = self.now + seconds
        for _ in range(int(seconds / step) + 2):
            if self.now >= end - 1e-9:
                break
            self.now = min(end, self.now + step)
            self.events["host"] += self.host.tick(self.now)
            self.events["device"] += self.device.tick(self.now)
            self.pump()

    def take(self, who: str) -> list[Event]:
        events, self.events[who] = self.events[who], []
        return events

    def sent(self, direction: str, cls: type[m.Message]) -> list[Frame]:
        return [f for f in self.wire[direction] if isinstance(f.message, cls)]


@pytest.fixture
def pair() -> Pair:
    p = Pair()
    p.pump()
    return p
