"""Transport: a Link over a real pty and over socket://, port loss and reopening.

These are integration tests with real file descriptors and threads; they wait
by bounded polling on events, never by fixed sleeps.
"""

from __future__ import annotations

import contextlib
import os
import socket
import time
import tty
from collections.abc import Callable, Iterator
from pathlib import Path

import pytest
import serial

from kvm_protocol import messages as m
from kvm_protocol.session import (
    Acked,
    Event,
    LinkDown,
    LinkUp,
    ProtocolIssue,
    Received,
    SendFailed,
)
from kvm_protocol.transport import Link, open_port
from tests.kvm_protocol.peer import DEVICE_HELLO, FdDevice, Recorder, TcpDeviceServer
from tests.kvm_protocol.test_codec import raw_frame

SWITCH = m.SwitchHead(1, "0001", 1)


Pred = Callable[[list[Event]], bool]


def count(cls: type, n: int = 1) -> Pred:
    return lambda events: sum(isinstance(e, cls) for e in events) >= n


def has(event: Event) -> Pred:
    return lambda events: event in events


def down_with(text: str) -> Pred:
    return lambda events: any(isinstance(e, LinkDown) and text in e.reason for e in events)


@pytest.fixture
def pty_pair() -> Iterator[tuple[int, str]]:
    master, slave = os.openpty()
    tty.setraw(slave)  # before pyserial does: nothing may be echoed or translated
    yield master, os.ttyname(slave)
    os.close(slave)
    with contextlib.suppress(OSError):  # the test may have hung it up already
        os.close(master)


@pytest.fixture
def server() -> Iterator[TcpDeviceServer]:
    srv = TcpDeviceServer()
    yield srv
    srv.close()


def test_open_port_takes_urls() -> None:
    port = open_port("loop://")
    try:
        port.write(b"\xa5\x5a")
        assert port.read(2) == b"\xa5\x5a"
        assert port.baudrate == 115200
    finally:
        port.close()


def test_open_port_disables_nagle_on_sockets(server: TcpDeviceServer) -> None:
    port = open_port(server.url)
    try:
        sock = port._socket  # type: ignore[attr-defined]
        assert sock.getsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY) != 0
    finally:
        port.close()


def test_link_over_a_pty(pty_pair: tuple[int, str]) -> None:
    master, path = pty_pair
    device = FdDevice(master, close=lambda: None)
    rec = Recorder()
    try:
        with Link(path, rec) as link:
            rec.wait_for(has(LinkUp(DEVICE_HELLO)))
            assert link.link_up and link.identity == DEVICE_HELLO
            seq = link.send(SWITCH)
            rec.wait_for(has(Acked(seq, SWITCH)))
            rec.wait_for(lambda ev: any(isinstance(e, Received) for e in ev))
            result = rec.of(Received)[0]
            assert isinstance(result, Received)
            assert result.message == m.SwitchResult(seq, 1, m.SwitchStatus.OK)
            key = m.KeyInput(0x04, 0x02, True)
            device.send(key)
            rec.wait_for(lambda ev: any(isinstance(e, Received) and e.message == key for e in ev))
            assert link.stats["crc_errors"] == 0
        device.recorder.wait_for(lambda ev: Received(seq, SWITCH) in ev)
        assert [e for e in device.recorder.events if isinstance(e, Received)] == [
            Received(seq, SWITCH)
        ]
    finally:
        device.stop()


def test_pty_vanishing_mid_frame_is_link_down_and_the_link_keeps_trying(
    pty_pair: tuple[int, str],
) -> None:
    master, path = pty_pair
    device = FdDevice(master)
    rec = Recorder()
    link = Link(path, rec, backoff=(0.02, 0.05))
    try:
        rec.wait_for(count(LinkUp))
        device.close_mid_frame()
        events = rec.wait_for(count(LinkDown))
        down = next(e for e in events if isinstance(e, LinkDown))
        assert down.reason.startswith("connection lost: ")
        # The pty is gone for good: reopening fails, reported once, and nothing crashes.
        rec.wait_for(
            lambda ev: any(isinstance(e, LinkDown) and "cannot open" in e.reason for e in ev)
        )
        seq = link.send(SWITCH)
        rec.wait_for(has(SendFailed(seq, SWITCH, "link down")))
        assert not link.link_up
    finally:
        link.close()
    assert not link.running
    downs = [e for e in rec.events if isinstance(e, LinkDown)]
    assert sum("cannot open" in e.reason for e in downs) == 1


def test_link_over_socket_reconnects_after_a_hang_up(server: TcpDeviceServer) -> None:
    rec = Recorder()
    with Link(server.url, rec, backoff=(0.02, 0.1)) as link:
        rec.wait_for(has(LinkUp(DEVICE_HELLO)))
        seq = link.send(SWITCH)
        rec.wait_for(has(Acked(seq, SWITCH)))
        server.wait_device(1).close_mid_frame()
        rec.wait_for(count(LinkDown))
        rec.wait_for(count(LinkUp, 2))  # a new connection, a new handshake
        server.wait_device(2)
        seq2 = link.send(SWITCH)
        rec.wait_for(has(Acked(seq2, SWITCH)))
    kinds = [type(e) for e in rec.events if not isinstance(e, Received)]
    assert kinds == [LinkUp, Acked, LinkDown, LinkUp, Acked]
    assert not rec.of(ProtocolIssue)


def test_garbage_on_the_line_is_reported_and_the_link_goes_on(server: TcpDeviceServer) -> None:
    rec = Recorder()
    with Link(server.url, rec) as link:
        rec.wait_for(count(LinkUp))
        device = server.wait_device(1)
        # noise, an oversized length, then a frame of an unknown type (good CRC)
        device.write_raw(b"\x00\x13\xa5\x5a\xff\xff\x01" + raw_frame(0x7E, 0, b""))
        events = rec.wait_for(count(ProtocolIssue, 2))
        kinds = [e.kind for e in events if isinstance(e, ProtocolIssue)]
        assert kinds == ["oversized", "unknown_type"]
        # the host told the device which type it could not understand
        device.recorder.wait_for(
            lambda ev: any(isinstance(e, ProtocolIssue) and e.msg_type == 0x7E for e in ev)
        )
        seq = link.send(SWITCH)
        rec.wait_for(has(Acked(seq, SWITCH)))
        assert link.stats["resyncs"] >= 1
        assert link.link_up


def test_missing_port_is_reported_once_and_sends_fail() -> None:
    rec = Recorder()
    with Link("/dev/kvm-seat-no-such-port", rec, backoff=(0.01, 0.02)) as link:
        rec.wait_for(down_with("cannot open /dev/kvm-seat-no-such-port"))
        seq = link.send(SWITCH)
        rec.wait_for(has(SendFailed(seq, SWITCH, "link down")))
    assert len(rec.of(LinkDown)) == 1


def test_many_links_in_one_process_and_a_failing_callback() -> None:
    servers = [TcpDeviceServer() for _ in range(3)]
    recs = [Recorder() for _ in servers]
    failing = Recorder()

    def broken(event: Event) -> None:
        failing(event)
        raise RuntimeError("callback bug")

    links = [Link(s.url, r) for s, r in zip(servers, recs, strict=True)]
    extra = Link(servers[0].url, broken)  # a second host on the first server
    try:
        for link, rec in zip(links, recs, strict=True):
            rec.wait_for(count(LinkUp))
            seq = link.send(m.SwitchHead(2, "0002", 1))
            rec.wait_for(has(Acked(seq, m.SwitchHead(2, "0002", 1))))
        for i, (srv, link) in enumerate(zip(servers, links, strict=True)):
            # The first server also has `extra`'s connection, which may be the first accepted.
            srv.wait_device(2 if i == 0 else 1)
            got = [e for dev in srv.devices for e in dev.recorder.of(Received)]
            assert [e.message for e in got] == [m.SwitchHead(2, "0002", 1)]
            assert link.identity == DEVICE_HELLO
        # The callback raised on LinkUp; the reader thread lived on and still delivers.
        failing.wait_for(count(LinkUp))
        seq = extra.send(SWITCH)
        failing.wait_for(has(Acked(seq, SWITCH)))
    finally:
        for link in [*links, extra]:
            link.close()
        for srv in servers:
            srv.close()



def test_an_answered_send_leaves_no_wake_up_behind(server: TcpDeviceServer) -> None:
    """The retry deadline of a send that was acked does not wake the link: a thousand
    switches would each step their link once more, 200 ms later, for nothing."""
    rec = Recorder()
    with Link(server.url, rec) as link:
        rec.wait_for(count(LinkUp))
        woken: list[bool] = []   # per wake-up: was anything due?
        step = link._on_due

        def on_due() -> None:
            woken.append(link._clock() >= link._session.next_deadline())
            step()

        link._on_due = on_due  # type: ignore[method-assign]
        seq = link.send(SWITCH)
        rec.wait_for(has(Acked(seq, SWITCH)))
        rec.wait_for(count(Received))
        deadline = time.monotonic() + 0.6   # past the retry (0.2 s), before the heartbeat (1 s)
        while time.monotonic() < deadline:
            time.sleep(0.05)
        assert link.stats["retransmits"] == 0
        assert False not in woken, f"woken with nothing due: {woken}"


def test_link_over_a_unix_socket(tmp_path: Path) -> None:
    """``unix:///path``: the lab's simulator offers its serial links so (docs/LAB.md)."""
    srv = TcpDeviceServer(unix=str(tmp_path / "5001"))
    rec = Recorder()
    try:
        with Link(srv.url, rec) as link:
            rec.wait_for(has(LinkUp(DEVICE_HELLO)))
            seq = link.send(SWITCH)
            rec.wait_for(has(Acked(seq, SWITCH)))
            rec.wait_for(count(Received))
            assert rec.of(Received)[0].message == m.SwitchResult(seq, 1, m.SwitchStatus.OK)
            srv.wait_device(1).close_mid_frame()   # the device end goes away: reopened
            rec.wait_for(down_with("connection lost"))
            rec.wait_for(count(LinkUp, 2))
    finally:
        srv.close()


@pytest.mark.parametrize("url", ["unix://relative/path", "unix:///no/such/dir/5001"])
def test_a_bad_unix_url_is_a_clear_link_down(url: str) -> None:
    rec = Recorder()
    with Link(url, rec):
        rec.wait_for(down_with(f"cannot open {url}"))
    assert not rec.of(LinkUp)
    with pytest.raises(serial.SerialException, match="unix"):
        open_port(url)
