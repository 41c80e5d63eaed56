"""Thin shell of the serial device link: a pyserial port, a reader thread, a Session.

Ports are URLs (``/dev/ttyS1``, a pty path, ``socket://127.0.0.1:7001``,
``loop://``), opened by ``serial.serial_for_url``. Framing, acks and timers are
in ``codec`` and ``session``; this module only moves bytes and calls the clock.
"""

from __future__ import annotations

import contextlib
import logging
import socket
import threading
import time
from collections.abc import Callable

import serial

from kvm_protocol.messages import Hello, Message
from kvm_protocol.session import Event, LinkDown, Role, Session, SessionConfig

log = logging.getLogger(__name__)

BAUDRATE = 115200
READ_TIMEOUT = 0.05  # also the granularity of the session timers and of close()
MAX_READ = 4096


def open_port(url: str, *, timeout: float = READ_TIMEOUT) -> serial.SerialBase:
    """Open ``url`` at 115200 8N1; a stuck write fails after 1 s instead of hanging."""
    port = serial.serial_for_url(url, baudrate=BAUDRATE, timeout=timeout, write_timeout=1.0)
    sock = getattr(port, "_socket", None)  # socket:// -- pyserial has no public accessor
    if isinstance(sock, socket.socket):
        # Small frames back to back: without this, Nagle + delayed ACK add up to 40 ms.
        with contextlib.suppress(OSError):
            sock.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
    return port


class Link:
    """A Session on a port, run by a reader thread that reopens the port when it is lost.

    ``on_event`` is called from the reader thread with every session Event, plus a
    ``LinkDown`` when the port cannot be opened (once per run of failures).
    ``send`` may be called from any thread (including from ``on_event``).
    """

    def __init__(
        self,
        url: str,
        on_event: Callable[[Event], None],
        *,
        role: Role = "host",
        identity: Hello | None = None,
        config: SessionConfig | None = None,
        opener: Callable[[str], serial.SerialBase] = open_port,
        clock: Callable[[], float] = time.monotonic,
        backoff: tuple[float, float] = (0.1, 2.0),
    ) -> None:
        self.url = url
        self._on_event = on_event
        self._opener = opener
        self._clock = clock
        self._backoff = backoff
        self._lock = threading.Lock()  # guards the session and writes to the port
        self._session = Session(role, clock(), identity=identity, config=config)
        self._port: serial.SerialBase | None = None
        self._write_error: Exception | None = None
        self._next_open = 0.0  # clock time of the next attempt to open the port
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._run, name=f"kvm-link {url}", daemon=True)
        self._thread.start()

    @property
    def link_up(self) -> bool:
        with self._lock:
            return self._session.link_up

    @property
    def identity(self) -> Hello | None:
        with self._lock:
            return self._session.identity

    @property
    def stats(self) -> dict[str, int]:
        with self._lock:
            return self._session.stats

    def send(self, msg: Message) -> int:
        """Send ``msg``; return its sequence number (see ``Session.send``)."""
        with self._lock:
            seq = self._session.send(msg, self._clock())
            self._write_out()
        return seq

    def close(self) -> None:
        """Stop the reader thread and close the port."""
        self._stop.set()
        port = self._port
        if port is not None and hasattr(port, "cancel_read"):
            with contextlib.suppress(Exception):
                port.cancel_read()
        if threading.current_thread() is not self._thread:
            self._thread.join()

    def __enter__(self) -> Link:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()

    # -- reader thread --

    def _write_out(self) -> None:
        """Write what the session has to send; called with the lock held."""
        data = self._session.data_to_send()
        if not data or self._port is None or self._write_error is not None:
            return  # no port: the bytes are lost, the session retries what matters
        try:
            self._port.write(data)
        except (serial.SerialException, OSError) as exc:
            self._write_error = exc  # the reader thread drops the port

    def _deliver(self, events: list[Event]) -> None:
        for event in events:
            try:
                self._on_event(event)
            except Exception:
                log.exception("%s: on_event failed for %r", self.url, event)

    def _step(self, data: bytes) -> None:
        now = self._clock()
        with self._lock:
            events = self._session.receive_data(data, now) if data else []
            if now >= self._session.next_deadline():
                events += self._session.tick(now)
            self._write_out()
        self._deliver(events)

    def _run(self) -> None:
        delay, failing = self._backoff[0], False
        while not self._stop.is_set():
            if self._port is None:
                if self._clock() < self._next_open:
                    self._step(b"")  # timers run on, so pending sends fail in time
                    self._stop.wait(READ_TIMEOUT)
                    continue
                try:
                    port = self._opener(self.url)
                except Exception as exc:  # any opener error: retry, never die
                    if not failing:
                        log.warning("%s: cannot open port: %s", self.url, exc)
                        self._deliver([LinkDown(f"cannot open {self.url}: {exc}")])
                    failing = True
                    self._next_open = self._clock() + delay
                    delay = min(delay * 2, self._backoff[1])
                    continue
                with self._lock:
                    self._port, self._write_error = port, None
                    self._write_out()  # the handshake queued by connection_lost
                delay, failing = self._backoff[0], False
            try:
                if self._write_error is not None:
                    raise self._write_error
                port = self._port
                assert port is not None
                data = port.read(1)  # waits up to READ_TIMEOUT
                if data:  # then take what else is there (in_waiting is not in SerialBase's stub)
                    waiting = int(getattr(port, "in_waiting", 0))
                    if waiting:
                        data += port.read(min(waiting, MAX_READ))
                self._step(data)
            except Exception as exc:  # a vanished port raises SerialException or OSError
                self._lose_port(str(exc) or type(exc).__name__)
        with self._lock:
            last, self._port = self._port, None
        if last is not None:
            with contextlib.suppress(Exception):
                last.close()

    def _lose_port(self, reason: str) -> None:
        log.warning("%s: port lost: %s", self.url, reason)
        with self._lock:
            port, self._port = self._port, None
            events = self._session.connection_lost(reason, self._clock())
        if port is not None:
            with contextlib.suppress(Exception):
                port.close()
        self._next_open = self._clock() + self._backoff[0]
        self._deliver(events)
