"""A second topology (examples/small-room.yaml): English OSD, Ctrl+K Ctrl+K call-up chord,
other IDs, a three-screen seat with a dual-head Rx, a wall strip that does not splice."""

from __future__ import annotations

from collections.abc import Callable
from pathlib import Path

import pytest

from firmware_sim.lab import Lab
from kvm_protocol.results import ResultCode as R
from kvm_protocol.transport import unix_socket_path
from tests.lab.driver import ARTIFACTS, Seat, lab_device, poll, sources

pytestmark = pytest.mark.slow
MakeSeat = Callable[[str], Seat]


def en(code: R) -> str:
    return code.text("en")


def test_shift_lead_seat(small_room: Lab, small_seats: MakeSeat) -> None:
    s = small_seats("7001")
    osd = s.wait_osd(lambda o: o["screen"] == "login", "the login screen")
    assert osd["status"] == en(R.NETWORK_OK)
    assert s.attempt_login("ext", "ext-pass") == en(R.ACCOUNT_DISABLED)
    assert s.attempt_login("lead", "wrong-pass") == en(R.BAD_CREDENTIALS)
    s.login("lead", "lead-pass-1")
    assert s.connect("hmi") == en(R.CONNECTED)  # hotkey hmi → Tx 0101
    s.wait_closed()
    poll(lambda: s.source(), lambda v: v == "0101:1", 10, "7001 to show 0101")
    s.shot("small-room-7001-connected")
    assert s.connect("4999") == en(R.OFFLINE)  # its network is unplugged (sim hint)
    assert s.connect("102") == en(R.CONNECTED)  # leading zeros left out
    s.wait_closed()
    assert s.push("strip") == en(R.PUSHED)  # hotkey strip → 9001, 9002, 9003
    poll(
        lambda: sources(small_room),
        lambda src: [src[rx][0] for rx in ("9001", "9002", "9003")] == ["0102:1"] * 3,
        10,
        "the strip to show 0102",
    )
    assert s.push("9001") == en(R.SAME_SOURCE)


def test_three_screen_desk(small_room: Lab, small_seats: MakeSeat) -> None:
    left = small_seats("6001")  # dual-head Rx, screen 1 of desk-1
    left.wait_osd(lambda o: o["screen"] == "login", "the login screen")
    left.login("ops1", "ops1-pass")
    left.lang = "zh_CN"  # ops1's own language (the default)
    # One login serves the whole seat: its other screens unlock too.
    right = Seat(small_room, "6002", lang="en", chord="Ctrl+K Ctrl+K")
    right.wait_osd(lambda o: o["user"] == "ops1", "6002 to share the seat's session")
    assert left.connect("101") == R.CONNECTED.text("zh_CN")  # dual-head Tx, dual-head Rx
    left.wait_closed()
    poll(
        lambda: sources(small_room)["6001"],
        lambda h: h == ["0101:1", "0101:2"],
        10,
        "both heads of 6001 to show 0101",
    )
    left.shot("small-room-6001-head1")
    small_room.screenshot("6001", ARTIFACTS / "small-room-6001-head2.png", head=2)
    assert left.connect("4999") == R.OUT_OF_SCOPE.text("zh_CN")  # only lead may view 4999
    assert lab_device(small_room, "4999")["online"] is False


def test_controller_hosts_run_below_the_simulator(small_room: Lab) -> None:
    """The simulator stands in for every device's own CPU: the controller hosts get the
    lower priority (``HOST_NICE``), the simulator and the server the lab's own."""
    from firmware_sim.lab.up import HOST_NICE
    from tests.lab.test_supervisor import niceness

    children = small_room.status()["children"]
    sim, server = niceness(children["sim"]["pid"]), niceness(children["server"]["pid"])
    hosts = [niceness(c["pid"]) for name, c in children.items() if name.startswith("rx-host")]
    assert hosts and server == sim
    assert all(h == min(19, sim + HOST_NICE) for h in hosts)


def test_the_serial_links_are_unix_sockets_in_one_directory(small_room: Lab) -> None:
    """The lab's simulator serves every device's serial link on a Unix socket (cheaper per
    frame than TCP on the loopback; docs/LAB.md), all in the lab's own directory."""
    ports = small_room.info.serial_ports
    assert ports and all(url.startswith("unix:///") for url in ports.values())
    dirs = {unix_socket_path(url).rsplit("/", 1)[0] for url in ports.values()}
    assert len(dirs) == 1 and Path(dirs.pop()).is_dir()
