"""Every outcome message of SPEC Part 1, through a whole lab (examples/control-room.yaml):
real server, simulator and controllers, driven by key presses on the seats."""

from __future__ import annotations

import time
from collections.abc import Callable

import pytest

from firmware_sim.lab import Lab
from kvm_protocol.results import ResultCode as R
from tests.lab.driver import ARTIFACTS, HIGHLIGHT, Seat, lab_device, poll, sources

pytestmark = pytest.mark.slow
MakeSeat = Callable[[str], Seat]


def zh(code: R) -> str:
    return code.text("zh_CN")


def test_login_screen_statuses_and_the_menu(control_room: Lab, seats: MakeSeat) -> None:
    s = seats("5007")
    osd = s.wait_osd(lambda o: o["screen"] == "login", "the login screen")
    assert osd["status"] == zh(R.NETWORK_OK)
    s.shot("login-network-ok")
    assert s.attempt_login("hxfj", "654321") == zh(R.BAD_CREDENTIALS)
    assert s.attempt_login("nobody", "123456") == zh(R.BAD_CREDENTIALS)
    s.wait_osd(lambda o: o["status"] == zh(R.NETWORK_OK), "the status line after Clear")
    s.login("hxfj", "123456")
    osd = s.wait_osd(lambda o: bool(o["rows"]), "the device list")
    assert (osd["screen"], osd["mode"], osd["user"]) == ("menu", "connect", "hxfj")
    ids = [r["id"] for r in osd["rows"]]
    assert "0001" in ids and "0011" not in ids  # the view scope: 0001-0010
    s.shot("menu-connect-hxfj")


def test_login_when_the_server_is_down(control_room: Lab, seats: MakeSeat) -> None:
    s = seats("5008")
    s.wait_osd(lambda o: o["screen"] == "login", "the login screen")
    control_room.server("stop")
    try:
        s.wait_osd(lambda o: o["status"] == zh(R.SERVER_UNREACHABLE), "与服务器通讯失败", 15)
        assert s.attempt_login("hxfj", "123456") == zh(R.SERVER_UNREACHABLE)
        s.shot("login-server-unreachable")
    finally:
        control_room.server("start")
    s.wait_osd(lambda o: o["status"] == zh(R.NETWORK_OK), "网络正常 after the restart", 20)
    s.login("hxfj", "123456")


def test_login_with_the_rx_network_pulled(control_room: Lab, seats: MakeSeat) -> None:
    s = seats("5006")
    s.wait_osd(lambda o: o["screen"] == "login", "the login screen")
    control_room.fault("5006", "network-down")
    try:
        s.wait_osd(lambda o: o["status"] == zh(R.NETWORK_DOWN), "网络断开")
        assert s.attempt_login("hxfj", "123456") == zh(R.NETWORK_DOWN)
        s.shot("login-network-down")
        assert lab_device(control_room, "5006")["online"] is False
    finally:
        control_room.fault("5006", "network-up")
    s.wait_osd(lambda o: o["status"] == zh(R.NETWORK_OK), "网络正常 again", 20)
    s.login("hxfj", "123456")


def test_connect_outcomes(control_room: Lab, seats: MakeSeat) -> None:
    s = seats("5004")
    s.login("hxfj", "123456")
    assert s.connect("1") == zh(R.CONNECTED)
    seen = time.monotonic()
    s.wait_closed(timeout=5)
    closed_after = time.monotonic() - seen
    assert 0.5 <= closed_after <= 2.5, f"the OSD closed {closed_after:.2f} s after 连接成功"
    poll(lambda: s.source(), lambda v: v == "0001:1", 10, "5004 to show 0001")
    s.open_menu()
    assert s.rows()["0001"] in HIGHLIGHT  # the Tx this Rx is connected to
    s.shot("menu-connected-0001")
    assert s.connect("1") == zh(R.SAME_SOURCE)
    assert s.connect("A1") == zh(R.SAME_SOURCE)  # hotkey A1 → Tx 0001
    assert s.connect("11") == zh(R.OUT_OF_SCOPE)
    assert s.connect("3") == zh(R.NO_VIDEO)
    assert s.connect("99") == zh(R.UNKNOWN_TARGET)
    assert s.connect("nosuch") == zh(R.UNKNOWN_TARGET)
    assert s.connect("1,2") == zh(R.UNKNOWN_TARGET)  # connect takes exactly one
    s.shot("connect-unknown-target")
    control_room.fault("0005", "stream-fault")
    try:
        control_room.wait_tx_reported("0005")
        assert s.connect("5") == zh(R.CONNECT_FAILED)
    finally:
        control_room.fault("0005", "stream-ok")
        control_room.wait_tx_reported("0005")
    assert s.source() == "0001:1"  # failures changed nothing
    assert s.connect("2") == zh(R.CONNECTED)
    poll(lambda: s.source(), lambda v: v == "0002:1", 10, "5004 to show 0002")


def test_push_outcomes(control_room: Lab, seats: MakeSeat) -> None:
    s = seats("5005")
    s.login("hxfj", "123456")
    assert s.push("4") == zh(R.NOT_CONNECTED)  # 5005 shows nothing yet
    assert s.connect("7") == zh(R.CONNECTED)
    s.wait_closed()
    assert s.push("4") == zh(R.PUSHED)
    s.wait_closed()
    poll(lambda: sources(control_room)["5004"][0], lambda v: v == "0007:1", 10, "5004 ← 0007")
    assert s.push("4") == zh(R.SAME_SOURCE)
    assert s.push("13") == zh(R.UNKNOWN_TARGET)  # no Rx 5013
    assert s.push("1,,2") == zh(R.UNKNOWN_TARGET)
    assert s.push("all,1") == zh(R.UNKNOWN_TARGET)
    s.shot("push-unknown-target")

    guest = seats("5006")
    guest.login("guest", "guest123")
    assert guest.connect("2") == zh(R.CONNECTED)
    guest.wait_closed()
    assert guest.push("7") == zh(R.OUT_OF_SCOPE)  # guest may push nowhere
    assert sources(control_room)["5007"][0] != "0002:1"


def test_push_to_a_splicing_wall_fills_the_wall(control_room: Lab, seats: MakeSeat) -> None:
    s = seats("5001")
    s.login("hxfj", "123456")
    assert s.connect("9") == zh(R.CONNECTED)
    s.wait_closed()
    assert s.push("wall") == zh(R.PUSHED)  # hotkey wall → Rx 5009
    poll(
        lambda: sources(control_room),
        lambda src: all(src[rx][0] == "0009:1" for rx in ("5009", "5010", "5011", "5012")),
        10,
        "every tile of the wall to show 0009",
    )
    # Nobody is logged in at the wall, and no login screen covers its picture ...
    tile = control_room.osd("5010") or {}
    assert (tile.get("screen"), tile.get("user")) == ("closed", None), tile
    control_room.screenshot("5010", ARTIFACTS / "wall-tile-5010.png")
    # ... until someone calls it up at a tile; Esc hides it again.
    control_room.keys("5010", "Shift+O Shift+O")
    poll(lambda: control_room.osd("5010") or {}, lambda o: o.get("screen") == "login", 10,
         "the chord to call up the tile's login screen")
    control_room.keys("5010", "Esc")
    poll(lambda: control_room.osd("5010") or {}, lambda o: o.get("screen") == "closed", 10,
         "Esc to hide the tile's login screen")


def test_fetch_outcomes(control_room: Lab, seats: MakeSeat) -> None:
    source = seats("5004")
    source.connected_to("0008")
    s = seats("5007")
    s.login("hxfj", "123456")
    assert s.fetch("4") == zh(R.FETCHED)
    s.wait_closed()
    poll(lambda: s.source(), lambda v: v == "0008:1", 10, "5007 to show 0008")
    assert s.fetch("4") == zh(R.SAME_SOURCE)
    s.open_menu()
    s.keys("F3")
    s.wait_osd(lambda o: o["mode"] == "fetch" and o["rows"], "the fetch list")
    assert s.rows()["5004"] in HIGHLIGHT  # shows the same signal as this Rx
    assert s.fetch("99") == zh(R.UNKNOWN_TARGET)  # no Rx 5099
    assert s.fetch("4,5") == zh(R.UNKNOWN_TARGET)  # fetch takes exactly one
    s.shot("fetch-unknown-target")

    guest = seats("5006")
    guest.login("guest", "guest123")
    assert guest.fetch("7") == zh(R.OUT_OF_SCOPE)  # guest fetches from 5001-5004 only

    control_room.fault("5002", "power-off")
    try:
        s.open_menu()
        s.keys("F3")
        s.refresh_until(lambda rows: rows.get("5002") == "red", "5002 red in the fetch list")
        assert s.fetch("2") == zh(R.OFFLINE)
        s.shot("fetch-offline")
    finally:
        control_room.fault("5002", "power-on")


def test_keys_reach_the_computer_only_while_the_osd_is_closed(
    control_room: Lab, seats: MakeSeat
) -> None:
    s = seats("5004")
    s.connected_to("0010")
    start = lab_device(control_room, "0010")["received"]
    s.type("hello")
    poll(
        lambda: lab_device(control_room, "0010")["received"],
        lambda t: t == start + "hello",
        10,
        "0010 to receive hello",
    )
    s.open_menu()
    s.type("xyz")
    s.wait_osd(lambda o: o["input"] == "xyz", "the OSD input to show xyz")
    s.keys("Esc")
    s.wait_closed()
    s.type("42")
    received = poll(
        lambda: lab_device(control_room, "0010")["received"],
        lambda t: t.endswith("42"),
        10,
        "0010 to receive 42",
    )
    assert received == start + "hello42"  # nothing typed into the OSD leaked
