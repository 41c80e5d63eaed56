"""Link endpoints: each simulated device speaks the serial protocol on its own port.

One asyncio event loop (one thread) carries every endpoint: one listening TCP
socket per device on 127.0.0.1 (``socket://127.0.0.1:PORT`` for
``serial.serial_for_url``), one Unix-domain socket per device in a directory
(``unix:///DIR/ID``, ``kvm_protocol.transport.open_port``), or one pty per device.
A device's firmware end is a ``kvm_protocol.session.Session`` in the device role;
this module only moves bytes between sockets and sessions and between sessions and the
fabric.

- A new connection to a device port replaces the old one (the controller
  restarted): the old socket is closed and the device starts a fresh session,
  which announces itself with ``Hello``.
- A powered-off device is silent: no session, received bytes are dropped; the
  connection stays open like a cable to a dead box. Power-on starts a fresh
  session (the firmware booted).
- Everything here runs in the loop thread; ``firmware_sim.simulator`` marshals
  calls from other threads.
"""

from __future__ import annotations

import asyncio
import contextlib
import errno
import functools
import heapq
import itertools
import logging
import os
import socket
import stat
import tty
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any

from firmware_sim.fabric import Fabric
from kvm_protocol.codec import ProtocolError
from kvm_protocol.messages import (
    PROTOCOL_VERSION,
    DeviceKind,
    Hello,
    KeyForward,
    OsdOverlay,
    StatusRequest,
    SwitchHead,
)
from kvm_protocol.session import (
    Event,
    LinkDown,
    LinkUp,
    ProtocolIssue,
    Received,
    SendFailed,
    Session,
    SessionConfig,
)

log = logging.getLogger("kvm.sim.links")

HOST = "127.0.0.1"
READ_SIZE = 65536


class LinkError(Exception):
    """An endpoint could not be set up (port in use, out of file descriptors, ...)."""


@dataclass(slots=True, eq=False)
class Endpoint:
    """The serial port of one device and whoever is connected to it."""

    device: str
    kind: DeviceKind
    port: int = 0
    url: str = ""
    server: asyncio.AbstractServer | None = None
    writer: Callable[[bytes], None] | None = None     # the current connection's write
    closer: Callable[[], None] | None = None
    session: Session | None = None
    conn: int = 0                                      # connection generation
    timer_at: float = float("inf")                     # its wake-up in the hub's heap
    pty_master: int | None = None
    pty_slave: int | None = None
    socket_path: str | None = None                     # its Unix-domain socket, if any
    counters: dict[str, int] = field(default_factory=dict)

    @property
    def connected(self) -> bool:
        return self.writer is not None

    def count(self, name: str, n: int = 1) -> None:
        self.counters[name] = self.counters.get(name, 0) + n


class _Conn(asyncio.Protocol):
    """One accepted connection (TCP or Unix-domain) to a device port."""

    def __init__(self, hub: LinkHub, ep: Endpoint) -> None:
        self.hub, self.ep = hub, ep
        self.transport: asyncio.Transport | None = None
        self.gen = 0

    def connection_made(self, transport: asyncio.BaseTransport) -> None:
        assert isinstance(transport, asyncio.Transport)
        self.transport = transport
        with contextlib.suppress(OSError):
            transport.get_extra_info("socket").setsockopt(
                socket.IPPROTO_TCP, socket.TCP_NODELAY, 1
            )
        self.gen = self.hub.attach(self.ep, transport.write, transport.abort)

    def data_received(self, data: bytes) -> None:
        if self.gen == self.ep.conn:
            self.hub.receive(self.ep, data)

    def connection_lost(self, exc: Exception | None) -> None:
        if self.gen == self.ep.conn:
            self.hub.detach(self.ep)


class _Alarm:
    """One loop timer that is only ever moved earlier, until it fires (then it is free)."""

    def __init__(self, loop: asyncio.AbstractEventLoop, callback: Callable[[], None]) -> None:
        self._loop = loop
        self._callback = callback
        self._handle: asyncio.TimerHandle | None = None
        self.at = float("inf")

    def before(self, when: float) -> None:
        """Fire at `when` unless set to fire earlier already."""
        if when < self.at:
            self.cancel()
            self.at = when
            self._handle = self._loop.call_at(when, self._fire)

    def cancel(self) -> None:
        if self._handle is not None:
            self._handle.cancel()
        self._handle, self.at = None, float("inf")

    def _fire(self) -> None:
        self._handle, self.at = None, float("inf")
        self._callback()


def _nothing() -> None:
    return None


def _listen_error(e: OSError, where: str, device: str) -> LinkError:
    if e.errno == errno.EMFILE:
        return LinkError("out of file descriptors while opening device ports "
                         f"(at {device}); raise the open-files limit (ulimit -n)")
    return LinkError(f"cannot listen on {where} for {device}: {e.strerror or e}")


class LinkHub:
    """All endpoints of one simulator, driven by one event loop."""

    def __init__(
        self,
        loop: asyncio.AbstractEventLoop,
        fabric: Fabric,
        *,
        session_config: SessionConfig | None = None,
    ) -> None:
        self.loop = loop
        self.fabric = fabric
        self.session_config = session_config
        self.endpoints: dict[str, Endpoint] = {}
        self._fabric_alarm = _Alarm(loop, self._on_fabric_timer)
        # The endpoints' wake-ups: one heap of (when, order, endpoint) and one loop timer for
        # its head. An entry is live while `ep.timer_at == when`; a moved or dropped wake-up
        # leaves its old entry behind, skipped when it comes up. (One asyncio TimerHandle per
        # endpoint cost ~1/4 of the loop's CPU at 1,000 links: each switch moves a wake-up
        # and the loop's heap compares TimerHandles in Python.)
        self._timers: list[tuple[float, int, Endpoint]] = []
        self._timer_order = itertools.count()
        self._wake = _Alarm(loop, self._on_wake)
        for tx in fabric.tx.values():
            self.endpoints[tx.id] = Endpoint(tx.id, DeviceKind.TX)
        for rx in fabric.rx.values():
            self.endpoints[rx.id] = Endpoint(rx.id, DeviceKind.RX)

    def now(self) -> float:
        return self.loop.time()

    # --- setting up -------------------------------------------------------------------

    async def listen_tcp(self, base_port: int = 0) -> None:
        """Open one listening socket per device: ``base_port + int(ID)``, or any free port."""
        for ep in self.endpoints.values():
            port = base_port + int(ep.device) if base_port else 0
            sock = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
            try:
                sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
                sock.bind((HOST, port))
                sock.listen(8)
                sock.setblocking(False)
            except OSError as e:
                sock.close()
                raise _listen_error(e, f"{HOST}:{port}", ep.device) from None
            ep.server = await self.loop.create_server(functools.partial(_Conn, self, ep), sock=sock)
            ep.port = sock.getsockname()[1]
            ep.url = f"socket://{HOST}:{ep.port}"

    async def listen_unix(self, directory: str) -> None:
        """Open one listening Unix-domain socket per device, ``directory/ID``; the directory
        is created (mode 0700) if missing, and a socket file left by an earlier run replaced."""
        try:
            os.makedirs(directory, mode=0o700, exist_ok=True)
        except OSError as e:
            raise LinkError(f"cannot create the socket directory {directory}: {e.strerror}"
                            ) from None
        for ep in self.endpoints.values():
            path = os.path.join(directory, ep.device)
            with contextlib.suppress(FileNotFoundError):
                if stat.S_ISSOCK(os.lstat(path).st_mode):
                    os.unlink(path)
            try:
                ep.server = await self.loop.create_unix_server(
                    functools.partial(_Conn, self, ep), path=path, backlog=8)
            except OSError as e:
                raise _listen_error(e, path, ep.device) from None
            ep.socket_path = path
            ep.url = f"unix://{path}"

    def open_ptys(self) -> None:
        """Give every device a pty instead of a TCP port; ``url`` is the slave's path."""
        for ep in self.endpoints.values():
            try:
                master, slave = os.openpty()
            except OSError as e:
                raise LinkError(f"cannot open a pty for {ep.device}: {e.strerror}") from None
            tty.setraw(slave)                 # bytes pass unchanged: no echo, no line editing
            os.set_blocking(master, False)
            ep.pty_master, ep.pty_slave = master, slave
            ep.url = os.ttyname(slave)
            self.loop.add_reader(master, self._pty_readable, ep)
            self.attach(ep, functools.partial(self._pty_write, master), _nothing)

    def _pty_readable(self, ep: Endpoint) -> None:
        assert ep.pty_master is not None
        try:
            data = os.read(ep.pty_master, READ_SIZE)
        except (BlockingIOError, InterruptedError):
            return
        except OSError:
            data = b""
        if data:
            self.receive(ep, data)

    @staticmethod
    def _pty_write(fd: int, data: bytes) -> None:
        with contextlib.suppress(BlockingIOError, InterruptedError, OSError):
            os.write(fd, data)        # nobody reading and the buffer full: the bytes are lost

    async def close(self) -> None:
        self._wake.cancel()
        self._timers.clear()
        for ep in self.endpoints.values():
            ep.timer_at = float("inf")
            if ep.closer is not None:
                ep.closer()
            if ep.server is not None:
                ep.server.close()
            if ep.pty_master is not None:
                self.loop.remove_reader(ep.pty_master)
                for fd in (ep.pty_master, ep.pty_slave):
                    if fd is not None:
                        with contextlib.suppress(OSError):
                            os.close(fd)
                ep.pty_master = ep.pty_slave = None
            ep.writer = ep.closer = None
            ep.session = None
        for ep in self.endpoints.values():
            if ep.server is not None:
                await ep.server.wait_closed()
            if ep.socket_path is not None:
                with contextlib.suppress(OSError):
                    os.unlink(ep.socket_path)
                ep.socket_path = None
        self._fabric_alarm.cancel()

    # --- connections -----------------------------------------------------------------

    def attach(self, ep: Endpoint, writer: Callable[[bytes], None],
               closer: Callable[[], None]) -> int:
        """A host connected; a previous connection is dropped. Returns the connection number."""
        if ep.closer is not None:
            ep.closer()
            ep.count("replaced")
        ep.conn += 1
        ep.writer, ep.closer = writer, closer
        ep.count("connections")
        self._boot(ep)
        return ep.conn

    def detach(self, ep: Endpoint) -> None:
        ep.writer = ep.closer = None
        ep.session = None
        ep.conn += 1
        ep.timer_at = float("inf")

    def _powered(self, ep: Endpoint) -> bool:
        dev = self.fabric.tx.get(ep.device) or self.fabric.rx.get(ep.device)
        return dev is not None and dev.power

    def _identity(self, ep: Endpoint) -> Hello:
        if ep.kind is DeviceKind.TX:
            tx = self.fabric.tx[ep.device]
            return Hello(PROTOCOL_VERSION, DeviceKind.TX, tx.serial, tx.heads, tx.firmware)
        rx = self.fabric.rx[ep.device]
        return Hello(PROTOCOL_VERSION, DeviceKind.RX, rx.serial, len(rx.heads), rx.firmware)

    def _boot(self, ep: Endpoint) -> None:
        """Start a fresh firmware session on the current connection, if powered."""
        if ep.writer is None or not self._powered(ep):
            ep.session = None
            return
        ep.session = Session("device", self.now(), identity=self._identity(ep),
                             config=self.session_config)
        self._flush(ep)

    def power_changed(self, device: str) -> None:
        """The device was powered on or off: it boots (fresh session) or falls silent."""
        ep = self.endpoints[device]
        if self._powered(ep):
            if ep.session is None:
                ep.count("boots")
                self._boot(ep)
        else:
            ep.session = None

    # --- bytes in and out -----------------------------------------------------------------

    def receive(self, ep: Endpoint, data: bytes) -> None:
        ep.count("bytes_in", len(data))
        session = ep.session
        if session is None:
            ep.count("bytes_dropped", len(data))
            return
        now = self.now()
        events = session.receive_data(data, now)
        self._handle(ep, events, now)
        self.dispatch()
        self._flush(ep)

    def inject(self, device: str, data: bytes) -> None:
        """Raw bytes down the device's link, past the session (line noise, a broken sender)."""
        ep = self.endpoints[device]
        if ep.writer is None:
            raise LinkError(f"no host is connected to {device}")
        ep.count("garbage_out", len(data))
        ep.writer(data)

    def _flush(self, ep: Endpoint) -> None:
        session = ep.session
        if session is None:
            return
        data = session.data_to_send()
        if data and ep.writer is not None:
            ep.count("bytes_out", len(data))
            ep.writer(data)
        self._schedule(ep, session.next_deadline())

    def _schedule(self, ep: Endpoint, when: float) -> None:
        """Wake `ep` at `when` unless it already wakes earlier."""
        if ep.timer_at <= when:
            return
        ep.timer_at = when
        heapq.heappush(self._timers, (when, next(self._timer_order), ep))
        self._wake.before(when)

    def _on_wake(self) -> None:
        now = self.now()
        timers = self._timers
        due: list[Endpoint] = []
        while timers and timers[0][0] <= now:
            when, _, ep = heapq.heappop(timers)
            if ep.timer_at == when:
                ep.timer_at = float("inf")
                due.append(ep)
        for ep in due:
            self._on_timer(ep)
        while timers and timers[0][2].timer_at != timers[0][0]:
            heapq.heappop(timers)                   # moved or dropped: not a wake-up
        if timers:
            self._wake.before(timers[0][0])

    def _on_timer(self, ep: Endpoint) -> None:
        session = ep.session
        if session is None:
            return
        now = self.now()
        if now >= session.next_deadline():
            self._handle(ep, session.tick(now), now)
            self.dispatch()
        self._flush(ep)

    def _handle(self, ep: Endpoint, events: list[Event], now: float) -> None:
        fabric = self.fabric
        for event in events:
            if isinstance(event, Received):
                msg = event.message
                if ep.kind is DeviceKind.RX and isinstance(msg, SwitchHead):
                    fabric.switch(ep.device, msg.head, msg.tx_id, msg.tx_head, now,
                                  request_seq=event.seq, conn=ep.conn)
                elif isinstance(msg, StatusRequest):
                    fabric.status_report(ep.device, ep.conn)
                elif ep.kind is DeviceKind.RX and isinstance(msg, OsdOverlay):
                    fabric.set_overlay(ep.device, msg.visible)
                elif ep.kind is DeviceKind.RX and isinstance(msg, KeyForward):
                    if fabric.key_forward(ep.device, msg.usage, msg.mods, msg.pressed) is None:
                        ep.count("keys_lost")
                else:
                    ep.count("ignored")       # a message this kind of device does not take
            elif isinstance(event, LinkUp):
                ep.count("link_ups")
            elif isinstance(event, LinkDown):
                ep.count("link_downs")
            elif isinstance(event, ProtocolIssue):
                ep.count("protocol_issues")
            elif isinstance(event, SendFailed):
                ep.count("send_failed")

    # --- the fabric's outbox --------------------------------------------------------------

    def dispatch(self) -> None:
        """Send what the fabric produced to each device's host; arm the fabric's timer."""
        touched: dict[str, Endpoint] = {}
        now = self.now()
        for out in self.fabric.drain():
            ep = self.endpoints.get(out.device)
            if ep is None or ep.session is None:
                continue                  # nobody listening: the host asks on connect
            if out.conn is not None and out.conn != ep.conn:
                continue                  # an answer to a connection that is gone
            try:
                ep.session.send(out.message, now)
            except ProtocolError as e:
                log.warning("%s: cannot send %r: %s", out.device, out.message, e)
                continue
            touched[out.device] = ep
        for ep in touched.values():
            self._flush(ep)
        deadline = self.fabric.next_deadline()
        if deadline is not None:
            self._fabric_alarm.before(deadline)

    def _on_fabric_timer(self) -> None:
        self.fabric.tick(self.now())
        self.dispatch()

    # --- inspection -------------------------------------------------------------------------

    def link_state(self, device: str) -> dict[str, Any]:
        ep = self.endpoints[device]
        session = ep.session
        return {
            "url": ep.url,
            "port": ep.port or None,
            "connected": ep.connected,
            "up": bool(session is not None and session.link_up),
            "counters": dict(ep.counters),
        }

    def ports(self) -> dict[str, dict[str, Any]]:
        return {
            ep.device: {"kind": ep.kind.name.lower(), "url": ep.url, "port": ep.port or None}
            for ep in self.endpoints.values()
        }
