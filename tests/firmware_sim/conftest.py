"""Shared fixtures: a small control room as a config dict, and its fabric."""

from __future__ import annotations

import os
from typing import Any

import pytest

os.environ.setdefault("SDL_VIDEODRIVER", "dummy")
os.environ.setdefault("PYGAME_HIDE_SUPPORT_PROMPT", "1")

from firmware_sim.config import build_fabric, parse_config
from firmware_sim.fabric import Fabric


def room_config(**overrides: Any) -> dict[str, Any]:
    """Three Tx, five Rx: a two-screen seat, a lone Rx, a 1x2 wall."""
    cfg: dict[str, Any] = {
        "latency_ms": 0,
        "tx": [
            {"id": "0001", "name": "Radar", "heads": 2},
            {"id": "0002", "name": "Weather", "heads": 1},
            {"id": "0003", "name": "CCTV", "heads": 4, "video": [True, False, True, True]},
        ],
        "rx": [
            {"id": "5001", "heads": 2},
            {"id": "5002"},
            {"id": "5003"},
            {"id": "5011"},
            {"id": "5012"},
        ],
        "seats": [{"name": "seat-A", "screens": ["5001", "5002"]}],
        "walls": [{"name": "wall-1", "rows": 1, "cols": 2, "tiles": ["5011", "5012"],
                   "splice": True}],
    }
    cfg.update(overrides)
    return cfg


@pytest.fixture
def fabric() -> Fabric:
    return build_fabric(parse_config(room_config()))


OPEN_HOSTS: list[Host] = []


@pytest.fixture(autouse=True)
def _close_hosts() -> Any:
    yield
    while OPEN_HOSTS:
        OPEN_HOSTS.pop().close()


class Host:
    """The controller's end of one device link, driven by the test over a real socket."""

    def __init__(self, url: str) -> None:
        import socket
        import time

        from kvm_protocol.session import Session
        from kvm_protocol.transport import unix_socket_path

        if url.startswith("unix://"):
            self.sock = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
            self.sock.settimeout(5)
            self.sock.connect(unix_socket_path(url))
        else:
            assert url.startswith("socket://127.0.0.1:")
            port = int(url.rsplit(":", 1)[1])
            self.sock = socket.create_connection(("127.0.0.1", port), timeout=5)
        self.sock.settimeout(0.02)
        self.session = Session("host", time.monotonic())
        self.events: list[Any] = []
        self.closed = False
        OPEN_HOSTS.append(self)
        self.pump()

    def pump(self) -> None:
        import time

        try:
            data = self.sock.recv(65536)
            if not data:
                self.closed = True
        except TimeoutError:
            data = b""
        except OSError:
            self.closed, data = True, b""
        now = time.monotonic()
        if data:
            self.events += self.session.receive_data(data, now)
        self.events += self.session.tick(now)
        out = self.session.data_to_send()
        if out and not self.closed:
            try:
                self.sock.sendall(out)
            except OSError:
                self.closed = True

    def wait_for(self, predicate: Any, timeout: float = 5.0, what: str = "event") -> Any:
        """Pump until `predicate(event)` holds for a new event; return that event (bounded)."""
        import time

        deadline = time.monotonic() + timeout
        seen = 0
        while time.monotonic() < deadline:
            for event in self.events[seen:]:
                if predicate(event):
                    self.events.remove(event)
                    return event
            seen = len(self.events)
            self.pump()
        raise AssertionError(f"timed out waiting for {what}; events: {self.events[-10:]}")

    def received(self, cls: type, timeout: float = 5.0) -> Any:
        from kvm_protocol.session import Received

        ev = self.wait_for(lambda e: isinstance(e, Received) and isinstance(e.message, cls),
                           timeout, cls.__name__)
        return ev.message

    def send(self, msg: Any) -> int:
        import time

        seq = self.session.send(msg, time.monotonic())
        self.pump()
        return seq

    def close(self) -> None:
        self.sock.close()
