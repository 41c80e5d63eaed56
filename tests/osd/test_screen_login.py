"""The login screen, key for key (SPEC 1.1)."""

from __future__ import annotations

import pytest

from kvm_protocol.keys import KeyEvent, Mod, sequence_events
from kvm_protocol.results import Lang, ResultCode
from osd import events as ev
from osd.model import Colour, LoginFocus, Mode, ScreenKind
from osd.screen import REQUEST_TIMEOUT_MS
from tests.osd.seat import Seat, forwarded, of_type


def test_power_up_shows_the_login_screen_without_a_pointer() -> None:
    seat = Seat(network=False)
    assert seat.log[-1] == ev.Overlay(True)
    draw = of_type(seat.log, ev.Draw)[0]
    assert draw.model.kind is ScreenKind.LOGIN
    assert not draw.model.pointer_visible
    v = seat.login_view
    labels = (v.title.text, v.user.label.text, v.password.label.text)
    assert labels == ("用户登录", "用户名", "密码")
    assert [b.label.text for b in v.buttons] == ["登录", "清除"]
    assert v.focus is LoginFocus.USER and v.user.focused
    assert v.status.text == "", "network state not known yet"


def test_typing_fills_the_fields_and_masks_the_password() -> None:
    seat = Seat()
    seat.type("hxfj")
    seat.keys("Tab")
    seat.type("12 3456")
    v = seat.login_view
    assert v.user.value.text == "hxfj"
    assert v.password.masked and v.password.value.text == "*******"
    assert "12 3456" not in repr(seat.model), "the password never reaches the model"
    assert v.user.value.colour is Colour.WHITE and v.user.label.colour is Colour.BROWN


@pytest.mark.parametrize(
    ("spec", "order"),
    [
        ("Tab", ["password", "login", "clear", "user", "password"]),
        ("Shift+Tab", ["clear", "login", "password", "user", "clear"]),
        ("Down", ["password", "login", "clear", "user", "password"]),
        ("Up", ["clear", "login", "password", "user", "clear"]),
    ],
)
def test_tab_cycles_through_fields_and_buttons(spec: str, order: list[str]) -> None:
    seat = Seat()
    seen = []
    for _ in order:
        seat.keys(spec)
        seen.append(seat.login_view.focus.value)
    assert seen == order
    v = seat.login_view
    assert [b.focused for b in v.buttons].count(True) <= 1


def test_enter_in_the_user_field_moves_to_the_password() -> None:
    seat = Seat()
    seat.type("hxfj")
    out = seat.keys("Enter")
    assert not of_type(out, ev.Login)
    assert seat.login_view.focus is LoginFocus.PASSWORD


def test_enter_in_the_password_field_logs_in() -> None:
    seat = Seat()
    seat.type("hxfj")
    seat.keys("Tab")
    seat.type("123456")
    out = seat.keys("Enter")
    assert of_type(out, ev.Login) == [ev.Login("hxfj", "123456")]
    assert seat.login_view.busy and seat.login_view.status.text == "正在登录…"
    assert not of_type(seat.keys("Enter"), ev.Login), "one request at a time"
    out = seat.event(ev.LoginResult(ResultCode.NETWORK_OK, "hxfj"))
    assert seat.kind is ScreenKind.MENU
    assert ev.RequestDevices(Mode.CONNECT) in out
    assert seat.menu.input.mode_word.text == "【连接】", "Connect is the default after login"
    assert seat.overlay


@pytest.mark.parametrize("press", ["Enter", "Space"])
def test_the_login_button(press: str) -> None:
    seat = Seat()
    seat.type("hxfj")
    seat.keys("Tab")
    seat.type("pw")
    seat.keys("Tab")
    assert seat.login_view.buttons[0].focused
    assert seat.login_view.buttons[0].label.colour is Colour.BRIGHT_YELLOW
    assert of_type(seat.keys(press), ev.Login) == [ev.Login("hxfj", "pw")]


@pytest.mark.parametrize("press", ["Enter", "Space"])
def test_the_clear_button_empties_both_fields(press: str) -> None:
    seat = Seat()
    seat.type("hxfj")
    seat.keys("Tab")
    seat.type("pw")
    seat.keys("Tab Tab")
    assert seat.login_view.focus is LoginFocus.CLEAR
    assert not of_type(seat.keys(press), ev.Login)
    v = seat.login_view
    assert (v.user.value.text, v.password.value.text, v.focus) == ("", "", LoginFocus.USER)


def test_backspace_edits_the_focused_field() -> None:
    seat = Seat()
    seat.type("hxfjx")
    seat.keys("Backspace")
    seat.keys("Tab")
    seat.type("12")
    seat.keys("Backspace Backspace Backspace")
    assert seat.login_view.user.value.text == "hxfj"
    assert seat.login_view.password.value.text == ""


def test_enter_without_a_user_name_asks_for_it() -> None:
    seat = Seat()
    seat.keys("Tab")
    seat.type("pw")
    assert not of_type(seat.keys("Enter"), ev.Login)
    assert seat.login_view.focus is LoginFocus.USER


def test_ctrl_and_alt_combinations_type_nothing() -> None:
    seat = Seat()
    seat.keys("Ctrl+A Alt+B Win+C")
    assert seat.login_view.user.value.text == ""


def test_field_lengths_are_bounded() -> None:
    seat = Seat()
    seat.type("u" * 50)
    seat.keys("Tab")
    seat.type("p" * 80)
    assert len(seat.login_view.user.value.text) == 32
    assert len(seat.login_view.password.value.text) == 64


def test_esc_does_not_unlock_the_seat() -> None:
    seat = Seat()
    out = seat.keys("Esc Esc F12 Shift+O Shift+O")
    assert seat.kind is ScreenKind.LOGIN and seat.overlay
    assert not forwarded(out)
    assert not of_type(out, ev.Overlay)


def test_keys_typed_while_logged_out_never_reach_a_computer() -> None:
    seat = Seat()
    out = seat.type("Hello, world 123") + seat.keys("F1 F5 Esc Enter Tab Shift+Tab Ctrl+C")
    out += seat.tick(100_000)
    assert not forwarded(seat.log)


# --- the status line -----------------------------------------------------------------

STATUS = [
    (ResultCode.NETWORK_OK, "网络正常", "Network OK"),
    (ResultCode.NETWORK_DOWN, "网络断开", "Network down"),
    (
        ResultCode.SERVER_UNREACHABLE,
        "与服务器通讯失败,请稍后重试!",
        "Cannot reach the server, please try again later",
    ),
    (ResultCode.BAD_CREDENTIALS, "用户或密码错误", "Wrong user name or password"),
]


def _reach(seat: Seat, code: ResultCode) -> None:
    if code is ResultCode.NETWORK_DOWN:
        seat.event(ev.NetworkStatus(False))
    elif code is ResultCode.SERVER_UNREACHABLE:
        seat.event(ev.ServerStatus(False))
    elif code is ResultCode.BAD_CREDENTIALS:
        seat.type("hxfj")
        seat.keys("Tab")
        seat.type("wrong")
        seat.keys("Enter")
        seat.event(ev.LoginResult(ResultCode.BAD_CREDENTIALS))


@pytest.mark.parametrize("lang", ["zh_CN", "en"])
@pytest.mark.parametrize(("code", "zh", "en"), STATUS, ids=[c.name for c, _, _ in STATUS])
def test_status_line(code: ResultCode, zh: str, en: str, lang: Lang) -> None:
    seat = Seat(ev.Settings(lang=lang))
    _reach(seat, code)
    status = seat.login_view.status
    assert status.text == (zh if lang == "zh_CN" else en)
    assert status.text == code.text(lang)
    assert status.colour is (Colour.WHITE if code is ResultCode.NETWORK_OK else Colour.RED)


def test_wrong_password_clears_it_and_keeps_the_user() -> None:
    seat = Seat()
    _reach(seat, ResultCode.BAD_CREDENTIALS)
    v = seat.login_view
    assert (v.user.value.text, v.password.value.text, v.focus) == ("hxfj", "", LoginFocus.PASSWORD)


def test_connectivity_recovering_replaces_an_error() -> None:
    seat = Seat()
    seat.event(ev.NetworkStatus(False))
    seat.event(ev.NetworkStatus(True))
    assert seat.login_view.status.text == "网络正常"
    seat.event(ev.ServerStatus(False))
    assert seat.login_view.status.text == "与服务器通讯失败,请稍后重试!"
    seat.event(ev.ServerStatus(True))
    assert seat.login_view.status.text == "网络正常"


def test_login_with_the_network_down_is_not_sent() -> None:
    seat = Seat()
    seat.event(ev.NetworkStatus(False))
    seat.type("hxfj")
    seat.keys("Tab")
    seat.type("123456")
    assert not of_type(seat.keys("Enter"), ev.Login)
    assert seat.login_view.status.text == "网络断开"


@pytest.mark.parametrize(
    "code",
    [
        ResultCode.LOGIN_NOT_ALLOWED,
        ResultCode.ACCOUNT_DISABLED,
        ResultCode.RATE_LIMITED,
        ResultCode.SERVER_UNREACHABLE,
    ],
)
def test_other_login_refusals_are_shown(code: ResultCode) -> None:
    seat = Seat()
    seat.type("hxfj")
    seat.keys("Enter")
    seat.keys("Enter")
    seat.event(ev.LoginResult(code))
    assert seat.kind is ScreenKind.LOGIN
    assert seat.login_view.status.text == code.text()


def test_an_unanswered_login_times_out() -> None:
    seat = Seat()
    seat.type("hxfj")
    seat.keys("Enter")
    assert of_type(seat.key_events(sequence_events("Enter")[:1]), ev.Login)
    assert seat.machine.next_deadline() == seat.now + REQUEST_TIMEOUT_MS
    seat.tick(REQUEST_TIMEOUT_MS - 1)
    assert seat.login_view.busy
    seat.tick(1)
    assert seat.login_view.status.text == "与服务器通讯失败,请稍后重试!"
    assert not seat.login_view.busy
    seat.event(ev.LoginResult(ResultCode.NETWORK_OK, "hxfj"))
    assert seat.kind is ScreenKind.LOGIN, "a late answer to a given-up request is ignored"
    assert of_type(seat.keys("Enter"), ev.Login), "the operator can try again"


def test_idle_login_screen_forgets_a_half_typed_password() -> None:
    seat = Seat()
    seat.type("hxfj")
    seat.keys("Tab")
    seat.type("123")
    seat.tick(59_000)
    assert seat.login_view.password.value.text == "***"
    seat.tick(1_000)
    v = seat.login_view
    assert (v.user.value.text, v.password.value.text, v.focus) == ("", "", LoginFocus.USER)


def test_release_events_and_odd_keys_do_nothing_on_the_login_screen() -> None:
    seat = Seat()
    before = seat.model
    for usage in (0x00, 0x01, 0x65, 0x58 + 40, 0xE8, 0xFF):
        seat.event(ev.KeyInput(KeyEvent(usage, Mod(0xFF), True)))
        seat.event(ev.KeyInput(KeyEvent(usage, Mod.NONE, False)))
    seat.key_events([KeyEvent(k.usage, k.mods, False) for k in sequence_events("A B C")])
    assert seat.model == before


# --- wall tiles (setting login_hidden): no login screen over the wall's picture ----------

TILE = ev.Settings(login_hidden=True)


def test_a_wall_tile_shows_no_login_screen_at_rest_and_stays_locked() -> None:
    tile = Seat(TILE, rx_id="5010")
    assert not tile.overlay and not of_type(tile.log, ev.Draw)
    assert tile.kind is ScreenKind.CLOSED and tile.model.login is None
    assert forwarded(tile.type("secret")) == [], "nobody logged in: the computer gets nothing"
    assert forwarded(tile.keys("Shift+O")) == []


def test_the_chord_calls_up_a_tiles_login_screen_and_esc_hides_it_again() -> None:
    tile = Seat(TILE, rx_id="5010")
    tile.keys("Shift+O Shift+O")
    assert tile.overlay and tile.kind is ScreenKind.LOGIN
    tile.type("hxfj")
    tile.keys("Tab")
    tile.type("123")
    assert tile.login_view.user.value.text == "hxfj"
    tile.keys("Esc")
    assert not tile.overlay and tile.kind is ScreenKind.CLOSED
    tile.keys("Shift+O Shift+O")
    assert tile.overlay and tile.login_view.user.value.text == "", "what was typed is gone"
    assert tile.login_view.password.value.text == ""


def test_a_tiles_login_screen_goes_away_when_idle_and_after_a_logout() -> None:
    tile = Seat(TILE, rx_id="5010")
    tile.keys("Shift+O Shift+O")
    tile.tick(59_000)
    assert tile.overlay
    tile.tick(1_100)
    assert not tile.overlay and tile.kind is ScreenKind.CLOSED
    tile.keys("Shift+O Shift+O")
    tile.login()
    assert tile.kind is ScreenKind.MENU and tile.overlay
    tile.keys("F12")
    assert not tile.overlay and tile.kind is ScreenKind.CLOSED
    assert forwarded(tile.type("x")) == []


def test_esc_on_a_tile_does_not_drop_a_login_on_its_way() -> None:
    tile = Seat(TILE, rx_id="5010")
    tile.keys("Shift+O Shift+O")
    tile.type("hxfj")
    tile.keys("Tab")
    tile.type("123456")
    assert ev.Login("hxfj", "123456") in tile.keys("Enter")
    tile.keys("Esc")
    assert tile.overlay, "the answer is awaited on the screen that asked"
    tile.event(ev.LoginResult(ResultCode.NETWORK_OK, "hxfj"))
    assert tile.kind is ScreenKind.MENU


def test_becoming_a_wall_tile_hides_the_login_screen_and_leaving_shows_it() -> None:
    seat = Seat(rx_id="5010")
    assert seat.overlay
    seat.event(ev.SettingsChanged(TILE))
    assert not seat.overlay
    seat.event(ev.SettingsChanged(ev.Settings()))
    assert seat.overlay and seat.kind is ScreenKind.LOGIN


def test_login_hidden_comes_from_the_servers_settings() -> None:
    assert ev.Settings.from_api({"login_hidden": True}).login_hidden is True
    assert ev.Settings.from_api({}).login_hidden is False
    with pytest.raises(ev.SettingsError, match="login_hidden"):
        ev.Settings.from_api({"login_hidden": "yes"})


def test_what_was_typed_before_a_tile_learns_it_is_one_does_not_stay_behind() -> None:
    tile = Seat(rx_id="5010")           # the server's settings have not arrived yet
    tile.type("bob")
    tile.keys("Tab")
    tile.type("secret")
    tile.event(ev.SettingsChanged(TILE))
    assert not tile.overlay
    tile.keys("Shift+O Shift+O")
    assert tile.login_view.user.value.text == "" and tile.login_view.password.value.text == ""
    assert not of_type(tile.keys("Enter Enter"), ev.Login), "no login with someone else's password"


def test_a_login_on_its_way_when_a_tile_learns_it_is_one_keeps_its_screen() -> None:
    tile = Seat(rx_id="5010")
    tile.type("hxfj")
    tile.keys("Tab")
    tile.type("123456")
    tile.keys("Enter")
    tile.event(ev.SettingsChanged(TILE))
    assert tile.overlay and tile.kind is ScreenKind.LOGIN
    tile.event(ev.LoginResult(ResultCode.NETWORK_OK, "hxfj"))
    assert tile.kind is ScreenKind.MENU


def test_a_chord_step_held_on_a_hidden_tile_leaves_no_deadline_behind() -> None:
    tile = Seat(TILE, rx_id="5010")
    tile.keys("Shift+O")                # the first step: the detector waits for the second
    assert tile.machine.next_deadline() is not None
    tile.event(ev.SettingsChanged(ev.Settings()))   # no longer a tile: the login screen shows
    assert tile.kind is ScreenKind.LOGIN
    assert tile.machine.next_deadline() is None, "nothing is due: no timer to spin on"
