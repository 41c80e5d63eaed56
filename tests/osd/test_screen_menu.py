"""The OSD menu, key for key (SPEC 1.2-1.7)."""

from __future__ import annotations

import pytest

from kvm_protocol.keys import sequence_events, text_events
from kvm_protocol.results import ResultCode
from osd import events as ev
from osd.model import Colour, Mode, ScreenKind
from tests.osd.seat import Seat, forwarded, of_type

ROWS = tuple(
    ev.DeviceRow(f"{i:04d}", f"PC {i}", ("grey", "yellow", "red")[i % 3]) for i in range(1, 21)
)


@pytest.fixture
def seat() -> Seat:
    seat = Seat()
    seat.login()
    seat.event(ev.DeviceList(Mode.CONNECT, ROWS))
    return seat


def test_the_menu_shows_version_user_list_input_feedback_and_keys(seat: Seat) -> None:
    v = seat.menu
    assert [(i.label.text, i.value.text) for i in v.info] == [
        ("固件版本", "RX-FW 2.4.1"),
        ("当前用户", "hxfj(5001)"),
    ]
    assert [i.label.colour for i in v.info] == [Colour.BROWN, Colour.BROWN]
    assert [i.value.colour for i in v.info] == [Colour.WHITE, Colour.WHITE]
    assert v.list_title.text == "发送终端列表"
    assert [c.text for c in v.columns] == ["编号", "名称"]
    assert len(v.rows) == 8
    assert v.input.mode_word.text == "【连接】" and v.input.mode_word.colour is Colour.BRIGHT_YELLOW
    assert v.input.prompt.colour is Colour.YELLOW
    assert v.feedback is None
    assert [(k.key.text, k.label.text) for k in v.function_keys] == [
        ("F1", "连接"), ("F2", "推送"), ("F3", "获取"),
        ("F5", "刷新"), ("F12", "注销"), ("Esc", "关闭"),
    ]
    assert not seat.model.pointer_visible


def test_row_colours_follow_the_server(seat: Seat) -> None:
    colours = {r.id: r.colour for r in seat.menu.rows}
    assert colours["0003"] is Colour.GREY
    assert colours["0001"] is Colour.YELLOW
    assert colours["0002"] is Colour.RED


@pytest.mark.parametrize(
    ("key", "mode", "word", "title"),
    [
        ("F1", Mode.CONNECT, "【连接】", "发送终端列表"),
        ("F2", Mode.PUSH, "【推送】", "接收终端列表"),
        ("F3", Mode.FETCH, "【获取】", "接收终端列表"),
    ],
)
def test_f1_f2_f3_switch_mode_and_ask_for_the_list(
    seat: Seat, key: str, mode: Mode, word: str, title: str
) -> None:
    seat.type("12")
    out = seat.keys(key)
    assert of_type(out, ev.RequestDevices) == [ev.RequestDevices(mode)]
    v = seat.menu
    assert v.input.mode is mode and v.input.mode_word.text == word
    assert v.list_title.text == title
    assert v.input.text.text == "", "a new mode starts with an empty input"
    if mode is not Mode.CONNECT:
        assert v.empty is not None and v.empty.text == "正在获取设备列表…"
        seat.event(ev.DeviceList(Mode.CONNECT, ROWS))
        assert seat.menu.empty is not None, "a late list of another mode is ignored"
        seat.event(ev.DeviceList(mode, ROWS[:2]))
        assert [r.id for r in seat.menu.rows] == ["0001", "0002"]


def test_f4_does_nothing(seat: Seat) -> None:
    seat.type("7")
    before = seat.model
    out = seat.keys("F4")
    assert out == [] and seat.model == before


def test_f5_refreshes_the_list(seat: Seat) -> None:
    seat.keys("F2")
    assert of_type(seat.keys("F5"), ev.RequestDevices) == [ev.RequestDevices(Mode.PUSH)]
    seat.event(ev.DeviceList(Mode.PUSH, ()))
    assert seat.menu.empty is not None and seat.menu.empty.text == "没有可用的设备"


def test_f12_logs_out_to_the_login_screen(seat: Seat) -> None:
    out = seat.keys("F12")
    assert of_type(out, ev.Logout) == [ev.Logout()]
    assert seat.kind is ScreenKind.LOGIN and seat.overlay
    assert seat.login_view.status.text == "已注销"
    assert not forwarded(seat.type("abc")), "the seat is locked again"


def test_esc_closes_the_menu_and_keeps_the_session(seat: Seat) -> None:
    out = seat.keys("Esc")
    assert of_type(out, ev.Overlay) == [ev.Overlay(False)]
    assert seat.kind is ScreenKind.CLOSED
    assert seat.machine.state.user == "hxfj"
    assert not forwarded(out), "the Esc press went to the OSD; its release is not sent alone"
    typed = forwarded(seat.type("ls"))
    assert typed == text_events("ls")


def test_the_chord_reopens_the_menu_without_reaching_the_computer(seat: Seat) -> None:
    seat.keys("Esc")
    out = seat.open_menu()
    keys = forwarded(out)
    assert all(k.name == "Shift" for k in keys), "only the Shift taps, never the O"
    assert ev.RequestDevices(Mode.CONNECT) in out
    assert of_type(out, ev.Overlay) == [ev.Overlay(True)]
    assert seat.menu.input.text.text == "" and seat.menu.feedback is None


def test_keys_go_only_to_the_osd_while_it_is_open(seat: Seat) -> None:
    out = seat.type("abc 1,2") + seat.keys("Shift+O Ctrl+C Alt+F4 Tab Up Down")
    assert not forwarded(out)
    assert seat.menu.input.text.text == "abc 1,2O"


@pytest.mark.parametrize(
    ("spec", "pages"),
    [
        ("PageDown", [2]),
        ("PageDown PageDown PageDown PageDown", [2, 3, 3, 3]),
        ("PageUp", [1]),
        ("PageDown PageDown PageUp", [2, 3, 2]),
    ],
)
def test_paging(seat: Seat, spec: str, pages: list[int]) -> None:
    assert (seat.menu.page.number, seat.menu.page.count) == (1, 3)
    assert seat.menu.page.text.text == "第 1/3 页"
    assert seat.menu.page.keys.text == "PgUp/PgDn 翻页"
    seen = []
    for key in spec.split():
        seat.keys(key)
        seen.append(seat.menu.page.number)
    assert seen == pages
    first = (seat.menu.page.number - 1) * 8 + 1
    assert seat.menu.rows[0].id == f"{first:04d}"
    assert len(seat.menu.rows) == (4 if seat.menu.page.number == 3 else 8)


def test_a_shorter_list_keeps_the_page_in_range(seat: Seat) -> None:
    seat.keys("PageDown PageDown")
    seat.event(ev.DeviceList(Mode.CONNECT, ROWS[:9]))
    assert (seat.menu.page.number, seat.menu.page.count) == (2, 2)
    seat.event(ev.DeviceList(Mode.CONNECT, ROWS[:3]))
    assert (seat.menu.page.number, seat.menu.page.count) == (1, 1)
    assert seat.menu.page.keys.text == "", "no page keys for a single page"


def test_typing_is_live_and_filtered(seat: Seat) -> None:
    seat.type("Ab-_, 9")
    assert seat.menu.input.text.text == "Ab-_, 9"
    seat.type("./!@;:+=")
    assert seat.menu.input.text.text == "Ab-_, 9", "other characters are not taken"
    seat.keys("Backspace Backspace")
    assert seat.menu.input.text.text == "Ab-_,"
    seat.type("x" * 100)
    assert len(seat.menu.input.text.text) == 64


@pytest.mark.parametrize(
    ("mode_key", "typed", "call"),
    [
        ("F1", "1", ev.Connect("1")),
        ("F1", "  wall  ", ev.Connect("wall")),
        ("F2", "1, 2 ,7", ev.Push("1,2,7")),
        ("F2", "all", ev.Push("all")),
        ("F2", "5001,right-wall", ev.Push("5001,right-wall")),
        ("F3", "12", ev.Fetch("12")),
    ],
)
def test_enter_sends_the_input(seat: Seat, mode_key: str, typed: str, call: ev.Effect) -> None:
    seat.keys(mode_key)
    seat.type(typed)
    out = seat.keys("Enter")
    assert [e for e in out if isinstance(e, ev.Connect | ev.Push | ev.Fetch)] == [call]
    assert seat.menu.input.busy and seat.menu.feedback is not None
    assert seat.menu.feedback.text == "正在处理…"
    assert not [e for e in seat.keys("Enter") if isinstance(e, ev.Connect | ev.Push | ev.Fetch)]


@pytest.mark.parametrize(
    ("mode_key", "typed"),
    [
        ("F1", "1,2"),       # connect takes exactly one
        ("F3", "1,2"),       # fetch takes exactly one
        ("F2", "1,,2"),      # empty token
        ("F2", "1,"),
        ("F2", "all,1"),     # all with others
        ("F2", "1,5001"),    # the same Rx twice
        ("F2", "Wall,wall"),  # hotkeys are case-insensitive
        ("F1", "12345"),     # more than 4 digits
        ("F1", "1 2"),       # a space inside a token
        ("F1", "a" * 17),    # hotkeys are at most 16 characters
    ],
)
def test_format_errors_are_answered_locally(seat: Seat, mode_key: str, typed: str) -> None:
    seat.keys(mode_key)
    seat.type(typed)
    out = seat.keys("Enter")
    assert not [e for e in out if isinstance(e, ev.Connect | ev.Push | ev.Fetch)]
    fb = seat.menu.feedback
    assert fb is not None and fb.text == "热键和ID不存在" and fb.colour is Colour.RED
    assert seat.menu.input.text.text == typed, "kept so the operator can fix it"


def test_enter_on_an_empty_input_does_nothing(seat: Seat) -> None:
    seat.type("   ")
    before = seat.model
    assert seat.keys("Enter") == []
    assert seat.model == before


def test_a_successful_connect_highlights_the_row_and_closes_after_a_second(seat: Seat) -> None:
    seat.type("4")
    seat.keys("Enter")
    out = seat.event(ev.ActionResult(Mode.CONNECT, ResultCode.CONNECTED))
    assert ev.RequestDevices(Mode.CONNECT) in out, "refresh the row colours"
    assert seat.menu.feedback is not None and seat.menu.feedback.text == "连接成功"
    row = next(r for r in seat.menu.rows if r.id == "0004")
    assert row.colour is Colour.BRIGHT_YELLOW
    assert seat.menu.input.text.text == ""
    assert seat.machine.next_deadline() == seat.now + 1000
    seat.tick(999)
    assert seat.kind is ScreenKind.MENU
    out = seat.tick(1)
    assert of_type(out, ev.Overlay) == [ev.Overlay(False)]
    assert seat.kind is ScreenKind.CLOSED


def test_a_key_after_a_success_keeps_the_menu_open(seat: Seat) -> None:
    seat.type("4")
    seat.keys("Enter")
    seat.event(ev.ActionResult(Mode.CONNECT, ResultCode.CONNECTED))
    seat.type("5")
    seat.tick(5000)
    assert seat.kind is ScreenKind.MENU


def test_auto_close_is_configurable() -> None:
    seat = Seat(ev.Settings(auto_close_ms=3000))
    seat.login()
    seat.type("4")
    seat.keys("Enter")
    seat.event(ev.ActionResult(Mode.CONNECT, ResultCode.CONNECTED))
    seat.tick(2999)
    assert seat.kind is ScreenKind.MENU
    seat.tick(1)
    assert seat.kind is ScreenKind.CLOSED


def test_push_to_all_highlights_every_row(seat: Seat) -> None:
    seat.keys("F2")
    rows = (ev.DeviceRow("5002", "B"), ev.DeviceRow("5003", "C", "red"))
    seat.event(ev.DeviceList(Mode.PUSH, rows))
    seat.type("all")
    seat.keys("Enter")
    seat.event(ev.ActionResult(Mode.PUSH, ResultCode.PUSHED))
    assert [r.colour for r in seat.menu.rows] == [Colour.BRIGHT_YELLOW, Colour.RED]


def test_idle_menu_closes_after_60_s(seat: Seat) -> None:
    seat.tick(59_000)
    seat.keys("PageDown")
    seat.tick(59_000)
    assert seat.kind is ScreenKind.MENU, "a key restarts the idle time"
    out = seat.tick(1_000)
    assert ev.Overlay(False) in out and seat.kind is ScreenKind.CLOSED
    assert seat.machine.state.user == "hxfj"


def test_idle_close_can_be_turned_off() -> None:
    seat = Seat(ev.Settings(idle_close_s=0))
    seat.login()
    seat.tick(10_000_000)
    assert seat.kind is ScreenKind.MENU
    assert seat.machine.next_deadline() is None


def test_an_unanswered_request_times_out(seat: Seat) -> None:
    seat.type("4")
    seat.keys("Enter")
    seat.tick(15_000)
    fb = seat.menu.feedback
    assert fb is not None and fb.text == "与服务器通讯失败,请稍后重试!"
    assert not seat.menu.input.busy
    assert seat.menu.input.text.text == "4"


def test_forwarding_while_closed_is_unchanged_and_in_order(seat: Seat) -> None:
    seat.keys("Esc")
    keys = text_events("Hello, World!") + sequence_events("Ctrl+C F1 F12 Esc Enter")
    out = seat.key_events(keys)
    assert forwarded(out) == keys
    assert seat.kind is ScreenKind.CLOSED
