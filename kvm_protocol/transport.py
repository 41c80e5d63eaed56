"""Thin shell of the serial device link: pyserial ports, a Session each, one I/O thread.

Ports are URLs (``/dev/ttyS1``, a pty path, ``socket://127.0.0.1:7001``,
``unix:///run/kvm-sim/5001``, ``loop://``), opened by ``serial.serial_for_url`` (``unix://``
by ``_UnixSerial``: pyserial has no such handler). Framing, acks and timers are
in ``codec`` and ``session``; this module only moves bytes and calls the clock.

A ``LinkLoop`` is one thread that carries any number of ``Link``s: a selector on
their ports' file descriptors and a heap of their sessions' deadlines, so an idle
link costs nothing between its heartbeats. One process may run a thousand
controllers on one loop (``osd.hub.Hub`` owns one); a ``Link`` made without a loop
gets a private one. Nothing here is module-level state.
"""

from __future__ import annotations

import contextlib
import heapq
import itertools
import logging
import os
import select
import selectors
import socket
import threading
import time
from collections import deque
from collections.abc import Callable

import serial
from serial.urlhandler import protocol_socket

from kvm_protocol.messages import Hello, Message
from kvm_protocol.session import Event, LinkDown, Role, Session, SessionConfig

log = logging.getLogger(__name__)

BAUDRATE = 115200
READ_TIMEOUT = 0.05  # polling period of a port without a file descriptor (loop://)
MAX_SLEEP = 1.0  # the loop looks around at least this often
MAX_READ = 65536
WRITE_TIMEOUT = 1.0  # a write that cannot go out for this long fails (the port is dropped)
CLOSE_WAIT_S = 5.0  # bound on waiting for the loop thread to let go of a closed link
LATER_BY_S = 0.1  # a link's deadline moved later by more than this: its wake-up moves too


class _SocketSerial(protocol_socket.Serial):
    """pyserial's ``socket://`` port, opened without ``select.select`` (see ``_read_now``)."""

    def reset_input_buffer(self) -> None:
        if not self.is_open:
            raise serial.PortNotOpenError()
        sock: socket.socket = self._socket  # type: ignore[attr-defined]
        with contextlib.suppress(BlockingIOError, InterruptedError):
            while sock.recv(4096):   # non-blocking: drains what is there
                pass


class _UnixSerial(_SocketSerial):
    """A port that is a Unix-domain stream socket, ``unix:///absolute/path``: a device
    simulated on the same machine (the lab). The bytes are the same as on a serial line; a
    frame costs the two ends about a third of what it costs over TCP on the loopback."""

    def open(self) -> None:
        self.logger = None
        if self.portstr is None:
            raise serial.SerialException("Port must be configured before it can be used.")
        if self.is_open:
            raise serial.SerialException("Port is already open.")
        path = unix_socket_path(self.portstr)
        sock = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
        sock.settimeout(protocol_socket.POLL_TIMEOUT)   # a full backlog waits, boundedly
        try:
            sock.connect(path)
        except OSError as e:
            sock.close()
            raise serial.SerialException(f"Could not open port {self.portstr}: {e}") from None
        sock.setblocking(False)
        self._socket = sock
        self.is_open = True
        self.reset_input_buffer()


def unix_socket_path(url: str) -> str:
    """The path of a ``unix://`` URL (``unix:///tmp/sim/5001`` → ``/tmp/sim/5001``)."""
    path = url[len("unix://"):] if url.startswith("unix://") else ""
    if not path.startswith("/"):
        raise serial.SerialException(
            f"expected unix:///ABSOLUTE/PATH, got {url!r}")
    return path


def open_port(url: str, *, timeout: float = READ_TIMEOUT) -> serial.SerialBase:
    """Open ``url`` at 115200 8N1; a stuck write fails after 1 s instead of hanging."""
    if url.startswith("socket://"):
        port: serial.SerialBase = _SocketSerial(url, baudrate=BAUDRATE, timeout=timeout,
                                                write_timeout=WRITE_TIMEOUT)
    elif url.startswith("unix://"):
        port = _UnixSerial(url, baudrate=BAUDRATE, timeout=timeout, write_timeout=WRITE_TIMEOUT)
    else:
        port = serial.serial_for_url(url, baudrate=BAUDRATE, timeout=timeout,
                                     write_timeout=WRITE_TIMEOUT)
    sock = getattr(port, "_socket", None)  # socket:// -- pyserial has no public accessor
    if isinstance(sock, socket.socket) and sock.family in (socket.AF_INET, socket.AF_INET6):
        # Small frames back to back: without this, Nagle + delayed ACK add up to 40 ms.
        with contextlib.suppress(OSError):
            sock.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
    return port


def _read_now(port: serial.SerialBase, fd: int | None) -> bytes:
    """What is there to read (the selector said the port is readable).

    A port with a descriptor (a tty or a socket, both non-blocking) is read directly:
    pyserial's own read calls ``select.select``, which fails for descriptors above 1,023,
    and a controller host has thousands.
    """
    if fd is None:
        return bytes(port.read(MAX_READ))   # timeout 0
    try:
        data = os.read(fd, MAX_READ)
    except (BlockingIOError, InterruptedError):
        return b""
    if not data:
        raise serial.SerialException("port closed by the other end")
    return data


def _write_all(port: serial.SerialBase, fd: int | None, data: bytes) -> None:
    """Write ``data`` (pyserial's write also calls ``select.select``; see ``_read_now``)."""
    if fd is None:
        port.write(data)
        return
    view = memoryview(data)
    deadline = time.monotonic() + WRITE_TIMEOUT
    poller: select.poll | None = None
    while view:
        try:
            view = view[os.write(fd, view):]
            continue
        except (BlockingIOError, InterruptedError):
            pass
        left = deadline - time.monotonic()
        if left <= 0:
            raise serial.SerialTimeoutException("write timeout")
        if poller is None:
            poller = select.poll()
            poller.register(fd, select.POLLOUT)
        poller.poll(left * 1000)


class LinkLoop:
    """One thread that runs the I/O and timers of many ``Link``s.

    Callbacks (``on_event`` of every link) run on this thread: keep them short and never
    block in them. ``close()`` stops the thread and closes every link still on it.
    """

    def __init__(self, *, clock: Callable[[], float] = time.monotonic,
                 name: str = "kvm-links") -> None:
        self.clock = clock
        self._sel = selectors.DefaultSelector()
        self._wake_r, self._wake_w = socket.socketpair()
        self._wake_r.setblocking(False)
        self._wake_w.setblocking(False)
        self._sel.register(self._wake_r, selectors.EVENT_READ, None)
        self._lock = threading.Lock()
        self._heap: list[tuple[float, int, Link]] = []
        self._seq = itertools.count()
        self._calls: deque[Callable[[], None]] = deque()
        self._sleep_until = float("inf")  # when the sleeping loop wakes; -inf while awake
        self._links: set[Link] = set()
        self._closed = False
        self._thread = threading.Thread(target=self._run, name=name, daemon=True)
        self._thread.start()

    def in_loop(self) -> bool:
        return threading.current_thread() is self._thread

    def call_soon(self, fn: Callable[[], None]) -> bool:
        """Run ``fn`` on the loop thread; False when the loop is closed."""
        with self._lock:
            if self._closed:
                return False
            self._calls.append(fn)
        self._poke()
        return True

    def schedule(self, link: Link, when: float) -> None:
        """Call ``link._on_due`` at ``when`` (loop clock). Thread-safe."""
        with self._lock:
            if self._closed:
                return
            heapq.heappush(self._heap, (when, next(self._seq), link))
            early = when < self._sleep_until
        if early:
            self._poke()

    def watch(self, link: Link, fd: int) -> None:
        """Loop thread only: call ``link._on_readable`` when ``fd`` has data."""
        self._sel.register(fd, selectors.EVENT_READ, link)

    def unwatch(self, fd: int) -> None:
        with contextlib.suppress(KeyError, ValueError, OSError):
            self._sel.unregister(fd)

    def close(self) -> None:
        """Close every link on the loop and stop the thread (bounded wait)."""
        with self._lock:
            if self._closed:
                return
            self._closed = True
        self._poke()
        if not self.in_loop():
            self._thread.join(CLOSE_WAIT_S)

    def _poke(self) -> None:
        with contextlib.suppress(OSError):  # full (a wake-up is already pending) or closed
            self._wake_w.send(b"\0")

    def _run(self) -> None:
        try:
            while not self._closed:
                self._run_calls()
                self._run_due()
                with self._lock:
                    now = self.clock()
                    timeout = self._heap[0][0] - now if self._heap else MAX_SLEEP
                    timeout = 0.0 if self._calls else min(max(timeout, 0.0), MAX_SLEEP)
                    self._sleep_until = now + timeout
                ready = self._sel.select(timeout)
                with self._lock:
                    self._sleep_until = float("-inf")
                for key, _ in ready:
                    link = key.data
                    if link is None:
                        with contextlib.suppress(OSError):
                            while self._wake_r.recv(4096):
                                pass
                    else:
                        link._on_readable()
        except Exception:  # a bug here must not leave links silently dead
            log.exception("link loop failed")
        finally:
            self._shutdown()

    def _run_calls(self) -> None:
        while True:
            with self._lock:
                if not self._calls:
                    return
                fn = self._calls.popleft()
            try:
                fn()
            except Exception:
                log.exception("link loop call failed")

    def _run_due(self) -> None:
        now = self.clock()
        due: list[Link] = []
        with self._lock:
            while self._heap and self._heap[0][0] <= now:
                when, _, link = heapq.heappop(self._heap)
                if link._scheduled == when:   # else moved: a newer entry stands for it
                    link._scheduled = float("inf")
                    due.append(link)
        for link in dict.fromkeys(due):
            link._on_due()

    def _shutdown(self) -> None:
        self._closed = True
        for link in list(self._links):
            link._detach()
        with self._lock:
            self._heap.clear()
            self._calls.clear()
        self._sel.close()
        self._wake_r.close()
        self._wake_w.close()


class Link:
    """A Session on a port, carried by a ``LinkLoop``; the port is reopened when lost.

    ``on_event`` is called on the loop thread with every session Event, plus a
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
        clock: Callable[[], float] | None = None,
        backoff: tuple[float, float] = (0.1, 2.0),
        loop: LinkLoop | None = None,
    ) -> None:
        self.url = url
        self._on_event = on_event
        self._opener = opener
        self._own_loop = loop is None
        self._loop = loop if loop is not None else LinkLoop(
            clock=clock or time.monotonic, name=f"kvm-link {url}")
        self._clock = clock or self._loop.clock
        self._backoff = backoff
        self._delay, self._failing = backoff[0], False
        self._lock = threading.Lock()  # guards the session, the port and writes to it
        self._session = Session(role, self._clock(), identity=identity, config=config)
        self._port: serial.SerialBase | None = None
        self._fd: int | None = None  # registered with the loop's selector
        self._write_error: Exception | None = None
        self._next_open = 0.0  # clock time of the next attempt to open the port
        self._scheduled = float("inf")  # earliest wake-up this link has asked the loop for
        self._stopped = False
        self._detached = threading.Event()
        if not self._loop.call_soon(self._attach):
            raise RuntimeError("the link loop is closed")

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

    @property
    def running(self) -> bool:
        """False once the link is closed and has let go of its port."""
        return not self._detached.is_set()

    def send(self, msg: Message) -> int:
        """Send ``msg``; return its sequence number (see ``Session.send``)."""
        with self._lock:
            seq = self._session.send(msg, self._clock())
            self._write_out()
            self._reschedule()
        return seq

    def close(self) -> None:
        """Stop the link and close its port (its own loop too, if it has one)."""
        self._stopped = True
        if self._own_loop:
            self._loop.close()
        elif not self._loop.call_soon(self._detach):
            return  # the loop closed: it detached every link
        if not self._loop.in_loop():
            self._detached.wait(CLOSE_WAIT_S)

    def __enter__(self) -> Link:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()

    # -- on the loop thread --

    def _attach(self) -> None:
        self._loop._links.add(self)
        self._on_due()

    def _detach(self) -> None:
        self._stopped = True
        self._loop._links.discard(self)
        with self._lock:
            port, self._port = self._port, None
            self._drop_fd()
        if port is not None:
            with contextlib.suppress(Exception):
                port.close()
        self._detached.set()

    def _drop_fd(self) -> None:
        if self._fd is not None:
            self._loop.unwatch(self._fd)
            self._fd = None

    def _reschedule(self) -> None:
        """Ask the loop for a wake-up at the next deadline; called with the lock held."""
        now = self._clock()
        due = self._session.next_deadline()  # timers run on without a port: sends fail in time
        if self._port is None:
            due = min(due, self._next_open)
        elif self._fd is None:  # no descriptor to select on: poll
            due = min(due, now + READ_TIMEOUT)
        due = max(due, now + 0.001)  # a deadline in the past is handled on the next pass
        # Earlier: always. Much later (a send acked, so no retry is due): too, so that the
        # old wake-up is skipped instead of stepping the link for nothing, once per send.
        if due < self._scheduled or due > self._scheduled + LATER_BY_S:
            self._scheduled = due
            self._loop.schedule(self, due)

    def _write_out(self) -> None:
        """Write what the session has to send; called with the lock held."""
        data = self._session.data_to_send()
        if not data or self._port is None or self._write_error is not None:
            return  # no port: the bytes are lost, the session retries what matters
        try:
            _write_all(self._port, self._fd, data)
        except (serial.SerialException, OSError) as exc:
            self._write_error = exc  # the loop drops the port

    def _deliver(self, events: list[Event]) -> None:
        for event in events:
            try:
                self._on_event(event)
            except Exception:
                log.exception("%s: on_event failed for %r", self.url, event)

    def _on_due(self) -> None:
        if self._stopped:
            return
        if self._port is None and self._clock() >= self._next_open:
            self._open()
        if self._port is not None and self._fd is None:
            self._on_readable()  # polled port
            return
        self._step(b"")

    def _on_readable(self) -> None:
        if self._stopped:
            return
        port = self._port
        if port is None:
            return
        if self._write_error is not None:
            self._lose_port(self._write_error)
            return
        try:
            data = _read_now(port, self._fd)
        except Exception as exc:  # a vanished port raises SerialException or OSError
            self._lose_port(exc)
            return
        self._step(data)

    def _step(self, data: bytes) -> None:
        now = self._clock()
        with self._lock:
            events = self._session.receive_data(data, now) if data else []
            if now >= self._session.next_deadline():
                events += self._session.tick(now)
            self._write_out()
            self._reschedule()
        self._deliver(events)
        if self._write_error is not None and self._port is not None:
            self._lose_port(self._write_error)

    def _open(self) -> None:
        try:
            port = self._opener(self.url)
            port.timeout = 0  # reads return what is there; the selector says when
        except Exception as exc:  # any opener error: retry, never die
            if not self._failing:
                log.warning("%s: cannot open port: %s", self.url, exc)
                self._deliver([LinkDown(f"cannot open {self.url}: {exc}")])
            self._failing = True
            with self._lock:
                self._next_open = self._clock() + self._delay
                self._reschedule()
            self._delay = min(self._delay * 2, self._backoff[1])
            return
        try:
            fd: int | None = port.fileno()
        except Exception:  # loop:// and friends have none
            fd = None
        with self._lock:
            self._port, self._write_error = port, None
            if fd is not None:
                self._loop.watch(self, fd)
                self._fd = fd
            self._write_out()  # the handshake queued by connection_lost
        self._delay, self._failing = self._backoff[0], False

    def _lose_port(self, exc: BaseException) -> None:
        reason = str(exc) or type(exc).__name__
        log.warning("%s: port lost: %s", self.url, reason)
        with self._lock:
            port, self._port = self._port, None
            self._drop_fd()
            events = self._session.connection_lost(reason, self._clock())
            self._next_open = self._clock() + self._backoff[0]
            self._reschedule()
        if port is not None:
            with contextlib.suppress(Exception):
                port.close()
        self._deliver(events)
