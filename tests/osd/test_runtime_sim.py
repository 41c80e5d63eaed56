"""The controller end to end: simulated firmware, the real kvm-server, keys typed at the seat.

Everything runs on 127.0.0.1; waits are bounded polls (``wait_until``), never fixed sleeps.
"""

from __future__ import annotations

import io
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

from osd.runtime import Controller
from tests.osd.test_runtime_env import ROOM, RxEnv, wait_until
from webadmin import models as m
from webadmin.db import Database, sqlite_url

UNREACHABLE = "与服务器通讯失败,请稍后重试!"


@pytest.fixture
def env(tmp_path: Path) -> Iterator[RxEnv]:
    environment = RxEnv(tmp_path)
    try:
        yield environment
    finally:
        environment.close()


def osd(ctrl: Controller) -> dict[str, Any]:
    return ctrl.snapshot()


def source(env: RxEnv, rx: str, head: int = 1) -> str | None:
    return env.rx_state(rx)["heads"][head - 1]["source"]  # type: ignore[no-any-return]


def typed_at(env: RxEnv, tx: str) -> str:
    tx_state = next(d for d in env.sim.state()["tx"] if d["id"] == tx)
    return tx_state["computer"]["text"]  # type: ignore[no-any-return]


def ready(env: RxEnv, rx: str) -> Controller:
    ctrl = env.controller(rx)
    wait_until(lambda: osd(ctrl)["adopted"] and osd(ctrl)["status"] == "网络正常", 20,
               f"{rx} adopted with status 网络正常")
    # Adopted and reaching the server is not yet online there: that takes its first state
    # report, accepted (a push right after was refused with 此设备不在线, now and then).
    wait_until(lambda: osd(ctrl)["reported"], 10, f"{rx}'s state accepted by the server")
    wait_until(lambda: env.gateway.reporting() >= {"SIM-TX-0001", "SIM-TX-0002"}, 20,
               "the Tx reported online")
    return ctrl


def login(env: RxEnv, rx: str, ctrl: Controller) -> None:
    assert osd(ctrl)["screen"] == "login"
    env.sim.type_text(rx, "hxfj")
    env.sim.press(rx, "Tab")
    env.sim.type_text(rx, "123456")
    env.sim.press(rx, "Enter")
    wait_until(lambda: osd(ctrl)["screen"] == "menu" and osd(ctrl)["rows"], 15, "the menu")


def act(env: RxEnv, rx: str, ctrl: Controller, keys: str, feedback: str) -> None:
    env.sim.press(rx, keys)
    shown: list[object] = []

    def check() -> bool:
        shown[:] = [osd(ctrl)["feedback"]]
        return shown[0] == feedback

    try:
        wait_until(check, 15, f"feedback {feedback}")
    except AssertionError as exc:
        raise AssertionError(f"{exc}; the OSD showed {shown[0]!r}") from None


def open_osd(env: RxEnv, rx: str, ctrl: Controller) -> None:
    env.sim.press(rx, "Shift+O Shift+O")
    wait_until(lambda: osd(ctrl)["screen"] == "menu", 10, "the OSD to open")


def test_login_connect_forward_push_fetch_logout(env: RxEnv) -> None:
    a, b = ready(env, "5001"), ready(env, "5002")
    assert osd(a)["firmware"] == "RX-FW 2.4.1-sim"
    assert env.rx_state("5001")["overlay"], "the login screen is up over the video"

    login(env, "5001", a)
    snap = osd(a)
    assert (snap["user"], snap["mode"]) == ("hxfj", "connect")
    assert [(r["id"], r["name"], r["colour"]) for r in snap["rows"]] == [
        ("0001", "PC one", "grey"), ("0002", "PC two", "grey")]

    # F1 (the default mode) 1 Enter: the simulated Rx shows Tx 0001, the OSD closes itself.
    env.sim.type_text("5001", "1")
    wait_until(lambda: osd(a)["input"] == "1", 5, "the typed ID shown live")
    act(env, "5001", a, "Enter", "连接成功")
    wait_until(lambda: source(env, "5001") == "0001:1", 10, "5001 to show 0001")
    wait_until(lambda: osd(a)["screen"] == "closed" and not env.rx_state("5001")["overlay"],
               10, "the OSD to close after the success")
    assert osd(a)["heads"] == [{"head": 1, "source": "0001:1", "desired": "0001:1"}]

    # Closed: keys reach the computer behind Tx 0001; the call-up chord does not.
    env.sim.type_text("5001", "hello")
    wait_until(lambda: typed_at(env, "0001").endswith("hello"), 10, "typed text at the Tx")
    open_osd(env, "5001", a)
    env.sim.type_text("5001", "xyz")
    wait_until(lambda: osd(a)["input"] == "xyz", 5, "text typed into the OSD")
    assert typed_at(env, "0001").endswith("hello"), "nothing typed reaches the Tx while open"
    assert "O" not in typed_at(env, "0001")

    # F2 push to 5002 (typed as 2): it shows the same Tx.
    env.sim.press("5001", "F2")
    wait_until(lambda: osd(a)["mode"] == "push" and osd(a)["input"] == "", 5, "push mode")
    act(env, "5001", a, "2 Enter", "推送成功")
    wait_until(lambda: source(env, "5002") == "0001:1", 10, "5002 to show 0001")
    wait_until(lambda: osd(b)["heads"][0]["desired"] == "0001:1", 10, "5002's desired routing")
    # Its switch answered, 5002 keeps no timer (its result timeout used to fire 5 s later,
    # for every Rx of a push at once).
    wait_until(lambda: osd(b)["heads"][0]["source"] == "0001:1", 10, "5002's switch answered")
    assert b._tick_timer is None

    # Connect 5001 to 0002, then F3 fetch 5002's signal back (0001).
    open_osd(env, "5001", a)
    env.sim.press("5001", "F1")
    act(env, "5001", a, "2 Enter", "连接成功")
    wait_until(lambda: source(env, "5001") == "0002:1", 10, "5001 to show 0002")
    open_osd(env, "5001", a)
    env.sim.press("5001", "F3")
    wait_until(lambda: osd(a)["mode"] == "fetch", 5, "fetch mode")
    act(env, "5001", a, "2 Enter", "获取成功")
    wait_until(lambda: source(env, "5001") == "0001:1", 10, "5001 to show 0001 again")

    # A wrong ID is the server's answer, shown verbatim.
    open_osd(env, "5001", a)
    act(env, "5001", a, "F1 9 Enter", "热键和ID不存在")
    assert source(env, "5001") == "0001:1"

    # F12: the seat is logged out and disconnected.
    env.sim.press("5001", "F12")
    wait_until(lambda: osd(a)["screen"] == "login", 10, "the login screen")
    wait_until(lambda: source(env, "5001") is None, 10, "5001 disconnected by the logout")
    assert env.rx_state("5001")["overlay"]
    env.sim.type_text("5001", "q")
    assert not typed_at(env, "0001").endswith("q")


def test_bad_password_shows_the_server_answer(env: RxEnv) -> None:
    a = ready(env, "5001")
    env.sim.type_text("5001", "hxfj")
    env.sim.press("5001", "Tab")
    env.sim.type_text("5001", "nope")
    env.sim.press("5001", "Enter")
    wait_until(lambda: osd(a)["status"] == "用户或密码错误", 10, "用户或密码错误")
    assert osd(a)["screen"] == "login"


def test_server_outage_keeps_the_screens_and_converges(env: RxEnv) -> None:
    a = ready(env, "5001")
    login(env, "5001", a)
    act(env, "5001", a, "1 Enter", "连接成功")
    wait_until(lambda: source(env, "5001") == "0001:1", 10, "5001 to show 0001")

    env.stop_server()
    wait_until(lambda: osd(a)["status"] == UNREACHABLE, 15, "the unreachable status")
    # Several heartbeat periods later nothing was disconnected.
    reports = osd(a)["stats"]["reports"]
    wait_until(lambda: osd(a)["stats"]["server_failures"] >= 3, 15, "more failed calls")
    assert source(env, "5001") == "0001:1"
    assert osd(a)["stats"]["reports"] >= reports

    # The firmware reboots meanwhile: the controller restores the last desired routing.
    env.sim.fault("5001", "power-off")
    wait_until(lambda: not osd(a)["link_up"], 10, "the link to go down")
    env.sim.fault("5001", "power-on")
    wait_until(lambda: source(env, "5001") == "0001:1", 15, "the head restored without server")

    # A controller restarted during the outage changes nothing either.
    a.stop()
    env.sim.fault("5001", "power-off")
    env.sim.fault("5001", "power-on")
    assert source(env, "5001") is None
    a2 = env.controller("5001")
    wait_until(lambda: osd(a2)["link_up"] and osd(a2)["status"] == UNREACHABLE, 15,
               "the restarted controller up, server unreachable")
    wait_until(lambda: osd(a2)["stats"]["server_failures"] >= 3, 15, "failed calls")
    assert source(env, "5001") is None and osd(a2)["stats"]["switches_sent"] == 0

    # Server back: status recovers by itself and the head converges to the desired routing.
    env.start_server()
    wait_until(lambda: osd(a2)["status"] == "网络正常", 20, "网络正常 again")
    wait_until(lambda: source(env, "5001") == "0001:1", 20, "convergence to 0001")
    # The seat's session survived the outage: the menu opens without a login.
    wait_until(lambda: osd(a2)["user"] == "hxfj", 10, "the session from the server")


def test_network_down_and_back(env: RxEnv) -> None:
    a = ready(env, "5001")
    env.sim.fault("5001", "network-down")
    wait_until(lambda: osd(a)["status"] == "网络断开", 10, "网络断开")
    env.sim.fault("5001", "network-up")
    wait_until(lambda: osd(a)["status"] == "网络正常", 10, "网络正常")


def test_power_off_goes_offline_on_the_server_and_resyncs(env: RxEnv) -> None:
    a, b = ready(env, "5001"), ready(env, "5002")
    login(env, "5001", a)
    act(env, "5001", a, "1 Enter", "连接成功")
    open_osd(env, "5001", a)
    env.sim.press("5001", "F2")

    def push_rows() -> list[tuple[str, str]]:
        return [(r["id"], r["colour"]) for r in osd(a)["rows"]]

    wait_until(lambda: push_rows() == [("5002", "grey")], 10, "5002 online in the push list")
    act(env, "5001", a, "2 Enter", "推送成功")
    wait_until(lambda: source(env, "5002") == "0001:1", 10, "5002 to show 0001")

    # Power off: the controller stops reporting; the server shows 5002 offline (red).
    env.sim.fault("5002", "power-off")
    wait_until(lambda: not osd(b)["link_up"], 10, "5002's link down")
    reports = osd(b)["stats"]["reports"]
    open_osd(env, "5001", a)
    env.sim.press("5001", "F2")
    wait_until(lambda: env.sim.press("5001", "F5") and push_rows() == [("5002", "red")], 20,
               "5002 shown offline (red)", interval=0.3)
    assert osd(b)["stats"]["reports"] == reports, "no heartbeat while the firmware is off"

    # Power back: handshake, the head is switched back, reports resume.
    env.sim.fault("5002", "power-on")
    wait_until(lambda: osd(b)["link_up"], 10, "5002's link up")
    wait_until(lambda: source(env, "5002") == "0001:1", 10, "5002 re-synced to 0001")
    # Online again, showing the same signal as 5001: yellow.
    wait_until(lambda: env.sim.press("5001", "F5") and push_rows() == [("5002", "yellow")], 20,
               "5002 online again", interval=0.3)


def test_unknown_device_waits_for_adoption(tmp_path: Path) -> None:
    room = dict(ROOM)
    environment = RxEnv(tmp_path, room, sim_overrides={
        "rx": [{"id": r["id"], "serial": r["serial"]} for r in ROOM["rx"]]
        + [{"id": "5003", "serial": "SIM-RX-NEW"}]})
    try:
        c = environment.controller("5003")
        wait_until(lambda: osd(c)["link_up"] and osd(c)["status"] == UNREACHABLE, 15,
                   "pending: the server cannot be used yet")
        assert not osd(c)["adopted"]
        db = Database(sqlite_url(environment.data))
        try:
            with db.begin() as s:
                dev = s.query(m.Device).filter_by(serial="SIM-RX-NEW").one()
                assert dev.adoption == "pending"
                dev.id, dev.name, dev.adoption = "5003", "New desk", "adopted"
        finally:
            db.dispose()
        wait_until(lambda: osd(c)["adopted"] and osd(c)["status"] == "网络正常", 15,
                   "adopted after the admin did")
        assert osd(c)["rx"] == "5003"
    finally:
        environment.close()


def test_overlay_png_is_transparent_where_nothing_is_drawn(env: RxEnv) -> None:
    import pygame

    a = ready(env, "5001")
    png = a.overlay_png((640, 360))
    image = pygame.image.load(io.BytesIO(png), "x.png")
    assert image.get_size() == (640, 360)
    assert image.get_at((0, 0)).a == 0, "corners show the video"
    assert image.get_at((320, 180)).a > 0, "the login panel is drawn in the middle"


def test_view_only_user_never_types_into_the_computer(tmp_path: Path) -> None:
    room = ROOM | {
        "users": [*ROOM["users"], {"name": "viewer", "password": "viewer-pass"}],
        "grants": [*ROOM["grants"], {"user": "viewer", "scope": "view", "access": "view-only",
                                     "devices": ["0001"]}]}
    environment = RxEnv(tmp_path, room)
    try:
        a = ready(environment, "5001")
        environment.sim.type_text("5001", "viewer")
        environment.sim.press("5001", "Tab")
        environment.sim.type_text("5001", "viewer-pass")
        environment.sim.press("5001", "Enter")
        wait_until(lambda: osd(a)["rows"], 15, "the menu")
        act(environment, "5001", a, "1 Enter", "连接成功")
        wait_until(lambda: source(environment, "5001") == "0001:1", 10, "5001 shows 0001")
        # Showing a view-only Tx: the server's session says keys are not allowed.
        wait_until(lambda: osd(a)["keys_allowed"] is False, 10, "keys_allowed false")
        wait_until(lambda: osd(a)["screen"] == "closed", 10, "the OSD closed")
        before = osd(a)["stats"]["keys_forwarded"]
        environment.sim.type_text("5001", "rm")
        open_osd(environment, "5001", a)   # the chord still works: keys reach the OSD
        assert osd(a)["stats"]["keys_forwarded"] == before
        assert not typed_at(environment, "0001").endswith("rm")
    finally:
        environment.close()


def test_cross_screen_seat_shares_the_login_and_follows_the_active_screen(
        tmp_path: Path) -> None:
    room = ROOM | {
        "rx": [*ROOM["rx"], {"id": "5003", "name": "Desk 3", "serial": "SIM-RX-5003"}],
        "seats": [{"name": "seat-B", "screens": ["5002", "5003"]}]}
    environment = RxEnv(tmp_path, room)
    try:
        left, right = ready(environment, "5002"), ready(environment, "5003")
        environment.sim.mouse_to_screen("seat-B", 1)
        wait_until(lambda: osd(left)["active"] and not osd(right)["active"], 10,
                   "the left screen active")
        login(environment, "5002", left)
        # The watch tells the right screen: unlocked, nobody has to log in there again.
        wait_until(lambda: osd(right)["user"] == "hxfj" and osd(right)["screen"] == "closed",
                   10, "the right screen logged in by the seat")
        environment.sim.press("5002", "Esc")
        wait_until(lambda: osd(left)["screen"] == "closed", 10, "the left OSD closed")
        # F7+2 moves the keyboard to the right screen: the chord opens the OSD there.
        environment.sim.press("seat-B", "F7+2")
        wait_until(lambda: osd(right)["active"] and not osd(left)["active"], 10,
                   "the right screen active")
        environment.sim.press("seat-B", "Shift+O Shift+O")
        wait_until(lambda: osd(right)["screen"] == "menu", 10, "the OSD on the right screen")
        assert osd(left)["screen"] == "closed"
        # F12 there logs the whole seat out.
        environment.sim.press("seat-B", "F12")
        wait_until(lambda: osd(left)["screen"] == "login" and osd(right)["screen"] == "login",
                   10, "both screens locked")
    finally:
        environment.close()
