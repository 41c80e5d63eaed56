"""Faults through a whole lab (examples/control-room.yaml): a server crash in the middle of a
push to all, a Tx powered off, garbage on a serial link, a controller killed and restarted."""

from __future__ import annotations

import time
from collections.abc import Callable

import pytest

from firmware_sim.lab import Lab
from kvm_protocol.results import ResultCode as R
from tests.lab.driver import BUSY, Seat, lab_device, poll, sources

pytestmark = pytest.mark.slow
MakeSeat = Callable[[str], Seat]


def zh(code: R) -> str:
    return code.text("zh_CN")


def all_converged(lab: Lab) -> bool:
    """Every powered Rx's controller answers, talks to the server and shows the desired routing."""
    for rx in lab.info.rx:
        osd = lab.osd(rx)
        if osd is None or not (osd.get("server_ok") and osd.get("converged")):
            return False
    return True


def test_server_killed_in_the_middle_of_a_push_to_all(control_room: Lab, seats: MakeSeat) -> None:
    s = seats("5001")
    s.connected_to("0004")  # dual-head Tx
    poll(lambda: all_converged(control_room), bool, 20, "every controller in sync")
    before = sources(control_room)
    s.open_menu()
    s.keys("F2")
    s.type("all")
    s.wait_osd(lambda o: o["mode"] == "push" and o["input"] == "all", "push all typed")
    control_room.keys("5001", "Enter")  # no wait: the kill races the push
    control_room.server("kill")
    pushed = "0004:1"
    try:
        # While the server is down nothing changes that nobody asked for: each head shows
        # what it showed, or what the push asked for.
        deadline = time.monotonic() + 3
        while time.monotonic() < deadline:
            now = sources(control_room)
            for rx, heads in now.items():
                assert heads[0] in (before[rx][0], pushed), f"{rx} changed to {heads[0]}"
            time.sleep(0.1)
        # Whatever became of the push in flight, another try now cannot reach the server.
        s.wait_osd(
            lambda o: bool(o["feedback"]) and o["feedback"] not in BUSY,
            "an answer to the push in flight",
            15,
        )
        assert s.push("all") == zh(R.SERVER_UNREACHABLE)
        s.shot("push-all-server-down")
        assert sources(control_room)["5001"] == before["5001"]
    finally:
        control_room.server("start")
    poll(lambda: all_converged(control_room), bool, 30, "every controller back in sync")
    after = sources(control_room)
    changed = {rx for rx in after if after[rx][0] != before[rx][0]}
    # The push either reached the server before the crash (then every target shows it) or
    # it did not (then nothing changed): never half of it, never anything else.
    assert all(after[rx][0] == pushed for rx in changed), after
    if changed:
        in_scope = {f"{5000 + n}" for n in range(1, 13)}
        assert {rx for rx in in_scope if after[rx][0] == pushed} == in_scope, after
    assert after["5001"] == before["5001"]


def test_tx_powered_off_is_red_and_offline(control_room: Lab, seats: MakeSeat) -> None:
    s = seats("5008")
    s.login("hxfj", "123456")
    # What 5008 shows now: nothing, or what the push-to-all test before may have left on
    # this unattended screen (a push stays there); the refused connect must not change it.
    shown = s.source()
    control_room.fault("0006", "power-off")
    try:
        assert lab_device(control_room, "0006")["online"] is False
        s.refresh_until(lambda rows: rows.get("0006") == "red", "0006 red in the connect list")
        s.shot("connect-list-0006-red")
        assert s.connect("6") == zh(R.OFFLINE)
        assert s.source() == shown and shown != "0006:1"
    finally:
        control_room.fault("0006", "power-on")
    s.refresh_until(lambda rows: rows.get("0006") == "grey", "0006 grey again")
    assert s.connect("6") == zh(R.CONNECTED)


def test_garbage_on_a_serial_link_and_the_link_recovers(control_room: Lab, seats: MakeSeat) -> None:
    s = seats("5006")
    s.connected_to("0002")
    counters = lab_device(control_room, "5006")["link"]["counters"]
    for _ in range(5):
        control_room.garbage("5006", 256)
    link = lab_device(control_room, "5006")["link"]
    assert link["counters"].get("garbage_out", 0) >= counters.get("garbage_out", 0) + 5 * 256
    poll(lambda: lab_device(control_room, "5006")["link"]["up"], bool, 15, "the link up")
    s.wait_osd(lambda o: o["link_up"] and o["server_ok"], "the controller's link up")
    assert s.source() == "0002:1"  # the screen did not change
    assert s.connect("7") == zh(R.CONNECTED)  # and the seat still works
    poll(lambda: s.source(), lambda v: v == "0007:1", 10, "5006 to show 0007")


def test_controller_killed_and_restarted(control_room: Lab, seats: MakeSeat) -> None:
    s = seats("5005")
    s.connected_to("0005")
    poll(lambda: all_converged(control_room), bool, 20, "every controller in sync")
    before = sources(control_room)
    result = control_room.controller("5005", "kill")
    held = result["controller"]["rx"]
    assert "5005" in held and result["controller"]["alive"] is False
    assert control_room.osd("5005") is None
    # With no controller the screens keep what they show.
    deadline = time.monotonic() + 2
    while time.monotonic() < deadline:
        assert sources(control_room) == before
        time.sleep(0.2)
    control_room.controller("5005", "start")
    poll(lambda: all_converged(control_room), bool, 30, "every controller back in sync")
    assert sources(control_room) == before  # restarting changed no screen
    osd = s.osd()
    assert osd["user"] == "hxfj"  # the seat's session lives on the server
    assert s.connect("6") == zh(R.CONNECTED)
    poll(lambda: s.source(), lambda v: v == "0006:1", 10, "5005 to show 0006")
