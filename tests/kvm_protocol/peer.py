"""A device end for integration tests and benchmarks: a device Session served on a raw fd.

The fd is a pty master or a connected TCP socket. The device answers every
SwitchHead with an OK SwitchResult, as firmware would. A thread runs the loop;
every wait is bounded.
"""

from __future__ import annotations

import os
import select
import socket
import threading
import time
from collections.abc import Callable

from kvm_protocol import messages as m
from kvm_protocol.codec import encode_frame
from kvm_protocol.session import Event, Received, Session, SessionConfig

DEVICE_HELLO = m.Hello(m.PROTOCOL_VERSION, m.DeviceKind.RX, "SIM-RX-5001", 2, "RX-FW 2.4.1")


class Recorder:
    """Thread-safe event list with a bounded wait."""

    def __init__(self) -> None:
        self.events: list[Event] = []
        self._cond = threading.Condition()

    def __call__(self, event: Event) -> None:
        with self._cond:
            self.events.append(event)
            self._cond.notify_all()

    def wait_for(self, pred: Callable[[list[Event]], bool], timeout: float = 5.0) -> list[Event]:
        deadline = time.monotonic() + timeout
        with self._cond:
            while not pred(self.events):
                left = deadline - time.monotonic()
                if left <= 0:
                    raise AssertionError(f"timed out; events so far: {self.events}")
                self._cond.wait(left)
            return list(self.events)

    def of(self, cls: type) -> list[Event]:
        with self._cond:
            return [e for e in self.events if isinstance(e, cls)]


class FdDevice:
    """Serve a device Session on ``fd`` until stopped or the fd reaches EOF."""

    def __init__(
        self,
        fd: int,
        hello: m.Hello = DEVICE_HELLO,
        config: SessionConfig | None = None,
        close: Callable[[], None] | None = None,
    ) -> None:
        self.fd = fd
        self._close = close or (lambda: os.close(fd))
        self.session = Session("device", time.monotonic(), identity=hello, config=config)
        self.recorder = Recorder()
        self.lock = threading.Lock()
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._run, name="fd-device", daemon=True)
        self._thread.start()

    def send(self, msg: m.Message) -> int:
        with self.lock:
            seq = self.session.send(msg, time.monotonic())
            self._flush()
        return seq

    def write_raw(self, data: bytes) -> None:
        with self.lock:
            os.write(self.fd, data)

    def close_mid_frame(self) -> None:
        """Send half a frame, then hang up (the port vanishes mid-frame)."""
        self._stop.set()
        self._thread.join(5)
        with self.lock:
            os.write(self.fd, encode_frame(m.KeyInput(4, 0, True), 0)[:5])
            self._close()

    def stop(self) -> None:
        self._stop.set()
        self._thread.join(5)

    def _flush(self) -> None:
        data = self.session.data_to_send()
        if data:
            os.write(self.fd, data)

    def _run(self) -> None:
        while not self._stop.is_set():
            ready, _, _ = select.select([self.fd], [], [], 0.02)
            data = b""
            if ready:
                try:
                    data = os.read(self.fd, 4096)
                except OSError:
                    data = b""
                if not data:
                    return  # EOF / hang-up
            with self.lock:
                now = time.monotonic()
                events = self.session.receive_data(data, now)
                if now >= self.session.next_deadline():
                    events += self.session.tick(now)
                for ev in events:
                    if isinstance(ev, Received) and isinstance(ev.message, m.SwitchHead):
                        result = m.SwitchResult(ev.seq, ev.message.head, m.SwitchStatus.OK)
                        self.session.send(result, now)
                    # Recorded before the answer and the ack go out: a test that has seen the
                    # ack finds what this device received (recording after the write raced it).
                    self.recorder(ev)
                self._flush()


class TcpDeviceServer:
    """127.0.0.1, a free port (or, with ``unix``, a Unix-domain socket at that path); serves
    one FdDevice per accepted connection."""

    def __init__(self, config: SessionConfig | None = None, *, unix: str | None = None) -> None:
        self.config = config
        if unix is None:
            self.sock = socket.create_server(("127.0.0.1", 0))
            self.port = self.sock.getsockname()[1]
            self.url = f"socket://127.0.0.1:{self.port}"
        else:
            self.sock = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
            self.sock.bind(unix)
            self.sock.listen()
            self.port = 0
            self.url = f"unix://{unix}"
        self.sock.settimeout(0.05)
        self.devices: list[FdDevice] = []
        self._conns: list[socket.socket] = []
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._accept, name="tcp-device", daemon=True)
        self._thread.start()

    def _accept(self) -> None:
        while not self._stop.is_set():
            try:
                conn, _ = self.sock.accept()
            except TimeoutError:
                continue
            if conn.family != socket.AF_UNIX:
                conn.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
            self._conns.append(conn)
            self.devices.append(FdDevice(conn.fileno(), config=self.config, close=conn.close))

    def wait_device(self, count: int, timeout: float = 5.0) -> FdDevice:
        deadline = time.monotonic() + timeout
        while len(self.devices) < count:
            if time.monotonic() > deadline:
                raise AssertionError(f"only {len(self.devices)} connections")
            time.sleep(0.01)
        return self.devices[count - 1]

    def close(self) -> None:
        self._stop.set()
        self._thread.join(5)
        for dev in self.devices:
            dev.stop()
        for conn in self._conns:
            conn.close()
        self.sock.close()
