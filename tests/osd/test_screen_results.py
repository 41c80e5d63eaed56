"""Every outcome of SPEC 1.3-1.5 in the feedback area, with the exact texts (SPEC 2.5)."""

from __future__ import annotations

import pytest

from kvm_protocol.results import Lang, ResultCode
from osd import events as ev
from osd.model import Colour, Mode, ScreenKind
from tests.osd.seat import Seat

# (mode, result, zh_CN, en) — the manual's lists, typed out here on purpose: the test checks
# that the OSD shows the manual's words, not merely whatever kvm_protocol holds.
OUTCOMES = [
    (Mode.CONNECT, ResultCode.CONNECTED, "连接成功", "Connected"),
    (Mode.CONNECT, ResultCode.CONNECT_FAILED, "连接失败", "Connection failed"),
    (Mode.CONNECT, ResultCode.OUT_OF_SCOPE, "超出范围", "Out of permission scope"),
    (Mode.CONNECT, ResultCode.SAME_SOURCE, "相同视频源", "Same video source"),
    (Mode.CONNECT, ResultCode.NO_VIDEO, "此设备无视频", "This device has no video"),
    (Mode.CONNECT, ResultCode.OFFLINE, "此设备不在线", "This device is offline"),
    (Mode.CONNECT, ResultCode.UNKNOWN_TARGET, "热键和ID不存在", "No such hotkey or ID"),
    (Mode.PUSH, ResultCode.PUSHED, "推送成功", "Pushed"),
    (
        Mode.PUSH,
        ResultCode.NOT_CONNECTED,
        "获取视频切换状态失败",
        "This receiver is not connected to any source",
    ),
    (Mode.PUSH, ResultCode.OUT_OF_SCOPE, "超出范围", "Out of permission scope"),
    (Mode.PUSH, ResultCode.SAME_SOURCE, "相同视频源", "Same video source"),
    (Mode.PUSH, ResultCode.UNKNOWN_TARGET, "热键和ID不存在", "No such hotkey or ID"),
    (Mode.FETCH, ResultCode.FETCHED, "获取成功", "Fetched"),
    (Mode.FETCH, ResultCode.OFFLINE, "此设备不在线", "This device is offline"),
    (Mode.FETCH, ResultCode.OUT_OF_SCOPE, "超出范围", "Out of permission scope"),
    (Mode.FETCH, ResultCode.SAME_SOURCE, "相同视频源", "Same video source"),
    (Mode.FETCH, ResultCode.UNKNOWN_TARGET, "热键和ID不存在", "No such hotkey or ID"),
    (
        Mode.CONNECT,
        ResultCode.SERVER_UNREACHABLE,
        "与服务器通讯失败,请稍后重试!",
        "Cannot reach the server, please try again later",
    ),
]
MODE_KEYS = {Mode.CONNECT: "F1", Mode.PUSH: "F2", Mode.FETCH: "F3"}
SUCCESS = {ResultCode.CONNECTED, ResultCode.PUSHED, ResultCode.FETCHED}


def _ask(lang: Lang, mode: Mode, typed: str = "7") -> Seat:
    seat = Seat(ev.Settings(lang=lang))
    seat.login()
    seat.keys(MODE_KEYS[mode])
    seat.type(typed)
    seat.keys("Enter")
    return seat


@pytest.mark.parametrize("lang", ["zh_CN", "en"])
@pytest.mark.parametrize(
    ("mode", "code", "zh", "en"),
    OUTCOMES,
    ids=[f"{m.value}-{c.name}" for m, c, _, _ in OUTCOMES],
)
def test_feedback_text(mode: Mode, code: ResultCode, zh: str, en: str, lang: Lang) -> None:
    seat = _ask(lang, mode)
    seat.event(ev.ActionResult(mode, code))
    fb = seat.menu.feedback
    assert fb is not None
    assert fb.text == (zh if lang == "zh_CN" else en)
    if code in SUCCESS:
        assert fb.colour is Colour.WHITE
        assert seat.menu.input.text.text == ""
        seat.tick(1000)
        assert seat.kind is ScreenKind.CLOSED, "the OSD closes by itself after 1 second"
    else:
        assert fb.colour is Colour.RED
        assert seat.menu.input.text.text == "7"
        seat.tick(1000)
        assert seat.kind is ScreenKind.MENU, "a failure stays on screen"


@pytest.mark.parametrize(
    ("lang", "text"),
    [
        ("zh_CN", "部分推送失败: 5002:超出范围 5003:此设备不在线"),
        ("en", "Push failed for some targets: 5002: Out of permission scope "
               "5003: This device is offline"),
    ],
)
def test_partial_push_names_each_failed_target(lang: Lang, text: str) -> None:
    seat = _ask(lang, Mode.PUSH, "1,2,3")
    failures = (("5002", ResultCode.OUT_OF_SCOPE), ("5003", ResultCode.OFFLINE))
    seat.event(ev.ActionResult(Mode.PUSH, ResultCode.PUSH_PARTIAL, failures))
    fb = seat.menu.feedback
    assert fb is not None and fb.text == text and fb.colour is Colour.RED
    seat.tick(1000)
    assert seat.kind is ScreenKind.MENU


def test_english_interface() -> None:
    seat = Seat(ev.Settings(lang="en"))
    assert seat.login_view.title.text == "User login"
    assert seat.login_view.status.text == "Network OK"
    seat.login()
    v = seat.menu
    assert v.input.mode_word.text == "[Connect]"
    assert [k.label.text for k in v.function_keys][:3] == ["Connect", "Push", "Fetch"]


def test_the_session_language_wins_over_the_seat_default() -> None:
    seat = Seat()
    seat.type("hxfj")
    seat.keys("Enter Enter")
    seat.event(ev.LoginResult(ResultCode.NETWORK_OK, "hxfj", lang="en"))
    assert seat.menu.title.text == "OSD menu"
    seat.keys("F12")
    assert seat.login_view.title.text == "用户登录", "back to the seat's language"


def test_not_logged_in_answer_returns_to_the_login_screen() -> None:
    seat = _ask("zh_CN", Mode.CONNECT)
    seat.event(ev.ActionResult(Mode.CONNECT, ResultCode.NOT_LOGGED_IN))
    assert seat.kind is ScreenKind.LOGIN
    assert seat.login_view.status.text == "请先登录"


def test_an_answer_after_the_menu_closed_is_ignored() -> None:
    seat = _ask("zh_CN", Mode.CONNECT)
    seat.keys("Esc")
    out = seat.event(ev.ActionResult(Mode.CONNECT, ResultCode.CONNECTED))
    assert out == [] and seat.kind is ScreenKind.CLOSED
