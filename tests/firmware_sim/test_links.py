"""The device links over real sockets, with the real codec and session on the host side."""

from __future__ import annotations

import itertools
import time
from collections.abc import Iterator
from typing import Any

import pytest

from firmware_sim.simulator import SimError, Simulator
from kvm_protocol.codec import FrameDecoder
from kvm_protocol.messages import (
    DeviceKind,
    HeadStatus,
    Heartbeat,
    KeyForward,
    KeyInput,
    NetworkStatus,
    OsdOverlay,
    ScreenSelect,
    StatusRequest,
    SwitchHead,
    SwitchResult,
    SwitchStatus,
    VideoStatus,
)
from kvm_protocol.session import Acked, Event, LinkUp, ProtocolIssue, Received
from kvm_protocol.transport import Link, LinkLoop
from tests.firmware_sim.conftest import Host, room_config
from tests.kvm_protocol.peer import Recorder


@pytest.fixture
def sim() -> Iterator[Simulator]:
    with Simulator(room_config()) as s:
        yield s


def connect(sim: Simulator, device: str) -> Host:
    host = Host(sim.ports()[device]["url"])
    host.wait_for(lambda e: isinstance(e, LinkUp), what="LinkUp")
    return host


def rx_state(sim: Simulator, rx: str) -> dict[str, Any]:
    return next(d for d in sim.state()["rx"] if d["id"] == rx)


def test_handshake_tells_who_is_there(sim: Simulator) -> None:
    host = Host(sim.ports()["5001"]["url"])
    up = host.wait_for(lambda e: isinstance(e, LinkUp), what="LinkUp")
    assert (up.identity.kind, up.identity.serial, up.identity.heads) == (
        DeviceKind.RX, "SIM-RX-5001", 2)
    assert up.identity.firmware == "RX-FW 2.4.1-sim"
    tx = connect(sim, "0003")
    assert tx.session.identity is not None
    assert (tx.session.identity.kind, tx.session.identity.heads) == (DeviceKind.TX, 4)
    assert rx_state(sim, "5001")["link"]["connected"] is True


def test_switch_head_answers_and_reports(sim: Simulator) -> None:
    host = connect(sim, "5001")
    seq = host.send(SwitchHead(1, "0001", 1))
    result = host.received(SwitchResult)
    assert result == SwitchResult(seq, 1, SwitchStatus.OK)
    assert host.received(HeadStatus) == HeadStatus(1, "0001", 1, True)
    head = rx_state(sim, "5001")["heads"][0]
    assert {k: head[k] for k in ("head", "source", "video")} == {
        "head": 1, "source": "0001:1", "video": True}
    assert isinstance(head["since"], float)   # when it switched, on the simulator's clock
    seq = host.send(SwitchHead(2, "0002", 1))
    sim.fault("0002", "power-off")        # may land before or after: either way it is reported
    result = host.received(SwitchResult)
    assert result.request_seq == seq and result.head == 2


def test_faults_reach_the_host(sim: Simulator) -> None:
    host = connect(sim, "5003")
    host.send(SwitchHead(1, "0002", 1))
    host.received(SwitchResult)
    host.received(HeadStatus)
    sim.fault("0002", "video-off")
    assert host.received(HeadStatus) == HeadStatus(1, "0002", 1, False)
    sim.fault("5003", "network-down")
    assert host.received(NetworkStatus) == NetworkStatus(False)
    tx = connect(sim, "0002")
    sim.fault("0002", "video-on")
    assert tx.received(VideoStatus) == VideoStatus(1, True)


def test_keys_pressed_arrive_as_key_input(sim: Simulator) -> None:
    host = connect(sim, "5003")
    answer = sim.press("5003", "Shift+O")
    assert answer["delivered_to"] == ["5003"]
    got = [host.received(KeyInput) for _ in range(4)]
    assert got[1] == KeyInput(0x12, 0x02, True)
    assert sim.type_text("5003", "ok")["delivered_to"] == ["5003"]
    assert [host.received(KeyInput).usage for _ in range(4)] == [0x12, 0x12, 0x0E, 0x0E]


def test_cross_screen_seat_over_links(sim: Simulator) -> None:
    a, b = connect(sim, "5001"), connect(sim, "5002")
    a.send(StatusRequest())
    assert a.received(ScreenSelect) == ScreenSelect(True, 1)
    sim.press("seat-A", "F7+2")
    assert a.received(ScreenSelect) == ScreenSelect(False, 1)
    assert b.received(ScreenSelect) == ScreenSelect(True, 2)
    sim.press("seat-A", "X")
    assert b.received(KeyInput).usage == 0x1B
    sim.mouse_to_screen("seat-A", 1)
    assert a.received(ScreenSelect) == ScreenSelect(True, 1)


def test_key_forward_types_on_the_computer(sim: Simulator) -> None:
    host = connect(sim, "5003")
    host.send(SwitchHead(1, "0003", 1))
    host.received(SwitchResult)
    for usage in (0x0B, 0x0C):                       # "h", "i"
        host.send(KeyForward(usage, 0, True))
        host.send(KeyForward(usage, 0, False))
    deadline = time.monotonic() + 5
    while time.monotonic() < deadline:
        host.pump()
        tx = next(d for d in sim.state()["tx"] if d["id"] == "0003")
        if tx["computer"]["key_count"] == 4:
            break
    assert tx["computer"] == {"text": "hi", "key_count": 4}


def test_overlay_command(sim: Simulator) -> None:
    host = connect(sim, "5003")
    host.send(OsdOverlay(True))
    host.wait_for(lambda e: isinstance(e, Acked) and isinstance(e.message, OsdOverlay))
    assert rx_state(sim, "5003")["overlay"] is True


def test_garbage_then_the_link_recovers(sim: Simulator) -> None:
    host = connect(sim, "5003")
    # noise, a false sync with an absurd length, and an intact frame of an unknown type
    sim.inject_garbage("5003", b"\x00\xff\xa5\x5a\xff\xff" + bytes(range(40)))
    sim.inject_garbage("5003", bytes.fromhex("a55a0000ee00") + b"\x00\x00")
    host.send(StatusRequest())
    assert host.received(HeadStatus) == HeadStatus(1, "", 0, False)
    host.send(SwitchHead(1, "0001", 1))
    assert host.received(SwitchResult).status is SwitchStatus.OK
    assert host.session.link_up
    assert host.session.stats["discarded_bytes"] > 0 or any(
        isinstance(e, ProtocolIssue) for e in host.events)


def test_a_new_connection_replaces_the_old(sim: Simulator) -> None:
    old = connect(sim, "5002")
    new = connect(sim, "5002")
    deadline = time.monotonic() + 5
    while not old.closed and time.monotonic() < deadline:
        old.pump()
    assert old.closed
    new.send(SwitchHead(1, "0002", 1))
    assert new.received(SwitchResult).status is SwitchStatus.OK
    assert rx_state(sim, "5002")["link"]["counters"]["replaced"] == 1


def test_power_cycle_silences_and_reboots(sim: Simulator) -> None:
    host = connect(sim, "5003")
    host.send(SwitchHead(1, "0001", 1))
    host.received(SwitchResult)
    host.received(HeadStatus)
    sim.fault("5003", "power-off")
    host.events.clear()
    host.send(StatusRequest())
    t_end = time.monotonic() + 0.3
    while time.monotonic() < t_end:
        host.pump()
    assert not any(
        getattr(e, "message", None).__class__ in (HeadStatus, NetworkStatus) for e in host.events
    )
    sim.fault("5003", "power-on")                     # boots and announces itself (Hello)
    assert rx_state(sim, "5003")["link"]["counters"]["boots"] == 1
    host.send(StatusRequest())
    assert host.received(HeadStatus) == HeadStatus(1, "", 0, False)   # booted empty


def test_api_errors(sim: Simulator) -> None:
    with pytest.raises(SimError, match="no host is connected"):
        sim.inject_garbage("5003", b"\x00")
    with pytest.raises(SimError, match="no device"):
        sim.inject_garbage("7777", b"\x00")
    with pytest.raises(SimError, match="unknown key name"):
        sim.press("5003", "Shift+Banana")
    with pytest.raises(SimError, match="no seat or Rx"):
        sim.press("nowhere", "A")
    with pytest.raises(SimError, match="unknown fault"):
        sim.fault("0001", "melt")
    with pytest.raises(SimError, match="cannot type"):
        sim.type_text("5003", "日本")


def test_fixed_ports_from_base() -> None:
    import random

    cfg = room_config(tx=[{"id": "0001"}], rx=[], seats=[], walls=[])
    for _ in range(20):                      # bounded: find a base whose port is free
        base = random.randrange(20000, 50000)
        sim = Simulator({**cfg, "base_port": base})
        try:
            sim.start()
        except SimError:
            continue
        try:
            assert sim.ports()["0001"]["port"] == base + 1
            with pytest.raises(SimError, match=f"cannot listen on 127.0.0.1:{base + 1} for 0001"):
                Simulator({**cfg, "base_port": base}).start()
        finally:
            sim.stop()
        return
    raise AssertionError("no free base port found in 20 tries")


def test_pty_endpoints() -> None:
    import os
    import select

    from kvm_protocol.session import Session

    cfg = room_config(pty=True, tx=[{"id": "0001"}], rx=[{"id": "5001"}], seats=[], walls=[])
    with Simulator(cfg) as sim:
        path = sim.ports()["5001"]["url"]
        assert path.startswith("/dev/")
        fd = os.open(path, os.O_RDWR | os.O_NOCTTY | os.O_NONBLOCK)
        try:
            host = Session("host", time.monotonic())
            events: list[object] = []
            deadline = time.monotonic() + 5
            while time.monotonic() < deadline and not any(isinstance(e, LinkUp) for e in events):
                out = host.data_to_send()
                if out:
                    os.write(fd, out)
                if select.select([fd], [], [], 0.05)[0]:
                    events += host.receive_data(os.read(fd, 4096), time.monotonic())
                events += host.tick(time.monotonic())
            up = next(e for e in events if isinstance(e, LinkUp))
            assert up.identity.serial == "SIM-RX-5001"
        finally:
            os.close(fd)


def test_answer_to_a_replaced_connection_is_not_delivered() -> None:
    with Simulator(room_config(latency_ms=300)) as sim:
        old = connect(sim, "5003")
        old.send(SwitchHead(1, "0001", 1))        # completes after 300 ms
        new = connect(sim, "5003")
        new.send(StatusRequest())
        assert new.received(HeadStatus) == HeadStatus(1, "", 0, False)
        new.received(NetworkStatus)
        deadline = time.monotonic() + 0.8
        while time.monotonic() < deadline:
            new.pump()
        assert not [e for e in new.events if getattr(e, "message", None).__class__ is SwitchResult]
        # The switch itself happened: the head shows it, reported as a change.
        assert new.received(HeadStatus) == HeadStatus(1, "0001", 1, True)


def _received(rec: Recorder, cls: type) -> Received:
    """The first message of type ``cls`` the link delivered (bounded wait)."""
    def has(events: list[Event]) -> bool:
        return any(isinstance(e, Received) and isinstance(e.message, cls) for e in events)

    got = next(e for e in rec.wait_for(has)
               if isinstance(e, Received) and isinstance(e.message, cls))
    assert isinstance(got, Received)
    return got


def _link_up(events: list[Event]) -> bool:
    return any(isinstance(e, LinkUp) for e in events)


def test_the_controllers_transport_drives_a_simulated_rx(sim: Simulator) -> None:
    """kvm_protocol.transport.Link (what osd uses) against a simulated Rx, end to end."""
    rec = Recorder()
    with Link(sim.ports()["5003"]["url"], rec) as link:
        rec.wait_for(_link_up)
        seq = link.send(SwitchHead(1, "0002", 1))
        assert _received(rec, SwitchResult).message == SwitchResult(seq, 1, SwitchStatus.OK)
        sim.press("5003", "F1")
        assert _received(rec, KeyInput).message == KeyInput(0x3A, 0, True)


def test_links_on_one_loop_work_with_descriptors_above_1023(sim: Simulator) -> None:
    """A controller host has thousands of sockets, and select.select() cannot take a
    descriptor above 1,023: the link loop must open, read and write such ports."""
    import os
    import resource

    soft, hard = resource.getrlimit(resource.RLIMIT_NOFILE)
    if soft < 1300:
        resource.setrlimit(resource.RLIMIT_NOFILE, (min(hard, 4096), hard))
    filler = [os.open(os.devnull, os.O_RDONLY) for _ in range(1100)]
    loop = LinkLoop()
    rec = Recorder()
    try:
        link = Link(sim.ports()["5003"]["url"], rec, loop=loop)
        rec.wait_for(_link_up)
        assert link._fd is not None and link._fd > 1023
        seq = link.send(SwitchHead(1, "0002", 1))
        assert _received(rec, SwitchResult).message == SwitchResult(seq, 1, SwitchStatus.OK)
    finally:
        loop.close()
        for fd in filler:
            os.close(fd)


def _raw_frames(host: Host, seconds: float) -> list[tuple[float, object]]:
    """What the device sends for `seconds` while the host says nothing back: (when, message)."""
    decoder = FrameDecoder()
    out: list[tuple[float, object]] = []
    t0 = time.monotonic()
    while time.monotonic() - t0 < seconds:
        try:
            data = host.sock.recv(65536)
        except TimeoutError:
            continue
        out += [(time.monotonic() - t0, f.message) for f in decoder.feed(data)]
    return out


def test_the_firmware_retries_an_unacked_answer_and_beats_when_quiet(sim: Simulator) -> None:
    """The device's timers: a heartbeat after 1 s without sending, and an answer the host
    does not ack sent again every 200 ms, 5 times in all (the retry moves the link's wake-up
    earlier than its heartbeat; both must still fire)."""
    host = connect(sim, "5001")
    settle = time.monotonic() + 0.3
    while time.monotonic() < settle:       # the handshake's last frames are acked
        host.pump()
    quiet = _raw_frames(host, 1.5)
    beats = [t for t, m in quiet if isinstance(m, Heartbeat)]
    assert len(beats) == 1 and 0.5 <= beats[0] <= 1.3, quiet

    host.send(SwitchHead(1, "0001", 1))   # the host's session sends it; from here it is deaf
    frames = _raw_frames(host, 1.4)
    tries = [t for t, m in frames if isinstance(m, SwitchResult)]
    assert len(tries) == 5, frames
    gaps = [b - a for a, b in itertools.pairwise(tries)]
    assert all(0.15 <= g <= 0.4 for g in gaps), gaps


def test_moved_wake_ups_leave_no_backlog(sim: Simulator) -> None:
    """Each answer moves a link's wake-up; the entries it leaves behind are dropped when they
    come up, so a busy link does not grow the simulator's timer heap without bound."""
    host = connect(sim, "5001")
    for n in range(40):
        host.send(SwitchHead(1, "0001" if n % 2 else "0002", 1))
        host.received(SwitchResult)
    hub = sim._hub
    assert hub is not None
    time.sleep(1.5)                        # every entry left behind has fallen due
    host.pump()
    devices = len(sim.ports())
    assert len(hub._timers) <= devices + 2, len(hub._timers)


def test_unix_socket_endpoints(tmp_path: Any) -> None:
    """``unix_dir``: a socket per device, ``unix://DIR/ID`` (the lab's links); a stale
    socket file of an earlier run is replaced, and the files go when the simulator stops."""
    import socket

    links = tmp_path / "links"
    links.mkdir()
    stale = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
    stale.bind(str(links / "5001"))          # left behind by a simulator that was killed
    stale.close()
    cfg = room_config(unix_dir=str(links), tx=[{"id": "0001"}], rx=[{"id": "5001"}],
                      seats=[], walls=[])
    with Simulator(cfg) as sim:
        url = sim.ports()["5001"]["url"]
        assert url == f"unix://{links / '5001'}"
        host = connect(sim, "5001")
        seq = host.send(SwitchHead(1, "0001", 1))
        assert host.received(SwitchResult) == SwitchResult(seq, 1, SwitchStatus.OK)
        assert rx_state(sim, "5001")["heads"][0]["source"] == "0001:1"
        host.close()
    assert sorted(p.name for p in links.iterdir()) == []
