"""Session changes, view-only, cross-screen seats, settings and the keys the PC holds."""

from __future__ import annotations

import pytest

from kvm_protocol.keys import KEY_NAMES, KeyEvent, Mod, sequence_events, text_events
from kvm_protocol.results import ResultCode
from osd import events as ev
from osd.chord import parse_chord
from osd.model import Colour, ScreenKind
from tests.osd.seat import Seat, forwarded, of_type


@pytest.fixture
def closed() -> Seat:
    """Logged in, menu closed: keys go to the computer."""
    seat = Seat()
    seat.login()
    seat.keys("Esc")
    return seat


# --- sessions ---------------------------------------------------------------------------

def test_logged_out_elsewhere_locks_the_seat(closed: Seat) -> None:
    out = closed.event(ev.SessionInfo(None))
    assert closed.kind is ScreenKind.LOGIN
    assert of_type(out, ev.Overlay) == [ev.Overlay(True)]
    assert closed.login_view.status.text == "已注销"
    assert not forwarded(closed.type("secret"))


def test_a_watch_answer_repeating_the_session_changes_nothing(closed: Seat) -> None:
    """Every watch answer carries the session (a push to every Rx sends one to each): when
    it is the one the seat has, nothing is drawn or sent, and the next change still acts."""
    user = closed.machine.state.user
    assert user is not None
    same = ev.SessionInfo(user, closed.machine.state.keys_allowed,
                          closed.machine.state.session_lang)
    assert closed.event(same) == []
    assert closed.kind is ScreenKind.CLOSED
    assert forwarded(closed.type("ok")) == text_events("ok")
    assert closed.event(ev.SessionInfo(None)) != []
    assert closed.kind is ScreenKind.LOGIN
    assert closed.event(ev.SessionInfo(None)) == []   # still logged out: nothing to redraw


def test_logged_in_at_another_screen_unlocks_with_the_overlay_hidden() -> None:
    seat = Seat()
    out = seat.event(ev.SessionInfo("hxfj"))
    assert seat.kind is ScreenKind.CLOSED
    assert of_type(out, ev.Overlay) == [ev.Overlay(False)]
    assert forwarded(seat.type("ok")) == text_events("ok")


def test_the_watch_overtaking_our_login_answer_still_opens_the_menu() -> None:
    seat = Seat()
    seat.type("hxfj")
    seat.keys("Enter Enter")
    seat.event(ev.SessionInfo("hxfj"))
    assert seat.kind is ScreenKind.MENU
    seat.event(ev.LoginResult(ResultCode.NETWORK_OK, "hxfj"))
    assert seat.kind is ScreenKind.MENU


def test_a_stale_session_after_f12_does_not_unlock(closed: Seat) -> None:
    closed.open_menu()
    closed.keys("F12")
    closed.event(ev.SessionInfo("hxfj"))
    assert closed.kind is ScreenKind.LOGIN, "the server has not processed our logout yet"
    closed.event(ev.SessionInfo(None))
    closed.event(ev.SessionInfo("hxfj"))
    assert closed.kind is ScreenKind.CLOSED, "a new session after the confirmed logout"


def test_idle_logout_when_configured() -> None:
    seat = Seat(ev.Settings(idle_logout_s=300))
    seat.login()
    seat.keys("Esc")
    seat.tick(299_000)
    seat.type("a")
    seat.tick(299_000)
    assert seat.kind is ScreenKind.CLOSED
    out = seat.tick(1_000)
    assert ev.Logout() in out and seat.kind is ScreenKind.LOGIN


# --- view only ------------------------------------------------------------------------------

def test_view_only_keys_never_reach_the_computer_but_the_osd_opens(closed: Seat) -> None:
    closed.event(ev.SessionInfo("hxfj", keys_allowed=False))
    assert not forwarded(closed.type("rm -rf"))
    out = closed.keys("Shift+O Shift+O")
    assert not forwarded(out)
    assert closed.kind is ScreenKind.MENU
    assert [n.text for n in closed.menu.notices] == ["仅查看,键盘鼠标不可用"]
    assert closed.menu.notices[0].colour is Colour.YELLOW


def test_turning_view_only_releases_the_keys_the_computer_holds(closed: Seat) -> None:
    ctrl = KeyEvent(KEY_NAMES["Ctrl"], Mod.LCTRL, True)
    a = KeyEvent(KEY_NAMES["A"], Mod.LCTRL, True)
    assert forwarded(closed.key_events([ctrl, a])) == [ctrl, a]
    out = closed.event(ev.SessionInfo("hxfj", keys_allowed=False))
    assert forwarded(out) == [
        KeyEvent(KEY_NAMES["A"], Mod.LCTRL, False),
        KeyEvent(KEY_NAMES["Ctrl"], Mod.NONE, False),
    ]


# --- keys the computer holds -------------------------------------------------------------

def test_opening_the_osd_releases_a_held_shift(closed: Seat) -> None:
    shift_down, o_down, o_up = sequence_events("Shift+O")[:3]
    out = closed.key_events([shift_down, o_down, o_up, o_down])  # Shift held throughout
    assert closed.kind is ScreenKind.MENU
    assert forwarded(out) == [shift_down, KeyEvent(shift_down.usage, Mod.NONE, False)]
    out = closed.key_events([KeyEvent(o_down.usage, Mod.LSHIFT, False), *sequence_events("Esc")])
    out += closed.key_events([KeyEvent(shift_down.usage, Mod.NONE, False)])
    assert not forwarded(out), "releases of keys the computer no longer holds are dropped"


def test_a_held_lone_shift_o_is_delivered_before_a_remote_logout(closed: Seat) -> None:
    keys = sequence_events("Shift+O")
    closed.key_events(keys)
    out = closed.event(ev.SessionInfo(None))
    assert forwarded(out) == keys[1:], "held keys arrived while logged in: delivered once"


# --- cross-screen seats ----------------------------------------------------------------------

def test_the_osd_opens_only_on_the_active_screen(closed: Seat) -> None:
    closed.event(ev.ScreenActive(False))
    out = closed.keys("Shift+O Shift+O") + closed.type("abc")
    assert closed.kind is ScreenKind.CLOSED
    assert not forwarded(out), "keys of another screen are not ours"
    closed.event(ev.ScreenActive(True))
    closed.open_menu()
    out = closed.event(ev.ScreenActive(False))
    assert ev.Overlay(False) in out and closed.kind is ScreenKind.CLOSED


def test_the_login_screen_stays_on_an_inactive_screen() -> None:
    seat = Seat()
    seat.event(ev.ScreenActive(False))
    seat.type("hxfj")
    assert seat.kind is ScreenKind.LOGIN and seat.overlay
    assert seat.login_view.user.value.text == ""


# --- settings ---------------------------------------------------------------------------------

def test_a_new_chord_applies_at_once(closed: Seat) -> None:
    chord = parse_chord("Ctrl+K Ctrl+K", 400)
    closed.event(ev.SettingsChanged(ev.Settings(chord=chord)))
    assert forwarded(closed.keys("Shift+O Shift+O")) == sequence_events("Shift+O Shift+O")
    assert closed.kind is ScreenKind.CLOSED
    closed.keys("Ctrl+K Ctrl+K")
    assert closed.kind is ScreenKind.MENU


def test_settings_from_the_api() -> None:
    s = ev.Settings.from_api(
        {"chord": "Shift+O Shift+O", "chord_window_ms": 500, "lang": "en",
         "auto_close_ms": 2000, "idle_close_s": 30, "idle_logout_s": 0, "future": True}
    )
    assert s.chord == parse_chord("Shift+O Shift+O", 500)
    assert (s.lang, s.auto_close_ms, s.idle_close_s, s.idle_logout_s) == ("en", 2000, 30, 0)
    assert ev.Settings.from_api({}) == ev.Settings()


@pytest.mark.parametrize(
    ("data", "message"),
    [
        ({"chord": "Shift"}, "settings.chord"),
        ({"chord_window_ms": 5}, "settings.chord"),
        ({"lang": "fr"}, "settings.lang"),
        ({"auto_close_ms": -1}, "settings.auto_close_ms"),
        ({"idle_close_s": "60"}, "settings.idle_close_s"),
        ({"idle_logout_s": True}, "settings.idle_logout_s"),
    ],
)
def test_bad_settings_name_the_key(data: dict[str, object], message: str) -> None:
    with pytest.raises(ev.SettingsError, match=message):
        ev.Settings.from_api(data)


def test_next_deadline_tracks_the_held_chord_key(closed: Seat) -> None:
    assert closed.machine.next_deadline() is None
    closed.key_events(sequence_events("Shift+O")[:2])
    deadline = closed.machine.next_deadline()
    assert deadline == closed.now + 600
    out = closed.event(ev.Tick(), deadline - closed.now)
    assert [k.name for k in forwarded(out)] == ["O"]
